/**
 * Small new files made durable together (group commit, as databases commit transactions).
 * Each is written under a temporary name beside its destination with no fsync of its own;
 * a group is then made durable with one syncfs(2) per filesystem, renamed into place, and its
 * directories fsynced. As with fsync-then-rename, a destination name never points at bytes
 * that are not yet on disk, and a failure leaves no file behind under it.
 *
 * Why: a file's fsync costs a device flush, and the runtime runs file operations on as many
 * threads as there are cores, so on 2 cores two flushes were in flight at a time. 1000 files of
 * 4 KiB on this VM's ext4: 140 ms with an fsync each, 51 ms as one group.
 *
 * syncfs writes back everything dirty on the filesystem, other processes' writes included, and
 * it runs on this thread (bun:ffi): when more than `foreignDirtyLimitBytes` of those are
 * waiting, the group's files are fsynced one by one instead, and the group costs what they
 * always did; so are files on filesystems whose syncfs cannot be trusted (FUSE, network, old
 * kernels: core/syncfs.ts). The bound keeps the event loop's stall short: 16 MiB of others'
 * data, plus the group's own (at most 64 files under 256 KiB), at a slow disk's 100 MB/s.
 */
import { open, rename, stat, unlink, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { syncPath } from "./durable-file";
import { GROUP_COMMIT_MAX_FILES, UNCACHED_WRITE_MIN_BYTES } from "./limits";
import { Semaphore } from "./semaphore";
import { dirtyBytesSystemWide, syncFilesystem, syncfsTrusted } from "./syncfs";
import { tempFiles, tempPathBeside } from "./temp-files";

/** Other processes' dirty bytes above which a group is not synced with the whole filesystem. */
export const GROUP_COMMIT_FOREIGN_DIRTY_LIMIT_BYTES = 16 * 1024 * 1024;
/** Files or directories opened at once while a group is made durable: a deep tree must not exhaust descriptors. */
const OPEN_AT_ONCE = 8;

/** A file written under its temporary name, waiting for its group. */
interface Staged {
  tmp: string;
  path: string;
  bytes: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** How groups were made durable, for tests and reports. */
export interface GroupCommitStats {
  /** Groups flushed. */
  groups: number;
  /** Files made durable by a syncfs of their filesystem. */
  syncfsFiles: number;
  /** Files fsynced one by one. */
  fsyncFiles: number;
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function boundedEach<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const permits = new Semaphore(limit);
  await Promise.all(
    items.map(async (item) => {
      await permits.acquire();
      try {
        await fn(item);
      } finally {
        permits.release();
      }
    }),
  );
}

/** Whether a file of `size` bytes is made durable with a group: one that is not written past the page cache. */
export function joinsGroup(size: number): boolean {
  return size < UNCACHED_WRITE_MIN_BYTES;
}

/** Collects small files and makes them durable a group at a time; the owner says when (`flush`). */
export class GroupCommit {
  readonly stats: GroupCommitStats = { groups: 0, syncfsFiles: 0, fsyncFiles: 0 };
  private staged: Staged[] = [];
  private committing = 0;

  /**
   * @param onStaged called each time a file joins the group: the owner, which knows how many
   *   writers are still at work, flushes once they all wait here. A group of `maxFiles`
   *   is flushed at once.
   */
  constructor(
    private readonly onStaged: () => void = () => {},
    private readonly foreignDirtyLimitBytes = GROUP_COMMIT_FOREIGN_DIRTY_LIMIT_BYTES,
    private readonly maxFiles = GROUP_COMMIT_MAX_FILES,
  ) {}

  /** Files waiting for a flush, or in one under way. */
  get waiting(): number {
    return this.staged.length + this.committing;
  }

  /** Files waiting for a flush. */
  get pending(): number {
    return this.staged.length;
  }

  /**
   * Writes `data` as a new file at `path` (replacing one there) with `mode`; resolves once it
   * is durable under that name, after the flush of its group.
   */
  async write(path: string, data: Uint8Array, mode: number): Promise<void> {
    const tmp = tempPathBeside(path);
    await tempFiles.create(tmp, () => writeFile(tmp, data, { mode, flag: "wx" })).catch(async (err) => {
      await unlink(tmp).catch(() => {});
      tempFiles.delete(tmp);
      throw err;
    });
    return new Promise<void>((resolve, reject) => {
      this.staged.push({ tmp, path, bytes: data.byteLength, resolve, reject });
      if (this.staged.length >= this.maxFiles) this.flush();
      else this.onStaged();
    });
  }

  /** Makes the files staged so far durable under their names; each one's `write` then settles. */
  flush(): void {
    const group = this.staged;
    if (group.length === 0) return;
    this.staged = [];
    this.stats.groups++;
    this.committing += group.length;
    void this.commit(group);
  }

  private async commit(group: Staged[]): Promise<void> {
    const failed = new Map<Staged, unknown>();
    const fail = (files: Staged[], err: unknown) => files.forEach((f) => failed.has(f) || failed.set(f, err));
    const byDir = new Map<string, Staged[]>();
    for (const file of group) {
      const dir = dirname(file.path);
      const files = byDir.get(dir);
      if (files) files.push(file);
      else byDir.set(dir, [file]);
    }
    try {
      // 1. The bytes and the temporary names, on disk.
      await this.makeDurable(group, byDir, fail);
      // 2. Into place.
      await Promise.all(group.filter((f) => !failed.has(f)).map((f) => rename(f.tmp, f.path).catch((err) => fail([f], err))));
      // 3. The new names, on disk. A directory we may write but not read (mode 0300) cannot be
      // opened to be synced: its files stay as durable as renames were before groups.
      await boundedEach([...byDir], OPEN_AT_ONCE, ([dir, files]) =>
        syncPath(dir).catch((err) => {
          if ((err as NodeJS.ErrnoException).code !== "EACCES") fail(files, err);
        }),
      );
    } catch (err) {
      fail(group, err);
    }
    for (const file of group) {
      this.committing--;
      const err = failed.get(file);
      if (err === undefined) {
        tempFiles.delete(file.tmp);
        file.resolve();
        continue;
      }
      // Not renamed: the temporary file goes. Renamed but its directory not synced: the bytes
      // are whole and on disk, the name may not be; it stays, and the write is reported failed.
      await unlink(file.tmp).catch(() => {});
      tempFiles.delete(file.tmp);
      file.reject(err);
    }
  }

  /**
   * Step 1: the group's bytes and temporary names on disk. Files on a filesystem that syncfs can
   * be trusted on (core/syncfs.ts) get one syncfs per filesystem; the others, and all of them
   * while other processes have much waiting to be written, an fsync each.
   */
  private async makeDurable(group: Staged[], byDir: Map<string, Staged[]>, fail: (files: Staged[], err: unknown) => void): Promise<void> {
    const ownBytes = group.reduce((sum, f) => sum + f.bytes, 0);
    const dirty = dirtyBytesSystemWide();
    const oneByOne: Staged[] = [];
    if (dirty === null || dirty - ownBytes > this.foreignDirtyLimitBytes) oneByOne.push(...group);
    else {
      const byDevice = new Map<number, { dir: string; files: Staged[] }>();
      for (const [dir, files] of byDir) {
        const device = await stat(dir).then((s) => s.dev, (err) => (fail(files, err), null));
        if (device === null) continue;
        const entry = byDevice.get(device);
        if (entry) entry.files.push(...files);
        else byDevice.set(device, { dir, files: [...files] });
      }
      for (const { dir, files } of byDevice.values()) {
        const synced = await this.syncFilesystemOf(dir);
        if (synced === true) this.stats.syncfsFiles += files.length;
        else if (synced === false) fail(files, new Error(`syncfs failed on the filesystem holding ${dir}`));
        else oneByOne.push(...files);
      }
    }
    this.stats.fsyncFiles += oneByOne.length;
    await boundedEach(oneByOne, OPEN_AT_ONCE, (file) => syncPath(file.tmp).catch((err) => fail([file], err)));
  }

  /** One syncfs on the filesystem holding `dir`: true, false when it failed, null when not to be used there (or `dir` cannot be opened). */
  private async syncFilesystemOf(dir: string): Promise<boolean | null> {
    if (!(await syncfsTrusted(dir))) return null;
    const handle = await open(dir, "r").catch(() => null);
    if (!handle) return null; // unreadable (a write-only directory): the files are fsynced instead
    try {
      return syncFilesystem(handle.fd);
    } finally {
      await handle.close();
    }
  }
}
