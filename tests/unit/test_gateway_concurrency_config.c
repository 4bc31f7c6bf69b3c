/* Tests for a gateway deployment's "max_concurrency" and "concurrency" keys: none by
 * default, each read as given, and the values that are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "skyio/gateway.h"
#include "skyio/json.h"

/* Parse one model "m" whose one deployment is base_url plus @p extra (JSON members). */
static int parse_dep(const char *extra, sky_gateway_config *c, sky_error *err)
{
    char text[512];
    json_t *doc = NULL;
    snprintf(text, sizeof(text),
             "{\"models\": {\"m\": [{\"kind\": \"compatible\", "
             "\"base_url\": \"http://127.0.0.1:9/v1\"%s]}}",
             extra);
    assert_int_equal(sky_json_parse(sky_span_cstr(text), &doc, NULL), 0);
    int rc = sky_gateway_config_parse(doc, c, err);
    json_decref(doc);
    return rc;
}

static void test_none_by_default(void **state)
{
    (void)state;
    sky_gateway_config c;
    assert_int_equal(parse_dep("}", &c, NULL), 0);
    assert_int_equal(c.n_deployments, 1);
    assert_int_equal(c.deployments[0].max_concurrency, 0);
    assert_int_equal(c.deployments[0].concurrency, 0);
    sky_gateway_config_free(&c);
}

static void test_each_read(void **state)
{
    (void)state;
    sky_gateway_config c;
    assert_int_equal(parse_dep(", \"max_concurrency\": 64}", &c, NULL), 0);
    assert_int_equal(c.deployments[0].max_concurrency, 64);
    assert_int_equal(c.deployments[0].concurrency, 0);
    sky_gateway_config_free(&c);
    assert_int_equal(parse_dep(", \"concurrency\": 8}", &c, NULL), 0);
    assert_int_equal(c.deployments[0].max_concurrency, 0);
    assert_int_equal(c.deployments[0].concurrency, 8);
    sky_gateway_config_free(&c);
    /* 0 says none, as leaving it out does */
    assert_int_equal(parse_dep(", \"max_concurrency\": 0}", &c, NULL), 0);
    assert_int_equal(c.deployments[0].max_concurrency, 0);
    sky_gateway_config_free(&c);
}

static void refused(const char *extra)
{
    sky_gateway_config c;
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(parse_dep(extra, &c, &err), SKY_EINVAL);
    assert_non_null(strstr(err.message, "concurrency"));
    sky_gateway_config_free(&c);
}

static void test_refused(void **state)
{
    (void)state;
    refused(", \"max_concurrency\": -1}");
    refused(", \"concurrency\": 2.5}");
    refused(", \"max_concurrency\": \"10\"}");
    refused(", \"concurrency\": 10000000}");
    refused(", \"max_concurrency\": 10, \"concurrency\": 10}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_none_by_default),
        cmocka_unit_test(test_each_read),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
