/** The seed's `analyze` report, computed over gRPC from the running cluster (never from local disk). */
import { CONNECT_TIMEOUT_MS, DEFAULT_CHUNK_SIZE_BYTES } from "../core/limits";
import type { MasterApi } from "../rpc/client";
import type { ChunkReplicas, FileInfo } from "../rpc/messages";
import { listFiles } from "./catalog";
import { StatsClients, targetsOf } from "./stats";

/** The whole report (the `analyze --json` document). */
export interface AnalyzeReport {
  system: { master: string; version: string; uptimeMs: number; replication: number; nodes: number; aliveNodes: number; files: number; underReplicatedChunks: number; unavailableChunks: number };
  storage: { id: string; address: string; alive: boolean; chunkCount: number; usedBytes: number; freeBytes: number; capacityBytes: number; location: string | null }[];
  chunks: {
    /** Copies recorded of chunks that files use. */
    totalReplicas: number;
    /** Distinct chunks that files use. */
    uniqueChunks: number;
    /** Chunks no file uses any more, waiting for garbage collection. */
    unreferencedChunks: number;
    /** totalReplicas / uniqueChunks. */
    effectiveReplication: number;
    /** Sum of every file's size: what was uploaded. */
    logicalBytes: number;
    /** Sum of distinct chunks' sizes: what that takes once. */
    uniqueBytes: number;
    /** uniqueBytes times the copies of each: what the nodes hold for it. */
    storedBytes: number;
    /** logicalBytes - uniqueBytes: saved by storing identical chunks once. */
    dedupSavingsBytes: number;
    /** logicalBytes / uniqueBytes (1 when nothing is shared). */
    dedupRatio: number;
    /** Referenced chunks by number of recorded copies: {"2": 40, "1": 2}. */
    replicaHistogram: Record<string, number>;
  };
  distribution: { limit: number; chunks: ChunkReplicas[] };
  files: FileInfo[];
  network: { master: string; nodes: { id: string; address: string }[]; chunkSizes: number[]; defaultChunkSize: number; hashAlgorithm: string; replication: number };
}

/** Pages through the master's chunk map and file list and asks each process for its location. */
export async function analyzeCluster(master: MasterApi, limit: number): Promise<AnalyzeReport> {
  const status = await master.getClusterStatus(CONNECT_TIMEOUT_MS);
  const stats = new StatsClients();
  const samples = await stats.sample(targetsOf(master.address, status)).finally(() => stats.close());
  const files = await listFiles(master);
  const chunks = { totalReplicas: 0, uniqueChunks: 0, unreferencedChunks: 0, uniqueBytes: 0, storedBytes: 0 };
  const histogram: Record<string, number> = {};
  const first: ChunkReplicas[] = [];
  let startAfter = "";
  for (;;) {
    const page = await master.listChunkReplicas({ startAfter });
    for (const c of page.chunks) {
      if (c.references === 0) {
        chunks.unreferencedChunks++;
        continue;
      }
      chunks.uniqueChunks++;
      chunks.totalReplicas += c.nodeIds.length;
      chunks.uniqueBytes += c.size;
      chunks.storedBytes += c.size * c.nodeIds.length;
      histogram[String(c.nodeIds.length)] = (histogram[String(c.nodeIds.length)] ?? 0) + 1;
      if (first.length < limit) first.push(c);
    }
    if (!page.truncated || page.chunks.length === 0) break;
    startAfter = page.chunks[page.chunks.length - 1]!.chunkId;
  }
  const logicalBytes = files.reduce((sum, f) => sum + f.size, 0);
  const nodes = status.nodes.filter((n) => n.node).sort((a, b) => a.node!.nodeId.localeCompare(b.node!.nodeId));
  const location = new Map(samples.filter((s) => s.role === "node").map((s) => [s.id, s.stats?.dataDir || null]));
  return {
    system: {
      master: master.address,
      version: status.version,
      uptimeMs: Math.max(0, Date.now() - status.masterStartedAtMs),
      replication: status.replication,
      nodes: nodes.length,
      aliveNodes: nodes.filter((n) => n.alive).length,
      files: status.fileCount,
      underReplicatedChunks: status.repair?.underReplicatedChunks ?? 0,
      unavailableChunks: status.repair?.unavailableChunks ?? 0,
    },
    storage: nodes.map((n) => ({
      id: n.node!.nodeId,
      address: `${n.node!.host}:${n.node!.port}`,
      alive: n.alive,
      chunkCount: n.chunkCount,
      usedBytes: n.usedBytes,
      freeBytes: n.freeBytes,
      capacityBytes: n.capacityBytes,
      location: location.get(n.node!.nodeId) ?? null,
    })),
    chunks: {
      ...chunks,
      effectiveReplication: chunks.uniqueChunks > 0 ? chunks.totalReplicas / chunks.uniqueChunks : 0,
      logicalBytes,
      dedupSavingsBytes: logicalBytes - chunks.uniqueBytes,
      dedupRatio: chunks.uniqueBytes > 0 ? logicalBytes / chunks.uniqueBytes : 1,
      replicaHistogram: histogram,
    },
    distribution: { limit, chunks: first },
    files,
    network: {
      master: master.address,
      nodes: nodes.map((n) => ({ id: n.node!.nodeId, address: `${n.node!.host}:${n.node!.port}` })),
      chunkSizes: [...new Set(files.map((f) => f.chunkSize))].sort((a, b) => a - b),
      defaultChunkSize: DEFAULT_CHUNK_SIZE_BYTES,
      hashAlgorithm: "SHA-256",
      replication: status.replication,
    },
  };
}
