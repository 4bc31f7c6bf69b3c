// @azure/arm-resources against the mock's Resource Manager, with a token from the mock's
// Entra ID: groups (create, checkExistence, get, paged list), generic resources as
// long-running operations (Azure-AsyncOperation over https), a subscription's resources.
import { ClientSecretCredential } from "@azure/identity";
import { ResourceManagementClient } from "@azure/arm-resources";
import { assert, steps, url } from "./check.mjs";

const sub = "00000000-0000-0000-0000-00000000c0de";
const credential = new ClientSecretCredential("tenant-1", "client-1", "compat-secret", {
  authorityHost: url, disableInstanceDiscovery: true,
});
const client = new ResourceManagementClient(credential, sub, {
  endpoint: url, credentialScopes: ["https://management.azure.com/.default"],
});
const fast = { updateIntervalInMs: 10 };
const thing = (rg, name) => [rg, "Microsoft.Storage", "", "storageAccounts", name, "2023-01-01"];

await steps([
  ["groups: create, exists, get", async () => {
    assert.equal((await client.resourceGroups.checkExistence("compat-rg")).body, false);
    const g = await client.resourceGroups.createOrUpdate("compat-rg", { location: "westus", tags: { a: "1" } });
    assert.equal(g.id, `/subscriptions/${sub}/resourceGroups/compat-rg`);
    assert.equal(g.properties.provisioningState, "Succeeded");
    assert.equal((await client.resourceGroups.checkExistence("compat-rg")).body, true);
    const back = await client.resourceGroups.get("compat-rg");
    assert.equal(back.location, "westus");
    assert.deepEqual(back.tags, { a: "1" });
  }],
  ["groups: a list of several pages (nextLink over https)", async () => {
    for (let i = 0; i < 4; i++)
      await client.resourceGroups.createOrUpdate(`compat-page-${i}`, { location: "westus" });
    const names = [];
    for await (const g of client.resourceGroups.list()) names.push(g.name);
    assert.equal(names.length, 5);
    assert.ok(names.includes("compat-page-3"));
  }],
  ["resources: create and delete, long-running", async () => {
    const r = await client.resources.beginCreateOrUpdateAndWait(...thing("compat-rg", "st1"),
      { location: "westus", properties: { sku: "Standard_LRS" } }, fast);
    assert.equal(r.name, "st1");
    assert.equal(r.properties.provisioningState, "Succeeded");
    assert.equal(r.properties.sku, "Standard_LRS");
    await client.resources.beginCreateOrUpdateAndWait(...thing("compat-rg", "st2"), { location: "westus" }, fast);
    const all = [];
    for await (const x of client.resources.list()) all.push(x.name);
    assert.deepEqual(all.sort(), ["st1", "st2"]);
    const inGroup = [];
    for await (const x of client.resources.listByResourceGroup("compat-rg")) inGroup.push(x.name);
    assert.equal(inGroup.length, 2);
    await client.resources.beginDeleteAndWait(...thing("compat-rg", "st2"), fast);
    await assert.rejects(client.resources.get(...thing("compat-rg", "st2")), (e) => e.statusCode === 404);
  }],
  ["groups: delete, long-running", async () => {
    await client.resourceGroups.beginDeleteAndWait("compat-page-0", fast);
    assert.equal((await client.resourceGroups.checkExistence("compat-page-0")).body, false);
  }],
]);
