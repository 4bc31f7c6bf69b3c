/*
 * The response cache and streams. A streamed request that hits is answered as a stream:
 * a kept stream is sent as it was kept; a kept whole chat answer is turned into one (a
 * chunk with each choice's whole message, one with its finish_reason, one with the usage,
 * then [DONE]). A streamed miss passes through chunk by chunk as ever, and a copy is
 * collected on the side: once the upstream has ended it well (no error, the [DONE] event
 * last), it is kept under the request's key, unless it grew past the cache's entry cap.
 * A whole (not streamed) request never gets a kept stream: it goes upstream, and the whole
 * answer it brings back takes the stream's place, serving both kinds from then on.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "store/store.h"

int sky__gw_cache_is_sse(sky_span value)
{
    size_t i = 0;
    while (i < value.len && (value.ptr[i] == ' ' || value.ptr[i] == '\t' || value.ptr[i] == '\r' ||
                             value.ptr[i] == '\n'))
        i++;
    return i < value.len && value.ptr[i] != '{';
}

/* "data: CHUNK\n\n" for a copy of @p base with @p choices (stolen) and @p usage (or NULL). */
static void put_event(FILE *f, const json_t *base, json_t *choices, json_t *usage)
{
    json_t *chunk = json_copy((json_t *)(uintptr_t)base);
    char *text = NULL;
    if (chunk && json_object_set_new(chunk, "choices", choices) == 0 &&
        (!usage || json_object_set(chunk, "usage", usage) == 0))
        text = json_dumps(chunk, JSON_COMPACT);
    else if (!chunk)
        json_decref(choices);
    if (text)
        fprintf(f, "data: %s\n\n", text);
    free(text);
    json_decref(chunk);
}

/* The chunk's fields of a kept chat answer: id, created, model. */
static json_t *chunk_base(const json_t *doc)
{
    json_t *base = json_object();
    const char *keys[] = {"id", "created", "model", "system_fingerprint"};
    for (size_t i = 0; base && i < SKY_ARRAY_LEN(keys); i++) {
        json_t *v = json_object_get(doc, keys[i]);
        if (v)
            json_object_set(base, keys[i], v);
    }
    if (base)
        json_object_set_new(base, "object", json_string("chat.completion.chunk"));
    return base;
}

static void put_choice(FILE *f, const json_t *base, size_t i, const json_t *c)
{
    json_t *msg = json_object_get(c, "message");
    json_t *delta = msg ? json_incref(msg) : json_object();
    put_event(f, base,
              json_pack("[{sI so sn}]", "index", (json_int_t)i, "delta", delta, "finish_reason"),
              NULL);
    put_event(f, base,
              json_pack("[{sI s{} sO?}]", "index", (json_int_t)i, "delta", "finish_reason",
                        json_object_get(c, "finish_reason")),
              NULL);
}

/* A kept chat answer as the stream the client asked for. NULL when the answer is not a
 * chat completion. */
static char *stream_of_whole(sky_span whole, size_t *out_len)
{
    json_t *doc = json_loadb(whole.ptr, whole.len, 0, NULL);
    json_t *choices = json_object_get(doc, "choices");
    json_t *base = json_is_array(choices) && json_object_get(json_array_get(choices, 0), "message")
                       ? chunk_base(doc)
                       : NULL;
    char *text = NULL;
    FILE *f = base ? open_memstream(&text, out_len) : NULL;
    if (f) {
        size_t i;
        json_t *c;
        json_array_foreach(choices, i, c) put_choice(f, base, i, c);
        json_t *usage = json_object_get(doc, "usage");
        if (usage)
            put_event(f, base, json_array(), usage);
        fputs("data: [DONE]\n\n", f);
        fclose(f);
    }
    json_decref(base);
    json_decref(doc);
    return text;
}

int sky__gw_cache_replay(gw_request *q, sky_span value)
{
    char *made = NULL;
    size_t len = value.len;
    if (!sky__gw_cache_is_sse(value) && (made = stream_of_whole(value, &len)) == NULL)
        return -1;
    sky_span sse = made ? sky_span_make(made, len) : value;
    sky__gw_cache_hit_headers(q);
    sky_server_add_header(q->sr, "cache-control", SKY_SPAN_LIT("no-cache"));
    sky_server_stream_start(q->sr, 200, "text/event-stream", (int64_t)sse.len);
    (void)sky_server_stream_write(q->sr, sse, 1); /* may free q */
    free(made);
    return 0;
}

/* ---- a streamed miss, collected on the side ---- */

void sky__gw_cache_stream_begun(gw_request *q)
{
    gw_cache_lookup *l = q->lookup;
    if (q->cache_mode == GW_CACHE_NONE || l == NULL || l->e)
        return;
    sky_server_add_header(q->sr, "x-skyio-cache-status",
                          q->cache_mode == GW_CACHE_REFRESH ? SKY_SPAN_LIT("refresh")
                                                            : SKY_SPAN_LIT("miss"));
    sky_buf_free(&l->sse);
    sky_buf_init(&l->sse, sky__gw_cache_max_entry(q->g));
    l->sse_on = 1;
}

void sky__gw_cache_stream_chunk(gw_request *q, const char *data, size_t len)
{
    gw_cache_lookup *l = q->lookup;
    if (l == NULL || !l->sse_on || sky_buf_append(&l->sse, data, len) == 0)
        return;
    l->sse_on = 0; /* past the cap (or out of memory): this one is not kept */
    sky_buf_free(&l->sse);
}

/* The stream's last event is [DONE] (what OpenAI and the compatible servers end with). */
static int ended_well(sky_span s)
{
    static const char done[] = "data: [DONE]";
    while (s.len > 0 &&
           (s.ptr[s.len - 1] == '\n' || s.ptr[s.len - 1] == '\r' || s.ptr[s.len - 1] == ' '))
        s.len--;
    size_t n = sizeof(done) - 1;
    return s.len >= n && memcmp(s.ptr + s.len - n, done, n) == 0;
}

void sky__gw_cache_stream_ended(gw_request *q)
{
    gw_cache_lookup *l = q->lookup;
    if (l == NULL || !l->sse_on)
        return;
    sky_span sse = sky_buf_span(&l->sse);
    l->sse_on = 0;
    if (ended_well(sse) && sky__gw_cache_is_sse(sse))
        sky__store_cache_put(q->g->cache, q->cache_key, sse,
                             sky__gw_cache_ttl(q->g, q->asked->name), NULL, NULL);
    sky_buf_free(&l->sse);
}
