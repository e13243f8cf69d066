/** Listing and deleting remote files. */
import { assertName, assertPrefix } from "../core/names";
import type { MasterApi } from "../rpc/client";
import type { FileInfo, GetManifestResponse } from "../rpc/messages";

/** A listing by name, a page at a time after `startAfter`, until a page says it is the last. */
async function* pagesOf<T>(page: (startAfter: string) => Promise<{ entries: T[]; truncated: boolean }>, nameOf: (entry: T) => string, startAfter: string): AsyncGenerator<T[]> {
  for (;;) {
    const { entries, truncated } = await page(startAfter);
    if (entries.length > 0) yield entries;
    if (!truncated || entries.length === 0) return;
    startAfter = nameOf(entries[entries.length - 1]!);
  }
}

/** The files under `prefix` (after `startAfter`), a page of the master's listing at a time. */
export function filePages(master: MasterApi, prefix = "", startAfter = ""): AsyncGenerator<FileInfo[]> {
  assertPrefix(prefix);
  return pagesOf(async (after) => {
    const page = await master.listFiles({ prefix, startAfter: after });
    return { entries: page.files, truncated: page.truncated };
  }, (file) => file.name, startAfter);
}

/**
 * The files under `prefix` with their manifests, a page of the master's ListManifests at a
 * time. Files too large to come whole in a page have no chunks here (see `isWhole`).
 */
export function manifestPages(master: MasterApi, prefix = ""): AsyncGenerator<GetManifestResponse[]> {
  assertPrefix(prefix);
  return pagesOf(async (after) => {
    const page = await master.listManifests({ prefix, startAfter: after });
    return { entries: page.manifests, truncated: page.truncated };
  }, (manifest) => manifest.file!.name, "");
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
