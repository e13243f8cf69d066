/**
 * Chunks on disk: small ones packed into append-only pack files (pack-store.ts), the others
 * each a file named by its id under a fan-out directory (`chunks/ab/abcd…`). Writes are
 * verified, atomic and durable; reads return the bytes as stored, for the reader to verify,
 * and `verify` re-hashes and quarantines.
 */
import { mkdir, readdir, rename, rm, stat, statfs, unlink, utimes } from "node:fs/promises";
import { join } from "node:path";
import { assertChunkId, chunkIdOfAsync } from "../core/chunk-id";
import type { ChunkRef } from "../rpc/messages";
import { DropboxError, dataLoss, invalidArgument, notFound, resourceExhausted } from "../core/errors";
import { MAX_CHUNK_SIZE_BYTES, PACKED_CHUNK_BELOW_BYTES } from "../core/limits";
import { readWholeFile } from "../core/uncached-read";
import { DurableFile, syncPath } from "../core/durable-file";
import { PACK_RECORD_HEADER_BYTES, PackStore } from "./pack-store";

/** What the store holds, for heartbeats. */
export interface StoreUsage {
  chunkCount: number;
  usedBytes: number;
  capacityBytes: number;
  freeBytes: number;
}

const FANOUT = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const FANOUT_NAME = /^[0-9a-f]{2}$/;

/** Writes a new file and fsyncs it (large ones past the page cache). */
async function writeDurably(path: string, data: Uint8Array) {
  const file = await DurableFile.create(path, 0o600, data.byteLength);
  try {
    await file.append(data);
    await file.commit();
  } finally {
    await file.close();
  }
}

/** A directory listing's failure when the directory is gone: nothing in it. */
function ignoreMissing(err: NodeJS.ErrnoException): string[] {
  if (err.code === "ENOENT") return [];
  throw err;
}

