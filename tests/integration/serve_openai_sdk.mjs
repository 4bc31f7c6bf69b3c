// The official OpenAI Node SDK as a client of `skyio serve` (run by test_serve.c):
// chat, a streamed chat, embeddings (the SDK's default base64 encoding) and the errors
// the SDK turns into its own classes.
// Usage: node serve_openai_sdk.mjs SDK_DIR BASE_URL KEY
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const [sdkDir, baseURL, apiKey] = process.argv.slice(2);
const require = createRequire(`${sdkDir}/package.json`);
const { default: OpenAI } = require('openai');

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
console.log('ok');
