/**
 * Data dir ownership and exclusion. Two processes on one data dir (two nodes on one chunk
 * store, two masters on one metadata.db) corrupt each other's view of it, and a dir another
 * user owns can be changed under us: both are refused at start-up. Bun has no flock, so
 * the lock is a file created atomically (link of a written temp file) holding the holder's
 * pid and kernel start time; a lock whose holder is gone (SIGKILL, crash) is stale and taken over.
 */
import { linkSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { DropboxError, invalidArgument } from "./errors";

/** The lock file's name inside a data dir. */
export const LOCK_FILE_NAME = "dropbox.lock";

/** Attempts to take a lock whose holder is gone before giving up (another starter may race us for it). */
const TAKEOVER_ATTEMPTS = 5;

/** What a lock file records about its holder. */
interface Holder {
  pid: number;
  /** The holder's start time in clock ticks since boot (Linux), so a reused pid is not mistaken for it. */
  startTime: string | null;
}

/** A held data dir lock. */
export interface DirLock {
  readonly path: string;
  /** Removes the lock if it is still ours; idempotent. */
  release(): void;
}

/** A process's state and start time from /proc (Linux), or null where there is no /proc or no such process. */
function procStat(pid: number): { state: string; startTime: string } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid ...": comm may hold spaces and parens, so split after the last ')'.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0] ?? "", startTime: fields[19] ?? "" };
  } catch {
    return null;
  }
}

/** True when `holder` still runs: signal 0 reaches it (EPERM: it exists, as another user) and it is the same process. */
function isRunning(holder: Holder): boolean {
  // A container restarted on the same volume may give us the pid the old holder had.
  if (holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const stat = procStat(holder.pid);
  if (stat === null) return true;
  if (stat.state === "Z" || stat.state === "X") return false;
  return holder.startTime === null || stat.startTime === holder.startTime;
}

function parseHolder(text: string): Holder | null {
  try {
    const value = JSON.parse(text) as { pid?: unknown; startTime?: unknown };
    if (!Number.isSafeInteger(value.pid) || (value.pid as number) <= 0) return null;
    return { pid: value.pid as number, startTime: typeof value.startTime === "string" ? value.startTime : null };
  } catch {
    return null;
  }
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/** Refuses a data dir owned by another user: its contents could be changed behind our back. */
export function assertOwnDir(dir: string): void {
  const me = process.getuid?.();
  if (me === undefined) return;
  const owner = statSync(dir).uid;
  if (owner !== me) throw invalidArgument(`data dir ${resolve(dir)} is owned by uid ${owner}, not by this user (uid ${me}); refusing to use it`);
}

/**
 * Takes the data dir's lock for the life of this process, or throws UNAVAILABLE naming the dir
 * and the pid that holds it. A lock left by a process that is gone is taken over. The lock is
 * removed by `release()` and, failing that, when the process exits.
 */
export function lockDataDir(dir: string): DirLock {
  const path = join(dir, LOCK_FILE_NAME);
  const content = `${JSON.stringify({ pid: process.pid, startTime: procStat(process.pid)?.startTime ?? null })}\n`;
  // Written in full under a private name, then linked into place: link fails if a lock exists,
  // and a lock is never seen half-written.
  const temp = join(dir, `${LOCK_FILE_NAME}.${process.pid}.tmp`);
  writeFileSync(temp, content, { mode: 0o600 });
  try {
    let held = false;
    for (let attempt = 0; !held && attempt < TAKEOVER_ATTEMPTS; attempt++) {
      try {
        linkSync(temp, path);
        held = true;
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const seen = readOrNull(path);
      if (seen === null) continue;
      const holder = parseHolder(seen);
      if (holder && isRunning(holder)) {
        throw new DropboxError("UNAVAILABLE", `data dir ${resolve(dir)} is in use by another process (pid ${holder.pid}, lock ${resolve(path)})`);
      }
      // Stale. Move it aside rather than unlink it, so a fresh lock another starter linked
      // meanwhile is not removed by mistake: if what we moved is not what we judged, put it back.
      const aside = `${temp}.stale`;
      try {
        renameSync(path, aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw err;
      }
      if (readOrNull(aside) !== seen) {
        try {
          linkSync(aside, path);
        } catch {
          // Someone else holds the lock now; the next attempt finds it.
        }
      }
      unlinkSync(aside);
    }
    if (!held) throw new DropboxError("UNAVAILABLE", `data dir ${resolve(dir)}: cannot take over the stale lock ${resolve(path)}`);
  } finally {
    unlinkSync(temp);
  }

  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off("exit", release);
    try {
      if (readOrNull(path) === content) unlinkSync(path);
    } catch {
      // Gone already, or the dir with it: nothing to release.
    }
  };
  process.on("exit", release);
  return { path, release };
}
