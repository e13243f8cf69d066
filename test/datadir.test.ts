/** Data dirs are private to their user and to one process: a second server on the same dir refuses to start. */
import { describe, expect, test } from "bun:test";
import { chown, mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { BIN, packedChunkCount, randomBytes, type RunResult, withCluster, withTempDir } from "./harness";
import { chunkIdOf } from "../src/core/chunk-id";
import { ProcessApi, StorageApi } from "../src/rpc/client";

/** Runs the binary as a server that is expected to refuse to start; kills it if it serves instead. */
async function runRefused(args: string[], timeoutMs = 10_000): Promise<RunResult> {
  const proc = Bun.spawn([BIN, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  try {
    const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { exitCode, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

describe("data dirs", () => {
  test("a second node or master on a data dir in use exits 4 with one line naming the dir and the holder; after SIGKILL of the holder a new one starts", async () => {
    await withCluster({ nodes: 1, replication: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const second = await runRefused(["node", "--port", "0", "--master", cluster.master.address, "--data-dir", node.dataDir]);
      expect(second.exitCode).toBe(4);
      expect(second.stderr.trim().split("\n")).toHaveLength(1);
      expect(second.stderr).toContain(node.dataDir);
      expect(second.stderr).toContain(`pid ${node.pid}`);

      const secondMaster = await runRefused(["master", "--port", "0", "--data-dir", cluster.master.dataDir]);
      expect(secondMaster.exitCode).toBe(4);
      expect(secondMaster.stderr.trim().split("\n")).toHaveLength(1);
      expect(secondMaster.stderr).toContain(cluster.master.dataDir);
      expect(secondMaster.stderr).toContain(`pid ${cluster.master.pid}`);

      // SIGKILL leaves the lock file behind; its holder is gone, so it does not block a restart.
      await node.kill("SIGKILL");
      await cluster.master.kill("SIGKILL");
      expect(existsSync(join(node.dataDir, "dropbox.lock"))).toBe(true);
      await cluster.master.start();
      await node.start();
      await cluster.waitForLiveNodes(1);
      // The restarted ones hold the locks again.
      expect((await runRefused(["node", "--port", "0", "--master", cluster.master.address, "--data-dir", node.dataDir])).exitCode).toBe(4);
    });
  });

  test("a server stopped with SIGTERM removes its lock", async () => {
    await withCluster({ nodes: 1, replication: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      expect(existsSync(join(node.dataDir, "dropbox.lock"))).toBe(true);
      expect(await node.kill("SIGTERM")).toBe(0);
      expect(await cluster.master.kill("SIGTERM")).toBe(0);
      expect(existsSync(join(node.dataDir, "dropbox.lock"))).toBe(false);
      expect(existsSync(join(cluster.master.dataDir, "dropbox.lock"))).toBe(false);
    });
  });

  test("data dirs are created 0700; the node id, lock and metadata files are 0600", async () => {
    await withCluster({ nodes: 1, replication: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      for (const dir of [node.dataDir, join(node.dataDir, "chunks"), join(node.dataDir, "packs"), cluster.master.dataDir]) expect(await modeOf(dir)).toBe(0o700);
      const packFiles = [join(node.dataDir, "packs", "packs.sqlite"), join(node.dataDir, "packs", "00000001.pack")];
      for (const file of [join(node.dataDir, "node-id"), join(node.dataDir, "dropbox.lock"), join(cluster.master.dataDir, "dropbox.lock"), join(cluster.master.dataDir, "metadata.db"), ...packFiles]) {
        expect(await modeOf(file)).toBe(0o600);
      }
    });
  });

  test("a node makes a chunk directory when it first stores a chunk file there; restarted, it counts, lists and serves what they hold", async () => {
    await withCluster({ nodes: 1, replication: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const chunksDir = join(node.dataDir, "chunks");
      expect(await readdir(chunksDir)).toEqual([]);
      // Two chunk files (256 KiB and up are files, not packed), and one small packed chunk.
      const large = [Buffer.from(randomBytes(300 * 1024)), Buffer.from(randomBytes(300 * 1024))];
      const small = Buffer.from(randomBytes(1000));
      const storage = new StorageApi(node.address);
      try {
        for (const data of [...large, small]) await storage.putChunk({ chunkId: chunkIdOf(data), data }, 5000);
      } finally {
        storage.close();
      }
      const prefixes = [...new Set(large.map((d) => chunkIdOf(d).slice(0, 2)))].sort();
      expect((await readdir(chunksDir)).sort()).toEqual(prefixes);
      for (const prefix of prefixes) expect(await modeOf(join(chunksDir, prefix))).toBe(0o700);

      expect(await node.kill("SIGTERM")).toBe(0);
      await node.start();
      await cluster.waitForLiveNodes(1);
      // Asked of the restarted process itself: the master may still hold the old one's last heartbeat.
      const stats = new ProcessApi(node.address);
      const restarted = new StorageApi(node.address);
      try {
        const own = await stats.getStats(5000);
        expect(own.pid).toBe(node.pid);
        expect(own.chunkCount).toBe(3);
        const ids = [...large, small].map((d) => chunkIdOf(d)).sort();
        expect((await restarted.listChunks({ startAfter: "", limit: 10 }, 5000)).chunks.map((c) => c.chunkId)).toEqual(ids);
        for (const data of large) expect(Buffer.compare((await restarted.getChunk({ chunkId: chunkIdOf(data) }, 5000)).data, data)).toBe(0);
      } finally {
        restarted.close();
        stats.close();
      }
    });
  });

  test("a node restarted on a data dir holding small chunks as files (the layout before packs) still serves, lists and deletes them", async () => {
    await withCluster({ nodes: 1, replication: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      expect(await node.kill("SIGTERM")).toBe(0);
      const data = Buffer.from(randomBytes(1000));
      const id = chunkIdOf(data);
      // That layout made all 256 fan-out directories at start-up; nodes now make them on first use.
      await mkdir(join(node.dataDir, "chunks", id.slice(0, 2)), { recursive: true, mode: 0o700 });
      await writeFile(join(node.dataDir, "chunks", id.slice(0, 2), id), data, { mode: 0o600 });
      await node.start();
      await cluster.waitForLiveNodes(1);
      const storage = new StorageApi(node.address);
      try {
        expect(Buffer.compare((await storage.getChunk({ chunkId: id }, 5000)).data, data)).toBe(0);
        expect((await storage.listChunks({ startAfter: "", limit: 10 }, 5000)).chunks).toEqual([{ chunkId: id, size: 1000 }]);
        expect((await storage.verifyChunks({ chunkIds: [id] }, 5000)).chunks).toEqual([{ chunkId: id, size: 1000, state: "ok" }]);
        // Sent again: found in its file, not packed a second time.
        expect((await storage.putChunk({ chunkId: id, data }, 5000)).alreadyPresent).toBe(true);
        expect(packedChunkCount(node)).toBe(0);
        expect((await storage.deleteChunks({ chunkIds: [id], keepIfWrittenWithinMs: 0 }, 5000)).deletedChunkIds).toEqual([id]);
        expect(existsSync(join(node.dataDir, "chunks", id.slice(0, 2), id))).toBe(false);
      } finally {
        storage.close();
      }
    });
  });

  test.skipIf(process.getuid?.() !== 0)("a data dir owned by another user is refused with exit 2 (run as root only: it needs chown)", async () => {
    await withTempDir(async (dir) => {
      const foreign = join(dir, "foreign");
      await mkdir(foreign, { mode: 0o700 });
      await chown(foreign, 65534, 65534);
      const result = await runRefused(["node", "--port", "0", "--master", "127.0.0.1:1", "--data-dir", foreign]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr.trim().split("\n")).toHaveLength(1);
      expect(result.stderr).toContain(foreign);
      expect(result.stderr).toContain("owned by uid 65534");
    });
  });
});
