// The official OpenAI Node SDK keeping state through `skyio serve` (run by
// test_serve_conversations.c): responses chained by previous_response_id against a model
// whose deployment speaks chat completions only, one of them streamed through the SDK's
// stream helper (which checks the events' order and shapes), the kept response and its input
// items read back, and the Conversations API with its items, paged; another key sees none
// of it.
// Usage: node serve_conversations_sdk.mjs SDK_DIR BASE_URL KEY OTHER_KEY
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const [sdkDir, baseURL, apiKey, otherKey] = process.argv.slice(2);
const require = createRequire(`${sdkDir}/package.json`);
const { default: OpenAI } = require('openai');

const client = new OpenAI({ apiKey, baseURL: `${baseURL}/v1`, maxRetries: 0, timeout: 20000 });
const other = new OpenAI({ apiKey: otherKey, baseURL: `${baseURL}/v1`, maxRetries: 0 });
const model = 'chatty';

// previous_response_id, plain then streamed, over chat completions
const r1 = await client.responses.create({ model, instructions: 'Be brief.', input: 'My name is Ada.' });
assert.equal(r1.object, 'response');
assert.match(r1.id, /^resp_/);
assert.ok(r1.output_text.length > 0);
assert.ok(r1.usage.input_tokens > 0 && r1.usage.output_tokens > 0);

const r2 = await client.responses.create({ model, input: 'Say more.', previous_response_id: r1.id });
assert.equal(r2.previous_response_id, r1.id);
assert.ok(r2.usage.input_tokens > r1.usage.input_tokens, 'the earlier turn was not sent');

const stream = client.responses.stream({
  model, input: 'And my name?', previous_response_id: r2.id, max_output_tokens: 8,
});
let deltas = '';
stream.on('response.output_text.delta', (ev) => { deltas += ev.delta; });
const r3 = await stream.finalResponse();
assert.equal(r3.output_text, deltas);
assert.equal(r3.previous_response_id, r2.id);
assert.ok(r3.usage.input_tokens > r2.usage.input_tokens);

const kept = await client.responses.retrieve(r3.id);
assert.equal(kept.id, r3.id);
assert.equal(kept.output_text, r3.output_text);
const inputs = [];
for await (const item of client.responses.inputItems.list(r3.id)) inputs.push(item);
assert.equal(inputs.length, 5); // the three inputs and the two answers before the third
await assert.rejects(other.responses.retrieve(r3.id), (e) => e instanceof OpenAI.NotFoundError);
await assert.rejects(
  other.responses.create({ model, input: 'x', previous_response_id: r3.id }),
  (e) => e instanceof OpenAI.NotFoundError);

// the Conversations API
const conv = await client.conversations.create({
  metadata: { topic: 'names' },
  items: [{ type: 'message', role: 'user', content: 'Remember: blue.' }],
});
assert.match(conv.id, /^conv_/);
assert.equal((await client.conversations.retrieve(conv.id)).metadata.topic, 'names');
const updated = await client.conversations.update(conv.id, { metadata: { topic: 'colours' } });
assert.equal(updated.metadata.topic, 'colours');

const turn = await client.responses.create({ model, input: 'What colour?', conversation: conv.id });
assert.equal(turn.conversation.id, conv.id);
const added = await client.conversations.items.create(conv.id, {
  items: [{ type: 'message', role: 'user', content: 'one' }, { type: 'message', role: 'user', content: 'two' }],
});
assert.equal(added.data.length, 2);

// two changes at once to one conversation: both land (the gateway makes them in turn)
await Promise.all(['three', 'four'].map((content) => client.conversations.items.create(conv.id, {
  items: [{ type: 'message', role: 'user', content }],
})));
const all = [];
for await (const item of client.conversations.items.list(conv.id, { limit: 2, order: 'asc' })) {
  all.push(item);
}
assert.equal(all.length, 7); // remembered, asked, answered, one, two, three, four (pages of two)
assert.equal(all[2].role, 'assistant');
assert.equal(all[2].content[0].text, turn.output_text);

const one = await client.conversations.items.retrieve(all[3].id, { conversation_id: conv.id });
assert.equal(one.content[0].text, 'one');
await client.conversations.items.delete(all[3].id, { conversation_id: conv.id });
await assert.rejects(client.conversations.items.retrieve(all[3].id, { conversation_id: conv.id }),
  (e) => e instanceof OpenAI.NotFoundError);

await assert.rejects(other.conversations.retrieve(conv.id), (e) => e instanceof OpenAI.NotFoundError);
await assert.rejects(other.conversations.delete(conv.id), (e) => e instanceof OpenAI.NotFoundError);
const gone = await client.conversations.delete(conv.id);
assert.equal(gone.deleted, true);
await assert.rejects(client.conversations.retrieve(conv.id), (e) => e instanceof OpenAI.NotFoundError);
console.log('ok');
