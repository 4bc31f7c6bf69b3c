/* Queue Storage XML bodies through expat: message lists and queue listings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../storage_xml.h"
#include "internal.h"

static int add_message(sky__queue_parsed *o)
{
    if (o->count == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 8;
        sky_queue_message *m = realloc(o->messages, cap * sizeof(*m));
        if (m == NULL)
            return SKY_ENOMEM;
        o->messages = m;
        char **t = realloc(o->texts, cap * sizeof(*t));
        if (t == NULL)
            return SKY_ENOMEM;
        o->texts = t;
        o->cap = cap;
    }
    memset(&o->messages[o->count], 0, sizeof(o->messages[0]));
    o->messages[o->count].dequeue_count = -1;
    o->texts[o->count] = NULL;
    o->count++;
    return 0;
}

static int add_queue(sky__queue_parsed *o, const char *name)
{
    if (o->nqueues == o->qcap) {
        size_t cap = o->qcap ? o->qcap * 2 : 16;
        char **q = realloc(o->queues, cap * sizeof(*q));
        if (q == NULL)
            return SKY_ENOMEM;
        o->queues = q;
        o->qcap = cap;
    }
    o->queues[o->nqueues] = strdup(name);
    return o->queues[o->nqueues++] ? 0 : SKY_ENOMEM;
}

static int set_field(const char **field, const char *text)
{
    free((void *)(uintptr_t)*field);
    *field = strdup(text);
    return *field ? 0 : SKY_ENOMEM;
}

/* A child of QueueMessage (depth 3) into the last message. */
static int message_field(sky__queue_parsed *o, const char *name, const char *text)
{
    sky_queue_message *m = &o->messages[o->count - 1];
    if (strcmp(name, "MessageId") == 0)
        return set_field(&m->id, text);
    if (strcmp(name, "PopReceipt") == 0)
        return set_field(&m->pop_receipt, text);
    if (strcmp(name, "InsertionTime") == 0)
        return set_field(&m->inserted, text);
    if (strcmp(name, "ExpirationTime") == 0)
        return set_field(&m->expires, text);
    if (strcmp(name, "TimeNextVisible") == 0)
        return set_field(&m->next_visible, text);
    if (strcmp(name, "DequeueCount") == 0) {
        m->dequeue_count = strtoll(text, NULL, 10);
        return 0;
    }
    if (strcmp(name, "MessageText") == 0) {
        free(o->texts[o->count - 1]);
        o->texts[o->count - 1] = strdup(text);
        m->text = sky_span_cstr(o->texts[o->count - 1]);
        return o->texts[o->count - 1] ? 0 : SKY_ENOMEM;
    }
    return 0;
}

/* An element's end: its depth says what it is (the names of the levels above are not checked). */
static int element_end(void *ud, const char *path, const char *text)
{
    sky__queue_parsed *o = ud;
    int depth = sky__xml_depth(path);
    const char *name = sky__xml_name(path);
    if (depth == 3 && o->count > 0)
        return message_field(o, name, text);
    if (depth == 4 && strcmp(name, "Name") == 0)
        return add_queue(o, text);
    if (depth == 2 && strcmp(name, "NextMarker") == 0 && text[0]) {
        free(o->next_marker);
        o->next_marker = strdup(text);
        return o->next_marker ? 0 : SKY_ENOMEM;
    }
    return 0;
}

static int element_start(void *ud, const char *path)
{
    if (sky__xml_depth(path) == 2 && strcmp(sky__xml_name(path), "QueueMessage") == 0)
        return add_message(ud);
    return 0;
}

int sky__queue_parse(sky_span xml, sky__queue_parsed *out)
{
    memset(out, 0, sizeof(*out));
    if (xml.len == 0) /* no body: nothing in it */
        return 0;
    return sky__xml_walk(xml, element_start, element_end, out);
}

void sky__queue_parsed_free(sky__queue_parsed *p)
{
    for (size_t i = 0; i < p->count; i++) {
        sky_queue_message *m = &p->messages[i];
        free((void *)(uintptr_t)m->id);
        free((void *)(uintptr_t)m->pop_receipt);
        free((void *)(uintptr_t)m->inserted);
        free((void *)(uintptr_t)m->expires);
        free((void *)(uintptr_t)m->next_visible);
        free(p->texts[i]);
    }
    for (size_t i = 0; i < p->nqueues; i++)
        free(p->queues[i]);
    free(p->messages);
    free(p->texts);
    free(p->queues);
    free(p->next_marker);
    memset(p, 0, sizeof(*p));
}
