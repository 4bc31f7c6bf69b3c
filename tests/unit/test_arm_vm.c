/* sky_arm_vm_body: the VM's PUT body from a spec, its defaults, and what it refuses. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/arm.h"
#include "skyio/json.h"

#define NIC "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkInterfaces/n"

static void spec_of(sky_arm_vm_spec *s)
{
    sky_arm_vm_spec_init(s);
    s->location = "westeurope";
    s->nic_id = NIC;
    s->ssh_public_key = "ssh-ed25519 AAAAkey user@host\r\n";
}

static json_t *body_json(const sky_arm_vm_spec *s, const char *name)
{
    sky_error err;
    size_t len = 0;
    json_t *j = NULL;
    sky_error_clear(&err);
    char *text = sky_arm_vm_body(s, name, &len, &err);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    assert_int_equal(sky_json_parse(sky_span_make(text, len), &j, NULL), 0);
    free(text);
    return j;
}

static const char *str_at(const json_t *j, const char *path)
{
    return json_string_value(sky_json_path(j, path));
}

static void test_defaults_and_fields(void **state)
{
    sky_arm_vm_spec s;
    (void)state;
    spec_of(&s);
    json_t *j = body_json(&s, "vm1");
    assert_string_equal(str_at(j, "location"), "westeurope");
    assert_string_equal(str_at(j, "properties.hardwareProfile.vmSize"), "Standard_B1s");
    assert_string_equal(str_at(j, "properties.storageProfile.imageReference.publisher"),
                        "Canonical");
    assert_string_equal(str_at(j, "properties.storageProfile.imageReference.version"), "latest");
    assert_string_equal(str_at(j, "properties.osProfile.computerName"), "vm1");
    assert_string_equal(str_at(j, "properties.osProfile.adminUsername"), "azureuser");
    assert_true(json_is_true(
        sky_json_path(j, "properties.osProfile.linuxConfiguration.disablePasswordAuthentication")));
    json_t *keys = sky_json_path(j, "properties.osProfile.linuxConfiguration.ssh.publicKeys");
    assert_int_equal(json_array_size(keys), 1);
    /* one line, as authorized_keys takes it */
    assert_string_equal(sky_json_str(json_array_get(keys, 0), "keyData", ""),
                        "ssh-ed25519 AAAAkey user@host");
    assert_string_equal(sky_json_str(json_array_get(keys, 0), "path", ""),
                        "/home/azureuser/.ssh/authorized_keys");
    json_t *nics = sky_json_path(j, "properties.networkProfile.networkInterfaces");
    assert_string_equal(sky_json_str(json_array_get(nics, 0), "id", ""), NIC);
    assert_int_equal(json_object_size(json_object_get(j, "tags")), 0);
    json_decref(j);
}

static void test_choices_and_tags(void **state)
{
    static const char *const tags[] = {"env=test", "owner=a=b"};
    sky_arm_vm_spec s;
    (void)state;
    spec_of(&s);
    s.size = "Standard_B2s";
    s.image = "Debian:debian-12:12:latest";
    s.admin_user = "ops";
    s.tags = tags;
    s.n_tags = 2;
    json_t *j = body_json(&s, "vm2");
    assert_string_equal(str_at(j, "properties.hardwareProfile.vmSize"), "Standard_B2s");
    assert_string_equal(str_at(j, "properties.storageProfile.imageReference.offer"), "debian-12");
    assert_string_equal(str_at(j, "properties.osProfile.adminUsername"), "ops");
    assert_string_equal(str_at(j, "tags.env"), "test");
    assert_string_equal(str_at(j, "tags.owner"), "a=b");
    json_decref(j);
}

static void expect_refused(const sky_arm_vm_spec *s, const char *name, const char *says)
{
    sky_error err;
    sky_error_clear(&err);
    assert_null(sky_arm_vm_body(s, name, NULL, &err));
    assert_int_equal(err.code, SKY_EINVAL);
    assert_non_null(strstr(err.message, says));
}

static void test_refusals(void **state)
{
    static const char *const bad_tag[] = {"novalue"};
    sky_arm_vm_spec s;
    (void)state;
    spec_of(&s);
    expect_refused(&s, NULL, "a name");
    s.nic_id = NULL;
    expect_refused(&s, "v", "a network interface");
    spec_of(&s);
    s.ssh_public_key = "";
    expect_refused(&s, "v", "SSH public key");
    spec_of(&s);
    s.image = "Canonical:ubuntu";
    expect_refused(&s, "v", "not PUBLISHER:OFFER:SKU:VERSION");
    s.image = "a:b:c:d:e";
    expect_refused(&s, "v", "not PUBLISHER:OFFER:SKU:VERSION");
    spec_of(&s);
    s.tags = bad_tag;
    s.n_tags = 1;
    expect_refused(&s, "v", "not KEY=VALUE");
    assert_null(sky_arm_vm_body(NULL, "v", NULL, NULL)); /* no error struct: still refused */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_fields),
        cmocka_unit_test(test_choices_and_tags),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
