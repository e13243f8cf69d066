/** The storage node role: serve chunks, register with the master, report on an interval. */
import { hostname } from "node:os";
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import type { TlsServerConfig } from "../rpc/tls";
import { formatHostPort, isLoopback, isNodeId, parseHostPort } from "../core/address";
import { type AuthPolicy, tokenDigest } from "../rpc/auth";
import { assertOwnDir, lockDataDir, type DirLock } from "../core/dir-lock";
import { DropboxError, errorMessage, invalidArgument } from "../core/errors";
import { makeLog } from "../core/log";
import { type NodeProofOperation, nodeProof } from "../core/node-proof";
import { REGISTER_RETRY_INTERVAL_MS } from "../core/limits";
import { VERSION } from "../core/version";
import { MAX_CHUNK_IDS_PER_REQUEST } from "../core/limits";
import { MasterApi, StoragePool } from "../rpc/client";
import { startServer } from "../rpc/server";
import { processStatsService } from "../rpc/stats";
import { ChunkStore } from "./chunk-store";
import { startScrubber } from "./scrubber";
import { storageService } from "./service";

/** What a node needs to run. */
export interface NodeOptions {
  host: string;
  port: number;
  master: string;
  dataDir: string;
  advertise?: string;
  id?: string;
  heartbeatIntervalMs: number;
  /** MiB/s to re-verify stored chunks at; 0 disables scrubbing. */
  scrubRateMiBps: number;
  /** A full scrub pass starts at most this often; 0 runs them back to back. */
  scrubIntervalMs: number;
  /** Bytes this node may hold (0: the whole disk). */
  capacityBytes: number;
  /** Re-hash every chunk before serving it (readers hash what they receive in any case). */
  verifyReads?: boolean;
  /** The cluster token; without one every RPC is open (loopback use). */
  token?: string;
  /** Serve over TLS. */
  tls?: TlsServerConfig;
  /** The secret shared with the master: writes then need its grants. */
  nodeSecret?: string;
}

/** A running node. */
export interface RunningNode {
  port: number;
  stop(): Promise<void>;
}


/** The node's id: given, or persisted in the data dir so a restarted node is recognised. */
async function resolveNodeId(dataDir: string, given?: string): Promise<string> {
  const file = join(dataDir, "node-id");
  const stored = await readFile(file, "utf8").then((t) => t.trim(), () => undefined);
  if (given !== undefined) {
    if (!isNodeId(given)) throw invalidArgument(`--id must be 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(given)}`);
    if (stored && stored !== given) throw invalidArgument(`data dir ${dataDir} belongs to node ${stored}, not ${given}`);
    if (!stored) await writeFile(file, `${given}\n`, { mode: 0o600 });
    return given;
  }
  if (stored) return stored;
  const id = `node-${randomBytes(4).toString("hex")}`;
  await writeFile(file, `${id}\n`, { mode: 0o600 });
  return id;
}

