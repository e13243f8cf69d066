/** Every RPC rejects bad input with the right status and touches nothing on disk. */
import { describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { readdir } from "node:fs/promises";
import { join, relative } from "node:path";
import { chunkIdOf, contentHashOf } from "../src/core/chunk-id";
import { MasterApi, StorageApi } from "../src/rpc/client";
import { StorageServiceClient } from "../src/rpc/proto";
import { type TestCluster, holdsGoodCopy, withCluster, kindOf } from "./harness";

/**
 * Every file under the cluster's data dirs (tmp and quarantine included), for before/after
 * comparison; not the scrubber's bookkeeping, which it writes on its own schedule: a node's
 * first pass starts with the node and, on a loaded machine, may save `scrub.json` (through
 * `scrub.json.tmp`) while a test takes its snapshot.
 */
async function allFiles(cluster: TestCluster): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.name !== "scrub.json" && entry.name !== "scrub.json.tmp") out.push(relative(cluster.dir, path));
    }
  };
  for (const node of cluster.nodes) await walk(node.dataDir);
  return out.sort();
}

describe("storage node input validation", () => {
  test("bad chunk ids, mismatched bytes, empty chunks: INVALID_ARGUMENT and no file created", async () => {
    await withCluster({ nodes: 1, replication: 1 }, async (cluster) => {
      const before = await allFiles(cluster);
      const node = new StorageApi(cluster.nodes[0]!.address);
      try {
        const data = Buffer.from("some chunk bytes");
        const badIds = ["../../etc/passwd", "", "ABCDEF".padEnd(64, "0"), "a".repeat(63), "a".repeat(65), `${"a".repeat(63)}/`, "g".repeat(64)];
        for (const chunkId of badIds) {
          expect(await kindOf(node.putChunk({ chunkId, data }, 5000))).toBe("INVALID_ARGUMENT");
          expect(await kindOf(node.getChunk({ chunkId }, 5000))).toBe("INVALID_ARGUMENT");
        }
        const wrongId = chunkIdOf(Buffer.from("other bytes"));
        const mismatch = await node.putChunk({ chunkId: wrongId, data }, 5000).catch((e) => e);
        expect(mismatch.kind).toBe("INVALID_ARGUMENT");
        expect(mismatch.message).toContain("do not match");
        expect(await kindOf(node.putChunk({ chunkId: chunkIdOf(Buffer.alloc(0)), data: Buffer.alloc(0) }, 5000))).toBe("INVALID_ARGUMENT");
        expect(await kindOf(node.getChunk({ chunkId: wrongId }, 5000))).toBe("NOT_FOUND");
        expect(await allFiles(cluster)).toEqual(before);
        // A good chunk is still accepted afterwards.
        expect(await kindOf(node.putChunk({ chunkId: chunkIdOf(data), data }, 5000))).toBe("OK");
      } finally {
        node.close();
      }
    });
  });

  test("a chain refuses bytes that do not match their id at every node, whether the next node is up or down", async () => {
    await withCluster({ nodes: 2, replication: 2 }, async (cluster) => {
      const [first, second] = cluster.nodes as [TestCluster["nodes"][number], TestCluster["nodes"][number]];
      const [host, port] = [second.address.split(":")[0]!, Number(second.address.split(":")[1])];
      const forwardTo = [{ host, port, nodeId: "node2" }];
      const node = new StorageApi(first.address);
      try {
        // Large enough to be a chunk file, where the first node takes the next one's word for the bytes.
        const data = Buffer.alloc(300 * 1024, 7);
        const wrongId = chunkIdOf(Buffer.from("other bytes"));
        const before = await allFiles(cluster);
        const up = await node.putChunk({ chunkId: wrongId, data, forwardTo }, 5000).catch((e) => e);
        expect(up.kind).toBe("INVALID_ARGUMENT");
        expect(up.message).toContain("do not match");
        expect(await allFiles(cluster)).toEqual(before);

        // The next node is gone: the first one checks the bytes itself.
        await second.kill("SIGKILL");
        const down = await node.putChunk({ chunkId: wrongId, data, forwardTo }, 5000).catch((e) => e);
        expect(down.kind).toBe("INVALID_ARGUMENT");
        expect(down.message).toContain("do not match");
        expect(await allFiles(cluster)).toEqual(before);

        // Good bytes are stored by the first node alone, and the failure of the second reported.
        const stored = await node.putChunk({ chunkId: chunkIdOf(data), data, forwardTo }, 5000);
        expect(stored.storedNodeIds).toEqual([]);
        expect(stored.chainFailures.map((f) => f.nodeId)).toEqual(["node2"]);
        expect(await holdsGoodCopy(first, chunkIdOf(data))).toBe(true);
      } finally {
        node.close();
      }
    });
  });

  test("a message over the size limit is refused with RESOURCE_EXHAUSTED and the node keeps serving", async () => {
    await withCluster({ nodes: 1, replication: 1 }, async (cluster) => {
      const before = await allFiles(cluster);
      // A raw client without our send limit, as an attacker would use.
      const raw = new StorageServiceClient(cluster.nodes[0]!.address, grpc.credentials.createInsecure(), { "grpc.max_send_message_length": -1 }) as any;
      const big = Buffer.alloc(66 * 1024 * 1024, 1);
      const code = await new Promise<number>((resolve) => raw.PutChunk({ chunkId: chunkIdOf(big), data: big }, { deadline: Date.now() + 30_000 }, (err: grpc.ServiceError | null) => resolve(err ? err.code : 0)));
      raw.close();
      expect(code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(await allFiles(cluster)).toEqual(before);
      const node = new StorageApi(cluster.nodes[0]!.address);
      const small = Buffer.from("still alive");
      expect(await kindOf(node.putChunk({ chunkId: chunkIdOf(small), data: small }, 5000))).toBe("OK");
      node.close();
    });
  });
});

describe("master input validation", () => {
  test("bad names, bad ids, inconsistent manifests: INVALID_ARGUMENT; unknown files: NOT_FOUND; nothing committed", async () => {
    await withCluster({ nodes: 1, replication: 1 }, async (cluster) => {
      const master = new MasterApi(cluster.master.address);
      try {
        const data = Buffer.alloc(65536, 3);
        const id = chunkIdOf(data);
        const good = { filename: "ok.bin", size: data.length, chunkSize: 65536, contentHash: contentHashOf([id]), chunks: [{ chunkId: id, size: data.length }], stored: [] };
        for (const filename of ["", "/abs", "a/../b", "a/./b", "a//b", "x\u0000y", "tab\there", "a".repeat(1025), "dir/"]) {
          expect(await kindOf(master.announceManifest({ ...good, filename }))).toBe("INVALID_ARGUMENT");
          expect(await kindOf(master.getManifest({ filename }))).toBe("INVALID_ARGUMENT");
          expect(await kindOf(master.deleteFile({ filename }))).toBe("INVALID_ARGUMENT");
        }
        expect(await kindOf(master.announceManifest({ ...good, contentHash: "0".repeat(64) }))).toBe("INVALID_ARGUMENT");
        expect(await kindOf(master.announceManifest({ ...good, size: 1 }))).toBe("INVALID_ARGUMENT");
        expect(await kindOf(master.announceManifest({ ...good, chunkSize: 1024 }))).toBe("INVALID_ARGUMENT");
        expect(await kindOf(master.announceManifest({ ...good, chunks: [{ chunkId: "../x", size: 1 }] }))).toBe("INVALID_ARGUMENT");
        expect(await kindOf(master.announceManifest({ ...good, stored: [{ chunkId: id, nodeIds: ["no-such-node"] }] }))).toBe("INVALID_ARGUMENT");
        expect(await kindOf(master.requestPutTargets({ chunks: [{ chunkId: "../../etc/passwd", size: 10 }] }))).toBe("INVALID_ARGUMENT");
        expect(await kindOf(master.requestPutTargets({ chunks: [{ chunkId: id, size: 0 }] }))).toBe("INVALID_ARGUMENT");
        expect(await kindOf(master.requestGetTargets({ chunkIds: ["nope"] }))).toBe("INVALID_ARGUMENT");
        expect(await kindOf(master.registerNode({ nodeId: "../evil", host: "h", port: 1, capacityBytes: 0, freeBytes: 0, usedBytes: 0, chunkCount: 0, version: "x" }))).toBe("INVALID_ARGUMENT");
        expect(await kindOf(master.getManifest({ filename: "missing.bin" }))).toBe("NOT_FOUND");
        expect(await kindOf(master.deleteFile({ filename: "missing.bin" }))).toBe("NOT_FOUND");
        // A manifest naming a chunk that no node holds commits nothing and reports it missing.
        const missing = await master.announceManifest(good);
        expect(missing.status).toBe("MISSING_CHUNKS");
        expect(missing.missingChunkIds).toEqual([id]);
        expect((await master.listFiles({})).files).toEqual([]);
      } finally {
        master.close();
      }
    });
  });
});

describe("batches", () => {
  test("each item of a batch gets its own result: good items succeed beside bad ones, which get the single call's status", async () => {
    await withCluster({ nodes: 1, replication: 1 }, async (cluster) => {
      const before = await allFiles(cluster);
      const node = new StorageApi(cluster.nodes[0]!.address);
      const master = new MasterApi(cluster.master.address);
      try {
        const good = Buffer.from("a good small chunk");
        const other = Buffer.from("another one");
        const put = await node.putChunks(
          { chunks: [{ chunkId: chunkIdOf(good), data: good }, { chunkId: "../../etc/passwd", data: good }, { chunkId: chunkIdOf(other), data: good }] },
          5000,
        );
        expect(put.results.map((r) => (r.error ? r.error.code : "OK"))).toEqual(["OK", grpc.status.INVALID_ARGUMENT, grpc.status.INVALID_ARGUMENT]);
        const get = await node.getChunks({ chunks: [{ chunkId: chunkIdOf(good) }, { chunkId: chunkIdOf(other) }] }, 5000);
        expect(Buffer.compare(get.results[0]!.response!.data, good)).toBe(0);
        expect(get.results[1]!.error?.code).toBe(grpc.status.NOT_FOUND);
        // Only the good chunk reached the node (packed: no file of its own), and no stray file did.
        expect([...(await cluster.chunkFiles(cluster.nodes[0]!)).keys()]).toEqual([chunkIdOf(good)]);
        expect((await allFiles(cluster)).filter((f) => !before.includes(f))).toEqual([]);
        const manifests = await master.getManifests({ requests: [{ filename: "nope" }, { filename: "../bad" }] });
        expect(manifests.results.map((r) => r.error?.code)).toEqual([grpc.status.NOT_FOUND, grpc.status.INVALID_ARGUMENT]);
        const tooMany = await kindOf(node.getChunks({ chunks: Array.from({ length: 257 }, () => ({ chunkId: chunkIdOf(good) })) }, 5000));
        expect(tooMany).toBe("INVALID_ARGUMENT");
      } finally {
        node.close();
        master.close();
      }
    });
  });
});
