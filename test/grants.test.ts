/**
 * With a node secret, nodes change their contents only with the master's grants, and only nodes
 * that prove the secret register or report, even for callers holding the cluster token.
 */
import { describe, expect, test } from "bun:test";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { chunkIdOf } from "../src/core/chunk-id";
import { listSubject, signGrant } from "../src/core/grants";
import { nodeProof } from "../src/core/node-proof";
import { tokenDigest } from "../src/rpc/auth";
import { StorageApi } from "../src/rpc/client";
import { randomBytes, sha256File, type TestCluster, waitFor, withCluster, withTempDir, kindOf } from "./harness";

const TOKEN = "cluster-token-for-grant-tests-0123";
const NODE_SECRET = "node-secret-for-grant-tests-456789";
const SECRET_KEY = tokenDigest(NODE_SECRET);
const MiB = 1024 * 1024;

// Clients get the token only; master and nodes also get the node secret (through their environment).
const SIGNED = {
  env: { DROPBOX_TOKEN: TOKEN },
  masterArgs: ["--node-timeout", "1000", "--repair-interval", "100", "--gc-grace", "300"],
  nodeArgs: ["--heartbeat-interval", "100"],
};

async function withSignedCluster(nodes: number, body: (cluster: TestCluster) => Promise<void>) {
  process.env.DROPBOX_NODE_SECRET = NODE_SECRET; // inherited by the servers the harness spawns
  try {
    await withCluster({ nodes, replication: 2, ...SIGNED }, body);
  } finally {
    delete process.env.DROPBOX_NODE_SECRET;
  }
}

