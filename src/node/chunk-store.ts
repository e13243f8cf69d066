/**
 * Chunks on disk, each a file named by its id under a fan-out directory
 * (`chunks/ab/abcd…`). Writes are atomic and durable; every read is verified.
 */
import { mkdir, open, readdir, readFile, rename, rm, stat, statfs, unlink } from "node:fs/promises";
import { join } from "node:path";
import { assertChunkId, chunkIdOf } from "../core/chunk-id";
import { DropboxError, dataLoss, invalidArgument, notFound, resourceExhausted } from "../core/errors";

/** What the store holds, for heartbeats. */
export interface StoreUsage {
  chunkCount: number;
  usedBytes: number;
  capacityBytes: number;
  freeBytes: number;
}

const FANOUT = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** fsync a directory, so a rename into it survives a crash. */
async function syncDirectory(path: string) {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function isNoSpace(err: unknown) {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

/** A node's chunk files under one data directory. */
export class ChunkStore {
  private chunkCount = 0;
  private usedBytes = 0;
  private tmpSequence = 0;
  /** Puts of the same id run one after another, so counts stay exact. */
  private readonly putsInProgress = new Map<string, Promise<boolean>>();

  private constructor(
    private readonly root: string,
    private readonly log: (line: string) => void,
  ) {}

  private get chunksDir() {
    return join(this.root, "chunks");
  }
  private get tmpDir() {
    return join(this.root, "tmp");
  }
  private get quarantineDir() {
    return join(this.root, "quarantine");
  }

  /** Opens (creating if needed) the store under `root`, clears leftovers of interrupted writes and counts what it holds. */
  static async open(root: string, log: (line: string) => void): Promise<ChunkStore> {
    const store = new ChunkStore(root, log);
    await mkdir(root, { recursive: true, mode: 0o700 });
    await rm(store.tmpDir, { recursive: true, force: true });
    await mkdir(store.tmpDir, { mode: 0o700 });
    await mkdir(store.quarantineDir, { recursive: true, mode: 0o700 });
    await Promise.all(FANOUT.map((d) => mkdir(join(store.chunksDir, d), { recursive: true, mode: 0o700 })));
    for (const dir of FANOUT) {
      for (const name of await readdir(join(store.chunksDir, dir))) {
        const info = await stat(join(store.chunksDir, dir, name));
        store.chunkCount++;
        store.usedBytes += info.size;
      }
    }
    return store;
  }

  private pathOf(id: string) {
    return join(this.chunksDir, id.slice(0, 2), id);
  }

  /** Stores `data` under `id` after checking that the id is the bytes' SHA-256. Returns true when a verified copy was already there. */
  put(id: string, data: Uint8Array): Promise<boolean> {
    assertChunkId(id);
    if (data.byteLength === 0) throw invalidArgument("chunk is empty");
    const actual = chunkIdOf(data);
    if (actual !== id) throw invalidArgument(`chunk bytes do not match id ${id} (their SHA-256 is ${actual}); nothing stored`);
    const previous = this.putsInProgress.get(id) ?? Promise.resolve(false);
    const next = previous.catch(() => false).then(() => this.putVerified(id, data));
    this.putsInProgress.set(id, next);
    next.finally(() => {
      if (this.putsInProgress.get(id) === next) this.putsInProgress.delete(id);
    }).catch(() => {});
    return next;
  }

  private async putVerified(id: string, data: Uint8Array): Promise<boolean> {
    const finalPath = this.pathOf(id);
    const existing = await this.readVerified(id).catch(() => null);
    if (existing) return true;
    const tmpPath = join(this.tmpDir, `${id}.${process.pid}.${++this.tmpSequence}`);
    try {
      const handle = await open(tmpPath, "wx", 0o600);
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
      const replaced = await stat(finalPath).then((s) => s.size, () => null);
      await rename(tmpPath, finalPath);
      await syncDirectory(join(this.chunksDir, id.slice(0, 2)));
      if (replaced === null) this.chunkCount++;
      this.usedBytes += data.byteLength - (replaced ?? 0);
      return false;
    } catch (err) {
      await unlink(tmpPath).catch(() => {});
      if (isNoSpace(err)) throw resourceExhausted("node is out of disk space");
      throw err;
    }
  }

  /** Reads a chunk and verifies it; a copy that fails is moved aside and DATA_LOSS is thrown. */
  async get(id: string): Promise<Buffer> {
    assertChunkId(id);
    const data = await this.readVerified(id);
    if (!data) throw notFound(`chunk ${id} is not on this node`);
    return data;
  }

  /** The verified bytes, null when absent; quarantines and throws DATA_LOSS when corrupt. */
  private async readVerified(id: string): Promise<Buffer | null> {
    let data: Buffer;
    try {
      data = await readFile(this.pathOf(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
    if (chunkIdOf(data) === id) return data;
    await this.quarantine(id, data.byteLength);
    throw dataLoss(`chunk ${id} failed verification on this node and was quarantined`);
  }

  /** Moves a corrupt copy out of the serving path, keeping it for inspection. */
  private async quarantine(id: string, size: number) {
    const target = join(this.quarantineDir, `${id}.${Date.now()}`);
    try {
      await rename(this.pathOf(id), target);
      this.chunkCount--;
      this.usedBytes -= size;
      this.log(`quarantined corrupt chunk ${id} -> ${target}`);
    } catch (err) {
      if (!(err instanceof DropboxError) && (err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }

  /** Counts and disk space, for heartbeats. */
  async usage(): Promise<StoreUsage> {
    let capacityBytes = 0;
    let freeBytes = 0;
    try {
      const fs = await statfs(this.root);
      capacityBytes = fs.blocks * fs.bsize;
      freeBytes = fs.bavail * fs.bsize;
    } catch {
      // statfs unsupported: report unknown space rather than fail the heartbeat.
    }
    return { chunkCount: this.chunkCount, usedBytes: this.usedBytes, capacityBytes, freeBytes };
  }
}
