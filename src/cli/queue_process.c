/*
 * `skyio queue get --process CMD`: take one message at a time, hand it to `sh -c CMD` on
 * its stdin, keep it hidden while CMD runs (the visibility timeout extended at half its
 * length, each time with the newest pop receipt), and delete it only when CMD exits 0.
 * Otherwise it comes back after its timeout: at-least-once delivery.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "cmd_queue.h"

extern char **environ;

typedef struct proc {
    sky_cli_queue_app *a;
    uv_process_t child;
    uv_pipe_t in;
    uv_write_t wr;
    uv_timer_t extend, poll;
    char *id, *receipt, *text;
    size_t text_len;
    long long dequeue;
    int visibility;
    int child_running, updating, exited, busy; /* busy: a get or delete in flight */
    int64_t exit_status;
    long long processed, failed;
} proc;

static void fetch(proc *p);

static void close_all(proc *p)
{
    if (!uv_is_closing((uv_handle_t *)&p->extend))
        uv_close((uv_handle_t *)&p->extend, NULL);
    if (!uv_is_closing((uv_handle_t *)&p->poll))
        uv_close((uv_handle_t *)&p->poll, NULL);
}

/* Nothing more to take: say what was done and end the command. */
static void finish(proc *p)
{
    sky_cli_queue_app *a = p->a;
    fprintf(stderr, "skyio queue: %lld message%s processed, %lld failed\n", p->processed,
            p->processed == 1 ? "" : "s", p->failed);
    if (p->failed && a->exit_code == 0)
        a->exit_code = SKY_EXIT_FAILED;
    close_all(p);
    a->done = 1;
}

static void forget_message(proc *p)
{
    free(p->id);
    free(p->receipt);
    free(p->text);
    p->id = p->receipt = p->text = NULL;
}

static void report(proc *p, int deleted)
{
    if (!p->a->f.json)
        return;
    json_t *o = json_pack("{s:s, s:I, s:b}", "id", p->id, "exit", (json_int_t)p->exit_status,
                          "deleted", deleted);
    char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (line)
        puts(line);
    fflush(stdout);
    free(line);
    json_decref(o);
}

/* The next message, unless stopped or --max reached. */
static void next(proc *p)
{
    forget_message(p);
    long long total = p->processed + p->failed;
    if (p->a->stop || (p->a->f.max > 0 && total >= p->a->f.max))
        finish(p);
    else
        fetch(p);
}

static void on_deleted(sky_queue_op *op, const sky_queue_reply *rep, const sky_error *err, void *ud)
{
    proc *p = ud;
    (void)op, (void)rep;
    p->busy = 0;
    if (err) {
        sky_cli_queue_failed(p->a, "delete", err);
        p->failed++;
    } else {
        p->processed++;
    }
    report(p, err == NULL);
    next(p);
}

/* CMD is over and no update is in flight: delete the message, or leave it to come back. */
static void settle(proc *p)
{
    sky_error err;
    sky_error_clear(&err);
    if (p->exit_status == 0 && !p->a->stop) {
        p->busy = 1;
        if (sky_queue_delete_message(p->a->q, p->a->queue, p->id, p->receipt, on_deleted, p, NULL,
                                     &err) == 0)
            return;
        p->busy = 0;
        sky_cli_queue_failed(p->a, "delete", &err);
    } else if (!p->a->stop) {
        fprintf(stderr,
                "skyio queue: the command exited %lld for message %s: not deleted; it comes "
                "back after its visibility timeout\n",
                (long long)p->exit_status, p->id);
    }
    p->failed++;
    report(p, 0);
    next(p);
}

/* ---- keeping the message hidden while CMD runs ---- */

static void on_extended(sky_queue_op *op, const sky_queue_reply *rep, const sky_error *err,
                        void *ud)
{
    proc *p = ud;
    (void)op;
    p->updating = 0;
    if (err)
        sky_cli_queue_failed(p->a, "update", err); /* the message may be seen again */
    else if (rep->count == 1 && rep->messages[0].pop_receipt) {
        char *r = strdup(rep->messages[0].pop_receipt);
        if (r) {
            free(p->receipt);
            p->receipt = r;
        }
    }
    if (p->exited)
        settle(p);
}

static void on_extend_timer(uv_timer_t *t)
{
    proc *p = t->data;
    sky_error err;
    sky_error_clear(&err);
    if (p->updating || p->exited)
        return;
    p->updating = 1;
    if (sky_queue_update(p->a->q, p->a->queue, p->id, p->receipt, p->visibility, NULL, on_extended,
                         p, NULL, &err) != 0) {
        p->updating = 0;
        sky_cli_queue_failed(p->a, "update", &err);
    }
}

/* ---- the command ---- */

static void on_child_closed(uv_handle_t *h)
{
    proc *p = h->data;
    p->child_running = 0;
    if (!p->updating)
        settle(p);
}

static void on_child_exit(uv_process_t *child, int64_t status, int term_signal)
{
    proc *p = child->data;
    uv_timer_stop(&p->extend);
    p->exited = 1;
    p->exit_status = term_signal ? 128 + term_signal : status;
    uv_close((uv_handle_t *)child, on_child_closed);
}

static void on_written(uv_write_t *w, int status)
{
    proc *p = w->data;
    (void)status; /* a command that does not read its stdin is fine */
    uv_close((uv_handle_t *)&p->in, NULL);
}

