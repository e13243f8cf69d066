/** `dropbox verify`: re-hash every stored copy (or those of the named files) and hold the results against the master's map. */
import { intFlag, masterAddress } from "./args";
import { MasterApi, StoragePool } from "../rpc/client";
import { verifyCluster, type VerifyReport } from "../client/verify";
import { formatBytes, formatDuration, liveOutput, report, table, type OutputOptions } from "./output";
import { LiveBoard } from "./progress";
import { EXIT } from "./exit-codes";

export interface VerifyFlags extends OutputOptions {
  master?: unknown;
  verbose?: boolean;
  repair?: boolean;
  timeout?: unknown;
}

/** How long `--repair` waits by default for re-replication to finish. */
const DEFAULT_REPAIR_TIMEOUT_MS = 120_000;

function describe(r: VerifyReport, verbose: boolean): string {
  const c = r.counts;
  const lines = [
    `verified ${c.chunks} chunks${r.files ? ` of ${r.files.length} file(s)` : ""}: ${c.replicas - c.unreachable} copies on ${r.nodes.filter((n) => n.checked).length}/${r.nodes.length} nodes, ${formatBytes(c.bytesVerified)} re-hashed`,
    "",
    table(
      ["NODE", "ADDRESS", "STATE", "OK", "CORRUPT", "MISSING", "ORPHANED"],
      r.nodes.map((n) => [n.id, n.address, n.checked ? "checked" : n.alive ? `unreachable` : "dead", String(n.ok), String(n.corrupt), String(n.missing), String(n.orphaned)]),
    ),
    "",
    `ok ${c.ok}, corrupt ${c.corrupt}, missing ${c.missing}, unreachable ${c.unreachable}, orphaned ${c.orphaned} copies; under-replicated ${c.underReplicated}, lost ${c.lost} chunks (replication ${r.replication})`,
  ];
  for (const n of r.nodes) if (n.error) lines.push(`node ${n.id}: ${n.error}`);
  if (verbose && r.problems.length > 0) {
    lines.push("");
    lines.push(
      table(
        ["PROBLEM", "CHUNK", "NODE", "FILES"],
        r.problems.map((p) => [p.state, p.chunkId, p.nodeId ?? (p.goodCopies !== undefined ? `${p.goodCopies} good copies` : "-"), p.files?.join(", ") ?? "-"]),
      ),
    );
  }
  if (r.repair) {
    const x = r.repair;
    lines.push(
      `repair: ${x.replicasForgotten} bad copies forgotten, ${x.chunksRepaired} chunks back to ${r.replication} copies, ${x.chunksRemaining} still short${x.timedOut ? " (timed out)" : ""}, ${x.nodesReconciled} node inventories re-read, in ${formatDuration(x.durationMs)}`,
    );
  }
  if (c.orphaned > 0) lines.push(`note: orphaned copies take space but hold no file's data; ${r.repair ? "they are" : "with --repair they are"} collected once older than the master's --gc-grace`);
  lines.push(r.clean ? (r.repair && r.problems.length > 0 ? "repaired: clean now" : "clean") : c.lost > 0 ? `DATA LOST: ${c.lost} chunk(s) have no good copy left` : "NOT CLEAN (run with --verbose for details, --repair to fix)");
  return lines.join("\n");
}

export async function verifyCommand(names: string[], flags: VerifyFlags, argv: string[]): Promise<number> {
  const repairTimeoutMs = flags.timeout === undefined ? DEFAULT_REPAIR_TIMEOUT_MS : intFlag(flags.timeout, "timeout", 1, 86_400_000);
  const master = new MasterApi(masterAddress(argv, flags.master));
  const pool = new StoragePool();
  let board: LiveBoard | null = null;
  const rows = new Map<string, number>();
  try {
    if (liveOutput(flags)) {
      const status = await master.getClusterStatus();
      const ids = status.nodes.filter((n) => n.node && n.alive).map((n) => n.node!.nodeId).sort();
      ids.forEach((id, i) => rows.set(id, i));
      board = new LiveBoard(ids.map((id) => `${id}: verifying`));
    }
    const result = await verifyCluster({
      master,
      pool,
      names,
      repair: Boolean(flags.repair),
      repairTimeoutMs,
      onNodeProgress: (id, verified, done) => {
        const row = rows.get(id);
        if (board && row !== undefined) {
          board.set(row, `${id}: ${verified} chunks verified${done ? "" : "…"}`);
          if (done) board.done(row);
        }
      },
    }).finally(() => board?.finish());
    report(flags, result, () => describe(result, Boolean(flags.verbose)));
    if (result.counts.lost > 0) return EXIT.INTEGRITY;
    return result.clean ? EXIT.OK : EXIT.DEGRADED;
  } finally {
    pool.close();
    master.close();
  }
}
