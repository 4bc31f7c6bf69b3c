/*
 * One batch, many machines: `skyio batch --redis` and `skyio worker` against a real
 * redis-server and `skyio mock`, every one a real process on loopback. The faults: a worker
 * killed with -9, Redis stopped for 10 s (with its append-only file), a worker killed
 * during such an outage and started again on its journal, Redis back empty, and a Redis
 * URL that cannot work. Workers keep their journals in the test's folder.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "harness.h"
#include "harness_redis.h"
#include "skyio/batch_redis.h"
#include "skyio/json.h"

typedef struct dist_env {
    sky_test_mock m;
    sky_test_redis r;
    char dir[256], in[320], out[320];
} dist_env;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void write_input(const char *path, int n)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < n; i++)
        fprintf(f,
                "{\"custom_id\":\"req-%d\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
                "\"body\":{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
                "\"content\":\"hello %d\"}]}}\n",
                i, i);
    fclose(f);
}

static void env_open_mock(dist_env *e, int n, const char *const *args, int appendonly)
{
    sky_test_redis_options o;
    memset(e, 0, sizeof(*e));
    sky_test_redis_options_init(&o);
    o.appendonly = appendonly;
    sky_test_mock_start(&e->m, args);
    sky_test_redis_start(&e->r, &o);
    sky_test_tmpdir(e->dir, sizeof(e->dir));
    if (getenv("SKY_TEST_KEEP"))
        fprintf(stderr, "test files in %s\n", e->dir);
    snprintf(e->in, sizeof(e->in), "%s/in.jsonl", e->dir);
    snprintf(e->out, sizeof(e->out), "%s/out.jsonl", e->dir);
    write_input(e->in, n);
}

static void env_open(dist_env *e, int n, const char *ttft_ms, int appendonly)
{
    const char *args[] = {"--ttft-ms", ttft_ms, NULL};
    env_open_mock(e, n, args, appendonly);
}

static void env_close(dist_env *e)
{
    sky_test_redis_free(&e->r);
    if (getenv("SKY_TEST_KEEP") == NULL)
        sky_test_rmdir(e->dir);
    assert_int_equal(sky_test_mock_stop(&e->m), 0);
}

/* `skyio ARGS...` (NULL-terminated) against the mock, stderr into DIR/NAME.log. */
static pid_t spawn(const dist_env *e, const char *name, const char *const *args)
{
    char base[200], log[400];
    const char *argv[32];
    int n = 0;
    snprintf(base, sizeof(base), "%s/v1", e->m.base_url);
    snprintf(log, sizeof(log), "%s/%s.log", e->dir, name);
    argv[n++] = SKY_TEST_BIN;
    while (*args && n < 31)
        argv[n++] = *args++;
    argv[n] = NULL;
    pid_t parent = getpid(), pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sky_test_die_with_parent(parent);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        dup2(fd, 1);
        setenv("OPENAI_API_KEY", "test-key", 1);
        setenv("OPENAI_BASE_URL", base, 1);
        setenv("XDG_STATE_HOME", e->dir, 1);
        unsetenv("REDIS_PASSWORD");
        execv(SKY_TEST_BIN, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    return pid;
}

/* The exit code of @p pid, waiting up to @p timeout_ms (then kill -9: -1). */
static int wait_exit(pid_t pid, long timeout_ms)
{
    int status;
    for (long t = 0; t < timeout_ms; t += 20) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static void read_text(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
}

static void read_log(const dist_env *e, const char *name, char *out, size_t cap)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s.log", e->dir, name);
    read_text(path, out, cap);
}

/* Every custom_id @p prefix + first..first+n-1 exactly once in OUTPUT, each a success. */
static void assert_output_ids(const char *path, int n, const char *prefix, int first)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int lines = 0;
    json_t *seen = json_object();
    assert_non_null(f);
    while (getline(&line, &cap, f) > 0) {
        json_t *rec = json_loads(line, 0, NULL);
        assert_non_null(rec);
        const char *id = json_string_value(json_object_get(rec, "custom_id"));
        assert_non_null(id);
        assert_null(json_object_get(seen, id)); /* never twice */
        json_object_set_new(seen, id, json_true());
        assert_int_equal(json_integer_value(sky_json_path(rec, "response.status_code")), 200);
        json_decref(rec);
        lines++;
    }
    free(line);
    fclose(f);
    assert_int_equal(lines, n);
    for (int i = first; i < first + n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%s%d", prefix, i);
        assert_non_null(json_object_get(seen, id));
    }
    json_decref(seen);
}

