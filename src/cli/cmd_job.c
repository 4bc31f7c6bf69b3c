/* `skyio job status|cancel|delete --redis URL --job NAME`: a distributed batch job's state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/batch_redis.h"
#include "skyio/skyio.h"
#include "cli.h"

static const char usage[] =
    "usage: skyio job status|cancel|delete --redis URL --job NAME [--json]\n"
    "\n"
    "A batch job kept in Redis (see skyio worker --help):\n"
    "  status   counts: loaded, queued, in flight, done, failed; workers alive (heard\n"
    "           from in the last 10 s) and their requests per minute; the shared limit\n"
    "  cancel   workers take no more requests (they finish what is in flight) and the\n"
    "           collector stops; what is done stays\n"
    "  delete   remove every key of the job\n"
    "exit: 0; 2 usage, or no such job; 3 could not reach Redis (the cause is printed).\n";

typedef struct cli_job {
    const char *verb, *url_text, *name;
    int json_out, opened, done, code;
    sky_error err;
    sky_loop *loop;
    sky_redis_job *job;
    int argc;
    char **argv;
} cli_job;

static int parse_args(cli_job *c, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json"))
            c->json_out = 1;
        else if (!strcmp(a, "--redis") && i + 1 < argc)
            c->url_text = argv[++i];
        else if (!strcmp(a, "--job") && i + 1 < argc)
            c->name = argv[++i];
        else if (a[0] != '-' && c->verb == NULL)
            c->verb = a;
        else
            return fprintf(stderr, "skyio job: unexpected '%s' (see skyio job --help)\n", a), -1;
    }
    if (c->verb == NULL ||
        (strcmp(c->verb, "status") && strcmp(c->verb, "cancel") && strcmp(c->verb, "delete")))
        return fprintf(stderr, "skyio job: status, cancel or delete (see skyio job --help)\n"), -1;
    if (c->url_text == NULL || c->name == NULL)
        return fprintf(stderr, "skyio job: --redis URL and --job NAME are required\n"), -1;
    return 0;
}

static void print_status(const cli_job *c, const sky_redis_job_status *st)
{
    if (c->json_out) {
        json_t *js = json_pack(
            "{s:s,s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f}", "job", c->name, "load_done",
            st->load_done, "canceled", st->canceled, "loaded", (json_int_t)st->loaded, "queued",
            (json_int_t)st->queued, "in_flight", (json_int_t)st->pending, "done",
            (json_int_t)st->done, "failed", (json_int_t)st->failed, "workers_alive",
            (json_int_t)st->workers_alive, "workers_rpm", st->rpm, "shared_rpm", st->shared_rpm);
        char *text = js ? sky_json_dump(js, NULL) : NULL;
        if (text)
            puts(text);
        free(text);
        json_decref(js);
        return;
    }
    printf("job %s: %s%s\n", c->name, st->load_done ? "loaded" : "loading",
           st->canceled ? ", canceled" : "");
    printf("  loaded %llu  queued %llu  in flight %llu  done %llu (failed %llu)\n",
           (unsigned long long)st->loaded, (unsigned long long)st->queued,
           (unsigned long long)st->pending, (unsigned long long)st->done,
           (unsigned long long)st->failed);
    printf("  workers alive %llu, %.1f requests/min; shared limit %s%.1f rpm\n",
           (unsigned long long)st->workers_alive, st->rpm, st->shared_rpm > 0 ? "" : "none, ",
           st->shared_rpm);
}

static void on_status(sky_redis_job *j, const sky_redis_job_status *st, const sky_error *err,
                      void *ud)
{
    cli_job *c = ud;
    (void)j;
    c->done = 1;
    if (err) {
        fprintf(stderr, "skyio job: %s\n", err->message);
        c->code = SKY_EXIT_START;
    } else if (!st->exists) {
        fprintf(stderr, "skyio job: no job %s in this Redis\n", c->name);
        c->code = SKY_EXIT_USAGE;
    } else {
        print_status(c, st);
    }
}

static void on_changed(sky_redis_job *j, const sky_error *err, void *ud)
{
    cli_job *c = ud;
    (void)j;
    c->done = 1;
    if (err) {
        fprintf(stderr, "skyio job: %s\n", err->message);
        c->code = SKY_EXIT_START;
    } else if (!c->json_out) {
        fprintf(stderr, "skyio job: %s %s\n", c->name,
                strcmp(c->verb, "delete") ? "canceled" : "deleted");
    }
}

static void on_open(sky_redis_job *j, const sky_error *err, void *ud)
{
    cli_job *c = ud;
    int rc;
    c->opened = 1;
    if (err) {
        c->err = *err;
        return;
    }
    rc = !strcmp(c->verb, "status")
             ? sky_redis_job_get_status(j, on_status, c)
             : sky_redis_job_cancel(j, !strcmp(c->verb, "delete"), on_changed, c);
    if (rc < 0)
        sky_error_set(&c->err, rc, "%s", sky_strerror(rc));
}

/* Open the job without creating it; a status of a job that is not there must not wait. */
static int open_job(cli_job *c, sky_redis_url *url)
{
    sky_redis_job_options jo;
    sky_redis_job_options_init(&jo);
    jo.url = url;
    jo.name = c->name;
    jo.create = 0;
    jo.consumer = "skyio-job-command";
    return sky_redis_job_open(sky_loop_uv(c->loop), &jo, on_open, c, &c->job, &c->err);
}

static int run(cli_job *c)
{
    sky_redis_url url;
    int bad = sky_redis_url_parse(c->url_text, &url, &c->err) < 0;
    sky_cli_redis_scrub_argv(c->argc, c->argv);
    if (bad)
        return fprintf(stderr, "skyio job: %s\n", c->err.message), SKY_EXIT_START;
    c->loop = sky_loop_new();
    int rc = c->loop ? open_job(c, &url) : SKY_ENOMEM;
    sky_redis_url_wipe(&url);
    if (rc < 0)
        return fprintf(stderr, "skyio job: %s\n", c->err.message), SKY_EXIT_START;
    while (!c->done && !c->err.code)
        uv_run(sky_loop_uv(c->loop), UV_RUN_ONCE);
    if (c->err.code)
        fprintf(stderr, "skyio job: %s\n", c->err.message);
    return c->err.code == SKY_ENOTFOUND ? SKY_EXIT_USAGE : c->err.code ? SKY_EXIT_START : c->code;
}

int sky_cli_job(int argc, char **argv)
{
    cli_job c;
    memset(&c, 0, sizeof(c));
    c.argc = argc;
    c.argv = argv;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return fputs(usage, stdout), SKY_EXIT_OK;
    if (parse_args(&c, argc, argv) < 0)
        return SKY_EXIT_USAGE;
    int code = run(&c); /* the URL is parsed first thing, then scrubbed */
    sky_redis_job_close(c.job);
    if (c.loop) {
        sky_loop_run(c.loop);
        sky_loop_free(c.loop);
    }
    return code;
}
