/**
 * Keeping every referenced chunk on `replication` live nodes, automatically: copy chunks
 * that lost replicas (most endangered first, bounded concurrency), trim surplus copies,
 * reconcile a node's inventory when it (re)joins, and collect unreferenced chunks after
 * a grace period.
 */
import { formatHostPort } from "../core/address";
import { errorMessage } from "../core/errors";
import type { Log } from "../core/log";
import { type GrantOperation, listSubject, type SignedGrant, signGrant } from "../core/grants";
import {
  CHUNK_RPC_TIMEOUT_MS,
  DELETION_RETRY_ATTEMPTS,
  GRANT_TTL_MS,
  INVENTORY_INTERVAL_MS,
  MAX_CHUNK_IDS_PER_REQUEST,
  MAX_DELETION_RETRY_CHUNKS,
  REPAIR_BATCH_CHUNKS,
  REPAIR_CONCURRENCY,
  REPAIR_SCAN_PAGE_CHUNKS,
} from "../core/limits";
import { Semaphore } from "../core/semaphore";
import type { StoragePool } from "../rpc/client";
import type { RepairStatus } from "../rpc/messages";
import type { Metadata } from "./metadata";
import { DeletionRetries } from "./deletion-retries";
import { compareInventory } from "./inventory";
import { NodeRegistry, type NodeState } from "./node-registry";
import { pickWeighted } from "./placement";

/** What the repairer needs. */
export interface RepairOptions {
  metadata: Metadata;
  registry: NodeRegistry;
  pool: StoragePool;
  replication: number;
  gcGraceMs: number;
  intervalMs: number;
  minFreeBytes: number;
  log: Log;
  /** The secret shared with nodes, to sign grants for the writes it commands (none: nodes need none). */
  grantSecret?: Buffer;
}

/** Full scans happen at least this often even when nothing seems to have changed. */
const FULL_SCAN_INTERVAL_MS = 30_000;
/** Unreferenced chunks forgotten per round. */
const GC_BATCH_CHUNKS = 1000;

const addressOf = (n: NodeState) => formatHostPort(n.host, n.port);

function shuffle<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** The master's background repair, trim, reconcile and GC loop. */
export class Repairer {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  private dirty = true;
  private lastFullScanMs = 0;
  private lastLiveSignature = "";
  /** Nodes live at the previous round: one that reappears (e.g. after a network cut) gets its inventory re-read. */
  private previouslyLive: Set<string> | null = null;
  private readonly inProgress = new Set<string>();
  private readonly permits = new Semaphore(REPAIR_CONCURRENCY);
  private readonly reconciling = new Set<string>();
  private readonly lastInventoryMs = new Map<string, number>();
  private readonly counters = { repairsCompleted: 0, repairsFailed: 0, replicasTrimmed: 0, gcCollectedChunks: 0 };
  private lastScan = { underReplicatedChunks: 0, unavailableChunks: 0, overReplicatedChunks: 0 };
  private readonly deletionRetries: DeletionRetries;

  constructor(private readonly o: RepairOptions) {
    this.deletionRetries = new DeletionRetries(o.gcGraceMs, MAX_DELETION_RETRY_CHUNKS, DELETION_RETRY_ATTEMPTS);
  }

  start() {
    const tick = async () => {
      try {
        await this.round();
      } catch (err) {
        this.o.log(`repair round failed: ${errorMessage(err)}`);
      }
      if (!this.stopped) this.timer = setTimeout(tick, this.o.intervalMs);
    };
    this.timer = setTimeout(tick, this.o.intervalMs);
  }

