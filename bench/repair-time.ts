/**
 * How long the cluster takes to get back to its replication factor after losing a node
 * (issue 4): master + 3 nodes, replication 2, one big file of random bytes; SIGKILL the
 * node holding the most of its chunks, then watch the master and the survivors' disks
 * until every chunk has 2 copies again. Not a test: numbers for the README.
 *
 *   bun bench/repair-time.ts [--size 1G] [--quick] [--out FILE]     (--quick: 64 MiB)
 *   (DROPBOX_BIN picks the binary; default bin/dropbox, built when missing)
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { dropboxBinary, REPO_ROOT } from "./lib/binary";
import { LocalCluster, type ServerProcess } from "./lib/local-cluster";
import { runTimed } from "./lib/processes";
import { writeRandomFile } from "./lib/random-data";
import { flagValue, MIB, sizeFromLabel } from "./lib/stats";

const NODES = 3;
const REPLICATION = 2;
/** Short enough that detection does not dominate; the master's own defaults are 10 s and 1 s. */
const NODE_TIMEOUT_MS = 2000;
const REPAIR_INTERVAL_MS = 200;
const HEARTBEAT_INTERVAL_MS = 200;
const POLL_INTERVAL_MS = 50;
const STATUS_RPC_TIMEOUT_MS = 2000;
/** Give up on repair after this long plus 1 s per 8 MiB (a floor of 8 MiB/s). */
const REPAIR_TIMEOUT_BASE_MS = 60_000;

const log = (line: string) => process.stderr.write(`${line}\n`);

interface RepairResult {
  bytes: number;
  chunks: number;
  victim: string;
  victimChunks: number;
  bytesToRestore: number;
  detectionMs: number;
  repairMs: number;
  totalMs: number;
  reReplicationMiBps: number;
  /** The repair counters were missing from GetClusterStatus: only the disks were watched. */
  diskOnly: boolean;
  underReplicatedPeak: number;
  repairsCompleted: number | null;
  copiesOnSurvivors: Record<string, number>;
}

/** How many of `ids` each node holds on disk. */
async function holdings(cluster: LocalCluster, nodes: ServerProcess[]): Promise<Map<ServerProcess, Set<string>>> {
  const result = new Map<ServerProcess, Set<string>>();
  for (const node of nodes) result.set(node, await cluster.chunkIdsOnDisk(node));
  return result;
}

/** Ids of `ids` that fewer than `replication` of the given holdings contain. */
function shortOnDisk(ids: string[], held: Map<ServerProcess, Set<string>>, replication: number): string[] {
  return ids.filter((id) => [...held.values()].filter((set) => set.has(id)).length < replication);
}

