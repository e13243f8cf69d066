/**
 * The state file `DATA_DIR/cluster.json`: what the supervisor runs, so that other shells
 * can see and stop it. Only the supervisor writes it, always atomically (temp + rename),
 * so readers never see half a document.
 */
import { existsSync, readFileSync } from "node:fs";
import { rename, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { ChildRole } from "./plan";
import { DEFAULT_DATA_DIR } from "./limits";
import { isAlive } from "./processes";

/** Bumped when the document changes incompatibly. */
export const STATE_FORMAT = 1;

/**
 * starting: spawned, not yet healthy; running: healthy; backoff: died, restart scheduled;
 * failed: crashed too often, left down; stopped: stopped on purpose.
 */
export type ChildState = "starting" | "running" | "backoff" | "failed" | "stopped";

/** starting → ready → stopping, or failed when the cluster never became ready. */
export type ClusterPhase = "starting" | "ready" | "stopping" | "failed";

/** One supervised process as recorded in the state file. */
export interface ChildRecord {
  name: string;
  role: ChildRole;
  /** 0 while not running. */
  pid: number;
  port: number;
  dataDir: string;
  log: string;
  state: ChildState;
  /** Restarts after unexpected exits since the supervisor started. */
  restarts: number;
  /** When the current process was spawned (ms since the epoch), 0 while not running. */
  startedAtMs: number;
  /** How the previous process ended, e.g. "exit 1" or "SIGKILL". */
  lastExit?: string;
}

/** The whole state file. */
export interface ClusterStateDoc {
  format: number;
  supervisorPid: number;
  supervisorLog: string;
  startedAtMs: number;
  phase: ClusterPhase;
  /** Why the cluster failed to start, naming the process. */
  error?: string;
  /** The child whose failure stopped the start. */
  failedChild?: string;
  masterAddress: string;
  basePort: number;
  ports: number[];
  replication: number;
  dataDir: string;
  children: ChildRecord[];
}

/** The state file of a data dir. */
export function statePath(dataDir: string): string {
  return join(dataDir, "cluster.json");
}

/** Reads the state file; undefined when there is none or it is unreadable. */
export function readState(dataDir: string): ClusterStateDoc | undefined {
  let text: string;
  try {
    text = readFileSync(statePath(dataDir), "utf8");
  } catch {
    return undefined;
  }
  try {
    const doc = JSON.parse(text) as ClusterStateDoc;
    return doc.format === STATE_FORMAT ? doc : undefined;
  } catch {
    return undefined;
  }
}

/** Writes the state file atomically: a reader sees the old or the new document, never a mix. */
export async function writeState(doc: ClusterStateDoc): Promise<void> {
  const path = statePath(doc.dataDir);
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 });
  await rename(temp, path);
}

/** Removes the state file (after a clean stop, or when it is stale). */
export async function removeState(dataDir: string): Promise<void> {
  await rm(statePath(dataDir), { force: true });
}

/** True when the state's supervisor still runs: the cluster is up, or coming up or down. */
export function supervisorAlive(doc: ClusterStateDoc): boolean {
  return isAlive(doc.supervisorPid);
}

/** Pids of the state's children that are still alive. */
export function liveChildPids(doc: ClusterStateDoc): number[] {
  return doc.children.map((c) => c.pid).filter((pid) => pid > 0 && isAlive(pid));
}

/**
 * The master address of the cluster started in `cwd` (default data dir), when one runs
 * there; cheap and synchronous, for client commands that were given no --master.
 */
export function localClusterMaster(cwd: string): string | undefined {
  const dataDir = resolve(cwd, DEFAULT_DATA_DIR);
  if (!existsSync(statePath(dataDir))) return undefined;
  const doc = readState(dataDir);
  if (!doc || doc.phase === "failed" || !supervisorAlive(doc)) return undefined;
  return doc.masterAddress;
}
