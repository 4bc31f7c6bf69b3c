/*
 * Virtual machines in the mock's Resource Manager (Microsoft.Compute/virtualMachines):
 * the fields a create must carry, what ARM hides or adds in its answer (no admin
 * password, a vmId), and the power state that powerOff, deallocate, start and restart
 * move and the instance view reports. Written from the REST reference of Virtual
 * Machines (Create Or Update, Instance View, Power Off, Start).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "skyio/json.h"
#include "internal.h"

/* Kept in the stored resource, removed from every answer by arm.c. */
#define POWER_KEY SKY__MOCK_ARM_PRIVATE "power"

int sky__mock_vm_is(const char *type)
{
    return strcasecmp(type, "Microsoft.Compute/virtualMachines") == 0;
}

const char *sky__mock_vm_problem(const json_t *req)
{
    if (!json_is_string(sky_json_path(req, "properties.hardwareProfile.vmSize")))
        return "properties.hardwareProfile.vmSize";
    if (!json_is_object(sky_json_path(req, "properties.storageProfile.imageReference")))
        return "properties.storageProfile.imageReference";
    if (!json_is_string(sky_json_path(req, "properties.osProfile.adminUsername")))
        return "properties.osProfile.adminUsername";
    if (!json_is_string(sky_json_path(req, "properties.networkProfile.networkInterfaces.0.id")))
        return "properties.networkProfile.networkInterfaces[0].id";
    return NULL;
}

/* ARM never returns secrets it was given: the password and customData go. */
void sky__mock_vm_created(json_t *res, uint64_t serial)
{
    char vm_id[64];
    json_t *props = json_object_get(res, "properties");
    json_t *os = json_object_get(props, "osProfile");
    json_object_del(os, "adminPassword");
    json_object_del(os, "customData");
    snprintf(vm_id, sizeof(vm_id), "00000000-0000-4000-8000-%012llx", (unsigned long long)serial);
    json_object_set_new(props, "vmId", json_string(vm_id));
    json_object_set_new(res, POWER_KEY, json_string("running"));
}

void sky__mock_vm_action_done(json_t *res, const char *action)
{
    const char *state = NULL;
    if (strcasecmp(action, "powerOff") == 0)
        state = "stopped";
    else if (strcasecmp(action, "deallocate") == 0)
        state = "deallocated";
    else if (strcasecmp(action, "start") == 0 || strcasecmp(action, "restart") == 0)
        state = "running";
    if (state && json_object_get(res, POWER_KEY))
        json_object_set_new(res, POWER_KEY, json_string(state));
}

static json_t *status(const char *code, const char *display)
{
    return json_pack("{s:s,s:s,s:s}", "code", code, "level", "Info", "displayStatus", display);
}

json_t *sky__mock_vm_instance_view(const json_t *res)
{
    char code[64], display[64];
    const char *prov = sky_json_str(sky_json_path(res, "properties"), "provisioningState", "");
    const char *power = sky_json_str(res, POWER_KEY, "running");
    json_t *statuses = json_array();
    snprintf(code, sizeof(code), "ProvisioningState/%s", prov);
    for (char *c = code + sizeof("ProvisioningState/") - 1; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    snprintf(display, sizeof(display), "Provisioning %s",
             strcasecmp(prov, "Succeeded") == 0 ? "succeeded" : prov);
    json_array_append_new(statuses, status(code, display));
    snprintf(code, sizeof(code), "PowerState/%s", power);
    snprintf(display, sizeof(display), "VM %s", power);
    json_array_append_new(statuses, status(code, display));
    const char *name = sky_json_str(sky_json_path(res, "properties.osProfile"), "computerName",
                                    sky_json_str(res, "name", ""));
    return json_pack("{s:s,s:o}", "computerName", name, "statuses", statuses);
}
