/* `skyio blob`: its usage, its flags as a table, and the checks of its arguments. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd_blob.h"

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

enum { FLAG_SWITCH, FLAG_STRING, FLAG_NUMBER };

static const struct flag_def {
    const char *name, *alias;
    int kind;
    size_t off;    /* of the field in sky_cli_blob_flags */
    long long min; /* a number's least value */
} flag_defs[] = {
    {"--recursive", "-r", FLAG_SWITCH, offsetof(sky_cli_blob_flags, recursive), 0},
    {"--rollback-on-failure", NULL, FLAG_SWITCH, offsetof(sky_cli_blob_flags, rollback), 0},
    {"--no-sync", NULL, FLAG_SWITCH, offsetof(sky_cli_blob_flags, no_sync), 0},
    {"--login", NULL, FLAG_SWITCH, offsetof(sky_cli_blob_flags, login), 0},
    {"--json", NULL, FLAG_SWITCH, offsetof(sky_cli_blob_flags, json), 0},
    {"--connection-string", NULL, FLAG_STRING, offsetof(sky_cli_blob_flags, connstr), 0},
    {"--account-name", NULL, FLAG_STRING, offsetof(sky_cli_blob_flags, name), 0},
    {"--account-key", NULL, FLAG_STRING, offsetof(sky_cli_blob_flags, key), 0},
    {"--sas", NULL, FLAG_STRING, offsetof(sky_cli_blob_flags, sas), 0},
    {"--endpoint", NULL, FLAG_STRING, offsetof(sky_cli_blob_flags, endpoint), 0},
    {"--checksum", NULL, FLAG_STRING, offsetof(sky_cli_blob_flags, checksum), 0},
    {"--parallel", "-j", FLAG_NUMBER, offsetof(sky_cli_blob_flags, parallel), 1},
    {"--concurrency", NULL, FLAG_NUMBER, offsetof(sky_cli_blob_flags, concurrency), 1},
    {"--block-size", NULL, FLAG_NUMBER, offsetof(sky_cli_blob_flags, block_size), 1024},
};

static const struct flag_def *flag_find(const char *o)
{
    for (size_t i = 0; i < SKY_ARRAY_LEN(flag_defs); i++)
        if (strcmp(o, flag_defs[i].name) == 0 ||
            (flag_defs[i].alias && strcmp(o, flag_defs[i].alias) == 0))
            return &flag_defs[i];
    return NULL;
}

/* Option @p o, with its value after '=' (@p eq) or in the next argument. 0 or -1. */
static int flag_set(sky_cli_blob_flags *f, const struct flag_def *d, const char *o, const char *eq,
                    int argc, char **argv, int *i)
{
    char *field = (char *)f + d->off;
    if (d->kind == FLAG_SWITCH && eq) {
        fprintf(stderr, "skyio blob: %s takes no value\n%s", o, sky_cli_blob_usage);
        return -1;
    }
    if (d->kind == FLAG_SWITCH) {
        *(int *)(void *)field = 1;
        return 0;
    }
    if (!eq && *i + 1 >= argc) {
        fprintf(stderr, "skyio blob: %s needs a value\n%s", o, sky_cli_blob_usage);
        return -1;
    }
    const char *v = eq ? eq + 1 : argv[++*i];
    if (d->kind == FLAG_STRING) {
        *(const char **)(void *)field = v;
        return 0;
    }
    return sky_cli_number_opt("blob", o, v, d->min, (long long *)(void *)field);
}

/* 0, 1 after --help, or -1 after saying what is wrong. */
int sky_cli_blob_parse_flags(sky_cli_blob_flags *f, int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        /* "--opt=value": split it, so the value is never echoed (it may be a key or a SAS). */
        const char *eq = strncmp(o, "--", 2) == 0 ? strchr(o, '=') : NULL;
        char oname[64];
        if (eq) {
            snprintf(oname, sizeof(oname), "%.*s", (int)(eq - o), o);
            o = oname;
        }
        const struct flag_def *d = flag_find(o);
        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            fputs(sky_cli_blob_usage, stdout);
            return 1;
        } else if (d && flag_set(f, d, o, eq, argc, argv, &i) != 0) {
            return -1;
        } else if (d == NULL && o[0] == '-' && o[1] != '\0') {
            fprintf(stderr, "skyio blob: unknown option '%s'\n%s", o, sky_cli_blob_usage);
            return -1;
        } else if (d == NULL && f->nargs < 3) {
            f->args[f->nargs++] = o;
        } else if (d == NULL) {
            fprintf(stderr, "skyio blob: too many arguments\n%s", sky_cli_blob_usage);
            return -1;
        }
    }
    return 0;
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
