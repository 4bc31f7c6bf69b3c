/* Tests for the Responses API over chat completions (gateway/responses_chat*.c) and the
 * input items the gateway keeps and sends again (gateway/responses_items.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "gateway/responses_turn.h"
#include "skyio/json.h"

static json_t *load(const char *text)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(j);
    return j;
}

static json_t *translate(const char *req_text, char *why, size_t len)
{
    json_t *req = load(req_text);
    json_t *chat = sky__gw_rc_request(req, "up-model", why, len);
    json_decref(req);
    return chat;
}

static const char *msg_field(const json_t *chat, size_t i, const char *key)
{
    return sky_json_str(json_array_get(json_object_get(chat, "messages"), i), key, NULL);
}

static void request_becomes_chat(void **state)
{
    (void)state;
    char why[256] = "";
    json_t *chat = translate(
        "{\"model\":\"m\",\"instructions\":\"be brief\",\"max_output_tokens\":30,"
        "\"temperature\":0.5,\"stream\":true,\"input\":["
        "{\"role\":\"user\",\"content\":\"hi\"},"
        "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\","
        "\"text\":\"hello\"}]},"
        "{\"role\":\"developer\",\"content\":[{\"type\":\"input_text\",\"text\":\"a\"},"
        "{\"type\":\"input_text\",\"text\":\"b\"}]}]}",
        why, sizeof(why));
    assert_non_null(chat);
    assert_string_equal(sky_json_str(chat, "model", ""), "up-model");
    assert_int_equal(json_array_size(json_object_get(chat, "messages")), 4);
    assert_string_equal(msg_field(chat, 0, "role"), "system");
    assert_string_equal(msg_field(chat, 0, "content"), "be brief");
    assert_string_equal(msg_field(chat, 1, "content"), "hi");
    assert_string_equal(msg_field(chat, 2, "role"), "assistant");
    assert_string_equal(msg_field(chat, 2, "content"), "hello");
    assert_string_equal(msg_field(chat, 3, "role"), "system"); /* developer */
    assert_string_equal(msg_field(chat, 3, "content"), "ab");
    assert_int_equal(sky_json_int(chat, "max_tokens", 0), 30);
    assert_true(sky_json_num(chat, "temperature", 0) == 0.5);
    assert_true(sky_json_bool(json_object_get(chat, "stream_options"), "include_usage", 0));
    json_decref(chat);
}

static void tools_and_format_become_chat(void **state)
{
    (void)state;
    char why[256] = "";
    json_t *chat = translate(
        "{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":\"weather?\"},"
        "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"get\",\"arguments\":\"{}\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"sunny\"}],"
        "\"tools\":[{\"type\":\"function\",\"name\":\"get\",\"parameters\":{\"type\":"
        "\"object\"}}],\"tool_choice\":{\"type\":\"function\",\"name\":\"get\"},"
        "\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"w\",\"schema\":{}}}}",
        why, sizeof(why));
    assert_non_null(chat);
    json_t *call = json_array_get(
        json_object_get(json_array_get(json_object_get(chat, "messages"), 1), "tool_calls"), 0);
    assert_string_equal(sky_json_str(call, "id", ""), "c1");
    assert_string_equal(msg_field(chat, 2, "role"), "tool");
    assert_string_equal(msg_field(chat, 2, "tool_call_id"), "c1");
    json_t *tool = json_array_get(json_object_get(chat, "tools"), 0);
    assert_string_equal(sky_json_str(json_object_get(tool, "function"), "name", ""), "get");
    assert_string_equal(
        sky_json_str(json_object_get(json_object_get(chat, "tool_choice"), "function"), "name", ""),
        "get");
    json_t *rf = json_object_get(chat, "response_format");
    assert_string_equal(sky_json_str(rf, "type", ""), "json_schema");
    assert_string_equal(sky_json_str(json_object_get(rf, "json_schema"), "name", ""), "w");
    json_decref(chat);
}

static void untranslatable_is_refused(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"web_search\"}]}", "web_search"},
        {"{\"model\":\"m\",\"input\":\"x\",\"include\":[\"a\"]}", "'include'"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"file_search_call\"}]}", "file_search_call"},
        {"{\"model\":\"m\",\"input\":\"x\",\"previous_response_id\":\"resp_1\"}", "store"},
        {"{\"model\":\"m\",\"input\":42}", "'input'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char why[256] = "";
        json_t *chat = translate(cases[i][0], why, sizeof(why));
        assert_null(chat);
        assert_non_null(strstr(why, cases[i][1]));
    }
}

