/** `dropbox delete`: remove a file's name; its chunks are collected later. */
import { masterAddress } from "./args";
import { MasterApi } from "../rpc/client";
import { deleteFile } from "../client/catalog";
import type { FileInfo } from "../rpc/messages";
import { report, type OutputOptions } from "./output";
import { EXIT } from "./exit-codes";

export interface DeleteFlags extends OutputOptions {
  master?: unknown;
}

export async function deleteCommand(names: string[], flags: DeleteFlags, argv: string[]): Promise<number> {
  const master = new MasterApi(masterAddress(argv, flags.master));
  try {
    const deleted: FileInfo[] = [];
    for (const name of names) deleted.push(await deleteFile(master, name));
    report(flags, { files: deleted }, () => deleted.map((f) => `deleted ${f.name}`).join("\n"));
    return EXIT.OK;
  } finally {
    master.close();
  }
}
