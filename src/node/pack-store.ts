/**
 * Small chunks packed into append-only pack files, indexed in SQLite: Haystack's and
 * SeaweedFS's answer to small objects.
 *
 * A file per 4 KiB chunk costs an inode, a rename and two fsyncs (the file's and its
 * directory's). On the ext4 we measure on, creating the inode alone took 0.25-0.3 ms of kernel
 * time, and a node spent about 0.4 ms of CPU per small chunk, most of it in the kernel. Here
 * puts that arrive together are appended to the current pack as one write and made durable
 * together: one fsync of the pack and one SQLite commit per group, whatever its size.
 *
 * A record is the chunk's id (32 bytes), its length (u32 LE), then its bytes, so a pack can
 * be read without its index and a read checks that it landed on the record it meant. The
 * index (`packs.sqlite`: id -> pack, offset, size, when last written) is the truth: bytes no
 * row points at are garbage (a group cut short by a crash, deleted chunks) and compaction
 * reclaims them. A sealed pack less than half live has its live records copied to the
 * current pack, and is then removed; a pack with none is removed at once.
 */
import { Database } from "bun:sqlite";
import { mkdir, open, readdir, stat, unlink, type FileHandle } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { readFully, writeFully } from "../core/positioned-io";
import { chunkIdOf } from "../core/chunk-id";
import { PACKED_CHUNK_BELOW_BYTES } from "../core/limits";
import { syncPath } from "../core/durable-file";

/** The record header: the chunk id's 32 bytes, then the length as u32 LE. */
export const PACK_RECORD_HEADER_BYTES = 36;
/** A pack past this size is sealed and a new one started: bounds what one compaction copies and holds. */
const DEFAULT_SEAL_BYTES = 64 * 1024 * 1024;
/** Bytes one group (one write, one fsync, one commit) carries at most. */
const GROUP_MAX_BYTES = 16 * 1024 * 1024;
/** A sealed pack with less than this share of its bytes live is compacted. */
const COMPACT_BELOW_LIVE_SHARE = 0.5;

/** Where a packed chunk lives. */
export interface PackedChunk {
  pack: number;
  /** Of the record (its header), in the pack. */
  offset: number;
  size: number;
  writtenAtMs: number;
}

interface Pending {
  id: string;
  data: Uint8Array;
  writtenAtMs: number;
  /** Compaction: the row is moved only if it still points here (a delete may have won). */
  movingFrom?: { pack: number; offset: number };
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Records a chunk's place, replacing any row it had: puts, and the rebuild of a lost index. */
const UPSERT_ROW_SQL = "INSERT INTO packed (chunk_id, pack, offset, size, written_at_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (chunk_id) DO UPDATE SET pack = excluded.pack, offset = excluded.offset, size = excluded.size, written_at_ms = excluded.written_at_ms";

const packName = (pack: number) => `${String(pack).padStart(8, "0")}.pack`;

/** Read handles kept open per pack, at most this many: reads skip an open and a close each. */
const OPEN_READERS_MAX = 32;

/**
 * Open read handles by pack, least recently used closed first. A handle in use is closed
 * when its last reader is done, so eviction and compaction never close one under a read.
 */
class PackReaders {
  private readonly open = new Map<number, { handle: Promise<FileHandle>; users: number; retired: boolean }>();

  constructor(private readonly pathOf: (pack: number) => string) {}

  async use<T>(pack: number, f: (handle: FileHandle) => Promise<T>): Promise<T> {
    let entry = this.open.get(pack);
    if (entry) this.open.delete(pack); // re-inserted below: most recently used
    else {
      entry = { handle: open(this.pathOf(pack), "r"), users: 0, retired: false };
      entry.handle.catch(() => {});
    }
    this.open.set(pack, entry);
    for (const [oldest] of this.open) {
      if (this.open.size <= OPEN_READERS_MAX) break;
      this.retire(oldest);
    }
    entry.users++;
    try {
      return await f(await entry.handle);
    } catch (err) {
      // A pack that failed to open (compacted away meanwhile) must not stay cached.
      if (this.open.get(pack) === entry) this.retire(pack);
      throw err;
    } finally {
      entry.users--;
      if (entry.retired && entry.users === 0) void entry.handle.then((h) => h.close()).catch(() => {});
    }
  }

