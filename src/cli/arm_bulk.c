/*
 * `skyio arm put --input FILE.jsonl`: read the file, hand its lines (one PUT each) to
 * the library's sky_arm_bulk, print a result line for each and the summary.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/skyio.h"
#include "skyio/arm.h"
#include "cli.h"
#include "cmd_arm.h"

typedef struct bulk_cli {
    sky_cli_arm_ctx *c;
    char *text; /* the input file, checked before the client is made */
    size_t len;
    int finished;
    json_t *failures;    /* [{id, code, message}] */
    json_t *codes;       /* code -> count */
    sky_error unreached; /* the endpoint was never reached: stop, record nothing */
} bulk_cli;

/* Read the input and check every line (the library's rules), before any client is made. */
static int read_input(const char *path, bulk_cli *b)
{
    sky_error err;
    sky_error_clear(&err);
    if (sky_cli_check_input_file("arm", "--input", path) < 0)
        return -1;
    b->text = sky_cli_read_file(path, &b->len);
    if (b->text == NULL) {
        fprintf(stderr, "skyio arm: --input %s: cannot read it\n", path);
        return -1;
    }
    long n = sky_arm_bulk_check_jsonl(sky_span_make(b->text, b->len), &err);
    if (n < 0)
        fprintf(stderr, "skyio arm: --input %s\n", err.message);
    else if (n == 0)
        fprintf(stderr, "skyio arm: --input %s: no operations in it\n", path);
    return n > 0 ? 0 : -1;
}

static void record_failure(bulk_cli *b, const char *id, const char *code, const char *message)
{
    json_array_append_new(b->failures,
                          json_pack("{s:s,s:s,s:s}", "id", id, "code", code, "message", message));
}

static void print_result(bulk_cli *b, const char *id, const sky_arm_lro_result *res,
                         const sky_error *err)
{
    json_t *line = json_pack("{s:s,s:s}", "id", id, "status",
                             err ? (res->status[0] ? res->status : "Error") : res->status);
    if (err) {
        const char *code = err->service_code[0] ? err->service_code : sky_err_name(err->code);
        json_object_set_new(b->codes, code,
                            json_integer(json_integer_value(json_object_get(b->codes, code)) + 1));
        record_failure(b, id, code, err->message);
        if (line)
            json_object_set_new(line, "error",
                                json_pack("{s:s,s:s}", "code", code, "message", err->message));
    }
    char *s = line ? sky_json_dump(line, NULL) : NULL;
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(line);
}

static void on_op(sky_arm_bulk *bulk, size_t index, const char *id, const sky_arm_lro_result *res,
                  const sky_error *err, void *ud)
{
    bulk_cli *b = ud;
    (void)index;
    if (b->unreached.code != 0 || sky_cli_arm_never_reached(b->c, err, &b->unreached)) {
        /* never sent: no result line, so a rerun of the same file does it */
        sky_arm_bulk_stop(bulk);
        return;
    }
    if (res == NULL) /* it could not start */
        record_failure(b, id, sky_err_name(err->code), err->message);
    else
        print_result(b, id, res, err);
}

static void on_done(sky_arm_bulk *bulk, const sky_arm_bulk_counts *counts, void *ud)
{
    bulk_cli *b = ud;
    (void)bulk;
    (void)counts;
    b->finished = 1;
    sky_loop_stop(b->c->loop);
}

