/** ProcessService: every server answers about itself (no `ps` parsing, works across hosts). */
import type * as grpc from "@grpc/grpc-js";
import type { Log } from "../core/log";
import { VERSION } from "../core/version";
import type { ProcessStats } from "./messages";
import { rpcCounters, unary, type ServiceBinding } from "./server";

/** What only the role knows: a node's store usage and data dir. */
export interface RoleStats {
  chunkCount?: number;
  usedBytes?: number;
  freeBytes?: number;
  capacityBytes?: number;
  dataDir?: string;
}

/** The ProcessService binding for this process; `extra` adds what the role knows. */
export function processStatsService(role: "master" | "node", id: string, log: Log, extra: () => Promise<RoleStats> | RoleStats = () => ({})): ServiceBinding {
  const startedAtMs = Date.now();
  const implementation: grpc.UntypedServiceImplementation = {
    GetStats: unary<object, ProcessStats>(async () => {
      const cpu = process.cpuUsage();
      const more = await extra();
      const now = Date.now();
      return {
        role,
        id,
        pid: process.pid,
        version: VERSION,
        startedAtMs,
        uptimeMs: now - startedAtMs,
        cpuMicros: cpu.user + cpu.system,
        rssBytes: process.memoryUsage.rss(),
        rpcCalls: rpcCounters.calls,
        rpcErrors: rpcCounters.errors,
        bytesIn: rpcCounters.bytesIn,
        bytesOut: rpcCounters.bytesOut,
        chunkCount: more.chunkCount ?? 0,
        usedBytes: more.usedBytes ?? 0,
        freeBytes: more.freeBytes ?? 0,
        capacityBytes: more.capacityBytes ?? 0,
        dataDir: more.dataDir ?? "",
        sampledAtMs: now,
      };
    }, log),
  };
  return { name: "dropbox.ProcessService", implementation };
}
