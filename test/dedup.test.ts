/** Identical content is stored once per replica, however many names point at it. */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { writeFile } from "node:fs/promises";
import { chunkIdOf } from "../src/core/chunk-id";
import { randomBytes, withCluster, withTempDir } from "./harness";

const MiB = 1024 * 1024;

test("the same content under two names occupies each chunk once per replica on the nodes' disks", async () => {
  await withCluster({ nodes: 3, replication: 2 }, async (cluster) => {
    await withTempDir(async (dir) => {
      const data = randomBytes(10 * MiB);
      await writeFile(join(dir, "a.bin"), data);
      await writeFile(join(dir, "b.bin"), data);
      const first = await cluster.run(["upload", join(dir, "a.bin"), "--json"]);
      const second = await cluster.run(["upload", join(dir, "b.bin"), "--json"]);
      expect(first.exitCode).toBe(0);
      expect(second.exitCode).toBe(0);
      expect(JSON.parse(first.stdout).files[0].chunksWritten).toBe(3 * 2);
      expect(JSON.parse(second.stdout).files[0].chunksWritten).toBe(0);
      expect(JSON.parse(second.stdout).files[0].chunksDeduplicated).toBe(3);

      const expectedIds = [0, 4, 8].map((mib) => chunkIdOf(data.subarray(mib * MiB, Math.min(data.length, (mib + 4) * MiB))));
      const copies = new Map<string, number>();
      for (const node of cluster.nodes) for (const id of (await cluster.chunkFiles(node)).keys()) copies.set(id, (copies.get(id) ?? 0) + 1);
      expect([...copies.keys()].sort()).toEqual([...expectedIds].sort());
      for (const id of expectedIds) expect(copies.get(id)).toBe(2);
    });
  });
});

test("repeated chunks inside one file are stored once", async () => {
  await withCluster({ nodes: 3, replication: 2 }, async (cluster) => {
    await withTempDir(async (dir) => {
      // 16 identical 64 KiB chunks of zeros plus one distinct tail chunk.
      const data = new Uint8Array(16 * 65536 + 10);
      data.fill(7, 16 * 65536);
      await writeFile(join(dir, "zeros.bin"), data);
      const up = await cluster.run(["upload", join(dir, "zeros.bin"), "--chunk-size", "64k", "--json"]);
      expect(up.exitCode).toBe(0);
      expect(JSON.parse(up.stdout).files[0].chunkCount).toBe(17);
      let total = 0;
      for (const node of cluster.nodes) total += (await cluster.chunkFiles(node)).size;
      expect(total).toBe(2 * 2);
      const down = await cluster.run(["download", "zeros.bin", join(dir, "back.bin")]);
      expect(down.exitCode).toBe(0);
      expect(Buffer.compare(Buffer.from(await Bun.file(join(dir, "back.bin")).arrayBuffer()), Buffer.from(data))).toBe(0);
    });
  });
});