async function measure(bin: string, bytes: number, label: string): Promise<RepairResult> {
  const cluster = await LocalCluster.start({
    bin,
    nodes: NODES,
    replication: REPLICATION,
    masterArgs: ["--node-timeout", String(NODE_TIMEOUT_MS), "--repair-interval", String(REPAIR_INTERVAL_MS)],
    nodeArgs: ["--heartbeat-interval", String(HEARTBEAT_INTERVAL_MS)],
  });
  try {
    const api = cluster.api();
    const source = join(cluster.dir, "source.bin");
    log(`== ${label} of random bytes onto master + ${NODES} nodes (replication ${REPLICATION}), in ${cluster.dir}`);
    await writeRandomFile(source, bytes);
    const name = "repair/big.bin";
    const upload = await runTimed([bin, "upload", source, "--as", name, "--master", cluster.master.address, "--quiet"]);
    if (upload.exitCode !== 0) throw new Error(`upload exited with ${upload.exitCode}: ${upload.stderr.trim()}`);
    await rm(source, { force: true });
    const manifest = await api.getManifest({ filename: name });
    const sizeOf = new Map(manifest.chunks.map((c) => [c.chunkId, c.size]));
    const ids = [...sizeOf.keys()];

    const before = await holdings(cluster, cluster.nodes);
    const victim = [...before.entries()].reduce((best, entry) => (entry[1].size > best[1].size ? entry : best))[0];
    const victimIds = ids.filter((id) => before.get(victim)!.has(id));
    const bytesToRestore = victimIds.reduce((sum, id) => sum + (sizeOf.get(id) ?? 0), 0);
    const survivors = cluster.nodes.filter((n) => n !== victim);
    log(`  ${ids.length} chunks; ${cluster.nodes.map((n) => `${n.name} holds ${before.get(n)!.size}`).join(", ")}`);
    log(`  SIGKILL ${victim.name}: ${victimIds.length} chunks (${(bytesToRestore / MIB).toFixed(0)} MiB) must be copied again`);

    const completedBefore = (await api.getClusterStatus(STATUS_RPC_TIMEOUT_MS)).repair?.repairsCompleted ?? 0;
    const killedAt = performance.now();
    await victim.stop("SIGKILL");
    let deadAt: number | null = null;
    let repairedAt: number | null = null;
    let diskOnly = false;
    let underReplicatedPeak = 0;
    let repairsCompleted: number | null = null;
    const deadline = killedAt + REPAIR_TIMEOUT_BASE_MS + (bytes / (8 * MIB)) * 1000;
    while (repairedAt === null) {
      if (performance.now() > deadline) throw new Error(`no full repair within ${((deadline - killedAt) / 1000).toFixed(0)} s (node dead: ${deadAt !== null})`);
      const status = await api.getClusterStatus(STATUS_RPC_TIMEOUT_MS).catch(() => null);
      const now = performance.now();
      if (status) {
        const entry = status.nodes.find((n) => n.node?.nodeId === victim.name);
        if (deadAt === null && entry && !entry.alive) {
          deadAt = now;
          log(`  ${victim.name} marked dead after ${(deadAt - killedAt).toFixed(0)} ms`);
        }
        const repair = status.repair;
        if (!repair) diskOnly = true;
        else underReplicatedPeak = Math.max(underReplicatedPeak, repair.underReplicatedChunks + repair.unavailableChunks);
        if (deadAt !== null) {
          const masterClear = !repair || (repair.underReplicatedChunks === 0 && repair.unavailableChunks === 0 && repair.repairsInProgress === 0);
          // The master's counters come from its last scan, which may predate the death: the disks must agree.
          if (masterClear && shortOnDisk(ids, await holdings(cluster, survivors), REPLICATION).length === 0) {
            repairedAt = now;
            repairsCompleted = repair ? repair.repairsCompleted - completedBefore : null;
          }
        }
      }
      if (repairedAt === null) await Bun.sleep(POLL_INTERVAL_MS);
    }
    const after = await holdings(cluster, survivors);
    const short = shortOnDisk(ids, after, REPLICATION);
    if (short.length) throw new Error(`${short.length} chunks lack ${REPLICATION} copies on the survivors' disks`);
    const detectionMs = deadAt! - killedAt;
    const repairMs = repairedAt - deadAt!;
    return {
      bytes,
      chunks: ids.length,
      victim: victim.name,
      victimChunks: victimIds.length,
      bytesToRestore,
      detectionMs,
      repairMs,
      totalMs: repairedAt - killedAt,
      reReplicationMiBps: bytesToRestore / MIB / (Math.max(repairMs, 1) / 1000),
      diskOnly,
      underReplicatedPeak,
      repairsCompleted,
      copiesOnSurvivors: Object.fromEntries(survivors.map((n) => [n.name, ids.filter((id) => after.get(n)!.has(id)).length])),
    };
  } finally {
    await cluster.stop();
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  for (const arg of argv) if (arg.startsWith("-") && !["--size", "--quick", "--out"].includes(arg)) throw new Error(`unknown flag ${arg} (see the header of bench/repair-time.ts)`);
  const label = flagValue(argv, "size") ?? (argv.includes("--quick") ? "64M" : "1G");
  const out = resolve(flagValue(argv, "out") ?? join(REPO_ROOT, "bench", "results", "repair-time.json"));
  const bin = await dropboxBinary();
  const result = await measure(bin, sizeFromLabel(label), label);
  console.log(
    [
      `repair after losing ${result.victim} (${result.victimChunks} of ${result.chunks} chunks, ${(result.bytesToRestore / MIB).toFixed(0)} MiB to copy) out of ${label}:`,
      `  detection (kill -> marked dead)       ${(result.detectionMs / 1000).toFixed(2)} s   (--node-timeout ${NODE_TIMEOUT_MS} ms, heartbeat ${HEARTBEAT_INTERVAL_MS} ms)`,
      `  repair (dead -> every chunk on ${REPLICATION})     ${(result.repairMs / 1000).toFixed(2)} s   (${result.reReplicationMiBps.toFixed(1)} MiB/s re-replicated)`,
      `  total                                 ${(result.totalMs / 1000).toFixed(2)} s`,
      `  on disk afterwards: ${Object.entries(result.copiesOnSurvivors).map(([n, c]) => `${n} ${c}`).join(", ")} of ${result.chunks} chunks; each chunk on ${REPLICATION} survivors`,
      result.diskOnly ? "  (GetClusterStatus has no repair counters in this binary: repair judged from the survivors' disks alone)" : `  master: peak ${result.underReplicatedPeak} under-replicated, ${result.repairsCompleted} repairs completed`,
    ].join("\n"),
  );
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify({ startedAt: new Date().toISOString(), binary: bin, size: label, nodeTimeoutMs: NODE_TIMEOUT_MS, repairIntervalMs: REPAIR_INTERVAL_MS, heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS, ...result }, null, 2)}\n`);
  console.log(`${out} written`);
  return 0;
}

try {
  process.exitCode = await main();
} catch (err) {
  process.stderr.write(`repair-time: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
