/** `dropbox download`: fetch a file from the cluster, or with -r every file under a prefix into a directory. */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { masterAddress } from "./args";
import { invalidArgument } from "../core/errors";
import { assertName } from "../core/names";
import { MasterApi, StoragePool } from "../rpc/client";
import { downloadFile } from "../client/download";
import { DOWNLOAD_FILES_IN_FLIGHT, downloadMany, failureOf, planDownload } from "../client/transfers";
import { formatBytes, formatDuration, liveOutput, report, type OutputOptions } from "./output";
import { transferProgress } from "./progress";
import { batchError } from "./transfer-result";
import { EXIT } from "./exit-codes";

export interface DownloadFlags extends OutputOptions {
  master?: unknown;
  recursive?: boolean;
}

export async function downloadCommand(name: string, output: string | undefined, flags: DownloadFlags, argv: string[]): Promise<number> {
  if (flags.recursive) return downloadTree(name, output ?? ".", flags, argv);
  assertName(name);
  const baseName = name.slice(name.lastIndexOf("/") + 1);
  let target = output ?? baseName;
  if (target !== "-" && (await stat(target).then((s) => s.isDirectory(), () => false))) target = join(target, baseName);
  const master = new MasterApi(masterAddress(argv, flags.master));
  const pool = new StoragePool();
  try {
    const item = { name, output: target, size: 0 };
    // Progress goes to the terminal; with '-' stdout carries the file's bytes, so none then.
    const progress = transferProgress(target !== "-" && liveOutput(flags), "downloading", [item], () => name, 1);
    progress.events.onStart?.(0, item);
    const file = await downloadFile({ master, pool, name, output: target, onProgress: (bytes) => progress.events.onProgress?.(0, item, bytes) }).finally(() => progress.finish());
    // With '-' the file's bytes are stdout: say nothing more there.
    if (target !== "-") report(flags, { file, output: target }, () => `downloaded ${file.name} to ${target} (${formatBytes(file.size)}, content hash verified)`);
    return EXIT.OK;
  } finally {
    pool.close();
    master.close();
  }
}

/** `download -r PREFIX DIR`: every file under PREFIX, to the same relative path under DIR. */
async function downloadTree(prefix: string, dir: string, flags: DownloadFlags, argv: string[]): Promise<number> {
  if (dir === "-") throw invalidArgument("download -r writes into a directory, not to stdout");
  const master = new MasterApi(masterAddress(argv, flags.master));
  const pool = new StoragePool();
  try {
    const items = await planDownload(master, prefix, dir);
    const started = Date.now();
    const progress = transferProgress(liveOutput(flags), "downloading", items, (item) => item.name, DOWNLOAD_FILES_IN_FLIGHT);
    const outcomes = await downloadMany(master, pool, items, progress.events);
    await progress.finish();
    const elapsedMs = Date.now() - started;
    const done = outcomes.flatMap((o) => (o.result ? [{ file: o.result, output: o.item.output }] : []));
    const failed = outcomes.filter((o) => o.error !== undefined).map((o) => ({ name: o.item.name, output: o.item.output, error: failureOf(o.error) }));
    const bytes = done.reduce((sum, d) => sum + d.file.size, 0);
    report(flags, { files: done.map((d) => ({ ...d.file, output: d.output })), failed, totals: { files: done.length, bytes, elapsedMs } }, () => {
      const lines = done.map((d) => `downloaded ${d.file.name} to ${d.output} (${formatBytes(d.file.size)}, content hash verified)`);
      for (const f of failed) lines.push(`FAILED ${f.name}: ${f.error.message}`);
      lines.push(`${done.length} of ${items.length} files downloaded, ${formatBytes(bytes)} in ${formatDuration(elapsedMs)}`);
      return lines.join("\n");
    });
    const error = batchError(outcomes, (item) => item.name);
    if (error) throw error;
    return EXIT.OK;
  } finally {
    pool.close();
    master.close();
  }
}
