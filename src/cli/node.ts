/** `dropbox node`: run a storage node. */
import { intFlag, masterAddress, stringFlag, NODE_SECRET_ENV, TOKEN_ENV, tokenFrom } from "./args";
import { parsePort } from "../core/address";
import { invalidArgument } from "../core/errors";
import { DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_SCRUB_INTERVAL_MS, DEFAULT_SCRUB_RATE_MIB_PER_S } from "../core/limits";
import { nodeTuningFrom, type NodeTuning, type NodeTuningFlags } from "./node-tuning";
import { runNode } from "../node/run";
import { untilStopped } from "./signals";
import { tlsClientFrom, tlsServerFrom, type TlsFlags } from "./tls-flags";
import { useTlsClient } from "../rpc/tls";
import { makeLog } from "../core/log";

export interface NodeFlags extends TlsFlags, NodeTuningFlags {
  host?: string;
  port?: unknown;
  master?: unknown;
  dataDir?: unknown;
  advertise?: unknown;
  id?: unknown;
  heartbeatInterval?: unknown;
  token?: unknown;
  tokenFile?: unknown;
  nodeSecretFile?: unknown;
}

/** The node's settings from its tuning flags, defaults for those not given. */
function withDefaults(tuning: NodeTuning) {
  return {
    scrubRateMiBps: tuning.scrubRateMiBps ?? DEFAULT_SCRUB_RATE_MIB_PER_S,
    scrubIntervalMs: tuning.scrubIntervalMs ?? DEFAULT_SCRUB_INTERVAL_MS,
    capacityBytes: tuning.capacityBytes ?? 0,
    verifyReads: tuning.verifyReads,
  };
}

export async function nodeCommand(flags: NodeFlags, argv: string[]): Promise<number> {
  const dataDir = stringFlag(argv, "data-dir", flags.dataDir);
  if (!dataDir) throw invalidArgument("node needs --data-dir DIR");
  const tls = tlsServerFrom(argv, flags);
  // Inside the cluster the server's own certificate doubles as its client certificate (mutual TLS).
  const dialing = tlsClientFrom(argv, flags);
  if (tls && dialing && !dialing.clientCert) useTlsClient({ ...dialing, clientCert: tls.cert, clientKey: tls.key });
  const node = await runNode({
    tls,
    nodeSecret: tokenFrom(argv, "node-secret", undefined, "node-secret-file", flags.nodeSecretFile, NODE_SECRET_ENV),
    token: tokenFrom(argv, "token", flags.token, "token-file", flags.tokenFile, TOKEN_ENV),
    host: stringFlag(argv, "host", flags.host) ?? "127.0.0.1",
    port: parsePort(flags.port ?? 9001, "--port"),
    master: masterAddress(argv, flags.master),
    dataDir,
    advertise: stringFlag(argv, "advertise", flags.advertise),
    id: stringFlag(argv, "id", flags.id),
    heartbeatIntervalMs: intFlag(flags.heartbeatInterval ?? DEFAULT_HEARTBEAT_INTERVAL_MS, "heartbeat-interval", 10, 60_000),
    ...withDefaults(nodeTuningFrom(flags, argv)),
  });
  return untilStopped(() => node.stop(), makeLog("node"));
}
