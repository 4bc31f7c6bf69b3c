/* `skyio group`: create, list, show and delete resource groups. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/skyio.h"
#include "cli.h"
#include "cmd_arm.h"

#define GROUP_API "2021-04-01"

static const char usage[] =
    "usage: skyio group create NAME --location REGION [--tag K=V ...] [--no-wait]\n"
    "       skyio group list\n"
    "       skyio group show NAME\n"
    "       skyio group delete NAME [--no-wait]\n"
    "\n"
    "Azure resource groups of a subscription. create and delete wait for the operation to end\n"
    "with a progress line on stderr, unless --no-wait (then the resume token is printed and\n"
    "`skyio arm wait TOKEN` waits). show prints the group as JSON, list one group per line.\n"
    "Deleting a group deletes everything in it.\n"
    "\n"
    "Exit: 0 done; 1 the service refused or the operation failed; 2 usage; 3 could not start.\n"
    "\n"
    "options:\n";

/* {"location": ..., "tags": {...}} from the flags. */
static char *group_body(const sky_cli_arm_flags *f, size_t *len)
{
    json_t *tags = json_object();
    for (int i = 0; tags && i < f->n_tags; i++) {
        const char *eq = strchr(f->tags[i], '=');
        char key[256];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - f->tags[i]), f->tags[i]);
        json_object_set_new(tags, key, json_string(eq + 1));
    }
    json_t *j = tags ? json_pack("{s:s,s:o}", "location", f->location, "tags", tags) : NULL;
    char *s = j ? sky_json_dump(j, len) : NULL;
    json_decref(j);
    return s;
}

static int check(const sky_cli_arm_flags *f, const char *verb)
{
    int want = strcmp(verb, "list") == 0 ? 1 : 2;
    if (f->n_pos != want) {
        fprintf(stderr, "skyio group %s: %s\n", verb,
                want == 1 ? "takes no NAME" : "expected one NAME");
        return -1;
    }
    if (want == 2 && (strchr(f->pos[1], '/') || strchr(f->pos[1], '?'))) {
        fprintf(stderr, "skyio group %s: '%s' is not a group name\n", verb, f->pos[1]);
        return -1;
    }
    if (strcmp(verb, "create") == 0 && f->location == NULL) {
        fprintf(stderr, "skyio group create: --location is required\n");
        return -1;
    }
    return 0;
}

static int run(sky_cli_arm_ctx *c, const sky_cli_arm_flags *f, const char *verb, const char *sub)
{
    char path[1024], what[300];
    const char *api = f->api_version ? f->api_version : GROUP_API;
    if (strcmp(verb, "list") == 0) {
        snprintf(path, sizeof(path), "/subscriptions/%s/resourcegroups", sub);
        return sky_cli_arm_run_list(c, path, api);
    }
    snprintf(path, sizeof(path), "/subscriptions/%s/resourceGroups/%s", sub, f->pos[1]);
    snprintf(what, sizeof(what), "%s group %s", verb, f->pos[1]);
    if (strcmp(verb, "show") == 0)
        return sky_cli_arm_run_get(c, path, api);
    size_t len = 0;
    char *body = strcmp(verb, "create") == 0 ? group_body(f, &len) : NULL;
    sky_cli_arm_op op = {strcmp(verb, "create") == 0 ? "PUT" : "DELETE",
                         path,
                         api,
                         sky_span_make(body, len),
                         !f->no_wait,
                         1,
                         what};
    int rc = sky_cli_arm_run_op(c, &op, NULL, f);
    free(body);
    return rc;
}

int sky_cli_group(int argc, char **argv)
{
    sky_cli_arm_flags f;
    if (sky_cli_arm_parse("group", ARMF_GROUP, argc, argv, &f) < 0)
        return SKY_EXIT_USAGE;
    if (f.help) {
        fputs(usage, stdout);
        sky_cli_arm_print_flags(stdout, ARMF_GROUP);
        return SKY_EXIT_OK;
    }
    const char *verb = f.pos[0];
    if (verb == NULL || (strcmp(verb, "create") && strcmp(verb, "list") && strcmp(verb, "show") &&
                         strcmp(verb, "delete"))) {
        fprintf(stderr, "skyio group: expected create|list|show|delete (see --help)\n");
        return SKY_EXIT_USAGE;
    }
    const char *sub = sky_cli_arm_subscription("group", &f);
    if (sub == NULL || check(&f, verb) < 0)
        return SKY_EXIT_USAGE;
    sky_cli_arm_ctx c;
    int rc = sky_cli_arm_open(&c, "group", &f);
    if (rc != 0)
        return rc;
    rc = run(&c, &f, verb, sub);
    sky_cli_arm_close(&c);
    return rc;
}