static void print_summary(const bulk_cli *b, const sky_arm_bulk_counts *n, int as_json)
{
    if (as_json) {
        json_t *j = json_pack("{s:I,s:I,s:I,s:O,s:O}", "total", (json_int_t)n->total, "succeeded",
                              (json_int_t)n->succeeded, "failed", (json_int_t)n->failed, "codes",
                              b->codes, "failures", b->failures);
        char *s = j ? sky_json_dump(j, NULL) : NULL;
        if (s)
            fprintf(stderr, "%s\n", s);
        free(s);
        json_decref(j);
        return;
    }
    size_t i;
    json_t *f, *count;
    const char *code;
    fprintf(stderr, "skyio arm: %zu operations: %zu succeeded, %zu failed\n", n->total,
            n->succeeded, n->failed);
    json_object_foreach(b->codes, code, count)
    {
        fprintf(stderr, "  %-28s %lld\n", code, (long long)json_integer_value(count));
    }
    json_array_foreach(b->failures, i, f)
    {
        if (i == 20) {
            fprintf(stderr, "  ... %zu more\n", json_array_size(b->failures) - 20);
            break;
        }
        fprintf(stderr, "  failed %s: %s: %s\n", sky_json_str(f, "id", ""),
                sky_json_str(f, "code", ""), sky_json_str(f, "message", ""));
    }
}

static void free_input(bulk_cli *b)
{
    free(b->text);
    json_decref(b->failures);
    json_decref(b->codes);
}

/* A batch on the open client with every line added; NULL after saying why. */
static sky_arm_bulk *make_bulk(bulk_cli *b, const sky_cli_arm_flags *f)
{
    sky_arm_bulk_options o;
    sky_arm_bulk *bulk = NULL;
    sky_error err;
    sky_error_clear(&err);
    sky_arm_bulk_options_init(&o);
    o.concurrency = (size_t)f->concurrency;
    o.timeout_ms = (uint64_t)(f->timeout_s * 1000.0 + 0.5);
    o.on_op = on_op;
    o.on_done = on_done;
    o.user_data = b;
    int rc = sky_arm_bulk_new(b->c->arm, &o, &bulk);
    if (rc == 0) {
        long n = sky_arm_bulk_add_jsonl(bulk, sky_span_make(b->text, b->len), "PUT", f->api_version,
                                        &err);
        rc = n < 0 ? (int)n : 0;
    }
    if (rc == 0)
        rc = sky_arm_bulk_run(bulk);
    if (rc != 0) {
        fprintf(stderr, "skyio arm: cannot start: %s\n", sky_strerror(rc));
        sky_arm_bulk_free(bulk);
        return NULL;
    }
    return bulk;
}

static int exit_code(const bulk_cli *b, const sky_arm_bulk_counts *n)
{
    if (n->failed == 0 && n->unfinished == 0)
        return SKY_EXIT_OK;
    if (n->succeeded == 0 && n->failed == n->total && json_object_get(b->codes, "EAUTH"))
        return SKY_EXIT_START;
    return SKY_EXIT_FAILED;
}

int sky_cli_arm_run_bulk(const sky_cli_arm_flags *f)
{
    bulk_cli b;
    sky_cli_arm_ctx c;
    sky_arm_bulk_counts counts;
    memset(&b, 0, sizeof(b));
    b.failures = json_array();
    b.codes = json_object();
    if (b.failures == NULL || b.codes == NULL || read_input(f->input, &b) < 0) {
        free_input(&b);
        return SKY_EXIT_USAGE;
    }
    int rc = sky_cli_arm_open(&c, "arm", f);
    if (rc != 0) {
        free_input(&b);
        return rc;
    }
    b.c = &c;
    sky_arm_bulk *bulk = make_bulk(&b, f);
    while (bulk && !b.finished && !c.signaled)
        sky_loop_run(c.loop);
    fflush(stdout);
    if (bulk == NULL) {
        rc = SKY_EXIT_START;
    } else if (b.unreached.code != 0) {
        sky_cli_arm_say_unreachable(&c, &b.unreached);
        rc = SKY_EXIT_START;
    } else {
        sky_arm_bulk_get_counts(bulk, &counts);
        print_summary(&b, &counts, f->json);
        rc = exit_code(&b, &counts);
    }
    sky_arm_bulk_free(bulk); /* what a signal left running ends while the client closes */
    sky_cli_arm_close(&c);
    free_input(&b);
    return rc;
}
