/*
 * The admin API end to end: `skyio serve --state FILE --admin-key-env NAME` in front of
 * `skyio mock`. A key made with the master key is answered once, works for a chat, is
 * listed without any secret, is refused once revoked, and outlives a restart on the same
 * state file. A wrong or missing master key changes nothing; without --admin-key-env the
 * routes are 404. Neither the master key nor a made key appears in serve's output. The same
 * story runs on `--postgres` against a real PostgreSQL (initdb + pg_ctl in a temp folder).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "harness_postgres.h"
#include "harness_serve.h"
#include "skyio/json.h"
#include "harness_group.h"

#define MASTER_KEY "sk-master-canary-5d1e80b2"

typedef sky_test_serve serve;

/* Where serve keeps its keys: "--state FILE" or "--postgres URL". */
typedef struct store_arg {
    const char *name; /* prefix of the run's log folders */
    const char *flag;
    char value[512];
} store_arg;

static struct {
    sky_test_mock mock;
    sky_test_pg pg;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
} env;

static void master_in_env(void)
{
    setenv("SKY_TEST_MASTER", MASTER_KEY, 1);
}

/* Start serve on the store, its logs in the folder @p name; @p admin: the admin API. */
static void start_serve(serve *s, const store_arg *st, const char *name, int admin)
{
    char config[512];
    snprintf(config, sizeof(config), "%s/gateway.json", env.dir);
    const char *args[] = {"--config",
                          config,
                          st->flag,
                          st->value,
                          "--access-log",
                          "-",
                          admin ? "--admin-key-env" : NULL,
                          "SKY_TEST_MASTER",
                          NULL};
    sky_test_serve_start_in(s, env.dir, name, args, master_in_env);
}

static int setup(void **state)
{
    (void)state;
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    sky_test_mock_start(&env.mock, NULL);
    char config[512];
    sky_test_gateway_config(
        config, sizeof(config), env.dir,
        "{\"models\": {\"gpt-4o\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}],"
        " \"gpt-4o-mini\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]}}\n",
        env.mock.base_url, env.mock.base_url);
    sky_test_client_open(&env.loop, &env.client);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (env.pg.running)
        sky_test_pg_free(&env.pg);
    sky_test_client_close(env.loop, env.client);
    sky_test_mock_stop(&env.mock);
    sky_test_rmdir(env.dir);
    return 0;
}

/* @p method @p path on @p s with "Authorization: Bearer @p key" (NULL: none). */
static void call(const serve *s, const char *method, const char *path, const char *key,
                 const char *body, sky_test_result *out)
{
    sky_test_serve_call(s, env.loop, env.client, method, path, body, key, NULL, out);
    assert_int_equal(out->err_code, 0);
}

static int status_of(const serve *s, const char *method, const char *path, const char *key,
                     const char *body)
{
    sky_test_result r;
    call(s, method, path, key, body, &r);
    int st = r.status;
    if (st >= 400) { /* every error is OpenAI's shape */
        json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
        assert_non_null(json_string_value(sky_json_path(j, "error.message")));
        json_decref(j);
    }
    sky_test_result_free(&r);
    return st;
}

static int chat(const serve *s, const char *key, const char *model)
{
    char body[160];
    snprintf(body, sizeof(body),
             "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", model);
    return status_of(s, "POST", "/v1/chat/completions", key, body);
}

/* POST /admin/keys as the master: the new key into @p key_out. */
static void create(const serve *s, const char *body, char *key_out, size_t len)
{
    sky_test_result r;
    call(s, "POST", "/admin/keys", MASTER_KEY, body, &r);
    assert_int_equal(r.status, 201);
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    const char *key = json_string_value(json_object_get(j, "key"));
    assert_non_null(key);
    assert_int_equal(strlen(key), strlen("sk-skyio-") + 32);
    assert_memory_equal(key, "sk-skyio-", 9);
    snprintf(key_out, len, "%s", key);
    json_decref(j);
    sky_test_result_free(&r);
}

