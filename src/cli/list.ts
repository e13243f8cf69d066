/** `dropbox list`: the files in the cluster, optionally under a prefix. */
import { masterAddress } from "./args";
import { MasterApi } from "../rpc/client";
import { listFiles } from "../client/catalog";
import { formatBytes, formatTime, report, table, type OutputOptions } from "./output";
import { EXIT } from "./exit-codes";

export interface ListFlags extends OutputOptions {
  master?: unknown;
}

export async function listCommand(prefix: string | undefined, flags: ListFlags, argv: string[]): Promise<number> {
  const master = new MasterApi(masterAddress(argv, flags.master));
  try {
    const files = await listFiles(master, prefix === undefined ? "" : String(prefix));
    report(flags, { files }, () =>
      files.length === 0
        ? "no files"
        : table(
            ["NAME", "SIZE", "CHUNKS", "CREATED"],
            files.map((f) => [f.name, formatBytes(f.size), String(f.chunkCount), formatTime(f.createdAtMs)]),
          ),
    );
    return EXIT.OK;
  } finally {
    master.close();
  }
}
