/*
 * The sample configs `skyio serve --help` and the README show (issue 17, "Done when": the
 * help and a README section with a sample config and an OpenAI SDK snippet) are taken as
 * they are written, with only their placeholders filled (a key's SHA-256) and every
 * deployment's base URL pointed at a local `skyio mock` (no traffic off the machine): each
 * starts `skyio serve`, which lists the models and answers a chat with the sample's key.
 * The README's JavaScript snippet runs under node with the official OpenAI SDK against the
 * README's config (its port changed to the gateway's), when node and the SDK are installed.
 * Real processes on loopback: one `skyio mock`, `skyio serve`, node.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "harness_cli.h"
#include "harness_serve.h"
#include "skyio/gateway.h"
#include "skyio/json.h"
#include "harness_group.h"

#define SAMPLE_KEY "sk-sample-key-from-the-docs"

static struct {
    sky_test_mock mock;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
} env;

static int setup(void **state)
{
    (void)state;
    memset(&env, 0, sizeof(env));
    sky_test_mock_start(&env.mock, NULL);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    sky_test_client_open(&env.loop, &env.client);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_test_mock *const mocks[] = {&env.mock, NULL};
    sky_test_serve_teardown(NULL, env.loop, env.client, mocks, env.dir);
    return 0;
}

/* The variables the samples name for their keys (the clients' key by hash is SAMPLE_KEY). */
static void sample_env(void)
{
    setenv("AZURE_EAST_KEY", "sk-sample-azure", 1);
    setenv("OPENAI_API_KEY", "sk-sample-openai", 1);
    setenv("GATEWAY_CI_KEY", "sk-sample-ci-key", 1);
}

/* @p text from the first @p from past @p after up to @p to (malloc'd); fails when absent. */
static char *between(const char *text, const char *after, const char *from, const char *to)
{
    const char *a = strstr(text, after);
    assert_non_null(a);
    const char *s = strstr(a, from);
    assert_non_null(s);
    s += strlen(from);
    const char *e = strstr(s, to);
    assert_non_null(e);
    char *out = malloc((size_t)(e - s) + 1);
    assert_non_null(out);
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = '\0';
    return out;
}

/* @p sample with its "<sha256 of the key...>" placeholder filled with SAMPLE_KEY's hash and
 * its base URLs on the mock, written as the gateway's config; its path in @p path. */
static void write_sample(const char *sample, char *path, size_t len)
{
    unsigned char h[SKY_GATEWAY_SHA256_LEN];
    char hx[2 * SKY_GATEWAY_SHA256_LEN + 1];
    assert_int_equal(sky_gateway_key_hash(sky_span_cstr(SAMPLE_KEY), h), 0);
    for (size_t i = 0; i < sizeof(h); i++)
        sprintf(hx + 2 * i, "%02x", h[i]);
    char *filled = malloc(strlen(sample) + sizeof(hx));
    assert_non_null(filled);
    const char *ph = strstr(sample, "<sha256 of the key");
    assert_non_null(ph);
    const char *ph_end = strchr(ph, '>');
    assert_non_null(ph_end);
    sprintf(filled, "%.*s%s%s", (int)(ph - sample), sample, hx, ph_end + 1);
    json_t *doc = json_loads(filled, 0, NULL);
    free(filled);
    assert_non_null(doc); /* the sample is JSON as written */
    const char *name;
    json_t *deps;
    json_object_foreach(json_object_get(doc, "models"), name, deps)
    {
        size_t i;
        json_t *d;
        json_array_foreach(deps, i, d)
        {
            char url[256];
            int azure = !strcmp(sky_json_str(d, "kind", ""), "azure");
            snprintf(url, sizeof(url), "%s%s", env.mock.base_url, azure ? "" : "/v1");
            json_object_set_new(d, "base_url", json_string(url));
        }
    }
    json_object_del(doc, "port");
    snprintf(path, len, "%s/sample.json", env.dir);
    assert_int_equal(json_dump_file(doc, path, 0), 0);
    json_decref(doc);
}