  stop() {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Something changed (a commit, a delete): look again at the next round. */
  markDirty() {
    this.dirty = true;
  }

  /** A node (re)registered: read its inventory and reconcile. */
  onNodeRegistered(nodeId: string) {
    void this.reconcile(nodeId);
  }

  /** A node reports copies it lost (quarantined): they no longer count. */
  onLost(nodeId: string, chunkIds: string[]) {
    for (const id of chunkIds) this.o.metadata.removeReplica(id, nodeId);
    if (chunkIds.length > 0) {
      this.o.log(`node ${nodeId} lost ${chunkIds.length} chunk copies; scheduling repair`);
      this.dirty = true;
    }
  }

  /**
   * An operator's check (`verify --repair`) found these copies corrupt or missing: stop
   * counting them, so the next round re-replicates from the good copies. Returns how many
   * recorded copies were forgotten.
   */
  forget(replicas: { chunkId: string; nodeId: string }[]): number {
    const recorded = this.o.metadata.replicasOf(replicas.map((r) => r.chunkId));
    let forgotten = 0;
    for (const { chunkId, nodeId } of replicas) {
      if (!recorded.get(chunkId)?.includes(nodeId)) continue;
      this.o.metadata.removeReplica(chunkId, nodeId);
      forgotten++;
    }
    if (forgotten > 0) this.o.log(`operator reported ${forgotten} bad chunk copies; scheduling repair`);
    this.dirty = true;
    return forgotten;
  }

  /** Re-reads a node's inventory now (as at registration), which also collects its old orphans. */
  reinventory(nodeId: string) {
    void this.reconcile(nodeId);
  }

  /** A grant for a write this loop commands, when the cluster has a node secret. */
  private grant(operation: GrantOperation, subject: string, nodeId: string): SignedGrant | null {
    return this.o.grantSecret ? signGrant(this.o.grantSecret, operation, subject, nodeId, Date.now(), GRANT_TTL_MS) : null;
  }

  status(): RepairStatus {
    return { ...this.lastScan, ...this.counters, repairsInProgress: this.inProgress.size, gcPendingChunks: this.o.metadata.gcPendingCount() };
  }

  private async round() {
    const now = Date.now();
    const live = this.o.registry.live(now);
    const signature = live.map((n) => n.id).sort().join(",");
    if (signature !== this.lastLiveSignature) {
      if (this.lastLiveSignature !== "") this.o.log(`live nodes now: ${signature || "(none)"}`);
      this.lastLiveSignature = signature;
      this.dirty = true;
    }
    for (const node of live) {
      // A node back from the dead never re-registers (its heartbeats simply resume), yet while it was
      // away its copies may have been collected or replaced: reconcile as if it had just joined.
      const lastRead = this.lastInventoryMs.get(node.id);
      const returned = this.previouslyLive !== null && !this.previouslyLive.has(node.id) && lastRead !== undefined && now - lastRead > 2 * this.o.intervalMs;
      if (returned || now - (lastRead ?? now) > INVENTORY_INTERVAL_MS) void this.reconcile(node.id);
    }
    this.previouslyLive = new Set(live.map((n) => n.id));
    await this.collectGarbage(now, live);
    await this.retryDeletions(now, live);
    if (this.dirty || now - this.lastFullScanMs > FULL_SCAN_INTERVAL_MS) {
      this.dirty = false;
      this.lastFullScanMs = now;
      await this.scan(now, live);
    }
  }

  /**
   * Classifies every referenced chunk by live replica count, then repairs and trims. The
   * chunk records are read a page at a time with a turn of the event loop between pages, and
   * only a batch of each kind is kept: a scan of millions of chunks holds neither the process
   * nor its memory, however many chunks are short of copies.
   */
  private async scan(now: number, live: NodeState[]) {
    const liveById = new Map(live.map((n) => [n.id, n]));
    // By live copies left (index 1 .. replication-1): the most endangered are repaired first.
    const underByCopies: { chunkId: string; holders: NodeState[]; allHolders: Set<string> }[][] = Array.from({ length: this.o.replication }, () => []);
    const over: { chunkId: string; holders: NodeState[] }[] = [];
    const found = { underReplicatedChunks: 0, unavailableChunks: 0, overReplicatedChunks: 0 };
    for (let after = ""; ; ) {
      const page = this.o.metadata.referencedChunkReplicasPage(after, REPAIR_SCAN_PAGE_CHUNKS);
      for (const chunk of page) {
        const holders = chunk.nodeIds.map((id) => liveById.get(id)).filter((n): n is NodeState => n !== undefined);
        if (holders.length === 0) found.unavailableChunks++;
        else if (holders.length < this.o.replication) {
          found.underReplicatedChunks++;
          const bucket = underByCopies[holders.length]!;
          if (bucket.length < REPAIR_BATCH_CHUNKS) bucket.push({ chunkId: chunk.chunkId, holders, allHolders: new Set(chunk.nodeIds) });
        } else if (holders.length > this.o.replication) {
          found.overReplicatedChunks++;
          if (over.length < REPAIR_BATCH_CHUNKS) over.push({ chunkId: chunk.chunkId, holders });
        }
      }
      if (page.length < REPAIR_SCAN_PAGE_CHUNKS || this.stopped) break;
      after = page[page.length - 1]!.chunkId;
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.lastScan = found;
    const under = underByCopies.flat();
    const jobs: Promise<void>[] = [];
    for (const item of under.slice(0, REPAIR_BATCH_CHUNKS)) {
      if (this.inProgress.has(item.chunkId)) continue;
      await this.permits.acquire();
      if (this.stopped) break;
      this.inProgress.add(item.chunkId);
      jobs.push(
        this.replicate(item.chunkId, item.holders, item.allHolders, live).finally(() => {
          this.inProgress.delete(item.chunkId);
          this.permits.release();
        }),
      );
    }
    for (const item of over.slice(0, REPAIR_BATCH_CHUNKS)) {
      if (!this.inProgress.has(item.chunkId)) jobs.push(this.trim(item.chunkId, item.holders));
    }
    await Promise.all(jobs);
    if (found.underReplicatedChunks > 0 || found.overReplicatedChunks > 0) this.dirty = true;
  }

  /** Has one more node fetch `chunkId` from a live holder; the new holder verifies the bytes. */
  private async replicate(chunkId: string, holders: NodeState[], allHolders: Set<string>, live: NodeState[]) {
    const candidates = live.filter((n) => !allHolders.has(n.id) && (n.capacityBytes === 0 || n.freeBytes >= this.o.minFreeBytes));
    const [target] = pickWeighted(candidates, 1);
    if (!target) return; // not enough nodes: stays under-replicated, visible in status
    const targetNode = this.o.registry.get(target.id)!;
    try {
      const result = await this.o.pool.get(addressOf(targetNode)).replicateChunk({ chunkId, sources: shuffle(holders).map((h) => NodeRegistry.address(h)), grant: this.grant("replicate", chunkId, targetNode.id) }, CHUNK_RPC_TIMEOUT_MS * 2);
      for (const corrupt of result.corruptSourceNodeIds) this.o.metadata.removeReplica(chunkId, corrupt);
      const now = Date.now();
      this.o.metadata.addReplica(chunkId, targetNode.id, now);
      this.counters.repairsCompleted++;
      // Collected while the copy was being made (its file was deleted): the new copy is an orphan,
      // too fresh for the node to give up yet.
      if (!this.o.metadata.knownChunks([chunkId]).has(chunkId)) this.keptFromDeletion(targetNode.id, [chunkId], now, 0);
    } catch (err) {
      this.counters.repairsFailed++;
      this.o.log(`repair of chunk ${chunkId.slice(0, 12)}… onto ${targetNode.id} failed: ${errorMessage(err)}`);
    }
  }

  /** Deletes surplus live copies, from the fullest nodes first. */
  private async trim(chunkId: string, holders: NodeState[]) {
    const surplus = [...holders].sort((a, b) => a.freeBytes - b.freeBytes).slice(0, holders.length - this.o.replication);
    for (const node of surplus) {
      try {
        // Forget the copy first: a reader that gets the old list falls back to another replica.
        this.o.metadata.removeReplica(chunkId, node.id);
        await this.o.pool.get(addressOf(node)).deleteChunks({ chunkIds: [chunkId], keepIfWrittenWithinMs: 0, grant: this.grant("delete", listSubject([chunkId]), node.id) }, CHUNK_RPC_TIMEOUT_MS);
        this.counters.replicasTrimmed++;
      } catch (err) {
        this.o.log(`trimming chunk ${chunkId.slice(0, 12)}… on ${node.id} failed: ${errorMessage(err)}`);
      }
    }
  }

  /** Deletes chunks unreferenced for longer than the grace period, master rows first. */
  private async collectGarbage(now: number, live: NodeState[]) {
    const collected = this.o.metadata.collectGarbage(now, this.o.gcGraceMs, GC_BATCH_CHUNKS);
    if (collected.length === 0) return;
    this.counters.gcCollectedChunks += collected.length;
    const byNode = new Map<string, string[]>();
    for (const chunk of collected) for (const nodeId of chunk.nodeIds) byNode.set(nodeId, [...(byNode.get(nodeId) ?? []), chunk.chunkId]);
    const liveIds = new Set(live.map((n) => n.id));
    await Promise.all(
      [...byNode].map(async ([nodeId, ids]) => {
        const node = this.o.registry.get(nodeId);
        // Dead holders keep their copies for now; the inventory at their return finds them orphaned.
        if (!node || !liveIds.has(nodeId)) return;
        try {
          await this.deleteUnlessFresh(node, ids, 0);
        } catch (err) {
          this.o.log(`garbage collection on ${nodeId} failed: ${errorMessage(err)}`);
        }
      }),
    );
    this.o.log(`collected ${collected.length} unreferenced chunks`);
  }

  /** Remembers copies a node kept from a deletion, to ask again once the grace period has passed. */
  private keptFromDeletion(nodeId: string, chunkIds: string[], now: number, previousAttempts: number) {
    const dropped = this.deletionRetries.add(nodeId, chunkIds, now, previousAttempts);
    if (dropped > 0) this.o.log(`${dropped} chunk copies on ${nodeId} left to its next inventory`);
  }

  /**
   * Has `node` delete `ids`, but for copies written within the grace period (an upload may be
   * about to reference them), in requests of at most MAX_CHUNK_IDS_PER_REQUEST ids. The copies
   * it keeps are asked about again later (`previousAttempts` retries so far). Returns how many
   * it deleted; a failed request throws, and the rest are not sent.
   */
  private async deleteUnlessFresh(node: NodeState, ids: string[], previousAttempts: number): Promise<number> {
    const api = this.o.pool.get(addressOf(node));
    let deleted = 0;
    for (let i = 0; i < ids.length; i += MAX_CHUNK_IDS_PER_REQUEST) {
      const batch = ids.slice(i, i + MAX_CHUNK_IDS_PER_REQUEST);
      const result = await api.deleteChunks({ chunkIds: batch, keepIfWrittenWithinMs: this.o.gcGraceMs, grant: this.grant("delete", listSubject(batch), node.id) }, CHUNK_RPC_TIMEOUT_MS);
      deleted += result.deletedChunkIds.length;
      this.keptFromDeletion(node.id, result.keptChunkIds, Date.now(), previousAttempts);
    }
    return deleted;
  }

  /**
   * Asks nodes again to delete copies they kept as too fresh, unless the master has learned
   * of the chunk since (an upload committed it). The node still keeps any written meanwhile.
   */
  private async retryDeletions(now: number, live: NodeState[]) {
    const liveIds = new Set(live.map((n) => n.id));
    await Promise.all(
      this.deletionRetries.takeDue(now).map(async ({ nodeId, chunkIds, attempt }) => {
        const node = this.o.registry.get(nodeId);
        // A dead node's copies wait for the inventory at its return.
        if (!node || !liveIds.has(nodeId)) return;
        const known = this.o.metadata.knownChunks(chunkIds);
        try {
          const deleted = await this.deleteUnlessFresh(node, chunkIds.filter((id) => !known.has(id)), attempt);
          if (deleted > 0) this.o.log(`deleted ${deleted} orphaned copies on ${nodeId}`);
        } catch (err) {
          this.o.log(`deleting orphaned copies on ${nodeId} failed: ${errorMessage(err)}`);
        }
      }),
    );
  }

  /**
   * Reads a node's whole inventory and reconciles: known chunks become replicas, copies
   * the master records but the node lacks are forgotten, and chunks nobody knows are
   * deleted unless written within the grace period (an upload may be about to commit them).
   */
  private async reconcile(nodeId: string) {
    if (this.reconciling.has(nodeId)) return;
    this.reconciling.add(nodeId);
    const started = Date.now();
    this.lastInventoryMs.set(nodeId, started);
    try {
      const node = this.o.registry.get(nodeId);
      if (!node) return;
      const api = this.o.pool.get(addressOf(node));
      let deleted = 0;
      const { held, missing } = await compareInventory({
        nextPage: async (startAfter) => {
          const page = await api.listChunks({ startAfter, limit: MAX_CHUNK_IDS_PER_REQUEST }, CHUNK_RPC_TIMEOUT_MS);
          return { ids: page.chunks.map((c) => c.chunkId), last: !page.truncated };
        },
        recordedBetween: (after, upTo, limit) => this.o.metadata.replicasOnNodeBetween(nodeId, started, after, upTo, limit),
        recordedPageLimit: MAX_CHUNK_IDS_PER_REQUEST,
        onPage: async (ids, gone) => {
          const known = this.o.metadata.knownChunks(ids);
          // One commit per page, not per copy: 5000 copies new to the master took 295 ms one by
          // one against 31 ms together here, and a commit per row waits on the disk each time.
          // A node back with an empty disk under its old id forgets all its copies this way.
          this.o.metadata.inTransaction(() => {
            for (const id of ids) if (known.has(id)) this.o.metadata.addReplica(id, nodeId, started);
            for (const id of gone) this.o.metadata.removeReplica(id, nodeId);
          });
          deleted += await this.deleteUnlessFresh(node, ids.filter((id) => !known.has(id)), 0);
        },
      });
      this.o.log(`inventory of ${nodeId}: ${held} chunks, ${missing} missing copies forgotten, ${deleted} orphans deleted`);
      this.dirty = true;
    } catch (err) {
      this.o.log(`inventory of ${nodeId} failed: ${errorMessage(err)}`);
      this.lastInventoryMs.delete(nodeId);
    } finally {
      this.reconciling.delete(nodeId);
    }
  }
}