static void reply_becomes_response(void **state)
{
    (void)state;
    json_t *req = load("{\"model\":\"m\",\"input\":\"x\",\"instructions\":\"i\","
                       "\"previous_response_id\":\"resp_0\"}");
    json_t *chat = load(
        "{\"model\":\"up\",\"choices\":[{\"index\":0,\"finish_reason\":\"length\",\"message\":"
        "{\"role\":\"assistant\",\"content\":\"hello\",\"tool_calls\":[{\"id\":\"call_1\","
        "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]}}],"
        "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}");
    json_t *r = sky__gw_rc_reply(chat, req, "resp_x");
    assert_non_null(r);
    assert_string_equal(sky_json_str(r, "id", ""), "resp_x");
    assert_string_equal(sky_json_str(r, "object", ""), "response");
    assert_string_equal(sky_json_str(r, "status", ""), "incomplete");
    assert_string_equal(sky_json_str(json_object_get(r, "incomplete_details"), "reason", ""),
                        "max_output_tokens");
    assert_string_equal(sky_json_str(r, "instructions", ""), "i");
    assert_string_equal(sky_json_str(r, "previous_response_id", ""), "resp_0");
    json_t *out = json_object_get(r, "output");
    assert_int_equal(json_array_size(out), 2);
    json_t *text = json_array_get(json_object_get(json_array_get(out, 0), "content"), 0);
    assert_string_equal(sky_json_str(text, "text", ""), "hello");
    assert_string_equal(sky_json_str(json_array_get(out, 1), "type", ""), "function_call");
    assert_string_equal(sky_json_str(json_array_get(out, 1), "call_id", ""), "call_1");
    json_t *usage = json_object_get(r, "usage");
    assert_int_equal(sky_json_int(usage, "input_tokens", 0), 7);
    assert_int_equal(sky_json_int(usage, "output_tokens", 0), 3);
    assert_int_equal(sky_json_int(usage, "total_tokens", 0), 10);
    assert_null(sky__gw_rc_reply(req, req, "resp_y")); /* not a chat answer */
    json_decref(r);
    json_decref(chat);
    json_decref(req);
}

/* The type of each event in @p sse, in order, joined by spaces. */
static void event_types(const sky_buf *sse, char *out, size_t len)
{
    out[0] = '\0';
    const char *p = (const char *)sse->data;
    const char *end = p + sse->len;
    while (p && p < end && (p = strstr(p, "event: ")) != NULL && p < end) {
        p += 7;
        size_t n = strcspn(p, "\n");
        strncat(out, p, len - strlen(out) - 2 > n ? n : len - strlen(out) - 2);
        strncat(out, " ", len - strlen(out) - 1);
    }
}

static void stream_becomes_events(void **state)
{
    (void)state;
    json_t *req =
        load("{\"model\":\"m\",\"input\":\"x\",\"stream\":true,\"conversation\":\"conv_1\"}");
    gw_rc_stream *s = sky__gw_rc_stream_new(req, "resp_s");
    assert_non_null(s);
    assert_int_equal(sky__gw_rc_stream_begin(s), 0);
    /* chunks split anywhere, an Azure-style first chunk without choices, usage last */
    const char *chunks =
        "data: {\"choices\":[],\"prompt_filter_results\":[]}\n\n"
        "data: {\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
        "\"content\":\"Hel\"}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":"
        "\"stop\"}]}\n\n"
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,"
        "\"total_tokens\":6}}\n\n"
        "data: [DONE]\n\n";
    size_t n = strlen(chunks);
    for (size_t at = 0; at < n; at += 7)
        assert_int_equal(sky__gw_rc_stream_feed(s, chunks + at, n - at < 7 ? n - at : 7), 0);
    assert_int_equal(sky__gw_rc_stream_finish(s), 0);
    char types[1024];
    event_types(sky__gw_rc_stream_out(s), types, sizeof(types));
    assert_string_equal(types, "response.created response.in_progress response.output_item.added "
                               "response.content_part.added response.output_text.delta "
                               "response.output_text.delta response.output_text.done "
                               "response.content_part.done response.output_item.done "
                               "response.completed ");
    json_t *final = sky__gw_rc_stream_final(s);
    json_t *text = json_array_get(
        json_object_get(json_array_get(json_object_get(final, "output"), 0), "content"), 0);
    assert_string_equal(sky_json_str(text, "text", ""), "Hello");
    assert_string_equal(sky_json_str(final, "status", ""), "completed");
    assert_string_equal(sky_json_str(json_object_get(final, "conversation"), "id", ""), "conv_1");
    gw_tokens t;
    sky__gw_rc_stream_tokens(s, &t);
    assert_int_equal(t.prompt, 4);
    assert_int_equal(t.completion, 2);
    assert_int_equal(t.total, 6);
    assert_non_null(strstr((const char *)sky__gw_rc_stream_out(s)->data, "\"sequence_number\":9"));
    sky__gw_rc_stream_free(s);
    json_decref(req);
}

