/** Listing and deleting remote files. */
import { assertName, assertPrefix } from "../core/names";
import type { MasterApi } from "../rpc/client";
import type { FileInfo, GetManifestResponse } from "../rpc/messages";

/** The files under `prefix`, a page of the master's listing at a time. */
export async function* filePages(master: MasterApi, prefix = ""): AsyncGenerator<FileInfo[]> {
  assertPrefix(prefix);
  let startAfter = "";
  for (;;) {
    const page = await master.listFiles({ prefix, startAfter });
    if (page.files.length > 0) yield page.files;
    if (!page.truncated || page.files.length === 0) return;
    startAfter = page.files[page.files.length - 1]!.name;
  }
}

/** Every file under `prefix`, paging through the master's listing. */
export async function listFiles(master: MasterApi, prefix = ""): Promise<FileInfo[]> {
  const all: FileInfo[] = [];
  for await (const page of filePages(master, prefix)) for (const file of page) all.push(file);
  return all;
}

/** True when a listed manifest carries all of its file's chunks. */
export const isWhole = (manifest: GetManifestResponse) => manifest.chunks.length === manifest.file!.chunkCount;

/** Deletes a file by name; NOT_FOUND when there is none. */
export async function deleteFile(master: MasterApi, name: string): Promise<FileInfo> {
  const response = await master.deleteFile({ filename: assertName(name) });
  return response.file!;
}
