/** `dropbox upload`: store local files (and, with -r, directory trees) in the cluster. */
import { masterAddress, stringFlag } from "./args";
import { invalidArgument } from "../core/errors";
import { DEFAULT_CHUNK_SIZE_BYTES } from "../core/limits";
import { parseSize } from "../core/size";
import { MasterApi, StoragePool } from "../rpc/client";
import { assertUploadChunkSize, type UploadResult } from "../client/upload";
import { planUpload, prefixDirectory } from "../client/plans";
import { type Outcome, UPLOAD_FILES_IN_FLIGHT, type UploadItem, failureOf, uploadMany } from "../client/transfers";
import { formatBytes, formatDuration, liveOutput, note, type OutputOptions } from "./output";
import { transferProgress } from "./progress";
import { TransferReport } from "./transfer-report";
import { EXIT } from "./exit-codes";

export interface UploadFlags extends OutputOptions {
  master?: unknown;
  as?: unknown;
  chunkSize?: unknown;
  recursive?: boolean;
  prefix?: unknown;
}

export async function uploadCommand(paths: string[], flags: UploadFlags, argv: string[]): Promise<number> {
  const as = stringFlag(argv, "as", flags.as);
  const prefix = prefixDirectory(stringFlag(argv, "prefix", flags.prefix));
  if (as !== undefined && (paths.length !== 1 || flags.recursive)) throw invalidArgument("--as names one file; give exactly one file (and no -r) with it");
  if (as !== undefined && prefix !== "") throw invalidArgument("--as and --prefix do not go together: --as gives the whole name");
  const chunkSize = assertUploadChunkSize(flags.chunkSize === undefined ? DEFAULT_CHUNK_SIZE_BYTES : parseSize(stringFlag(argv, "chunk-size", flags.chunkSize), "--chunk-size"));
  const plan = await planUpload(paths.map(String), { recursive: Boolean(flags.recursive), prefix, as });
  for (const s of plan.skipped) note(flags, `skipped ${s.path}: ${s.reason}`);

  const master = new MasterApi(masterAddress(argv, flags.master));
  const pool = new StoragePool();
  try {
    const started = Date.now();
    const live = liveOutput(flags);
    const progress = transferProgress(live, "uploading", plan, (item: UploadItem) => item.name, UPLOAD_FILES_IN_FLIGHT);
    const out = new TransferReport(flags, live);
    let retries = 0;
    const onOutcome = (o: Outcome<UploadItem, UploadResult>) => {
      if (o.result) {
        const r = o.result;
        retries += r.retries;
        out.fileDone(
          { ...r.file, chunksWritten: r.chunksWritten, chunksDeduplicated: r.chunksDeduplicated, retries: r.retries },
          `uploaded ${r.file.name} (${formatBytes(r.file.size)}, ${r.file.chunkCount} chunks, ${r.chunksWritten} copies written, ${r.chunksDeduplicated} deduplicated${r.retries ? `, ${r.retries} retried` : ""})`,
          r.file.size,
        );
      } else {
        const error = failureOf(o.error);
        out.fileFailed({ path: o.item.path, name: o.item.name, error }, `FAILED ${o.item.name} (${o.item.path}): ${error.message}`, o.item.path, o.error);
      }
    };
    // A walk that fails part-way (a directory removed meanwhile) ends the command once the
    // files in flight are done; the report still closes over what was sent.
    const sent = await uploadMany(master, pool, plan, chunkSize, onOutcome, progress.events).then(() => null, (err: unknown) => err);
    await progress.finish();
    const elapsedMs = Date.now() - started;
    const attempted = out.done + out.failed;
    out.finish(
      { skipped: plan.skipped, failed: out.failures(), totals: { files: out.done, bytes: out.bytes, elapsedMs, retries } },
      attempted === 0 ? "no files to upload" : attempted > 1 ? `${out.done} of ${attempted} files uploaded, ${formatBytes(out.bytes)} in ${formatDuration(elapsedMs)}` : null,
    );
    if (sent) throw sent;
    const error = out.error();
    if (error) throw error;
    return EXIT.OK;
  } finally {
    pool.close();
    master.close();
  }
}
