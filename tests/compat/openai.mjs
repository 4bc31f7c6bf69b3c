// The OpenAI Node SDK's quick-start calls against the mock's OpenAI routes.
import OpenAI, { AuthenticationError } from "openai";
import { assert, norm2, steps, url } from "./check.mjs";

const client = new OpenAI({ apiKey: "sk-compat", baseURL: `${url}/v1`, maxRetries: 0 });
const user = [{ role: "user", content: "Say hello" }];

const person = {
  type: "object",
  properties: {
    name: { type: "string" },
    age: { type: "integer", minimum: 0, maximum: 120 },
    mood: { type: "string", enum: ["happy", "sad"] },
  },
  required: ["name", "age", "mood"],
  additionalProperties: false,
};

const weather = {
  type: "function",
  function: {
    name: "get_weather",
    parameters: {
      type: "object",
      properties: { city: { type: "string" }, unit: { type: "string", enum: ["c", "f"] } },
      required: ["city", "unit"],
      additionalProperties: false,
    },
    strict: true,
  },
};

await steps([
  ["chat", async () => {
    const r = await client.chat.completions.create({ model: "gpt-4o-mini", messages: user });
    assert.equal(r.object, "chat.completion");
    assert.equal(r.model, "gpt-4o-mini");
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].message.role, "assistant");
    assert.ok(r.choices[0].message.content.length > 0);
    assert.equal(r.choices[0].message.refusal, null);
    assert.deepEqual(r.choices[0].message.annotations, []);
    assert.equal(r.usage.completion_tokens, 16);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 16);
    assert.equal(r.usage.prompt_tokens_details.cached_tokens, 0);
    assert.equal(r.usage.completion_tokens_details.reasoning_tokens, 0);
    assert.equal(r.service_tier, "default");
    assert.equal(r.system_fingerprint, "fp_skyio_mock");
  }],
  ["chat n=2", async () => {
    const r = await client.chat.completions.create({ model: "gpt-4o-mini", messages: user, n: 2 });
    assert.equal(r.choices.length, 2);
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
  }],
  ["max_tokens: most replies stop before a generous limit", async () => {
    let stops = 0;
    for (let i = 0; i < 10; i++) {
      const r = await client.chat.completions.create({
        model: "gpt-4o-mini", messages: [{ role: "user", content: `q${i}` }], max_tokens: 4000,
      });
      stops += r.choices[0].finish_reason === "stop" && r.usage.completion_tokens < 4000;
    }
    assert.ok(stops >= 8, `${stops} of 10 stopped`);
    const cut = await client.chat.completions.create({ model: "gpt-4o-mini", messages: user, max_tokens: 3 });
    assert.equal(cut.choices[0].finish_reason, "length");
    assert.equal(cut.usage.completion_tokens, 3);
  }],
  ["chat stream", async () => {
    const stream = await client.chat.completions.create({
      model: "gpt-4o-mini", messages: user, stream: true, stream_options: { include_usage: true },
    });
    let text = "", usage = null, finish = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    assert.equal(text.split(" ").length, 16);
    assert.equal(finish, "stop");
    assert.equal(usage.completion_tokens, 16);
  }],
  ["chat.completions.parse with json_schema", async () => {
    const r = await client.chat.completions.parse({
      model: "gpt-4o-mini", messages: user,
      response_format: { type: "json_schema", json_schema: { name: "person", strict: true, schema: person } },
    });
    const p = r.choices[0].message.parsed;
    assert.equal(typeof p.name, "string");
    assert.ok(Number.isInteger(p.age) && p.age >= 0 && p.age <= 120);
    assert.ok(["happy", "sad"].includes(p.mood));
    assert.deepEqual(Object.keys(p).sort(), ["age", "mood", "name"]);
  }],
  ["json_object", async () => {
    const r = await client.chat.completions.create({
      model: "gpt-4o-mini", messages: user, response_format: { type: "json_object" },
    });
    assert.equal(typeof JSON.parse(r.choices[0].message.content), "object");
  }],
  ["tools, tool_choice required, parsed by the SDK", async () => {
    const r = await client.chat.completions.parse({
      model: "gpt-4o-mini", messages: user, tools: [weather], tool_choice: "required",
    });
    const c = r.choices[0];
    assert.equal(c.finish_reason, "tool_calls");
    assert.equal(c.message.content, null);
    const call = c.message.tool_calls[0];
    assert.equal(call.type, "function");
    assert.equal(call.function.name, "get_weather");
    assert.equal(typeof call.function.parsed_arguments.city, "string");
    assert.ok(["c", "f"].includes(call.function.parsed_arguments.unit));
  }],
  ["tools, streamed", async () => {
    const runner = client.chat.completions.stream({
      model: "gpt-4o-mini", messages: user, tools: [weather],
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
    const done = await runner.finalChatCompletion();
    const call = done.choices[0].message.tool_calls[0];
    assert.equal(call.function.name, "get_weather");
    assert.equal(typeof JSON.parse(call.function.arguments).city, "string");
  }],
  ["embeddings, base64 by default", async () => {
    const r = await client.embeddings.create({ model: "text-embedding-3-small", input: ["a", "b"] });
    assert.equal(r.data.length, 2);
    assert.equal(r.data[1].embedding.length, 1536);
    assert.ok(Math.abs(norm2(r.data[1].embedding) - 1) < 1e-3);
    const f = await client.embeddings.create({
      model: "text-embedding-3-small", input: "a", encoding_format: "float", dimensions: 8,
    });
    assert.equal(f.data[0].embedding.length, 8);
  }],
  ["responses", async () => {
    const r = await client.responses.create({ model: "gpt-4o-mini", input: "Say hello" });
    assert.equal(r.object, "response");
    assert.equal(r.status, "completed");
    assert.ok(r.output_text.length > 0);
  }],
  ["models", async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.ok(ids.includes("gpt-4o-mini"));
    const m = await client.models.retrieve("gpt-4o-mini");
    assert.equal(m.id, "gpt-4o-mini");
  }],
  ["a wrong key", async () => {
    const bad = new OpenAI({ apiKey: "sk-wrong", baseURL: `${url}/v1`, maxRetries: 0 });
    await assert.rejects(bad.chat.completions.create({ model: "m", messages: user }),
      (e) => e instanceof AuthenticationError && e.status === 401);
  }],
]);