/* Every req-0..n-1 exactly once in OUTPUT, each a success; nothing else. */
static void assert_output_once(const char *path, int n)
{
    assert_output_ids(path, n, "req-", 0);
}

static int64_t mock_chats(const sky_test_mock *m)
{
    json_t *stats = sky_test_mock_stats(m);
    int64_t n = (int64_t)json_integer_value(sky_json_path(stats, "endpoints.chat"));
    json_decref(stats);
    return n;
}

/* ---- the harness ---- */

/* AOF survives a stop, a wiped restart is empty, a password is asked. */
static void test_redis_harness(void **state)
{
    (void)state;
    sky_test_redis r;
    sky_test_redis_options o;
    sky_test_redis_options_init(&o);
    o.appendonly = 1;
    o.requirepass = "s3cret-pw";
    sky_test_redis_start(&r, &o);
    assert_int_equal(sky_test_redis_int(&r, "INCR k"), 1);
    sky_test_redis_stop(&r);
    assert_null(sky_test_redis_command(&r, "PING"));
    sky_test_redis_restart(&r, 0);
    assert_int_equal(sky_test_redis_int(&r, "INCR k"), 2);
    sky_test_redis_kill(&r);
    sky_test_redis_restart(&r, 1);
    assert_int_equal(sky_test_redis_int(&r, "DBSIZE"), 0);
    sky_test_redis_free(&r);
}

/* The URL's parts; the password from REDIS_PASSWORD when the URL has none; errors never
 * name the password. */
static void test_redis_url(void **state)
{
    (void)state;
    sky_redis_url u;
    sky_error err;
    sky_error_clear(&err);
    unsetenv("REDIS_PASSWORD");
    assert_int_equal(sky_redis_url_parse("redis://h.example:6380/3", &u, &err), 0);
    assert_string_equal(u.host, "h.example");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    assert_string_equal(u.password, "");
    assert_int_equal(sky_redis_url_parse("redis://alice:p%40ss:w@127.0.0.1", &u, &err), 0);
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.password, "p%40ss:w");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    setenv("REDIS_PASSWORD", "from-env", 1);
    assert_int_equal(sky_redis_url_parse("redis://localhost:1/0", &u, &err), 0);
    assert_string_equal(u.password, "from-env");
    assert_int_equal(sky_redis_url_parse("redis://:in-url@localhost/0", &u, &err), 0);
    assert_string_equal(u.password, "in-url");
    sky_redis_url_wipe(&u);
    assert_string_equal(u.password, "");
    unsetenv("REDIS_PASSWORD");
    const char *bad[] = {"http://h:1/0",
                         "redis://:pw@:1/0",
                         "redis://:secret-x@h:99999",
                         "redis://:secret-x@h:1/x",
                         "redis://h:port/0",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        sky_error_clear(&err);
        assert_int_equal(sky_redis_url_parse(bad[i], &u, &err), SKY_EINVAL);
        assert_non_null(strstr(err.message, "bad Redis URL"));
        assert_null(strstr(err.message, "secret-x"));
    }
}

/* Bad lines and duplicates become their records at load; a rerun sends nothing again. */
static void test_loader_records_and_rerun(void **state)
{
    (void)state;
    dist_env e;
    char log[4096];
    env_open(&e, 5, "0", 0);
    FILE *f = fopen(e.in, "a");
    assert_non_null(f);
    fputs("not json\n", f);
    fputs("{\"custom_id\":\"req-2\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
          "\"body\":{\"model\":\"m\",\"messages\":[]}}\n",
          f);
    fclose(f);
    const char *const bargs[] = {"batch", e.in,    "-o", e.out, "--redis",
                                 e.r.url, "--job", "rr", NULL};
    assert_int_equal(wait_exit(spawn(&e, "run1", bargs), 30000), 1); /* two failed records */
    assert_int_equal(mock_chats(&e.m), 5);
    read_text(e.out, log, sizeof(log));
    assert_non_null(strstr(log, "\"custom_id\":\"skyio-input-line-6\""));
    assert_non_null(strstr(log, "\"custom_id\":\"skyio-duplicate-line-7\""));
    /* the same command again: nothing loaded twice, nothing sent, OUTPUT as it was */
    assert_int_equal(wait_exit(spawn(&e, "run2", bargs), 30000), 0);
    assert_int_equal(mock_chats(&e.m), 5);
    read_log(&e, "run2", log, sizeof(log));
    assert_non_null(strstr(log, "0 results written"));
    assert_int_equal(sky_test_redis_int(&e.r, "HLEN {skyio:rr}:ids"), 7);
    assert_int_equal(sky_test_redis_int(&e.r, "XLEN {skyio:rr}:stream"), 5);
    env_close(&e);
}

