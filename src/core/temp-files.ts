/**
 * Temporary files this process is writing (downloads in progress, beside their outputs), so
 * that a client stopped by a signal removes them before it exits: an interrupted download must
 * leave no partial file behind, just as a failed one does.
 *
 * A path is registered before the file is created, and its creation (which runs on the
 * runtime's I/O threads) is tracked until it settles: a signal can arrive between the two, and
 * a file created after the sweep would be left behind.
 */
import { randomBytes } from "node:crypto";
import { unlinkSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** How long a stopping process waits for creations under way before its last sweep. */
const CREATIONS_WAIT_MS = 2000;

const live = new Set<string>();
const creating = new Set<Promise<unknown>>();
let stopping = false;

function sweep() {
  for (const path of live) {
    try {
      unlinkSync(path);
    } catch {
      // not created yet, or already gone
    }
  }
}

/** A fresh temporary name beside `path`, hidden, that names what it is: `.NAME.RANDOM.dropbox-part`. */
export function tempPathBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(4).toString("hex")}.dropbox-part`);
}

/** The temporary files of this process that are not yet renamed into place or removed. */
export const tempFiles = {
  /**
   * Registers `path` and runs `create`, which may create the file (or write to it); tracked until
   * it settles. Once the process is stopping, nothing new is started.
   */
  async create<T>(path: string, create: () => Promise<T>): Promise<T> {
    if (stopping) throw new Error("the process is stopping");
    live.add(path);
    const made = create();
    creating.add(made);
    try {
      return await made;
    } finally {
      creating.delete(made);
    }
  },
  /** Forgets `path`: renamed into place, or removed. */
  delete(path: string): void {
    live.delete(path);
  },
  /** Removes every one, creations under way included (waited for, up to a bound); nothing is created after. */
  async removeAll(): Promise<void> {
    stopping = true;
    sweep();
    const deadline = Date.now() + CREATIONS_WAIT_MS;
    while (creating.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.allSettled([...creating]), new Promise((resolve) => setTimeout(resolve, deadline - Date.now()))]);
    }
    sweep();
    live.clear();
  },
};
