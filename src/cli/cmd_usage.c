/* `skyio usage`: the gateway's usage totals by day, key and model, from its store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "store/store.h"

static const char usage[] =
    "usage: skyio usage (--state FILE | --postgres URL) [--key NAME] [--since DAY] [--json]\n"
    "\n"
    "Print what `skyio serve` recorded: requests, errors (status >= 400), tokens in and\n"
    "out and cost, totalled by UTC day, gateway key and model.\n"
    "\n"
    "options:\n"
    "      --state FILE       the gateway's SQLite file (serve --state)\n"
    "      --postgres URL     postgresql://user@host:port/db (serve --postgres); keep the\n"
    "                         password out of the URL: libpq reads PGPASSWORD and ~/.pgpass.\n"
    "                         Default: $SKYIO_POSTGRES_URL\n"
    "      --key NAME         only this gateway key\n"
    "      --since DAY        only the UTC days from DAY (YYYY-MM-DD) on\n"
    "      --json             {\"totals\": [{\"day\", \"key\", \"model\", \"requests\", "
    "\"errors\",\n"
    "                         \"tokens_in\", \"tokens_out\", \"cost\"}, ...]}\n"
    "\n"
    "exit: 0 printed; 2 usage (or no such state file); 3 the store could not be opened or read.\n";

typedef struct usage_run {
    uv_loop_t loop;
    const char *state, *postgres, *key, *since;
    int json;
    sky__store *store;
    int done, exit_code;
} usage_run;

/* A password given in a --postgres URL is wiped from argv, so `ps` does not show it. */
static void scrub_arg(char *url)
{
    char safe[512];
    sky__store_url_scrub(url, safe, sizeof(safe));
    if (strcmp(safe, url) == 0)
        return;
    size_t n = strlen(url);
    memset(url, ' ', n);
    memcpy(url, safe, strlen(safe) < n ? strlen(safe) : n);
}

/* "YYYY-MM-DD" in shape (the days compare as text) */
static int is_day(const char *v)
{
    if (strlen(v) != 10 || v[4] != '-' || v[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (v[i] < '0' || v[i] > '9'))
            return 0;
    return 1;
}

static int take_option(usage_run *r, const char *a, char *v)
{
    if (!strcmp(a, "--state"))
        r->state = v;
    else if (!strcmp(a, "--postgres"))
        r->postgres = v;
    else if (!strcmp(a, "--key"))
        r->key = v;
    else if (!strcmp(a, "--since") && is_day(v))
        r->since = v;
    else if (!strcmp(a, "--since")) {
        fprintf(stderr, "skyio usage: --since takes a UTC day, YYYY-MM-DD\n");
        return -1;
    } else {
        fprintf(stderr, "skyio usage: unknown option '%s'\n", a);
        return -1;
    }
    return 0;
}

/* 0 to go on, 1 for --help, -1 for a usage error. @p url_copy receives --postgres's value,
 * copied before argv is scrubbed. */
static int parse_args(usage_run *r, int argc, char **argv, char **url_copy)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
        if (!strcmp(argv[i], "--json")) {
            r->json = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "skyio usage: %s needs a value\n", argv[i]);
            return -1;
        }
        if (take_option(r, argv[i], argv[i + 1]) < 0)
            return -1;
        if (!strcmp(argv[i], "--postgres")) {
            free(*url_copy);
            if (!(*url_copy = strdup(argv[i + 1])))
                return -1;
            scrub_arg(argv[i + 1]);
            r->postgres = *url_copy;
        }
        i++;
    }
    if (!r->state && !r->postgres)
        r->postgres = getenv("SKYIO_POSTGRES_URL");
    if (!r->state == !r->postgres) {
        fprintf(stderr, "skyio usage: give --state FILE or --postgres URL (one of them)\n");
        return -1;
    }
    return 0;
}