/* GET /admin/keys: its body (free it); no key or hash in it. */
static json_t *listing(const serve *s, const char *const *secrets)
{
    sky_test_result r;
    call(s, "GET", "/admin/keys", MASTER_KEY, NULL, &r);
    assert_int_equal(r.status, 200);
    for (size_t i = 0; secrets[i]; i++)
        assert_null(strstr(r.body, secrets[i]));
    assert_null(strstr(r.body, "\"key\""));
    assert_null(strstr(r.body, "hash"));
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    assert_non_null(j);
    sky_test_result_free(&r);
    return j;
}

static const json_t *listed(const json_t *list, const char *name)
{
    const json_t *data = json_object_get(list, "data");
    for (size_t i = 0; i < json_array_size(data); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(data, i), "name")), name) == 0)
            return json_array_get(data, i);
    return NULL;
}

/* No secret in what serve wrote (its access log is on stderr). */
static void assert_log_clean(const char *name, const char *const *secrets)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s", env.dir, name);
    assert_true(sky_test_file_holds(dir, "stdout.log", "listening"));
    assert_true(sky_test_file_holds(dir, "stderr.log", "gpt-4o")); /* the access log */
    for (size_t i = 0; secrets[i]; i++) {
        assert_false(sky_test_file_holds(dir, "stderr.log", secrets[i]));
        assert_false(sky_test_file_holds(dir, "stdout.log", secrets[i]));
    }
    assert_false(sky_test_file_holds(dir, "stderr.log", MASTER_KEY));
    assert_false(sky_test_file_holds(dir, "stdout.log", MASTER_KEY));
}

/* The folder of run @p what on store @p st. */
static const char *run_dir(const store_arg *st, const char *what, char *out, size_t len)
{
    snprintf(out, len, "%s-%s", st->name, what);
    return out;
}

