/**
 * `verify`: every live node re-hashes the chunks it holds (all of them, or those of the
 * named files) and the verdicts are held against the master's map of chunk -> holders.
 * With `repair`, bad copies are reported to the master, which forgets them and
 * re-replicates from good copies; we wait (with a deadline) until that is done.
 */
import { formatHostPort } from "../core/address";
import { errorMessage } from "../core/errors";
import { CHUNK_RPC_TIMEOUT_MS, CONNECT_TIMEOUT_MS, MAX_CHUNK_IDS_PER_REQUEST } from "../core/limits";
import { assertName } from "../core/names";
import type { MasterApi, StoragePool } from "../rpc/client";
import type { ChunkReplicas, ChunkVerdict, NodeStatus } from "../rpc/messages";

/** Chunks asked of a node per VerifyChunks call (the node's own cap). */
const VERIFY_BATCH_CHUNKS = 1000;
/** Chunks of the master's map judged at a time: what the client holds of the map, whatever the cluster's size. */
const VERIFY_WINDOW_CHUNKS = 1000;
/** How often the repair wait asks the master how the affected chunks are doing. */
const REPAIR_POLL_INTERVAL_MS = 200;

/** What a problem is about. */
export type ProblemState = "corrupt" | "missing" | "orphaned" | "unreachable" | "under-replicated" | "lost";

/** One problem found: a copy on a node (corrupt, missing, orphaned, unreachable) or a chunk (under-replicated, lost). */
export interface Problem {
  state: ProblemState;
  chunkId: string;
  nodeId?: string;
  /** Live verified copies, for chunk problems. */
  goodCopies?: number;
  /** Files that use the chunk, when verifying named files. */
  files?: string[];
}

/** Per-node results. */
export interface NodeVerifyReport {
  id: string;
  address: string;
  alive: boolean;
  /** False when the node is dead or did not answer; its recorded copies count as unreachable. */
  checked: boolean;
  error?: string;
  ok: number;
  corrupt: number;
  missing: number;
  orphaned: number;
  bytesVerified: number;
}

/** What `verify --repair` did. */
export interface RepairReport {
  replicasForgotten: number;
  nodesReconciled: number;
  /** Chunks that needed copies and reached the replication factor again. */
  chunksRepaired: number;
  /** Chunks still short of the replication factor at the deadline (or with no good copy to copy from). */
  chunksRemaining: number;
  timedOut: boolean;
  durationMs: number;
}

/** The whole verify report (the `verify --json` document). */
export interface VerifyReport {
  /** The named files, or null when the whole cluster was verified. */
  files: string[] | null;
  replication: number;
  /**
   * No corrupt or missing copy and no under-replicated or lost chunk. Orphans and copies on
   * dead nodes are listed but do not count: they put no data at risk.
   */
  clean: boolean;
  counts: { chunks: number; replicas: number; ok: number; corrupt: number; missing: number; orphaned: number; unreachable: number; underReplicated: number; lost: number; bytesVerified: number };
  nodes: NodeVerifyReport[];
  problems: Problem[];
  repair: RepairReport | null;
}

/** What verify needs. */
export interface VerifyOptions {
  master: MasterApi;
  pool: StoragePool;
  /** Files to verify; empty: everything. */
  names: string[];
  repair: boolean;
  repairTimeoutMs: number;
  /** Called as nodes progress: node id and chunks verified so far. */
  onNodeProgress?: (nodeId: string, verified: number, done: boolean) => void;
}

interface Expected {
  size: number;
  nodeIds: string[];
  references: number;
  files?: string[];
}

/** The master's map (chunk -> holders) for the named files: bounded by what the user named. */
async function expectedOfFiles(master: MasterApi, names: string[]): Promise<Map<string, Expected>> {
  const expected = new Map<string, Expected>();
  for (const name of names) {
    const manifest = await master.getManifest({ filename: assertName(name) });
    for (const chunk of manifest.chunks) {
      const entry = expected.get(chunk.chunkId);
      if (entry) {
        if (!entry.files!.includes(name)) entry.files!.push(name);
        entry.references++;
      } else expected.set(chunk.chunkId, { size: chunk.size, nodeIds: chunk.replicas.map((r) => r.nodeId), references: 1, files: [name] });
    }
  }
  return expected;
}

/** The chunks of `expected` the master records on `nodeId`. */
function recordedOn(expected: Map<string, Expected>, nodeId: string): string[] {
  return [...expected].filter(([, e]) => e.nodeIds.includes(nodeId)).map(([chunkId]) => chunkId);
}

