/** `dropbox download`: fetch a file from the cluster, or with -r every file under a prefix into a directory. */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { masterAddress } from "./args";
import { invalidArgument } from "../core/errors";
import { assertName } from "../core/names";
import { MasterApi, StoragePool } from "../rpc/client";
import { downloadFile } from "../client/download";
import { planDownload } from "../client/plans";
import { DOWNLOAD_FILES_IN_FLIGHT, type DownloadItem, type Outcome, downloadMany, failureOf } from "../client/transfers";
import type { FileInfo } from "../rpc/messages";
import { formatBytes, formatDuration, liveOutput, report, type OutputOptions } from "./output";
import { transferProgress } from "./progress";
import { TransferReport } from "./transfer-report";
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
    const progress = transferProgress(target !== "-" && liveOutput(flags), "downloading", { files: 1, bytes: 0 }, () => name, 1);
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
    const plan = await planDownload(master, prefix, dir);
    const started = Date.now();
    const live = liveOutput(flags);
    const progress = transferProgress(live, "downloading", plan, (item: DownloadItem) => item.name, DOWNLOAD_FILES_IN_FLIGHT);
    const out = new TransferReport(flags, live);
    const onOutcome = (o: Outcome<DownloadItem, FileInfo>) => {
      if (o.result) {
        const file = o.result;
        out.fileDone({ ...file, output: o.item.output }, `downloaded ${file.name} to ${o.item.output} (${formatBytes(file.size)}, content hash verified)`, file.size);
      } else {
        const error = failureOf(o.error);
        out.fileFailed({ name: o.item.name, output: o.item.output, error }, `FAILED ${o.item.name}: ${error.message}`, o.item.name, o.error);
      }
    };
    // A listing that fails part-way (the master went away) ends the command once the files in
    // flight are done; the report still closes over what came down.
    const fetched = await downloadMany(master, pool, plan, onOutcome, progress.events).then(() => null, (err: unknown) => err);
    await progress.finish();
    const elapsedMs = Date.now() - started;
    out.finish({ failed: out.failures(), totals: { files: out.done, bytes: out.bytes, elapsedMs } }, `${out.done} of ${out.done + out.failed} files downloaded, ${formatBytes(out.bytes)} in ${formatDuration(elapsedMs)}`);
    if (fetched) throw fetched;
    const error = out.error();
    if (error) throw error;
    return EXIT.OK;
  } finally {
    pool.close();
    master.close();
  }
}
