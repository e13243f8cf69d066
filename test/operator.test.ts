/** The operator's commands ask the running cluster over gRPC: status, analyze, verify and monitor, for people and for scripts. */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { mkdir, writeFile } from "node:fs/promises";
import { PACK_RECORD_HEADER_BYTES } from "../src/node/pack-store";
import { ANSI, BIN, overwriteChunk, removeChunk, rotChunk, jsonLines, randomBytes, runCli, waitFor, withCluster, withTempDir, type TestCluster } from "./harness";

const KiB = 1024;
const MiB = 1024 * KiB;
/** Short intervals so a dead node is noticed and repaired within a test. */
const FAST_MASTER = ["--node-timeout", "1000", "--repair-interval", "100"];
/** No background scrubbing: the tests decide when a damaged copy is found. */
const QUIET_NODE = ["--heartbeat-interval", "100", "--scrub-rate", "0"];

/** The chunk ids of a file, in order, as the master records them. */
async function chunksOf(cluster: TestCluster, name: string): Promise<{ chunkId: string; nodeIds: string[] }[]> {
  const manifest = await cluster.api().getManifest({ filename: name });
  return manifest.chunks.map((c) => ({ chunkId: c.chunkId, nodeIds: c.replicas.map((r) => r.nodeId) }));
}

describe("status", () => {
  test("a healthy cluster: exit 0, a table of every node, and --json with the files and chunks the test stored", async () => {
    await withCluster({ nodes: 3, replication: 2, nodeArgs: ["--heartbeat-interval", "100"] }, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "a.bin"), randomBytes(300 * KiB));
        await writeFile(join(dir, "b.bin"), randomBytes(100 * KiB));
        expect((await cluster.run(["upload", join(dir, "a.bin"), join(dir, "b.bin"), "--chunk-size", "64KiB"])).exitCode).toBe(0);
        // 5 + 2 chunks, 2 copies each: wait for the heartbeats to carry the new counts.
        const status = await waitFor("heartbeats to report 14 chunk copies", async () => {
          const result = await cluster.run(["status", "--json"]);
          const doc = JSON.parse(result.stdout);
          return result.exitCode === 0 && doc.nodes.reduce((sum: number, n: { chunkCount: number }) => sum + n.chunkCount, 0) === 14 ? doc : null;
        });
        expect(status.healthy).toBe(true);
        expect(status.problems).toEqual([]);
        expect(status.master.address).toBe(cluster.master.address);
        expect(status.master.replication).toBe(2);
        expect(status.master.pid).toBe(cluster.master.pid);
        expect(status.nodes.map((n: { id: string }) => n.id)).toEqual(["node1", "node2", "node3"]);
        for (const [i, node] of status.nodes.entries()) {
          expect(node.alive).toBe(true);
          expect(node.address).toBe(cluster.nodes[i]!.address);
          expect(node.pid).toBe(cluster.nodes[i]!.pid);
          expect(node.lastHeartbeatAgeMs).toBeLessThan(5000);
          expect(node.uptimeMs).toBeGreaterThan(0);
        }
        // Used is what the chunks take on disk: 64 KiB chunks are packed, a record header each.
        expect(status.totals).toMatchObject({ nodes: 3, aliveNodes: 3, deadNodes: 0, files: 2, chunks: 7, usedBytes: 2 * 400 * KiB + 14 * PACK_RECORD_HEADER_BYTES });
        expect(status.repair.underReplicatedChunks).toBe(0);

        const text = await cluster.run(["status"]);
        expect(text.exitCode).toBe(0);
        expect(text.stdout).toMatch(/^master 127\.0\.0\.1:\d+ {2}version /);
        expect(text.stdout).toMatch(/NODE\s+ADDRESS\s+STATE\s+HEARTBEAT\s+CHUNKS\s+USED\s+FREE\s+UPTIME\s+PID/);
        for (const node of cluster.nodes) expect(text.stdout).toMatch(new RegExp(`${node.name}\\s+${node.address}\\s+alive`));
        expect(text.stdout).toContain("total: 3/3 nodes alive, 2 files, 7 chunks");
        expect(text.stdout.trim().split("\n").at(-1)).toBe("healthy");
        expect(text.stdout + text.stderr).not.toContain(ANSI);
        const quiet = await cluster.run(["status", "--quiet"]);
        expect(quiet).toEqual({ exitCode: 0, stdout: "", stderr: "" });
      });
    });
  });

  test("a dead node makes status exit 6 naming it; a stopped master makes it exit 4 with one line (JSON on stderr with --json)", async () => {
    await withCluster({ nodes: 3, replication: 2, masterArgs: FAST_MASTER, nodeArgs: QUIET_NODE }, async (cluster) => {
      await cluster.nodes[2]!.kill("SIGKILL");
      const degraded = await waitFor("status to see node3 dead", async () => {
        const result = await cluster.run(["status", "--json"]);
        return result.exitCode === 6 ? result : null;
      });
      const doc = JSON.parse(degraded.stdout);
      expect(doc.healthy).toBe(false);
      expect(doc.nodes.find((n: { id: string }) => n.id === "node3")).toMatchObject({ alive: false, pid: null });
      expect(doc.problems).toContain(`node node3 (${cluster.nodes[2]!.address}) is dead`);
      const text = await cluster.run(["status"]);
      expect(text.exitCode).toBe(6);
      expect(text.stdout).toMatch(/node3\s+\S+\s+dead/);
      expect(text.stdout).toContain("DEGRADED: node node3");

      await cluster.master.kill("SIGKILL");
      const down = await cluster.run(["status"]);
      expect(down.exitCode).toBe(4);
      expect(down.stdout).toBe("");
      expect(down.stderr).toMatch(/^error: cannot reach master 127\.0\.0\.1:\d+/);
      expect(down.stderr.trim().split("\n")).toHaveLength(1);
      const downJson = await cluster.run(["status", "--json"]);
      expect(downJson.exitCode).toBe(4);
      expect(downJson.stdout).toBe("");
      expect(JSON.parse(downJson.stderr).error).toMatchObject({ kind: "UNAVAILABLE", exitCode: 4 });
    });
  });
});

