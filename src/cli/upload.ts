/** `dropbox upload`: store local files (and, with -r, directory trees) in the cluster. */
import { masterAddress, stringFlag } from "./args";
import { invalidArgument } from "../core/errors";
import { DEFAULT_CHUNK_SIZE_BYTES } from "../core/limits";
import { parseSize } from "../core/size";
import { MasterApi, StoragePool } from "../rpc/client";
import { assertUploadChunkSize } from "../client/upload";
import { UPLOAD_FILES_IN_FLIGHT, failureOf, planUpload, prefixDirectory, uploadMany } from "../client/transfers";
import { formatBytes, formatDuration, liveOutput, note, report, type OutputOptions } from "./output";
import { transferProgress } from "./progress";
import { batchError } from "./transfer-result";
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
  const { items, skipped } = await planUpload(paths.map(String), { recursive: Boolean(flags.recursive), prefix, as });
  for (const s of skipped) note(flags, `skipped ${s.path}: ${s.reason}`);

  const master = new MasterApi(masterAddress(argv, flags.master));
  const pool = new StoragePool();
  try {
    const started = Date.now();
    const progress = transferProgress(liveOutput(flags), "uploading", items, (item) => item.name, UPLOAD_FILES_IN_FLIGHT);
    const outcomes = await uploadMany(master, pool, items, chunkSize, progress.events);
    await progress.finish();
    const elapsedMs = Date.now() - started;
    const done = outcomes.flatMap((o) => (o.result ? [o.result] : []));
    const failed = outcomes.filter((o) => o.error !== undefined).map((o) => ({ path: o.item.path, name: o.item.name, error: failureOf(o.error) }));
    const bytes = done.reduce((sum, r) => sum + r.file.size, 0);
    report(
      flags,
      {
        files: done.map((r) => ({ ...r.file, chunksWritten: r.chunksWritten, chunksDeduplicated: r.chunksDeduplicated, retries: r.retries })),
        skipped,
        failed,
        totals: { files: done.length, bytes, elapsedMs, retries: done.reduce((sum, r) => sum + r.retries, 0) },
      },
      () => {
        const lines = done.map((r) => `uploaded ${r.file.name} (${formatBytes(r.file.size)}, ${r.file.chunkCount} chunks, ${r.chunksWritten} copies written, ${r.chunksDeduplicated} deduplicated${r.retries ? `, ${r.retries} retried` : ""})`);
        for (const f of failed) lines.push(`FAILED ${f.name} (${f.path}): ${f.error.message}`);
        if (items.length === 0) lines.push("no files to upload");
        else if (items.length > 1) lines.push(`${done.length} of ${items.length} files uploaded, ${formatBytes(bytes)} in ${formatDuration(elapsedMs)}`);
        return lines.join("\n");
      },
    );
    const error = batchError(outcomes, (item) => item.path);
    if (error) throw error;
    return EXIT.OK;
  } finally {
    pool.close();
    master.close();
  }
}
