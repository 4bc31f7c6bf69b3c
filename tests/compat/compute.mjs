// @azure/arm-compute against the mock's Resource Manager, as the SDK's quick-start
// drives it: a virtual machine created (long-running, Azure-AsyncOperation over https),
// read back, listed in its group and in the subscription, powered off and started,
// then deleted. The network interface is named by id only: the mock does not serve
// Microsoft.Network.
import { ClientSecretCredential } from "@azure/identity";
import { ResourceManagementClient } from "@azure/arm-resources";
import { ComputeManagementClient } from "@azure/arm-compute";
import { assert, steps, url } from "./check.mjs";

const sub = "00000000-0000-0000-0000-0000000c0e7e";
const credential = new ClientSecretCredential("tenant-1", "client-1", "compat-secret", {
  authorityHost: url, disableInstanceDiscovery: true,
});
const resources = new ResourceManagementClient(credential, sub, {
  endpoint: url, credentialScopes: ["https://management.azure.com/.default"],
});
const compute = new ComputeManagementClient(credential, sub, { endpoint: url });
const fast = { updateIntervalInMs: 10 };
const rg = "compat-vm-rg";
const nic = `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Network/networkInterfaces/nic1`;
const vmBody = (size) => ({
  location: "eastus",
  tags: { role: "compat" },
  hardwareProfile: { vmSize: size },
  storageProfile: {
    imageReference: { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server", version: "latest" },
    osDisk: { createOption: "FromImage", managedDisk: { storageAccountType: "Standard_LRS" } },
  },
  osProfile: { computerName: "vm1", adminUsername: "azureuser", adminPassword: "Compat-Passw0rd!" },
  networkProfile: { networkInterfaces: [{ id: nic, primary: true }] },
});

await steps([
  ["a resource group for the machines", async () => {
    const g = await resources.resourceGroups.createOrUpdate(rg, { location: "eastus" });
    assert.equal(g.name, rg);
  }],
  ["virtual machine: create, long-running", async () => {
    const vm = await compute.virtualMachines.beginCreateOrUpdateAndWait(rg, "vm1", vmBody("Standard_B1s"), fast);
    assert.equal(vm.name, "vm1");
    assert.equal(vm.type, "Microsoft.Compute/virtualMachines");
    assert.equal(vm.id, `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachines/vm1`);
    assert.equal(vm.location, "eastus");
    assert.deepEqual(vm.tags, { role: "compat" });
    assert.equal(vm.provisioningState, "Succeeded");
    assert.equal(vm.hardwareProfile.vmSize, "Standard_B1s");
    assert.equal(vm.storageProfile.imageReference.offer, "ubuntu-24_04-lts");
    assert.equal(vm.osProfile.adminUsername, "azureuser");
    assert.equal(vm.osProfile.adminPassword, undefined, "ARM never returns the password");
    assert.equal(vm.networkProfile.networkInterfaces[0].id, nic);
    assert.match(vm.vmId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  }],
  ["virtual machine: a missing required field is a 400 the SDK reports", async () => {
    const body = vmBody("Standard_B1s");
    delete body.hardwareProfile;
    await assert.rejects(compute.virtualMachines.beginCreateOrUpdateAndWait(rg, "bad", body, fast),
      (e) => e.statusCode === 400 && e.code === "InvalidParameter");
  }],
  ["virtual machine: get, list in the group and in the subscription", async () => {
    const vm = await compute.virtualMachines.get(rg, "vm1");
    assert.equal(vm.hardwareProfile.vmSize, "Standard_B1s");
    await compute.virtualMachines.beginCreateOrUpdateAndWait(rg, "vm2", vmBody("Standard_D2s_v5"), fast);
    const inGroup = [];
    for await (const v of compute.virtualMachines.list(rg)) inGroup.push(v.name);
    assert.deepEqual(inGroup.sort(), ["vm1", "vm2"]);
    const all = [];
    for await (const v of compute.virtualMachines.listAll()) all.push([v.name, v.hardwareProfile.vmSize]);
    assert.deepEqual(all.sort(), [["vm1", "Standard_B1s"], ["vm2", "Standard_D2s_v5"]]);
  }],
  ["virtual machine: update the size, long-running", async () => {
    const vm = await compute.virtualMachines.beginUpdateAndWait(rg, "vm2",
      { hardwareProfile: { vmSize: "Standard_D4s_v5" }, tags: { role: "bigger" } }, fast);
    assert.equal(vm.hardwareProfile.vmSize, "Standard_D4s_v5");
    assert.deepEqual(vm.tags, { role: "bigger" });
    assert.equal(vm.storageProfile.imageReference.publisher, "Canonical");
  }],
  ["virtual machine: power off, instance view, start", async () => {
    const running = await compute.virtualMachines.instanceView(rg, "vm1");
    assert.ok(running.statuses.some((s) => s.code === "PowerState/running"));
    await compute.virtualMachines.beginPowerOffAndWait(rg, "vm1", fast);
    const off = await compute.virtualMachines.instanceView(rg, "vm1");
    assert.ok(off.statuses.some((s) => s.code === "PowerState/stopped"));
    assert.ok(off.statuses.some((s) => s.code === "ProvisioningState/succeeded"));
    await compute.virtualMachines.beginStartAndWait(rg, "vm1", fast);
    const on = await compute.virtualMachines.get(rg, "vm1", { expand: "instanceView" });
    assert.ok(on.instanceView.statuses.some((s) => s.code === "PowerState/running"));
  }],
  ["virtual machine: delete, long-running", async () => {
    await compute.virtualMachines.beginDeleteAndWait(rg, "vm2", fast);
    await assert.rejects(compute.virtualMachines.get(rg, "vm2"), (e) => e.statusCode === 404);
    const left = [];
    for await (const v of compute.virtualMachines.list(rg)) left.push(v.name);
    assert.deepEqual(left, ["vm1"]);
  }],
]);
