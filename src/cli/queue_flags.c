/* `skyio queue`: its usage, its flags as a table, and the count of its arguments. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd_queue.h"
#include "storage_flags.h"

const char sky_cli_queue_usage[] =
    "usage: skyio queue <command> [options] ARGS\n"
    "\n"
    "Azure Storage Queues from the command line.\n"
    "\n"
    "commands:\n"
    "  ls [PREFIX]              list queues (--json: with nothing more per line)\n"
    "  mk QUEUE                 make a queue\n"
    "  rm QUEUE                 remove a queue and its messages\n"
    "  info QUEUE               approximate message count and metadata\n"
    "  put QUEUE [TEXT]         put a message (TEXT, --file PATH, or stdin); prints its id\n"
    "  get QUEUE                get messages (-n N), hidden --visibility S seconds; prints\n"
    "                           each one's text (--json: id, pop receipt, count, text)\n"
    "  get QUEUE --process CMD  hand each message to `sh -c CMD` on its stdin (with\n"
    "                           SKYIO_QUEUE_MESSAGE_ID and SKYIO_QUEUE_DEQUEUE_COUNT set),\n"
    "                           one at a time; delete it only when CMD exits 0, otherwise\n"
    "                           it comes back after its visibility timeout (at least\n"
    "                           once). The timeout is extended while CMD runs. Stops when\n"
    "                           the queue is empty (--wait: keeps polling) or after --max\n"
    "  peek QUEUE               look at messages (-n N) without hiding them\n"
    "  delete QUEUE ID RECEIPT  delete one message by its pop receipt\n"
    "  clear QUEUE              delete every message\n"
    "\n"
    "options:\n"
    "  -n, --count N             messages per get or peek, 1..32 (default 1)\n"
    "      --visibility S        get: seconds hidden from other readers (default 30)\n"
    "      --delay S             put: seconds before it can be got (default 0)\n"
    "      --ttl S               put: seconds it lives (-1: forever; default 7 days)\n"
    "      --file PATH           put: the message from a file\n"
    "      --raw                 text as it is; default: base64, as the Azure SDKs write it\n"
    "      --process CMD         get: the loop above\n"
    "      --max N               get --process: at most N messages\n"
    "      --wait                get --process: poll an empty queue instead of stopping\n"
    "      --json                one JSON object per line on stdout\n"
    "      --connection-string S (default $AZURE_STORAGE_CONNECTION_STRING)\n"
    "      --account-name N      with --account-key or --sas\n"
    "      --account-key KEY     Shared Key (or keyvault://VAULT/NAME: read at start)\n"
    "      --sas TOKEN           a SAS token\n"
    "      --endpoint URL        Queue endpoint (default https://N.queue.core.windows.net,\n"
    "                            or the connection string's QueueEndpoint)\n"
    "      --login               Entra ID: a token from the credential chain\n"
    "\n"
    "Queue names: 3-63 characters, lower-case letters, digits and single hyphens, starting\n"
    "and ending with a letter or digit. A message is at most 64 KiB as sent (48 KiB of\n"
    "text once base64-encoded).\n"
    "exit: 0 done; 1 failed (or a --process command failed); 2 usage; 3 could not start\n"
    "(credentials, network, a keyvault:// reference that cannot be read).\n";

/* ---- flags ---- */

static const sky_cli_flag_def flag_defs[] = {
    {"--json", NULL, SKY_CLI_FLAG_SWITCH, offsetof(sky_cli_queue_flags, json), 0},
    {"--raw", NULL, SKY_CLI_FLAG_SWITCH, offsetof(sky_cli_queue_flags, raw), 0},
    {"--login", NULL, SKY_CLI_FLAG_SWITCH, offsetof(sky_cli_queue_flags, login), 0},
    {"--wait", NULL, SKY_CLI_FLAG_SWITCH, offsetof(sky_cli_queue_flags, wait), 0},
    {"--connection-string", NULL, SKY_CLI_FLAG_STRING, offsetof(sky_cli_queue_flags, connstr), 0},
    {"--account-name", NULL, SKY_CLI_FLAG_STRING, offsetof(sky_cli_queue_flags, name), 0},
    {"--account-key", NULL, SKY_CLI_FLAG_STRING, offsetof(sky_cli_queue_flags, key), 0},
    {"--sas", NULL, SKY_CLI_FLAG_STRING, offsetof(sky_cli_queue_flags, sas), 0},
    {"--endpoint", NULL, SKY_CLI_FLAG_STRING, offsetof(sky_cli_queue_flags, endpoint), 0},
    {"--process", NULL, SKY_CLI_FLAG_STRING, offsetof(sky_cli_queue_flags, process), 0},
    {"--file", NULL, SKY_CLI_FLAG_STRING, offsetof(sky_cli_queue_flags, file), 0},
    {"--count", "-n", SKY_CLI_FLAG_NUMBER, offsetof(sky_cli_queue_flags, count), 1},
    {"--visibility", NULL, SKY_CLI_FLAG_NUMBER, offsetof(sky_cli_queue_flags, visibility), 0},
    {"--delay", NULL, SKY_CLI_FLAG_NUMBER, offsetof(sky_cli_queue_flags, delay), 0},
    {"--ttl", NULL, SKY_CLI_FLAG_NUMBER, offsetof(sky_cli_queue_flags, ttl), -1},
    {"--max", NULL, SKY_CLI_FLAG_NUMBER, offsetof(sky_cli_queue_flags, max), 1},
};

/* 0, 1 after --help, or -1 after saying what is wrong. */
int sky_cli_queue_parse_flags(sky_cli_queue_flags *f, int argc, char **argv)
{
    static const sky_cli_flag_table table = {"queue", sky_cli_queue_usage, 0, flag_defs,
                                             SKY_ARRAY_LEN(flag_defs)};
    return sky_cli_storage_parse_flags(&table, f, f->args, &f->nargs, argc, argv);
}

int sky_cli_queue_check_args(const char *verb, const sky_cli_queue_flags *f)
{
    static const struct {
        const char *verb;
        int min, max;
    } arity[] = {{"ls", 0, 1},  {"mk", 1, 1},   {"rm", 1, 1},     {"info", 1, 1}, {"put", 1, 2},
                 {"get", 1, 1}, {"peek", 1, 1}, {"delete", 3, 3}, {"clear", 1, 1}};
    for (size_t i = 0; i < SKY_ARRAY_LEN(arity); i++)
        if (strcmp(verb, arity[i].verb) == 0) {
            if (f->nargs >= arity[i].min && f->nargs <= arity[i].max)
                return 0;
            fprintf(stderr, "skyio queue %s: wrong number of arguments\n%s", verb,
                    sky_cli_queue_usage);
            return SKY_EXIT_USAGE;
        }
    fprintf(stderr, "skyio queue: unknown command '%s'\n%s", verb, sky_cli_queue_usage);
    return SKY_EXIT_USAGE;
}
