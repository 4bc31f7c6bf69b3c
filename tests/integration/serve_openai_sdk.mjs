// The official OpenAI Node SDK as a client of `skyio serve` (run by test_serve_routes.c):
// chat, a streamed chat, embeddings (the SDK's default base64 encoding), responses plain
// and streamed, the errors the SDK turns into its own classes, and its AzureOpenAI class
// through the gateway's Azure routes.
// Usage: node serve_openai_sdk.mjs SDK_DIR BASE_URL KEY
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const [sdkDir, baseURL, apiKey] = process.argv.slice(2);
const require = createRequire(`${sdkDir}/package.json`);
const { default: OpenAI, AzureOpenAI } = require('openai');

const client = new OpenAI({ apiKey, baseURL: `${baseURL}/v1`, maxRetries: 0, timeout: 20000 });
const messages = [{ role: 'user', content: 'hello' }];

const chat = await client.chat.completions.create({ model: 'gpt-4o', messages });
assert.equal(chat.object, 'chat.completion');
assert.ok(chat.choices[0].message.content.length > 0);

const stream = await client.chat.completions.create({
  model: 'slow', messages, stream: true, max_tokens: 6,
});
let chunks = 0;
let text = '';
for await (const c of stream) {
  chunks++;
  text += c.choices[0]?.delta?.content ?? '';
}
assert.ok(chunks >= 3, `only ${chunks} chunks`);
assert.ok(text.length > 0);

const emb = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] });
assert.equal(emb.data.length, 2);
assert.ok(emb.data[0].embedding.length > 0);
assert.equal(typeof emb.data[0].embedding[0], 'number');

await assert.rejects(client.chat.completions.create({ model: 'no-such-model', messages }),
  (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
const stranger = new OpenAI({ apiKey: 'sk-nobody', baseURL: `${baseURL}/v1`, maxRetries: 0 });
await assert.rejects(stranger.models.list(),
  (e) => e instanceof OpenAI.AuthenticationError && e.code === 'invalid_api_key');
const models = [];
for await (const m of client.models.list()) models.push(m.id);
assert.ok(models.includes('gpt-4o'));
const one = await client.models.retrieve('gpt-4o');
assert.equal(one.id, 'gpt-4o');
const resp = await client.responses.create({ model: 'gpt-4o', input: 'hello' });
assert.equal(resp.object, 'response');
assert.ok(resp.output_text.length > 0);

const rstream = await client.responses.create({
  model: 'slow', input: 'hello', stream: true, max_output_tokens: 6,
});
const kinds = new Set();
let rtext = '';
for await (const ev of rstream) {
  kinds.add(ev.type);
  if (ev.type === 'response.output_text.delta') rtext += ev.delta;
}
assert.ok(kinds.has('response.created') && kinds.has('response.output_text.delta'),
  [...kinds].join(' '));
assert.ok(rtext.length > 0);

// Azure's SDK surface: api-key header, /openai/deployments/{model}/..., api-version
const azure = new AzureOpenAI({
  endpoint: baseURL, apiKey, apiVersion: '2024-10-21', maxRetries: 0, timeout: 20000,
});
const achat = await azure.chat.completions.create({ model: 'gpt-4o', messages });
assert.equal(achat.object, 'chat.completion');
assert.ok(achat.choices[0].message.content.length > 0);
const astream = await azure.chat.completions.create({
  model: 'slow', messages, stream: true, max_tokens: 4,
});
let achunks = 0;
for await (const c of astream) achunks += c.choices.length;
assert.ok(achunks >= 2, `only ${achunks} chunks`);
const aemb = await azure.embeddings.create({ model: 'text-embedding-3-small', input: 'a' });
assert.equal(aemb.data.length, 1);
const aresp = await azure.responses.create({ model: 'gpt-4o', input: 'hi' });
const amodels = [];
for await (const m of azure.models.list()) amodels.push(m.id);
assert.ok(amodels.includes('gpt-4o'));
assert.ok(aresp.output_text.length > 0);
await assert.rejects(azure.chat.completions.create({ model: 'no-such-model', messages }),
  (e) => e instanceof OpenAI.NotFoundError);
console.log('ok');
