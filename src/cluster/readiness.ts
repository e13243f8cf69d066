/** Is the cluster serving? The master's health check, then the master's own view of its nodes. */
import { checkHealth, MasterApi } from "../rpc/client";
import { PROBE_TIMEOUT_MS } from "./limits";

/** What one probe saw. */
export interface ClusterHealth {
  masterServing: boolean;
  /** Node ids alive at the master, with the time of their last heartbeat (ms since the epoch). */
  nodeHeartbeatsMs: Map<string, number>;
}

/** Probes one master; keeps its status channel open between probes. */
export class ClusterProbe {
  private api: MasterApi | null = null;

  constructor(readonly masterAddress: string) {}

  async probe(): Promise<ClusterHealth> {
    const nodeHeartbeatsMs = new Map<string, number>();
    // A fresh health channel per probe: a channel opened before the master listened would back off for up to a second.
    if (!(await checkHealth(this.masterAddress, PROBE_TIMEOUT_MS))) return { masterServing: false, nodeHeartbeatsMs };
    this.api ??= new MasterApi(this.masterAddress);
    try {
      const status = await this.api.getClusterStatus(PROBE_TIMEOUT_MS);
      for (const n of status.nodes) if (n.alive && n.node) nodeHeartbeatsMs.set(n.node.nodeId, Number(n.lastHeartbeatMs));
    } catch {
      // Serving but not answering yet: no node counts as alive this round.
    }
    return { masterServing: true, nodeHeartbeatsMs };
  }

  close() {
    this.api?.close();
    this.api = null;
  }
}

/**
 * Whether one child is healthy: the master serves; a node has reported to the master since
 * this process of it started (an earlier, killed process may still look alive there).
 */
export function childHealthy(role: "master" | "node", name: string, startedAtMs: number, health: ClusterHealth): boolean {
  if (!health.masterServing) return false;
  if (role === "master") return true;
  const lastHeartbeatMs = health.nodeHeartbeatsMs.get(name);
  return lastHeartbeatMs !== undefined && lastHeartbeatMs >= startedAtMs;
}
