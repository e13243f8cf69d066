/**
 * A node's inventory set against the master's records of it, a page at a time. Both sides
 * are walked in chunk id order, so the master holds one page of each, however many chunks
 * the node keeps: it used to gather every id the node listed into a set and read every copy
 * recorded there in one statement, some 150 MB and a long pause of the event loop for a
 * node with a million chunks, every ten minutes for every node.
 */

/** One page of a node's inventory: ids in ascending order, and whether it is the last page. */
export interface InventoryPage {
  ids: string[];
  last: boolean;
}

export interface InventorySources {
  /** The node's page after `startAfter` (ListChunks: in id order). */
  nextPage(startAfter: string): Promise<InventoryPage>;
  /** Ids recorded on the node in (`after`, `upTo`], ascending, at most `limit`; `upTo` null: no upper bound. */
  recordedBetween(after: string, upTo: string | null, limit: number): string[];
  /**
   * Called for each page with the ids the node listed and recorded ids it turned out not to
   * hold; again with no listed ids when a range held more missing copies than one step reads.
   */
  onPage(held: string[], missing: string[]): Promise<void>;
  /** Recorded ids read per step. */
  recordedPageLimit: number;
}

/**
 * Walks the node's inventory page by page; for each, finds the copies recorded in the id range
 * that page covers which it does not list. Returns how many ids the node listed and how many
 * recorded copies it lacked. A page out of id order stops the walk with an error: merging it
 * would count copies as missing that the node holds.
 */
export async function compareInventory(sources: InventorySources): Promise<{ held: number; missing: number }> {
  const totals = { held: 0, missing: 0 };
  for (let after = ""; ; ) {
    const { ids, last } = await sources.nextPage(after);
    ids.forEach((id, i) => {
      if (id <= (i === 0 ? after : ids[i - 1]!)) throw new Error(`the node listed its chunks out of id order (${id.slice(0, 12)}… after ${(i === 0 ? after : ids[i - 1]!).slice(0, 12)}…)`);
    });
    // This page stands for every id up to its last one; the last page for every id after.
    const upTo = last || ids.length === 0 ? null : ids[ids.length - 1]!;
    const listed = new Set(ids);
    totals.held += ids.length;
    for (let cursor = after, first = true; ; first = false) {
      const recorded = sources.recordedBetween(cursor, upTo, sources.recordedPageLimit);
      const missing = recorded.filter((id) => !listed.has(id));
      if (first || missing.length > 0) await sources.onPage(first ? ids : [], missing);
      totals.missing += missing.length;
      if (recorded.length < sources.recordedPageLimit) break;
      cursor = recorded[recorded.length - 1]!;
    }
    if (upTo === null) return totals;
    after = upTo;
  }
}
