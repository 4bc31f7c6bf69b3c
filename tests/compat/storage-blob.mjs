// @azure/storage-blob against Azurite as the reference for skyio's own blob client
// (`skyio blob`): what skyio uploads, the SDK reads back (bytes, Content-MD5, block list,
// names); what the SDK uploads, skyio downloads and checks against the stored MD5.
import { BlobServiceClient } from "@azure/storage-blob";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assert, steps } from "./check.mjs";

const conn = process.env.AZURITE_CONNECTION_STRING;
if (!conn) {
  console.error("storage-blob: Azurite is not installed (scripts/install-deps); skipped");
  process.exit(0);
}
const service = BlobServiceClient.fromConnectionString(conn);
const work = mkdtempSync(join(tmpdir(), "skyio-compat-blob-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));

// Run `skyio blob ARGS` with the Azurite account: {code, stdout, stderr}.
function skyio(...args) {
  return new Promise((resolve) => {
    execFile(process.env.SKYIO, ["blob", ...args, "--connection-string", conn],
      { maxBuffer: 1 << 24 }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
}
async function skyioOk(...args) {
  const r = await skyio(...args);
  assert.equal(r.code, 0, `skyio blob ${args.join(" ")}: ${r.stderr}`);
  return r;
}
const md5 = (b) => createHash("md5").update(b).digest();
// Bytes that differ from one block to the next, so a block out of place shows.
const data = (n, seed) => {
  const b = randomBytes(n);
  b.writeUInt32BE(seed, 0);
  return b;
};
const MiB = 1 << 20;

await steps([
  ["skyio uploads, the SDK reads back bytes, MD5 and blocks", async () => {
    await skyioOk("mb", "from-skyio");
    const small = data(1000, 1), big = data(5 * MiB + 123, 2);
    writeFileSync(join(work, "small.bin"), small);
    writeFileSync(join(work, "big.bin"), big);
    await skyioOk("put", join(work, "small.bin"), "from-skyio/small.bin");
    await skyioOk("put", "--block-size", String(MiB), join(work, "big.bin"), "from-skyio/dir/big.bin");
    const c = service.getContainerClient("from-skyio");
    for (const [name, bytes] of [["small.bin", small], ["dir/big.bin", big]]) {
      const blob = c.getBlockBlobClient(name);
      assert.ok((await blob.downloadToBuffer()).equals(bytes), `${name}: the bytes differ`);
      const p = await blob.getProperties();
      assert.equal(p.contentLength, bytes.length);
      assert.equal(p.blobType, "BlockBlob");
      assert.ok(Buffer.from(p.contentMD5).equals(md5(bytes)), `${name}: Content-MD5 is not the file's`);
    }
    const blocks = await c.getBlockBlobClient("dir/big.bin").getBlockList("committed");
    assert.equal(blocks.committedBlocks.length, 6);
    assert.ok(blocks.committedBlocks.slice(0, 5).every((b) => b.size === MiB));
  }],
  ["skyio put -r: names and nesting as the SDK lists them", async () => {
    const dir = join(work, "tree");
    mkdirSync(join(dir, "a b", "ü"), { recursive: true });
    writeFileSync(join(dir, "top.txt"), "top\n");
    writeFileSync(join(dir, "a b", "x.txt"), "x\n");
    writeFileSync(join(dir, "a b", "ü", "y.json"), "{}\n");
    await skyioOk("put", "-r", dir, "from-skyio/tree");
    const names = [];
    for await (const b of service.getContainerClient("from-skyio").listBlobsFlat({ prefix: "tree/" }))
      names.push(b.name);
    assert.deepEqual(names.sort(), ["tree/a b/x.txt", "tree/a b/ü/y.json", "tree/top.txt"]);
    const y = await service.getContainerClient("from-skyio").getBlobClient("tree/a b/ü/y.json").downloadToBuffer();
    assert.equal(y.toString(), "{}\n");
  }],
  ["the SDK uploads, skyio downloads and checks the stored MD5", async () => {
    const c = service.getContainerClient("from-sdk");
    await c.create();
    const one = data(70000, 3), many = data(3 * MiB + 7, 4);
    await c.getBlockBlobClient("one.bin").uploadData(one, {
      blobHTTPHeaders: { blobContentType: "application/octet-stream", blobContentMD5: md5(one) },
      metadata: { origin: "sdk" },
    });
    await c.getBlockBlobClient("deep/many.bin").uploadData(many, {
      blockSize: MiB, maxSingleShotSize: MiB, concurrency: 2,
      blobHTTPHeaders: { blobContentMD5: md5(many) },
    });
    await skyioOk("get", "from-sdk/one.bin", join(work, "one.out"));
    await skyioOk("get", "--concurrency", "3", "--block-size", String(MiB), "from-sdk/deep/many.bin", join(work, "many.out"));
    assert.ok(readFileSync(join(work, "one.out")).equals(one));
    assert.ok(readFileSync(join(work, "many.out")).equals(many));
    // skyio's reads leave what the SDK stored alone
    const p = await c.getBlobClient("one.bin").getProperties();
    assert.deepEqual(p.metadata, { origin: "sdk" });
    assert.equal(p.contentType, "application/octet-stream");
  }],
  ["a blob whose stored MD5 is not its bytes': skyio refuses to keep it", async () => {
    const c = service.getContainerClient("from-sdk");
    const bytes = data(4096, 5);
    const blob = c.getBlockBlobClient("lying.bin");
    await blob.uploadData(bytes);
    // Set Blob Properties stores an MD5 without checking it (Put Blob would refuse it)
    await blob.setHTTPHeaders({ blobContentMD5: md5(Buffer.from("something else")) });
    const r = await skyio("get", "from-sdk/lying.bin", join(work, "lying.out"));
    assert.equal(r.code, 1, `skyio kept a file whose MD5 is wrong: ${r.stderr}`);
    const none = await skyio("get", "--checksum", "none", "from-sdk/lying.bin", join(work, "lying.out"));
    assert.equal(none.code, 0, none.stderr);
    assert.ok(readFileSync(join(work, "lying.out")).equals(bytes));
  }],
  ["skyio get -r of what the SDK wrote; skyio rm, the SDK sees it gone", async () => {
    const out = join(work, "down");
    await skyioOk("get", "-r", "from-sdk/deep", out);
    assert.equal(md5(readFileSync(join(out, "many.bin"))).toString("hex"),
      md5(await service.getContainerClient("from-sdk").getBlobClient("deep/many.bin").downloadToBuffer()).toString("hex"));
    await skyioOk("rm", "from-sdk/one.bin");
    assert.equal(await service.getContainerClient("from-sdk").getBlobClient("one.bin").exists(), false);
    await skyioOk("rb", "from-skyio");
    assert.equal(await service.getContainerClient("from-skyio").exists(), false);
  }],
]);