describe("analyze", () => {
  test("the report's numbers are what the test stored: replicas, unique chunks, dedup savings, distribution, files, network", async () => {
    await withCluster({ nodes: 3, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const data = randomBytes(256 * KiB);
        await writeFile(join(dir, "a.bin"), data);
        await writeFile(join(dir, "small.txt"), "hello\n");
        expect((await cluster.run(["upload", join(dir, "a.bin"), "--chunk-size", "64KiB"])).exitCode).toBe(0);
        expect((await cluster.run(["upload", join(dir, "a.bin"), "--as", "copy/a.bin", "--chunk-size", "64KiB"])).exitCode).toBe(0);
        expect((await cluster.run(["upload", join(dir, "small.txt")])).exitCode).toBe(0);

        const result = await cluster.run(["analyze", "--json", "--limit", "3"]);
        expect(result.exitCode).toBe(0);
        const doc = JSON.parse(result.stdout);
        expect(doc.system).toMatchObject({ master: cluster.master.address, replication: 2, nodes: 3, aliveNodes: 3, files: 3, underReplicatedChunks: 0 });
        expect(doc.chunks).toMatchObject({
          uniqueChunks: 5,
          totalReplicas: 10,
          effectiveReplication: 2,
          logicalBytes: 2 * 256 * KiB + 6,
          uniqueBytes: 256 * KiB + 6,
          storedBytes: 2 * (256 * KiB + 6),
          dedupSavingsBytes: 256 * KiB,
          replicaHistogram: { "2": 5 },
        });
        expect(doc.distribution.limit).toBe(3);
        expect(doc.distribution.chunks).toHaveLength(3);
        const ids = doc.distribution.chunks.map((c: { chunkId: string }) => c.chunkId);
        expect(ids).toEqual([...ids].sort());
        for (const chunk of doc.distribution.chunks) {
          expect(chunk.nodeIds).toHaveLength(2);
          expect(chunk.liveReplicas).toBe(2);
        }
        expect(doc.files.map((f: { name: string }) => f.name)).toEqual(["a.bin", "copy/a.bin", "small.txt"]);
        expect(doc.files.map((f: { chunkCount: number }) => f.chunkCount)).toEqual([4, 4, 1]);
        expect(doc.storage.map((n: { id: string; location: string }) => [n.id, n.location])).toEqual(cluster.nodes.map((n) => [n.name, n.dataDir]));
        expect(doc.network).toMatchObject({ master: cluster.master.address, hashAlgorithm: "SHA-256", replication: 2, chunkSizes: [64 * KiB, 4 * MiB], defaultChunkSize: 4 * MiB });
        expect(doc.network.nodes.map((n: { address: string }) => n.address)).toEqual(cluster.nodes.map((n) => n.address));

        const text = await cluster.run(["analyze", "--limit", "2"]);
        expect(text.exitCode).toBe(0);
        for (const section of ["== system status", "== storage per node", "== chunk analysis", "== replica distribution (first 2 chunks)", "== file manifest", "== network configuration"]) {
          expect(text.stdout).toContain(section);
        }
        expect(text.stdout).toContain("unique chunks: 5");
        expect(text.stdout).toContain("effective replication factor: 2.00");
        expect(text.stdout).toContain("dedup savings: 256.0 KiB");
        expect(text.stdout).toContain("hash algorithm: SHA-256");
        expect(text.stdout + text.stderr).not.toContain(ANSI);
      });
    });
  });
});

