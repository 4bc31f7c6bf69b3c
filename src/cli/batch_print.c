/* `skyio batch`'s printing: the engine's events and summary as a person or a script reads
 * them. The rules that produced them are the engine's (src/jobs/batch*.c). */
#include <stdio.h>
#include <stdlib.h>

#include "skyio/skyio.h"
#include "batch_print.h"
#include "cli.h"

static void print_progress(const sky_cli_batch_out *o, const sky_batch_progress *p, int final)
{
    sky_buf line;
    sky_buf_init(&line, 4096);
    if (sky_batch_progress_text(p, !final, &line) == 0)
        fprintf(stderr, "%s%s%s", o->tty && !final ? "\r" : "", line.data,
                o->tty && !final ? "   " : "\n");
    sky_buf_free(&line);
}

void sky_cli_batch_print_summary(const sky_cli_batch_out *o, const sky_batch_summary *s)
{
    json_t *js = o->json ? sky_batch_summary_json(s) : NULL;
    if (js) {
        char *text = sky_json_dump(js, NULL);
        if (text)
            puts(text);
        free(text);
        json_decref(js);
        return;
    }
    print_progress(o, &s->progress, 1);
    if (s->unwritten > 0)
        fprintf(stderr, "%llu results could not be written; ", (unsigned long long)s->unwritten);
    if (s->unfinished)
        fprintf(stderr, "not finished: run the same command again to do the rest\n");
    fprintf(stderr, "results in %s%s%s; latency p50/p90/p99 %lld/%lld/%lld ms\n", o->output,
            o->errors ? ", failures in " : "", o->errors ? o->errors : "",
            (long long)s->latency_p50_ms, (long long)s->latency_p90_ms,
            (long long)s->latency_p99_ms);
}

int sky_cli_batch_exit_code(const sky_batch_summary *s)
{
    const sky_batch_progress *p = &s->progress;
    return s->fatal || s->refusal || s->unreachable     ? SKY_EXIT_START
           : p->failed || p->bad_lines || s->unfinished ? SKY_EXIT_FAILED
                                                        : SKY_EXIT_OK;
}

static void print_refused(const sky_batch_event *ev)
{
    const sky_error *e = ev->error;
    /* the message begins "HTTP <status>": the service's code, when there is one, first */
    fprintf(stderr,
            "\nskyio batch: the provider %s (%s%s%s); stopping. Nothing it refused is "
            "recorded: %s and run again.\n",
            ev->said, e->service_code, e->service_code[0] ? ": " : "",
            e->message[0] ? e->message : "HTTP error", ev->advice);
}

void sky_cli_batch_print_event(const sky_cli_batch_out *o, const sky_batch_event *ev)
{
    const sky_error *e = ev->error;
    if (ev->kind == SKY_BATCH_EVENT_PROGRESS) {
        print_progress(o, ev->progress, 0);
    } else if (ev->kind == SKY_BATCH_EVENT_REFUSED) {
        print_refused(ev);
    } else if (ev->kind == SKY_BATCH_EVENT_ENDPOINT_DOWN) {
        fprintf(stderr,
                "\nskyio batch: the endpoint is failing (%s: %s); requests wait and go again "
                "once it answers. Ctrl-C stops; nothing is lost.\n",
                sky_err_name(e->code), e->message);
    } else if (ev->kind == SKY_BATCH_EVENT_ENDPOINT_UP) {
        fprintf(stderr, "\nskyio batch: the endpoint answers again\n");
    } else if (ev->kind == SKY_BATCH_EVENT_UNREACHABLE) {
        fprintf(stderr,
                "\nskyio batch: cannot reach the endpoint (%s: %s); stopping. Nothing was "
                "recorded: check the URL, the network or --cacert and run again.\n",
                sky_err_name(e->code), e->message);
    } else if (ev->kind == SKY_BATCH_EVENT_FAULT && ev->fault == SKY_BATCH_FAULT_CREDENTIAL) {
        fprintf(stderr, "skyio batch: no token from the credential: %s; stopping, nothing sent\n",
                e->message);
    } else if (ev->kind == SKY_BATCH_EVENT_FAULT) {
        fprintf(stderr, "skyio batch: %s\n", e->message);
    }
}

void sky_cli_batch_say_resuming(const char *path, const sky_journal_stats *st)
{
    if (st->torn_bytes)
        fprintf(stderr, "skyio batch: %s: repaired a torn last line (%llu bytes)\n", path,
                (unsigned long long)st->torn_bytes);
    if (st->done_failed)
        fprintf(stderr,
                "skyio batch: %s: resuming, %llu requests already recorded, %llu of them "
                "failed (kept as done; --retry-failed sends those again)\n",
                path, (unsigned long long)(st->done_ok + st->done_failed),
                (unsigned long long)st->done_failed);
    else if (st->done_ok)
        fprintf(stderr, "skyio batch: %s: resuming, %llu requests already recorded\n", path,
                (unsigned long long)st->done_ok);
}
