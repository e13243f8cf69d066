/** The master role: metadata in SQLite under the data dir, served over gRPC. */
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { TlsServerConfig } from "../rpc/tls";
import { formatHostPort, isLoopback } from "../core/address";
import { tokenDigest } from "../rpc/auth";
import { assertOwnDir, lockDataDir, type DirLock } from "../core/dir-lock";
import { makeLog, type Log } from "../core/log";
import { startServer } from "../rpc/server";
import { Metadata } from "./metadata";
import { NodeRegistry } from "./node-registry";
import { Repairer } from "./repair";
import { masterService } from "./service";
import { StoragePool } from "../rpc/client";
import { processStatsService } from "../rpc/stats";

/** What a master needs to run. */
export interface MasterOptions {
  host: string;
  port: number;
  dataDir: string;
  replication: number;
  nodeTimeoutMs: number;
  gcGraceMs: number;
  repairIntervalMs: number;
  minFreeBytes: number;
  /** The cluster token; without one every RPC is open (loopback use). */
  token?: string;
  /** Serve over TLS. */
  tls?: TlsServerConfig;
  /** The secret shared with nodes for signing grants (none: nodes accept writes without one). */
  nodeSecret?: string;
  /** A token that may only read. */
  readToken?: string;
}

/** A running master. */
export interface RunningMaster {
  port: number;
  stop(): Promise<void>;
}

/** Opens the metadata and starts serving. */
export async function runMaster(options: MasterOptions): Promise<RunningMaster> {
  const log = makeLog("master");
  // Everything this server creates (dirs, database, chunk files) is private to its user.
  process.umask(0o077);
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  assertOwnDir(options.dataDir);
  // Held until stop (or exit): two masters on one metadata.db would hand out conflicting placements.
  const lock = lockDataDir(options.dataDir);
  try {
    return await startMaster(options, log, lock);
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function startMaster(options: MasterOptions, log: Log, lock: DirLock): Promise<RunningMaster> {
  const metadata = new Metadata(join(options.dataDir, "metadata.db"));
  const registry = new NodeRegistry(metadata, options.nodeTimeoutMs);
  const pool = new StoragePool();
  const grantSecret = options.nodeSecret ? tokenDigest(options.nodeSecret) : undefined;
  const repairer = new Repairer({ metadata, registry, pool, replication: options.replication, gcGraceMs: options.gcGraceMs, intervalMs: options.repairIntervalMs, minFreeBytes: options.minFreeBytes, log, grantSecret });
  const auth = options.token ? { tokenDigest: tokenDigest(options.token), readTokenDigest: options.readToken ? tokenDigest(options.readToken) : undefined } : undefined;
  const implementation = masterService({ metadata, registry, repairer, replication: options.replication, minFreeBytes: options.minFreeBytes, startedAtMs: Date.now(), log, readTokenDigest: auth?.readTokenDigest, grantSecret });
  const server = await startServer(
    options.host,
    options.port,
    [
      { name: "dropbox.MasterService", implementation },
      processStatsService("master", "master", log, () => ({ dataDir: resolve(options.dataDir) })),
    ],
    log,
    auth,
    options.tls,
  );
  if (!auth && !isLoopback(options.host)) log(`warning: listening on ${options.host} without a token: anyone who can reach this port can read, write and delete; set --token-file or $DROPBOX_TOKEN`);
  repairer.start();
  log(`listening on ${formatHostPort(options.host, server.port)}, replication ${options.replication}, data in ${options.dataDir}`);
  return {
    port: server.port,
    async stop() {
      repairer.stop();
      await server.shutdown();
      pool.close();
      metadata.close();
      lock.release();
    },
  };
}
