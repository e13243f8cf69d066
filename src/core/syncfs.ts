/**
 * syncfs(2): one call that makes everything written to a filesystem durable. Node's fs has no
 * binding for it, so it is called through bun:ffi. Linux with glibc only; elsewhere, or where
 * libc cannot be loaded, callers fsync file by file instead.
 */
import { dlopen } from "bun:ffi";
import { readFileSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { release } from "node:os";

/**
 * Filesystems whose syncfs writes back what was written to them (statfs f_type): ext2/3/4,
 * xfs, btrfs, f2fs, and tmpfs, which has nothing to write back. Not FUSE (sshfs, s3fs,
 * ntfs-3g…): its syncfs returns 0 without asking the filesystem's server to flush, where an
 * fsync does ask. Not network filesystems either.
 */
const SYNCFS_FILESYSTEMS = new Set([0xef53, 0x58465342, 0x9123683e, 0xf2f52010, 0x01021994]);

/** Linux 5.8 and later report a writeback error from syncfs; before, it returned 0 regardless. */
function kernelReportsSyncfsErrors(): boolean {
  const [major = 0, minor = 0] = release().split(/[.-]/).map(Number);
  return major > 5 || (major === 5 && minor >= 8);
}

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

/**
 * Whether one syncfs on the filesystem holding `path` makes what was written there durable, and
 * says so when it cannot: a filesystem listed above, a kernel that reports errors, syncfs at hand.
 */
export async function syncfsTrusted(path: string): Promise<boolean> {
  if (process.platform !== "linux" || !kernelReportsSyncfsErrors() || !loadLibc()) return false;
  const type = await statfs(path).then((s) => s.type, () => null);
  return type !== null && SYNCFS_FILESYSTEMS.has(type);
}
