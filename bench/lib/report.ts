/** The comparison table: one row per figure, ours next to the seed's, and how many times better we are. */

/** One figure of the comparison. */
export interface Row {
  workload: string;
  unit: "MiB/s" | "s" | "ms" | "MiB";
  /** Which way is better: throughput up, time and memory down. */
  better: "higher" | "lower";
  ours: number | null;
  seed: number | null;
  /** Said instead of a number when there is none (e.g. "n/a (not implemented)"). */
  oursNote?: string;
  seedNote?: string;
}

/** How many times better ours is (above 1: ours is better), or null without both figures. */
export function ratio(row: Row): number | null {
  if (row.ours === null || row.seed === null || row.ours <= 0 || row.seed <= 0) return null;
  return row.better === "higher" ? row.ours / row.seed : row.seed / row.ours;
}

function formatValue(value: number | null, unit: Row["unit"], note: string | undefined): string {
  if (value === null) return note ?? "—";
  const digits = unit === "s" ? 2 : unit === "MiB/s" ? 1 : 0;
  return `${value.toFixed(digits)} ${unit}`;
}

/** A Markdown table: workload | ours | seed | ratio. */
export function formatTable(rows: Row[]): string {
  const cells = rows.map((row) => {
    const r = ratio(row);
    return [row.workload, formatValue(row.ours, row.unit, row.oursNote), formatValue(row.seed, row.unit, row.seedNote), r === null ? "—" : `${r.toFixed(r < 10 ? 2 : 1)}×`];
  });
  const header = ["workload", "ours", "seed", "ratio (× better)"];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => `| ${c.map((text, i) => (i === 0 ? text.padEnd(widths[i]!) : text.padStart(widths[i]!))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(header), rule, ...cells.map(line)].join("\n");
}
