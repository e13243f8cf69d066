/**
 * Whole, ordered writes to stdout and stderr for commands whose output scripts read.
 *
 * Why not process.stdout.write: in a Bun compiled binary, output written that way to a pipe is
 * cut at a 64 KiB or 128 KiB boundary when the process exits, even after the write callback has
 * fired (measured with Bun 1.4.5: `dropbox list --json | wc -c` printed 131072 of 177905 bytes,
 * and a CI job read `upload -r --json` cut short with exit 0; oven-sh/bun#25432 is the same
 * family). A synchronous write(2) loop on the descriptor has no buffer to lose. Bun leaves fds
 * 1 and 2 blocking, so a slow reader only slows the writer down.
 */
import { writeSync } from "node:fs";

/** A reader that went away (`dropbox list | head`): further output is dropped, not an error. */
const closed = new Set<number>();
let pause: Int32Array | undefined;

function writeAll(fd: number, data: string | Uint8Array): boolean {
  if (closed.has(fd)) return false;
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  let offset = 0;
  while (offset < bytes.byteLength) {
    try {
      offset += writeSync(fd, bytes, offset, bytes.byteLength - offset);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EPIPE") {
        closed.add(fd);
        return false;
      }
      // A descriptor someone else made non-blocking: wait a millisecond for room, then go on.
      if (code !== "EAGAIN") throw err;
      pause ??= new Int32Array(new SharedArrayBuffer(4));
      Atomics.wait(pause, 0, 0, 1);
    }
  }
  return true;
}

/** Writes to stdout; false once the reader has closed the pipe. */
export function writeOut(data: string | Uint8Array): boolean {
  return writeAll(1, data);
}

/** Writes to stderr; false once the reader has closed the pipe. */
export function writeErr(data: string | Uint8Array): boolean {
  return writeAll(2, data);
}