describe("grants", () => {
  test("uploads that chain, fan out and batch all carry valid grants, and files come back intact", async () => {
    // Two nodes at replication 2: a refused target has no replacement, so every grant must be right first time.
    await withSignedCluster(2, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "big"), randomBytes(9 * MiB));
        await writeFile(join(dir, "small"), randomBytes(MiB));
        await mkdir(join(dir, "many"));
        for (let i = 0; i < 40; i++) await writeFile(join(dir, "many", `f${i}`), randomBytes(4096));
        const runs = [["upload", join(dir, "big")], ["upload", join(dir, "small"), "--chunk-size", "64k"], ["upload", "-r", join(dir, "many"), "--prefix", "many/"]];
        for (const args of runs) {
          const result = await cluster.run(args, { env: { DROPBOX_NODE_SECRET: "" } });
          expect(result.stderr).toBe("");
          expect(result.exitCode).toBe(0);
        }
        // Single small files fan out from the client, one request per target, each with its own grant.
        for (let i = 0; i < 5; i++) {
          await writeFile(join(dir, `single${i}`), randomBytes(100_000));
          const single = await cluster.run(["upload", join(dir, `single${i}`)]);
          expect(single.stderr).toBe("");
          expect(single.exitCode).toBe(0);
        }
        for (const name of ["big", "small"]) {
          expect((await cluster.run(["download", name, join(dir, `${name}.out`)])).exitCode).toBe(0);
          expect(await sha256File(join(dir, `${name}.out`))).toBe(await sha256File(join(dir, name)));
        }
        expect((await cluster.run(["download", "-r", "many/", join(dir, "back")])).exitCode).toBe(0);
        expect(await sha256File(join(dir, "back", "f7"))).toBe(await sha256File(join(dir, "many", "f7")));
      });
    });
  });

  test("a caller with the cluster token cannot PutChunk, ReplicateChunk or DeleteChunks on a node without a valid grant", async () => {
    await withSignedCluster(2, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "f"), randomBytes(MiB));
        expect((await cluster.run(["upload", join(dir, "f")])).exitCode).toBe(0);
        const node = cluster.nodes[0]!;
        const stored = [...(await cluster.chunkFiles(node)).keys()][0]!;
        const api = new StorageApi(node.address);
        try {
          const data = Buffer.from("a chunk nobody placed");
          const id = chunkIdOf(data);
          const now = Date.now();
          const good = signGrant(SECRET_KEY, "put", id, node.name, now, 60_000);
          expect(await kindOf(api.putChunk({ chunkId: id, data }, 5000))).toBe("PERMISSION_DENIED");
          expect(await kindOf(api.putChunk({ chunkId: id, data, grant: { expiresAtMs: good.expiresAtMs, mac: Buffer.alloc(32, 1) } }, 5000))).toBe("PERMISSION_DENIED");
          expect(await kindOf(api.putChunk({ chunkId: id, data, grant: signGrant(SECRET_KEY, "put", id, node.name, now - 120_000, 60_000) }, 5000))).toBe("PERMISSION_DENIED");
          expect(await kindOf(api.putChunk({ chunkId: id, data, grant: signGrant(SECRET_KEY, "put", id, "node2", now, 60_000) }, 5000))).toBe("PERMISSION_DENIED");
          expect(await kindOf(api.putChunk({ chunkId: id, data, grant: signGrant(SECRET_KEY, "delete", id, node.name, now, 60_000) }, 5000))).toBe("PERMISSION_DENIED");
          expect((await cluster.chunkFiles(node)).has(id)).toBe(false);
          // The same request with the master's kind of grant is accepted: the check is real.
          expect(await kindOf(api.putChunk({ chunkId: id, data, grant: good }, 5000))).toBe("OK");
          expect((await cluster.chunkFiles(node)).has(id)).toBe(true);

          expect(await kindOf(api.deleteChunks({ chunkIds: [stored], keepIfWrittenWithinMs: 0 }, 5000))).toBe("PERMISSION_DENIED");
          expect(await kindOf(api.deleteChunks({ chunkIds: [stored], keepIfWrittenWithinMs: 0, grant: signGrant(SECRET_KEY, "delete", listSubject([id]), node.name, now, 60_000) }, 5000))).toBe("PERMISSION_DENIED");
          expect((await cluster.chunkFiles(node)).has(stored)).toBe(true);
          expect(await kindOf(api.replicateChunk({ chunkId: stored, sources: [{ host: "127.0.0.1", port: cluster.nodes[1]!.port, nodeId: "node2" }] }, 5000))).toBe("PERMISSION_DENIED");
        } finally {
          api.close();
        }
      });
    });
  });

  test("repair and garbage collection still work: the master signs the writes it commands", async () => {
    await withSignedCluster(3, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "f"), randomBytes(6 * MiB));
        expect((await cluster.run(["upload", join(dir, "f"), "--chunk-size", "1MiB"])).exitCode).toBe(0);
        const ids = [...new Set((await cluster.api().getManifest({ filename: "f" })).chunks.map((c) => c.chunkId))];
        await cluster.nodes[0]!.kill("SIGKILL");
        const survivors = cluster.nodes.slice(1);
        await waitFor("re-replication onto the survivors", async () => {
          const counts = await Promise.all(survivors.map((n) => cluster.chunkFiles(n)));
          return ids.every((id) => counts.filter((c) => c.has(id)).length === 2);
        }, 30_000, 100);
        expect((await cluster.run(["delete", "f"])).exitCode).toBe(0);
        await waitFor("garbage collection on the survivors", async () => {
          const counts = await Promise.all(survivors.map((n) => cluster.chunkFiles(n)));
          return ids.every((id) => counts.every((c) => !c.has(id)));
        }, 30_000, 100);
      });
    });
  });

  test("only nodes that prove the node secret register or report: a token holder cannot take a node's id over, nor can a node without the secret join", async () => {
    await withSignedCluster(2, async (cluster) => {
      const api = cluster.api();
      const usage = { capacityBytes: 0, freeBytes: 0, usedBytes: 0, chunkCount: 0 };
      const node1 = cluster.nodes[0]!;
      // The cluster token alone: no proof, or a made-up one.
      expect(await kindOf(api.registerNode({ nodeId: "node1", host: "127.0.0.1", port: 1, version: "x", ...usage }))).toBe("PERMISSION_DENIED");
      expect(await kindOf(api.registerNode({ nodeId: "node1", host: "127.0.0.1", port: 1, version: "x", ...usage, nodeProof: Buffer.alloc(32, 7) }))).toBe("PERMISSION_DENIED");
      // A proof for node1's real address does not register it at another one.
      const realProof = nodeProof(SECRET_KEY, "register", "node1", `127.0.0.1:${node1.port}`);
      expect(await kindOf(api.registerNode({ nodeId: "node1", host: "127.0.0.1", port: 1, version: "x", ...usage, nodeProof: realProof }))).toBe("PERMISSION_DENIED");
      const someChunk = "a".repeat(64);
      expect(await kindOf(api.heartbeat({ nodeId: "node1", ...usage, lostChunkIds: [someChunk] }))).toBe("PERMISSION_DENIED");
      expect(await kindOf(api.heartbeat({ nodeId: "node1", ...usage, lostChunkIds: [], nodeProof: nodeProof(SECRET_KEY, "register", "node1") }))).toBe("PERMISSION_DENIED");
      // node1 is where it was, alive.
      const status = await api.getClusterStatus();
      const recorded = status.nodes.find((n) => n.node?.nodeId === "node1")!;
      expect({ port: recorded.node!.port, alive: recorded.alive }).toEqual({ port: node1.port, alive: true });

      // A node started with the token but without the node secret is refused, and says why.
      const outsider = cluster.addNode();
      delete process.env.DROPBOX_NODE_SECRET;
      try {
        await outsider.start();
      } finally {
        process.env.DROPBOX_NODE_SECRET = NODE_SECRET;
      }
      await waitFor("the outsider to log the refusal", async () => /refused this node \(.*node secret/.test(await outsider.log()));
      expect((await api.getClusterStatus()).nodes.map((n) => n.node?.nodeId).sort()).toEqual(["node1", "node2"]);
    });
  });
});
