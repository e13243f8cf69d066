/** The cluster heals itself: lost replicas come back, surplus ones go, rot is found and replaced, garbage is collected. */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { type MasterApi, StorageApi } from "../src/rpc/client";
import { packBytesOnDisk } from "./disk-chunks";
import { holdsGoodCopy, randomBytes, rotChunk, sha256File, type ServerProcess, type TestCluster, waitFor, withCluster, withTempDir } from "./harness";

const MiB = 1024 * 1024;
/** Short intervals so the whole heal cycle fits in a test. */
const FAST_MASTER = ["--node-timeout", "1000", "--repair-interval", "100", "--gc-grace", "300"];
const FAST_NODE = ["--heartbeat-interval", "100"];

/** chunk id -> how many nodes (of those given) hold it on disk. */
async function copiesOnDisk(cluster: TestCluster, nodes: ServerProcess[]): Promise<Map<string, number>> {
  const copies = new Map<string, number>();
  for (const node of nodes) for (const id of (await cluster.chunkFiles(node)).keys()) copies.set(id, (copies.get(id) ?? 0) + 1);
  return copies;
}

async function fileChunkIds(api: MasterApi, name: string): Promise<string[]> {
  return [...new Set((await api.getManifest({ filename: name })).chunks.map((c) => c.chunkId))];
}

/** Writes DIR/f.bin of `bytes` random bytes and uploads it as f.bin in 1 MiB chunks. */
async function uploadTestFile(cluster: TestCluster, dir: string, bytes: number) {
  await writeFile(join(dir, "f.bin"), randomBytes(bytes));
  expect((await cluster.run(["upload", join(dir, "f.bin"), "--chunk-size", "1MiB"])).exitCode).toBe(0);
}

/** Downloads f.bin into DIR and checks it is byte for byte the file uploaded. */
async function expectIntactDownload(cluster: TestCluster, dir: string) {
  const down = await cluster.run(["download", "f.bin", join(dir, "out.bin")]);
  expect(down.exitCode).toBe(0);
  expect(await sha256File(join(dir, "out.bin"))).toBe(await sha256File(join(dir, "f.bin")));
}