/* Serve @p sample (named @p name): its models listed and a chat of gpt-4o answered. */
static void sample_serves(const char *sample, const char *name, sky_test_serve *s)
{
    char path[512];
    sky_test_result r;
    write_sample(sample, path, sizeof(path));
    const char *const args[] = {"--config", path, NULL};
    sky_test_serve_start_named(s, env.dir, name, args, sample_env);
    sky_test_serve_call(s, env.loop, env.client, "GET", "/v1/models", NULL, SAMPLE_KEY, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"gpt-4o\""));
    sky_test_result_free(&r);
    sky_test_serve_call(s, env.loop, env.client, "POST", "/v1/chat/completions",
                        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":"
                        "\"hi\"}]}",
                        SAMPLE_KEY, NULL, &r);
    assert_int_equal(r.err_code, 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "chat.completion"));
    sky_test_result_free(&r);
}

static void test_help_sample_config(void **state)
{
    (void)state;
    sky_test_cli_out out;
    sky_test_serve s;
    sky_test_run_skyio(&out, "serve", "--help");
    assert_int_equal(out.code, 0);
    char *sample = between(out.out, "config (JSON):", "\n", "\n\n  kind");
    sample_serves(sample, "help", &s);
    free(sample);
    sky_test_serve_stop_ok(&s);
}

/* The whole README (malloc'd). */
static char *readme(void)
{
    FILE *f = fopen(SKY_TEST_SRCDIR "/README.md", "r");
    assert_non_null(f);
    char *text = calloc(1, 1 << 20);
    assert_non_null(text);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

/* The README's OpenAI SDK snippet against @p s, under node: 0 when it ran, 77 skipped. */
static int run_snippet(const char *text, const sky_test_serve *s)
{
    char path[512], cmd[1024];
    const char *sdk = SKY_TEST_SRCDIR "/.deps/compat-node";
    snprintf(path, sizeof(path), "%s/node_modules/openai/package.json", sdk);
    if (access(path, R_OK) != 0 || system("node --version >/dev/null 2>&1") != 0)
        return 77;
    char *js = between(text, "## `skyio serve`", "```js\n", "```");
    const char *port = strstr(js, "127.0.0.1:8080");
    assert_non_null(port);
    /* ESM finds `openai` from the program's folder up: the program sits beside the SDK */
    snprintf(path, sizeof(path), "%s/readme-snippet-%d.mjs", sdk, (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%.*s127.0.0.1:%d%s\nconsole.log(r.object);\n", (int)(port - js), js, s->port,
            port + strlen("127.0.0.1:8080"));
    fclose(f);
    free(js);
    snprintf(cmd, sizeof(cmd), "TEAM_A_KEY=%s node '%s' > '%s/snippet.log' 2>&1", SAMPLE_KEY, path,
             env.dir);
    int rc = system(cmd);
    unlink(path);
    if (rc != 0) {
        snprintf(cmd, sizeof(cmd), "cat '%s/snippet.log' >&2", env.dir);
        (void)system(cmd);
    }
    assert_int_equal(rc, 0);
    assert_true(sky_test_file_holds(env.dir, "snippet.log", "chat.completion"));
    return 0;
}

static void test_readme_sample_config_and_snippet(void **state)
{
    (void)state;
    sky_test_serve s;
    char *text = readme();
    char *sample = between(text, "## `skyio serve`", "```json\n", "```");
    sample_serves(sample, "readme", &s);
    free(sample);
    if (run_snippet(text, &s) == 77)
        fprintf(stderr, "the README's snippet skipped: node or the openai package missing\n");
    free(text);
    sky_test_serve_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_sample_config),
        cmocka_unit_test(test_readme_sample_config_and_snippet),
    };
    return sky_test_run_group(tests, setup, teardown);
}
