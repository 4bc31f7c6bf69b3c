// The official Key Vault secrets SDK against `skyio mock`'s secrets API, so the mock's
// replies are what real clients read: the challenge, set and get (latest and a version),
// paged listing, soft-delete with its poller, the 409 of a deleted name.
// Usage: node keyvault.mjs VAULT_URL (NODE_EXTRA_CA_CERTS trusting the mock's CA).
// Expects secret "from-skyio" = "made-by-skyio"; leaves "from-sdk" = "made-by-the-sdk".
import { SecretClient } from "@azure/keyvault-secrets";

const vault = process.argv[2];
// A static token: the mock takes any bearer token once its challenge has been answered.
const credential = {
  getToken: async () => ({ token: "static-sdk-token", expiresOnTimestamp: Date.now() + 3600e3 }),
};
// The mock answers for https://vault.azure.net from 127.0.0.1: not the vault's domain.
const client = new SecretClient(vault, credential, { disableChallengeResourceVerification: true });

function expect(what, got, want) {
  if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

try {
  expect("skyio's secret", (await client.getSecret("from-skyio")).value, "made-by-skyio");
  const v1 = await client.setSecret("sdk-versions", "one");
  await client.setSecret("sdk-versions", "two", { contentType: "text/plain" });
  expect("latest", (await client.getSecret("sdk-versions")).value, "two");
  expect("version 1", (await client.getSecret("sdk-versions", { version: v1.properties.version })).value, "one");
  const names = [];
  for await (const p of client.listPropertiesOfSecrets()) names.push(p.name);
  if (!names.includes("sdk-versions") || !names.includes("from-skyio"))
    throw new Error(`listing lacks names: ${names.join(",")}`);
  const poller = await client.beginDeleteSecret("sdk-versions");
  const deleted = await poller.pollUntilDone();
  if (!deleted.recoveryId) throw new Error("no recoveryId on the deleted secret");
  let conflict = 0;
  try {
    await client.setSecret("sdk-versions", "three");
  } catch (e) {
    conflict = e.statusCode;
  }
  expect("set of a deleted name", conflict, 409);
  await client.setSecret("from-sdk", "made-by-the-sdk");
  console.log("ok");
} catch (e) {
  console.log(`keyvault.mjs: ${e.message}`);
  process.exit(1);
}