/* ---- a store's hand-back across a lost connection (in this process) ---- */

typedef struct store_run {
    int opened, closed, close_err;
} store_run;

static void on_store_job_open(sky_redis_job *j, const sky_error *err, void *ud)
{
    (void)j;
    assert_null(err);
    ((store_run *)ud)->opened = 1;
}

static void on_store_closed(sky_batch_store *st, const sky_error *err, uint64_t unwritten, void *ud)
{
    store_run *r = ud;
    (void)st;
    r->closed = 1;
    r->close_err = err ? err->code : 0;
    assert_int_equal(unwritten, 0);
}

/* Run @p loop until *flag is set or @p ms have passed. */
static void run_until(uv_loop_t *loop, const int *flag, long ms)
{
    for (long t = 0; !*flag && t < ms; t += 5) {
        uv_run(loop, UV_RUN_NOWAIT);
        sleep_ms(5);
    }
}

static void store_append_n(sky_batch_store *st, int first, int n)
{
    for (int i = first; i < first + n; i++) {
        char id[32], line[96];
        snprintf(id, sizeof(id), "req-%d", i);
        int len = snprintf(line, sizeof(line), "{\"custom_id\":\"%s\",\"response\":{}}", id);
        sky_batch_record rec = {id, sky_span_make(line, (size_t)len), 0};
        assert_int_equal(st->append(st, &rec), 0);
    }
}

/*
 * A batch of results in flight when the connection goes, and more waiting behind it: the
 * batch goes back to the queue and everything is handed over once Redis is back; then the
 * store closes. (It counted the waiting ones twice: the count never came back to 0, the
 * close never ended, and a worker or loader with every result in never exited.)
 */
static void test_store_requeue_closes(void **state)
{
    (void)state;
    sky_test_redis r;
    sky_test_redis_options ro;
    sky_redis_url u;
    sky_redis_job_options o;
    sky_redis_job *j = NULL;
    sky_batch_store *st = NULL;
    store_run run = {0, 0, 0};
    sky_error err;
    uv_loop_t loop;
    sky_error_clear(&err);
    sky_test_redis_options_init(&ro);
    ro.appendonly = 1;
    sky_test_redis_start(&r, &ro);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(sky_redis_url_parse(r.url, &u, &err), 0);
    sky_redis_job_options_init(&o);
    o.url = &u;
    o.name = "rq";
    o.create = 1;
    assert_int_equal(sky_redis_job_open(&loop, &o, on_store_job_open, &run, &j, &err), 0);
    run_until(&loop, &run.opened, 10000);
    assert_true(run.opened);
    assert_int_equal(sky_redis_job_store_new(j, &st), 0);
    store_append_n(st, 0, 130); /* past a batch's threshold: it goes at once */
    store_append_n(st, 130, 5); /* these wait behind it */
    sky_test_redis_stop(&r);    /* the batch's reply is lost with the connection */
    for (int t = 0; t < 40; t++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        sleep_ms(5);
    }
    sky_test_redis_restart(&r, 0);
    st->close(st, on_store_closed, &run);
    run_until(&loop, &run.closed, 20000);
    assert_true(run.closed);
    assert_int_equal(run.close_err, 0);
    assert_int_equal(sky_test_redis_int(&r, "HLEN {skyio:rq}:done"), 135);
    sky_redis_job_close(j);
    for (int t = 0; t < 400 && uv_loop_alive(&loop); t++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        sleep_ms(5);
    }
    assert_int_equal(uv_loop_close(&loop), 0);
    sky_redis_url_wipe(&u);
    sky_test_redis_free(&r);
}

/* ---- the faults ---- */

/*
 * A loader and three workers; one worker is killed with -9 mid-job. Its requests are claimed
 * by the others after --claim-idle: every custom_id is in OUTPUT exactly once, and what was
 * sent twice is bounded by what the dead worker held (its window: 2 x concurrency).
 */
