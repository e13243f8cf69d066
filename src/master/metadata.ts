/**
 * The master's durable metadata in SQLite (WAL): files as ordered chunk lists,
 * chunks with their replicas, and the node registry. Every change is one transaction.
 */
import { Database } from "bun:sqlite";
import type { ChunkRef, FileInfo } from "../rpc/messages";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS nodes (
  id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  port INTEGER NOT NULL,
  registered_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  chunk_size INTEGER NOT NULL,
  chunk_count INTEGER NOT NULL,
  content_hash TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS file_chunks (
  file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  chunk_id TEXT NOT NULL,
  PRIMARY KEY (file_id, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS file_chunks_by_chunk ON file_chunks(chunk_id);
CREATE TABLE IF NOT EXISTS chunks (
  id TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL,
  -- Set when the last file referencing the chunk goes; garbage after the grace period.
  unreferenced_since_ms INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_unreferenced ON chunks(unreferenced_since_ms) WHERE unreferenced_since_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS replicas (
  chunk_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  added_at_ms INTEGER NOT NULL,
  PRIMARY KEY (chunk_id, node_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS replicas_by_node ON replicas(node_id, chunk_id);
`;

/** A registered node as persisted. */
export interface NodeRow {
  id: string;
  host: string;
  port: number;
  registered_at_ms: number;
}

interface FileRow {
  id: number;
  name: string;
  size: number;
  chunk_size: number;
  chunk_count: number;
  content_hash: string;
  created_at_ms: number;
}

/** A new version of a file to commit. */
export interface NewFile {
  name: string;
  size: number;
  chunkSize: number;
  contentHash: string;
  chunks: ChunkRef[];
  /** chunk id -> nodes this upload wrote it to. */
  stored: Map<string, string[]>;
}

/** A file and its chunks in order, each with every node recorded as holding it. */
export interface StoredManifest {
  file: FileInfo;
  chunks: ChunkReplicas[];
}

/** A referenced chunk and every node recorded as holding it. */
export interface ChunkReplicas {
  chunkId: string;
  size: number;
  nodeIds: string[];
}

/** A chunk as recorded: holders and how many file positions reference it. */
export interface RecordedChunk extends ChunkReplicas {
  references: number;
}

/** Node ids from a `group_concat(node_id)` column (node ids hold no commas). */
const nodeIdsOf = (nodes: string | null): string[] => (nodes ? nodes.split(",") : []);

/** The holders of file chunk `fc`'s chunk, as a column for nodeIdsOf. */
const HOLDERS_COLUMN = "(SELECT group_concat(r.node_id) FROM replicas r WHERE r.chunk_id = fc.chunk_id) AS nodes";

function toRecordedChunk(row: { chunkId: string; size: number; nodes: string | null; refs: number }): RecordedChunk {
  return { chunkId: row.chunkId, size: row.size, nodeIds: nodeIdsOf(row.nodes), references: row.refs };
}

/** The outcome of a commit: the file, or the chunks that have no replica any more. */
export type CommitResult = { file: FileInfo; missing?: undefined } | { missing: string[]; file?: undefined };

function toFileInfo(row: FileRow): FileInfo {
  return {
    name: row.name,
    size: row.size,
    chunkCount: row.chunk_count,
    chunkSize: row.chunk_size,
    contentHash: row.content_hash,
    createdAtMs: row.created_at_ms,
  };
}

/** Owns the SQLite database of one master. */
export class Metadata {
  private readonly db: Database;

  constructor(path: string) {
    this.db = new Database(path, { create: true, strict: true });
    // FULL: an acknowledged commit survives power loss, not only a killed process.
    this.db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;");
    const columns = this.db.query("SELECT name FROM pragma_table_info('chunks')").all() as { name: string }[];
    if (columns.length > 0 && !columns.some((c) => c.name === "unreferenced_since_ms")) {
      this.db.exec("ALTER TABLE chunks ADD COLUMN unreferenced_since_ms INTEGER");
    }
    this.db.exec(SCHEMA);
  }

  close() {
    this.db.close();
  }

  upsertNode(id: string, host: string, port: number, nowMs: number) {
    this.db
      .query("INSERT INTO nodes (id, host, port, registered_at_ms) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(id) DO UPDATE SET host = ?2, port = ?3")
      .run(id, host, port, nowMs);
  }

  nodes(): NodeRow[] {
    return this.db.query("SELECT id, host, port, registered_at_ms FROM nodes ORDER BY id").all() as NodeRow[];
  }

  /** node ids recorded as holding each of `chunkIds` (absent key: chunk unknown). */
  replicasOf(chunkIds: string[]): Map<string, string[]> {
    const result = new Map<string, string[]>();
    const chunkQuery = this.db.query("SELECT id FROM chunks WHERE id = ?");
    const replicaQuery = this.db.query("SELECT node_id FROM replicas WHERE chunk_id = ?");
    for (const id of chunkIds) {
      if (result.has(id) || !chunkQuery.get(id)) continue;
      result.set(id, (replicaQuery.all(id) as { node_id: string }[]).map((r) => r.node_id));
    }
    return result;
  }

  /** Sizes recorded for known chunks. */
  chunkSize(chunkId: string): number | null {
    const row = this.db.query("SELECT size FROM chunks WHERE id = ?").get(chunkId) as { size: number } | null;
    return row ? row.size : null;
  }

  /**
   * Records where the upload wrote its chunks and points `name` at the new chunk list, in
   * one transaction: readers see the old file or the new one, never a mix. Nothing is
   * committed when any chunk has no replica left.
   */
  commitFile(file: NewFile, nowMs: number): CommitResult {
    return this.db.transaction((): CommitResult => {
      const insertChunk = this.db.query("INSERT OR IGNORE INTO chunks (id, size, created_at_ms) VALUES (?, ?, ?)");
      const insertReplica = this.db.query("INSERT OR IGNORE INTO replicas (chunk_id, node_id, added_at_ms) VALUES (?, ?, ?)");
      const sizes = new Map(file.chunks.map((c) => [c.chunkId, c.size]));
      for (const [chunkId, nodeIds] of file.stored) {
        insertChunk.run(chunkId, sizes.get(chunkId)!, nowMs);
        for (const nodeId of nodeIds) insertReplica.run(chunkId, nodeId, nowMs);
      }
      const hasReplica = this.db.query("SELECT 1 FROM replicas WHERE chunk_id = ? LIMIT 1");
      const missing = [...sizes.keys()].filter((id) => !hasReplica.get(id));
      if (missing.length > 0) throw new MissingChunks(missing);

      const clearMark = this.db.query("UPDATE chunks SET unreferenced_since_ms = NULL WHERE id = ? AND unreferenced_since_ms IS NOT NULL");
      for (const id of sizes.keys()) clearMark.run(id);
      this.removeFile(file.name, nowMs);
      const row = this.db
        .query("INSERT INTO files (name, size, chunk_size, chunk_count, content_hash, created_at_ms) VALUES (?, ?, ?, ?, ?, ?) RETURNING *")
        .get(file.name, file.size, file.chunkSize, file.chunks.length, file.contentHash, nowMs) as FileRow;
      const insertFileChunk = this.db.query("INSERT INTO file_chunks (file_id, idx, chunk_id) VALUES (?, ?, ?)");
      file.chunks.forEach((chunk, idx) => insertFileChunk.run(row.id, idx, chunk.chunkId));
      return { file: toFileInfo(row) };
    }).immediate();
  }

  /** Runs `work` in one write transaction; transactions inside it become savepoints. */
  inTransaction(work: () => void) {
    this.db.transaction(work).immediate();
  }

  /** Commits, turning an aborted transaction over missing chunks into a result. */
  commit(file: NewFile, nowMs: number): CommitResult {
    try {
      return this.commitFile(file, nowMs);
    } catch (err) {
      if (err instanceof MissingChunks) return { missing: err.chunkIds };
      throw err;
    }
  }

  /*
   * Reads need no transaction: one connection on one thread, so no write can land between
   * the statements of a read, and each statement reads a committed state.
   */

  /** A file with its chunks in order and every node recorded as holding each. */
  manifest(name: string): StoredManifest | null {
    const row = this.db.query("SELECT * FROM files WHERE name = ?").get(name) as FileRow | null;
    return row ? { file: toFileInfo(row), chunks: this.chunksOf(row.id) } : null;
  }

  /** A file's chunks in order, each with its holders: one statement, however many chunks. */
  private chunksOf(fileId: number): ChunkReplicas[] {
    const rows = this.db
      .query(
        `SELECT fc.chunk_id AS chunkId, c.size AS size, ${HOLDERS_COLUMN}
         FROM file_chunks fc JOIN chunks c ON c.id = fc.chunk_id WHERE fc.file_id = ? ORDER BY fc.idx`,
      )
      .all(fileId) as { chunkId: string; size: number; nodes: string | null }[];
    return rows.map((r) => ({ chunkId: r.chunkId, size: r.size, nodeIds: nodeIdsOf(r.nodes) }));
  }

  /** Up to `limit` files whose names start with `prefix`, after `startAfter`, by name. */
  listFiles(prefix: string, startAfter: string, limit: number): { files: FileInfo[]; truncated: boolean } {
    // BINARY collation compares UTF-8 bytes; U+10FFFF sorts after anything that can follow the prefix.
    const rows = this.db
      .query("SELECT * FROM files WHERE name >= ?1 AND name < ?2 AND name > ?3 ORDER BY name LIMIT ?4")
      .all(prefix, `${prefix}\u{10FFFF}`, startAfter, limit + 1) as FileRow[];
    return { files: rows.slice(0, limit).map(toFileInfo), truncated: rows.length > limit };
  }

  /**
   * A page of `listFiles` with each file's manifest. A file of more than `maxChunksPerFile`
   * chunks comes without its chunks (the caller reads it with `manifest`), so a page stays
   * bounded by `limit` × `maxChunksPerFile`. One statement for the page: a statement per file
   * cost six times as long (1000 files: ~9.5 against ~1.5 ms).
   */
  listManifests(prefix: string, startAfter: string, limit: number, maxChunksPerFile: number): { manifests: StoredManifest[]; truncated: boolean } {
    const rows = this.db
      .query(
        `SELECT f.*, fc.chunk_id AS chunkId, c.size AS chunkBytes, ${HOLDERS_COLUMN}
         FROM (SELECT * FROM files WHERE name >= ?1 AND name < ?2 AND name > ?3 ORDER BY name LIMIT ?4) f
         LEFT JOIN file_chunks fc ON fc.file_id = f.id AND f.chunk_count <= ?5
         LEFT JOIN chunks c ON c.id = fc.chunk_id
         ORDER BY f.name, fc.idx`,
      )
      .all(prefix, `${prefix}\u{10FFFF}`, startAfter, limit + 1, maxChunksPerFile) as (FileRow & { chunkId: string | null; chunkBytes: number | null; nodes: string | null })[];
    const manifests: StoredManifest[] = [];
    let fileId = -1;
    for (const row of rows) {
      if (row.id !== fileId) {
        fileId = row.id;
        manifests.push({ file: toFileInfo(row), chunks: [] });
      }
      if (row.chunkId !== null) manifests[manifests.length - 1]!.chunks.push({ chunkId: row.chunkId, size: row.chunkBytes ?? 0, nodeIds: nodeIdsOf(row.nodes) });
    }
    return { manifests: manifests.slice(0, limit), truncated: manifests.length > limit };
  }

  /** Removes a name; its chunks stay until garbage collection. Returns what was deleted. */
  deleteFile(name: string, nowMs: number): FileInfo | null {
    return this.db.transaction(() => this.removeFile(name, nowMs)).immediate();
  }

  /** Deletes a file row (inside a transaction) and marks chunks no other file uses as unreferenced. */
  private removeFile(name: string, nowMs: number): FileInfo | null {
    const row = this.db.query("SELECT * FROM files WHERE name = ?").get(name) as FileRow | null;
    if (!row) return null;
    const chunkIds = (this.db.query("SELECT DISTINCT chunk_id FROM file_chunks WHERE file_id = ?").all(row.id) as { chunk_id: string }[]).map((r) => r.chunk_id);
    this.db.query("DELETE FROM files WHERE id = ?").run(row.id);
    const mark = this.db.query(
      "UPDATE chunks SET unreferenced_since_ms = ?1 WHERE id = ?2 AND NOT EXISTS (SELECT 1 FROM file_chunks WHERE chunk_id = ?2)",
    );
    for (const id of chunkIds) mark.run(nowMs, id);
    return toFileInfo(row);
  }

  /**
   * Up to `limit` referenced chunks after `startAfter`, in id order, with their recorded holders
   * (unreferenced ones are left to GC, not repaired). Read a page at a time, a scan of millions
   * of chunks neither holds them all in memory nor keeps the process from answering calls.
   */
  referencedChunkReplicasPage(startAfter: string, limit: number): ChunkReplicas[] {
    const rows = this.db
      .query(
        `SELECT c.id AS chunkId, c.size AS size, (SELECT group_concat(node_id) FROM replicas WHERE chunk_id = c.id) AS nodes
         FROM chunks c WHERE c.id > ? AND c.unreferenced_since_ms IS NULL ORDER BY c.id LIMIT ?`,
      )
      .all(startAfter, limit) as { chunkId: string; size: number; nodes: string | null }[];
    return rows.map((r) => ({ chunkId: r.chunkId, size: r.size, nodeIds: nodeIdsOf(r.nodes) }));
  }

  addReplica(chunkId: string, nodeId: string, nowMs: number) {
    this.db.query("INSERT OR IGNORE INTO replicas (chunk_id, node_id, added_at_ms) SELECT id, ?, ? FROM chunks WHERE id = ?").run(nodeId, nowMs, chunkId);
  }

  removeReplica(chunkId: string, nodeId: string) {
    this.db.query("DELETE FROM replicas WHERE chunk_id = ? AND node_id = ?").run(chunkId, nodeId);
  }

  /** Which of `chunkIds` the master knows. */
  knownChunks(chunkIds: string[]): Set<string> {
    const query = this.db.query("SELECT 1 FROM chunks WHERE id = ?");
    return new Set(chunkIds.filter((id) => query.get(id)));
  }

  /**
   * Chunks recorded on `nodeId` before `beforeMs` with ids in (`after`, `upTo`] (`upTo` null:
   * no upper bound), ascending, at most `limit`.
   */
  replicasOnNodeBetween(nodeId: string, beforeMs: number, after: string, upTo: string | null, limit: number): string[] {
    const rows = this.db
      .query("SELECT chunk_id FROM replicas WHERE node_id = ? AND added_at_ms < ? AND chunk_id > ? AND chunk_id <= ? ORDER BY chunk_id LIMIT ?")
      .all(nodeId, beforeMs, after, upTo ?? "\u{10FFFF}", limit) as { chunk_id: string }[];
    return rows.map((r) => r.chunk_id);
  }

  /**
   * Forgets up to `limit` chunks unreferenced for longer than `graceMs`, re-checking in the
   * same transaction that no file took them back. Returns each with the nodes that held it,
   * to be told to delete only after these rows are gone: a commit arriving later then finds
   * the chunk missing and has the client send it again.
   */
  collectGarbage(nowMs: number, graceMs: number, limit: number): ChunkReplicas[] {
    return this.db.transaction(() => {
      const candidates = this.db
        .query(
          `SELECT id FROM chunks WHERE unreferenced_since_ms IS NOT NULL AND unreferenced_since_ms <= ?
           AND NOT EXISTS (SELECT 1 FROM file_chunks WHERE chunk_id = chunks.id) LIMIT ?`,
        )
        .all(nowMs - graceMs, limit) as { id: string }[];
      const holders = this.db.query("SELECT node_id FROM replicas WHERE chunk_id = ?");
      const collected: ChunkReplicas[] = [];
      for (const { id } of candidates) {
        const nodeIds = (holders.all(id) as { node_id: string }[]).map((r) => r.node_id);
        this.db.query("DELETE FROM replicas WHERE chunk_id = ?").run(id);
        this.db.query("DELETE FROM chunks WHERE id = ?").run(id);
        collected.push({ chunkId: id, size: 0, nodeIds });
      }
      return collected;
    }).immediate();
  }

  /** Chunks in id order after `startAfter`, each with its recorded holders and reference count. */
  chunkReplicasPage(startAfter: string, limit: number): { chunks: RecordedChunk[]; truncated: boolean } {
    const rows = this.db
      .query(
        `SELECT c.id AS chunkId, c.size AS size, (SELECT group_concat(node_id) FROM replicas WHERE chunk_id = c.id) AS nodes,
         (SELECT COUNT(*) FROM file_chunks WHERE chunk_id = c.id) AS refs FROM chunks c WHERE c.id > ? ORDER BY c.id LIMIT ?`,
      )
      .all(startAfter, limit + 1) as { chunkId: string; size: number; nodes: string | null; refs: number }[];
    return { chunks: rows.slice(0, limit).map(toRecordedChunk), truncated: rows.length > limit };
  }

  /** The named chunks the master knows, with holders and reference counts (unknown ids are left out). */
  chunkReplicasOf(chunkIds: string[]): RecordedChunk[] {
    const query = this.db.query(
      `SELECT c.id AS chunkId, c.size AS size, (SELECT group_concat(node_id) FROM replicas WHERE chunk_id = c.id) AS nodes,
       (SELECT COUNT(*) FROM file_chunks WHERE chunk_id = c.id) AS refs FROM chunks c WHERE c.id = ?`,
    );
    const out: RecordedChunk[] = [];
    for (const id of new Set(chunkIds)) {
      const row = query.get(id) as { chunkId: string; size: number; nodes: string | null; refs: number } | null;
      if (row) out.push(toRecordedChunk(row));
    }
    return out;
  }

  gcPendingCount(): number {
    return (this.db.query("SELECT COUNT(*) AS n FROM chunks WHERE unreferenced_since_ms IS NOT NULL").get() as { n: number }).n;
  }

  counts(): { files: number; chunks: number } {
    const files = (this.db.query("SELECT COUNT(*) AS n FROM files").get() as { n: number }).n;
    const chunks = (this.db.query("SELECT COUNT(*) AS n FROM chunks").get() as { n: number }).n;
    return { files, chunks };
  }
}

/** Aborts a commit transaction when chunks have no replica. */
class MissingChunks extends Error {
  constructor(readonly chunkIds: string[]) {
    super(`${chunkIds.length} chunks missing`);
  }
}
