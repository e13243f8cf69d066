/** `dropbox cluster status`: each process's role, pid, port, state, uptime, restarts and live health. */
import { report, table } from "../cli/output";
import { EXIT } from "../cli/exit-codes";
import { dataDirFrom, type ClusterFlags } from "./options";
import { isAlive } from "./processes";
import { ClusterProbe } from "./readiness";
import { adoptClusterToken } from "./token";
import { readState, supervisorAlive, type ChildRecord } from "./state";

/** One row of the report. */
interface ChildStatus extends ChildRecord {
  alive: boolean;
  /** What the cluster says right now: the master serves; the node is alive at the master. */
  healthy: boolean;
  uptimeMs: number;
}

function formatUptime(ms: number): string {
  if (ms <= 0) return "-";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

/**
 * Runs `cluster status`. Exit code: 0 when every process runs and is healthy, DEGRADED
 * when the supervisor runs but some process does not, UNAVAILABLE when no cluster runs
 * (none started, or stale state from a supervisor that died).
 */
export async function statusCommand(flags: ClusterFlags, argv: string[]): Promise<number> {
  const dataDir = dataDirFrom(flags, argv);
  adoptClusterToken(dataDir);
  const doc = readState(dataDir);
  if (!doc) {
    report(flags, { running: false, stale: false, dataDir }, () => `no cluster running in ${dataDir}`);
    return EXIT.UNAVAILABLE;
  }
  const running = supervisorAlive(doc);
  const probe = new ClusterProbe(doc.masterAddress);
  const health = running ? await probe.probe() : { masterServing: false, nodeHeartbeatsMs: new Map<string, number>() };
  probe.close();
  const now = Date.now();
  const children: ChildStatus[] = doc.children.map((c) => {
    const alive = c.pid > 0 && isAlive(c.pid);
    const healthy = alive && (c.role === "master" ? health.masterServing : health.masterServing && health.nodeHeartbeatsMs.has(c.name));
    return { ...c, alive, healthy, uptimeMs: alive && c.startedAtMs ? now - c.startedAtMs : 0 };
  });
  const allHealthy = running && children.every((c) => c.healthy);
  const json = { running, stale: !running, phase: running ? doc.phase : "stale", supervisorPid: doc.supervisorPid, masterAddress: doc.masterAddress, dataDir: doc.dataDir, replication: doc.replication, healthy: allHealthy, error: doc.error, children };
  report(flags, json, () => {
    const headline = running
      ? `cluster ${doc.phase} in ${doc.dataDir}: master ${doc.masterAddress}, replication ${doc.replication}, supervisor pid ${doc.supervisorPid}`
      : doc.phase === "failed"
        ? `cluster failed to start in ${doc.dataDir}: ${doc.error ?? "unknown reason"}`
        : `stale state in ${doc.dataDir}: supervisor pid ${doc.supervisorPid} is gone (run 'dropbox cluster down' to clean up)`;
    const rows = children.map((c) => [c.name, c.role, c.alive ? String(c.pid) : "-", String(c.port), running ? c.state : c.alive ? "orphaned" : "gone", formatUptime(c.uptimeMs), String(c.restarts), c.healthy ? "healthy" : running ? "unhealthy" : "-"]);
    return `${headline}\n${table(["NAME", "ROLE", "PID", "PORT", "STATE", "UPTIME", "RESTARTS", "HEALTH"], rows)}`;
  });
  if (!running) return EXIT.UNAVAILABLE;
  return allHealthy ? EXIT.OK : EXIT.DEGRADED;
}