static void test_kill9_worker(void **state)
{
    (void)state;
    dist_env e;
    const int n = 600;
    env_open(&e, n, "100", 0);
    const char *const wargs[] = {"worker",        "--redis", e.r.url,        "--job", "k9",
                                 "--concurrency", "8",       "--claim-idle", "3000",  NULL};
    pid_t w[3];
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "worker%d", i);
        w[i] = spawn(&e, name, wargs);
    }
    const char *const bargs[] = {"batch",        e.in,    "-o", e.out,           "--redis",
                                 e.r.url,        "--job", "k9", "--concurrency", "8",
                                 "--claim-idle", "3000",  NULL};
    pid_t loader = spawn(&e, "loader", bargs);
    assert_true(sky_test_wait_stat(NULL, &e.m, "endpoints.chat", 150, 30000) >= 150);
    kill(w[0], SIGKILL);
    assert_int_equal(wait_exit(w[0], 5000), 128 + SIGKILL);
    assert_int_equal(wait_exit(loader, 60000), 0);
    for (int i = 1; i < 3; i++)
        assert_int_equal(wait_exit(w[i], 20000), 0);
    assert_output_once(e.out, n);
    int64_t sent = mock_chats(&e.m);
    assert_true(sent >= n);
    assert_true(sent <= n + 2 * 8 + 64); /* the dead worker's window and read-ahead */
    env_close(&e);
}

/*
 * Redis stopped for 10 s mid-job and started again from its append-only file: the worker
 * finishes what is in flight, keeps the results, reconnects and hands them over; the loader
 * collects everything. Nothing is lost or written twice.
 */
static void test_redis_outage(void **state)
{
    (void)state;
    dist_env e;
    const int n = 400;
    env_open(&e, n, "50", 1);
    const char *const wargs[] = {"worker", "--redis",       e.r.url, "--job",
                                 "out",    "--concurrency", "8",     NULL};
    const char *const bargs[] = {
        "batch", e.in, "-o", e.out, "--redis", e.r.url, "--job", "out", "--concurrency", "8", NULL};
    pid_t loader = spawn(&e, "loader", bargs);
    pid_t worker = spawn(&e, "worker", wargs);
    assert_true(sky_test_wait_stat(NULL, &e.m, "endpoints.chat", 100, 30000) >= 100);
    sky_test_redis_stop(&e.r);
    int64_t during = mock_chats(&e.m);
    sleep_ms(10000);
    /* no new work was taken while Redis was away: at most what was in hand */
    assert_true(mock_chats(&e.m) <= during + 2 * (2 * 8 + 64));
    sky_test_redis_restart(&e.r, 0);
    assert_int_equal(wait_exit(loader, 60000), 0);
    assert_int_equal(wait_exit(worker, 20000), 0);
    assert_output_once(e.out, n);
    assert_int_equal(mock_chats(&e.m), n); /* nothing sent twice */
    env_close(&e);
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, c;
    while (f && (c = getc(f)) != EOF)
        n += c == '\n';
    if (f)
        fclose(f);
    return n;
}

/* Until the worker @p pid (consumer hostname-pid) holds entries of job @p job: 1, or 0. */
static int wait_worker_holds(const dist_env *e, const char *job, pid_t pid)
{
    char host[64], consumer[96];
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "worker");
    host[sizeof(host) - 1] = '\0';
    snprintf(consumer, sizeof(consumer), "%s-%ld", host, (long)pid);
    for (int t = 0; t < 600; t++) {
        redisReply *r = sky_test_redis_command(&e->r, "XPENDING {skyio:%s}:stream workers", job);
        int held = 0;
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
            r->element[3]->type == REDIS_REPLY_ARRAY)
            for (size_t i = 0; i < r->element[3]->elements; i++) {
                const redisReply *c = r->element[3]->element[i];
                if (c->type == REDIS_REPLY_ARRAY && c->elements == 2 &&
                    strcmp(c->element[0]->str, consumer) == 0)
                    held = 1;
            }
        if (r)
            freeReplyObject(r);
        if (held)
            return 1;
        sleep_ms(50);
    }
    return 0;
}

/* Redis is away: wait until the worker's journal holds results and nothing more is sent. */
static int wait_journaled(const dist_env *e, const char *journal)
{
    int64_t before = -1;
    for (int t = 0; t < 150; t++) {
        int64_t now = mock_chats(&e->m);
        if (count_lines(journal) > 0 && now == before)
            return count_lines(journal);
        before = now;
        sleep_ms(t < 5 ? 200 : 1000);
    }
    return 0;
}

