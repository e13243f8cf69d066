/**
 * syncfs(2): one call that makes everything written to a filesystem durable. Node's fs has no
 * binding for it, so it is called through bun:ffi. Linux with glibc only; elsewhere, or where
 * libc cannot be loaded, callers fsync file by file instead.
 */
import { dlopen } from "bun:ffi";
import { readFileSync } from "node:fs";

type Libc = { symbols: { syncfs(fd: number): number } };

/** The binding once loaded; null where it cannot be. */
let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (process.platform !== "linux") return null;
  try {
    libc = dlopen("libc.so.6", { syncfs: { args: ["i32"], returns: "i32" } }) as unknown as Libc;
  } catch {
    libc = null; // musl, or no libc.so.6: fsync per file
  }
  return libc;
}

/**
 * Syncs the filesystem that holds the open file or directory `fd`: true once done, false when
 * it failed (an I/O error), null when syncfs is not available here. Blocks the calling thread
 * while the filesystem writes back.
 */
export function syncFilesystem(fd: number): boolean | null {
  const binding = loadLibc();
  if (!binding) return null;
  return binding.symbols.syncfs(fd) === 0;
}

/** Bytes waiting to be written back or being written back, machine-wide (Linux's /proc/meminfo); null when unknown. */
export function dirtyBytesSystemWide(): number | null {
  try {
    const info = readFileSync("/proc/meminfo", "utf8");
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(info)?.[1] ?? NaN);
    const total = kib("Dirty") + kib("Writeback");
    return Number.isFinite(total) ? total * 1024 : null;
  } catch {
    return null;
  }
}