/** The master's current record of `ids`, a request at a time. */
async function recordedNow(master: MasterApi, ids: string[]): Promise<Map<string, ChunkReplicas>> {
  const out = new Map<string, ChunkReplicas>();
  for (let i = 0; i < ids.length; i += MAX_CHUNK_IDS_PER_REQUEST) {
    const page = await master.listChunkReplicas({ chunkIds: ids.slice(i, i + MAX_CHUNK_IDS_PER_REQUEST) });
    for (const c of page.chunks) out.set(c.chunkId, c);
  }
  return out;
}

/** Asks one node to re-hash the listed chunks (named-files mode). */
async function verifyListedOnNode(options: VerifyOptions, node: NodeStatus, ids: string[]): Promise<ChunkVerdict[]> {
  const api = options.pool.get(formatHostPort(node.node!.host, node.node!.port));
  const id = node.node!.nodeId;
  const verdicts: ChunkVerdict[] = [];
  let rest = ids;
  while (rest.length > 0) {
    const batch = rest.slice(0, VERIFY_BATCH_CHUNKS);
    const page = await api.verifyChunks({ chunkIds: batch }, CHUNK_RPC_TIMEOUT_MS);
    verdicts.push(...page.chunks);
    // The node stops after a byte budget: ask again for what it did not reach.
    rest = rest.slice(Math.max(page.chunks.length, page.truncated ? 0 : batch.length));
    if (page.chunks.length === 0 && page.truncated) throw new Error(`node ${id} made no progress verifying`);
    options.onNodeProgress?.(id, verdicts.length, false);
  }
  return verdicts;
}

/**
 * One node's whole inventory, re-hashed in id order and read only as far as the check has
 * got: what the client holds of it at any time is a page or two, whatever the node stores.
 */
class NodeInventory {
  private buffered: ChunkVerdict[] = [];
  private startAfter = "";
  private exhausted = false;
  verified = 0;

  constructor(
    private readonly options: VerifyOptions,
    readonly node: NodeStatus,
  ) {}

  /** The verdicts for ids up to and including `last` (all that remain when null), in id order. */
  async through(last: string | null): Promise<ChunkVerdict[]> {
    const api = this.options.pool.get(formatHostPort(this.node.node!.host, this.node.node!.port));
    while (!this.exhausted && (last === null || (this.buffered[this.buffered.length - 1]?.chunkId ?? "") <= last)) {
      const page = await api.verifyChunks({ startAfter: this.startAfter, limit: VERIFY_BATCH_CHUNKS }, CHUNK_RPC_TIMEOUT_MS);
      this.buffered.push(...page.chunks);
      this.verified += page.chunks.length;
      this.options.onNodeProgress?.(this.node.node!.nodeId, this.verified, false);
      if (!page.truncated || page.chunks.length === 0) this.exhausted = true;
      else this.startAfter = page.chunks[page.chunks.length - 1]!.chunkId;
    }
    const cut = last === null ? this.buffered.length : this.buffered.findIndex((v) => v.chunkId > last);
    const taken = this.buffered.splice(0, cut < 0 ? this.buffered.length : cut);
    return taken;
  }
}

/** What the check found, added up window by window. */
class Findings {
  readonly problems: Problem[] = [];
  readonly counts = { chunks: 0, replicas: 0, ok: 0, corrupt: 0, missing: 0, orphaned: 0, unreachable: 0, underReplicated: 0, lost: 0, bytesVerified: 0 };
  /** Chunks short of the replication factor with a copy left to repair from. */
  readonly short: string[] = [];

  constructor(
    readonly rf: number,
    readonly reports: Map<string, NodeVerifyReport>,
    private readonly liveIds: Set<string>,
  ) {}

