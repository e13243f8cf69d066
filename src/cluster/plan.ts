/** What a cluster is made of: its settings, and the command line, port, data dir and log of each child. */
import { join } from "node:path";
import { formatHostPort } from "../core/address";
import { CLUSTER_HOST } from "./limits";

/** The settings of one local cluster, validated, with an absolute data dir. */
export interface ClusterConfig {
  nodeCount: number;
  replication: number;
  basePort: number;
  /** Absolute: state, logs and every child's data live under it. */
  dataDir: string;
  readyTimeoutMs: number;
  /** Flags every node gets (scrubbing, capacity, read verification), validated. */
  nodeFlags: string[];
}

/** The role subcommand a child runs. */
export type ChildRole = "master" | "node";

/** One process the supervisor runs. */
export interface ChildSpec {
  /** "master", "node1" … "nodeN": also the node's id at the master. */
  name: string;
  role: ChildRole;
  port: number;
  dataDir: string;
  logPath: string;
  /** Arguments after the executable. */
  args: string[];
}

/** Where the logs live, per data dir. */
export function logsDir(dataDir: string): string {
  return join(dataDir, "logs");
}

/** The log of one child (or of the supervisor). */
export function logPathFor(dataDir: string, name: string): string {
  return join(logsDir(dataDir), `${name}.log`);
}

/** The master's address inside a cluster. */
export function masterAddressOf(config: Pick<ClusterConfig, "basePort">): string {
  return formatHostPort(CLUSTER_HOST, config.basePort);
}

/** The master first, then node1..nodeN, with explicit ports base, base+1 … base+N. */
export function planChildren(config: ClusterConfig): ChildSpec[] {
  const master: ChildSpec = {
    name: "master",
    role: "master",
    port: config.basePort,
    dataDir: join(config.dataDir, "master"),
    logPath: logPathFor(config.dataDir, "master"),
    args: [],
  };
  master.args = ["master", "--host", CLUSTER_HOST, "--port", String(master.port), "--data-dir", master.dataDir, "--replication", String(config.replication)];
  const nodes: ChildSpec[] = [];
  for (let i = 1; i <= config.nodeCount; i++) {
    const name = `node${i}`;
    const port = config.basePort + i;
    const dataDir = join(config.dataDir, name);
    nodes.push({
      name,
      role: "node",
      port,
      dataDir,
      logPath: logPathFor(config.dataDir, name),
      args: ["node", "--host", CLUSTER_HOST, "--port", String(port), "--master", masterAddressOf(config), "--data-dir", dataDir, "--id", name, ...config.nodeFlags],
    });
  }
  return [master, ...nodes];
}
