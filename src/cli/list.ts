/** `dropbox list`: the files in the cluster, optionally under a prefix. */
import { masterAddress } from "./args";
import { MasterApi } from "../rpc/client";
import { filePages } from "../client/catalog";
import type { FileInfo } from "../rpc/messages";
import { BufferedOut, columnWidths, formatBytes, formatTime, StreamedJsonList, tableLine, type OutputOptions } from "./output";
import { EXIT } from "./exit-codes";

export interface ListFlags extends OutputOptions {
  master?: unknown;
}

const HEADERS = ["NAME", "SIZE", "CHUNKS", "CREATED"];
/**
 * Rows that set the table's column widths. A longer listing is printed as it is read, the
 * rows after these in the same widths (a longer name pushes the rest of its own row only), so
 * listing a million files costs no more memory than listing ten thousand.
 */
const ROWS_SIZING_TABLE = 10_000;

const rowOf = (f: FileInfo) => [f.name, formatBytes(f.size), String(f.chunkCount), formatTime(f.createdAtMs)];

export async function listCommand(prefix: string | undefined, flags: ListFlags, argv: string[]): Promise<number> {
  const master = new MasterApi(masterAddress(argv, flags.master));
  const pages = filePages(master, prefix === undefined ? "" : String(prefix));
  const out = new BufferedOut();
  try {
    if (flags.json) await listJson(pages, new StreamedJsonList(out, "files"));
    else if (flags.quiet) for await (const _ of pages);
    else await listTable(pages, out);
    return EXIT.OK;
  } finally {
    master.close();
  }
}

export async function listJson(pages: AsyncIterable<FileInfo[]>, doc: StreamedJsonList) {
  try {
    for await (const page of pages) for (const file of page) doc.push(file);
  } catch (err) {
    // Part of the document is out already: close it, so stdout stays one whole document (the exit code says it is cut short).
    if (doc.started) doc.end();
    throw err;
  }
  doc.end();
}

export async function listTable(pages: AsyncIterable<FileInfo[]>, out: BufferedOut, sizingRows = ROWS_SIZING_TABLE) {
  let sizing: string[][] | null = [];
  let widths: number[] = [];
  const printSizing = () => {
    widths = columnWidths(HEADERS, sizing!);
    out.write(`${tableLine(HEADERS, widths)}\n`);
    for (const row of sizing!) out.write(`${tableLine(row, widths)}\n`);
    sizing = null;
  };
  try {
    for await (const page of pages) {
      for (const file of page) {
        if (!sizing) out.write(`${tableLine(rowOf(file), widths)}\n`);
        else if (sizing.push(rowOf(file)) >= sizingRows) printSizing();
      }
    }
    if (sizing?.length === 0) out.write("no files\n");
    else if (sizing) printSizing();
  } finally {
    out.flush();
  }
}
