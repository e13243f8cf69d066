/** Chunk ids: the lowercase hex SHA-256 of a chunk's bytes, and nothing else. */
import { invalidArgument } from "./errors";
import { sha256OfShared } from "./sha256-worker";

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

/** Whether a chunk of `bytes` is hashed off the main thread: worth holding in shared memory. */
export const hashedOffThread = (bytes: number) => bytes >= OFF_THREAD_HASH_MIN_BYTES;

/**
 * The chunk id of `bytes`, hashed on a worker thread when they are large: the caller's event
 * loop keeps moving other chunks meanwhile. Bytes in shared memory (the buffers chunks are
 * read and received into) are read there in place (sha256-worker.ts); others go to WebCrypto,
 * which copies them. (SHA-256 of a 4 MiB chunk is ~2.5 ms; a 1 GiB transfer hashes 256 of
 * them on every end.) The bytes must not change until the id is known.
 */
export async function chunkIdOfAsync(bytes: Uint8Array): Promise<string> {
  if (!hashedOffThread(bytes.byteLength)) return chunkIdOf(bytes);
  if (bytes.buffer instanceof SharedArrayBuffer) return sha256OfShared(bytes);
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