describe("verify", () => {
  test("clean exits 0; a corrupt copy exits 6 and is named; verify --repair, then verify, exit 0", async () => {
    await withCluster({ nodes: 3, replication: 2, masterArgs: FAST_MASTER, nodeArgs: QUIET_NODE }, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "f.bin"), randomBytes(512 * KiB));
        expect((await cluster.run(["upload", join(dir, "f.bin"), "--chunk-size", "64KiB"])).exitCode).toBe(0);
        const clean = await cluster.run(["verify", "--json"]);
        expect(clean.exitCode).toBe(0);
        const cleanDoc = JSON.parse(clean.stdout);
        expect(cleanDoc).toMatchObject({ clean: true, files: null, replication: 2, problems: [], repair: null });
        expect(cleanDoc.counts).toMatchObject({ chunks: 8, replicas: 16, ok: 16, corrupt: 0, missing: 0, underReplicated: 0, lost: 0, bytesVerified: 2 * 512 * KiB });
        const text = await cluster.run(["verify"]);
        expect(text.exitCode).toBe(0);
        expect(text.stdout).toContain("verified 8 chunks: 16 copies on 3/3 nodes");
        expect(text.stdout.trim().split("\n").at(-1)).toBe("clean");
        expect(text.stdout + text.stderr).not.toContain(ANSI);

        // Rot one copy on disk: flip bytes in the middle.
        const [victim] = await chunksOf(cluster, "f.bin");
        const holder = cluster.nodes.find((n) => n.name === victim!.nodeIds[0])!;
        await rotChunk(holder, victim!.chunkId, 1000);

        const found = await cluster.run(["verify", "--json"]);
        expect(found.exitCode).toBe(6);
        const doc = JSON.parse(found.stdout);
        expect(doc.clean).toBe(false);
        expect(doc.counts).toMatchObject({ corrupt: 1, underReplicated: 1, lost: 0 });
        expect(doc.problems).toContainEqual({ state: "corrupt", chunkId: victim!.chunkId, nodeId: holder.name });
        expect(doc.problems).toContainEqual({ state: "under-replicated", chunkId: victim!.chunkId, goodCopies: 1 });
        expect(doc.nodes.find((n: { id: string }) => n.id === holder.name).corrupt).toBe(1);

        const repaired = await cluster.run(["verify", "--repair", "--json"]);
        expect(repaired.exitCode).toBe(0);
        expect(JSON.parse(repaired.stdout).repair).toMatchObject({ chunksRemaining: 0, timedOut: false });
        const after = await cluster.run(["verify"]);
        expect(after.exitCode).toBe(0);
        const download = await cluster.run(["download", "f.bin", join(dir, "out.bin")]);
        expect(download.exitCode).toBe(0);
      });
    });
  });

  test("a cluster larger than the window verify reads at a time: damage at the first id, on both sides of a window's edge and at the last id is each found once", async () => {
    await withCluster({ nodes: 3, replication: 2, nodeArgs: QUIET_NODE }, async (cluster) => {
      await withTempDir(async (dir) => {
        // 21 files of 100 chunks: 2,100 chunks, over two windows of 1,000 and a third of 100.
        await mkdir(join(dir, "many"));
        for (let i = 0; i < 21; i++) await writeFile(join(dir, "many", `f${i}`), randomBytes(100 * 64 * KiB));
        const up = await cluster.run(["upload", "-r", join(dir, "many"), "--prefix", "many/", "--chunk-size", "64KiB", "--quiet"]);
        expect({ exitCode: up.exitCode, stderr: up.stderr }).toEqual({ exitCode: 0, stderr: "" });
        const holders = new Map<string, string[]>();
        for (let i = 0; i < 21; i++) for (const c of await chunksOf(cluster, `many/f${i}`)) holders.set(c.chunkId, c.nodeIds);
        const ids = [...holders.keys()].sort();
        expect(ids).toHaveLength(2100);
        const holderOf = (id: string) => cluster.nodes.find((n) => n.name === holders.get(id)![0])!;
        const rot = (id: string) => rotChunk(holderOf(id), id, 7);
        const [first, beforeEdge, afterEdge, last] = [ids[0]!, ids[999]!, ids[1000]!, ids[2099]!];
        await rot(first);
        await removeChunk(holderOf(beforeEdge), beforeEdge);
        await rot(afterEdge);
        await removeChunk(holderOf(last), last);

        const result = await cluster.run(["verify", "--json"]);
        expect(result.exitCode).toBe(6);
        const doc = JSON.parse(result.stdout);
        expect(doc.counts).toMatchObject({ chunks: 2100, replicas: 4200, ok: 4196, corrupt: 2, missing: 2, orphaned: 0, unreachable: 0, underReplicated: 4, lost: 0, bytesVerified: 4196 * 64 * KiB });
        expect(doc.problems).toHaveLength(8);
        for (const [state, id] of [["corrupt", first], ["missing", beforeEdge], ["corrupt", afterEdge], ["missing", last]] as const) {
          expect(doc.problems).toContainEqual({ state, chunkId: id, nodeId: holderOf(id).name });
          expect(doc.problems).toContainEqual({ state: "under-replicated", chunkId: id, goodCopies: 1 });
        }
        expect(doc.nodes.reduce((sum: number, n: { ok: number }) => sum + n.ok, 0)).toBe(4196);
      });
    });
  });

  test("a copy gone from a node's disk is missing (exit 6, named with its file); --repair re-replicates it and verify exits 0", async () => {
    await withCluster({ nodes: 3, replication: 2, masterArgs: FAST_MASTER, nodeArgs: QUIET_NODE }, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "f.bin"), randomBytes(256 * KiB));
        await writeFile(join(dir, "g.bin"), randomBytes(64 * KiB));
        expect((await cluster.run(["upload", join(dir, "f.bin"), join(dir, "g.bin"), "--chunk-size", "64KiB"])).exitCode).toBe(0);
        const [victim] = await chunksOf(cluster, "f.bin");
        const holder = cluster.nodes.find((n) => n.name === victim!.nodeIds[0])!;
        await removeChunk(holder, victim!.chunkId);

        // Named: only f.bin's chunks are checked, and problems name the file.
        const named = await cluster.run(["verify", "f.bin", "--verbose"]);
        expect(named.exitCode).toBe(6);
        expect(named.stdout).toContain("verified 4 chunks of 1 file(s)");
        expect(named.stdout).toMatch(new RegExp(`missing\\s+${victim!.chunkId}\\s+${holder.name}\\s+f\\.bin`));
        expect(named.stdout).toMatch(new RegExp(`under-replicated\\s+${victim!.chunkId}\\s+1 good copies\\s+f\\.bin`));
        expect((await cluster.run(["verify", "g.bin"])).exitCode).toBe(0);

        const repaired = await cluster.run(["verify", "--repair", "--json"]);
        expect(repaired.exitCode).toBe(0);
        const doc = JSON.parse(repaired.stdout);
        expect(doc.counts).toMatchObject({ missing: 1, underReplicated: 1 });
        expect(doc.repair).toMatchObject({ replicasForgotten: 1, chunksRepaired: 1, chunksRemaining: 0, timedOut: false });
        expect(doc.clean).toBe(true);
        const text = await cluster.run(["verify"]);
        expect(text.exitCode).toBe(0);
        const copies = (await Promise.all(cluster.nodes.map((n) => cluster.chunkFiles(n)))).filter((files) => files.has(victim!.chunkId));
        expect(copies).toHaveLength(2);
      });
    });
  });

  test("every copy of a chunk corrupt: the data is lost, verify exits 5 even with --repair", async () => {
    await withCluster({ nodes: 2, replication: 2, masterArgs: FAST_MASTER, nodeArgs: QUIET_NODE }, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "f.bin"), randomBytes(128 * KiB));
        expect((await cluster.run(["upload", join(dir, "f.bin"), "--chunk-size", "64KiB"])).exitCode).toBe(0);
        const [victim] = await chunksOf(cluster, "f.bin");
        for (const node of cluster.nodes) await overwriteChunk(node, victim!.chunkId, randomBytes(64 * KiB));
        const result = await cluster.run(["verify", "--json"]);
        expect(result.exitCode).toBe(5);
        const doc = JSON.parse(result.stdout);
        expect(doc.counts).toMatchObject({ corrupt: 2, lost: 1 });
        expect(doc.problems[0]).toEqual({ state: "lost", chunkId: victim!.chunkId, goodCopies: 0 });
        const repair = await cluster.run(["verify", "--repair", "--timeout", "2000"]);
        expect(repair.exitCode).toBe(5);
        expect(repair.stdout).toContain("DATA LOST: 1 chunk(s) have no good copy left");
      });
    });
  });

  test("a dead node leaves chunks short: verify exits 6 while no node can take copies; with a new node, --repair returns once they have 2 live copies and verify exits 0", async () => {
    await withCluster({ nodes: 2, replication: 2, masterArgs: FAST_MASTER, nodeArgs: QUIET_NODE }, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "f.bin"), randomBytes(512 * KiB));
        expect((await cluster.run(["upload", join(dir, "f.bin"), "--chunk-size", "64KiB"])).exitCode).toBe(0);
        await cluster.nodes[0]!.kill("SIGKILL");
        await cluster.waitForLiveNodes(1);
        const short = await cluster.run(["verify", "--json"]);
        expect(short.exitCode).toBe(6);
        const doc = JSON.parse(short.stdout);
        expect(doc.nodes[0]).toMatchObject({ id: "node1", alive: false, checked: false });
        expect(doc.counts).toMatchObject({ chunks: 8, ok: 8, unreachable: 8, underReplicated: 8, lost: 0 });

        const fresh = cluster.addNode();
        await fresh.start();
        const repaired = await cluster.run(["verify", "--repair", "--json"]);
        expect(repaired.exitCode).toBe(0);
        // The master's own repair may have finished first; either way nothing is short once --repair returns.
        expect(JSON.parse(repaired.stdout).repair).toMatchObject({ chunksRemaining: 0, timedOut: false });
        expect((await cluster.chunkFiles(fresh)).size).toBe(8);
        const after = await cluster.run(["verify"]);
        expect(after.exitCode).toBe(0);
        // The dead node's copies are listed, but data is safe: status is the one that reports the dead node.
        expect(after.stdout).toContain("unreachable 8");
        expect((await cluster.run(["status"])).exitCode).toBe(6);
      });
    });
  });
});

