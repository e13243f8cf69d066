/** Positioned reads and writes that move a whole buffer: one call may move fewer bytes than asked. */
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

/** Writes all of `data` to the file at `position`. */
export async function writeFully(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let written = 0;
  while (written < data.byteLength) written += (await handle.write(data, written, data.byteLength - written, position + written)).bytesWritten;
}
