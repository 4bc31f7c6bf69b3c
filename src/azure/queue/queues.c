/* Queue-level operations: create, delete, list, properties and metadata. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* The metadata as x-ms-meta-* headers, into a new map (NULL: out of memory). */
static sky_headers *meta_headers(const sky_headers *metadata)
{
    sky_headers *h = sky_headers_new();
    const char *name, *value;
    char full[300];
    for (size_t i = 0; h && metadata && sky_headers_at(metadata, i, &name, &value) == 0; i++) {
        snprintf(full, sizeof(full), "x-ms-meta-%s", name);
        if (sky_headers_add(h, sky_span_cstr(full), sky_span_cstr(value)) != 0) {
            sky_headers_free(h);
            return NULL;
        }
    }
    return h;
}

static int start_named(sky_queue_client *c, const char *queue, sky__queue_req *q,
                       sky_queue_done_cb cb, void *ud, sky_queue_op **out_op, sky_error *err)
{
    if (sky_queue_name_check(queue, err) != 0)
        return SKY_EINVAL;
    q->queue = queue;
    return sky__queue_start(c, q, cb, ud, out_op, err);
}

static int start_with_meta(sky_queue_client *c, const char *queue, sky__queue_req *q,
                           const sky_headers *metadata, sky_queue_done_cb cb, void *ud,
                           sky_queue_op **out_op, sky_error *err)
{
    sky_headers *h = meta_headers(metadata);
    if (h == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    q->headers = h;
    int rc = start_named(c, queue, q, cb, ud, out_op, err);
    sky_headers_free(h);
    return rc;
}

int sky_queue_create(sky_queue_client *c, const char *queue, const sky_headers *metadata,
                     sky_queue_done_cb cb, void *user_data, sky_queue_op **out_op, sky_error *err)
{
    sky__queue_req q = {.method = "PUT", .kind = SKY__QUEUE_PLAIN};
    return start_with_meta(c, queue, &q, metadata, cb, user_data, out_op, err);
}

int sky_queue_metadata_set(sky_queue_client *c, const char *queue, const sky_headers *metadata,
                           sky_queue_done_cb cb, void *user_data, sky_queue_op **out_op,
                           sky_error *err)
{
    sky__queue_req q = {.method = "PUT", .query = "comp=metadata", .kind = SKY__QUEUE_PLAIN};
    return start_with_meta(c, queue, &q, metadata, cb, user_data, out_op, err);
}

int sky_queue_delete(sky_queue_client *c, const char *queue, sky_queue_done_cb cb, void *user_data,
                     sky_queue_op **out_op, sky_error *err)
{
    sky__queue_req q = {.method = "DELETE", .kind = SKY__QUEUE_PLAIN};
    return start_named(c, queue, &q, cb, user_data, out_op, err);
}

int sky_queue_properties(sky_queue_client *c, const char *queue, sky_queue_done_cb cb,
                         void *user_data, sky_queue_op **out_op, sky_error *err)
{
    sky__queue_req q = {.method = "GET", .query = "comp=metadata", .kind = SKY__QUEUE_PROPS};
    return start_named(c, queue, &q, cb, user_data, out_op, err);
}

static int list_query(const char *prefix, const char *marker, int max_results, sky_buf *out)
{
    int rc = sky_buf_append_str(out, "comp=list");
    if (rc == 0 && prefix && prefix[0]) {
        rc = sky_buf_append_str(out, "&prefix=");
        if (rc == 0)
            rc = sky_storage_url_encode(sky_span_cstr(prefix), 0, out);
    }
    if (rc == 0 && marker && marker[0]) {
        rc = sky_buf_append_str(out, "&marker=");
        if (rc == 0)
            rc = sky_storage_url_encode(sky_span_cstr(marker), 0, out);
    }
    if (rc == 0 && max_results > 0)
        rc = sky_buf_printf(out, "&maxresults=%d", max_results);
    return rc;
}

int sky_queue_list(sky_queue_client *c, const char *prefix, const char *marker, int max_results,
                   sky_queue_done_cb cb, void *user_data, sky_queue_op **out_op, sky_error *err)
{
    sky_buf query;
    sky_buf_init(&query, 16 * 1024);
    if (list_query(prefix, marker, max_results, &query) != 0) {
        sky_buf_free(&query);
        return sky_error_set(err, SKY_EINVAL, "queue: the prefix or marker is too long");
    }
    sky__queue_req q = {.method = "GET", .query = query.data, .kind = SKY__QUEUE_LIST};
    int rc = sky__queue_start(c, &q, cb, user_data, out_op, err);
    sky_buf_free(&query);
    return rc;
}
