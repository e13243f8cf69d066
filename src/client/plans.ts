/**
 * Plans for many-file transfers. A plan is checked in full before anything is sent: every
 * name valid, no two files stored under one name, nothing written outside the target
 * directory; files and bytes counted. Up to PLAN_KEPT_FILES items are kept from that pass.
 * A larger plan hands its items out by walking (or listing) again as the transfer goes, so a
 * tree of a million files costs the client no more memory than one of ten thousand.
 */
import { readdirSync, statSync } from "node:fs";
import { lstat, stat } from "node:fs/promises";
import { basename, join, resolve, sep } from "node:path";
import { invalidArgument, notFound } from "../core/errors";
import { assertName, assertPrefix } from "../core/names";
import type { MasterApi } from "../rpc/client";
import type { FileInfo, GetManifestResponse } from "../rpc/messages";
import { filePages, isWhole, manifestPages } from "./catalog";
import type { DownloadItem, Plan, Skipped, UploadItem } from "./transfers";

/**
 * Items a plan keeps from its checking pass (a few hundred bytes each). Up to this many, the
 * tree is walked (or the listing read) once; above it, twice: once to check, once to send.
 */
export const PLAN_KEPT_FILES = 10_000;

/** `--prefix` as a directory: empty, or ending in exactly one '/'. */
export function prefixDirectory(prefix: string | undefined): string {
  const p = assertPrefix(prefix ?? "");
  if (p === "") return "";
  return p.endsWith("/") ? p : `${p}/`;
}

// ---- Upload

/** A regular file found under a directory given to `upload -r`. */
interface FoundFile {
  path: string;
  /** Its path below the directory, '/'-separated. */
  relative: string;
  size: number;
}

/**
 * A directory's entries in the order of the paths they lead to: a directory's name sorts as
 * if followed by '/', so a depth-first walk yields relative paths in code-unit order.
 */
function sortedEntries(dir: string) {
  const entries = readdirSync(dir, { withFileTypes: true }).map((e) => ({ entry: e, key: e.isDirectory() ? `${e.name}/` : e.name }));
  return entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((e) => e.entry);
}

/**
 * The regular files under `root`, depth first, in the code-unit order of their relative
 * paths. Anything else is skipped, with a reason, into `skipped` when given. Holds one
 * directory's entries per level, never the whole tree.
 *
 * The file system is asked synchronously: a stat is a few microseconds on the main thread,
 * against ~25 through the runtime's thread pool, where a walk that feeds transfers also
 * queues behind their reads and writes (20,000 files: 0.5 s to plan, and lanes left idle).
 */
function* walkTree(root: string, skipped: Skipped[] | null, below = ""): Generator<FoundFile> {
  const dir = below === "" ? root : join(root, ...below.split("/"));
  for (const entry of sortedEntries(dir)) {
    const relative = below === "" ? entry.name : `${below}/${entry.name}`;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walkTree(root, skipped, relative);
    else if (entry.isFile()) yield { path, relative, size: statSync(path).size };
    else skipped?.push({ path, reason: entry.isSymbolicLink() ? "symbolic link (not followed)" : "not a regular file" });
  }
}

/**
 * Merges iterators that each yield in ascending `key` order into one ascending sequence,
 * naming the iterator each value came from (on equal keys, the earlier iterator first).
 * Holds one value per iterator.
 */
function* mergeSorted<T>(iterators: Iterator<T>[], key: (value: T) => string): Generator<{ value: T; from: number }> {
  // Heads in descending (key, iterator) order: the smallest is popped from the end.
  const heads: { value: T; key: string; from: number }[] = [];
  const advance = (from: number) => {
    const next = iterators[from]!.next();
    if (next.done) return;
    const head = { value: next.value, key: key(next.value), from };
    let lo = 0;
    let hi = heads.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const other = heads[mid]!;
      if (other.key > head.key || (other.key === head.key && other.from > from)) lo = mid + 1;
      else hi = mid;
    }
    heads.splice(lo, 0, head);
  };
  for (let i = 0; i < iterators.length; i++) advance(i);
  while (heads.length > 0) {
    const { value, from } = heads.pop()!;
    yield { value, from };
    advance(from);
  }
}

/** One path given to `upload`: a plain file (already named), or a directory to walk. */
type UploadSource = { file: UploadItem } | { directory: string };

/** An upload plan, with what the walk skipped (links, devices, sockets). */
export interface UploadPlan extends Plan<UploadItem> {
  skipped: Skipped[];
}

const duplicate = (first: string, second: string, name: string) => invalidArgument(`${first} and ${second} would both be stored as ${JSON.stringify(name)}`);

/**
 * What `upload` will send: every path given, directories expanded with `recursive`
 * (remote name = prefix + path relative to the directory), plain files as prefix +
 * basename (or `as`). Every name is validated, and duplicates refused, before anything is
 * sent: the directories' sorted walks are merged, so equal names meet side by side.
 */
