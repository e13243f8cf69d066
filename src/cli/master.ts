/** `dropbox master`: run the metadata server. */
import { intFlag, READ_TOKEN_ENV, stringFlag, NODE_SECRET_ENV, TOKEN_ENV, tokenFrom } from "./args";
import { invalidArgument } from "../core/errors";
import { parsePort } from "../core/address";
import { DEFAULT_GC_GRACE_MS, DEFAULT_NODE_TIMEOUT_MS, DEFAULT_REPAIR_INTERVAL_MS, DEFAULT_REPLICATION, MAX_REPLICATION, MIN_FREE_BYTES_FOR_PLACEMENT, MIN_REPLICATION } from "../core/limits";
import { parseSize } from "../core/size";
import { runMaster } from "../master/run";
import { untilStopped } from "./signals";
import { tlsClientFrom, tlsServerFrom, type TlsFlags } from "./tls-flags";
import { useTlsClient } from "../rpc/tls";
import { makeLog } from "../core/log";

export interface MasterFlags extends TlsFlags {
  host?: string;
  port?: unknown;
  dataDir?: unknown;
  replication?: unknown;
  nodeTimeout?: unknown;
  gcGrace?: unknown;
  repairInterval?: unknown;
  minFree?: unknown;
  token?: unknown;
  tokenFile?: unknown;
  nodeSecretFile?: unknown;
  readToken?: unknown;
}

export async function masterCommand(flags: MasterFlags, argv: string[]): Promise<number> {
  const token = tokenFrom(argv, "token", flags.token, "token-file", flags.tokenFile, TOKEN_ENV);
  const readToken = tokenFrom(argv, "read-token", flags.readToken, null, undefined, READ_TOKEN_ENV);
  if (readToken !== undefined && token === undefined) throw invalidArgument("--read-token needs a cluster token (--token, --token-file or $DROPBOX_TOKEN)");
  if (readToken !== undefined && readToken === token) throw invalidArgument("the read-only token must differ from the cluster token");
  const tls = tlsServerFrom(argv, flags);
  // Inside the cluster the server's own certificate doubles as its client certificate (mutual TLS).
  const dialing = tlsClientFrom(argv, flags);
  if (tls && dialing && !dialing.clientCert) useTlsClient({ ...dialing, clientCert: tls.cert, clientKey: tls.key });
  const master = await runMaster({
    tls,
    nodeSecret: tokenFrom(argv, "node-secret", undefined, "node-secret-file", flags.nodeSecretFile, NODE_SECRET_ENV),
    token,
    readToken,
    host: stringFlag(argv, "host", flags.host) ?? "127.0.0.1",
    port: parsePort(flags.port ?? 9000, "--port"),
    dataDir: stringFlag(argv, "data-dir", flags.dataDir) ?? "./.dropbox/master",
    replication: intFlag(flags.replication ?? DEFAULT_REPLICATION, "replication", MIN_REPLICATION, MAX_REPLICATION),
    nodeTimeoutMs: intFlag(flags.nodeTimeout ?? DEFAULT_NODE_TIMEOUT_MS, "node-timeout", 100, 3_600_000),
    gcGraceMs: intFlag(flags.gcGrace ?? DEFAULT_GC_GRACE_MS, "gc-grace", 0, 30 * 86_400_000),
    repairIntervalMs: intFlag(flags.repairInterval ?? DEFAULT_REPAIR_INTERVAL_MS, "repair-interval", 10, 3_600_000),
    minFreeBytes: flags.minFree === undefined ? MIN_FREE_BYTES_FOR_PLACEMENT : parseSize(stringFlag(argv, "min-free", flags.minFree), "--min-free"),
  });
  return untilStopped(() => master.stop(), makeLog("master"));
}
