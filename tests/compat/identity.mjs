// @azure/identity's credentials against the mock's Entra ID and managed identity endpoints.
// ClientSecretCredential goes through MSAL, which first reads the tenant's OpenID
// configuration. MSAL's instance discovery always asks login.microsoftonline.com, whatever
// the authority host, so the tests turn it off (no network beyond loopback).
import { ClientSecretCredential, ManagedIdentityCredential } from "@azure/identity";
import { assert, steps, url } from "./check.mjs";

const scope = "https://management.azure.com/.default";

function checkToken(t) {
  assert.match(t.token, /^mock-token-\d+$/);
  const left = t.expiresOnTimestamp - Date.now();
  assert.ok(left > 3000e3 && left <= 3605e3, `expires in ${left} ms`);
}

await steps([
  ["ClientSecretCredential", async () => {
    const c = new ClientSecretCredential("tenant-1", "client-1", "compat-secret", {
      authorityHost: url, disableInstanceDiscovery: true,
    });
    checkToken(await c.getToken(scope));
  }],
  ["ClientSecretCredential, a wrong secret", async () => {
    const c = new ClientSecretCredential("tenant-1", "client-1", "wrong", {
      authorityHost: url, disableInstanceDiscovery: true,
    });
    await assert.rejects(c.getToken(scope), (e) => /7000215|invalid_client/.test(e.message));
  }],
  ["ManagedIdentityCredential (App Service: IDENTITY_ENDPOINT)", async () => {
    process.env.IDENTITY_ENDPOINT = `${url}/msi/token`;
    process.env.IDENTITY_HEADER = "mock-identity-header";
    checkToken(await new ManagedIdentityCredential().getToken(scope));
    delete process.env.IDENTITY_ENDPOINT;
    delete process.env.IDENTITY_HEADER;
  }],
  ["ManagedIdentityCredential (IMDS: AZURE_POD_IDENTITY_AUTHORITY_HOST, a trailing slash)", async () => {
    process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = url;
    checkToken(await new ManagedIdentityCredential().getToken(scope));
  }],
]);
