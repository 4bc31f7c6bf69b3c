/* The `skyio` command: one function per subcommand. */
#ifndef SKY_CLI_H
#define SKY_CLI_H

/* Exit codes, as DESIGN.md gives them. */
enum {
    SKY_EXIT_OK = 0,
    SKY_EXIT_FAILED = 1, /* finished, some requests failed */
    SKY_EXIT_USAGE = 2,  /* usage or input error */
    SKY_EXIT_START = 3   /* could not start: auth, network, config */
};

int sky_cli_mock(int argc, char **argv);
int sky_cli_http(int argc, char **argv);
int sky_cli_chat(int argc, char **argv);
int sky_cli_token(int argc, char **argv);
int sky_cli_batch(int argc, char **argv);
int sky_cli_arm(int argc, char **argv);
int sky_cli_group(int argc, char **argv);
int sky_cli_vm(int argc, char **argv);
int sky_cli_blob(int argc, char **argv);
int sky_cli_queue(int argc, char **argv);
int sky_cli_secret(int argc, char **argv);
int sky_cli_serve(int argc, char **argv);
int sky_cli_usage(int argc, char **argv);
int sky_cli_report(int argc, char **argv);

/* Write the report of @p o to @p path ("-": stdout) for command @p cmd, saying where on
 * stderr: SKY_EXIT_OK, or SKY_EXIT_START after saying why not. */
struct sky_report_options;
int sky_cli_report_write(const char *cmd, const struct sky_report_options *o, const char *path);

/* Parse a whole decimal number or fraction; 0 on success. */
int sky_cli_parse_double(const char *s, double *out);
int sky_cli_parse_long(const char *s, long long *out);
/* A whole-number option of command @p cmd: parse @p v into *out, at least
 * @p lo; otherwise say which option and why on stderr. 0 or -1. */
int sky_cli_number_opt(const char *cmd, const char *opt, const char *v, long long lo,
                       long long *out);
/* How many curl multi handles (sky_http_client_options.shards) for @p concurrency
 * requests in flight: 1 up to 2,048, then one per 512 (bench/inflight: 0.77x the ideal
 * rate at 10,000 in flight, against 0.39x with one). */
int sky_cli_shards_for(long long concurrency);
/* Whether @p path can be read whole as the value of option @p opt of command @p cmd: a
 * regular file or a pipe (<(...)). A folder reads as an empty file and a device may never
 * end, so either is refused: 0, or -1 after saying on stderr which option, path and why. */
int sky_cli_check_input_file(const char *cmd, const char *opt, const char *path);
/* A server command's SIGINT/SIGTERM, counted in *count: the first says the requests in
 * flight are being finished and returns (the caller starts its graceful stop); the second
 * ends the process at once, exit 0. */
void sky_cli_signal_graceful(const char *cmd, int *count, int signum);
/* Read a whole small file (config, request body) into a new string. */
char *sky_cli_read_file(const char *path, size_t *out_len);

/* A batch on Redis (batch_redis.c): `skyio batch --redis` (@p loader 1: load INPUT and
 * collect OUTPUT too) and `skyio worker` (0). */
int sky_cli_redis_run(int argc, char **argv, int loader);
int sky_cli_worker(int argc, char **argv);
int sky_cli_job(int argc, char **argv);
/* Overwrite the password of every --redis URL in argv, so `ps` does not show it. */
void sky_cli_redis_scrub_argv(int argc, char **argv);
/* The --text mode's flags (--model, --system...) with --redis (batch_redis_args.c): 0, -1
 * (said why), or 1 when @p a is not one of them. */
struct sky_batch_options;
int sky_cli_redis_text_opt(struct sky_batch_options *o, const char *a, const char *v);
/* A progress line of a batch on Redis, its pace the shared bucket's when it has one. */
struct sky_redis_job;
struct sky_batch_progress;
void sky_cli_redis_progress(const struct sky_redis_job *j, const struct sky_batch_progress *p,
                            int tty, int final);

#endif