describe("monitor", () => {
  test("--once --json: one object per process; bytes in on the nodes grow by the copies of an upload", async () => {
    await withCluster({ nodes: 3, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const sample = async () => {
          const result = await cluster.run(["monitor", "--once", "--json", "--interval", "200"]);
          expect(result.exitCode).toBe(0);
          return jsonLines<Record<string, any>>(result.stdout);
        };
        const before = await sample();
        expect(before.map((r) => r.id)).toEqual(["master", "node1", "node2", "node3"]);
        for (const row of before) {
          expect(row.answered).toBe(true);
          expect(row.alive).toBe(true);
          expect(row.pid).toBeGreaterThan(0);
          expect(row.rssBytes).toBeGreaterThan(1 * MiB);
          expect(typeof row.cpuPercent).toBe("number");
          expect(typeof row.opsPerSec).toBe("number");
        }
        expect(before[0]).toMatchObject({ role: "master", address: cluster.master.address, pid: cluster.master.pid, chunkCount: null });
        expect(before[1]).toMatchObject({ role: "node", address: cluster.nodes[0]!.address, pid: cluster.nodes[0]!.pid, chunkCount: 0 });

        await writeFile(join(dir, "f.bin"), randomBytes(2 * MiB));
        expect((await cluster.run(["upload", join(dir, "f.bin"), "--chunk-size", "256KiB"])).exitCode).toBe(0);
        const after = await sample();
        const total = (rows: Record<string, any>[], key: string) => rows.filter((r) => r.role === "node").reduce((sum, r) => sum + r[key], 0);
        expect(total(after, "bytesIn") - total(before, "bytesIn")).toBe(2 * 2 * MiB);
        expect(total(after, "chunkCount")).toBe(2 * 8);
        expect(after[0]!.rpcCalls).toBeGreaterThan(before[0]!.rpcCalls);
      });
    });
  });

  test("piped: one plain line per process per interval, no control codes; SIGINT ends it with exit 0; a stopped master exits 4", async () => {
    await withCluster({ nodes: 2, replication: 2 }, async (cluster) => {
      const once = await cluster.run(["monitor", "--once", "--interval", "100"]);
      expect(once.exitCode).toBe(0);
      expect(once.stdout).toMatch(/^PROCESS\s+ADDRESS\s+STATE\s+CPU%\s+RSS/);
      expect(once.stdout + once.stderr).not.toContain(ANSI);

      const proc = Bun.spawn([BIN, "monitor", "--interval", "100"], {
        env: { ...process.env, DROPBOX_MASTER: cluster.master.address },
        stdout: "pipe",
        stderr: "pipe",
      });
      const reader = proc.stdout.getReader();
      let text = "";
      await waitFor("three intervals of output", async () => {
        const { value } = await reader.read();
        text += new TextDecoder().decode(value ?? new Uint8Array());
        return text.split("\n").filter((l) => l.includes(" master ")).length >= 3;
      });
      proc.kill("SIGINT");
      expect(await proc.exited).toBe(0);
      expect(text).not.toContain(ANSI);
      const lines = text.trim().split("\n");
      expect(lines[0]).toMatch(/^\S+Z master 127\.0\.0\.1:\d+ alive {2}cpu [\d.-]+%? {2}rss /);
      expect(lines[1]).toMatch(/ node1 127\.0\.0\.1:\d+ alive .* chunks 0 /);

      await cluster.master.kill("SIGKILL");
      const down = await cluster.run(["monitor", "--once", "--json"]);
      expect(down.exitCode).toBe(4);
      expect(down.stdout).toBe("");
      expect(JSON.parse(down.stderr).error.exitCode).toBe(4);
    });
  });
});