/* environ plus the message's id and dequeue count, in @p env (at most @p cap entries). */
static char **child_env(const proc *p, char *id_var, size_t id_len, char *count_var,
                        size_t count_len)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 3, sizeof(*env));
    if (env == NULL)
        return NULL;
    memcpy(env, environ, n * sizeof(*env));
    snprintf(id_var, id_len, "SKYIO_QUEUE_MESSAGE_ID=%s", p->id);
    snprintf(count_var, count_len, "SKYIO_QUEUE_DEQUEUE_COUNT=%lld", p->dequeue);
    env[n] = id_var;
    env[n + 1] = count_var;
    return env;
}

static int spawn(proc *p)
{
    uv_loop_t *loop = sky_loop_uv(p->a->env.loop);
    char id_var[1200], count_var[64];
    static char sh[] = "/bin/sh", dash_c[] = "-c";
    char *args[] = {sh, dash_c, (char *)(uintptr_t)p->a->f.process, NULL};
    char **env = child_env(p, id_var, sizeof(id_var), count_var, sizeof(count_var));
    uv_stdio_container_t io[3];
    uv_process_options_t o;
    memset(&o, 0, sizeof(o));
    uv_pipe_init(loop, &p->in, 0);
    p->in.data = p;
    io[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    io[0].data.stream = (uv_stream_t *)&p->in;
    io[1].flags = io[2].flags = UV_INHERIT_FD;
    io[1].data.fd = 1;
    io[2].data.fd = 2;
    o.file = args[0];
    o.args = args;
    o.env = env;
    o.stdio = io;
    o.stdio_count = 3;
    o.exit_cb = on_child_exit;
    p->child.data = p;
    p->exited = 0;
    int rc = env ? uv_spawn(loop, &p->child, &o) : UV_ENOMEM;
    free(env);
    if (rc != 0) {
        uv_close((uv_handle_t *)&p->in, NULL);
        fprintf(stderr, "skyio queue: cannot run the command: %s\n", uv_strerror(rc));
        return rc;
    }
    p->child_running = 1;
    uv_buf_t b = uv_buf_init(p->text, (unsigned)p->text_len);
    p->wr.data = p;
    if (uv_write(&p->wr, (uv_stream_t *)&p->in, &b, 1, on_written) != 0)
        uv_close((uv_handle_t *)&p->in, NULL);
    uint64_t every = (uint64_t)p->visibility * 500; /* half the timeout, in ms */
    uv_timer_start(&p->extend, on_extend_timer, every ? every : 500, every ? every : 500);
    return 0;
}

/* ---- taking messages ---- */

static int keep_message(proc *p, const sky_queue_message *m)
{
    p->id = strdup(m->id ? m->id : "");
    p->receipt = strdup(m->pop_receipt ? m->pop_receipt : "");
    p->text = malloc(m->text.len + 1);
    p->text_len = m->text.len;
    p->dequeue = m->dequeue_count;
    if (p->id == NULL || p->receipt == NULL || p->text == NULL)
        return -1;
    memcpy(p->text, m->text.ptr, m->text.len);
    return 0;
}

static void on_poll(uv_timer_t *t)
{
    fetch(t->data);
}

static void on_got(sky_queue_op *op, const sky_queue_reply *rep, const sky_error *err, void *ud)
{
    proc *p = ud;
    (void)op;
    p->busy = 0;
    if (err) {
        sky_cli_queue_failed(p->a, "get", err);
        finish(p);
    } else if (p->a->stop) {
        finish(p); /* what was got comes back after its visibility timeout */
    } else if (rep->count == 0 && p->a->f.wait) {
        uv_timer_start(&p->poll, on_poll, 2000, 0);
    } else if (rep->count == 0) {
        finish(p);
    } else if (keep_message(p, &rep->messages[0]) != 0 || spawn(p) != 0) {
        p->a->exit_code = SKY_EXIT_START;
        forget_message(p);
        finish(p);
    }
}

static void fetch(proc *p)
{
    sky_error err;
    sky_error_clear(&err);
    p->busy = 1;
    if (sky_queue_get(p->a->q, p->a->queue, 1, p->visibility, on_got, p, NULL, &err) != 0) {
        p->busy = 0;
        sky_cli_queue_failed(p->a, "get", &err);
        p->a->exit_code = SKY_EXIT_USAGE;
        finish(p);
    }
}

int sky_cli_queue_process_start(sky_cli_queue_app *a)
{
    proc *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return SKY_EXIT_START;
    p->a = a;
    p->visibility =
        a->f.visibility > 0 ? (int)(a->f.visibility > 604800 ? 604800 : a->f.visibility) : 30;
    uv_timer_init(sky_loop_uv(a->env.loop), &p->extend);
    uv_timer_init(sky_loop_uv(a->env.loop), &p->poll);
    p->extend.data = p->poll.data = p;
    a->proc = p;
    fetch(p);
    return 0;
}

void sky_cli_queue_process_stop(sky_cli_queue_app *a)
{
    proc *p = a->proc;
    if (p->child_running && !p->exited)
        uv_process_kill(&p->child, SIGTERM); /* then settle leaves the message */
    else if (!p->busy && !p->updating && !p->child_running)
        finish(p); /* waiting to poll again */
}

void sky_cli_queue_process_free(sky_cli_queue_app *a)
{
    proc *p = a->proc;
    if (p == NULL)
        return;
    forget_message(p);
    free(p);
    a->proc = NULL;
}
