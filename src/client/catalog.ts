/** Listing and deleting remote files. */
import { assertName, assertPrefix } from "../core/names";
import type { MasterApi } from "../rpc/client";
import type { FileInfo, GetManifestResponse } from "../rpc/messages";

/** Every entry of a listing by name, page after page, until a page says it is the last. */
async function everyPage<T>(page: (startAfter: string) => Promise<{ entries: T[]; truncated: boolean }>, nameOf: (entry: T) => string): Promise<T[]> {
  const all: T[] = [];
  let startAfter = "";
  for (;;) {
    const { entries, truncated } = await page(startAfter);
    all.push(...entries);
    if (!truncated || entries.length === 0) return all;
    startAfter = nameOf(entries[entries.length - 1]!);
  }
}

/** Every file under `prefix`, paging through the master's listing. */
export async function listFiles(master: MasterApi, prefix = ""): Promise<FileInfo[]> {
  assertPrefix(prefix);
  return everyPage(async (startAfter) => {
    const page = await master.listFiles({ prefix, startAfter });
    return { entries: page.files, truncated: page.truncated };
  }, (file) => file.name);
}

/** True when a listed manifest carries all of its file's chunks. */
export const isWhole = (manifest: GetManifestResponse) => manifest.chunks.length === manifest.file!.chunkCount;

/** Deletes a file by name; NOT_FOUND when there is none. */
export async function deleteFile(master: MasterApi, name: string): Promise<FileInfo> {
  const response = await master.deleteFile({ filename: assertName(name) });
  return response.file!;
}
