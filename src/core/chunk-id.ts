/** Chunk ids: the lowercase hex SHA-256 of a chunk's bytes, and nothing else. */
import { invalidArgument } from "./errors";

const CHUNK_ID_PATTERN = /^[0-9a-f]{64}$/;

/** True when `id` is exactly 64 lowercase hex characters, so it can never name a path outside a store. */
export function isChunkId(id: unknown): id is string {
  return typeof id === "string" && CHUNK_ID_PATTERN.test(id);
}

/** Throws INVALID_ARGUMENT unless `id` is a well-formed chunk id. */
export function assertChunkId(id: unknown): string {
  if (!isChunkId(id)) {
    const shown = typeof id === "string" ? JSON.stringify(id.length > 80 ? `${id.slice(0, 80)}…` : id) : typeof id;
    throw invalidArgument(`chunk id must be 64 lowercase hex characters, got ${shown}`);
  }
  return id;
}

/** The chunk id of `bytes`. */
export function chunkIdOf(bytes: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
}

/** Chunks at least this large are hashed off the main thread (below it the hop costs more than the hash). */
const OFF_THREAD_HASH_MIN_BYTES = 256 * 1024;

/**
 * The chunk id of `bytes`, hashed on the runtime's worker threads when they are large: the
 * caller's event loop keeps moving other chunks meanwhile, and two chunks hash on two cores.
 * (SHA-256 of a 4 MiB chunk is ~3 ms; a 1 GiB transfer hashes 256 of them on every end.)
 */
export async function chunkIdOfAsync(bytes: Uint8Array): Promise<string> {
  if (bytes.byteLength < OFF_THREAD_HASH_MIN_BYTES) return chunkIdOf(bytes);
  return Buffer.from(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)).toString("hex");
}

/**
 * A file's content hash: SHA-256 over the concatenated binary digests of its chunks.
 * With 4 MiB chunks this equals Dropbox's published `content_hash`.
 */
export function contentHashOf(chunkIds: Iterable<string>): string {
  const hasher = new Bun.CryptoHasher("sha256");
  for (const id of chunkIds) hasher.update(Buffer.from(id, "hex"));
  return hasher.digest("hex");
}