/*
 * A worker killed with -9 during an outage keeps what it had done in its journal; started
 * again on the same journal once Redis is back, it hands those results over before it reads
 * anything, so nobody sends them again: every request was sent exactly once.
 */
static void test_outage_journal(void **state)
{
    (void)state;
    dist_env e;
    const int n = 300;
    char journal[400];
    env_open(&e, n, "50", 1);
    snprintf(journal, sizeof(journal), "%s/worker.journal", e.dir);
    const char *const wargs[] = {"worker",        "--redis", e.r.url,     "--job", "oj",
                                 "--concurrency", "8",       "--journal", journal, NULL};
    const char *const bargs[] = {
        "batch", e.in, "-o", e.out, "--redis", e.r.url, "--job", "oj", "--concurrency", "8", NULL};
    pid_t loader = spawn(&e, "loader", bargs);
    pid_t worker = spawn(&e, "worker", wargs);
    assert_true(sky_test_wait_stat(NULL, &e.m, "endpoints.chat", 80, 30000) >= 80);
    /* under load the loader may do the first 80 alone: the worker must hold some too */
    assert_true(wait_worker_holds(&e, "oj", worker));
    sky_test_redis_stop(&e.r);
    assert_true(wait_journaled(&e, journal) > 0);
    kill(worker, SIGKILL);
    assert_int_equal(wait_exit(worker, 5000), 128 + SIGKILL);
    sky_test_redis_restart(&e.r, 0);
    worker = spawn(&e, "worker2", wargs);
    /* what the killed worker held but never sent waits --claim-idle (60 s) for a taker */
    assert_int_equal(wait_exit(loader, 120000), 0);
    assert_int_equal(wait_exit(worker, 20000), 0);
    assert_output_once(e.out, n);
    assert_int_equal(mock_chats(&e.m), n);       /* the journaled ones were not sent again */
    assert_int_equal(access(journal, F_OK), -1); /* all handed over: the journal is gone */
    env_close(&e);
}

/*
 * --text with --redis: the loader makes a chat request of each prompt line (custom_id
 * line-N), so a worker started without --text or --model sends them as any other.
 */
static void test_text_mode(void **state)
{
    (void)state;
    dist_env e;
    const int n = 40;
    env_open(&e, 0, "10", 0);
    FILE *f = fopen(e.in, "w");
    assert_non_null(f);
    for (int i = 1; i <= n; i++)
        fprintf(f, "Say \"%d\" in words, please.\n", i);
    fclose(f);
    const char *const wargs[] = {"worker", "--redis", e.r.url, "--job", "txt", NULL};
    const char *const bargs[] = {"batch",       e.in,       "-o",        e.out,    "--redis",
                                 e.r.url,       "--job",    "txt",       "--text", "--model",
                                 "gpt-4o-mini", "--system", "Be brief.", NULL};
    pid_t worker = spawn(&e, "worker", wargs);
    pid_t loader = spawn(&e, "loader", bargs);
    assert_int_equal(wait_exit(loader, 30000), 0);
    assert_int_equal(wait_exit(worker, 20000), 0);
    assert_output_ids(e.out, n, "line-", 1);
    assert_int_equal(mock_chats(&e.m), n);
    const char *const bad[] = {"batch", e.in, "--redis", e.r.url, "--job", "t2", "--text", NULL};
    assert_int_equal(wait_exit(spawn(&e, "nomodel", bad), 10000), 2); /* --text needs --model */
    env_close(&e);
}

/*
 * A limit the provider announces (x-ratelimit-limit-requests) becomes the shared bucket's
 * ceiling, for every worker; a lower --rpm stays the ceiling.
 */
