/**
 * Copies a node kept when told to delete them, asked about again once they are old enough.
 *
 * A node keeps a chunk written within the grace period whatever the master says, because an
 * upload may be about to reference it. When nothing does, the copy is an orphan: without a
 * second request it would stay until the node's next full inventory (10 minutes). A repair
 * copy that lands just after its file was deleted is the common case.
 */
export interface DeletionRetry {
  nodeId: string;
  chunkIds: string[];
  /** 1 for the first retry. */
  attempt: number;
}

/** A bounded queue of deletions to retry, each due a fixed delay after it was queued. */
export class DeletionRetries {
  private queue: (DeletionRetry & { dueMs: number })[] = [];
  private queuedChunks = 0;

  constructor(
    private readonly delayMs: number,
    private readonly maxChunks: number,
    private readonly maxAttempts: number,
  ) {}

  /**
   * Queues `chunkIds` kept by `nodeId` at `nowMs`, after `previousAttempts` retries. Returns
   * how many were dropped: past the attempt limit or the queue's bound.
   */
  add(nodeId: string, chunkIds: string[], nowMs: number, previousAttempts = 0): number {
    if (chunkIds.length === 0) return 0;
    if (previousAttempts >= this.maxAttempts) return chunkIds.length;
    const room = Math.max(0, this.maxChunks - this.queuedChunks);
    const taken = chunkIds.slice(0, room);
    if (taken.length > 0) {
      // The delay is the same for all, so appending keeps the queue in due order.
      this.queue.push({ nodeId, chunkIds: taken, attempt: previousAttempts + 1, dueMs: nowMs + this.delayMs });
      this.queuedChunks += taken.length;
    }
    return chunkIds.length - taken.length;
  }

  /** Removes and returns the retries due by `nowMs`, oldest first. */
  takeDue(nowMs: number): DeletionRetry[] {
    let n = 0;
    while (n < this.queue.length && this.queue[n]!.dueMs <= nowMs) n++;
    if (n === 0) return [];
    const due = this.queue.slice(0, n);
    this.queue = this.queue.slice(n);
    for (const r of due) this.queuedChunks -= r.chunkIds.length;
    return due.map(({ nodeId, chunkIds, attempt }) => ({ nodeId, chunkIds, attempt }));
  }

  /** Chunk ids waiting. */
  get size(): number {
    return this.queuedChunks;
  }
}
