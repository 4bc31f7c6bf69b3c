/*
 * The flags of `skyio arm`, `skyio group` and `skyio vm`: one table, the parser
 * and the --help lines it gives.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/skyio.h"
#include "skyio/arm.h"
#include "cli.h"
#include "cmd_arm.h"

enum { F_STR, F_FLAG, F_SECONDS, F_COUNT, F_TAG };

typedef struct arm_flag {
    const char *name;
    const char *alias;
    int kind;
    size_t offset;
    int mask;
    const char *arg;
    const char *help;
} arm_flag;

#define FO(field) offsetof(sky_cli_arm_flags, field)

static const arm_flag flags[] = {
    {"--subscription", "-s", F_STR, FO(subscription), ARMF_GROUP | ARMF_VM, "ID",
     "subscription id (default $AZURE_SUBSCRIPTION_ID)"},
    {"--resource-group", "-g", F_STR, FO(group), ARMF_VM, "NAME", "the VM's resource group"},
    {"--location", "-l", F_STR, FO(location), ARMF_GROUP | ARMF_VM, "REGION",
     "Azure region, e.g. westeurope (required by create)"},
    {"--tag", NULL, F_TAG, FO(tags), ARMF_GROUP | ARMF_VM, "K=V", "a tag; repeat for several"},
    {"--size", NULL, F_STR, FO(size), ARMF_VM, "SIZE", "VM size (default Standard_B1s)"},
    {"--image", NULL, F_STR, FO(image), ARMF_VM, "P:O:S:V",
     "publisher:offer:sku:version (default\n"
     "                             Canonical:ubuntu-24_04-lts:server:latest)"},
    {"--admin-user", NULL, F_STR, FO(admin_user), ARMF_VM, "NAME",
     "admin user (default azureuser)"},
    {"--ssh-key-file", NULL, F_STR, FO(ssh_key_file), ARMF_VM, "FILE",
     "public SSH key for the admin user (required by create)"},
    {"--nic", NULL, F_STR, FO(nic), ARMF_VM, "ID",
     "resource id of an existing network interface (required by create)"},
    {"--api-version", NULL, F_STR, FO(api_version), ARMF_ALL, "V",
     "api-version (required for arm; group, vm: defaults)"},
    {"--body", NULL, F_STR, FO(body_file), ARMF_ARM, "FILE", "JSON request body"},
    {"--input", NULL, F_STR, FO(input), ARMF_ARM, "FILE.jsonl",
     "arm put: one {\"id\", \"body\"} per line"},
    {"--concurrency", NULL, F_COUNT, FO(concurrency), ARMF_ARM, "N",
     "arm put --input: operations at once (default 8)"},
    {"--wait", NULL, F_FLAG, FO(wait), ARMF_ARM, NULL,
     "wait for the operation to end (default: print its token)"},
    {"--no-wait", NULL, F_FLAG, FO(no_wait), ARMF_GROUP | ARMF_VM, NULL,
     "print the resume token once started instead of waiting"},
    {"--timeout", NULL, F_SECONDS, FO(timeout_s), ARMF_ALL, "S",
     "give up waiting after S seconds (default: no limit)"},
    {"--poll-interval", NULL, F_SECONDS, FO(poll_interval_s), ARMF_ALL, "S",
     "between polls without Retry-After (default 30)"},
    {"--endpoint", NULL, F_STR, FO(endpoint), ARMF_ALL, "URL",
     "ARM endpoint (default $SKYIO_ARM_ENDPOINT, else\n"
     "                             https://management.azure.com)"},
    {"--json", NULL, F_FLAG, FO(json), ARMF_ARM, NULL, "arm put --input: summary as JSON"},
};

void sky_cli_arm_print_flags(FILE *out, int cmd_mask)
{
    for (size_t i = 0; i < SKY_ARRAY_LEN(flags); i++) {
        char left[64];
        if (!(flags[i].mask & cmd_mask))
            continue;
        snprintf(left, sizeof(left), "%s%s%s%s%s", flags[i].alias ? flags[i].alias : "",
                 flags[i].alias ? ", " : "", flags[i].name, flags[i].arg ? " " : "",
                 flags[i].arg ? flags[i].arg : "");
        fprintf(out, "  %-26s %s\n", left, flags[i].help);
    }
    fputs("\nAuth: $SKYIO_ARM_TOKEN when set (a bearer token, e.g. for tests), otherwise the\n"
          "default credential chain (environment, workload identity, managed identity, Azure\n"
          "CLI) for scope <endpoint>/.default (" SKY_ARM_SCOPE " on public Azure).\n"
          "An endpoint that has never answered and cannot be reached (connection refused,\n"
          "unknown host, TLS failure) is not retried: the command stops at once, exit 3.\n",
          out);
}

static const arm_flag *find_flag(const char *a, int mask)
{
    for (size_t i = 0; i < SKY_ARRAY_LEN(flags); i++)
        if ((flags[i].mask & mask) &&
            (strcmp(a, flags[i].name) == 0 || (flags[i].alias && strcmp(a, flags[i].alias) == 0)))
            return &flags[i];
    return NULL;
}

static int set_flag(const char *cmd, const arm_flag *fl, const char *v, sky_cli_arm_flags *f)
{
    char *base = (char *)f;
    switch (fl->kind) {
    case F_FLAG:
        *(int *)(base + fl->offset) = 1;
        return 0;
    case F_STR:
        *(const char **)(base + fl->offset) = v;
        return 0;
    case F_TAG:
        if (f->n_tags == SKY_CLI_ARM_MAX_TAGS || strchr(v, '=') == NULL) {
            fprintf(stderr, "skyio %s: --tag: '%s' is not KEY=VALUE (at most %d tags)\n", cmd, v,
                    SKY_CLI_ARM_MAX_TAGS);
            return -1;
        }
        f->tags[f->n_tags++] = v;
        return 0;
    case F_COUNT:
        return sky_cli_number_opt(cmd, fl->name, v, 1, (long long *)(base + fl->offset));
    default:
        if (sky_cli_parse_double(v, (double *)(base + fl->offset)) < 0 ||
            *(double *)(base + fl->offset) < 0) {
            fprintf(stderr, "skyio %s: %s: '%s' is not a number of seconds >= 0\n", cmd, fl->name,
                    v);
            return -1;
        }
        return 0;
    }
}

int sky_cli_arm_parse(const char *cmd, int cmd_mask, int argc, char **argv, sky_cli_arm_flags *f)
{
    memset(f, 0, sizeof(*f));
    f->concurrency = 8;
    f->poll_interval_s = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            f->help = 1;
            return 0;
        }
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            if (f->n_pos == SKY_CLI_ARM_MAX_POS) {
                fprintf(stderr, "skyio %s: too many arguments ('%s')\n", cmd, a);
                return -1;
            }
            f->pos[f->n_pos++] = a;
            continue;
        }
        const arm_flag *fl = find_flag(a, cmd_mask);
        if (fl == NULL) {
            fprintf(stderr, "skyio %s: unknown option '%s' (see skyio %s --help)\n", cmd, a, cmd);
            return -1;
        }
        if (fl->kind != F_FLAG && i + 1 >= argc) {
            fprintf(stderr, "skyio %s: %s needs a value\n", cmd, a);
            return -1;
        }
        if (set_flag(cmd, fl, fl->kind == F_FLAG ? NULL : argv[++i], f) < 0)
            return -1;
    }
    return 0;
}

const char *sky_cli_arm_subscription(const char *cmd, const sky_cli_arm_flags *f)
{
    const char *s = f->subscription ? f->subscription : getenv("AZURE_SUBSCRIPTION_ID");
    if (s == NULL || *s == '\0' || strchr(s, '/') || strchr(s, '?')) {
        fprintf(stderr,
                "skyio %s: no subscription: give --subscription ID or set AZURE_SUBSCRIPTION_ID\n",
                cmd);
        return NULL;
    }
    return s;
}