static void print_table(const sky__store_usage_total *rows, size_t n)
{
    printf("%-10s  %-20s  %-24s  %9s  %7s  %12s  %12s  %10s\n", "DAY", "KEY", "MODEL", "REQUESTS",
           "ERRORS", "TOKENS_IN", "TOKENS_OUT", "COST");
    for (size_t i = 0; i < n; i++)
        printf("%-10s  %-20s  %-24s  %9lld  %7lld  %12lld  %12lld  %10.4f\n", rows[i].day,
               rows[i].key_name[0] ? rows[i].key_name : "-", rows[i].model,
               (long long)rows[i].requests, (long long)rows[i].errors, (long long)rows[i].tokens_in,
               (long long)rows[i].tokens_out, rows[i].cost);
}

static int print_json(const sky__store_usage_total *rows, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_t *o =
            json_pack("{ss ss ss sI sI sI sI sf}", "day", rows[i].day, "key", rows[i].key_name,
                      "model", rows[i].model, "requests", (json_int_t)rows[i].requests, "errors",
                      (json_int_t)rows[i].errors, "tokens_in", (json_int_t)rows[i].tokens_in,
                      "tokens_out", (json_int_t)rows[i].tokens_out, "cost", rows[i].cost);
        if (!o || json_array_append_new(a, o) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    json_t *doc = a ? json_pack("{so}", "totals", a) : NULL;
    char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(doc);
    return text ? 0 : -1;
}

static void on_closed(const sky_error *err, void *ud)
{
    (void)err;
    (void)ud;
}

static void on_totals(const sky_error *err, const sky__store_usage_total *rows, size_t n, void *ud)
{
    usage_run *r = ud;
    r->done = 1;
    if (err->code) {
        fprintf(stderr, "skyio usage: %s\n", err->message);
        r->exit_code = SKY_EXIT_START;
    } else if (r->json) {
        r->exit_code = print_json(rows, n) == 0 ? SKY_EXIT_OK : SKY_EXIT_START;
    } else {
        print_table(rows, n);
        r->exit_code = SKY_EXIT_OK;
    }
    sky__store_close(r->store, on_closed, r);
}

static void on_open(sky__store *s, const sky_error *err, void *ud)
{
    usage_run *r = ud;
    if (!s) {
        fprintf(stderr, "skyio usage: %s\n", err->message);
        r->exit_code = SKY_EXIT_START;
        return;
    }
    r->store = s;
    sky__store_usage_totals_since(s, r->key, r->since, on_totals, r);
}

static int run(usage_run *r)
{
    char url[4096];
    if (r->state)
        snprintf(url, sizeof(url), "sqlite:%s", r->state);
    else
        snprintf(url, sizeof(url), "%s", r->postgres);
    sky__store_options o;
    sky__store_options_init(&o);
    o.url = url;
    o.pool_size = 1;
    r->exit_code = SKY_EXIT_START;
    if (uv_loop_init(&r->loop) != 0)
        return SKY_EXIT_START;
    if (sky__store_open(&r->loop, &o, on_open, r) != 0)
        fprintf(stderr, "skyio usage: could not open the store\n");
    else
        uv_run(&r->loop, UV_RUN_DEFAULT);
    memset(url, 0, sizeof(url));
    uv_loop_close(&r->loop);
    return r->exit_code;
}

int sky_cli_usage(int argc, char **argv)
{
    usage_run r;
    memset(&r, 0, sizeof(r));
    char *url_copy = NULL;
    int rc = parse_args(&r, argc, argv, &url_copy);
    if (rc != 0) {
        fputs(usage, rc > 0 ? stdout : stderr);
        free(url_copy);
        return rc > 0 ? SKY_EXIT_OK : SKY_EXIT_USAGE;
    }
    if (r.state && access(r.state, R_OK) != 0) {
        fprintf(stderr, "skyio usage: %s: no such state file\n", r.state);
        free(url_copy);
        return SKY_EXIT_USAGE;
    }
    rc = run(&r);
    if (url_copy)
        memset(url_copy, 0, strlen(url_copy));
    free(url_copy);
    return rc;
}
