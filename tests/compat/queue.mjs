// The official Storage Queues SDK against what skyio wrote, and for skyio to read.
// Usage: node queue.mjs MODE QUEUE TEXT, with AZURE_STORAGE_CONNECTION_STRING set.
//   receive      take one message, base64-decode it (skyio's default), expect TEXT, delete it
//   receive-raw  the same without decoding (skyio --raw)
//   send         put TEXT base64-encoded, as skyio reads by default
//   send-raw     put TEXT as it is
// Prints "ok" and exits 0, or says what differed and exits 1.
import { QueueServiceClient } from "@azure/storage-queue";

const [mode, queue, text] = process.argv.slice(2);
const service = QueueServiceClient.fromConnectionString(process.env.AZURE_STORAGE_CONNECTION_STRING);
const q = service.getQueueClient(queue);

async function receive(decode) {
  const got = await q.receiveMessages({ numberOfMessages: 1, visibilityTimeout: 30 });
  if (got.receivedMessageItems.length !== 1) throw new Error("no message to receive");
  const m = got.receivedMessageItems[0];
  const body = decode ? Buffer.from(m.messageText, "base64").toString("utf8") : m.messageText;
  if (body !== text) throw new Error(`got ${JSON.stringify(body)}, want ${JSON.stringify(text)}`);
  if (m.dequeueCount !== 1) throw new Error(`dequeue count ${m.dequeueCount}, want 1`);
  await q.deleteMessage(m.messageId, m.popReceipt);
}

async function send(encode) {
  const body = encode ? Buffer.from(text, "utf8").toString("base64") : text;
  const r = await q.sendMessage(body);
  if (!r.messageId || !r.popReceipt) throw new Error("no id or receipt for the message sent");
}

const run = {
  receive: () => receive(true),
  "receive-raw": () => receive(false),
  send: () => send(true),
  "send-raw": () => send(false),
}[mode];

try {
  if (!run) throw new Error(`unknown mode ${mode}`);
  await run();
  console.log("ok");
} catch (e) {
  console.log(`queue.mjs ${mode}: ${e.message}`);
  process.exit(1);
}
