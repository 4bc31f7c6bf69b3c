/*
 * A paid request is sent once: kill -9 trials of `skyio batch` at a high rate against a
 * mock with faults, each followed by a rerun to the end. Per trial: records lost and
 * duplicated (both must be 0), and requests answered twice (resent) against the bound the
 * README states: what was on the wire at the kill (at most --concurrency) plus the
 * answered results the journal may hold in memory (256).
 *
 * SKY_CRASH_TRIALS sets the number of trials (10 by default; bench/crash runs 50),
 * SKY_CRASH_LINES the lines of the input (1,000; bench/crash: 3,000) and SKY_CRASH_SEED
 * the seed of the kill moments (printed, to replay a run).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "skyio/json.h"

#define CONCURRENCY 64
#define JOURNAL_BACKLOG 256
#define BOUND (CONCURRENCY + JOURNAL_BACKLOG)

static int g_lines = 1000; /* SKY_CRASH_LINES */

static void write_input(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < g_lines; i++)
        fprintf(f,
                "{\"custom_id\":\"c-%d\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
                "\"body\":{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
                "\"q %d\"}],\"max_tokens\":4}}\n",
                i, i);
    fclose(f);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

static pid_t spawn_batch(const sky_test_mock *m, const char *in, const char *out)
{
    char base[300];
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 2);
        snprintf(base, sizeof(base), "%s/v1", m->base_url);
        setenv("OPENAI_BASE_URL", base, 1);
        unsetenv("OPENAI_API_KEY");
        execl(SKY_TEST_BIN, SKY_TEST_BIN, "batch", in, "-o", out, "--rpm", "60000", "--concurrency",
              "64", "--max-retries", "20", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* 200 replies the mock sent, once the count is still (the kill's last requests land). */
static int64_t settled_200s(const sky_test_mock *m)
{
    int64_t last = -1;
    for (int i = 0; i < 100; i++) {
        json_t *st = sky_test_mock_stats(m);
        int64_t n = (int64_t)json_integer_value(sky_json_path(st, "responses.200"));
        json_decref(st);
        if (n == last)
            return n;
        last = n;
        sleep_ms(50);
    }
    return last;
}

typedef struct outcome {
    int lines, ok, dups, bad;
    json_t *ids;
} outcome;

static void read_outcome(const char *path, outcome *o)
{
    char line[16384];
    memset(o, 0, sizeof(*o));
    o->ids = json_object();
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f)) {
        json_t *j = NULL;
        o->lines++;
        if (sky_json_parse(sky_span_cstr(line), &j, NULL) < 0) {
            o->bad++;
            continue;
        }
        const char *id = sky_json_str(j, "custom_id", "");
        if (json_object_get(o->ids, id))
            o->dups++;
        json_object_set_new(o->ids, id, json_true());
        o->ok += json_integer_value(sky_json_path(j, "response.status_code")) == 200;
        json_decref(j);
    }
    fclose(f);
}

typedef struct trial {
    long kill_ms;
    int on_disk; /* records when killed */
    int lost, dups, bad;
    int64_t resent;
} trial;

/* One kill -9 at a random moment after the first results, then a rerun to the end. */
static void run_trial(const char *dir, const char *in, trial *t)
{
    static const char *const margs[] = {"--fault-503", "0.02", "--fault-reset", "0.01", NULL};
    sky_test_mock m;
    char out[300], cmd[2048];
    outcome o;
    memset(&m, 0, sizeof(m));
    memset(t, 0, sizeof(*t));
    sky_test_mock_start(&m, margs);
    snprintf(out, sizeof(out), "%s/out.jsonl", dir);
    unlink(out);
    pid_t pid = spawn_batch(&m, in, out);
    for (int i = 0; i < 3000 && file_size(out) == 0; i++)
        sleep_ms(2);
    t->kill_ms = rand() % (g_lines / 6 + 1); /* within the run, at ~2,000 requests a second */
    sleep_ms(t->kill_ms);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    read_outcome(out, &o);
    t->on_disk = o.lines;
    json_decref(o.ids);
    snprintf(cmd, sizeof(cmd),
             "OPENAI_BASE_URL=%s/v1 OPENAI_API_KEY= %s batch %s -o %s --max-retries 20 "
             "2>/dev/null",
             m.base_url, SKY_TEST_BIN, in, out);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    read_outcome(out, &o);
    t->lost = g_lines - (int)json_object_size(o.ids);
    t->dups = o.dups;
    t->bad = o.bad;
    /* every request ends in one 200 (20 retries outlast 3% faults): more are resends */
    t->resent = settled_200s(&m) - g_lines;
    assert_int_equal(o.ok, g_lines);
    json_decref(o.ids);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void test_resends_bounded_across_kill(void **state)
{
    char dir[256], in[300];
    const char *env_trials = getenv("SKY_CRASH_TRIALS");
    const char *env_seed = getenv("SKY_CRASH_SEED");
    const char *env_lines = getenv("SKY_CRASH_LINES");
    int trials = env_trials ? atoi(env_trials) : 10;
    if (env_lines && atoi(env_lines) > 0)
        g_lines = atoi(env_lines);
    unsigned seed = env_seed ? (unsigned)strtoul(env_seed, NULL, 10)
                             : (unsigned)time(NULL) ^ (unsigned)getpid();
    int over = 0, lost = 0, dups = 0;
    int64_t worst = 0;
    (void)state;
    srand(seed);
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(in, sizeof(in), "%s/in.jsonl", dir);
    write_input(in);
    printf("kill -9 trials: %d of %d lines, --rpm 60000 --concurrency %d, 2%% 503s, 1%% resets; "
           "seed %u; bound %d resent\n",
           trials, g_lines, CONCURRENCY, seed, BOUND);
    printf("trial  kill_ms  on_disk  lost  dup  torn  resent  within\n");
    for (int i = 0; i < trials; i++) {
        trial t;
        run_trial(dir, in, &t);
        int ok = t.resent >= 0 && t.resent <= BOUND;
        printf("%5d  %7ld  %7d  %4d  %3d  %4d  %6lld  %s\n", i + 1, t.kill_ms, t.on_disk, t.lost,
               t.dups, t.bad, (long long)t.resent, ok ? "yes" : "NO");
        fflush(stdout);
        over += !ok;
        lost += t.lost;
        dups += t.dups + t.bad;
        worst = t.resent > worst ? t.resent : worst;
    }
    printf("lost %d, duplicated %d, worst resent %lld (bound %d), trials over the bound %d\n", lost,
           dups, (long long)worst, BOUND, over);
    sky_test_rmdir(dir);
    assert_int_equal(lost, 0);
    assert_int_equal(dups, 0);
    assert_int_equal(over, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resends_bounded_across_kill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
