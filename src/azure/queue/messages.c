/* Message operations: put, get, peek, update, delete one, clear. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Seconds Azure takes for a visibility timeout: 0 .. 7 days. */
#define MAX_VISIBILITY (7 * 24 * 3600)

static int check_queue(const char *queue, sky_error *err)
{
    return sky_queue_name_check(queue, err) != 0 ? SKY_EINVAL : 0;
}

static int check_count(int count, sky_error *err)
{
    if (count < 1 || count > SKY_QUEUE_GET_MAX)
        return sky_error_set(err, SKY_EINVAL, "queue: %d messages asked for: 1 to %d at a time",
                             count, SKY_QUEUE_GET_MAX);
    return 0;
}

static int check_visibility(const char *what, int64_t s, sky_error *err)
{
    if (s < 0 || s > MAX_VISIBILITY)
        return sky_error_set(err, SKY_EINVAL, "queue: %s of %lld s: 0 to %d s (7 days)", what,
                             (long long)s, MAX_VISIBILITY);
    return 0;
}

int sky_queue_put(sky_queue_client *c, const char *queue, sky_span text,
                  const sky_queue_put_options *po, sky_queue_done_cb cb, void *user_data,
                  sky_queue_op **out_op, sky_error *err)
{
    sky_queue_put_options d;
    sky_queue_put_options_init(&d);
    po = po ? po : &d;
    int rc = check_queue(queue, err);
    if (rc == 0)
        rc = check_visibility("a visibility delay", po->visibility_delay, err);
    if (rc == 0 && po->ttl < -1)
        rc = sky_error_set(err, SKY_EINVAL, "queue: a time to live is -1 (forever) or more");
    if (rc != 0 || c == NULL)
        return rc ? rc : sky_error_set(err, SKY_EINVAL, "queue: a client is required");
    char query[96];
    int n = snprintf(query, sizeof(query), "visibilitytimeout=%d", po->visibility_delay);
    if (po->ttl != 0)
        snprintf(query + n, sizeof(query) - (size_t)n, "&messagettl=%lld", (long long)po->ttl);
    sky_buf body;
    sky_buf_init(&body, 2 * SKY_QUEUE_MESSAGE_MAX);
    rc = sky__queue_message_body(text, c->o.raw, &body, err);
    sky__queue_req q = {.method = "POST",
                        .queue = queue,
                        .path_rest = "/messages",
                        .query = query,
                        .body = sky_buf_span(&body),
                        .kind = SKY__QUEUE_PUT};
    if (rc == 0)
        rc = sky__queue_start(c, &q, cb, user_data, out_op, err);
    sky_buf_free(&body);
    return rc;
}

static int get_or_peek(sky_queue_client *c, const char *queue, int count, int visibility, int peek,
                       sky_queue_done_cb cb, void *user_data, sky_queue_op **out_op, sky_error *err)
{
    int rc = check_queue(queue, err);
    if (rc == 0)
        rc = check_count(count, err);
    if (rc == 0)
        rc = check_visibility("a visibility timeout", visibility, err);
    if (rc != 0)
        return rc;
    char query[96];
    if (peek)
        snprintf(query, sizeof(query), "peekonly=true&numofmessages=%d", count);
    else if (visibility > 0)
        snprintf(query, sizeof(query), "numofmessages=%d&visibilitytimeout=%d", count, visibility);
    else
        snprintf(query, sizeof(query), "numofmessages=%d", count);
    sky__queue_req q = {.method = "GET",
                        .queue = queue,
                        .path_rest = "/messages",
                        .query = query,
                        .kind = SKY__QUEUE_MESSAGES};
    return sky__queue_start(c, &q, cb, user_data, out_op, err);
}

int sky_queue_get(sky_queue_client *c, const char *queue, int count, int visibility_timeout,
                  sky_queue_done_cb cb, void *user_data, sky_queue_op **out_op, sky_error *err)
{
    return get_or_peek(c, queue, count, visibility_timeout, 0, cb, user_data, out_op, err);
}

int sky_queue_peek(sky_queue_client *c, const char *queue, int count, sky_queue_done_cb cb,
                   void *user_data, sky_queue_op **out_op, sky_error *err)
{
    return get_or_peek(c, queue, count, 0, 1, cb, user_data, out_op, err);
}

