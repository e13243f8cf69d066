/** Listing and deleting remote files. */
import { assertName, assertPrefix } from "../core/names";
import type { MasterApi } from "../rpc/client";
import type { FileInfo, GetManifestResponse } from "../rpc/messages";

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

/**
 * Every file under `prefix` with its manifest, paging through the master's ListManifests.
 * Files too large to come whole in a page have no chunks here (see `isWhole`).
 */
export async function listManifests(master: MasterApi, prefix = ""): Promise<GetManifestResponse[]> {
  assertPrefix(prefix);
  const manifests: GetManifestResponse[] = [];
  let startAfter = "";
  for (;;) {
    const page = await master.listManifests({ prefix, startAfter });
    manifests.push(...page.manifests);
    if (!page.truncated || page.manifests.length === 0) return manifests;
    startAfter = page.manifests[page.manifests.length - 1]!.file!.name;
  }
}

/** True when a listed manifest carries all of its file's chunks. */
export const isWhole = (manifest: GetManifestResponse) => manifest.chunks.length === manifest.file!.chunkCount;

/** Deletes a file by name; NOT_FOUND when there is none. */
export async function deleteFile(master: MasterApi, name: string): Promise<FileInfo> {
  const response = await master.deleteFile({ filename: assertName(name) });
  return response.file!;
}
