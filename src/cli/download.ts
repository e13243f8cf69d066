/** `dropbox download`: fetch a file from the cluster. */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { masterAddress, stringFlag } from "./args";
import { assertName } from "../core/names";
import { MasterApi, StoragePool } from "../rpc/client";
import { downloadFile } from "../client/download";
import { formatBytes, report, type OutputOptions } from "./output";
import { EXIT } from "./exit-codes";

export interface DownloadFlags extends OutputOptions {
  master?: unknown;
}

export async function downloadCommand(name: string, output: string | undefined, flags: DownloadFlags, argv: string[]): Promise<number> {
  assertName(name);
  const baseName = name.slice(name.lastIndexOf("/") + 1);
  let target = output ?? baseName;
  if (target !== "-" && (await stat(target).then((s) => s.isDirectory(), () => false))) target = join(target, baseName);
  const master = new MasterApi(masterAddress(argv, flags.master));
  const pool = new StoragePool();
  try {
    const file = await downloadFile({ master, pool, name, output: target });
    // With '-' the file's bytes are stdout: say nothing more there.
    if (target !== "-") report(flags, { file, output: target }, () => `downloaded ${file.name} to ${target} (${formatBytes(file.size)}, content hash verified)`);
    return EXIT.OK;
  } finally {
    pool.close();
    master.close();
  }
}