/* "/messages/{id}" and "popreceipt=..[&visibilitytimeout=n]", each percent-encoded. */
static int message_parts(const char *id, const char *receipt, int visibility, sky_buf *path,
                         sky_buf *query)
{
    int rc = sky_buf_append_str(path, "/messages/");
    if (rc == 0)
        rc = sky_storage_url_encode(sky_span_cstr(id), 0, path);
    if (rc == 0)
        rc = sky_buf_append_str(query, "popreceipt=");
    if (rc == 0)
        rc = sky_storage_url_encode(sky_span_cstr(receipt), 0, query);
    if (rc == 0 && visibility >= 0)
        rc = sky_buf_printf(query, "&visibilitytimeout=%d", visibility);
    return rc;
}

static int check_message(const char *queue, const char *id, const char *receipt, sky_error *err)
{
    if (check_queue(queue, err) != 0)
        return SKY_EINVAL;
    if (id == NULL || id[0] == '\0' || receipt == NULL || receipt[0] == '\0')
        return sky_error_set(err, SKY_EINVAL,
                             "queue: a message id and its pop receipt are "
                             "required");
    if (strlen(id) > 1024 || strlen(receipt) > 1024)
        return sky_error_set(err, SKY_EINVAL, "queue: the message id or receipt is too long");
    return 0;
}

/* One message's request: update (visibility >= 0, @p body maybe) or delete (-1). */
static int one_message(sky_queue_client *c, const char *queue, const char *id, const char *receipt,
                       int visibility, sky_span body, sky_queue_done_cb cb, void *user_data,
                       sky_queue_op **out_op, sky_error *err)
{
    sky_buf path, query;
    sky_buf_init(&path, 8192);
    sky_buf_init(&query, 8192);
    int rc = message_parts(id, receipt, visibility, &path, &query);
    if (rc != 0)
        rc = sky_error_set(err, SKY_ENOMEM, "out of memory");
    sky__queue_req q = {.method = visibility >= 0 ? "PUT" : "DELETE",
                        .queue = queue,
                        .path_rest = path.data,
                        .query = query.data,
                        .body = body,
                        .kind = visibility >= 0 ? SKY__QUEUE_UPDATE : SKY__QUEUE_PLAIN,
                        .id = id};
    if (rc == 0)
        rc = sky__queue_start(c, &q, cb, user_data, out_op, err);
    sky_buf_free(&path);
    sky_buf_free(&query);
    return rc;
}

int sky_queue_update(sky_queue_client *c, const char *queue, const char *id,
                     const char *pop_receipt, int visibility_timeout, const sky_span *text,
                     sky_queue_done_cb cb, void *user_data, sky_queue_op **out_op, sky_error *err)
{
    int rc = check_message(queue, id, pop_receipt, err);
    if (rc == 0)
        rc = check_visibility("a visibility timeout", visibility_timeout, err);
    if (rc != 0 || c == NULL)
        return rc ? rc : sky_error_set(err, SKY_EINVAL, "queue: a client is required");
    sky_buf body;
    sky_buf_init(&body, 2 * SKY_QUEUE_MESSAGE_MAX);
    if (text)
        rc = sky__queue_message_body(*text, c->o.raw, &body, err);
    if (rc == 0)
        rc = one_message(c, queue, id, pop_receipt, visibility_timeout, sky_buf_span(&body), cb,
                         user_data, out_op, err);
    sky_buf_free(&body);
    return rc;
}

int sky_queue_delete_message(sky_queue_client *c, const char *queue, const char *id,
                             const char *pop_receipt, sky_queue_done_cb cb, void *user_data,
                             sky_queue_op **out_op, sky_error *err)
{
    int rc = check_message(queue, id, pop_receipt, err);
    if (rc != 0)
        return rc;
    sky_span none = {NULL, 0};
    return one_message(c, queue, id, pop_receipt, -1, none, cb, user_data, out_op, err);
}

int sky_queue_clear(sky_queue_client *c, const char *queue, sky_queue_done_cb cb, void *user_data,
                    sky_queue_op **out_op, sky_error *err)
{
    if (check_queue(queue, err) != 0)
        return SKY_EINVAL;
    sky__queue_req q = {
        .method = "DELETE", .queue = queue, .path_rest = "/messages", .kind = SKY__QUEUE_PLAIN};
    return sky__queue_start(c, &q, cb, user_data, out_op, err);
}
