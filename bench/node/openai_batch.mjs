#!/usr/bin/env node
// openai_batch.mjs: the Node way to push an OpenAI Batch JSONL file through a
// chat-completions endpoint, with the official OpenAI SDK (npm `openai`, pinned by
// package-lock.json beside this file); a reference client of bench/defaults.
//
//   node bench/node/openai_batch.mjs INPUT OUTPUT --base-url URL [--concurrency 64]
//        [--max-retries 5] [--timeout 300]
//
// Written the way the SDK's users write a batch job: one client,
// new OpenAI({ baseURL, apiKey, maxRetries }), a pool of CONCURRENCY async workers that
// pull lines from the input file (read as a stream: memory stays bounded on a
// million-line file) and await client.chat.completions.create(body) one at a time. The
// SDK does the rest as it ships: its keep-alive connection pool (Node's fetch), its
// retries of 408, 409, 429, 5xx and connection errors with its own backoff (0.5 s
// doubling up to 8 s, up to 25% less by jitter; retry-after honoured). Each result is
// appended to OUTPUT as an OpenAI Batch output line, in completion order:
//   {"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}
// and a JSON summary is printed on stdout, as bench/aiohttp_batch.py prints it:
//   {"requests", "ok", "failed", "retries", "seconds", "requests_per_second"}
// `retries` is attempts less requests sent (the SDK retries inside create(); a counting
// fetch sees every attempt). `seconds` runs from the first request to the last result.
//
// URL is the server's root (http://127.0.0.1:PORT, no /v1), as for aiohttp_batch.py, and
// --max-retries defaults to 5 as there (the SDK's own default is 2).
// Node finds `openai` from this file's folder: bench/defaults runs a copy of it beside a
// link to .deps/bench-node/node_modules (scripts/install-deps); by hand, `npm ci --prefix
// bench/node` puts one here (git ignores it).
// The API key comes from OPENAI_API_KEY; an unset or empty one sends a placeholder
// (the SDK refuses to start without a key; servers without auth ignore it).
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import OpenAI from 'openai';

function options() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'base-url': { type: 'string' },
      concurrency: { type: 'string', default: '64' },
      'max-retries': { type: 'string', default: '5' },
      timeout: { type: 'string', default: '300' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length !== 2 || !values['base-url']) {
    process.stderr.write(
      'usage: node openai_batch.mjs INPUT OUTPUT --base-url URL [--concurrency 64] ' +
        '[--max-retries 5] [--timeout SECONDS]\n',
    );
    process.exit(values.help ? 0 : 2);
  }
  return {
    input: positionals[0],
    output: positionals[1],
    baseURL: values['base-url'].replace(/\/+$/, '') + '/v1',
    concurrency: Number(values.concurrency),
    maxRetries: Number(values['max-retries']),
    timeoutMs: Number(values.timeout) * 1000,
  };
}

// One line at a time to whichever worker asks: the readline iterator is advanced by a
// single chain of promises, so concurrent workers never race on it.
function lineSource(path) {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  const it = lines[Symbol.asyncIterator]();
  let chain = Promise.resolve();
  return () => {
    const next = chain.then(() => it.next());
    chain = next.catch(() => {});
    return next;
  };
}

class Batch {
  constructor(opts, out) {
    this.out = out;
    this.attempts = 0;
    this.requests = 0;
    this.sent = 0;
    this.drained = null;
    this.ok = 0;
    this.failed = 0;
    this.client = new OpenAI({
      baseURL: opts.baseURL,
      apiKey: process.env.OPENAI_API_KEY || 'no-key',
      maxRetries: opts.maxRetries,
      timeout: opts.timeoutMs,
      // Only counts: every attempt, retries included, goes through the platform's fetch.
      fetch: (url, init) => {
        this.attempts += 1;
        return fetch(url, init);
      },
    });
  }

  async write(customId, status, requestId, body, error) {
    const response = status === undefined ? null : { status_code: status, request_id: requestId ?? null, body };
    const line = { id: 'batch_req_' + randomBytes(12).toString('hex'), custom_id: customId, response, error };
    if (status === 200 && error === null) this.ok += 1;
    else this.failed += 1;
    // Backpressure: when the file falls behind, every writer waits for the one 'drain'.
    if (!this.out.write(JSON.stringify(line) + '\n')) {
      this.drained ??= once(this.out, 'drain').finally(() => (this.drained = null));
      await this.drained;
    }
  }

  // Send one request (the SDK retries inside); record exactly one result line.
  async one(customId, body) {
    this.sent += 1;
    try {
      const { data, response, request_id } = await this.client.chat.completions.create(body).withResponse();
      await this.write(customId, response.status, request_id, data, null);
    } catch (err) {
      if (err instanceof OpenAI.APIError && err.status !== undefined) {
        await this.write(customId, err.status, err.requestID, { error: err.error ?? null }, null);
      } else {
        await this.write(customId, undefined, null, null, { code: 'connection_error', message: String(err) });
      }
    }
  }

  async worker(nextLine) {
    for (;;) {
      const { value, done } = await nextLine();
      if (done) return;
      const raw = value.trim();
      if (!raw) continue;
      this.requests += 1;
      let req;
      try {
        req = JSON.parse(raw);
        if (typeof req.custom_id !== 'string' || typeof req.body !== 'object') throw new Error('no custom_id or body');
      } catch (err) {
        await this.write(null, undefined, null, null, { code: 'bad_line', message: String(err) });
        continue;
      }
      await this.one(req.custom_id, req.body);
    }
  }
}

async function main() {
  const opts = options();
  const out = createWriteStream(opts.output);
  const batch = new Batch(opts, out);
  const nextLine = lineSource(opts.input);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: opts.concurrency }, () => batch.worker(nextLine)));
  const seconds = (performance.now() - t0) / 1000;
  out.end();
  await once(out, 'finish');
  const summary = {
    requests: batch.requests,
    ok: batch.ok,
    failed: batch.failed,
    retries: batch.attempts - batch.sent,
    seconds: Math.round(seconds * 1000) / 1000,
    requests_per_second: seconds > 0 ? Math.round((batch.requests / seconds) * 10) / 10 : 0,
  };
  process.stdout.write(JSON.stringify(summary) + '\n');
  return batch.failed === 0 ? 0 : 1;
}

process.exitCode = await main();
