#!/usr/bin/python3
"""azure_blob_sdk.py: the Python way to move files to and from Blob Storage, the
reference client of bench/blob (the Azure SDK for Python's async blob client).

    /usr/bin/python3 bench/azure_blob_sdk.py put-dir  DIR CONTAINER PREFIX --concurrency N
    /usr/bin/python3 bench/azure_blob_sdk.py put-file FILE CONTAINER NAME  --concurrency N
    /usr/bin/python3 bench/azure_blob_sdk.py get-file CONTAINER NAME OUT   --concurrency N

An ordinary client, written the way the SDK's own samples do it:
- one azure.storage.blob.aio.BlobServiceClient.from_connection_string for the whole run
  (one aiohttp session, keep-alive pooling), the connection string from
  --connection-string or AZURE_STORAGE_CONNECTION_STRING;
- put-dir: every file under DIR (recursively) becomes PREFIX/relative/path; one coroutine
  per file, all under asyncio.gather, each holding an asyncio.Semaphore(N) while it reads
  its file and calls upload_blob(data, overwrite=True);
- put-file: upload_blob(file object, overwrite=True, max_concurrency=N): the SDK stages
  blocks N at a time and commits the block list;
- get-file: download_blob(max_concurrency=N).readinto(file): ranged GETs N at a time.

Sizes, the same as skyio's --block-size where the SDK allows (--block-size, default
8 MiB), passed to the client as:
  max_block_size       = block size   (Put Block size; skyio: --block-size)
  max_single_put_size  = block size   (up to this, one Put Blob; skyio: single_put_max,
                                       which defaults to the block size)
  max_chunk_get_size   = block size   (ranged GET size; skyio: --block-size)
  max_single_get_size  = block size   (the first GET; skyio asks for ranges of block size)
The SDK sends no Content-MD5 unless validate_content=True (left off, its default);
skyio by default (--checksum md5) sends one per block and stores the file's MD5 on
the blob; bench/blob runs the big upload with --checksum none for the same work as the
SDK, and with the default once more to show what the hashing costs.

Prints one JSON object on stdout:
    {"op", "files", "ok", "failed", "bytes", "seconds", "files_per_second", "mib_per_second"}
`seconds` runs from the first request to the last answer (interpreter start-up, imports
and the client's set-up excluded; the benchmark's wall clock includes them). Exit status
0 when every file went through, 1 otherwise (the first few errors on stderr).

Run it with Debian's /usr/bin/python3 (python3-azure), not a pyenv python.
"""

import argparse
import asyncio
import json
import os
import sys
import time

from azure.storage.blob.aio import BlobServiceClient


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="op", required=True)
    a = sub.add_parser("put-dir", help="upload every file under DIR to CONTAINER/PREFIX/...")
    a.add_argument("dir")
    a.add_argument("container")
    a.add_argument("prefix")
    b = sub.add_parser("put-file", help="upload FILE to CONTAINER/NAME")
    b.add_argument("file")
    b.add_argument("container")
    b.add_argument("name")
    c = sub.add_parser("get-file", help="download CONTAINER/NAME to OUT")
    c.add_argument("container")
    c.add_argument("name")
    c.add_argument("out")
    for s in (a, b, c):
        s.add_argument("--concurrency", type=int, default=16,
                       help="files at once (put-dir) or blocks/ranges at once (default 16)")
        s.add_argument("--block-size", type=int, default=8 * 1024 * 1024,
                       help="block, single-put and range size in bytes (default 8 MiB)")
        s.add_argument("--connection-string",
                       default=os.environ.get("AZURE_STORAGE_CONNECTION_STRING"))
    args = p.parse_args()
    if not args.connection_string:
        p.error("give --connection-string or set AZURE_STORAGE_CONNECTION_STRING")
    return args


def walk(root):
    """(path, blob-relative name) of every regular file under root, sorted."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            path = os.path.join(d, f)
            out.append((path, os.path.relpath(path, root).replace(os.sep, "/")))
    return out


async def put_dir(svc, args, summary, errors):
    container = svc.get_container_client(args.container)
    sem = asyncio.Semaphore(args.concurrency)
    prefix = args.prefix.strip("/")

    async def one(path, rel):
        async with sem:
            try:
                with open(path, "rb") as f:
                    data = f.read()
                name = prefix + "/" + rel if prefix else rel
                await container.upload_blob(name, data, overwrite=True)
                summary["ok"] += 1
                summary["bytes"] += len(data)
            except Exception as e:  # one failed file must not stop the others
                summary["failed"] += 1
                errors.append(f"{rel}: {e!r}"[:300])

    files = walk(args.dir)
    summary["files"] = len(files)
    await asyncio.gather(*(one(p, r) for p, r in files))


async def put_file(svc, args, summary, errors):
    blob = svc.get_blob_client(args.container, args.name)
    size = os.path.getsize(args.file)
    summary["files"] = 1
    with open(args.file, "rb") as f:
        await blob.upload_blob(f, length=size, overwrite=True, max_concurrency=args.concurrency)
    summary["ok"] = 1
    summary["bytes"] = size


async def get_file(svc, args, summary, errors):
    blob = svc.get_blob_client(args.container, args.name)
    summary["files"] = 1
    with open(args.out, "wb") as f:
        stream = await blob.download_blob(max_concurrency=args.concurrency)
        n = await stream.readinto(f)
    summary["ok"] = 1
    summary["bytes"] = n


async def main():
    args = parse_args()
    bs = args.block_size
    summary = {"op": args.op, "files": 0, "ok": 0, "failed": 0, "bytes": 0}
    errors = []
    svc = BlobServiceClient.from_connection_string(
        args.connection_string,
        max_block_size=bs,
        max_single_put_size=bs,
        max_chunk_get_size=bs,
        max_single_get_size=bs,
    )
    op = {"put-dir": put_dir, "put-file": put_file, "get-file": get_file}[args.op]
    async with svc:
        t0 = time.monotonic()
        try:
            await op(svc, args, summary, errors)
        except Exception as e:
            summary["failed"] = max(1, summary["files"] - summary["ok"])
            errors.append(repr(e)[:300])
        secs = time.monotonic() - t0
    summary["seconds"] = round(secs, 3)
    summary["files_per_second"] = round(summary["ok"] / secs, 1) if secs > 0 else None
    summary["mib_per_second"] = round(summary["bytes"] / 1048576 / secs, 1) if secs > 0 else None
    print(json.dumps(summary))
    for e in errors[:5]:
        print("azure_blob_sdk: " + e, file=sys.stderr)
    return 0 if summary["failed"] == 0 and summary["ok"] == summary["files"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
