/** The master role: metadata in SQLite under the data dir, served over gRPC. */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { formatHostPort } from "../core/address";
import { makeLog } from "../core/log";
import { MasterServiceClient } from "../rpc/proto";
import { startServer } from "../rpc/server";
import { Metadata } from "./metadata";
import { NodeRegistry } from "./node-registry";
import { masterService } from "./service";

/** What a master needs to run. */
export interface MasterOptions {
  host: string;
  port: number;
  dataDir: string;
  replication: number;
  nodeTimeoutMs: number;
}

/** A running master. */
export interface RunningMaster {
  port: number;
  stop(): Promise<void>;
}

/** Opens the metadata and starts serving. */
export async function runMaster(options: MasterOptions): Promise<RunningMaster> {
  const log = makeLog("master");
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const metadata = new Metadata(join(options.dataDir, "metadata.db"));
  const registry = new NodeRegistry(metadata, options.nodeTimeoutMs);
  const implementation = masterService({ metadata, registry, replication: options.replication, startedAtMs: Date.now(), log });
  const server = await startServer(options.host, options.port, [{ name: "dropbox.MasterService", definition: MasterServiceClient.service, implementation }], log);
  log(`listening on ${formatHostPort(options.host, server.port)}, replication ${options.replication}, data in ${options.dataDir}`);
  return {
    port: server.port,
    async stop() {
      await server.shutdown();
      metadata.close();
    },
  };
}
