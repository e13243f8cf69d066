/** How commands speak: human text, exactly one JSON document with --json, nothing but errors with --quiet. */
import { formatBytes } from "../core/size";

/** Output flags every reporting command takes. */
export interface OutputOptions {
  json?: boolean;
  quiet?: boolean;
}

/** Prints a command's result: `json` with --json, else `text()` unless --quiet. */
export function report(options: OutputOptions, json: unknown, text: () => string) {
  if (options.json) process.stdout.write(`${JSON.stringify(json)}\n`);
  else if (!options.quiet) {
    const out = text();
    if (out) process.stdout.write(out.endsWith("\n") ? out : `${out}\n`);
  }
}

/** Lays out rows under headers in aligned columns. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ");
  return [line(headers), ...rows.map(line)].join("\n");
}

export { formatBytes };

/** A timestamp for people: local date and time to the second. */
export function formatTime(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