  /**
   * Judges the chunks of one window: `expected` is the master's record of them, `verdicts` what
   * each checked node said about every chunk it holds in the window. Nodes not in `verdicts`
   * (dead, or failing) could not be asked: the copies recorded on them are unreachable.
   */
  async judge(master: MasterApi, expected: Map<string, Expected>, verdicts: Map<string, ChunkVerdict[]>): Promise<void> {
    // copy state per chunk: nodeId -> verdict
    const copies = new Map<string, Map<string, ProblemState | "ok">>();
    const setCopy = (chunkId: string, nodeId: string, state: ProblemState | "ok") => {
      let m = copies.get(chunkId);
      if (!m) copies.set(chunkId, (m = new Map()));
      m.set(nodeId, state);
    };
    for (const [nodeId, report] of this.reports) {
      const answered = verdicts.get(nodeId);
      const recordedHere = recordedOn(expected, nodeId);
      if (!answered) {
        for (const chunkId of recordedHere) setCopy(chunkId, nodeId, "unreachable");
        continue;
      }
      const seen = new Set<string>();
      for (const v of answered) {
        seen.add(v.chunkId);
        if (v.state === "ok") report.bytesVerified += v.size;
        if (!expected.has(v.chunkId)) {
          // Not in the master's map: an orphan (checked again below against uploads that raced us).
          if (v.state !== "missing") setCopy(v.chunkId, nodeId, v.state === "corrupt" ? "corrupt" : "orphaned");
          continue;
        }
        setCopy(v.chunkId, nodeId, v.state);
      }
      for (const chunkId of recordedHere) if (!seen.has(chunkId)) setCopy(chunkId, nodeId, "missing");
    }

    // Uploads and deletes may have raced the check: ask the master again about the suspects.
    const suspects = [...copies].filter(([, m]) => [...m.values()].some((s) => s === "missing" || s === "orphaned")).map(([chunkId]) => chunkId);
    const now = await recordedNow(master, suspects);
    for (const chunkId of suspects) {
      const record = now.get(chunkId);
      for (const [nodeId, state] of copies.get(chunkId)!) {
        if (state === "missing" && !record?.nodeIds.includes(nodeId)) copies.get(chunkId)!.delete(nodeId);
        if (state === "orphaned" && record) copies.get(chunkId)!.set(nodeId, record.nodeIds.includes(nodeId) ? "ok" : "orphaned");
      }
    }
    // A chunk the master knows but does not record on a node that holds it is adopted by the next inventory, not an orphan.
    for (const [chunkId, m] of copies) for (const [nodeId, state] of m) if (state === "orphaned" && now.has(chunkId)) m.set(nodeId, "ok");

    const { counts } = this;
    for (const [chunkId, m] of copies) {
      for (const [nodeId, state] of m) {
        counts.replicas++;
        const r = this.reports.get(nodeId);
        if (state === "ok") {
          counts.ok++;
          if (r) r.ok++;
          continue;
        }
        if (state === "corrupt" || state === "missing" || state === "orphaned" || state === "unreachable") counts[state]++;
        if (r && (state === "corrupt" || state === "missing" || state === "orphaned")) r[state]++;
        this.problems.push({ state, chunkId, nodeId, files: expected.get(chunkId)?.files });
      }
    }
    for (const [chunkId, e] of expected) {
      counts.chunks++;
      // Chunks no file references any more wait for garbage collection: not repaired, not judged.
      if (e.references === 0) continue;
      const m = copies.get(chunkId) ?? new Map();
      const good = [...m].filter(([nodeId, state]) => state === "ok" && this.liveIds.has(nodeId)).length;
      if (good >= this.rf) continue;
      const unreachable = [...m.values()].some((s) => s === "unreachable");
      if (good === 0 && !unreachable) {
        counts.lost++;
        this.problems.push({ state: "lost", chunkId, goodCopies: 0, files: e.files });
      } else {
        counts.underReplicated++;
        this.short.push(chunkId);
        this.problems.push({ state: "under-replicated", chunkId, goodCopies: good, files: e.files });
      }
    }
  }
}

