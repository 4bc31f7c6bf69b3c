/* `skyio blob`: its usage, its flags as a table, and the checks of its arguments. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd_blob.h"
#include "storage_flags.h"

const char sky_cli_blob_usage[] =
    "usage: skyio blob <command> [options] ARGS\n"
    "\n"
    "Azure Blob Storage from the command line, many files in parallel.\n"
    "\n"
    "commands:\n"
    "  ls [CONTAINER[/PREFIX]]       list containers, or blobs one level deep (-r: all)\n"
    "  mb CONTAINER                  make a container\n"
    "  rb CONTAINER                  remove a container and everything in it\n"
    "  put FILE CONTAINER[/NAME]     upload a file (NAME ending in / or absent: FILE's name)\n"
    "  put -r DIR CONTAINER[/PREFIX] upload every file under DIR; a rerun skips files whose\n"
    "                                size and MD5 match the blob (sync)\n"
    "  get CONTAINER/NAME PATH       download a blob (PATH a folder: into it)\n"
    "  get -r CONTAINER[/PREFIX] DIR download every blob under PREFIX into DIR (made once\n"
    "                                the listing worked). Refused, each with its reason: a\n"
    "                                name that is absolute or has an empty, '.' or '..'\n"
    "                                part, a part over NAME_MAX (255) bytes, and a path\n"
    "                                through a symbolic link inside DIR: links there are\n"
    "                                never followed, even those that stay inside DIR\n"
    "  rm CONTAINER/NAME             delete a blob (-r: every blob under the prefix)\n"
    "\n"
    "options:\n"
    "  -r, --recursive             folders and prefixes, as above\n"
    "  -j, --parallel N            files at once (default 8)\n"
    "      --concurrency N         blocks or ranges in flight per file (default 4)\n"
    "      --block-size BYTES      block and range size (default 4194304)\n"
    "      --rollback-on-failure   put -r: when any file fails, delete what this run uploaded\n"
    "      --no-sync               put -r: upload every file even when unchanged\n"
    "      --checksum MODE         md5 (default): put hashes each file and stores its MD5\n"
    "                              on the blob, and sends a Content-MD5 with every block,\n"
    "                              which the service checks; get checks the file against\n"
    "                              the blob's MD5 (when it has one) before keeping it.\n"
    "                              none: no hashing (the Python SDK's default; much less\n"
    "                              CPU for big files), except that put -r still hashes a\n"
    "                              file whose blob has the same size and an MD5, to know\n"
    "                              whether it changed\n"
    "      --json                  print the summary as one JSON object on stdout\n"
    "      --connection-string S   (default $AZURE_STORAGE_CONNECTION_STRING)\n"
    "      --account-name N        with --account-key or --sas\n"
    "      --account-key KEY       Shared Key\n"
    "      --sas TOKEN             a SAS token (account or container)\n"
    "      --endpoint URL          Blob endpoint (default https://N.blob.core.windows.net)\n"
    "      --login                 Entra ID: a token from the credential chain (environment,\n"
    "                              workload identity, managed identity, Azure CLI)\n"
    "\n"
    "Progress (files, bytes, bytes/s, ETA) goes to stderr when it is a terminal; failed\n"
    "files are listed at the end while the others finish. Ctrl-C cancels what is running.\n"
    "Blob names are at most 1,024 characters (Azure's limit). An endpoint that has never\n"
    "answered and cannot be reached (connection refused, unknown host, TLS failure) is not\n"
    "retried: the command stops at once, having transferred nothing.\n"
    "exit: 0 all done; 1 some files failed; 2 usage; 3 could not start (credentials,\n"
    "network, unreachable endpoint, missing container).\n";

/* ---- flags ---- */

static const sky_cli_flag_def flag_defs[] = {
    {"--recursive", "-r", SKY_CLI_FLAG_SWITCH, offsetof(sky_cli_blob_flags, recursive), 0},
    {"--rollback-on-failure", NULL, SKY_CLI_FLAG_SWITCH, offsetof(sky_cli_blob_flags, rollback), 0},
    {"--no-sync", NULL, SKY_CLI_FLAG_SWITCH, offsetof(sky_cli_blob_flags, no_sync), 0},
    {"--login", NULL, SKY_CLI_FLAG_SWITCH, offsetof(sky_cli_blob_flags, login), 0},
    {"--json", NULL, SKY_CLI_FLAG_SWITCH, offsetof(sky_cli_blob_flags, json), 0},
    {"--connection-string", NULL, SKY_CLI_FLAG_STRING, offsetof(sky_cli_blob_flags, connstr), 0},
    {"--account-name", NULL, SKY_CLI_FLAG_STRING, offsetof(sky_cli_blob_flags, name), 0},
    {"--account-key", NULL, SKY_CLI_FLAG_STRING, offsetof(sky_cli_blob_flags, key), 0},
    {"--sas", NULL, SKY_CLI_FLAG_STRING, offsetof(sky_cli_blob_flags, sas), 0},
    {"--endpoint", NULL, SKY_CLI_FLAG_STRING, offsetof(sky_cli_blob_flags, endpoint), 0},
    {"--checksum", NULL, SKY_CLI_FLAG_STRING, offsetof(sky_cli_blob_flags, checksum), 0},
    {"--parallel", "-j", SKY_CLI_FLAG_NUMBER, offsetof(sky_cli_blob_flags, parallel), 1},
    {"--concurrency", NULL, SKY_CLI_FLAG_NUMBER, offsetof(sky_cli_blob_flags, concurrency), 1},
    {"--block-size", NULL, SKY_CLI_FLAG_NUMBER, offsetof(sky_cli_blob_flags, block_size), 1024},
};

/* 0, 1 after --help, or -1 after saying what is wrong. */
int sky_cli_blob_parse_flags(sky_cli_blob_flags *f, int argc, char **argv)
{
    static const sky_cli_flag_table table = {"blob", sky_cli_blob_usage, 1, flag_defs,
                                             SKY_ARRAY_LEN(flag_defs)};
    return sky_cli_storage_parse_flags(&table, f, f->args, &f->nargs, argc, argv);
}

int sky_cli_blob_verb_of(const char *s)
{
    static const char *const names[] = {"ls", "mb", "rb", "put", "get", "rm"};
    for (int i = 0; i < 6; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* The number of arguments, --checksum and the arguments' lengths: 0 or an exit code. */
int sky_cli_blob_check_args(int verb, const sky_cli_blob_flags *f)
{
    static const int want_min[] = {0, 1, 1, 2, 2, 1}, want_max[] = {1, 1, 1, 2, 2, 1};
    if (f->nargs < want_min[verb] || f->nargs > want_max[verb]) {
        fprintf(stderr, "skyio blob: wrong number of arguments\n%s", sky_cli_blob_usage);
        return SKY_EXIT_USAGE;
    }
    if (f->checksum && strcmp(f->checksum, "md5") != 0 && strcmp(f->checksum, "none") != 0) {
        fprintf(stderr, "skyio blob: --checksum: '%s' is not md5 or none\n", f->checksum);
        return SKY_EXIT_USAGE;
    }
    for (int i = 0; i < f->nargs && i < 2; i++)
        if (strlen(f->args[i]) >= ARG_MAX_BYTES) {
            fprintf(stderr,
                    "skyio blob: argument %d is %zu bytes: too long for a blob name or a path\n",
                    i + 1, strlen(f->args[i]));
            return SKY_EXIT_USAGE;
        }
    return 0;
}
