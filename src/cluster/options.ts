/** Reading the cluster commands' flags into validated settings, before anything starts. */
import { accessSync, constants, mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { intFlag, stringFlag } from "../cli/args";
import { invalidArgument } from "../core/errors";
import { nodeTuningFrom, type NodeTuningFlags } from "../cli/node-tuning";
import { MAX_REPLICATION, MIN_REPLICATION } from "../core/limits";
import { DEFAULT_BASE_PORT, DEFAULT_DATA_DIR, DEFAULT_NODE_COUNT, DEFAULT_READY_TIMEOUT_MS, MAX_NODE_COUNT } from "./limits";
import type { ClusterConfig } from "./plan";

/** Every flag a cluster command may be given, as the option parser hands them over. */
export interface ClusterFlags extends NodeTuningFlags {
  nodes?: unknown;
  replication?: unknown;
  basePort?: unknown;
  dataDir?: unknown;
  timeout?: unknown;
  foreground?: boolean;
  quiet?: boolean;
  json?: boolean;
  follow?: boolean;
  lines?: unknown;
}

/** The absolute data dir: --data-dir, else ./.dropbox. */
export function dataDirFrom(flags: ClusterFlags, argv: string[]): string {
  return resolve(stringFlag(argv, "data-dir", flags.dataDir) ?? DEFAULT_DATA_DIR);
}

/** Settings for `up`; throws INVALID_ARGUMENT with one clear line on bad input. */
export function clusterConfigFrom(flags: ClusterFlags, argv: string[]): ClusterConfig {
  const nodeCount = intFlag(flags.nodes ?? DEFAULT_NODE_COUNT, "nodes", 1, MAX_NODE_COUNT);
  const replication = intFlag(flags.replication ?? Math.min(2, nodeCount), "replication", MIN_REPLICATION, MAX_REPLICATION);
  if (replication > nodeCount) throw invalidArgument(`--replication ${replication} needs at least ${replication} nodes, got --nodes ${nodeCount}`);
  const basePort = intFlag(flags.basePort ?? DEFAULT_BASE_PORT, "base-port", 1, 65535 - nodeCount);
  const readyTimeoutMs = intFlag(flags.timeout ?? DEFAULT_READY_TIMEOUT_MS, "timeout", 100, 600_000);
  const dataDir = dataDirFrom(flags, argv);
  ensureWritableDir(dataDir);
  return { nodeCount, replication, basePort, dataDir, readyTimeoutMs, nodeFlags: nodeFlagsFrom(flags, argv) };
}

/**
 * The storage-node flags `up` passes to every node, checked here with the node's own rules
 * so that a bad value fails `up` in one line rather than every node in its log.
 */
function nodeFlagsFrom(flags: ClusterFlags, argv: string[]): string[] {
  const tuning = nodeTuningFrom(flags, argv);
  const out: string[] = [];
  if (tuning.scrubRateMiBps !== undefined) out.push("--scrub-rate", String(tuning.scrubRateMiBps));
  if (tuning.scrubIntervalMs !== undefined) out.push("--scrub-interval", String(tuning.scrubIntervalMs));
  if (tuning.capacityBytes !== undefined) out.push("--capacity", String(tuning.capacityBytes));
  if (tuning.verifyReads) out.push("--verify-reads");
  return out;
}

/** Creates the data dir and checks that it can be written, so a bad path fails before anything starts. */
function ensureWritableDir(dir: string) {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    throw invalidArgument(`data dir ${dir} is not writable (${code})`);
  }
}

/**
 * Rejects flags that mean nothing to this action: every cluster action shares one parser,
 * so the parser alone would accept `cluster down --nodes 5`.
 */
export function checkFlagsFor(action: string, argv: string[], allowed: string[]) {
  for (const arg of argv) {
    if (arg === "--") break;
    if (!arg.startsWith("-") || /^-\d/.test(arg)) continue;
    const name = arg.replace(/^--?/, "").split("=")[0]!;
    if (!allowed.includes(name)) throw invalidArgument(`unknown option '${arg.split("=")[0]}' for 'cluster ${action}' (see 'dropbox cluster --help')`);
  }
}
