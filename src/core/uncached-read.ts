/**
 * Whole files read past the page cache (O_DIRECT): chunk files on nodes, each read once per
 * download of it and otherwise only by the scrubber. Buffered, every read first filled fresh
 * page-cache pages and then copied them out. Filesystems that refuse O_DIRECT are read buffered.
 */
import { constants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { DIRECT_IO_ALIGNMENT_BYTES as BLOCK_BYTES, misalignment } from "./direct-io-alignment";
import { readFully } from "./positioned-io";

const roundUp = (n: number) => Math.ceil(n / BLOCK_BYTES) * BLOCK_BYTES;

const isInvalid = (err: unknown) => (err as NodeJS.ErrnoException)?.code === "EINVAL";

/** A file as read: its bytes, null when it is larger than the reader takes, and its size. */
export interface WholeFile {
  data: Buffer | null;
  size: number;
  /** Whether the bytes came past the page cache. */
  direct: boolean;
}

/**
 * Reads all of the file at `path` into a fresh buffer with `headroom` bytes free in front of
 * the data (for a caller's headers), past the page cache where the filesystem allows. A file
 * of more than `maxBytes` is not read. Rejects with ENOENT when there is no such file.
 */
export async function readWholeFile(path: string, headroom: number, maxBytes: number): Promise<WholeFile> {
  const direct = await open(path, constants.O_RDONLY | constants.O_DIRECT).catch((err) => {
    if (isInvalid(err)) return null;
    throw err;
  });
  if (direct) {
    try {
      const size = (await direct.stat()).size;
      if (size > maxBytes) return { data: null, size, direct: true };
      const data = await readDirect(direct, size, headroom);
      if (data) return { data, size, direct: true };
    } finally {
      await direct.close();
    }
  }
  const handle = await open(path, "r");
  try {
    const size = (await handle.stat()).size;
    if (size > maxBytes) return { data: null, size, direct: false };
    const buffer = Buffer.allocUnsafe(headroom + size);
    return { data: buffer.subarray(headroom, headroom + (await readFully(handle, buffer.subarray(headroom), 0))), size, direct: false };
  } finally {
    await handle.close();
  }
}

/** Reads the first `size` bytes of an O_DIRECT handle; null when the filesystem refused a read (the caller reads buffered). */
async function readDirect(handle: FileHandle, size: number, headroom: number): Promise<Buffer | null> {
  // Whole blocks into aligned memory: the data's first byte on a block boundary, `headroom` free before it.
  const raw = Buffer.allocUnsafe(headroom + roundUp(size) + BLOCK_BYTES);
  const start = headroom + ((BLOCK_BYTES - ((misalignment(raw) + headroom) % BLOCK_BYTES)) % BLOCK_BYTES);
  const region = raw.subarray(start, start + roundUp(size));
  let filled = 0;
  try {
    // Only the read that reaches the end of the file comes back short: after it, the offset is no longer aligned.
    while (filled < size) {
      const { bytesRead } = await handle.read(region, filled, region.byteLength - filled, filled);
      filled += bytesRead;
      if (bytesRead === 0 || filled % BLOCK_BYTES !== 0) break;
    }
  } catch (err) {
    if (isInvalid(err)) return null; // accepted at open, refused at a read (some FUSE filesystems): read buffered
    throw err;
  }
  return raw.subarray(start, start + Math.min(filled, size));
}
