/*
 * Stream a chat answer through libskyio's AI client: the endpoint and key come from the
 * environment as OpenAI's and Azure's SDKs read them (OPENAI_API_KEY, OPENAI_BASE_URL,
 * AZURE_OPENAI_ENDPOINT, ...); the client's pipeline retries a failure before the first
 * token, paces requests at the provider's limit and stops calling an endpoint that keeps
 * failing.
 *   example_chat_stream [PROMPT [MODEL]]
 */
#include <stdio.h>

#include <skyio/skyio.h>

static int on_delta(sky_ai_request *req, size_t index, const sky_ai_delta *d, void *user_data)
{
    (void)req;
    (void)index;
    (void)user_data;
    if (d->content)
        fputs(d->content, stdout);
    fflush(stdout);
    return 0;
}

static void on_done(sky_ai_request *req, const sky_ai_chat_result *res, const sky_error *err,
                    void *user_data)
{
    int *exit_code = user_data;
    char line[512];
    (void)req;
    printf("\n");
    fflush(stdout); /* the answer ends before the note on stderr */
    fprintf(stderr, "(%d attempt%s)\n", res->call->attempts, res->call->attempts == 1 ? "" : "s");
    if (err)
        fprintf(stderr, "failed: %s: %s\n", sky_error_format(err, line, sizeof(line)),
                err->message);
    *exit_code = err ? 1 : 0;
}

int main(int argc, char **argv)
{
    sky_loop *loop = sky_loop_new();
    sky_http_client *http = NULL;
    sky_ai_client *ai = NULL;
    sky_ai_chat_options o;
    sky_error err;
    int exit_code = 3;
    sky_error_clear(&err);
    if (loop == NULL || sky_http_client_new(sky_loop_uv(loop), NULL, &http) < 0 ||
        sky_ai_client_new(sky_loop_uv(loop), http, NULL, &ai, &err) < 0) {
        fprintf(stderr, "cannot start: %s\n", err.message);
        return 3;
    }
    sky_ai_chat_options_init(&o);
    o.model = argc > 2 ? argv[2] : "gpt-4o-mini";
    o.prompt = argc > 1 ? argv[1] : "Say hello.";
    o.stream = 1;
    o.on_delta = on_delta;
    o.on_done = on_done;
    o.user_data = &exit_code;
    if (sky_ai_chat_start(ai, &o, NULL, &err) == 0)
        sky_loop_run(loop);
    else
        fprintf(stderr, "cannot start the chat: %s\n", err.message);
    sky_ai_client_free(ai);
    sky_http_client_free(http);
    sky_loop_run(loop);
    sky_loop_free(loop);
    return exit_code;
}
