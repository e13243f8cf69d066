/** Positioned reads that fill a buffer: one read call may return fewer bytes than asked. */
import type { FileHandle } from "node:fs/promises";

/** Reads into all of `target` from the file at `position`; returns the bytes read, fewer only at end of file. */
export async function readFully(handle: FileHandle, target: Uint8Array, position: number): Promise<number> {
  let filled = 0;
  while (filled < target.byteLength) {
    const { bytesRead } = await handle.read(target, filled, target.byteLength - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled;
}
