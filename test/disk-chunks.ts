/**
 * A node's chunks as its data dir holds them, read off the disk rather than asked: a file per
 * large chunk under chunks/ab/, small ones packed and found through packs/packs.sqlite
 * (node/pack-store.ts). Shared by the tests and the benchmarks.
 */
import { Database } from "bun:sqlite";
import { existsSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";

/** Runs `f` on the pack index under a node's data dir, if it has one; SQLite lets two processes share it. */
export function withPackIndex<T>(dataDir: string, f: (db: Database) => T): T | undefined {
  const path = join(dataDir, "packs", "packs.sqlite");
  if (!existsSync(path)) return undefined;
  const db = new Database(path);
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    return f(db);
  } finally {
    db.close();
  }
}

/** Every chunk on a node's disk, in a file or packed: id -> size. */
export async function chunksOnDisk(dataDir: string): Promise<Map<string, number>> {
  const chunks = new Map<string, number>();
  const root = join(dataDir, "chunks");
  for (const dir of await readdir(root).catch(() => [])) {
    for (const name of await readdir(join(root, dir)).catch(() => [])) {
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      const size = await stat(join(root, dir, name)).then((s) => s.size, () => null);
      if (size !== null) chunks.set(name, size);
    }
  }
  withPackIndex(dataDir, (db) => {
    for (const row of db.query("SELECT chunk_id AS id, size FROM packed").all() as { id: string; size: number }[]) chunks.set(row.id, row.size);
  });
  return chunks;
}

/** Bytes the pack files under a packs dir take on disk: live records, headers and garbage alike. */
export async function packBytesOnDisk(packsDir: string): Promise<number> {
  const packs = (await readdir(packsDir)).filter((name) => name.endsWith(".pack"));
  const sizes = await Promise.all(packs.map(async (name) => (await stat(join(packsDir, name))).size));
  return sizes.reduce((sum, size) => sum + size, 0);
}