static void stream_tool_calls_become_items(void **state)
{
    (void)state;
    json_t *req = load("{\"model\":\"m\",\"input\":\"x\",\"stream\":true}");
    gw_rc_stream *s = sky__gw_rc_stream_new(req, "resp_t");
    assert_non_null(s);
    const char *chunks =
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_9\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
        "{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n"
        "data: [DONE]\n\n";
    assert_int_equal(sky__gw_rc_stream_feed(s, chunks, strlen(chunks)), 0);
    assert_int_equal(sky__gw_rc_stream_finish(s), 0);
    json_t *out = json_object_get(sky__gw_rc_stream_final(s), "output");
    assert_int_equal(json_array_size(out), 1);
    assert_string_equal(sky_json_str(json_array_get(out, 0), "call_id", ""), "call_9");
    assert_string_equal(sky_json_str(json_array_get(out, 0), "arguments", ""), "{\"a\":1}");
    assert_non_null(strstr((const char *)sky__gw_rc_stream_out(s)->data,
                           "response.function_call_arguments.done"));
    sky__gw_rc_stream_free(s);
    json_decref(req);
}

static void items_kept_and_sent_again(void **state)
{
    (void)state;
    json_t *in = load("\"hi\"");
    json_t *kept = sky__gw_items_of_input(in, 1);
    json_t *item = json_array_get(kept, 0);
    assert_string_equal(sky_json_str(item, "type", ""), "message");
    assert_string_equal(sky_json_str(item, "role", ""), "user");
    assert_non_null(strstr(sky_json_str(item, "id", ""), "msg_"));
    assert_string_equal(sky_json_str(item, "status", ""), "completed");
    json_array_append_new(kept, load("{\"id\":\"msg_a\",\"type\":\"message\",\"role\":"
                                     "\"assistant\",\"status\":\"completed\",\"content\":[{"
                                     "\"type\":\"output_text\",\"text\":\"yo\"}]}"));
    json_array_append_new(kept, load("{\"id\":\"rs_1\",\"type\":\"reasoning\",\"summary\":[]}"));
    json_t *up = sky__gw_items_for_upstream(kept);
    assert_int_equal(json_array_size(up), 2); /* no reasoning item */
    assert_null(json_object_get(json_array_get(up, 0), "id"));
    assert_string_equal(sky_json_str(json_array_get(up, 1), "content", ""), "yo");
    json_t *one = json_integer(1);
    assert_null(sky__gw_items_of_input(one, 0));
    json_decref(one);
    json_decref(up);
    json_decref(kept);
    json_decref(in);
}

/* A deployment's "api": "chat" marks it chat-only; "all" or none: not; anything else refused. */
static void config_api_key(void **state)
{
    (void)state;
    json_t *doc = load("{\"models\": {\"m\": [{\"kind\": \"compatible\", \"base_url\": "
                       "\"http://127.0.0.1:1/v1\", \"api\": \"chat\"}, {\"kind\": \"compatible\", "
                       "\"base_url\": \"http://127.0.0.1:2/v1\"}]}}");
    sky_gateway_config c;
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_gateway_config_parse(doc, &c, &err), 0);
    assert_int_equal(c.n_deployments, 2);
    assert_int_equal(c.deployments[0].chat_only, 1);
    assert_int_equal(c.deployments[1].chat_only, 0);
    sky_gateway_config_free(&c);
    json_decref(doc);
    doc = load("{\"models\": {\"m\": [{\"kind\": \"compatible\", \"base_url\": "
               "\"http://127.0.0.1:1/v1\", \"api\": \"responses-only\"}]}}");
    assert_int_equal(sky_gateway_config_parse(doc, &c, &err), SKY_EINVAL);
    assert_non_null(strstr(err.message, "api"));
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_becomes_chat),
        cmocka_unit_test(tools_and_format_become_chat),
        cmocka_unit_test(untranslatable_is_refused),
        cmocka_unit_test(reply_becomes_response),
        cmocka_unit_test(stream_becomes_events),
        cmocka_unit_test(stream_tool_calls_become_items),
        cmocka_unit_test(items_kept_and_sent_again),
        cmocka_unit_test(config_api_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