describe("help", () => {
  test("'dropbox help', 'dropbox help COMMAND' and 'COMMAND --help' show flags, examples and the exit codes", async () => {
    const top = await runCli(["help"]);
    expect(top.exitCode).toBe(0);
    for (const command of ["status", "analyze", "verify", "monitor", "upload", "download"]) expect(top.stdout).toContain(command);
    expect(top.stdout).toContain("Exit codes:");
    expect(top.stdout).toContain("6 degraded");
    for (const [command, flags] of [
      ["verify", ["--verbose", "--repair", "--json", "--quiet"]],
      ["monitor", ["--once", "--interval", "--json"]],
      ["status", ["--json", "--quiet"]],
      ["analyze", ["--limit", "--json"]],
      ["upload", ["--recursive", "--prefix", "--as"]],
      ["download", ["--recursive"]],
    ] as const) {
      const viaHelp = await runCli(["help", command]);
      const viaFlag = await runCli([command, "--help"]);
      expect(viaHelp.exitCode).toBe(0);
      expect(viaHelp.stdout).toBe(viaFlag.stdout);
      expect(viaHelp.stdout).toContain("Examples:");
      expect(viaHelp.stdout).toContain(`dropbox ${command}`);
      for (const flag of flags) expect(viaHelp.stdout).toContain(flag);
    }
  });
});