describe("self-healing", () => {
  test("a node killed and not restarted: every chunk again has 2 live replicas on disk, and the file downloads intact", async () => {
    await withCluster({ nodes: 3, replication: 2, masterArgs: FAST_MASTER, nodeArgs: FAST_NODE }, async (cluster) => {
      await withTempDir(async (dir) => {
        await uploadTestFile(cluster, dir, 20 * MiB);
        const api = cluster.api();
        const ids = await fileChunkIds(api, "f.bin");
        expect(ids).toHaveLength(20);
        const victim = cluster.nodes[0]!;
        const survivors = cluster.nodes.slice(1);
        expect((await cluster.chunkFiles(victim)).size).toBeGreaterThan(0);
        await victim.kill("SIGKILL");
        // Node timeout (1 s) plus a bounded repair time.
        await waitFor(
          "every chunk to have 2 copies on the surviving nodes",
          async () => {
            const copies = await copiesOnDisk(cluster, survivors);
            return ids.every((id) => copies.get(id) === 2);
          },
          30_000,
          100,
        );
        const status = await api.getClusterStatus(2000);
        expect(status.nodes.find((n) => n.node?.nodeId === "node1")?.alive).toBe(false);
        await waitFor("status to show no under-replicated chunks", async () => (await api.getClusterStatus(2000)).repair?.underReplicatedChunks === 0, 10_000);
        expect((await api.getClusterStatus(2000)).repair!.repairsCompleted).toBeGreaterThan(0);
        await expectIntactDownload(cluster, dir);
      });
    });
  });

  test("the dead node restarted: over-replicated chunks are trimmed back to 2 copies", async () => {
    await withCluster({ nodes: 3, replication: 2, masterArgs: FAST_MASTER, nodeArgs: FAST_NODE }, async (cluster) => {
      await withTempDir(async (dir) => {
        await uploadTestFile(cluster, dir, 12 * MiB);
        const ids = await fileChunkIds(cluster.api(), "f.bin");
        const victim = cluster.nodes[0]!;
        await victim.kill("SIGKILL");
        await waitFor("repair onto the survivors", async () => {
          const copies = await copiesOnDisk(cluster, cluster.nodes.slice(1));
          return ids.every((id) => copies.get(id) === 2);
        }, 30_000, 100);
        await victim.start();
        await waitFor("surplus copies trimmed: exactly 2 copies of every chunk across all 3 nodes", async () => {
          const copies = await copiesOnDisk(cluster, cluster.nodes);
          return ids.every((id) => copies.get(id) === 2) && copies.size === ids.length;
        }, 30_000, 100);
        await expectIntactDownload(cluster, dir);
      });
    });
  });

  test("a node back at once with an empty disk under its old id: its recorded copies are forgotten and copied back", async () => {
    await withCluster({ nodes: 2, replication: 2, masterArgs: FAST_MASTER, nodeArgs: FAST_NODE }, async (cluster) => {
      await withTempDir(async (dir) => {
        await uploadTestFile(cluster, dir, 8 * MiB);
        const ids = await fileChunkIds(cluster.api(), "f.bin");
        const [wiped, other] = cluster.nodes as [ServerProcess, ServerProcess];
        expect((await cluster.chunkFiles(wiped)).size).toBe(ids.length);
        // Back within the node timeout: never seen dead, so only its inventory tells the master.
        await wiped.kill("SIGKILL");
        await rm(wiped.dataDir, { recursive: true, force: true });
        await wiped.start();
        await waitFor("every chunk back on the wiped node", async () => {
          const held = await cluster.chunkFiles(wiped);
          return ids.every((id) => held.has(id));
        }, 30_000, 100);
        expect((await cluster.chunkFiles(other)).size).toBe(ids.length);
        await waitFor("status to show no under-replicated chunks", async () => (await cluster.api().getClusterStatus(2000)).repair?.underReplicatedChunks === 0, 10_000);
        // The master read the empty inventory and forgot every copy it had recorded there, at once.
        expect(await readFile(cluster.master.logPath, "utf8")).toContain(`inventory of ${wiped.name}: 0 chunks, ${ids.length} missing copies forgotten`);
        await expectIntactDownload(cluster, dir);
      });
    });
  });

  test("a chunk file flipped on disk: the scrubber quarantines it and the replica is restored", async () => {
    // Passes back to back: the flip lands after the first one.
    await withCluster({ nodes: 3, replication: 2, masterArgs: FAST_MASTER, nodeArgs: [...FAST_NODE, "--scrub-rate", "64", "--scrub-interval", "0"] }, async (cluster) => {
      await withTempDir(async (dir) => {
        await uploadTestFile(cluster, dir, 4 * MiB);
        const ids = await fileChunkIds(cluster.api(), "f.bin");
        const node = (await Promise.all(cluster.nodes.map(async (n) => ({ n, files: await cluster.chunkFiles(n) })))).find((x) => x.files.size > 0)!;
        const id = [...node.files.keys()][0]!;
        const path = join(node.n.dataDir, "chunks", id.slice(0, 2), id);
        const bytes = await readFile(path);
        bytes[12345] = bytes[12345]! ^ 0x01;
        await writeFile(path, bytes);
        await waitFor("the scrubber to quarantine the flipped copy", async () => (await readdir(join(node.n.dataDir, "quarantine"))).some((f) => f.startsWith(id)), 20_000, 100);
        await waitFor("2 good copies of every chunk again", async () => {
          const copies = await copiesOnDisk(cluster, cluster.nodes);
          return ids.every((c) => copies.get(c) === 2);
        }, 20_000, 100);
        // Every copy on disk is good again.
        for (const n of cluster.nodes) {
          for (const chunkId of (await cluster.chunkFiles(n)).keys()) {
            const data = await readFile(join(n.dataDir, "chunks", chunkId.slice(0, 2), chunkId));
            expect(new Bun.CryptoHasher("sha256").update(data).digest("hex")).toBe(chunkId);
          }
        }
      });
    });
  });

  test("a restarted node resumes its scrub pass where it stood, and finishes it once, not again at once", async () => {
    // Default scrubbing: the first pass, over the empty store at start-up, ends at once; the next is a week away.
    await withCluster({ nodes: 1, replication: 1, nodeArgs: FAST_NODE }, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "f.bin"), randomBytes(6 * 256 * 1024));
        expect((await cluster.run(["upload", join(dir, "f.bin"), "--chunk-size", "256KiB"])).exitCode).toBe(0);
        const node = cluster.nodes[0]!;
        const ids = [...(await cluster.chunkFiles(node)).keys()].sort();
        expect(ids).toHaveLength(6);
        await node.kill("SIGTERM");
        // Stopped mid-pass, having verified up to ids[2]: rot one chunk behind that point and one ahead.
        const statePath = join(node.dataDir, "scrub.json");
        const startedAtMs = Date.now() - 60_000;
        await writeFile(statePath, JSON.stringify({ passStartedAtMs: startedAtMs, inPass: true, after: ids[2], lastPassEndedAtMs: null }));
        await rotChunk(node, ids[1]!);
        await rotChunk(node, ids[4]!);
        await node.start(["--scrub-rate", "1000", "--scrub-interval", "3600000"]);

        const state = () => readFile(statePath, "utf8").then((t) => JSON.parse(t), () => null);
        await waitFor("the resumed pass to end", async () => (await state())?.inPass === false, 20_000, 50);
        const ended = await state();
        // The same pass, finished: the next one is an hour after it started, not now.
        expect(ended.passStartedAtMs).toBe(startedAtMs);
        expect(ended.lastPassEndedAtMs).toBeGreaterThanOrEqual(startedAtMs);
        const quarantined = await readdir(join(node.dataDir, "quarantine"));
        expect(quarantined.some((f) => f.startsWith(ids[4]!))).toBe(true);
        // Behind where the pass stood: not looked at again in this pass.
        expect(quarantined.some((f) => f.startsWith(ids[1]!))).toBe(false);
        expect(await holdsGoodCopy(node, ids[1]!)).toBe(false);
        expect((await cluster.chunkFiles(node)).has(ids[1]!)).toBe(true);
      });
    });
  });

  test("re-replication from a rotten copy: the copying node reports it, the source quarantines it, and a good copy heals the chunk later", async () => {
    // No scrubbing: only the report of the node that copied the bytes may find the rot.
    await withCluster({ nodes: 3, replication: 2, masterArgs: FAST_MASTER, nodeArgs: [...FAST_NODE, "--scrub-rate", "0"] }, async (cluster) => {
      await withTempDir(async (dir) => {
        await uploadTestFile(cluster, dir, 1 * MiB);
        const api = cluster.api();
        const [chunk] = (await api.getManifest({ filename: "f.bin" })).chunks;
        const [rotten, good] = chunk!.replicas.map((r) => cluster.nodes.find((n) => n.name === r.nodeId)!);
        await rotChunk(rotten!, chunk!.chunkId);
        // With the good copy's node dead, the master can only copy from the rotten one.
        await good!.kill("SIGKILL");
        await waitFor("the rotten copy to be reported and quarantined", async () => (await readdir(join(rotten!.dataDir, "quarantine"))).some((f) => f.startsWith(chunk!.chunkId)), 20_000, 50);
        // The good copy comes back: the chunk gets its second copy again, from it.
        await good!.start();
        await waitFor("2 good copies of the chunk on disk again", async () => {
          let goodCopies = 0;
          for (const n of cluster.nodes) if (await holdsGoodCopy(n, chunk!.chunkId)) goodCopies++;
          return goodCopies === 2;
        }, 30_000, 100);
        await expectIntactDownload(cluster, dir);
      });
    });
  });

  test("delete: after the grace period no node holds the file's chunks, except those another file shares, which still downloads", async () => {
    await withCluster({ nodes: 3, replication: 2, masterArgs: FAST_MASTER, nodeArgs: FAST_NODE }, async (cluster) => {
      await withTempDir(async (dir) => {
        const shared = randomBytes(2 * MiB);
        const own = randomBytes(3 * MiB);
        await writeFile(join(dir, "a.bin"), Buffer.concat([shared, own]));
        await writeFile(join(dir, "b.bin"), shared);
        expect((await cluster.run(["upload", join(dir, "a.bin"), "--chunk-size", "1MiB"])).exitCode).toBe(0);
        expect((await cluster.run(["upload", join(dir, "b.bin"), "--chunk-size", "1MiB"])).exitCode).toBe(0);
        const api = cluster.api();
        const aIds = await fileChunkIds(api, "a.bin");
        const bIds = await fileChunkIds(api, "b.bin");
        const onlyA = aIds.filter((id) => !bIds.includes(id));
        expect(onlyA).toHaveLength(3);
        expect((await cluster.run(["delete", "a.bin"])).exitCode).toBe(0);
        expect((await cluster.run(["download", "a.bin", join(dir, "gone")])).exitCode).toBe(3);
        await waitFor("a.bin's own chunks to be deleted from every node", async () => {
          const copies = await copiesOnDisk(cluster, cluster.nodes);
          return onlyA.every((id) => !copies.has(id));
        }, 20_000, 100);
        const copies = await copiesOnDisk(cluster, cluster.nodes);
        for (const id of bIds) expect(copies.get(id)).toBe(2);
        expect((await api.getClusterStatus(2000)).repair!.gcCollectedChunks).toBe(3);
        const down = await cluster.run(["download", "b.bin", join(dir, "b.out")]);
        expect(down.exitCode).toBe(0);
        expect(await sha256File(join(dir, "b.out"))).toBe(await sha256File(join(dir, "b.bin")));
      });
    });
  });

  test("delete racing an upload of identical content under another name: the new file always downloads intact", async () => {
    // gc-grace 0: collection may happen at any moment, the worst case for the race.
    await withCluster({ nodes: 3, replication: 2, masterArgs: ["--node-timeout", "1000", "--repair-interval", "20", "--gc-grace", "0"], nodeArgs: FAST_NODE }, async (cluster) => {
      await withTempDir(async (dir) => {
        for (let round = 0; round < 6; round++) {
          const data = randomBytes(3 * MiB);
          await writeFile(join(dir, `r${round}`), data);
          expect((await cluster.run(["upload", join(dir, `r${round}`), "--as", `old-${round}`, "--chunk-size", "256k"])).exitCode).toBe(0);
          const [del, up] = await Promise.all([
            cluster.run(["delete", `old-${round}`]),
            cluster.run(["upload", join(dir, `r${round}`), "--as", `new-${round}`, "--chunk-size", "256k"]),
          ]);
          expect(del.exitCode).toBe(0);
          expect(up.stderr).toBe("");
          expect(up.exitCode).toBe(0);
        }
        // Let any pending collection run, then every new file must still be whole.
        await waitFor("garbage collection to settle", async () => (await cluster.api().getClusterStatus(2000)).repair?.gcPendingChunks === 0, 10_000);
        for (let round = 0; round < 6; round++) {
          const down = await cluster.run(["download", `new-${round}`, join(dir, `out${round}`)]);
          expect(down.stderr).toBe("");
          expect(down.exitCode).toBe(0);
          expect(await sha256File(join(dir, `out${round}`))).toBe(await sha256File(join(dir, `r${round}`)));
        }
      });
    });
  });

  test("a node frozen while its file is deleted: when it comes back (without re-registering) its orphaned copies are collected", async () => {
    await withCluster({ nodes: 3, replication: 2, masterArgs: FAST_MASTER, nodeArgs: FAST_NODE }, async (cluster) => {
      await withTempDir(async (dir) => {
        await uploadTestFile(cluster, dir, 6 * MiB);
        const ids = await fileChunkIds(cluster.api(), "f.bin");
        const frozen = (await Promise.all(cluster.nodes.map(async (n) => ({ n, count: (await cluster.chunkFiles(n)).size })))).sort((a, b) => b.count - a.count)[0]!.n;
        // SIGSTOP: the process keeps its state and connections, like a host behind a network cut.
        frozen.proc!.kill("SIGSTOP");
        try {
          await waitFor("the frozen node to be declared dead", async () => (await cluster.api().getClusterStatus(2000)).nodes.find((n) => n.node?.nodeId === frozen.name)?.alive === false, 10_000, 100);
          expect((await cluster.run(["delete", "f.bin"])).exitCode).toBe(0);
          const others = cluster.nodes.filter((n) => n !== frozen);
          await waitFor("the live nodes to drop the file's chunks", async () => {
            const copies = await copiesOnDisk(cluster, others);
            return ids.every((id) => !copies.has(id));
          }, 10_000, 100);
          expect((await cluster.chunkFiles(frozen)).size).toBeGreaterThan(0);
        } finally {
          frozen.proc!.kill("SIGCONT");
        }
        await waitFor("the returning node's orphaned copies to be deleted", async () => (await cluster.chunkFiles(frozen)).size === 0, 15_000, 100);
      });
    });
  });

  test("a copy re-sent just after its file was deleted is kept as fresh, then deleted once the grace period has passed, not at the node's next inventory", async () => {
    await withCluster({ nodes: 2, replication: 2, masterArgs: FAST_MASTER, nodeArgs: FAST_NODE }, async (cluster) => {
      await withTempDir(async (dir) => {
        await uploadTestFile(cluster, dir, 2 * MiB);
        const [first, second] = (await cluster.api().getManifest({ filename: "f.bin" })).chunks.map((c) => c.chunkId);
        const firstBytes = (await readFile(join(dir, "f.bin"))).subarray(0, MiB);
        const [resentTo, other] = cluster.nodes as [ServerProcess, ServerProcess];
        expect((await cluster.run(["delete", "f.bin"])).exitCode).toBe(0);
        // Like an upload that keeps placing the chunk and never commits: re-sent until the master
        // collects the file's chunks, so the last re-send falls inside the node's keep window.
        const storage = new StorageApi(resentTo.address);
        try {
          await waitFor("the master to collect the file's chunks", async () => {
            expect((await storage.putChunk({ chunkId: first!, data: firstBytes }, 5000)).alreadyPresent).toBe(true);
            const onOther = await cluster.chunkFiles(other);
            return !onOther.has(first!) && !onOther.has(second!) && !(await cluster.chunkFiles(resentTo)).has(second!);
          }, 15_000, 50);
        } finally {
          storage.close();
        }
        // The node kept the copy re-sent within the grace period...
        expect((await cluster.chunkFiles(resentTo)).has(first!)).toBe(true);
        // ...and gives it up when asked again, well before its 10-minute inventory.
        await waitFor("the re-sent copy to be deleted", async () => !(await cluster.chunkFiles(resentTo)).has(first!), 15_000, 100);
        expect(await cluster.master.log()).toContain(`orphaned copies on ${resentTo.name}`);
      });
    });
  });

  test("a node full of small chunks refuses more: its packs stay within its capacity, and what was stored downloads", async () => {
    // Replication 3 on 3 nodes: every chunk must go to the tiny node too, so it fills up.
    await withCluster({ nodes: 2, replication: 3, masterArgs: [...FAST_MASTER, "--min-free", "8KiB"], nodeArgs: FAST_NODE }, async (cluster) => {
      const tiny = cluster.addNode(["--capacity", "128KiB"]);
      await tiny.start();
      await cluster.waitForLiveNodes(3);
      await withTempDir(async (dir) => {
        await mkdir(join(dir, "many"));
        const files = Array.from({ length: 100 }, () => randomBytes(4 * 1024));
        await Promise.all(files.map((data, i) => writeFile(join(dir, "many", `f${i}`), data)));
        const up = await cluster.run(["upload", "-r", join(dir, "many"), "--prefix", "many/", "--json"]);
        // 100 x 4 KiB do not fit in 128 KiB: some files fail, each for lack of space.
        expect(up.exitCode).not.toBe(0);
        const packBytes = await packBytesOnDisk(join(tiny.dataDir, "packs"));
        expect(packBytes).toBeGreaterThan(64 * 1024);
        expect(packBytes).toBeLessThanOrEqual(128 * 1024);
        // Every file the master lists came back whole.
        const listed = JSON.parse((await cluster.run(["list", "many/", "--json"])).stdout).files as { name: string }[];
        expect(listed.length).toBeGreaterThan(0);
        for (const { name } of listed) {
          const i = Number(name.slice("many/f".length));
          const out = join(dir, `o${i}`);
          expect((await cluster.run(["download", name, out])).exitCode).toBe(0);
          expect(Buffer.compare(await readFile(out), files[i]!)).toBe(0);
        }
      });
    });
  });

  test("a node that is full: uploads still succeed on the others", async () => {
    await withCluster({ nodes: 3, replication: 2, masterArgs: [...FAST_MASTER, "--min-free", "1MiB"], nodeArgs: FAST_NODE }, async (cluster) => {
      // A fourth node that can hold only 2 MiB.
      const tiny = cluster.addNode(["--capacity", "2MiB"]);
      await tiny.start();
      await cluster.waitForLiveNodes(4);
      await withTempDir(async (dir) => {
        for (let i = 0; i < 4; i++) {
          await writeFile(join(dir, `f${i}`), randomBytes(8 * MiB));
          const up = await cluster.run(["upload", join(dir, `f${i}`), "--chunk-size", "1MiB"]);
          expect(up.stderr).toBe("");
          expect(up.exitCode).toBe(0);
        }
        const usedOnTiny = [...(await cluster.chunkFiles(tiny)).values()].reduce((a, b) => a + b, 0);
        expect(usedOnTiny).toBeLessThanOrEqual(2 * MiB);
        for (let i = 0; i < 4; i++) {
          const down = await cluster.run(["download", `f${i}`, join(dir, `o${i}`)]);
          expect(down.exitCode).toBe(0);
          expect(await sha256File(join(dir, `o${i}`))).toBe(await sha256File(join(dir, `f${i}`)));
        }
      });
    });
  });
});
