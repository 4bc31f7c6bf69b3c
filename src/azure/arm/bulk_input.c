/*
 * A bulk input file, JSON Lines of {"id": "/subscriptions/...", "body": {...}}: read line by
 * line into operations of a sky_arm_bulk, or only checked, so that every front end reads
 * (and refuses) the same files alike.
 */
#include <stdlib.h>
#include <string.h>

#include "skyio/arm.h"
#include "skyio/json.h"

/* One operation read: @p id and @p body are borrowed for the call. 0, or a SKY_E code. */
typedef int (*line_cb)(void *ud, const char *id, sky_span body);

/* One line's id and body, given to @p cb (NULL: only checked). */
static int parse_line(sky_span line, int lineno, line_cb cb, void *ud, sky_error *err)
{
    json_t *j = NULL;
    sky_error jerr;
    sky_error_clear(&jerr);
    int rc = sky_json_parse(line, &j, &jerr);
    if (rc < 0)
        return sky_error_set(err, rc, "line %d: %s", lineno, jerr.message);
    const char *id = sky_json_str(j, "id", NULL);
    json_t *body = json_object_get(j, "body");
    if (id == NULL || *id != '/' || !json_is_object(body))
        rc =
            sky_error_set(err, SKY_EINVAL,
                          "line %d: needs \"id\" (a resource id) and \"body\" (an object)", lineno);
    if (rc == 0 && cb) {
        size_t len = 0;
        char *text = sky_json_dump(body, &len);
        rc = text ? cb(ud, id, sky_span_make(text, len)) : SKY_ENOMEM;
        if (rc < 0)
            sky_error_set(err, rc, "line %d: %s", lineno, sky_strerror(rc));
        free(text);
    }
    json_decref(j);
    return rc;
}

/* Whether the line holds anything but spaces, tabs and a carriage return. */
static int blank(sky_span line)
{
    for (size_t i = 0; i < line.len; i++)
        if (line.ptr[i] != ' ' && line.ptr[i] != '\t' && line.ptr[i] != '\r')
            return 0;
    return 1;
}

static long each_line(sky_span text, line_cb cb, void *ud, sky_error *err)
{
    const char *p = text.ptr, *end = text.ptr + text.len;
    long n = 0;
    int lineno = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        sky_span line = sky_span_make(p, nl ? (size_t)(nl - p) : (size_t)(end - p));
        lineno++;
        if (!blank(line)) {
            int rc = parse_line(line, lineno, cb, ud, err);
            if (rc < 0)
                return rc;
            n++;
        }
        p += line.len + 1;
    }
    return n;
}

long sky_arm_bulk_check_jsonl(sky_span text, sky_error *err)
{
    return each_line(text, NULL, NULL, err);
}

typedef struct add_ctx {
    sky_arm_bulk *b;
    const char *method, *api_version;
} add_ctx;

static int add_one(void *ud, const char *id, sky_span body)
{
    const add_ctx *a = ud;
    return sky_arm_bulk_add(a->b, a->method, id, a->api_version, body);
}

long sky_arm_bulk_add_jsonl(sky_arm_bulk *b, sky_span text, const char *method,
                            const char *api_version, sky_error *err)
{
    add_ctx a = {b, method, api_version};
    if (b == NULL)
        return sky_error_set(err, SKY_EINVAL, "no batch");
    return each_line(text, add_one, &a, err);
}
