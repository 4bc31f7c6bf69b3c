/*
 * The smallest use of the client: POST one chat completion and print the reply.
 *   example_chat URL [KEY]
 * e.g. example_chat http://127.0.0.1:8080/v1/chat/completions sk-test
 */
#include <stdio.h>

#include <skyio/skyio.h>

static void on_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                    void *user_data)
{
    int *exit_code = user_data;
    char line[512];
    (void)req;
    if (err) {
        fprintf(stderr, "failed: %s\n", sky_error_format(err, line, sizeof(line)));
        *exit_code = 1;
        return;
    }
    json_t *body = NULL;
    if (res->status != 200 || sky_json_parse(res->body, &body, NULL) < 0) {
        fprintf(stderr, "HTTP %d: %.*s\n", res->status, (int)res->body.len, res->body.ptr);
        *exit_code = 1;
        return;
    }
    printf("%s\n", json_string_value(sky_json_path(body, "choices.0.message.content")));
    json_decref(body);
    *exit_code = 0;
}

int main(int argc, char **argv)
{
    static const char body[] =
        "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}";
    sky_loop *loop = sky_loop_new();
    sky_http_client *client = NULL;
    sky_headers *headers = sky_headers_new();
    sky_http_request_options o;
    char auth[256];
    int exit_code = 2;
    if (argc < 2 || loop == NULL || headers == NULL) {
        fprintf(stderr, "usage: %s URL [KEY]\n", argv[0]);
        return 2;
    }
    snprintf(auth, sizeof(auth), "Bearer %s", argc > 2 ? argv[2] : "none");
    if (sky_headers_add(headers, SKY_SPAN_LIT("Authorization"), sky_span_cstr(auth)) < 0 ||
        sky_headers_add(headers, SKY_SPAN_LIT("Content-Type"), SKY_SPAN_LIT("application/json")) <
            0 ||
        sky_http_client_new(sky_loop_uv(loop), NULL, &client) < 0)
        return 3;
    sky_http_request_options_init(&o);
    o.method = "POST";
    o.url = argv[1];
    o.headers = headers;
    o.body = sky_span_cstr(body);
    o.timeout_ms = 30000;
    o.on_done = on_done;
    o.user_data = &exit_code;
    if (sky_http_request_send(client, &o, NULL, NULL) == 0)
        sky_loop_run(loop);
    sky_http_client_free(client);
    sky_loop_run(loop);
    sky_headers_free(headers);
    sky_loop_free(loop);
    return exit_code;
}
