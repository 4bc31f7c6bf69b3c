// Chat replies that are more than one prose choice, as the OpenAI SDK's helpers take them:
// n > 1, JSON and tool calls streamed token by token (never one chunk per choice);
// tool_choice "auto" answering prose for some prompts and calls for others, the same for
// the same body; a JSON schema's "pattern" followed.
import OpenAI from "openai";
import { assert, steps, url } from "./check.mjs";

const client = new OpenAI({ apiKey: "sk-compat", baseURL: `${url}/v1`, maxRetries: 0 });
const user = (content) => [{ role: "user", content }];
const tool = (name, properties) => ({
  type: "function",
  function: {
    name, strict: true,
    parameters: { type: "object", properties, required: Object.keys(properties), additionalProperties: false },
  },
});
const weather = tool("get_weather", { city: { type: "string" }, unit: { type: "string", enum: ["c", "f"] } });
const time = tool("get_time", { zone: { type: "string", pattern: "^[A-Z][a-z]+/[A-Z][a-z]+$" } });
const codes = {
  type: "object",
  properties: {
    sku: { type: "string", pattern: "^[A-Z]{3}-\\d{4}$" },
    zip: { type: "string", pattern: "^\\d{5}(-\\d{4})?$" },
    slug: { type: "string", pattern: "^[a-z0-9]+(?:-[a-z0-9]+)*$" },
    hex: { type: "string", pattern: "^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$" },
    word: { type: "string", pattern: "^(red|green|blue)\\.v[1-9]\\d?$" },
  },
  required: ["sku", "zip", "slug", "hex", "word"],
  additionalProperties: false,
};

// Every chunk of a raw stream.
async function chunks(params) {
  const out = [];
  for await (const c of await client.chat.completions.create({ ...params, stream: true })) out.push(c);
  return out;
}

await steps([
  ["n=2 streamed: each choice word by word, the choices side by side", async () => {
    const all = await chunks({ model: "gpt-4o-mini", messages: user("two please"), n: 2,
      stream_options: { include_usage: true } });
    const text = ["", ""], pieces = [0, 0], finish = [null, null], order = [];
    for (const c of all) {
      for (const ch of c.choices) {
        if (ch.delta?.content) {
          text[ch.index] += ch.delta.content;
          pieces[ch.index]++;
          order.push(ch.index);
        }
        finish[ch.index] = ch.finish_reason ?? finish[ch.index];
      }
    }
    assert.deepEqual(pieces, [16, 16]);
    assert.deepEqual(text.map((t) => t.split(" ").length), [16, 16]);
    assert.notEqual(text[0], text[1]);
    assert.deepEqual(order.slice(0, 4), [0, 1, 0, 1]);
    assert.deepEqual(finish, ["stop", "stop"]);
    assert.equal(all.at(-1).usage.completion_tokens, 32);
  }],
  ["json_schema streamed in pieces through the SDK's stream helper", async () => {
    const schema = { type: "object", properties: { title: { type: "string" }, n: { type: "integer" } },
      required: ["title", "n"], additionalProperties: false };
    const stream = client.chat.completions.stream({ model: "gpt-4o-mini", messages: user("json"),
      response_format: { type: "json_schema", json_schema: { name: "t", strict: true, schema } } });
    let deltas = 0, grown = 0;
    stream.on("content.delta", (e) => {
      deltas++;
      grown += e.snapshot.endsWith(e.delta) && e.snapshot.length > e.delta.length;
    });
    const done = await stream.finalChatCompletion();
    // the SDK parses a plain (non-zod) json_schema only when the whole reply is in
    const parsed = JSON.parse(done.choices[0].message.content);
    assert.equal(typeof parsed.title, "string");
    assert.ok(Number.isInteger(parsed.n));
    assert.ok(deltas >= 5, `${deltas} content deltas`);
    assert.equal(grown, deltas - 1, "each delta after the first extends the snapshot");
  }],
  ["tool arguments streamed in pieces", async () => {
    const all = await chunks({ model: "gpt-4o-mini", messages: user("weather"), tools: [weather],
      tool_choice: "required" });
    const args = all.flatMap((c) => c.choices.flatMap((ch) => ch.delta?.tool_calls ?? []))
      .map((t) => t.function?.arguments ?? "").filter((a) => a.length > 0);
    assert.ok(args.length >= 5, `${args.length} argument pieces`);
    const parsed = JSON.parse(args.join(""));
    assert.ok(["c", "f"].includes(parsed.unit));
    assert.equal(all.at(-1).choices[0].finish_reason, "tool_calls");
  }],
  ["tool_choice auto: prose for some prompts, calls for others, the same for the same body", async () => {
    const kinds = {};
    for (let i = 0; i < 12; i++) {
      const params = { model: "gpt-4o-mini", messages: user(`question ${i}`), tools: [weather, time] };
      const r = await client.chat.completions.create(params);
      const c = r.choices[0];
      const kind = c.message.tool_calls ? c.message.tool_calls[0].function.name : "prose";
      if (kind === "prose") {
        assert.equal(c.finish_reason, "stop");
        assert.ok(c.message.content.length > 0);
      } else {
        assert.equal(c.finish_reason, "tool_calls");
        assert.equal(c.message.content, null);
      }
      if (kind === "get_time")
        assert.match(JSON.parse(c.message.tool_calls[0].function.arguments).zone, /^[A-Z][a-z]+\/[A-Z][a-z]+$/);
      kinds[kind] = (kinds[kind] ?? 0) + 1;
      const again = await client.chat.completions.create(params);
      assert.equal(again.choices[0].message.tool_calls?.[0].function.name ?? "prose", kind);
    }
    assert.ok(kinds.prose >= 2 && kinds.get_weather >= 1 && kinds.get_time >= 1, JSON.stringify(kinds));
    const none = await client.chat.completions.create({ model: "gpt-4o-mini", messages: user("question 0"),
      tools: [weather, time], tool_choice: "none" });
    assert.equal(none.choices[0].message.tool_calls, undefined);
  }],
  ["json_schema patterns: the values match them", async () => {
    for (let i = 0; i < 5; i++) {
      const r = await client.chat.completions.parse({ model: "gpt-4o-mini", messages: user(`codes ${i}`),
        response_format: { type: "json_schema", json_schema: { name: "codes", strict: true, schema: codes } } });
      const v = r.choices[0].message.parsed;
      for (const [k, s] of Object.entries(codes.properties))
        assert.match(v[k], new RegExp(s.pattern), `${k}: ${JSON.stringify(v[k])}`);
    }
  }],
]);
