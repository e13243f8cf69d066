/** `dropbox upload`: store local files in the cluster. */
import { basename } from "node:path";
import { stat } from "node:fs/promises";
import { masterAddress, stringFlag } from "./args";
import { invalidArgument } from "../core/errors";
import { DEFAULT_CHUNK_SIZE_BYTES } from "../core/limits";
import { parseSize } from "../core/size";
import { MasterApi, StoragePool } from "../rpc/client";
import { assertUploadChunkSize, uploadFile, type UploadResult } from "../client/upload";
import { formatBytes, report, type OutputOptions } from "./output";
import { EXIT } from "./exit-codes";

export interface UploadFlags extends OutputOptions {
  master?: unknown;
  as?: unknown;
  chunkSize?: unknown;
}

export async function uploadCommand(paths: string[], flags: UploadFlags, argv: string[]): Promise<number> {
  const as = stringFlag(argv, "as", flags.as);
  if (as !== undefined && paths.length !== 1) throw invalidArgument("--as names one file; give exactly one path with it");
  const chunkSize = assertUploadChunkSize(flags.chunkSize === undefined ? DEFAULT_CHUNK_SIZE_BYTES : parseSize(stringFlag(argv, "chunk-size", flags.chunkSize), "--chunk-size"));
  for (const path of paths) {
    const info = await stat(path).catch(() => null);
    if (!info) throw invalidArgument(`${path}: no such file`);
    if (!info.isFile()) throw invalidArgument(`${path} is not a regular file`);
  }
  const master = new MasterApi(masterAddress(argv, flags.master));
  const pool = new StoragePool();
  try {
    const results: UploadResult[] = [];
    for (const path of paths) {
      results.push(await uploadFile({ master, pool, path, name: as ?? basename(path), chunkSize }));
    }
    report(
      flags,
      { files: results.map((r) => ({ ...r.file, chunksWritten: r.chunksWritten, chunksDeduplicated: r.chunksDeduplicated })) },
      () =>
        results
          .map((r) => `uploaded ${r.file.name} (${formatBytes(r.file.size)}, ${r.file.chunkCount} chunks, ${r.chunksWritten} copies written, ${r.chunksDeduplicated} deduplicated)`)
          .join("\n"),
    );
    return EXIT.OK;
  } finally {
    pool.close();
    master.close();
  }
}
