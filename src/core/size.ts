/** Byte sizes as people type and read them. */
import { invalidArgument } from "./errors";

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

/** Parses `65536`, `64k`, `4MiB`, `1g` (binary units); throws INVALID_ARGUMENT. */
export function parseSize(text: unknown, what = "size"): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(text));
  const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) throw invalidArgument(`${what} must be a number of bytes like 65536, 64k or 4MiB, got ${JSON.stringify(String(text))}`);
  const bytes = Number(match[1]) * unit;
  if (!Number.isSafeInteger(bytes)) throw invalidArgument(`${what} must be a whole number of bytes`);
  return bytes;
}

/** Formats bytes with a binary unit, e.g. `4.0 MiB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