  /** Drops a pack's handle, closing it now or once its readers are done. */
  retire(pack: number) {
    const entry = this.open.get(pack);
    if (!entry) return;
    this.open.delete(pack);
    entry.retired = true;
    if (entry.users === 0) void entry.handle.then((h) => h.close()).catch(() => {});
  }

  retireAll() {
    for (const pack of [...this.open.keys()]) this.retire(pack);
  }
}

/** Bytes read at a time when scanning a pack for its records. */
const SCAN_WINDOW_BYTES = 4 * 1024 * 1024;

/**
 * The records of one pack, front to back, as far as they parse: a length that no record can
 * have ends the scan (a torn tail, or garbage past the last group).
 */
async function* packRecords(path: string): AsyncGenerator<{ offset: number; id: string; data: Buffer }> {
  const handle = await open(path, "r");
  try {
    const size = (await handle.stat()).size;
    const window = Buffer.allocUnsafe(SCAN_WINDOW_BYTES);
    let position = 0;
    while (position + PACK_RECORD_HEADER_BYTES <= size) {
      const got = await readFully(handle, window, position);
      let at = 0;
      while (at + PACK_RECORD_HEADER_BYTES <= got) {
        const length = window.readUInt32LE(at + 32);
        if (length === 0 || length >= PACKED_CHUNK_BELOW_BYTES) return;
        if (at + PACK_RECORD_HEADER_BYTES + length > got) break; // runs past the window: read on from here
        yield { offset: position + at, id: window.toString("hex", at, at + 32), data: window.subarray(at + PACK_RECORD_HEADER_BYTES, at + PACK_RECORD_HEADER_BYTES + length) };
        at += PACK_RECORD_HEADER_BYTES + length;
      }
      if (at === 0) return; // the file ends inside a record
      position += at;
    }
  } finally {
    await handle.close();
  }
}

/**
 * Indexes every record whose bytes hash to its id, later copies (compaction's) over earlier
 * ones. Chunks deleted before the index was lost come back too: their nodes hold them as
 * orphans, which the master's garbage collection deletes again.
 */
async function rebuildIndex(dir: string, db: Database, packs: number[], log: (line: string) => void) {
  const upsert = db.query(UPSERT_ROW_SQL);
  // Written "now": a garbage collection that keeps recent writes keeps these until the master has seen them.
  const now = Date.now();
  let indexed = 0;
  let skipped = 0;
  for (const pack of packs) {
    const rows: [string, number, number, number, number][] = [];
    for await (const record of packRecords(join(dir, packName(pack)))) {
      if (chunkIdOf(record.data) === record.id) rows.push([record.id, pack, record.offset, record.data.byteLength, now]);
      else skipped++;
    }
    db.transaction(() => {
      for (const row of rows) upsert.run(...row);
    })();
    indexed += rows.length;
  }
  log(`pack index missing: rebuilt from ${packs.length} packs, ${indexed} chunk records indexed, ${skipped} that failed verification left out`);
}

export class PackStore {
  private readonly queue: Pending[] = [];
  private flushing = false;
  private compaction: Promise<void> | null = null;
  private readonly sparse = new Set<number>();
  /** Chunks packed and their bytes (their rows), kept as rows change, and the packs on disk but the current one. */
  private liveCount = 0;
  private liveBytes = 0;
  private sealedBytes = 0;
  private readonly readers = new PackReaders((pack) => join(this.dir, packName(pack)));
  private readonly statements;