static void test_announced_limit_shared(void **state)
{
    (void)state;
    dist_env e;
    const char *const margs[] = {"--ttft-ms", "10", "--rpm", "1200", NULL};
    char field[300];
    env_open_mock(&e, 20, margs, 0);
    snprintf(field, sizeof(field), "%s/v1:max", e.m.base_url);
    const char *const bargs[] = {"batch", e.in,    "-o", e.out, "--redis",
                                 e.r.url, "--job", "hd", NULL};
    assert_int_equal(wait_exit(spawn(&e, "loader", bargs), 30000), 0);
    assert_output_once(e.out, 20);
    redisReply *r = sky_test_redis_command(&e.r, "HGET {skyio:hd}:rate %s", field);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_true(strtod(r->str, NULL) == 1200.0);
    freeReplyObject(r);
    const char *const given[] = {"batch", e.in,  "-o",    e.out, "--redis", e.r.url,
                                 "--job", "hd2", "--rpm", "900", NULL};
    assert_int_equal(wait_exit(spawn(&e, "loader2", given), 30000), 0);
    r = sky_test_redis_command(&e.r, "HGET {skyio:hd2}:rate %s", field);
    assert_non_null(r);
    assert_true(r->type == REDIS_REPLY_STRING && strtod(r->str, NULL) == 900.0);
    freeReplyObject(r);
    env_close(&e);
}

/*
 * Redis back empty (the job's state gone): the loader and the worker stop with a clear
 * error (exit 3), and nothing more is sent.
 */
static void test_redis_back_empty(void **state)
{
    (void)state;
    dist_env e;
    char log[8192];
    env_open(&e, 400, "50", 0);
    const char *const wargs[] = {"worker", "--redis",       e.r.url, "--job",
                                 "gone",   "--concurrency", "4",     NULL};
    const char *const bargs[] = {"batch",         e.in,    "-o",    e.out,
                                 "--redis",       e.r.url, "--job", "gone",
                                 "--concurrency", "4",     NULL};
    pid_t loader = spawn(&e, "loader", bargs);
    pid_t worker = spawn(&e, "worker", wargs);
    assert_true(sky_test_wait_stat(NULL, &e.m, "endpoints.chat", 50, 30000) >= 50);
    sky_test_redis_kill(&e.r);
    sky_test_redis_restart(&e.r, 1);
    assert_int_equal(wait_exit(loader, 30000), 3);
    assert_int_equal(wait_exit(worker, 30000), 3);
    int64_t sent = mock_chats(&e.m);
    assert_true(sent < 400);
    read_log(&e, "worker", log, sizeof(log));
    assert_non_null(strstr(log, "state is gone"));
    read_log(&e, "loader", log, sizeof(log));
    assert_non_null(strstr(log, "state is gone"));
    /* the job was not made again behind the user's back */
    assert_int_equal(sky_test_redis_int(&e.r, "DBSIZE"), 0);
    sleep_ms(300);
    assert_int_equal(mock_chats(&e.m), sent);
    env_close(&e);
}