function isNoSpace(err: unknown) {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

/** How a store behaves. */
export interface ChunkStoreOptions {
  log: (line: string) => void;
  /** Called with the id of every copy the store loses (quarantined), so the master can repair it. */
  onLost?: (id: string) => void;
  /** Bytes the chunks may take on disk (0: the whole disk). */
  capacityLimitBytes?: number;
  /** Re-hash every chunk before serving it, as well as the reader does after receiving it. */
  verifyReads?: boolean;
}

/** A chunk's copy as read: its bytes, its size on disk, and whether it lives in a pack. */
interface StoredCopy {
  data: Buffer;
  size: number;
  packed: boolean;
}

/** A node's chunks under one data directory: small ones packed, the others a file each. */
export class ChunkStore {
  private chunkCount = 0;
  /** Bytes of puts under way, held against the capacity until they are counted. */
  private reservedBytes = 0;
  private usedBytes = 0;
  private tmpSequence = 0;
  /** Puts of the same id run one after another, so counts stay exact. */
  private readonly putsInProgress = new Map<string, Promise<boolean>>();
  /**
   * The fan-out directories under chunks/ that exist (or are being made), by prefix. They are
   * made on first use, not all 256 at start-up: a node holding only packed chunks then has
   * none, starting a node costs 256 fewer mkdirs, and removing a node's data dir frees 256
   * fewer inodes (on ext4 without a journal, inodes freed in the last minute are skipped one
   * by one by every file created in their group for a minute or more).
   */
  private readonly fanoutDirs = new Map<string, Promise<void>>();

  private constructor(
    private readonly root: string,
    private readonly packs: PackStore,
    private readonly log: (line: string) => void,
    /** Called with the id of every copy this store loses (quarantined), so the master can repair it. */
    private readonly onLost: (id: string) => void,
    /** Bytes this node may hold, when capped below the disk's size (0: the disk's size). */
    private readonly capacityLimitBytes: number,
    /** Re-hash every chunk before serving it (`--verify-reads`), rather than leave that to the reader. */
    private readonly verifyReads: boolean,
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
  static async open(root: string, options: ChunkStoreOptions): Promise<ChunkStore> {
    const { log, onLost = () => {}, capacityLimitBytes = 0, verifyReads = false } = options;
    await mkdir(root, { recursive: true, mode: 0o700 });
    const store = new ChunkStore(root, await PackStore.open(join(root, "packs"), log), log, onLost, capacityLimitBytes, verifyReads);
    await rm(store.tmpDir, { recursive: true, force: true });
    await mkdir(store.tmpDir, { mode: 0o700 });
    await mkdir(store.quarantineDir, { recursive: true, mode: 0o700 });
    await mkdir(store.chunksDir, { recursive: true, mode: 0o700 });
    for (const dir of (await readdir(store.chunksDir)).filter((name) => FANOUT_NAME.test(name))) {
      store.fanoutDirs.set(dir, Promise.resolve());
      for (const name of await readdir(join(store.chunksDir, dir))) {
        const info = await stat(join(store.chunksDir, dir, name));
        store.chunkCount++;
        store.usedBytes += info.size;
      }
    }
    const packed = store.packs.totals();
    store.chunkCount += packed.count;
    store.usedBytes += packed.bytes;
    return store;
  }

  private pathOf(id: string) {
    return join(this.chunksDir, id.slice(0, 2), id);
  }

  /**
   * Makes the fan-out directory for `id` if it is not there yet, durably: a chunk renamed into
   * it must not be lost with the directory's own entry in a crash.
   */
  private fanoutDirFor(id: string): Promise<void> {
    const prefix = id.slice(0, 2);
    let made = this.fanoutDirs.get(prefix);
    if (!made) {
      made = mkdir(join(this.chunksDir, prefix), { mode: 0o700 })
        .catch((err: NodeJS.ErrnoException) => {
          if (err.code !== "EEXIST") throw err;
        })
        .then(() => syncPath(this.chunksDir));
      const attempt = made;
      // A failed attempt (disk full) is not remembered: the next put tries again.
      attempt.catch(() => {
        if (this.fanoutDirs.get(prefix) === attempt) this.fanoutDirs.delete(prefix);
      });
      this.fanoutDirs.set(prefix, made);
    }
    return made;
  }

  /**
   * Stores `data` under `id` once the id is known to be the bytes' SHA-256. Returns true when
   * a verified copy was already there.
   *
   * `vouched` resolves true when the bytes are known to hash to the id: the next node of a chain
   * stored these very bytes, and it accepts only bytes whose hash is the id (or that its own
   * next node vouched for), so hashing them here too would only repeat its work (HDFS verifies
   * at the pipeline's end for the same reason); or the caller hashed them itself. Large chunks are then written while the chain works and committed on its word;
   * without it (the next node failed, or there is none) they are hashed here. Nothing is
   * acknowledged before one of the two.
   */
  async put(id: string, data: Uint8Array, vouched?: Promise<boolean>): Promise<boolean> {
    assertChunkId(id);
    if (data.byteLength === 0) throw invalidArgument("chunk is empty");
    const checkOwn = async () => {
      const actual = await chunkIdOfAsync(data);
      if (actual !== id) throw invalidArgument(`chunk bytes do not match id ${id} (their SHA-256 is ${actual}); nothing stored`);
    };
    // Small chunks hash in microseconds on this thread: not worth waiting on the chain for.
    let verified: Promise<void>;
    if (vouched && data.byteLength >= PACKED_CHUNK_BELOW_BYTES) {
      verified = vouched.then((ok) => (ok ? undefined : checkOwn()));
      verified.catch(() => {}); // awaited by the put below; do not report it unhandled meanwhile
    } else {
      await checkOwn();
      verified = Promise.resolve();
    }
    const previous = this.putsInProgress.get(id) ?? Promise.resolve(false);
    const next = previous.catch(() => false).then(() => this.putVerified(id, data, verified));
    this.putsInProgress.set(id, next);
    next.finally(() => {
      if (this.putsInProgress.get(id) === next) this.putsInProgress.delete(id);
    }).catch(() => {});
    return next;
  }

  /** Stores a chunk whose bytes are `verified` (or will be: the commit waits for it). */
  private async putVerified(id: string, data: Uint8Array, verified: Promise<void>): Promise<boolean> {
    const existingSize = await this.verify(id).catch(() => null);
    if (existingSize !== null) {
      await verified;
      // Re-sent: mark it fresh so a garbage collection racing with this upload keeps it.
      if (this.packs.lookup(id)) this.packs.touch(id);
      else await utimes(this.pathOf(id), new Date(), new Date()).catch(() => {});
      return true;
    }
    const packed = data.byteLength < PACKED_CHUNK_BELOW_BYTES;
    // Reserved before the write and counted after it: concurrent puts (a batch) cannot all pass
    // the check against the same count and overfill the node together.
    const reservation = data.byteLength + (packed ? PACK_RECORD_HEADER_BYTES : 0);
    if (this.capacityLimitBytes > 0 && this.diskBytes() + this.reservedBytes + reservation > this.capacityLimitBytes) {
      throw resourceExhausted(`node is full (capacity ${this.capacityLimitBytes} bytes)`);
    }
    this.reservedBytes += reservation;
    try {
      const replaced = packed ? await this.putPacked(id, data, verified) : await this.putFile(id, data, verified);
      if (replaced === null) this.chunkCount++;
      this.usedBytes += data.byteLength - (replaced ?? 0);
      return false;
    } catch (err) {
      if (isNoSpace(err)) throw resourceExhausted("node is out of disk space");
      throw err;
    } finally {
      this.reservedBytes -= reservation;
    }
  }

  /** Appends a small chunk to the current pack; returns the size of a copy it replaced. */
  private async putPacked(id: string, data: Uint8Array, verified: Promise<void>): Promise<number | null> {
    await verified;
    const replaced = this.packs.lookup(id)?.size ?? null;
    await this.packs.put(id, data);
    return replaced;
  }

  /**
   * Writes a chunk file: temp file, fsync, rename once `verified`, fsync the directory; returns
   * the size of a file it replaced.
   */
  private async putFile(id: string, data: Uint8Array, verified: Promise<void>): Promise<number | null> {
    const finalPath = this.pathOf(id);
    const tmpPath = join(this.tmpDir, `${id}.${process.pid}.${++this.tmpSequence}`);
    try {
      // Both settle before anything is cleaned up: a failed check must not race the write.
      const [written, checked, dir] = await Promise.allSettled([writeDurably(tmpPath, data), verified, this.fanoutDirFor(id)]);
      if (written.status === "rejected") throw written.reason;
      if (checked.status === "rejected") throw checked.reason;
      if (dir.status === "rejected") throw dir.reason;
      const replaced = await stat(finalPath).then((s) => s.size, () => null);
      await rename(tmpPath, finalPath);
      await syncPath(join(this.chunksDir, id.slice(0, 2)));
      return replaced;
    } catch (err) {
      await unlink(tmpPath).catch(() => {});
      throw err;
    }
  }

  /**
   * The chunk's bytes as stored, not re-hashed: every reader hashes what it receives, and a
   * reader that finds a mismatch says so through `verify`, which quarantines the copy (HDFS's
   * model; re-hashing here too cost nodes half their CPU on downloads), unless the store was
   * opened with `verifyReads`. A copy that cannot be good by its size or its pack record alone
   * is quarantined here. `headroom` bytes are left free before the data in its buffer (for a
   * caller's headers).
   */
  async get(id: string, headroom = 0): Promise<Buffer> {
    assertChunkId(id);
    const stored = await this.read(id, headroom);
    if (!stored) throw notFound(`chunk ${id} is not on this node`);
    if (stored.data.byteLength === 0 || (this.verifyReads && (await chunkIdOfAsync(stored.data)) !== id)) await this.failVerification(id, stored);
    return stored.data;
  }

  /** Re-reads and re-hashes one chunk; returns its size, or null when it is gone. A bad copy is quarantined (DATA_LOSS). */
  async verify(id: string): Promise<number | null> {
    const stored = await this.read(id, 0);
    if (!stored) return null;
    if (stored.data.byteLength > 0 && (await chunkIdOfAsync(stored.data)) === id) return stored.data.byteLength;
    return this.failVerification(id, stored);
  }

  /** The chunk's bytes, from its pack or its file, null when absent; a copy that cannot be good reads as empty. */
  private async read(id: string, headroom: number): Promise<StoredCopy | null> {
    const packed = await this.packs.read(id, headroom);
    if (packed) return { ...packed, packed: true };
    try {
      // Nothing this store wrote is larger; a file that is cannot be a good copy, and is not read whole.
      const { data, size } = await readWholeFile(this.pathOf(id), headroom, MAX_CHUNK_SIZE_BYTES);
      return { data: data ?? Buffer.alloc(0), size, packed: false };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  private async failVerification(id: string, copy: StoredCopy): Promise<never> {
    await this.quarantine(id, copy);
    throw dataLoss(`chunk ${id} failed verification on this node and was quarantined`);
  }

  /** Moves a corrupt copy out of the serving path, keeping it for inspection. */
  private async quarantine(id: string, copy: StoredCopy) {
    const target = join(this.quarantineDir, `${id}.${Date.now()}`);
    try {
      if (copy.packed) {
        // The record's bytes as read go aside; forgetting the row takes it out of the pack.
        await writeDurably(target, copy.data);
        if (this.packs.removeWhere([id], () => true).removed.size === 0) return;
      } else {
        await rename(this.pathOf(id), target);
      }
      this.chunkCount--;
      this.usedBytes -= copy.size;
      this.log(`quarantined corrupt chunk ${id} -> ${target}`);
      this.onLost(id);
    } catch (err) {
      if (!(err instanceof DropboxError) && (err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }

  /** Up to `limit` chunks after `startAfter`, in id order: files and packed chunks merged. */
  async list(startAfter: string, limit: number): Promise<{ chunks: ChunkRef[]; truncated: boolean }> {
    const files = await this.listFiles(startAfter, limit);
    const packed = this.packs.list(startAfter, limit);
    if (packed.length === 0) return files;
    const merged = [...files.chunks, ...packed].sort((a, b) => (a.chunkId < b.chunkId ? -1 : a.chunkId > b.chunkId ? 1 : 0));
    return { chunks: merged.slice(0, limit), truncated: merged.length > limit || files.truncated || packed.length === limit };
  }

  private async listFiles(startAfter: string, limit: number): Promise<{ chunks: ChunkRef[]; truncated: boolean }> {
    const chunks: ChunkRef[] = [];
    for (const dir of FANOUT) {
      if (dir < startAfter.slice(0, 2) || !this.fanoutDirs.has(dir)) continue;
      const names = (await readdir(join(this.chunksDir, dir)).catch(ignoreMissing)).filter((n) => n > startAfter).sort();
      for (const name of names) {
        if (chunks.length === limit) return { chunks, truncated: true };
        const size = await stat(join(this.chunksDir, dir, name)).then((s) => s.size, () => null);
        if (size !== null) chunks.push({ chunkId: name, size });
      }
    }
    return { chunks, truncated: false };
  }

  /**
   * Deletes chunks, except those written or re-sent within `keepIfWrittenWithinMs` (by this
   * node's clock): an upload may be about to reference them. Absent chunks count as deleted.
   */
  async delete(ids: string[], keepIfWrittenWithinMs: number): Promise<{ deleted: string[]; kept: string[] }> {
    const deleted: string[] = [];
    const kept: string[] = [];
    const touchedDirs = new Set<string>();
    for (const id of ids) assertChunkId(id);
    // Packed chunks first, judged and removed in one synchronous step: no put can slip in between.
    const now = Date.now();
    const packed = this.packs.removeWhere(ids, (id, at) => !this.putsInProgress.has(id) && now - at.writtenAtMs >= keepIfWrittenWithinMs);
    for (const id of ids) {
      const removedSize = packed.removed.get(id);
      if (removedSize !== undefined) {
        packed.removed.delete(id); // counted once, even if named twice
        this.chunkCount--;
        this.usedBytes -= removedSize;
        deleted.push(id);
        continue;
      }
      if (packed.kept.has(id) || this.putsInProgress.has(id)) {
        kept.push(id);
        continue;
      }
      const path = this.pathOf(id);
      const info = await stat(path).catch(() => null);
      if (!info) {
        deleted.push(id);
        continue;
      }
      if (Date.now() - info.mtimeMs < keepIfWrittenWithinMs) {
        kept.push(id);
        continue;
      }
      await unlink(path);
      this.chunkCount--;
      this.usedBytes -= info.size;
      touchedDirs.add(id.slice(0, 2));
      deleted.push(id);
    }
    for (const dir of touchedDirs) await syncPath(join(this.chunksDir, dir));
    return { deleted, kept };
  }

  /** What the chunks take on disk: their bytes, plus the packs' record headers and garbage. */
  private diskBytes(): number {
    return this.usedBytes + this.packs.overheadBytes;
  }

  /** Lets queued pack writes and a running compaction finish, then closes the pack index. */
  async close() {
    await this.packs.close();
  }

  /** Counts and disk space, for heartbeats; a capacity limit caps both. */
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
    if (this.capacityLimitBytes > 0) {
      capacityBytes = this.capacityLimitBytes;
      freeBytes = Math.max(0, Math.min(freeBytes || Infinity, this.capacityLimitBytes - this.diskBytes() - this.reservedBytes));
    }
    // Used is what the chunks take on disk, as `du` would see it: packs' headers and garbage included.
    return { chunkCount: this.chunkCount, usedBytes: this.diskBytes(), capacityBytes, freeBytes };
  }
}
