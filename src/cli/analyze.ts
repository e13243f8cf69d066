/** `dropbox analyze`: the seed's report (system, storage, chunks, replica distribution, files, network), from the cluster. */
import { intFlag, masterAddress } from "./args";
import { MasterApi } from "../rpc/client";
import { analyzeCluster, type AnalyzeReport } from "../client/analyze";
import { formatBytes, formatDuration, formatTime, report, table, type OutputOptions } from "./output";
import { EXIT } from "./exit-codes";

export interface AnalyzeFlags extends OutputOptions {
  master?: unknown;
  limit?: unknown;
}

/** Chunks whose replicas are listed by default. */
const DEFAULT_DISTRIBUTION_CHUNKS = 10;

function describe(r: AnalyzeReport): string {
  const s = r.system;
  const c = r.chunks;
  const out: string[] = [];
  const section = (title: string, body: string) => out.push(`== ${title}`, body, "");
  section(
    "system status",
    [
      `master ${s.master}, version ${s.version}, up ${formatDuration(s.uptimeMs)}`,
      `nodes: ${s.aliveNodes}/${s.nodes} alive; files: ${s.files}; replication factor ${s.replication}`,
      `under-replicated chunks: ${s.underReplicatedChunks}; unavailable chunks: ${s.unavailableChunks}`,
    ].join("\n"),
  );
  section(
    "storage per node",
    r.storage.length === 0
      ? "no nodes registered"
      : table(
          ["NODE", "ADDRESS", "STATE", "CHUNKS", "BYTES", "FREE", "LOCATION"],
          r.storage.map((n) => [n.id, n.address, n.alive ? "alive" : "dead", String(n.chunkCount), formatBytes(n.usedBytes), n.capacityBytes > 0 ? formatBytes(n.freeBytes) : "-", n.location ?? "-"]),
        ),
  );
  const histogram = Object.entries(c.replicaHistogram)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([copies, n]) => `${n} with ${copies} cop${copies === "1" ? "y" : "ies"}`)
    .join(", ");
  section(
    "chunk analysis",
    [
      `total replicas: ${c.totalReplicas}`,
      `unique chunks: ${c.uniqueChunks} (${formatBytes(c.uniqueBytes)})${c.unreferencedChunks ? `; ${c.unreferencedChunks} unreferenced, awaiting collection` : ""}`,
      `effective replication factor: ${c.effectiveReplication.toFixed(2)}${histogram ? ` (${histogram})` : ""}`,
      `logical bytes: ${formatBytes(c.logicalBytes)}; stored with replicas: ${formatBytes(c.storedBytes)}`,
      `dedup savings: ${formatBytes(Math.max(0, c.dedupSavingsBytes))} (ratio ${c.dedupRatio.toFixed(2)})`,
    ].join("\n"),
  );
  section(
    `replica distribution (first ${r.distribution.limit} chunks)`,
    r.distribution.chunks.length === 0
      ? "no chunks"
      : table(
          ["CHUNK", "SIZE", "COPIES", "NODES"],
          r.distribution.chunks.map((ch) => [ch.chunkId.slice(0, 16), formatBytes(ch.size), `${ch.liveReplicas}/${ch.nodeIds.length} live`, ch.nodeIds.join(", ") || "-"]),
        ),
  );
  section(
    "file manifest",
    r.files.length === 0
      ? "no files"
      : table(
          ["NAME", "SIZE", "CHUNKS", "CONTENT HASH", "CREATED"],
          r.files.map((f) => [f.name, formatBytes(f.size), String(f.chunkCount), f.contentHash.slice(0, 16), formatTime(f.createdAtMs)]),
        ),
  );
  const n = r.network;
  section(
    "network configuration",
    [
      `master: ${n.master}`,
      `nodes: ${n.nodes.map((x) => `${x.id} ${x.address}`).join(", ") || "-"}`,
      `chunk size: ${formatBytes(n.defaultChunkSize)} default${n.chunkSizes.length ? `; in use: ${n.chunkSizes.map(formatBytes).join(", ")}` : ""}`,
      `hash algorithm: ${n.hashAlgorithm}`,
      `replication factor: ${n.replication}`,
    ].join("\n"),
  );
  return out.join("\n").trimEnd();
}

export async function analyzeCommand(flags: AnalyzeFlags, argv: string[]): Promise<number> {
  const limit = flags.limit === undefined ? DEFAULT_DISTRIBUTION_CHUNKS : intFlag(flags.limit, "limit", 0, 1_000_000);
  const master = new MasterApi(masterAddress(argv, flags.master));
  try {
    const result = await analyzeCluster(master, limit);
    report(flags, result, () => describe(result));
    return EXIT.OK;
  } finally {
    master.close();
  }
}
