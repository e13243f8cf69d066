/**
 * Allocator tuning for the processes that move chunk bytes in bulk.
 *
 * Bun allocates with mimalloc, which by default hands freed memory back to the OS 100 ms
 * after it is freed. Moving chunks frees and allocates multi-MiB buffers many times a
 * second (HTTP/2's frames and queued copies, received messages), so the same memory was
 * returned and faulted in again, over and over: each node took ~250,000 page faults during
 * a 1 GiB upload, a third of its CPU time in the kernel. Holding freed memory for a few
 * seconds before returning it cut that to ~50,000 and uploads took ~10% less time; an idle
 * process still gives its memory back.
 *
 * Storage nodes are always tuned. An upload is tuned when the files it names come to
 * `TUNED_UPLOAD_MIN_BYTES` or more: a 1 GiB upload's client took ~136,000 page faults and
 * 1.4-2.1 s of system time untuned, ~36,000 and 1.1-1.2 s tuned, at the same peak RSS
 * (2026-12-01; an earlier measurement had found no gain for clients).
 * Smaller uploads and every other command keep the default: the re-execution costs a
 * runtime start-up (~12 ms), a large share of a short command. Downloads gained nothing
 * (1 GiB, 6 interleaved runs: median 398 MiB/s untuned, 393 tuned, at 10-20 MiB more RSS),
 * nor did 1000-file uploads and downloads.
 *
 * mimalloc reads its options from the environment once, as the process starts, so the
 * process re-executes itself (same pid, same arguments) with the option set. A value the
 * user set is left alone.
 */
import { statSync } from "node:fs";
import { selfCommand } from "../cluster/processes";

/** The mimalloc option, and how long freed memory waits before it goes back to the OS. */
const PURGE_DELAY_ENV = "MIMALLOC_PURGE_DELAY";
const PURGE_DELAY_MS = "5000";

/** Named files an upload must come to before it pays a re-execution for the tuning. */
const TUNED_UPLOAD_MIN_BYTES = 64 * 1024 * 1024;

/** Bytes of the regular files among `args` (flags and names that are not files count 0). */
function namedFileBytes(args: string[]): number {
  let bytes = 0;
  for (const arg of args) {
    if (arg.startsWith("-")) continue;
    try {
      const st = statSync(arg, { throwIfNoEntry: false });
      if (st?.isFile()) bytes += st.size;
    } catch {
      // Unreadable or not a path at all: the command itself reports what is wrong with it.
    }
  }
  return bytes;
}

/** Whether the command in `args` (the arguments after the executable) runs tuned. */
function wantsTunedAllocator(args: string[]): boolean {
  const [command, ...rest] = args;
  if (command === "node") return true;
  if (command === "upload") return namedFileBytes(rest) >= TUNED_UPLOAD_MIN_BYTES;
  return false;
}

/**
 * When `args` run a command that moves chunks in bulk and the allocator is not tuned yet,
 * replaces this process with itself, tuned. Returns otherwise.
 */
export function tuneAllocator(args: string[]): void {
  if (process.env[PURGE_DELAY_ENV] !== undefined || !wantsTunedAllocator(args)) return;
  const execve = (process as { execve?: (file: string, args: string[], env: Record<string, string | undefined>) => never }).execve;
  if (typeof execve !== "function") return;
  const [file, ...script] = selfCommand();
  try {
    execve(file!, [process.argv0, ...script, ...args], { ...process.env, [PURGE_DELAY_ENV]: PURGE_DELAY_MS });
  } catch {
    // Could not run ourselves again (the binary was replaced or removed meanwhile): run untuned.
  }
}
