/*
 * Integration-test harness: the fleet the test_serve_*.c theme files share, a `skyio serve`
 * in front of six `skyio mock` processes on loopback (healthy, healthy, failing, slow,
 * request-throttled, token-throttled), with its config, its clients' keys, and the checks
 * every request's answer must pass (no upstream key in it).
 */
#ifndef SKY_TEST_HARNESS_SERVE_FLEET_H
#define SKY_TEST_HARNESS_SERVE_FLEET_H

#include "harness.h"
#include "harness_serve.h"

#define SKY_FLEET_UPSTREAM_KEY "sk-upstream-canary-7f3a9c51"
#define SKY_FLEET_CLIENT_KEY "sk-client-full-0001"
#define SKY_FLEET_LIMITED_KEY "sk-client-limited-0002" /* text-embedding-3-small only */
#define SKY_FLEET_METERED_KEY "sk-client-metered-0003" /* 3 requests a minute */
#define SKY_FLEET_TOKENS_KEY "sk-client-tokens-0004"   /* 100 tokens a minute */
#define SKY_FLEET_MAX_BODY 65536

/*
 * The models: gpt-4o (fast and fast2), text-embedding-3-small (fast), slow (an Azure
 * deployment "slow-dep" on slow), flaky (broken, a closed port, and fast2 as gpt-4o-mini
 * with weight 1), fallen (broken; falls back to gpt-4o), wordy (wordy weight 10, fast),
 * busy (throttled weight 10, fast).
 */
typedef struct sky_test_fleet {
    sky_test_mock fast, fast2, broken, slow, throttled, wordy;
    sky_test_serve serve;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
} sky_test_fleet;

extern sky_test_fleet sky_fleet;

/* cmocka group fixtures: start the fleet; stop it, after the secrets canary over every log
 * serve wrote and a check that it exited 0 (run the group with sky_test_run_group:
 * harness_group.h) */
int sky_fleet_setup(void **state);
int sky_fleet_teardown(void **state);

/* One request with @p header ("Name: value", or NULL); fails unless it came back without
 * an upstream key in it. */
void sky_fleet_call_with(const char *method, const char *path, const char *body, const char *header,
                         sky_test_result *out);
/* The same with "Authorization: Bearer @p key" (@p key NULL: none). */
void sky_fleet_call(const char *method, const char *path, const char *body, const char *key,
                    sky_test_result *out);
/* The answer's body parsed (new reference); fails when it is not JSON. */
json_t *sky_fleet_json(const sky_test_result *r);
/* An OpenAI error of @p status, @p type and @p code (NULL: JSON null). */
void sky_fleet_expect_error(const sky_test_result *r, int status, const char *type,
                            const char *code);
/* Whether the file @p name of the serve folder holds @p needle. */
int sky_fleet_log_holds(const char *name, const char *needle);

/* A chat of gpt-4o. */
extern const char sky_fleet_chat_body[];

#endif
