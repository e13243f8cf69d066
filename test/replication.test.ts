/** How replicas travel: large chunks down a chain of nodes (the client sends each byte once), small ones straight from the client. */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { writeFile } from "node:fs/promises";
import { ProcessApi } from "../src/rpc/client";
import { randomBytes, sha256File, type TestCluster, withCluster, withTempDir } from "./harness";

const MiB = 1024 * 1024;

/** Bytes the nodes have received and sent, summed (from each node's own stats). */
async function nodeTraffic(cluster: TestCluster): Promise<{ bytesIn: number; bytesOut: number }> {
  let bytesIn = 0;
  let bytesOut = 0;
  for (const node of cluster.nodes) {
    const api = new ProcessApi(node.address);
    try {
      const stats = await api.getStats(5000);
      bytesIn += stats.bytesIn;
      bytesOut += stats.bytesOut;
    } finally {
      api.close();
    }
  }
  return { bytesIn, bytesOut };
}

test("4 MiB chunks are chain-replicated: nodes forward one copy of every byte; 64 KiB chunks fan out from the client", async () => {
  await withCluster({ nodes: 3, replication: 2 }, async (cluster) => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, "big"), randomBytes(8 * MiB));
      await writeFile(join(dir, "small"), randomBytes(MiB));
      const before = await nodeTraffic(cluster);
      expect((await cluster.run(["upload", join(dir, "big")])).exitCode).toBe(0);
      const afterBig = await nodeTraffic(cluster);
      // Every replica arrives once; the second replica of each chunk is sent by a node, not the client.
      expect(afterBig.bytesIn - before.bytesIn).toBe(2 * 8 * MiB);
      expect(afterBig.bytesOut - before.bytesOut).toBe(8 * MiB);
      expect((await cluster.run(["upload", join(dir, "small"), "--chunk-size", "64k"])).exitCode).toBe(0);
      const afterSmall = await nodeTraffic(cluster);
      expect(afterSmall.bytesIn - afterBig.bytesIn).toBe(2 * MiB);
      expect(afterSmall.bytesOut - afterBig.bytesOut).toBe(0);
      for (const name of ["big", "small"]) {
        expect((await cluster.run(["download", name, join(dir, `${name}.out`)])).exitCode).toBe(0);
        expect(await sha256File(join(dir, `${name}.out`))).toBe(await sha256File(join(dir, name)));
      }
    });
  });
});

test("a chain whose second node is down: the first node stores, the client finds another node for the rest", async () => {
  // A long node timeout keeps the dead node in the master's placements, so chains through it keep failing mid-way.
  await withCluster({ nodes: 3, replication: 3, masterArgs: ["--node-timeout", "60000"] }, async (cluster) => {
    await withTempDir(async (dir) => {
      const extra = cluster.addNode();
      await extra.start();
      await cluster.waitForLiveNodes(4);
      await cluster.nodes[1]!.kill("SIGKILL");
      await writeFile(join(dir, "f"), randomBytes(12 * MiB));
      const up = await cluster.run(["upload", join(dir, "f"), "--json"]);
      expect(up.stderr).toBe("");
      expect(up.exitCode).toBe(0);
      // 3 chunks x 3 replicas, none on the dead node.
      expect(JSON.parse(up.stdout).files[0].chunksWritten).toBe(9);
      for (const node of [cluster.nodes[0]!, cluster.nodes[2]!, extra]) expect((await cluster.chunkFiles(node)).size).toBe(3);
      expect((await cluster.run(["download", "f", join(dir, "out")])).exitCode).toBe(0);
      expect(await sha256File(join(dir, "out"))).toBe(await sha256File(join(dir, "f")));
    });
  });
});
