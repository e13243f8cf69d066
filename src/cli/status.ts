/** `dropbox status`: the master and every node, totals and replication health; exit 0 only when healthy. */
import { resolve } from "node:path";
import { masterAddress } from "./args";
import { MasterApi } from "../rpc/client";
import { clusterStatus } from "../client/status";
import { DEFAULT_DATA_DIR } from "../cluster/limits";
import { readState, supervisorAlive } from "../cluster/state";
import { formatBytes, formatDuration, report, table, type OutputOptions } from "./output";
import { EXIT } from "./exit-codes";

export interface StatusFlags extends OutputOptions {
  master?: unknown;
}

/** The local cluster (`cluster up` in this directory) when it is the one being asked: its supervisor and children's pids. */
function localCluster(address: string) {
  const dataDir = resolve(process.cwd(), DEFAULT_DATA_DIR);
  const doc = readState(dataDir);
  if (!doc || !supervisorAlive(doc) || doc.masterAddress !== address) return null;
  return { dataDir: doc.dataDir, supervisorPid: doc.supervisorPid, pids: Object.fromEntries(doc.children.map((c) => [c.name, c.pid])) as Record<string, number> };
}

export async function statusCommand(flags: StatusFlags, argv: string[]): Promise<number> {
  const master = new MasterApi(masterAddress(argv, flags.master));
  try {
    const status = await clusterStatus(master);
    const local = localCluster(master.address);
    report(flags, { ...status, localCluster: local }, () => {
      const m = status.master;
      const t = status.totals;
      const r = status.repair;
      const pidOf = (name: string, fromProcess: number | null) => String(local?.pids[name] || fromProcess || "-");
      const lines = [
        `master ${m.address}  version ${m.version}  up ${formatDuration(m.uptimeMs)}  pid ${pidOf("master", m.pid)}  replication ${m.replication}${local ? `  (local cluster in ${local.dataDir}, supervisor pid ${local.supervisorPid})` : ""}`,
        "",
        status.nodes.length === 0
          ? "no nodes registered"
          : table(
              ["NODE", "ADDRESS", "STATE", "HEARTBEAT", "CHUNKS", "USED", "FREE", "UPTIME", "PID"],
              status.nodes.map((n) => [
                n.id,
                n.address,
                n.alive ? "alive" : "dead",
                n.lastHeartbeatAgeMs === null ? "never" : `${formatDuration(n.lastHeartbeatAgeMs)} ago`,
                String(n.chunkCount),
                formatBytes(n.usedBytes),
                n.capacityBytes > 0 ? formatBytes(n.freeBytes) : "-",
                formatDuration(n.uptimeMs),
                pidOf(n.id, n.pid),
              ]),
            ),
        "",
        `total: ${t.aliveNodes}/${t.nodes} nodes alive, ${t.files} files, ${t.chunks} chunks, ${formatBytes(t.usedBytes)} used, ${formatBytes(t.freeBytes)} free`,
        `replication: ${r.underReplicatedChunks} under-replicated, ${r.unavailableChunks} unavailable, ${r.overReplicatedChunks} over-replicated chunks; ${r.repairsInProgress} repairs in progress, ${r.repairsCompleted} done, ${r.repairsFailed} failed`,
        status.healthy ? "healthy" : `DEGRADED: ${status.problems.join("; ")}`,
      ];
      return lines.join("\n");
    });
    return status.healthy ? EXIT.OK : EXIT.DEGRADED;
  } finally {
    master.close();
  }
}
