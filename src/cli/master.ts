/** `dropbox master`: run the metadata server. */
import { intFlag, stringFlag } from "./args";
import { parsePort } from "../core/address";
import { DEFAULT_NODE_TIMEOUT_MS, DEFAULT_REPLICATION, MAX_REPLICATION, MIN_REPLICATION } from "../core/limits";
import { runMaster } from "../master/run";
import { untilStopped } from "./signals";
import { makeLog } from "../core/log";

export interface MasterFlags {
  host?: string;
  port?: unknown;
  dataDir?: unknown;
  replication?: unknown;
  nodeTimeout?: unknown;
}

export async function masterCommand(flags: MasterFlags, argv: string[]): Promise<number> {
  const master = await runMaster({
    host: stringFlag(argv, "host", flags.host) ?? "127.0.0.1",
    port: parsePort(flags.port ?? 9000, "--port"),
    dataDir: stringFlag(argv, "data-dir", flags.dataDir) ?? "./.dropbox/master",
    replication: intFlag(flags.replication ?? DEFAULT_REPLICATION, "replication", MIN_REPLICATION, MAX_REPLICATION),
    nodeTimeoutMs: intFlag(flags.nodeTimeout ?? DEFAULT_NODE_TIMEOUT_MS, "node-timeout", 100, 3_600_000),
  });
  return untilStopped(() => master.stop(), makeLog("master"));
}
