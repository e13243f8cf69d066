/**
 * What a many-file transfer prints, written as each file's outcome arrives (in plan order),
 * so that reporting a million files costs no memory:
 * - with --json, one document `{"files":[...], ...}` whose file entries are streamed out;
 * - as text into a pipe or file, a line per file as it is done;
 * - as text on a terminal with live progress, the lines wait for the progress board to
 *   close: the first LIVE_LINES_KEPT of each kind, then a count of the rest.
 * Failed files are listed after the files in the JSON document, so those are kept; the
 * command's error names how many failed and the first.
 */
import { DropboxError, invalidArgument } from "../core/errors";
import { failureOf } from "../client/transfers";
import { BufferedOut, StreamedJsonList, type OutputOptions } from "./output";

/** Lines of each kind (done, failed) a terminal report keeps until the progress board closes. */
const LIVE_LINES_KEPT = 1000;

export class TransferReport {
  /** Files done, and their bytes. */
  done = 0;
  bytes = 0;
  failed = 0;
  private firstFailure: { label: string; error: unknown } | null = null;
  private readonly failedEntries: object[] = [];
  private readonly out = new BufferedOut();
  private readonly json = new StreamedJsonList(this.out, "files");
  private readonly held = { done: [] as string[], failed: [] as string[], doneDropped: 0, failedDropped: 0 };

  /** `live`: a progress board is on the terminal until `finish`. */
  constructor(
    private readonly options: OutputOptions,
    private readonly live: boolean,
  ) {}

  /** A file done: its JSON entry and its line of text. */
  fileDone(entry: object, line: string, bytes: number) {
    this.done++;
    this.bytes += bytes;
    if (this.options.json) this.json.push(entry);
    else if (!this.options.quiet) this.line(line, "done");
  }

  /** A file failed: its JSON entry, its line of text, and what the exit error calls it. */
  fileFailed(entry: object, line: string, label: string, error: unknown) {
    this.failed++;
    this.firstFailure ??= { label, error };
    if (this.options.json) this.failedEntries.push(entry);
    else if (!this.options.quiet) this.line(line, "failed");
  }

  /** The failed files' JSON entries, for the document's tail. */
  failures(): object[] {
    return this.failedEntries;
  }

  /**
   * Ends the report (call after the progress board closed): the rest of the JSON document
   * (`tail`'s keys after "files"), or the held lines and the summary line.
   */
  finish(tail: Record<string, unknown>, summary: string | null) {
    if (this.options.json) return this.json.end(tail);
    if (this.options.quiet) return;
    const { held, out } = this;
    for (const line of held.done) out.write(`${line}\n`);
    if (held.doneDropped > 0) out.write(`… and ${held.doneDropped} more files (--json lists every one)\n`);
    for (const line of held.failed) out.write(`${line}\n`);
    if (held.failedDropped > 0) out.write(`… and ${held.failedDropped} more failed files (--json lists every one)\n`);
    if (summary) out.write(`${summary}\n`);
    out.flush();
  }

  /** The error to exit with when files failed: the first failure's kind, naming how many failed. */
  error(): Error | null {
    const first = this.firstFailure;
    if (!first) return null;
    const total = this.done + this.failed;
    if (total === 1) return first.error as Error;
    const message = `${this.failed} of ${total} files failed; first: ${first.label}: ${failureOf(first.error).message}`;
    if (first.error instanceof DropboxError) return new DropboxError(first.error.kind, message);
    // A local filesystem error (permission, a file where a directory must go): a usage problem.
    if ((first.error as NodeJS.ErrnoException)?.syscall) return invalidArgument(message);
    return new Error(message);
  }

  private line(line: string, kind: "done" | "failed") {
    if (!this.live) return this.out.write(`${line}\n`);
    const lines = this.held[kind];
    if (lines.length < LIVE_LINES_KEPT) lines.push(line);
    else if (kind === "done") this.held.doneDropped++;
    else this.held.failedDropped++;
  }
}
