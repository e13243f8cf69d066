/** Listing and deleting remote files. */
import { assertName, assertPrefix } from "../core/names";
import type { MasterApi } from "../rpc/client";
import type { FileInfo } from "../rpc/messages";

/** Every file under `prefix`, paging through the master's listing. */
export async function listFiles(master: MasterApi, prefix = ""): Promise<FileInfo[]> {
  assertPrefix(prefix);
  const files: FileInfo[] = [];
  let startAfter = "";
  for (;;) {
    const page = await master.listFiles({ prefix, startAfter });
    files.push(...page.files);
    if (!page.truncated || page.files.length === 0) return files;
    startAfter = page.files[page.files.length - 1]!.name;
  }
}

/** Deletes a file by name; NOT_FOUND when there is none. */
export async function deleteFile(master: MasterApi, name: string): Promise<FileInfo> {
  const response = await master.deleteFile({ filename: assertName(name) });
  return response.file!;
}
