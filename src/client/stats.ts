/** Asking every process of a cluster about itself (ProcessService), and turning two samples into rates. */
import { formatHostPort } from "../core/address";
import { errorMessage } from "../core/errors";
import { ProcessApi } from "../rpc/client";
import type { ClusterStatusResponse, ProcessStats } from "../rpc/messages";

/** Deadline of one stats call: a process that cannot answer this fast is shown as not answering. */
export const STATS_TIMEOUT_MS = 2000;

/** One process of the cluster as the master lists it. */
export interface ProcessTarget {
  role: "master" | "node";
  id: string;
  address: string;
  /** The master's view: a node is alive when it heartbeats; the master is alive when it answered. */
  alive: boolean;
}

/** What one process said about itself, or why it did not. */
export interface ProcessSample extends ProcessTarget {
  stats: ProcessStats | null;
  error?: string;
}

/** The master, then every node the master knows, in id order. */
export function targetsOf(masterAddress: string, status: ClusterStatusResponse): ProcessTarget[] {
  const nodes = status.nodes
    .filter((n) => n.node)
    .map((n): ProcessTarget => ({ role: "node", id: n.node!.nodeId, address: formatHostPort(n.node!.host, n.node!.port), alive: n.alive }))
    .sort((a, b) => a.id.localeCompare(b.id));
  return [{ role: "master", id: "master", address: masterAddress, alive: true }, ...nodes];
}

/** One ProcessService channel per address, kept across samples. */
export class StatsClients {
  private readonly byAddress = new Map<string, ProcessApi>();

  /** Samples every target in parallel; dead nodes are asked too, with the same short deadline. */
  sample(targets: ProcessTarget[], timeoutMs = STATS_TIMEOUT_MS): Promise<ProcessSample[]> {
    return Promise.all(
      targets.map(async (t) => {
        let api = this.byAddress.get(t.address);
        if (!api) {
          api = new ProcessApi(t.address);
          this.byAddress.set(t.address, api);
        }
        try {
          return { ...t, stats: await api.getStats(timeoutMs) };
        } catch (err) {
          return { ...t, stats: null, error: errorMessage(err) };
        }
      }),
    );
  }

  close() {
    for (const api of this.byAddress.values()) api.close();
    this.byAddress.clear();
  }
}

/** Rates between two samples of the same process. */
export interface Rates {
  cpuPercent: number;
  opsPerSec: number;
  inBytesPerSec: number;
  outBytesPerSec: number;
}

/** Rates from `before` to `after`; null when they are not two samples of one process run. */
export function ratesBetween(before: ProcessStats | null | undefined, after: ProcessStats | null): Rates | null {
  if (!before || !after || before.pid !== after.pid || before.startedAtMs !== after.startedAtMs) return null;
  const seconds = (after.sampledAtMs - before.sampledAtMs) / 1000;
  if (seconds <= 0) return null;
  const per = (a: number, b: number) => Math.max(0, a - b) / seconds;
  return {
    cpuPercent: per(after.cpuMicros, before.cpuMicros) / 10_000,
    opsPerSec: per(after.rpcCalls, before.rpcCalls),
    inBytesPerSec: per(after.bytesIn, before.bytesIn),
    outBytesPerSec: per(after.bytesOut, before.bytesOut),
  };
}
