/**
 * Allocator tuning for storage nodes.
 *
 * Bun allocates with mimalloc, which by default hands freed memory back to the OS 100 ms
 * after it is freed. Moving chunks frees and allocates multi-MiB buffers many times a
 * second (WebCrypto's copies of what it hashes, HTTP/2's frames), so the same memory was
 * returned and faulted in again, over and over: each node took ~250,000 page faults during
 * a 1 GiB upload, a third of its CPU time in the kernel. Holding freed memory for a few
 * seconds before returning it cut that to ~50,000 and uploads took ~10% less time; an idle
 * process still gives its memory back. Clients gained nothing measurable from it (1 GiB up and
 * down, same times) and held 10-25 MiB more, so they keep the default.
 *
 * mimalloc reads its options from the environment once, as the process starts, so a node
 * re-executes itself (same pid, same arguments) with the option set. A value the user set
 * is left alone.
 */
import { selfCommand } from "../cluster/processes";

/** The mimalloc option, and how long freed memory waits before it goes back to the OS. */
const PURGE_DELAY_ENV = "MIMALLOC_PURGE_DELAY";
const PURGE_DELAY_MS = "5000";

/** Commands whose processes run long and churn chunk buffers: storage nodes. */
const TUNED_COMMANDS = new Set(["node"]);

/**
 * When `args` (the arguments after the executable) run a storage node and the allocator is
 * not tuned yet, replaces this process with itself, tuned. Returns otherwise.
 */
export function tuneAllocator(args: string[]): void {
  if (process.env[PURGE_DELAY_ENV] !== undefined || !TUNED_COMMANDS.has(args[0] ?? "")) return;
  const execve = (process as { execve?: (file: string, args: string[], env: Record<string, string | undefined>) => never }).execve;
  if (typeof execve !== "function") return;
  const [file, ...script] = selfCommand();
  try {
    execve(file!, [process.argv0, ...script, ...args], { ...process.env, [PURGE_DELAY_ENV]: PURGE_DELAY_MS });
  } catch {
    // Could not run ourselves again (the binary was replaced or removed meanwhile): run untuned.
  }
}
