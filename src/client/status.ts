/** The cluster's health in one report: the master's view of every node plus what each process says about itself. */
import { CONNECT_TIMEOUT_MS } from "../core/limits";
import type { MasterApi } from "../rpc/client";
import type { RepairStatus } from "../rpc/messages";
import { StatsClients, targetsOf } from "./stats";

/** One node as the status report shows it. */
export interface NodeReport {
  id: string;
  address: string;
  alive: boolean;
  /** 0 when the node has not reported since the master started. */
  lastHeartbeatMs: number;
  lastHeartbeatAgeMs: number | null;
  chunkCount: number;
  usedBytes: number;
  freeBytes: number;
  capacityBytes: number;
  /** From the node itself; null when it did not answer. */
  pid: number | null;
  uptimeMs: number | null;
  rssBytes: number | null;
  version: string | null;
}

/** The whole status report (the `status --json` document, less the local-cluster part). */
export interface StatusReport {
  healthy: boolean;
  /** Why the cluster is not healthy, one sentence each. */
  problems: string[];
  master: { address: string; version: string; startedAtMs: number; uptimeMs: number; replication: number; pid: number | null; rssBytes: number | null };
  nodes: NodeReport[];
  totals: { nodes: number; aliveNodes: number; deadNodes: number; files: number; chunks: number; usedBytes: number; freeBytes: number; capacityBytes: number };
  repair: RepairStatus;
}

const NO_REPAIR: RepairStatus = { underReplicatedChunks: 0, unavailableChunks: 0, overReplicatedChunks: 0, repairsInProgress: 0, repairsCompleted: 0, repairsFailed: 0, replicasTrimmed: 0, gcPendingChunks: 0, gcCollectedChunks: 0 };

/** Asks the master (UNAVAILABLE when it does not answer) and every process, and judges health. */
export async function clusterStatus(master: MasterApi): Promise<StatusReport> {
  const status = await master.getClusterStatus(CONNECT_TIMEOUT_MS);
  const now = Date.now();
  const stats = new StatsClients();
  const samples = await stats.sample(targetsOf(master.address, status)).finally(() => stats.close());
  const byId = new Map(samples.filter((s) => s.role === "node").map((s) => [s.id, s.stats]));
  const masterStats = samples[0]!.stats;
  const nodes: NodeReport[] = status.nodes
    .filter((n) => n.node)
    .map((n) => {
      const s = byId.get(n.node!.nodeId) ?? null;
      return {
        id: n.node!.nodeId,
        address: `${n.node!.host}:${n.node!.port}`,
        alive: n.alive,
        lastHeartbeatMs: n.lastHeartbeatMs,
        lastHeartbeatAgeMs: n.lastHeartbeatMs > 0 ? Math.max(0, now - n.lastHeartbeatMs) : null,
        chunkCount: n.chunkCount,
        usedBytes: n.usedBytes,
        freeBytes: n.freeBytes,
        capacityBytes: n.capacityBytes,
        pid: s?.pid ?? null,
        uptimeMs: s?.uptimeMs ?? null,
        rssBytes: s?.rssBytes ?? null,
        version: s?.version ?? null,
      };
    })
    .sort((a, b) => a.id.localeCompare(b.id));
  const repair = status.repair ?? NO_REPAIR;
  const alive = nodes.filter((n) => n.alive);
  const problems: string[] = [];
  for (const n of nodes) if (!n.alive) problems.push(`node ${n.id} (${n.address}) is dead`);
  if (alive.length < status.replication) problems.push(`${alive.length} live node(s), fewer than the replication factor ${status.replication}`);
  if (repair.unavailableChunks > 0) problems.push(`${repair.unavailableChunks} chunk(s) have no live replica`);
  if (repair.underReplicatedChunks > 0) problems.push(`${repair.underReplicatedChunks} chunk(s) are under-replicated`);
  const sum = (f: (n: NodeReport) => number) => alive.reduce((total, n) => total + f(n), 0);
  return {
    healthy: problems.length === 0,
    problems,
    master: {
      address: master.address,
      version: status.version,
      startedAtMs: status.masterStartedAtMs,
      uptimeMs: Math.max(0, now - status.masterStartedAtMs),
      replication: status.replication,
      pid: masterStats?.pid ?? null,
      rssBytes: masterStats?.rssBytes ?? null,
    },
    nodes,
    totals: {
      nodes: nodes.length,
      aliveNodes: alive.length,
      deadNodes: nodes.length - alive.length,
      files: status.fileCount,
      chunks: status.chunkCount,
      usedBytes: sum((n) => n.usedBytes),
      freeBytes: sum((n) => n.freeBytes),
      capacityBytes: sum((n) => n.capacityBytes),
    },
    repair,
  };
}
