/* The body of a Linux virtual machine for ARM (Microsoft.Compute/virtualMachines): the size,
 * the image, an admin user that logs in with an SSH key only, the network interface. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/arm.h"
#include "skyio/json.h"

#define DEFAULT_IMAGE "Canonical:ubuntu-24_04-lts:server:latest"

void sky_arm_vm_spec_init(sky_arm_vm_spec *s)
{
    memset(s, 0, sizeof(*s));
    s->size = "Standard_B1s";
    s->image = DEFAULT_IMAGE;
    s->admin_user = "azureuser";
}

/* "PUBLISHER:OFFER:SKU:VERSION" as ARM's imageReference; NULL when it is not that. */
static json_t *image_ref(const char *image)
{
    char parts[4][128];
    const char *p = image;
    for (int i = 0; i < 4; i++) {
        size_t n = strcspn(p, ":");
        if (n == 0 || n >= sizeof(parts[i]) || (i < 3 && p[n] != ':') || (i == 3 && p[n]))
            return NULL;
        memcpy(parts[i], p, n);
        parts[i][n] = '\0';
        p += n + (i < 3);
    }
    return json_pack("{s:s,s:s,s:s,s:s}", "publisher", parts[0], "offer", parts[1], "sku", parts[2],
                     "version", parts[3]);
}

/* The tags as an object; NULL with @p err when one is not KEY=VALUE (or out of memory). */
static json_t *tags_of(const sky_arm_vm_spec *s, sky_error *err)
{
    json_t *tags = json_object();
    for (size_t i = 0; tags && i < s->n_tags; i++) {
        const char *t = s->tags[i], *eq = t ? strchr(t, '=') : NULL;
        char key[256];
        if (eq == NULL || eq == t || (size_t)(eq - t) >= sizeof(key)) {
            json_decref(tags);
            sky_error_set(err, SKY_EINVAL, "tag '%s' is not KEY=VALUE", t ? t : "");
            return NULL;
        }
        memcpy(key, t, (size_t)(eq - t));
        key[eq - t] = '\0';
        if (json_object_set_new(tags, key, json_string(eq + 1)) < 0) {
            json_decref(tags);
            tags = NULL;
        }
    }
    if (tags == NULL && err->code == 0)
        sky_error_set(err, SKY_ENOMEM, "out of memory");
    return tags;
}

static const char *missing(const sky_arm_vm_spec *s, const char *name)
{
    return !name || !*name                             ? "a name"
           : !s->location || !*s->location             ? "a location"
           : !s->nic_id || !*s->nic_id                 ? "a network interface"
           : !s->ssh_public_key || !*s->ssh_public_key ? "an SSH public key"
           : !s->size || !s->image || !s->admin_user   ? "a size, an image and an admin user"
                                                       : NULL;
}

/* The key without its trailing newline, as authorized_keys takes one line. */
static char *key_line(const char *key)
{
    size_t n = strlen(key);
    while (n > 0 && (key[n - 1] == '\n' || key[n - 1] == '\r'))
        n--;
    char *k = malloc(n + 1);
    if (k) {
        memcpy(k, key, n);
        k[n] = '\0';
    }
    return k;
}

static json_t *vm_json(const sky_arm_vm_spec *s, const char *name, json_t *img, json_t *tags,
                       const char *key)
{
    char key_path[300];
    snprintf(key_path, sizeof(key_path), "/home/%s/.ssh/authorized_keys", s->admin_user);
    return json_pack(
        "{s:s,s:o,s:{s:{s:s},s:{s:o,s:{s:s,s:{s:s}}},s:{s:s,s:s,s:{s:b,s:{s:[{s:s,s:s}]}}},"
        "s:{s:[{s:s}]}}}",
        "location", s->location, "tags", tags, "properties", "hardwareProfile", "vmSize", s->size,
        "storageProfile", "imageReference", img, "osDisk", "createOption", "FromImage",
        "managedDisk", "storageAccountType", "Standard_LRS", "osProfile", "computerName", name,
        "adminUsername", s->admin_user, "linuxConfiguration", "disablePasswordAuthentication", 1,
        "ssh", "publicKeys", "path", key_path, "keyData", key, "networkProfile",
        "networkInterfaces", "id", s->nic_id);
}

char *sky_arm_vm_body(const sky_arm_vm_spec *s, const char *name, size_t *out_len, sky_error *err)
{
    sky_error local;
    if (err == NULL) {
        sky_error_clear(&local);
        err = &local;
    }
    const char *what = s ? missing(s, name) : "a spec";
    if (what) {
        sky_error_set(err, SKY_EINVAL, "a virtual machine needs %s", what);
        return NULL;
    }
    json_t *img = image_ref(s->image);
    if (img == NULL) {
        sky_error_set(err, SKY_EINVAL, "image '%s' is not PUBLISHER:OFFER:SKU:VERSION", s->image);
        return NULL;
    }
    json_t *tags = tags_of(s, err);
    char *key = tags ? key_line(s->ssh_public_key) : NULL;
    /* json_pack takes img and tags ("o") even when it fails */
    json_t *j = tags && key ? vm_json(s, name, img, tags, key) : NULL;
    if (!(tags && key)) {
        json_decref(img);
        json_decref(tags);
    }
    free(key);
    char *text = j ? sky_json_dump(j, out_len) : NULL;
    json_decref(j);
    if (text == NULL && err->code == 0)
        sky_error_set(err, SKY_ENOMEM, "out of memory");
    return text;
}