  private constructor(
    private readonly dir: string,
    private readonly db: Database,
    /** The pack being appended to, and its length. */
    private active: { pack: number; handle: FileHandle; size: number },
    private readonly log: (line: string) => void,
    private readonly sealBytes: number,
  ) {
    this.statements = {
      lookup: db.query<{ pack: number; offset: number; size: number; writtenAtMs: number }, [string]>("SELECT pack, offset, size, written_at_ms AS writtenAtMs FROM packed WHERE chunk_id = ?"),
      upsert: db.query(UPSERT_ROW_SQL),
      move: db.query("UPDATE packed SET pack = ?, offset = ? WHERE chunk_id = ? AND pack = ? AND offset = ?"),
      remove: db.query("DELETE FROM packed WHERE chunk_id = ?"),
      touch: db.query("UPDATE packed SET written_at_ms = ? WHERE chunk_id = ?"),
      list: db.query<{ chunkId: string; size: number }, [string, number]>("SELECT chunk_id AS chunkId, size FROM packed WHERE chunk_id > ? ORDER BY chunk_id LIMIT ?"),
      live: db.query<{ count: number; bytes: number }, [number]>(`SELECT COUNT(*) AS count, COALESCE(SUM(size + ${PACK_RECORD_HEADER_BYTES}), 0) AS bytes FROM packed WHERE pack = ?`),
      inPack: db.query<{ chunkId: string; offset: number; size: number; writtenAtMs: number }, [number]>("SELECT chunk_id AS chunkId, offset, size, written_at_ms AS writtenAtMs FROM packed WHERE pack = ? ORDER BY offset"),
    };
  }

  /** Opens (creating if needed) the packs under `dir`; removes packs no row points into. */
  static async open(dir: string, log: (line: string) => void, sealBytes = DEFAULT_SEAL_BYTES): Promise<PackStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const indexPath = join(dir, "packs.sqlite");
    const indexExisted = existsSync(indexPath);
    const db = new Database(indexPath, { create: true, strict: true });
    // FULL: a put is acknowledged only once its row is durable (the row is what finds the bytes).
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;");
    db.exec(`CREATE TABLE IF NOT EXISTS packed (
      chunk_id TEXT PRIMARY KEY, pack INTEGER NOT NULL, offset INTEGER NOT NULL,
      size INTEGER NOT NULL, written_at_ms INTEGER NOT NULL) WITHOUT ROWID`);
    db.exec("CREATE INDEX IF NOT EXISTS packed_by_pack ON packed (pack, offset)");
    const packs = (await readdir(dir)).filter((n) => /^\d{8}\.pack$/.test(n)).map((n) => Number(n.slice(0, 8))).sort((a, b) => a - b);
    // Packs without their index (lost, or moved aside because it was damaged): the records say
    // what they hold, so the index is rebuilt from them rather than the packs taken for garbage.
    if (!indexExisted && packs.length > 0) await rebuildIndex(dir, db, packs, log);
    const referenced = new Set((db.query("SELECT DISTINCT pack FROM packed").all() as { pack: number }[]).map((r) => r.pack));
    const last = packs.at(-1) ?? 0;
    for (const pack of packs) if (pack !== last && !referenced.has(pack)) await unlink(join(dir, packName(pack)));
    // Appends go after whatever the last pack holds, garbage included: a row never points past it.
    const pack = Math.max(last, 1);
    // Not "a": with O_APPEND, Linux ignores the position of a positioned write.
    const path = join(dir, packName(pack));
    const handle = await open(path, last === 0 ? "wx+" : "r+", 0o600);
    const size = (await handle.stat()).size;
    const store = new PackStore(dir, db, { pack, handle, size }, log, sealBytes);
    if (last === 0) await store.syncDir();
    for (const p of referenced) {
      if (p === pack) continue;
      store.sparse.add(p);
      store.sealedBytes += (await stat(join(dir, packName(p)))).size;
    }
    const live = db.query("SELECT COUNT(*) AS count, COALESCE(SUM(size), 0) AS bytes FROM packed").get() as { count: number; bytes: number };
    store.liveCount = live.count;
    store.liveBytes = live.bytes;
    void store.compact();
    return store;
  }

  /**
   * Bytes the packs take on disk beyond the chunks' own: record headers and garbage not yet
   * compacted away. A node's capacity has to count them; at most about the live bytes again.
   */
  get overheadBytes(): number {
    return this.sealedBytes + this.active.size - this.liveBytes;
  }

  /** Chunks packed, and their bytes (without headers). */
  totals(): { count: number; bytes: number } {
    return { count: this.liveCount, bytes: this.liveBytes };
  }

  lookup(id: string): PackedChunk | null {
    return this.statements.lookup.get(id);
  }

