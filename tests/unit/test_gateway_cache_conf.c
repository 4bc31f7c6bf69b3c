/* The response cache's rule for requests that do not ask (cache_conf.c): the config's
 * "cache" object read and refused, TTLs per model, and temperature 0 read from a body. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "gateway/cache_internal.h"
#include "gateway/stores.h"

static gw_cache_conf *parse_ok(const char *text)
{
    json_t *doc = text ? json_loads(text, 0, NULL) : NULL;
    gw_cache_conf *c = NULL;
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky__gw_cache_conf_parse(doc, &c, &err), 0);
    assert_non_null(c);
    json_decref(doc);
    return c;
}

/* Refused with SKY_EINVAL, its message naming @p word. */
static void refused(const char *text, const char *word)
{
    json_t *doc = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(doc);
    gw_cache_conf *c = (gw_cache_conf *)(uintptr_t)1;
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky__gw_cache_conf_parse(doc, &c, &err), SKY_EINVAL);
    assert_null(c);
    assert_non_null(strstr(err.message, word));
    json_decref(doc);
}

static void test_defaults(void **state)
{
    (void)state;
    sky_gateway g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(sky__gw_cache_ttl(&g, "gpt-4o"), 3600 * 1000);
    assert_int_equal(sky__gw_cache_max_entry(&g), 1 << 20);
    gw_cache_conf *c = parse_ok(NULL);
    g.cache_conf = c;
    assert_int_equal(sky__gw_cache_ttl(&g, "gpt-4o"), 3600 * 1000);
    sky__gw_cache_conf_free(c);
}

static void test_ttls_and_cap(void **state)
{
    (void)state;
    gw_cache_conf *c =
        parse_ok("{\"ttl_s\": 600, \"max_entry_bytes\": 5000,"
                 " \"models\": {\"a\": true, \"b\": false, \"c\": {\"ttl_s\": 60}}}");
    sky_gateway g;
    memset(&g, 0, sizeof(g));
    g.cache_conf = c;
    assert_int_equal(sky__gw_cache_ttl(&g, "a"), 600 * 1000);
    assert_int_equal(sky__gw_cache_ttl(&g, "c"), 60 * 1000);
    assert_int_equal(sky__gw_cache_ttl(&g, "other"), 600 * 1000);
    assert_int_equal(sky__gw_cache_max_entry(&g), 5000);
    sky__gw_cache_conf_set_ttl(c, 7000); /* the flag wins over the config's, not a model's */
    assert_int_equal(sky__gw_cache_ttl(&g, "a"), 7000);
    assert_int_equal(sky__gw_cache_ttl(&g, "c"), 60 * 1000);
    sky__gw_cache_conf_set_ttl(c, 0); /* no flag: nothing changes */
    assert_int_equal(sky__gw_cache_ttl(&g, "a"), 7000);
    sky__gw_cache_conf_free(c);
}

static void test_refused(void **state)
{
    (void)state;
    refused("5", "\"cache\" is an object");
    refused("{\"models\": [\"a\"]}", "models maps");
    refused("{\"models\": {\"a\": \"yes\"}}", "a is true, false");
    refused("{\"models\": {\"a\": true, \"b\": {\"ttl_s\": 0}}}", "b: ttl_s");
    refused("{\"ttl_s\": 1.5}", "ttl_s");
    refused("{\"ttl_s\": 100000000}", "ttl_s");
    refused("{\"max_entry_bytes\": 0}", "max_entry_bytes");
    refused("{\"temperature_zero\": \"yes\"}", "temperature_zero");
}

/* Whether a request of @p op for @p model with @p body is cached without a header (the
 * body read as the gateway reads it: body.c). */
static int by_default(const gw_cache_conf *c, gw_op op, const char *model, const char *body)
{
    sky_gateway g;
    memset(&g, 0, sizeof(g));
    g.cache_conf = c;
    gw_model m;
    memset(&m, 0, sizeof(m));
    m.name = model;
    gw_request q;
    memset(&q, 0, sizeof(q));
    q.g = &g;
    q.asked = &m;
    q.op = op;
    gw_body b;
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky__gw_body_read(sky_span_cstr(body), &b, &err), 0);
    q.temperature_zero = b.temperature_zero;
    return sky__gw_cache_by_default(&q);
}

