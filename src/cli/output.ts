/** How commands speak: human text, exactly one JSON document with --json, nothing but errors with --quiet. */
import { formatBytes } from "../core/size";
import { writeOut, writeErr } from "../core/stdio";

/** Output flags every reporting command takes. */
export interface OutputOptions {
  json?: boolean;
  quiet?: boolean;
}

/** Prints a command's result: `json` with --json, else `text()` unless --quiet. */
export function report(options: OutputOptions, json: unknown, text: () => string) {
  if (options.json) writeOut(`${JSON.stringify(json)}\n`);
  else if (!options.quiet) {
    const out = text();
    if (out) writeOut(out.endsWith("\n") ? out : `${out}\n`);
  }
}

/** Column widths for rows under headers: the widest cell of each column. */
export function columnWidths(headers: string[], rows: string[][]): number[] {
  // A loop, not Math.max(...column): spreading a million rows into one call overflows the stack.
  const widths = headers.map((h) => h.length);
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i]!, cell.length)));
  return widths;
}

/** One row in columns of the given widths (a wider cell pushes the rest of its own row only). */
export const tableLine = (cells: string[], widths: number[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ");

/** Lays out rows under headers in aligned columns. */
export function table(headers: string[], rows: string[][]): string {
  const widths = columnWidths(headers, rows);
  return [tableLine(headers, widths), ...rows.map((row) => tableLine(row, widths))].join("\n");
}

/** Output gathered before one write: a system call per 64 KiB rather than per line. */
const OUT_FLUSH_BYTES = 64 * 1024;

/** Stdout written in 64 KiB pieces, for reports that stream a line or an entry per file. */
export class BufferedOut {
  private pending = "";

  constructor(private readonly sink: (text: string) => unknown = writeOut) {}

  write(text: string) {
    this.pending += text;
    if (this.pending.length >= OUT_FLUSH_BYTES) this.flush();
  }

  flush() {
    if (this.pending) this.sink(this.pending);
    this.pending = "";
  }
}

/**
 * One JSON document `{"KEY":[...], ...tail}` written as its list's entries arrive, so a report
 * of a million entries is never held whole.
 */
export class StreamedJsonList {
  /** True once the document has begun on stdout (and so must be ended, even after a failure). */
  started = false;

  constructor(
    private readonly out: BufferedOut,
    private readonly key: string,
  ) {}

  push(entry: unknown) {
    this.out.write(`${this.started ? "," : `{${JSON.stringify(this.key)}:[`}${JSON.stringify(entry)}`);
    this.started = true;
  }

  /** Closes the list, adds `tail`'s keys after it, and flushes. */
  end(tail: Record<string, unknown> = {}) {
    const rest = JSON.stringify(tail).slice(1);
    this.out.write(`${this.started ? "]" : `{${JSON.stringify(this.key)}:[]`}${rest === "}" ? "}" : `,${rest}`}\n`);
    this.started = true;
    this.out.flush();
  }
}

export { formatBytes };

/** A timestamp for people: local date and time to the second. */
export function formatTime(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A duration for people: `850ms`, `42s`, `5m03s`, `2h07m`, `3d04h`. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return "-";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1000);
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${pad(Math.floor((s % 86_400) / 3600))}h`;
}

/** Whether live progress (listr2, control codes) may be drawn: a sized terminal, outside CI, not --json or --quiet. */
export function liveOutput(options: OutputOptions): boolean {
  if (options.json || options.quiet) return false;
  const ci = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false" && process.env.CI !== "0";
  // listr2 on a terminal reporting 0 columns prints garbage.
  return Boolean(process.stdout.isTTY && process.stdout.columns && !ci);
}

/** A note for people on stderr (never with --json or --quiet, so stdout stays one document). */
export function note(options: OutputOptions, line: string) {
  if (!options.json && !options.quiet) writeErr(`${line}\n`);
}