  /**
   * The chunk's bytes, with `headroom` free bytes before them in their buffer, and its size in
   * the index; null when not packed. A record whose header does not name this chunk reads as
   * empty (a bad copy).
   */
  async read(id: string, headroom = 0): Promise<{ data: Buffer; size: number } | null> {
    for (let attempt = 0; ; attempt++) {
      const at = this.lookup(id);
      if (!at) return null;
      try {
        return { data: await this.readRecord(at, id, headroom), size: at.size };
      } catch (err) {
        // Compaction may have moved the record and removed its pack since the lookup: look again.
        if ((err as NodeJS.ErrnoException).code !== "ENOENT" || attempt > 0) throw err;
      }
    }
  }

  private async readRecord(at: PackedChunk, id: string, headroom: number): Promise<Buffer> {
    const front = Math.max(headroom, PACK_RECORD_HEADER_BYTES);
    const buffer = Buffer.allocUnsafe(front + at.size);
    const record = buffer.subarray(front - PACK_RECORD_HEADER_BYTES);
    const got = await this.readers.use(at.pack, (handle) => readFully(handle, record, at.offset));
    if (got !== record.byteLength || record.toString("hex", 0, 32) !== id || record.readUInt32LE(32) !== at.size) return Buffer.alloc(0);
    return buffer.subarray(front);
  }

  /** Appends `data` as chunk `id`; resolves once its bytes and its row are durable. */
  put(id: string, data: Uint8Array, writtenAtMs = Date.now()): Promise<void> {
    return this.enqueue({ id, data, writtenAtMs });
  }