/* A URL that cannot work: exit 3 with the cause, and never the password. */
static void test_bad_redis(void **state)
{
    (void)state;
    dist_env e;
    char url[256], log[4096];
    sky_test_redis pw;
    sky_test_redis_options o;
    env_open(&e, 1, "0", 0);
    sky_test_redis_options_init(&o);
    o.requirepass = "right-pass";
    sky_test_redis_start(&pw, &o);
    struct {
        const char *name, *pre, *post, *want;
        int port;
    } cases[] = {
        {"badurl", "http://127.0.0.1:", "/0", "bad Redis URL", e.r.port},
        {"badport", "redis://127.0.0.1:", "0000/0", "bad Redis URL", e.r.port},
        {"wrongpw", "redis://:wrong-secret-pw@127.0.0.1:", "/0", "refused the credentials",
         pw.port},
        {"nopw", "redis://127.0.0.1:", "/0", "NOAUTH", pw.port},
        {"notredis", "redis://127.0.0.1:", "/0", "not a Redis server", e.m.port},
        {"refused", "redis://127.0.0.1:", "/0", "cannot connect", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(url, sizeof(url), "%s%d%s", cases[i].pre, cases[i].port, cases[i].post);
        const char *const args[] = {"worker", "--redis", url, "--job", "x", NULL};
        assert_int_equal(wait_exit(spawn(&e, cases[i].name, args), 20000), 3);
        read_log(&e, cases[i].name, log, sizeof(log));
        if (strstr(log, cases[i].want) == NULL)
            fail_msg("%s: want '%s' in: %s", cases[i].name, cases[i].want, log);
        assert_null(strstr(log, "wrong-secret-pw"));
    }
    sky_test_redis_free(&pw);
    env_close(&e);
}

/* The password is scrubbed from argv (what `ps` shows); job status and delete. */
/* One figure of INFO commandstats: @p what ("calls", "rejected_calls") of @p cmd; 0 when the
 * command was never called. */
static long long cmdstat(const dist_env *e, const char *cmd, const char *what)
{
    char key[64], field[64];
    long long v = 0;
    redisReply *r = sky_test_redis_command(&e->r, "INFO commandstats");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(key, sizeof(key), "cmdstat_%s:", cmd);
    snprintf(field, sizeof(field), "%s=", what);
    const char *line = strstr(r->str, key);
    const char *end = line ? strchr(line, '\n') : NULL;
    const char *at = line ? strstr(line, field) : NULL;
    if (at && (end == NULL || at < end) && (at == line + strlen(key) || at[-1] == ','))
        v = strtoll(at + strlen(field), NULL, 10);
    freeReplyObject(r);
    return v;
}

static void test_argv_and_job_commands(void **state)
{
    (void)state;
    dist_env e;
    char url[256], path[64], cmdline[4096], log[4096];
    sky_test_redis_options o;
    sky_test_redis_options_init(&o);
    o.requirepass = "pw-in-url";
    env_open(&e, 20, "0", 0);
    sky_test_redis_free(&e.r);
    sky_test_redis_start(&e.r, &o);
    snprintf(url, sizeof(url), "redis://:pw-in-url@127.0.0.1:%d/0", e.r.port);
    const char *const wargs[] = {"worker", "--redis", url, "--job", "st", NULL};
    pid_t worker = spawn(&e, "worker", wargs);
    sleep_ms(500); /* it waits for the job: read what ps would show */
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)worker);
    FILE *f = fopen(path, "r");
    size_t got = f ? fread(cmdline, 1, sizeof(cmdline) - 1, f) : 0;
    if (f)
        fclose(f);
    for (size_t i = 0; i < got; i++)
        cmdline[i] = cmdline[i] ? cmdline[i] : ' '; /* arguments end in NULs */
    cmdline[got] = '\0';
    assert_non_null(strstr(cmdline, "worker"));
    assert_null(strstr(cmdline, "pw-in-url"));
    const char *const bargs[] = {"batch", e.in, "-o", e.out, "--redis", url, "--job", "st", NULL};
    assert_int_equal(wait_exit(spawn(&e, "loader", bargs), 30000), 0);
    assert_int_equal(wait_exit(worker, 20000), 0);
    assert_output_once(e.out, 20);
    /* The worker's wait for its job and the collector's for its first result (its first page
     * is read before the first chunk is loaded) were blocking reads, and the second
     * connection they use authenticated as the first: none refused. */
    assert_true(cmdstat(&e, "xread", "calls") >= 2);
    assert_int_equal(cmdstat(&e, "xread", "rejected_calls"), 0);
    assert_int_equal(cmdstat(&e, "xread", "failed_calls"), 0);
    const char *const sargs[] = {"job", "status", "--redis", url, "--job", "st", "--json", NULL};
    assert_int_equal(wait_exit(spawn(&e, "status", sargs), 10000), 0);
    read_log(&e, "status", log, sizeof(log));
    json_t *st = json_loads(log, 0, NULL);
    assert_non_null(st);
    assert_int_equal(json_integer_value(json_object_get(st, "done")), 20);
    assert_int_equal(json_integer_value(json_object_get(st, "queued")), 0);
    assert_true(json_is_true(json_object_get(st, "load_done")));
    json_decref(st);
    const char *const dargs[] = {"job", "delete", "--redis", url, "--job", "st", NULL};
    assert_int_equal(wait_exit(spawn(&e, "delete", dargs), 10000), 0);
    assert_int_equal(wait_exit(spawn(&e, "status2", sargs), 10000), 2);
    env_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_harness),
        cmocka_unit_test(test_redis_url),
        cmocka_unit_test(test_loader_records_and_rerun),
        cmocka_unit_test(test_store_requeue_closes),
        cmocka_unit_test(test_bad_redis),
        cmocka_unit_test(test_argv_and_job_commands),
        cmocka_unit_test(test_kill9_worker),
        cmocka_unit_test(test_redis_back_empty),
        cmocka_unit_test(test_redis_outage),
        cmocka_unit_test(test_outage_journal),
        cmocka_unit_test(test_text_mode),
        cmocka_unit_test(test_announced_limit_shared),
    };
    if (getenv("SKY_TEST_FILTER")) /* e.g. "*outage*": loop one case while chasing a flake */
        cmocka_set_test_filter(getenv("SKY_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
