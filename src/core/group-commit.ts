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
 * syncfs writes back everything dirty on the filesystem, other processes' writes included: when
 * more than `foreignDirtyLimitBytes` of those are waiting, or where syncfs is missing, the
 * group's files are fsynced one by one instead, and the group costs what they always did.
 */
import { randomBytes } from "node:crypto";
import { open, rename, stat, unlink, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { GROUP_COMMIT_MAX_FILES } from "./limits";
import { Semaphore } from "./semaphore";
import { dirtyBytesSystemWide, syncFilesystem } from "./syncfs";
import { tempFiles } from "./temp-files";

/** Other processes' dirty bytes above which a group is not synced with the whole filesystem. */
export const GROUP_COMMIT_FOREIGN_DIRTY_LIMIT_BYTES = 64 * 1024 * 1024;
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
  /** Groups made durable with syncfs. */
  syncfsGroups: number;
  /** Groups whose files were fsynced one by one. */
  fsyncGroups: number;
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

async function syncPath(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Collects small files and makes them durable a group at a time; the owner says when (`flush`). */
export class GroupCommit {
  readonly stats: GroupCommitStats = { syncfsGroups: 0, fsyncGroups: 0 };
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
    const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString("hex")}.dropbox-part`);
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
    this.committing += group.length;
    void this.commit(group);
  }

  private async commit(group: Staged[]): Promise<void> {
    const failed = new Map<Staged, unknown>();
    const fail = (files: Staged[], err: unknown) => files.forEach((f) => failed.has(f) || failed.set(f, err));
    const byDir = new Map<string, Staged[]>();
    for (const file of group) {
      const dir = dirname(file.path);
      byDir.set(dir, [...(byDir.get(dir) ?? []), file]);
    }
    try {
      // 1. The bytes and the temporary names, on disk.
      await this.makeDurable(group, byDir, fail);
      // 2. Into place.
      await Promise.all(group.filter((f) => !failed.has(f)).map((f) => rename(f.tmp, f.path).catch((err) => fail([f], err))));
      // 3. The new names, on disk.
      await boundedEach([...byDir], OPEN_AT_ONCE, ([dir, files]) => syncPath(dir).catch((err) => fail(files, err)));
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

  /** Step 1: one syncfs per filesystem the group lies on, or an fsync per file. */
  private async makeDurable(group: Staged[], byDir: Map<string, Staged[]>, fail: (files: Staged[], err: unknown) => void): Promise<void> {
    const ownBytes = group.reduce((sum, f) => sum + f.bytes, 0);
    const dirty = dirtyBytesSystemWide();
    if (dirty !== null && dirty - ownBytes <= this.foreignDirtyLimitBytes) {
      const byDevice = new Map<number, { dir: string; files: Staged[] }>();
      for (const [dir, files] of byDir) {
        const device = await stat(dir).then((s) => s.dev, (err) => (fail(files, err), null));
        if (device === null) continue;
        const entry = byDevice.get(device);
        if (entry) entry.files.push(...files);
        else byDevice.set(device, { dir, files: [...files] });
      }
      let synced = true;
      for (const { dir, files } of byDevice.values()) {
        const handle = await open(dir, "r");
        try {
          const done = syncFilesystem(handle.fd);
          if (done === null) synced = false;
          else if (!done) fail(files, new Error(`syncfs failed on the filesystem holding ${dir}`));
        } finally {
          await handle.close();
        }
        if (!synced) break;
      }
      if (synced) {
        this.stats.syncfsGroups++;
        return;
      }
    }
    this.stats.fsyncGroups++;
    await boundedEach(group, OPEN_AT_ONCE, (file) => syncPath(file.tmp).catch((err) => fail([file], err)));
  }
}