  /** Queues a record for the next group; resolves once it is written and its row committed. */
  private enqueue(record: Omit<Pending, "resolve" | "reject">): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ...record, resolve, reject });
      void this.flush();
    });
  }

  /** Marks a chunk written now (a re-sent chunk: a garbage collection racing its upload keeps it). */
  touch(id: string, nowMs = Date.now()) {
    this.statements.touch.run(nowMs, id);
  }

  /**
   * Forgets those of `ids` that are packed and that `shouldRemove` approves, in one commit and
   * one synchronous step (no put can slip in between the judging and the removal). Their
   * bytes become garbage for compaction. Returns the sizes of those removed, and those kept.
   */
  removeWhere(ids: string[], shouldRemove: (id: string, at: PackedChunk) => boolean): { removed: Map<string, number>; kept: Set<string> } {
    const removed = new Map<string, number>();
    const kept = new Set<string>();
    const packs = new Set<number>();
    this.db.transaction(() => {
      for (const id of ids) {
        const at = this.lookup(id);
        if (!at) continue;
        if (!shouldRemove(id, at)) {
          kept.add(id);
          continue;
        }
        this.statements.remove.run(id);
        this.liveCount--;
        this.liveBytes -= at.size;
        removed.set(id, at.size);
        packs.add(at.pack);
      }
    })();
    for (const pack of packs) if (pack !== this.active.pack) this.sparse.add(pack);
    if (packs.size > 0) void this.compact();
    return { removed, kept };
  }

  /** Up to `limit` packed chunks after `startAfter`, in id order. */
  list(startAfter: string, limit: number): { chunkId: string; size: number }[] {
    return this.statements.list.all(startAfter, limit);
  }

  async close() {
    // Queued puts finish first: their callers are waiting.
    await this.idle();
    this.readers.retireAll();
    await this.active.handle.close();
    this.db.close();
  }

  /** Writes queued puts in groups, one at a time: puts arriving meanwhile form the next group. */
  private async flush() {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        let bytes = 0;
        let count = 0;
        while (count < this.queue.length && (count === 0 || bytes + PACK_RECORD_HEADER_BYTES + this.queue[count]!.data.byteLength <= GROUP_MAX_BYTES)) {
          bytes += PACK_RECORD_HEADER_BYTES + this.queue[count]!.data.byteLength;
          count++;
        }
        const group = this.queue.splice(0, count);
        try {
          await this.writeGroup(group, bytes);
          for (const p of group) p.resolve();
        } catch (err) {
          for (const p of group) p.reject(err);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private async writeGroup(group: Pending[], bytes: number) {
    if (this.active.size >= this.sealBytes) await this.seal();
    const { pack, handle } = this.active;
    const start = this.active.size;
    const records = Buffer.allocUnsafe(bytes);
    const offsets: number[] = [];
    let at = 0;
    for (const p of group) {
      offsets.push(start + at);
      records.write(p.id, at, 32, "hex");
      records.writeUInt32LE(p.data.byteLength, at + 32);
      records.set(p.data, at + PACK_RECORD_HEADER_BYTES);
      at += PACK_RECORD_HEADER_BYTES + p.data.byteLength;
    }
    // A failed write leaves `size` as it was: the next group writes over whatever got there.
    await writeFully(handle, records, start);
    await handle.datasync();
    this.active.size = start + bytes;
    this.db.transaction(() => {
      group.forEach((p, i) => {
        if (p.movingFrom) {
          this.statements.move.run(pack, offsets[i]!, p.id, p.movingFrom.pack, p.movingFrom.offset);
          return;
        }
        // A copy replaced (a bad one, quarantined meanwhile by another path) leaves garbage behind.
        const replaced = this.lookup(p.id);
        if (replaced && replaced.pack !== pack) this.sparse.add(replaced.pack);
        this.statements.upsert.run(p.id, pack, offsets[i]!, p.data.byteLength, p.writtenAtMs);
        if (!replaced) this.liveCount++;
        this.liveBytes += p.data.byteLength - (replaced?.size ?? 0);
      });
    })();
  }

  /** Starts a new pack; the full one is left to compaction. */
  private async seal() {
    const next = this.active.pack + 1;
    const handle = await open(join(this.dir, packName(next)), "wx+", 0o600);
    await this.syncDir();
    const sealed = this.active;
    this.active = { pack: next, handle, size: 0 };
    this.sealedBytes += sealed.size;
    await sealed.handle.close();
    // Chunks removed while it was current left garbage no compaction has looked at yet.
    this.sparse.add(sealed.pack);
    void this.compact();
  }

  private syncDir(): Promise<void> {
    return syncPath(this.dir);
  }

  /** Rewrites sealed packs that are mostly garbage, one at a time, in the background. */
  private compact(): Promise<void> {
    this.compaction ??= (async () => {
      // A Set's iteration visits packs added while it runs (deletes during compaction).
      for (const pack of this.sparse) {
        this.sparse.delete(pack);
        if (pack === this.active.pack) continue;
        await this.compactPack(pack).catch((err) => this.log(`compacting pack ${pack}: ${(err as Error).message}`));
      }
    })().finally(() => {
      this.compaction = null;
    });
    return this.compaction;
  }

  /** Resolves once no compaction runs and no put waits. */
  async idle() {
    while (this.compaction || this.flushing || this.queue.length > 0) {
      await (this.compaction ?? new Promise((r) => setTimeout(r, 2)));
    }
  }

  private async compactPack(pack: number) {
    const path = join(this.dir, packName(pack));
    const fileBytes = await stat(path).then((s) => s.size, () => null);
    if (fileBytes === null) return;
    const live = this.statements.live.get(pack)!;
    if (live.count > 0 && live.bytes >= fileBytes * COMPACT_BELOW_LIVE_SHARE) return;
    // Copied a group's worth at a time: compaction holds at most that much.
    let moves: Promise<void>[] = [];
    let movingBytes = 0;
    for (const row of this.statements.inPack.all(pack)) {
      const data = await this.readRecord({ pack, offset: row.offset, size: row.size, writtenAtMs: row.writtenAtMs }, row.chunkId, 0);
      // A record that is not what its row says stays where it is, for verification to find.
      if (data.byteLength !== row.size) continue;
      moves.push(this.enqueue({ id: row.chunkId, data, writtenAtMs: row.writtenAtMs, movingFrom: { pack, offset: row.offset } }));
      movingBytes += data.byteLength;
      if (movingBytes >= GROUP_MAX_BYTES) {
        await Promise.all(moves);
        moves = [];
        movingBytes = 0;
      }
    }
    await Promise.all(moves);
    if (this.statements.live.get(pack)!.count > 0) return;
    await unlink(path);
    this.sealedBytes -= fileBytes;
    this.readers.retire(pack);
    await this.syncDir();
    this.log(`compacted pack ${pack}: ${live.count} live chunks moved, ${fileBytes - live.bytes} bytes reclaimed`);
  }
}
