#!/usr/bin/python3
"""aiohttp_batch.py: the Python way to push an OpenAI Batch JSONL file through a
chat-completions endpoint, the reference client of bench/batch-throughput.

    /usr/bin/python3 bench/aiohttp_batch.py INPUT OUTPUT --base-url URL [--concurrency 64]

A fair, ordinary asyncio + aiohttp client, written the way a competent engineer would:
one ClientSession with a TCPConnector(limit=CONCURRENCY) (keep-alive pooling), a fixed
pool of CONCURRENCY worker coroutines pulling lines from the input file (never one task
per line: memory stays bounded on a million-line file), an asyncio.Semaphore(CONCURRENCY)
around each attempt (the conventional guard; with one worker per slot it never waits),
json.loads / json.dumps, the URL parsed once, no cookie jar, retries of 429, 5xx, connection errors and timeouts with
exponential backoff and jitter (up to --max-retries times), and each result appended to
OUTPUT as an OpenAI Batch output line:
    {"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}
in completion order. Prints a JSON summary on stdout:
    {"requests", "ok", "failed", "retries", "seconds", "requests_per_second"}
`seconds` runs from the first request to the last result (interpreter start-up and
imports excluded; the benchmark's wall clock includes them).

Run it with Debian's /usr/bin/python3 (python3-aiohttp), not a pyenv python.
The API key, if any, comes from OPENAI_API_KEY.
"""

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid

import aiohttp
import yarl

RETRY_STATUS = {429, 500, 502, 503, 504}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:PORT (no /v1)")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--max-retries", type=int, default=5)
    p.add_argument("--backoff", type=float, default=0.5, help="first retry delay, seconds")
    p.add_argument("--max-backoff", type=float, default=30.0)
    p.add_argument("--timeout", type=float, default=300.0, help="per attempt, seconds")
    return p.parse_args()


class Batch:
    def __init__(self, args, session, lines, out):
        self.args = args
        self.session = session
        self.lines = lines  # a shared iterator over the input file
        self.out = out
        self.sem = asyncio.Semaphore(args.concurrency)
        # parsed once: aiohttp would otherwise parse the string on every request
        self.url = yarl.URL(args.base_url.rstrip("/") + "/v1/chat/completions")
        self.ok = 0
        self.failed = 0
        self.retries = 0
        self.requests = 0

    def write(self, custom_id, status, request_id, body, error):
        response = None
        if status is not None:
            response = {"status_code": status, "request_id": request_id, "body": body}
        line = {"id": "batch_req_" + uuid.uuid4().hex[:24], "custom_id": custom_id,
                "response": response, "error": error}
        self.out.write(json.dumps(line, separators=(",", ":")) + "\n")
        if status == 200 and error is None:
            self.ok += 1
        else:
            self.failed += 1

    async def one(self, custom_id, payload):
        """Send one request, retrying; record exactly one result line."""
        attempt = 0
        while True:
            status = None
            body = None
            request_id = None
            error = None
            try:
                async with self.sem:
                    async with self.session.post(self.url, data=payload) as resp:
                        status = resp.status
                        request_id = resp.headers.get("x-request-id")
                        raw = await resp.read()
                try:
                    body = json.loads(raw)
                except ValueError:
                    if status == 200:  # a malformed 200 is a failed attempt
                        error = {"code": "malformed_response", "message": "body is not JSON"}
                        status = None
                    else:
                        body = raw.decode("utf-8", "replace")
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                error = {"code": "connection_error", "message": repr(e)}
                status = None
            retryable = status in RETRY_STATUS or status is None
            if not retryable or attempt >= self.args.max_retries:
                if status is not None:
                    error = None
                self.write(custom_id, status, request_id, body, error)
                return
            attempt += 1
            self.retries += 1
            delay = min(self.args.max_backoff, self.args.backoff * 2 ** (attempt - 1))
            await asyncio.sleep(delay * (0.5 + random.random() / 2))

    async def worker(self):
        for raw in self.lines:  # no await between next() calls: safe to share
            raw = raw.strip()
            if not raw:
                continue
            self.requests += 1
            try:
                req = json.loads(raw)
                custom_id = req["custom_id"]
                payload = json.dumps(req["body"], separators=(",", ":")).encode()
            except (ValueError, KeyError, TypeError) as e:
                self.write(None, None, None, None, {"code": "bad_line", "message": repr(e)})
                continue
            await self.one(custom_id, payload)


async def main():
    args = parse_args()
    headers = {"Content-Type": "application/json"}
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        headers["Authorization"] = "Bearer " + key
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    with open(args.input, "r", encoding="utf-8") as inp, \
            open(args.output, "w", encoding="utf-8") as out:
        # DummyCookieJar: an API client keeps no cookies (and skips the jar's per-request work)
        async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout,
                                         cookie_jar=aiohttp.DummyCookieJar()) as session:
            batch = Batch(args, session, iter(inp), out)
            t0 = time.monotonic()
            await asyncio.gather(*(batch.worker() for _ in range(args.concurrency)))
            seconds = time.monotonic() - t0
    print(json.dumps({"requests": batch.requests, "ok": batch.ok, "failed": batch.failed,
                      "retries": batch.retries, "seconds": round(seconds, 3),
                      "requests_per_second": round(batch.requests / seconds, 1)
                      if seconds > 0 else 0}, separators=(",", ":")))
    return 0 if batch.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