/* The members the gateway does not read (the messages) go by unreported: the fields after
 * them are still read, names inside them are not the root's, and a broken one still fails. */
static void test_body_fields_past_skipped_members(void **state)
{
    (void)state;
    gw_body b;
    sky_error err;
    sky_error_clear(&err);
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\",\"model\":\"x\","
                       "\"stream\":true,\"max_tokens\":1}],\"metadata\":{\"model\":\"y\"},"
                       "\"model\":\"m\",\"max_tokens\":7,\"stream\":false}";
    assert_int_equal(sky__gw_body_read(sky_span_cstr(body), &b, &err), 0);
    assert_string_equal(b.model, "m");
    assert_int_equal(b.max_tokens, 7);
    assert_int_equal(b.stream, 0);
    assert_true(sky__gw_body_read(sky_span_cstr("{\"messages\":[1,],\"model\":\"m\"}"), &b, &err) <
                0);
}

static void test_temperature_zero(void **state)
{
    (void)state;
    const gw_cache_conf *d = NULL; /* the defaults */
    assert_true(by_default(d, GW_OP_CHAT, "m", "{\"temperature\": 0}"));
    assert_true(by_default(d, GW_OP_CHAT, "m", "{\"messages\": [], \"temperature\": 0.0}"));
    assert_true(by_default(d, GW_OP_CHAT, "m", "{\"temperature\": 0e5}"));
    assert_true(by_default(d, GW_OP_COMPLETIONS, "m", "{\"temperature\": -0}"));
    assert_false(by_default(d, GW_OP_CHAT, "m", "{\"temperature\": 0.2}"));
    assert_false(by_default(d, GW_OP_CHAT, "m", "{\"temperature\": \"0\"}"));
    assert_false(by_default(d, GW_OP_CHAT, "m", "{\"x\": {\"temperature\": 0}}"));
    assert_false(by_default(d, GW_OP_CHAT, "m", "{\"model\": \"m\"}"));
    /* embeddings have no temperature; the Responses API's answers are state */
    assert_false(by_default(d, GW_OP_EMBEDDINGS, "m", "{\"temperature\": 0}"));
    assert_false(by_default(d, GW_OP_RESPONSES, "m", "{\"temperature\": 0}"));
}

static void test_per_model(void **state)
{
    (void)state;
    gw_cache_conf *c = parse_ok("{\"temperature_zero\": false,"
                                " \"models\": {\"on\": true, \"off\": false, \"e\": {}}}");
    assert_true(by_default(c, GW_OP_CHAT, "on", "{\"temperature\": 1}"));
    assert_true(by_default(c, GW_OP_EMBEDDINGS, "e", "{\"input\": [\"a\"]}"));
    assert_false(by_default(c, GW_OP_CHAT, "off", "{\"temperature\": 0}"));
    assert_false(by_default(c, GW_OP_CHAT, "other", "{\"temperature\": 0}")); /* rule off */
    assert_false(by_default(c, GW_OP_RESPONSES, "on", "{\"input\": \"hi\"}"));
    sky__gw_cache_conf_free(c);
}

static void test_is_sse(void **state)
{
    (void)state;
    assert_true(sky__gw_cache_is_sse(sky_span_cstr("data: {}\n\n")));
    assert_true(sky__gw_cache_is_sse(sky_span_cstr(": keep-alive\n\ndata: x\n\n")));
    assert_false(sky__gw_cache_is_sse(sky_span_cstr("{\"id\": 1}")));
    assert_false(sky__gw_cache_is_sse(sky_span_cstr("\n  {\"id\": 1}")));
    assert_false(sky__gw_cache_is_sse(sky_span_cstr("")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_ttls_and_cap),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_temperature_zero),
        cmocka_unit_test(test_per_model),
        cmocka_unit_test(test_is_sse),
        cmocka_unit_test(test_body_fields_past_skipped_members),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