static void keys_lifecycle(const store_arg *st)
{
    serve s;
    char team[80], ci[80], first[64], second[64], plain[64];
    run_dir(st, "first", first, sizeof(first));
    run_dir(st, "second", second, sizeof(second));
    run_dir(st, "plain", plain, sizeof(plain));
    start_serve(&s, st, first, 1);

    /* no master key, a wrong one, or a made key: refused, and nothing is made */
    const char *body = "{\"name\":\"team-a\",\"models\":[\"gpt-4o\"],\"rpm\":600,\"tpm\":90000,"
                       "\"daily_tokens\":500000,\"daily_cost\":12.5}";
    assert_int_equal(status_of(&s, "POST", "/admin/keys", NULL, body), 401);
    assert_int_equal(status_of(&s, "POST", "/admin/keys", "sk-master-wrong", body), 401);
    assert_int_equal(status_of(&s, "GET", "/admin/keys", "sk-master-wrong", NULL), 401);
    const char *none[] = {NULL};
    json_t *l = listing(&s, none);
    assert_int_equal(json_array_size(json_object_get(l, "data")), 0);
    json_decref(l);
    /* the gateway asks for a key now that it can make them */
    assert_int_equal(chat(&s, NULL, "gpt-4o"), 401);

    create(&s, body, team, sizeof(team));
    create(&s, "{\"name\":\"ci\"}", ci, sizeof(ci));
    assert_string_not_equal(team, ci);
    assert_int_equal(status_of(&s, "POST", "/admin/keys", MASTER_KEY, body), 409);
    assert_int_equal(status_of(&s, "POST", "/admin/keys", MASTER_KEY, "{\"name\":\"a b\"}"), 400);
    assert_int_equal(
        status_of(&s, "POST", "/admin/keys", MASTER_KEY, "{\"name\":\"x\",\"daily_cost\":-1}"),
        400);
    assert_int_equal(status_of(&s, "POST", "/admin/keys", team, "{\"name\":\"x\"}"), 401);

    assert_int_equal(chat(&s, team, "gpt-4o"), 200);
    assert_int_equal(chat(&s, team, "gpt-4o-mini"), 403); /* not among its models */
    /* a key made with a daily cap is held to it: the first call takes it past, the next is
     * refused until midnight UTC */
    char tiny[80];
    create(&s, "{\"name\":\"tiny\",\"daily_tokens\":1}", tiny, sizeof(tiny));
    assert_int_equal(chat(&s, tiny, "gpt-4o"), 200);
    assert_int_equal(chat(&s, tiny, "gpt-4o"), 429);
    assert_int_equal(chat(&s, ci, "gpt-4o-mini"), 200);
    assert_int_equal(chat(&s, "sk-skyio-00000000000000000000000000000000", "gpt-4o"), 401);

    const char *secrets[] = {team, ci, tiny, NULL};
    l = listing(&s, secrets);
    const json_t *t = listed(l, "team-a");
    assert_non_null(t);
    assert_string_equal(json_string_value(json_array_get(json_object_get(t, "models"), 0)),
                        "gpt-4o");
    assert_int_equal((int)json_number_value(json_object_get(t, "rpm")), 600);
    assert_int_equal((int)json_number_value(json_object_get(t, "tpm")), 90000);
    assert_int_equal((int)json_number_value(json_object_get(t, "daily_tokens")), 500000);
    assert_true(json_number_value(json_object_get(t, "daily_cost")) == 12.5);
    assert_true(json_integer_value(json_object_get(t, "created")) > 1700000000);
    assert_non_null(listed(l, "ci"));
    json_decref(l);

    /* revoked: refused at once; a wrong master key revokes nothing */
    assert_int_equal(status_of(&s, "DELETE", "/admin/keys/ci", "sk-master-wrong", NULL), 401);
    assert_int_equal(chat(&s, ci, "gpt-4o"), 200);
    assert_int_equal(status_of(&s, "DELETE", "/admin/keys/ci", MASTER_KEY, NULL), 200);
    assert_int_equal(status_of(&s, "DELETE", "/admin/keys/ci", MASTER_KEY, NULL), 404);
    assert_int_equal(chat(&s, ci, "gpt-4o"), 401);
    assert_int_equal(chat(&s, team, "gpt-4o"), 200);
    sky_test_serve_stop_ok(&s);
    assert_log_clean(first, secrets);

    /* a restart on the same store: the made key works, the revoked one does not */
    start_serve(&s, st, second, 1);
    assert_int_equal(chat(&s, team, "gpt-4o"), 200);
    assert_int_equal(chat(&s, tiny, "gpt-4o"), 429); /* its use today was read back */
    assert_int_equal(chat(&s, ci, "gpt-4o"), 401);
    l = listing(&s, secrets);
    assert_non_null(listed(l, "team-a"));
    assert_null(listed(l, "ci"));
    json_decref(l);
    sky_test_serve_stop_ok(&s);
    assert_log_clean(second, secrets);

    /* without --admin-key-env: no admin API, whatever key is presented */
    start_serve(&s, st, plain, 0);
    assert_int_equal(status_of(&s, "GET", "/admin/keys", MASTER_KEY, NULL), 404);
    assert_int_equal(status_of(&s, "POST", "/admin/keys", MASTER_KEY, body), 404);
    sky_test_serve_stop_ok(&s);
}

static void admin_keys_on_sqlite(void **state)
{
    (void)state;
    store_arg st = {.name = "sqlite", .flag = "--state"};
    snprintf(st.value, sizeof(st.value), "%s/state.db", env.dir);
    keys_lifecycle(&st);
}

static void admin_keys_on_postgres(void **state)
{
    (void)state;
    if (!sky_test_pg_available()) {
        print_message("postgres: initdb and pg_ctl not installed; skipped\n");
        skip();
    }
    sky_test_pg_start(&env.pg);
    store_arg st = {.name = "postgres", .flag = "--postgres"};
    snprintf(st.value, sizeof(st.value), "%s", env.pg.url);
    keys_lifecycle(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(admin_keys_on_sqlite),
        cmocka_unit_test(admin_keys_on_postgres),
    };
    return sky_test_run_group(tests, setup, teardown);
}