export async function planUpload(paths: string[], options: { recursive: boolean; prefix: string; as?: string; keepFiles?: number }): Promise<UploadPlan> {
  const keepFiles = options.keepFiles ?? PLAN_KEPT_FILES;
  const sources: UploadSource[] = [];
  for (const path of paths) {
    const info = await lstat(path).catch(() => null);
    if (!info) throw invalidArgument(`${path}: no such file`);
    if (info.isDirectory()) {
      if (!options.recursive) throw invalidArgument(`${path} is a directory; use -r to upload the files in it`);
      sources.push({ directory: path });
    } else {
      // A symlink named on the command line is followed, as `cp` does.
      const target = info.isSymbolicLink() ? await stat(path).catch(() => null) : info;
      if (!target?.isFile()) throw invalidArgument(`${path} is not a regular file`);
      sources.push({ file: { path, name: options.as ?? options.prefix + basename(path), size: target.size } });
    }
  }

  const skipped: Skipped[] = [];
  // Per source, what the checking pass found, while the plan is small enough to keep it.
  let kept: UploadItem[][] | null = sources.map((source) => ("file" in source ? [source.file] : []));
  let files = 0;
  let bytes = 0;
  const count = (item: UploadItem) => {
    files++;
    bytes += item.size;
    if (files > keepFiles) kept = null;
  };
  // Plain files are as many as the command line holds: their names are checked in a map.
  const plainNames = new Map<string, string>();
  for (const source of sources) {
    if (!("file" in source)) continue;
    const { name, path } = source.file;
    assertName(name);
    const other = plainNames.get(name);
    if (other !== undefined) throw duplicate(other, path, name);
    plainNames.set(name, path);
    count(source.file);
  }
  const directories = sources.flatMap((source, index) => ("directory" in source ? [{ root: source.directory, index }] : []));
  const walks = directories.map(({ root }) => walkTree(root, skipped));
  let previous: UploadItem | null = null;
  for (const { value, from } of mergeSorted(walks, (found) => found.relative)) {
    const item = { path: value.path, name: options.prefix + value.relative, size: value.size };
    assertName(item.name);
    if (previous?.name === item.name) throw duplicate(previous.path, item.path, item.name);
    const other = plainNames.get(item.name);
    if (other !== undefined) throw duplicate(other, item.path, item.name);
    previous = item;
    count(item);
    (kept as UploadItem[][] | null)?.[directories[from]!.index]!.push(item);
  }

  const whole = kept as UploadItem[][] | null;
  return {
    files,
    bytes,
    skipped,
    items: () => (whole ? whole.flat() : walkAgain(sources, options.prefix)),
  };
}

/** The plan's items found afresh, in plan order (a large plan's transfer pass). */
function* walkAgain(sources: UploadSource[], prefix: string): Generator<UploadItem> {
  for (const source of sources) {
    if ("file" in source) yield source.file;
    else for (const found of walkTree(source.directory, null)) yield { path: found.path, name: prefix + found.relative, size: found.size };
  }
}

// ---- Download

/**
 * What `download -r PREFIX DIR` will fetch: every file under PREFIX (taken as a directory),
 * each to DIR + its path below PREFIX. A name that would land outside DIR is refused before
 * anything is written. Small files come with their manifests (one ListManifests call per
 * 1000 files rather than a listing plus a manifest call per file); a plan too large to keep
 * reads the listing again, page by page, as the transfer goes.
 */
export async function planDownload(master: MasterApi, prefix: string, dir: string, keepFiles = PLAN_KEPT_FILES): Promise<Plan<DownloadItem>> {
  const base = prefixDirectory(prefix);
  const root = resolve(dir);
  const itemOf = (file: FileInfo, manifest?: GetManifestResponse): DownloadItem => {
    const rel = file.name.slice(base.length);
    const output = resolve(root, ...rel.split("/"));
    if (rel === "" || !output.startsWith(root + sep)) throw invalidArgument(`refusing ${JSON.stringify(file.name)}: it would be written outside ${dir}`);
    return { name: file.name, output, size: file.size, manifest: manifest && isWhole(manifest) ? manifest : undefined };
  };

  const kept: DownloadItem[] = [];
  let keptWhole = true;
  let files = 0;
  let bytes = 0;
  let lastName = "";
  const count = (items: DownloadItem[]) => {
    for (const item of items) {
      files++;
      bytes += item.size;
      lastName = item.name;
    }
    return items;
  };
  // While the plan is kept, pages come with manifests; past that, names and sizes suffice.
  for await (const page of manifestPages(master, base)) {
    const items = count(page.map((m) => itemOf(m.file!, m)));
    if (kept.length + items.length > keepFiles) {
      keptWhole = false;
      kept.length = 0;
      break;
    }
    kept.push(...items);
  }
  if (!keptWhole) for await (const page of filePages(master, base, lastName)) count(page.map((f) => itemOf(f)));
  if (files === 0) throw notFound(base ? `no files under ${JSON.stringify(base)}` : "no files in the cluster");

  return { files, bytes, items: () => (keptWhole ? kept : listAgain(master, base, itemOf)) };
}

/** The plan's items listed afresh, a page at a time (a large plan's transfer pass). */
async function* listAgain(master: MasterApi, prefix: string, itemOf: (file: FileInfo, manifest?: GetManifestResponse) => DownloadItem): AsyncGenerator<DownloadItem> {
  for await (const page of manifestPages(master, prefix)) for (const manifest of page) yield itemOf(manifest.file!, manifest);
}