/** Starts a node and returns once it serves; registration continues in the background until the master answers. */
export async function runNode(options: NodeOptions): Promise<RunningNode> {
  // Everything this server creates (dirs, database, chunk files) is private to its user.
  process.umask(0o077);
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  assertOwnDir(options.dataDir);
  // Held until stop (or exit): a second node on this dir would fight this one over every chunk.
  const lock = lockDataDir(options.dataDir);
  try {
    return await startNode(options, lock);
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function startNode(options: NodeOptions, lock: DirLock): Promise<RunningNode> {
  const nodeId = await resolveNodeId(options.dataDir, options.id);
  const log = makeLog(`node[${nodeId}]`);
  // Copies lost to corruption, reported with the next heartbeats until the master has them.
  const lost = new Set<string>();
  const store = await ChunkStore.open(options.dataDir, { log, onLost: (id) => lost.add(id), capacityLimitBytes: options.capacityBytes, verifyReads: options.verifyReads });
  const peers = new StoragePool();
  const dataDir = resolve(options.dataDir);
  // Mutable: the master tells us its read-only token's digest when we register.
  const auth: AuthPolicy | undefined = options.token ? { tokenDigest: tokenDigest(options.token) } : undefined;
  // The node secret checks the master's grants, and proves this node's identity to the master.
  const nodeSecretKey = options.nodeSecret ? tokenDigest(options.nodeSecret) : undefined;
  const proofOf = (operation: NodeProofOperation, address = "") => nodeProof(nodeSecretKey!, operation, nodeId, address);
  const server = await startServer(
    options.host,
    options.port,
    [
      { name: "dropbox.StorageService", implementation: storageService(store, peers, log, { nodeId, grantSecret: nodeSecretKey }) },
      processStatsService("node", nodeId, log, async () => ({ ...(await store.usage()), dataDir })),
    ],
    log,
    auth,
    options.tls,
  );
  if (!auth && !isLoopback(options.host)) log(`warning: listening on ${options.host} without a token: anyone who can reach this port can read and write chunks; set --token-file or $DROPBOX_TOKEN`);
  const stopScrubber =
    options.scrubRateMiBps > 0 ? startScrubber(store, { rateMiBps: options.scrubRateMiBps, intervalMs: options.scrubIntervalMs, statePath: join(dataDir, "scrub.json") }, log) : () => {};

  const wildcard = options.host === "0.0.0.0" || options.host === "::";
  const advertised = options.advertise ? parseHostPort(options.advertise, "--advertise") : { host: wildcard ? hostname() : options.host, port: server.port };
  const master = new MasterApi(options.master);
  log(`listening on ${formatHostPort(options.host, server.port)}, advertised as ${formatHostPort(advertised.host, advertised.port)}, data in ${options.dataDir}`);

  const heartbeatProof = nodeSecretKey ? proofOf("heartbeat") : undefined;
  let stopped = false;
  let registered = false;
  let masterReachable = true;
  let timer: ReturnType<typeof setTimeout> | null = null;

  const register = async () => {
    const usage = await store.usage();
    const nodeProof = nodeSecretKey ? proofOf("register", formatHostPort(advertised.host, advertised.port)) : undefined;
    const response = await master.registerNode({ nodeId, host: advertised.host, port: advertised.port, version: VERSION, ...usage, nodeProof }, REGISTER_RETRY_INTERVAL_MS * 4);
    if (auth) auth.readTokenDigest = response.readTokenSha256?.length === 32 ? response.readTokenSha256 : undefined;
    registered = true;
    log(`registered with master ${options.master}`);
  };

  // One loop for both registering and heartbeating, so there is never more than one call in flight.
  const tick = async () => {
    try {
      if (!registered) await register();
      else {
        const reported = [...lost].slice(0, MAX_CHUNK_IDS_PER_REQUEST);
        const response = await master.heartbeat({ nodeId, ...(await store.usage()), lostChunkIds: reported, nodeProof: heartbeatProof }, options.heartbeatIntervalMs * 4);
        for (const id of reported) lost.delete(id);
        if (!response.known) {
          registered = false;
          await register();
        }
      }
      if (!masterReachable) log(`master ${options.master} reachable again`);
      masterReachable = true;
    } catch (err) {
      const refused = err instanceof DropboxError && (err.kind === "PERMISSION_DENIED" || err.kind === "UNAUTHENTICATED");
      if (masterReachable) log(`master ${options.master} ${refused ? "refused this node" : "not answering"} (${errorMessage(err)}); retrying`);
      masterReachable = false;
    }
    if (!stopped) timer = setTimeout(tick, registered ? options.heartbeatIntervalMs : REGISTER_RETRY_INTERVAL_MS);
  };
  void tick();

  return {
    port: server.port,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      stopScrubber();
      await server.shutdown();
      await store.close();
      master.close();
      peers.close();
      lock.release();
    },
  };
}
