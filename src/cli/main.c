/* `skyio`: dispatch to the subcommands. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "skyio/skyio.h"
#include "cli.h"
#include "secret_ref.h"

static const char usage[] =
    "usage: skyio <command> [options]\n"
    "\n"
    "Rate-limit-aware asynchronous calls to cloud and AI APIs.\n"
    "\n"
    "commands:\n"
    "  batch     send a whole OpenAI Batch JSONL file at the provider's limit; resumable\n"
    "  report    a batch run's report: one HTML file with charts over the run's time\n"
    "  chat      ask one prompt, streamed token by token; several models at once\n"
    "  serve     an OpenAI-compatible gateway in front of many deployments, with failover\n"
    "  usage     the gateway's usage: totals by day, key and model (serve --state/--postgres)\n"
    "  mock      run the local OpenAI / Azure OpenAI simulator (latency, rate limits, faults)\n"
    "  http      make HTTP requests with skyio's client: one, streamed, or many at once\n"
    "  arm       Azure Resource Manager requests, paged lists, long-running operations\n"
    "  group     create, list, show, delete Azure resource groups\n"
    "  vm        create, list, show, delete Azure virtual machines\n"
    "  blob      Azure Blob Storage: ls, mb, rb, put, get, rm; folders in parallel, resumable\n"
    "  queue     Azure Storage Queues: put, get, peek, delete, clear; get --process CMD\n"
    "  secret    Azure Key Vault secrets: get, set, ls, rm\n"
    "  token     get an Entra ID access token from the credential chain (like az)\n"
    "  worker    work on a batch job kept in Redis (batch --redis); any number, any machine\n"
    "  job       a Redis batch job's status, cancel, delete\n"
    "  version   print the version\n"
    "\n"
    "`skyio help <command>` (or `skyio <command> --help`) explains each command's options;\n"
    "`man skyio-<command>` shows the same text once installed.\n"
    "Logging: SKYIO_LOG=trace|debug|info|warn|error (secrets are always redacted).\n";

/* Many connections at once (10,000 in flight) need many descriptors. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    /* `skyio help COMMAND` is `skyio COMMAND --help`. */
    static char help_flag[] = "--help";
    char *help_argv[] = {argv[0], NULL, help_flag, NULL};
    if (argc == 3 && strcmp(argv[1], "help") == 0) {
        help_argv[1] = argv[2];
        argv = help_argv;
        argc = 3;
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? SKY_EXIT_USAGE : SKY_EXIT_OK;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    const char *cmd = argv[1];
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("skyio %s\n", SKYIO_VERSION);
        return SKY_EXIT_OK;
    }
    /* keyvault:// references where a command reads a key: fetched once, before it runs */
    if (sky_cli_secret_refs_resolve(cmd, argc - 1, argv + 1) != 0)
        return SKY_EXIT_START;
    if (strcmp(cmd, "mock") == 0)
        return sky_cli_mock(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0)
        return sky_cli_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "usage") == 0)
        return sky_cli_usage(argc - 1, argv + 1);
    if (strcmp(cmd, "http") == 0)
        return sky_cli_http(argc - 1, argv + 1);
    if (strcmp(cmd, "batch") == 0)
        return sky_cli_batch(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0)
        return sky_cli_report(argc - 1, argv + 1);
    if (strcmp(cmd, "chat") == 0)
        return sky_cli_chat(argc - 1, argv + 1);
    if (strcmp(cmd, "token") == 0)
        return sky_cli_token(argc - 1, argv + 1);
    if (strcmp(cmd, "arm") == 0)
        return sky_cli_arm(argc - 1, argv + 1);
    if (strcmp(cmd, "group") == 0)
        return sky_cli_group(argc - 1, argv + 1);
    if (strcmp(cmd, "vm") == 0)
        return sky_cli_vm(argc - 1, argv + 1);
    if (strcmp(cmd, "blob") == 0)
        return sky_cli_blob(argc - 1, argv + 1);
    if (strcmp(cmd, "queue") == 0)
        return sky_cli_queue(argc - 1, argv + 1);
    if (strcmp(cmd, "secret") == 0)
        return sky_cli_secret(argc - 1, argv + 1);
    if (strcmp(cmd, "worker") == 0)
        return sky_cli_worker(argc - 1, argv + 1);
    if (strcmp(cmd, "job") == 0)
        return sky_cli_job(argc - 1, argv + 1);
    fprintf(stderr, "skyio: unknown command '%s'\n\n%s", cmd, usage);
    return SKY_EXIT_USAGE;
}
