/** Small numeric helpers shared by the benchmark scripts. */
import { parseSize } from "../../src/core/size";

export const MIB = 1024 * 1024;

/** The median; the mean of the middle two for an even count. */
export function median(values: number[]): number {
  if (values.length === 0) throw new Error("median of nothing");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A size as the benchmark flags spell it ("1M", "100M", "1G", "64MiB") in bytes. */
export function sizeFromLabel(label: string): number {
  return parseSize(label, `size ${JSON.stringify(label)}`);
}

/** MiB per second for `bytes` moved in `ms` milliseconds. */
export function mibPerSecond(bytes: number, ms: number): number {
  return bytes / MIB / (ms / 1000);
}

/** Reads `--name VALUE` from argv, or undefined. */
export function flagValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const value = argv[i + 1];
  if (value === undefined || value.startsWith("--")) throw new Error(`--${name} needs a value`);
  return value;
}
