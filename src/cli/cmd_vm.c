/* `skyio vm`: create, list, show and delete virtual machines (the common case). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/skyio.h"
#include "cli.h"
#include "cmd_arm.h"

#define VM_API SKY_ARM_VM_API_VERSION
#define VM_TYPE "providers/Microsoft.Compute/virtualMachines"

static const char usage[] =
    "usage: skyio vm create NAME -g GROUP --location REGION --nic NIC_ID --ssh-key-file FILE\n"
    "                [--size SIZE] [--image PUBLISHER:OFFER:SKU:VERSION] [--admin-user NAME]\n"
    "                [--tag K=V ...] [--no-wait]\n"
    "       skyio vm list [-g GROUP]\n"
    "       skyio vm show NAME -g GROUP\n"
    "       skyio vm delete NAME -g GROUP [--no-wait]\n"
    "\n"
    "Linux virtual machines (Microsoft.Compute/virtualMachines) on an existing network\n"
    "interface, with SSH key login only. create and delete wait for the operation to end with\n"
    "a progress line on stderr, unless --no-wait (then the resume token is printed and\n"
    "`skyio arm wait TOKEN` waits). list prints one VM per line: of GROUP, or of the whole\n"
    "subscription without -g.\n"
    "\n"
    "Exit: 0 done; 1 the service refused or the operation failed; 2 usage; 3 could not start.\n"
    "\n"
    "options:\n";

/* The VM body (the library's sky_arm_vm_body) from the flags and the key file. */
static char *vm_body(const sky_cli_arm_flags *f, const char *name, size_t *len)
{
    sky_arm_vm_spec spec;
    sky_error err;
    size_t key_len = 0;
    if (sky_cli_check_input_file("vm create", "--ssh-key-file", f->ssh_key_file) < 0)
        return NULL;
    char *key = sky_cli_read_file(f->ssh_key_file, &key_len);
    if (key == NULL) {
        fprintf(stderr, "skyio vm create: --ssh-key-file %s: cannot read it\n", f->ssh_key_file);
        return NULL;
    }
    sky_arm_vm_spec_init(&spec);
    spec.location = f->location;
    spec.nic_id = f->nic;
    spec.ssh_public_key = key;
    spec.size = f->size ? f->size : spec.size;
    spec.image = f->image ? f->image : spec.image;
    spec.admin_user = f->admin_user ? f->admin_user : spec.admin_user;
    spec.tags = f->tags;
    spec.n_tags = (size_t)f->n_tags;
    sky_error_clear(&err);
    char *body = sky_arm_vm_body(&spec, name, len, &err);
    if (body == NULL)
        fprintf(stderr, "skyio vm create: %s\n", err.message);
    free(key);
    return body;
}

static int check(const sky_cli_arm_flags *f, const char *verb)
{
    int is_list = strcmp(verb, "list") == 0;
    if (f->n_pos != (is_list ? 1 : 2)) {
        fprintf(stderr, "skyio vm %s: %s\n", verb, is_list ? "takes no NAME" : "expected one NAME");
        return -1;
    }
    if (!is_list && (strchr(f->pos[1], '/') || strchr(f->pos[1], '?'))) {
        fprintf(stderr, "skyio vm %s: '%s' is not a VM name\n", verb, f->pos[1]);
        return -1;
    }
    if (!is_list && f->group == NULL) {
        fprintf(stderr, "skyio vm %s: -g/--resource-group is required\n", verb);
        return -1;
    }
    if (strcmp(verb, "create") == 0 && (!f->location || !f->nic || !f->ssh_key_file)) {
        fprintf(stderr, "skyio vm create: --location, --nic and --ssh-key-file are required\n");
        return -1;
    }
    return 0;
}

static int run(sky_cli_arm_ctx *c, const sky_cli_arm_flags *f, const char *verb, const char *sub)
{
    char path[1024], what[300];
    const char *api = f->api_version ? f->api_version : VM_API;
    if (strcmp(verb, "list") == 0) {
        if (f->group)
            snprintf(path, sizeof(path), "/subscriptions/%s/resourceGroups/%s/" VM_TYPE, sub,
                     f->group);
        else
            snprintf(path, sizeof(path), "/subscriptions/%s/" VM_TYPE, sub);
        return sky_cli_arm_run_list(c, path, api);
    }
    snprintf(path, sizeof(path), "/subscriptions/%s/resourceGroups/%s/" VM_TYPE "/%s", sub,
             f->group, f->pos[1]);
    snprintf(what, sizeof(what), "%s vm %s", verb, f->pos[1]);
    if (strcmp(verb, "show") == 0)
        return sky_cli_arm_run_get(c, path, api);
    size_t len = 0;
    char *body = NULL;
    if (strcmp(verb, "create") == 0 && (body = vm_body(f, f->pos[1], &len)) == NULL)
        return SKY_EXIT_USAGE;
    sky_cli_arm_op op = {
        body ? "PUT" : "DELETE", path, api, sky_span_make(body, len), !f->no_wait, 1, what};
    int rc = sky_cli_arm_run_op(c, &op, NULL, f);
    free(body);
    return rc;
}

int sky_cli_vm(int argc, char **argv)
{
    sky_cli_arm_flags f;
    if (sky_cli_arm_parse("vm", ARMF_VM, argc, argv, &f) < 0)
        return SKY_EXIT_USAGE;
    if (f.help) {
        fputs(usage, stdout);
        sky_cli_arm_print_flags(stdout, ARMF_VM);
        return SKY_EXIT_OK;
    }
    const char *verb = f.pos[0];
    if (verb == NULL || (strcmp(verb, "create") && strcmp(verb, "list") && strcmp(verb, "show") &&
                         strcmp(verb, "delete"))) {
        fprintf(stderr, "skyio vm: expected create|list|show|delete (see --help)\n");
        return SKY_EXIT_USAGE;
    }
    const char *sub = sky_cli_arm_subscription("vm", &f);
    if (sub == NULL || check(&f, verb) < 0)
        return SKY_EXIT_USAGE;
    sky_cli_arm_ctx c;
    int rc = sky_cli_arm_open(&c, "vm", &f);
    if (rc != 0)
        return rc;
    rc = run(&c, &f, verb, sub);
    sky_cli_arm_close(&c);
    return rc;
}
