// The OpenAI Node SDK as a client of the gateway's response cache: `skyio serve --state`
// in front of the mock, its x-skyio-cache-status header read through the SDK's
// .withResponse(); a temperature-0 chat missed then hit; the header as a per-request
// option; a streamed miss kept and replayed as the same stream; embeddings cached per
// input (the model listed in the config's "cache"), where the mock's stats show that only
// the inputs the cache did not hold went upstream.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { assert, steps, url } from "./check.mjs";

const dir = mkdtempSync(join(tmpdir(), "skyio-cache-"));
const upstream = { kind: "compatible", base_url: `${url}/v1`, key_env: "SKYIO_COMPAT_UPSTREAM_KEY" };
writeFileSync(join(dir, "gateway.json"), JSON.stringify({
  models: { "gpt-4o": [upstream], "text-embedding-3-small": [upstream] },
  cache: { models: { "text-embedding-3-small": true } },
}));

// The gateway reaches the mock over https: it trusts the suite's CA as node does.
const serve = spawn(process.env.SKYIO, ["serve", "--config", join(dir, "gateway.json"),
  "--port", "0", "--port-file", join(dir, "port"), "--state", join(dir, "state.db"),
  "--grace-ms", "200"], {
  env: { ...process.env, SKYIO_COMPAT_UPSTREAM_KEY: "sk-compat",
    SSL_CERT_FILE: process.env.NODE_EXTRA_CA_CERTS },
  stdio: ["ignore", "ignore", "inherit"],
});
// steps() exits at the first failure: the gateway goes with the program either way
process.on("exit", () => { serve.kill("SIGTERM"); rmSync(dir, { recursive: true, force: true }); });

for (let i = 0; !existsSync(join(dir, "port")) || !readFileSync(join(dir, "port"), "utf8"); i++) {
  assert.ok(i < 200 && serve.exitCode === null, "skyio serve did not start");
  await new Promise((r) => setTimeout(r, 50));
}
const port = readFileSync(join(dir, "port"), "utf8").trim();
const client = new OpenAI({ apiKey: "unused", baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
const mock = new OpenAI({ apiKey: "sk-compat", baseURL: `${url}/v1`, maxRetries: 0 });

async function stats() {
  const r = await fetch(`${url}/mock/stats`);
  assert.equal(r.status, 200);
  return r.json();
}

const status = (response) => response.headers.get("x-skyio-cache-status");
const question = (content) => ({
  model: "gpt-4o", temperature: 0, messages: [{ role: "user", content }],
});

async function streamed(body) {
  const { data, response } = await client.chat.completions
    .create({ ...body, stream: true }).withResponse();
  let text = "";
  let id;
  for await (const chunk of data) {
    id ??= chunk.id;
    text += chunk.choices[0]?.delta?.content ?? "";
  }
  return { text, id, status: status(response), type: response.headers.get("content-type") };
}

async function embed(input) {
  const { data, response } = await client.embeddings
    .create({ model: "text-embedding-3-small", input }).withResponse();
  assert.equal(data.data.length, input.length);
  data.data.forEach((d, i) => assert.equal(d.index, i));
  return { vectors: data.data.map((d) => d.embedding), status: status(response) };
}

await steps([
  ["temperature 0: a miss, then a hit that did not go upstream", async () => {
    const before = (await stats()).requests;
    const first = await client.chat.completions.create(question("cached by default")).withResponse();
    assert.equal(status(first.response), "miss");
    const again = await client.chat.completions.create(question("cached by default")).withResponse();
    assert.equal(status(again.response), "hit");
    assert.equal(again.data.id, first.data.id);
    assert.equal(again.data.choices[0].message.content, first.data.choices[0].message.content);
    assert.equal((await stats()).requests, before + 1);
  }],
  ["the header as a request option wins", async () => {
    const before = (await stats()).requests;
    const off = await client.chat.completions
      .create(question("cached by default"), { headers: { "x-skyio-cache": "off" } }).withResponse();
    assert.equal(status(off.response), null);
    const fresh = await client.chat.completions
      .create(question("cached by default"), { headers: { "x-skyio-cache": "refresh" } })
      .withResponse();
    assert.equal(status(fresh.response), "refresh");
    const warm = { ...question("warm"), temperature: 0.8 };
    const asked = await client.chat.completions
      .create(warm, { headers: { "x-skyio-cache": "on" } }).withResponse();
    assert.equal(status(asked.response), "miss");
    const plain = await client.chat.completions.create(warm).withResponse();
    assert.equal(status(plain.response), null); /* not temperature 0: not by default */
    assert.equal((await stats()).requests, before + 4);
  }],
  ["a streamed miss kept, replayed as the same stream", async () => {
    const before = await stats();
    const first = await streamed(question("a stream to keep"));
    assert.equal(first.status, "miss");
    assert.ok(first.text.length > 0);
    const again = await streamed(question("a stream to keep"));
    assert.equal(again.status, "hit");
    assert.match(again.type, /text\/event-stream/);
    assert.equal(again.text, first.text);
    assert.equal(again.id, first.id);
    const after = await stats();
    assert.equal(after.requests, before.requests + 1);
    assert.equal(after.streams, before.streams + 1);
    // the same question not streamed: a whole answer, never the kept SSE
    const whole = await client.chat.completions.create(question("a stream to keep")).withResponse();
    assert.equal(status(whole.response), "miss");
    assert.equal(whole.data.object, "chat.completion");
  }],
  ["embeddings per input: only the misses go upstream", async () => {
    // what the mock counts for "gamma" alone, asked of it directly
    let before = await stats();
    await mock.embeddings.create({ model: "text-embedding-3-small", input: ["gamma"] });
    let after = await stats();
    const gammaTokens = after.tokens.prompt - before.tokens.prompt;
    assert.ok(gammaTokens > 0);

    const one = await embed(["alpha", "beta"]);
    assert.equal(one.status, "miss");
    before = await stats();
    const two = await embed(["beta", "gamma", "alpha"]);
    after = await stats();
    assert.equal(two.status, "partial");
    assert.equal(after.endpoints.embeddings, before.endpoints.embeddings + 1);
    assert.equal(after.tokens.prompt - before.tokens.prompt, gammaTokens); /* gamma alone */
    assert.deepEqual(two.vectors[0], one.vectors[1]);
    assert.deepEqual(two.vectors[2], one.vectors[0]);

    const three = await embed(["gamma", "alpha", "beta"]);
    assert.equal(three.status, "hit");
    assert.equal((await stats()).endpoints.embeddings, after.endpoints.embeddings);
    assert.deepEqual(three.vectors, [two.vectors[1], one.vectors[0], one.vectors[1]]);
  }],
]);
serve.kill("SIGTERM");
const code = await new Promise((r) => serve.on("exit", (c) => r(c)));
assert.equal(code, 0, "skyio serve did not end well on SIGTERM");
