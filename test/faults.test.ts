/** Downloads survive dead nodes, rotten chunk files and a master killed mid-life. */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { kindOf, packedChunkCount, randomBytes, rotChunk, sha256File, waitFor, withCluster, withTempDir } from "./harness";
import { StorageApi } from "../src/rpc/client";

const KiB = 1024;
const MiB = 1024 * KiB;

describe("faults", () => {
  test("a node killed with SIGKILL before a download: the download still succeeds", async () => {
    await withCluster({ nodes: 3, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "f.bin"), randomBytes(20 * MiB));
        expect((await cluster.run(["upload", join(dir, "f.bin")])).exitCode).toBe(0);
        // Kill the node holding the most chunks, so the download must use replicas elsewhere.
        const counts = await Promise.all(cluster.nodes.map(async (n) => (await cluster.chunkFiles(n)).size));
        const victim = cluster.nodes[counts.indexOf(Math.max(...counts))]!;
        await victim.kill("SIGKILL");
        const down = await cluster.run(["download", "f.bin", join(dir, "out.bin")]);
        expect(down.stderr).toBe("");
        expect(down.exitCode).toBe(0);
        expect(await sha256File(join(dir, "out.bin"))).toBe(await sha256File(join(dir, "f.bin")));
      });
    });
  });

  test("a chunk file corrupted on one node: every download is correct, and the client that was served the bad copy gets it quarantined", async () => {
    // Two nodes at replication 2: every chunk has exactly one good copy besides the rotten one.
    // No scrubbing: only the clients' reports may find the rotten copies here.
    await withCluster({ nodes: 2, replication: 2, nodeArgs: ["--scrub-rate", "0"] }, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "f.bin"), randomBytes(12 * MiB));
        const expected = await sha256File(join(dir, "f.bin"));
        expect((await cluster.run(["upload", join(dir, "f.bin")])).exitCode).toBe(0);
        const node = cluster.nodes[0]!;
        const files = await cluster.chunkFiles(node);
        expect(files.size).toBe(3);
        for (const id of files.keys()) {
          const path = join(node.dataDir, "chunks", id.slice(0, 2), id);
          const bytes = await readFile(path);
          bytes[100] = bytes[100]! ^ 0xff;
          await writeFile(path, bytes);
        }
        // Nodes serve what they stored; the client checks, takes the other replica, and reports
        // the mismatch, on which the node re-hashes and quarantines its copy. Replica order is
        // shuffled per request, so each download is served a given rotten copy first half the time.
        const quarantined = async () => (await readdir(join(node.dataDir, "quarantine"))).map((f) => f.split(".")[0]!).sort();
        let downloads = 0;
        while ((await quarantined()).length < files.size && downloads < 30) {
          const out = join(dir, `out${downloads++}.bin`);
          const down = await cluster.run(["download", "f.bin", out]);
          expect(down.stderr).toBe("");
          expect(down.exitCode).toBe(0);
          expect(await sha256File(out)).toBe(expected);
        }
        expect(await quarantined()).toEqual([...files.keys()].sort());
      });
    });
  });

  test("with --verify-reads a node never serves a rotten copy: asked directly it answers DATA_LOSS and quarantines it", async () => {
    await withCluster({ nodes: 1, replication: 1, nodeArgs: ["--scrub-rate", "0", "--verify-reads"] }, async (cluster) => {
      await withTempDir(async (dir) => {
        // One large chunk (a file) and one small (packed): both kinds of copy.
        await writeFile(join(dir, "big"), randomBytes(1 * MiB));
        await writeFile(join(dir, "small"), randomBytes(4 * KiB));
        expect((await cluster.run(["upload", join(dir, "big"), join(dir, "small")])).exitCode).toBe(0);
        const node = cluster.nodes[0]!;
        const ids = [...(await cluster.chunkFiles(node)).keys()];
        expect(ids).toHaveLength(2);
        for (const id of ids) await rotChunk(node, id);
        const storage = new StorageApi(node.address);
        try {
          for (const id of ids) expect(await kindOf(storage.getChunk({ chunkId: id }, 5000))).toBe("DATA_LOSS");
          for (const id of ids) expect(await kindOf(storage.getChunk({ chunkId: id }, 5000))).toBe("NOT_FOUND");
        } finally {
          storage.close();
        }
        expect((await readdir(join(node.dataDir, "quarantine"))).map((f) => f.split(".")[0]).sort()).toEqual(ids.sort());
      });
    });
  });

  test("a node killed with SIGKILL while it packs small chunks, then restarted: the upload completes, nothing the node kept is torn or missing", async () => {
    await withCluster({ nodes: 3, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        await mkdir(join(dir, "many"));
        const files = Array.from({ length: 1500 }, (_, i) => randomBytes(4 * KiB + i));
        await Promise.all(files.map((data, i) => writeFile(join(dir, "many", `f${i}`), data)));
        const victim = cluster.nodes[0]!;
        const upload = cluster.run(["upload", "-r", join(dir, "many"), "--prefix", "many/", "--json"]);
        await waitFor("the victim to have packed some chunks", () => packedChunkCount(victim) > 0 || null, 20_000, 2);
        await victim.kill("SIGKILL");
        const up = await upload;
        expect({ exitCode: up.exitCode, stderr: up.stderr }).toEqual({ exitCode: 0, stderr: "" });
        // The kill landed mid-upload: chunks bound for the victim went elsewhere.
        expect(JSON.parse(up.stdout).totals.retries).toBeGreaterThan(0);

        await victim.start();
        await cluster.waitForLiveNodes(3);
        const down = await cluster.run(["download", "-r", "many/", join(dir, "out")]);
        expect(down.exitCode).toBe(0);
        for (let i = 0; i < files.length; i++) expect(Buffer.compare(await readFile(join(dir, "out", `f${i}`)), files[i]!)).toBe(0);
        // Every copy the master records, the restarted node included, re-hashes good.
        const verify = JSON.parse((await cluster.run(["verify", "--json"])).stdout);
        expect(verify.counts).toMatchObject({ corrupt: 0, missing: 0, lost: 0 });
        expect(verify.counts.ok).toBeGreaterThanOrEqual(files.length);
      });
    });
  });

  test("the master killed with SIGKILL and restarted on the same data dir: list and download still work", async () => {
    await withCluster({ nodes: 3, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "a.bin"), randomBytes(6 * MiB));
        await writeFile(join(dir, "b.bin"), randomBytes(100));
        expect((await cluster.run(["upload", join(dir, "a.bin")])).exitCode).toBe(0);
        expect((await cluster.run(["upload", join(dir, "b.bin"), "--as", "dir/b.bin"])).exitCode).toBe(0);
        await cluster.master.kill("SIGKILL");
        await cluster.master.start();
        const list = await cluster.run(["list", "--json"]);
        expect(list.exitCode).toBe(0);
        expect(JSON.parse(list.stdout).files.map((f: { name: string }) => f.name)).toEqual(["a.bin", "dir/b.bin"]);
        for (const [name, local] of [["a.bin", "a.bin"], ["dir/b.bin", "b.bin"]] as const) {
          const down = await cluster.run(["download", name, join(dir, `${local}.out`)]);
          expect(down.exitCode).toBe(0);
          expect(await sha256File(join(dir, `${local}.out`))).toBe(await sha256File(join(dir, local)));
        }
        // Nodes reconnect by themselves and new uploads work.
        await cluster.waitForLiveNodes(3);
        expect((await cluster.run(["upload", join(dir, "b.bin"), "--as", "after-restart.bin"])).exitCode).toBe(0);
      });
    });
  });

  test("an upload that cannot reach RF nodes fails with a non-zero exit and leaves no file listed", async () => {
    await withCluster({ nodes: 1, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "f.bin"), randomBytes(MiB));
        const up = await cluster.run(["upload", join(dir, "f.bin")]);
        expect(up.exitCode).toBe(7);
        expect(up.stderr).toMatch(/^error: cannot place chunk on 2 nodes/);
        expect(up.stderr.trim().split("\n")).toHaveLength(1);
        const list = await cluster.run(["list", "--json"]);
        expect(JSON.parse(list.stdout).files).toEqual([]);
      });
    });
  });

  test("a target node dying during upload: the chunk goes to another node and the upload succeeds", async () => {
    await withCluster({ nodes: 4, replication: 2, masterArgs: ["--node-timeout", "60000"] }, async (cluster) => {
      await withTempDir(async (dir) => {
        // The master still believes node1 alive (long timeout), so it keeps choosing it: the client must route around.
        await cluster.nodes[0]!.kill("SIGKILL");
        await writeFile(join(dir, "f.bin"), randomBytes(16 * MiB));
        // 16 chunks: each has node1 among its 2 of 4 targets with probability 1/2, so all 16
        // missing it (no retry to see) happens once in 65,536 runs. (With 4 chunks: 1 in 16.)
        const up = await cluster.run(["upload", join(dir, "f.bin"), "--chunk-size", "1MiB", "--json"]);
        expect(up.stderr).toBe("");
        expect(up.exitCode).toBe(0);
        expect(JSON.parse(up.stdout).files[0].chunksWritten).toBe(32);
        // The routing around is visible: at least one copy went to node1 first and was retried.
        expect(JSON.parse(up.stdout).files[0].retries).toBeGreaterThan(0);
        expect(JSON.parse(up.stdout).totals.retries).toBe(JSON.parse(up.stdout).files[0].retries);
        expect((await cluster.chunkFiles(cluster.nodes[0]!)).size).toBe(0);
        const down = await cluster.run(["download", "f.bin", join(dir, "out.bin")]);
        expect(down.exitCode).toBe(0);
        expect(await sha256File(join(dir, "out.bin"))).toBe(await sha256File(join(dir, "f.bin")));
      });
    });
  });

  test("a download that cannot get every chunk fails cleanly and leaves no partial file", async () => {
    await withCluster({ nodes: 2, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "f.bin"), randomBytes(5 * MiB));
        expect((await cluster.run(["upload", join(dir, "f.bin")])).exitCode).toBe(0);
        for (const node of cluster.nodes) await node.kill("SIGKILL");
        const out = join(dir, "out");
        await Bun.write(join(out, ".keep"), "");
        const down = await cluster.run(["download", "f.bin", join(out, "f.bin")]);
        expect(down.exitCode).toBe(4);
        expect(down.stderr).toMatch(/^error: chunk [0-9a-f]{12}… could not be read from any replica/);
        expect(await readdir(out)).toEqual([".keep"]);
      });
    });
  });

  test("re-uploading a name replaces it atomically: concurrent readers get the old or the new file, never a mix", async () => {
    await withCluster({ nodes: 3, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const versions = [randomBytes(9 * MiB), randomBytes(9 * MiB)];
        await writeFile(join(dir, "v0"), versions[0]!);
        await writeFile(join(dir, "v1"), versions[1]!);
        const hashes = [await sha256File(join(dir, "v0")), await sha256File(join(dir, "v1"))];
        expect((await cluster.run(["upload", join(dir, "v0"), "--as", "doc"])).exitCode).toBe(0);
        const writer = (async () => {
          for (let i = 1; i <= 4; i++) expect((await cluster.run(["upload", join(dir, `v${i % 2}`), "--as", "doc"])).exitCode).toBe(0);
        })();
        const seen = new Set<string>();
        const readers = [0, 1].map(async (r) => {
          for (let i = 0; i < 4; i++) {
            const out = join(dir, `read-${r}-${i}`);
            expect((await cluster.run(["download", "doc", out])).exitCode).toBe(0);
            const hash = await sha256File(out);
            expect(hashes).toContain(hash);
            seen.add(hash);
          }
        });
        await Promise.all([writer, ...readers]);
        expect(seen.size).toBeGreaterThanOrEqual(1);
        const list = await cluster.run(["list", "--json"]);
        expect(JSON.parse(list.stdout).files).toHaveLength(1);
      });
    });
  });
});
