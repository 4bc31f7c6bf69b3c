// The OpenAI Node SDK's AzureOpenAI class against the mock's Azure OpenAI routes.
import { AzureOpenAI } from "openai";
import { assert, norm2, steps, url } from "./check.mjs";

const apiVersion = "2024-10-21";
const client = new AzureOpenAI({ endpoint: url, apiKey: "sk-compat", apiVersion, deployment: "dep-1", maxRetries: 0 });
const user = [{ role: "user", content: "Say hello" }];

await steps([
  ["chat with content filter results", async () => {
    const r = await client.chat.completions.create({ model: "ignored", messages: user });
    assert.equal(r.model, "dep-1");
    assert.ok(r.choices[0].message.content.length > 0);
    assert.equal(r.prompt_filter_results[0].content_filter_results.hate.filtered, false);
    assert.equal(r.choices[0].content_filter_results.violence.severity, "safe");
  }],
  ["chat stream: a first chunk without choices", async () => {
    const stream = await client.chat.completions.create({ model: "ignored", messages: user, stream: true });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    assert.equal(chunks[0].choices.length, 0);
    assert.ok(chunks[0].prompt_filter_results);
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
    assert.equal(text.split(" ").length, 16);
  }],
  ["embeddings, base64 by default", async () => {
    const e = new AzureOpenAI({ endpoint: url, apiKey: "sk-compat", apiVersion, deployment: "emb", maxRetries: 0 });
    const r = await e.embeddings.create({ model: "emb", input: "hello" });
    assert.equal(r.data[0].embedding.length, 1536);
    assert.ok(Math.abs(norm2(r.data[0].embedding) - 1) < 1e-3);
  }],
  ["responses (POST /openai/responses)", async () => {
    const r = new AzureOpenAI({ endpoint: url, apiKey: "sk-compat", apiVersion: "2025-03-01-preview", maxRetries: 0 });
    const res = await r.responses.create({ model: "dep-1", input: "Say hello" });
    assert.equal(res.model, "dep-1");
    assert.ok(res.output_text.length > 0);
  }],
  ["models (GET /openai/models)", async () => {
    const r = new AzureOpenAI({ endpoint: url, apiKey: "sk-compat", apiVersion, maxRetries: 0 });
    const ids = [];
    for await (const m of r.models.list()) ids.push(m.id);
    assert.ok(ids.length >= 1);
  }],
]);