/** Runs the check (and the repair, when asked) and returns the report. */
export async function verifyCluster(options: VerifyOptions): Promise<VerifyReport> {
  const { master } = options;
  const status = await master.getClusterStatus(CONNECT_TIMEOUT_MS);
  const rf = status.replication;
  const nodes = status.nodes.filter((n) => n.node).sort((a, b) => a.node!.nodeId.localeCompare(b.node!.nodeId));
  const reports = new Map(
    nodes.map((node): [string, NodeVerifyReport] => {
      const id = node.node!.nodeId;
      // A live node counts as checked until asking it fails.
      return [id, { id, address: formatHostPort(node.node!.host, node.node!.port), alive: node.alive, checked: node.alive, ok: 0, corrupt: 0, missing: 0, orphaned: 0, bytesVerified: 0 }];
    }),
  );
  const findings = new Findings(rf, reports, new Set(nodes.filter((n) => n.alive).map((n) => n.node!.nodeId)));
  const failed = (node: NodeStatus, err: unknown) => {
    const report = reports.get(node.node!.nodeId)!;
    report.checked = false;
    report.error = errorMessage(err);
  };
  const live = nodes.filter((n) => n.alive);

  if (options.names.length > 0) {
    // The named files' chunks: few enough to judge at once.
    const expected = await expectedOfFiles(master, options.names);
    const verdicts = new Map<string, ChunkVerdict[]>();
    await Promise.all(
      live.map(async (node) => {
        const id = node.node!.nodeId;
        const ids = recordedOn(expected, id);
        try {
          verdicts.set(id, await verifyListedOnNode(options, node, ids));
        } catch (err) {
          failed(node, err);
        }
        options.onNodeProgress?.(id, verdicts.get(id)?.length ?? 0, true);
      }),
    );
    await findings.judge(master, expected, verdicts);
  } else {
    // The whole cluster, one page of the master's map at a time, every node's inventory read
    // alongside in id order: memory stays at a few pages however many chunks the cluster holds.
    const inventories = live.map((node) => new NodeInventory(options, node));
    let startAfter = "";
    for (;;) {
      const page = await master.listChunkReplicas({ startAfter, limit: VERIFY_WINDOW_CHUNKS });
      const last = page.truncated && page.chunks.length > 0 ? page.chunks[page.chunks.length - 1]!.chunkId : null;
      const expected = new Map(page.chunks.map((c): [string, Expected] => [c.chunkId, { size: c.size, nodeIds: c.nodeIds, references: c.references }]));
      const verdicts = new Map<string, ChunkVerdict[]>();
      await Promise.all(
        inventories.map(async (inventory) => {
          const id = inventory.node.node!.nodeId;
          if (!reports.get(id)!.checked) return; // failed earlier: its copies are unreachable from here on
          try {
            verdicts.set(id, await inventory.through(last));
          } catch (err) {
            failed(inventory.node, err);
          }
        }),
      );
      await findings.judge(master, expected, verdicts);
      if (last === null) break;
      startAfter = last;
    }
    for (const inventory of inventories) options.onNodeProgress?.(inventory.node.node!.nodeId, inventory.verified, true);
  }

  const { counts, problems } = findings;
  for (const r of reports.values()) counts.bytesVerified += r.bytesVerified;
  const order: ProblemState[] = ["lost", "corrupt", "missing", "under-replicated", "unreachable", "orphaned"];
  problems.sort((a, b) => order.indexOf(a.state) - order.indexOf(b.state) || a.chunkId.localeCompare(b.chunkId));

  let repair: RepairReport | null = null;
  if (options.repair) repair = await repairFound(options, problems, findings.short, rf);
  const remaining = repair ? repair.chunksRemaining : counts.underReplicated;
  // Copies on dead nodes are a problem only through the chunks they leave short (status reports the dead node).
  const copyProblems = repair ? 0 : counts.corrupt + counts.missing;
  return {
    files: options.names.length > 0 ? options.names : null,
    replication: rf,
    clean: counts.lost === 0 && remaining === 0 && copyProblems === 0,
    counts,
    nodes: [...reports.values()],
    problems,
    repair,
  };
}

/** Tells the master what is bad, then waits until the short chunks have `rf` live copies again or the deadline passes. */
async function repairFound(options: VerifyOptions, problems: Problem[], short: string[], rf: number): Promise<RepairReport> {
  const started = Date.now();
  const bad = problems.filter((p) => p.nodeId && (p.state === "corrupt" || p.state === "missing")).map((p) => ({ chunkId: p.chunkId, nodeId: p.nodeId! }));
  const orphanNodes = [...new Set(problems.filter((p) => p.state === "orphaned").map((p) => p.nodeId!))];
  let replicasForgotten = 0;
  let nodesReconciled = 0;
  for (let i = 0; i < Math.max(bad.length, orphanNodes.length, 1); i += MAX_CHUNK_IDS_PER_REQUEST) {
    const response = await options.master.requestRepair({ badReplicas: bad.slice(i, i + MAX_CHUNK_IDS_PER_REQUEST), reconcileNodeIds: orphanNodes.slice(i, i + MAX_CHUNK_IDS_PER_REQUEST) });
    replicasForgotten += response.replicasForgotten;
    nodesReconciled += response.nodesReconciled;
  }
  let pending = short;
  let timedOut = false;
  while (pending.length > 0) {
    const record = await recordedNow(options.master, pending);
    // Done when the chunk has enough live copies, or no file needs it any more.
    pending = pending.filter((id) => {
      const r = record.get(id);
      return r !== undefined && r.references > 0 && r.liveReplicas < rf;
    });
    if (pending.length === 0) break;
    if (Date.now() - started > options.repairTimeoutMs) {
      timedOut = true;
      break;
    }
    await Bun.sleep(REPAIR_POLL_INTERVAL_MS);
  }
  return { replicasForgotten, nodesReconciled, chunksRepaired: short.length - pending.length, chunksRemaining: pending.length, timedOut, durationMs: Date.now() - started };
}
