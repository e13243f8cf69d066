/**
 * Fresh random files. The store deduplicates by content, so every measured upload needs
 * bytes it has never seen, or it measures a metadata round trip instead of a transfer.
 */
import { createHash, randomFillSync } from "node:crypto";
import { open } from "node:fs/promises";

/** Write in 4 MiB pieces: large enough to be fast, small enough to keep our own RSS flat. */
const WRITE_PIECE_BYTES = 4 * 1024 * 1024;

/** Writes `bytes` random bytes to `path` and returns their SHA-256 (hex). */
export async function writeRandomFile(path: string, bytes: number): Promise<string> {
  const hash = createHash("sha256");
  const piece = Buffer.allocUnsafe(Math.min(WRITE_PIECE_BYTES, Math.max(bytes, 1)));
  const file = await open(path, "w");
  try {
    for (let left = bytes; left > 0; ) {
      const n = Math.min(left, piece.length);
      const view = piece.subarray(0, n);
      randomFillSync(view);
      hash.update(view);
      await file.write(view, 0, n);
      left -= n;
    }
  } finally {
    await file.close();
  }
  return hash.digest("hex");
}

/** SHA-256 (hex) of a file's bytes, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await open(path, "r");
  try {
    const piece = Buffer.allocUnsafe(WRITE_PIECE_BYTES);
    for (;;) {
      const { bytesRead } = await file.read(piece, 0, piece.length, null);
      if (bytesRead === 0) break;
      hash.update(piece.subarray(0, bytesRead));
    }
  } finally {
    await file.close();
  }
  return hash.digest("hex");
}
