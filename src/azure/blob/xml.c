/* Blob Storage XML bodies through expat: listings, block lists, error replies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../storage_xml.h"
#include "internal.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* ---- listings ---- */

static int list_add(sky__blob_list *l, const char *name, int is_prefix)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        sky_blob_item *n = realloc(l->items, cap * sizeof(*n));
        if (n == NULL)
            return SKY_ENOMEM;
        l->items = n;
        l->cap = cap;
    }
    sky_blob_item *it = &l->items[l->count];
    memset(it, 0, sizeof(*it));
    it->size = -1;
    it->is_prefix = is_prefix;
    it->name = strdup(name);
    if (it->name == NULL)
        return SKY_ENOMEM;
    l->count++;
    return 0;
}

static int set_str(const char **field, const char *text)
{
    free((void *)(uintptr_t)*field);
    *field = strdup(text);
    return *field ? 0 : SKY_ENOMEM;
}

#define LIST_BLOB "/EnumerationResults/Blobs/Blob/"
#define LIST_CONTAINER "/EnumerationResults/Containers/Container/"

/* The field of a blob's or a container's Properties that @p path names, or NULL. Paths are
 * matched from the root: an element of the same name nested anywhere else is not it. */
static const char *property_of(const char *path)
{
    static const char prop[] = "Properties/";
    const char *rest = NULL;
    if (strncmp(path, LIST_BLOB, sizeof(LIST_BLOB) - 1) == 0)
        rest = path + sizeof(LIST_BLOB) - 1;
    else if (strncmp(path, LIST_CONTAINER, sizeof(LIST_CONTAINER) - 1) == 0)
        rest = path + sizeof(LIST_CONTAINER) - 1;
    if (rest == NULL || strncmp(rest, prop, sizeof(prop) - 1) != 0)
        return NULL;
    rest += sizeof(prop) - 1;
    return strchr(rest, '/') ? NULL : rest;
}

static int set_property(sky_blob_item *cur, const char *field, const char *text)
{
    if (strcmp(field, "Content-Length") == 0)
        cur->size = strtoll(text, NULL, 10);
    else if (strcmp(field, "Etag") == 0)
        return set_str(&cur->etag, text);
    else if (strcmp(field, "Content-MD5") == 0 && text[0])
        return set_str(&cur->content_md5, text);
    else if (strcmp(field, "Last-Modified") == 0)
        return set_str(&cur->last_modified, text);
    return 0;
}

static int list_end(void *ud, const char *path, const char *text)
{
    sky__blob_list *l = ud;
    sky_blob_item *cur = l->count ? &l->items[l->count - 1] : NULL;
    if (strcmp(path, LIST_BLOB "Name") == 0 || strcmp(path, LIST_CONTAINER "Name") == 0)
        return list_add(l, text, 0);
    if (strcmp(path, "/EnumerationResults/Blobs/BlobPrefix/Name") == 0)
        return list_add(l, text, 1);
    if (strcmp(path, "/EnumerationResults/NextMarker") == 0) {
        free(l->next_marker);
        l->next_marker = text[0] ? strdup(text) : NULL;
        return text[0] && !l->next_marker ? SKY_ENOMEM : 0;
    }
    const char *field = property_of(path);
    /* a prefix has no properties: what follows one belongs to no item */
    if (cur == NULL || cur->is_prefix || field == NULL)
        return 0;
    return set_property(cur, field, text);
}

int sky__blob_parse_list(sky_span xml, sky__blob_list *out)
{
    memset(out, 0, sizeof(*out));
    int rc = sky__xml_walk(xml, NULL, list_end, out);
    if (rc != 0)
        sky__blob_list_free(out);
    return rc;
}

void sky__blob_list_free(sky__blob_list *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free((void *)(uintptr_t)l->items[i].name);
        free((void *)(uintptr_t)l->items[i].etag);
        free((void *)(uintptr_t)l->items[i].content_md5);
        free((void *)(uintptr_t)l->items[i].last_modified);
    }
    free(l->items);
    free(l->next_marker);
    memset(l, 0, sizeof(*l));
}

/* ---- block lists ---- */

static int blocks_end(void *ud, const char *path, const char *text)
{
    sky__blob_blocks *b = ud;
    if (ends_with(path, "Blocks/Block/Name")) {
        if (b->count == b->cap) {
            size_t cap = b->cap ? b->cap * 2 : 64;
            char **n = realloc(b->names, cap * sizeof(*n));
            if (n == NULL)
                return SKY_ENOMEM;
            b->names = n;
            int64_t *s = realloc(b->sizes, cap * sizeof(*s));
            if (s == NULL)
                return SKY_ENOMEM;
            b->sizes = s;
            b->cap = cap;
        }
        b->names[b->count] = strdup(text);
        if (b->names[b->count] == NULL)
            return SKY_ENOMEM;
        b->sizes[b->count++] = -1;
    } else if (ends_with(path, "Blocks/Block/Size") && b->count) {
        b->sizes[b->count - 1] = strtoll(text, NULL, 10);
    }
    return 0;
}

int sky__blob_parse_blocks(sky_span xml, sky__blob_blocks *out)
{
    memset(out, 0, sizeof(*out));
    int rc = sky__xml_walk(xml, NULL, blocks_end, out);
    if (rc != 0)
        sky__blob_blocks_free(out);
    return rc;
}

void sky__blob_blocks_free(sky__blob_blocks *b)
{
    for (size_t i = 0; i < b->count; i++)
        free(b->names[i]);
    free(b->names);
    free(b->sizes);
    memset(b, 0, sizeof(*b));
}

/* ---- errors ---- */

typedef struct err_out {
    char *code, *msg;
    size_t code_len, msg_len;
} err_out;

static int error_end(void *ud, const char *path, const char *text)
{
    err_out *e = ud;
    if (strcmp(path, "/Error/Code") == 0)
        snprintf(e->code, e->code_len, "%s", text);
    else if (strcmp(path, "/Error/Message") == 0)
        snprintf(e->msg, e->msg_len, "%.*s", (int)strcspn(text, "\r\n"), text);
    return 0;
}

void sky__blob_parse_error(sky_span xml, char *code, size_t code_len, char *msg, size_t msg_len)
{
    err_out e = {code, msg, code_len, msg_len};
    code[0] = '\0';
    msg[0] = '\0';
    if (xml.len > 0)
        (void)sky__xml_walk(xml, NULL, error_end, &e);
}
