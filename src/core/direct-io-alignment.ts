/**
 * Where memory sits relative to the block size O_DIRECT needs. Buffers that land aligned
 * (see rpc/receive-buffers.ts) go from memory to disk with no copy at all.
 */
import { ptr } from "bun:ffi";

/** Alignment for O_DIRECT memory, offsets and lengths: 4096 covers every logical block size in use. */
export const DIRECT_IO_ALIGNMENT_BYTES = 4096;

/** How far `view`'s first byte is past the previous aligned address (0: aligned). Reads the address only. */
export function misalignment(view: Uint8Array): number {
  return view.byteLength === 0 ? 0 : ptr(view) % DIRECT_IO_ALIGNMENT_BYTES;
}
