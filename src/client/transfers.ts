/**
 * Moving many files in one command: a bounded number of files in flight, sharing one
 * master channel and one node pool. Each file goes through the single-file engine
 * (`uploadFile` / `downloadFile`); this module only schedules them (plans.ts makes the plans).
 */
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { DropboxError, errorMessage } from "../core/errors";
import { GroupCommit, joinsGroup } from "../core/group-commit";
import { TRANSFER_FILES_BUDGET_BYTES } from "../core/limits";
import type { MasterApi, StoragePool } from "../rpc/client";
import type { FileInfo, GetManifestResponse } from "../rpc/messages";
import { BatchingMaster, BatchingPool } from "./batching";
import { downloadFile } from "./download";
import { uploadFile, type UploadResult } from "./upload";

/**
 * Files in flight at once: small files are latency-bound, and the more files in flight, the
 * fuller each batch the coalescers send (1000 x 4 KiB on 2 cores, up / down: 64 in flight
 * ~0.9 / ~0.45 s in ~350 calls, 512 ~0.55 / ~0.26 s in ~45). Memory is bounded by the byte
 * budget below. An upload holds its file open, so uploads stay well under the usual limit of
 * 1024 descriptors.
 */
export const UPLOAD_FILES_IN_FLIGHT = 512;
/**
 * A download opens its file only at the end when it is small (core/durable-file.ts), and the
 * byte budget keeps larger ones few (20 MiB of them), so downloads may take a thousand small
 * files in one wave: 1000 x 4 KiB, 10 runs each, median 0.235 s at 512, 0.22 s at 1024.
 */
export const DOWNLOAD_FILES_IN_FLIGHT = 1024;
/**
 * Bytes of files in flight at once, across files: each file may keep up to the per-transfer
 * budget in memory, so large files go (about) one at a time and memory stays bounded.
 */
const FILES_BUDGET_BYTES = TRANSFER_FILES_BUDGET_BYTES;

/** One local file to upload and its remote name. */
export interface UploadItem {
  path: string;
  name: string;
  size: number;
}

/** One remote file to download and its local path. */
export interface DownloadItem {
  name: string;
  output: string;
  size: number;
  /** Its manifest as listed, when it came whole. */
  manifest?: GetManifestResponse;
}

/**
 * What a many-file command will move: counted and checked in full before anything is sent,
 * its items handed out lazily, so memory does not grow with the number of files.
 */
export interface Plan<T> {
  /** Files found when the plan was made. */
  files: number;
  /** Their bytes. */
  bytes: number;
  /** The items, in plan order (each call starts from the first). */
  items(): Iterable<T> | AsyncIterable<T>;
}

/** A path that was not uploaded, and why. */
export interface Skipped {
  path: string;
  reason: string;
}

/** How a transfer reports what it is doing, per file and per worker ("lane"). */
export interface TransferEvents<T> {
  onStart?(lane: number, item: T): void;
  onProgress?(lane: number, item: T, bytes: number): void;
  onFinish?(lane: number, item: T, error?: unknown): void;
  onLaneDone?(lane: number): void;
}

/** The outcome of one file. */
export type Outcome<T, R> = { item: T; result: R; error?: undefined } | { item: T; error: unknown; result?: undefined };

/** A counting semaphore over bytes, first come first served. */
class ByteBudget {
  private readonly waiters: { bytes: number; wake: () => void }[] = [];

  constructor(private available: number) {}

  acquire(bytes: number): Promise<void> {
    if (this.waiters.length === 0 && this.available >= bytes) {
      this.available -= bytes;
      return Promise.resolve();
    }
    return new Promise((wake) => this.waiters.push({ bytes, wake }));
  }

  release(bytes: number) {
    this.available += bytes;
    while (this.waiters.length > 0 && this.available >= this.waiters[0]!.bytes) {
      const next = this.waiters.shift()!;
      this.available -= next.bytes;
      next.wake();
    }
  }
}

/**
 * Outcomes are reported in plan order, and a file may start only while it is fewer than this
 * many places past the oldest file not yet reported: a slow large file then holds back at
 * most this many finished small ones, and a transfer of a million files keeps no more than
 * this many outcomes in memory. Well above the lanes, so the window only bites behind a file
 * thousands of small files slower than the rest.
 */
export const REORDER_WINDOW_FILES = 8192;

/**
 * Runs `work` over `items`, pulled lazily from the iterable, with bounded files and bytes in
 * flight; every file is attempted, and `onOutcome` hears of each in plan order. Resolves once
 * all are reported; rejects (after the files in flight end) if the iterable itself fails.
 */
export async function runTransfers<T extends { size: number }, R>(
  items: Iterable<T> | AsyncIterable<T>,
  lanes: number,
  work: (item: T, onProgress: (bytes: number) => void) => Promise<R>,
  onOutcome: (outcome: Outcome<T, R>) => void,
  events: TransferEvents<T> = {},
  window = REORDER_WINDOW_FILES,
): Promise<void> {
  const source = Symbol.asyncIterator in items ? items[Symbol.asyncIterator]() : (items as Iterable<T>)[Symbol.iterator]();
  const budget = new ByteBudget(FILES_BUDGET_BYTES);
  let taken = 0;
  let exhausted = false;
  let sourceError: unknown = null;
  // One pull at a time: an async iterator must not be asked again before it answered.
  let pulling: Promise<unknown> = Promise.resolve();
  const take = (): Promise<{ item: T; index: number } | null> => {
    const next = pulling.then(async () => {
      if (exhausted) return null;
      try {
        const result = await source.next();
        if (!result.done) return { item: result.value, index: taken++ };
      } catch (err) {
        sourceError ??= err;
      }
      exhausted = true;
      return null;
    });
    pulling = next;
    return next;
  };

  const finished = new Map<number, Outcome<T, R>>();
  let reported = 0;
  const windowWaiters: { index: number; wake: () => void }[] = [];
  const settle = (index: number, outcome: Outcome<T, R>) => {
    finished.set(index, outcome);
    for (let next = finished.get(reported); next; next = finished.get(reported)) {
      finished.delete(reported++);
      onOutcome(next);
    }
    for (let i = windowWaiters.length - 1; i >= 0; i--) {
      if (windowWaiters[i]!.index < reported + window) windowWaiters.splice(i, 1)[0]!.wake();
    }
  };
  const inWindow = (index: number) => (index < reported + window ? Promise.resolve() : new Promise<void>((wake) => windowWaiters.push({ index, wake })));

  const lane = async (laneIndex: number) => {
    for (let next = await take(); next; next = await take()) {
      const { item, index } = next;
      await inWindow(index);
      const weight = Math.min(Math.max(item.size, 1), FILES_BUDGET_BYTES);
      await budget.acquire(weight);
      events.onStart?.(laneIndex, item);
      let outcome: Outcome<T, R>;
      try {
        outcome = { item, result: await work(item, (bytes) => events.onProgress?.(laneIndex, item, bytes)) };
        events.onFinish?.(laneIndex, item);
      } catch (err) {
        outcome = { item, error: err };
        events.onFinish?.(laneIndex, item, err);
      } finally {
        budget.release(weight);
      }
      settle(index, outcome);
    }
    events.onLaneDone?.(laneIndex);
  };
  await Promise.all(Array.from({ length: lanes }, (_, i) => lane(i)));
  if (sourceError) throw sourceError;
}

/** Every outcome of a transfer, in plan order: for few files (and tests). */
export async function collectOutcomes<T, R>(run: (onOutcome: (outcome: Outcome<T, R>) => void) => Promise<void>): Promise<Outcome<T, R>[]> {
  const outcomes: Outcome<T, R>[] = [];
  await run((outcome) => outcomes.push(outcome));
  return outcomes;
}

/** Uploads every item as the plan yields it; every file is attempted, each outcome reported in plan order. */
export function uploadMany(master: MasterApi, pool: StoragePool, plan: Plan<UploadItem>, chunkSize: number, onOutcome: (outcome: Outcome<UploadItem, UploadResult>) => void, events?: TransferEvents<UploadItem>): Promise<void> {
  // With many files in flight their small calls are batched; one file gains nothing from it.
  const [m, p] = plan.files > 1 ? [new BatchingMaster(master), new BatchingPool(pool)] : [master, pool];
  const work = (item: UploadItem, onProgress: (bytes: number) => void) => uploadFile({ master: m, pool: p, path: item.path, name: item.name, chunkSize, expectedSize: item.size, onProgress });
  return runTransfers(plan.items(), lanesFor(plan, UPLOAD_FILES_IN_FLIGHT), work, onOutcome, events);
}

/** Parent directories remembered as made: beyond this many the memory is cleared (mkdir of an existing one is cheap). */
const MADE_DIRECTORIES_REMEMBERED = 4096;

/** Downloads every item as the plan yields it, creating parent directories; every file is attempted. */
export function downloadMany(master: MasterApi, pool: StoragePool, plan: Plan<DownloadItem>, onOutcome: (outcome: Outcome<DownloadItem, FileInfo>) => void, events?: TransferEvents<DownloadItem>): Promise<void> {
  const [m, p] = plan.files > 1 ? [new BatchingMaster(master), new BatchingPool(pool)] : [master, pool];
  // Each parent directory is made once, not once per file (1000 files: 1000 mkdir calls).
  const parents = new Map<string, Promise<unknown>>();
  const makeParent = (dir: string) => {
    let made = parents.get(dir);
    if (!made) {
      if (parents.size >= MADE_DIRECTORIES_REMEMBERED) parents.clear();
      parents.set(dir, (made = mkdir(dir, { recursive: true })));
    }
    return made;
  };
  // Small files are made durable a group at a time: once every small file's download under way
  // waits on the group, nothing else can join it soon, so it is flushed then. Large files are
  // not counted: a long one must not hold finished small ones back.
  let working = 0;
  const flushWhenAllWait = () => {
    if (group && group.pending > 0 && group.waiting >= working) group.flush();
  };
  const group = plan.files > 1 ? new GroupCommit(flushWhenAllWait) : undefined;
  const work = async (item: DownloadItem, onProgress: (bytes: number) => void) => {
    const joins = joinsGroup(item.size);
    if (joins) working++;
    try {
      await makeParent(dirname(item.output));
      const download = (manifest?: GetManifestResponse) => downloadFile({ master: m, pool: p, name: item.name, output: item.output, onProgress, manifest, groupCommit: group });
      if (!item.manifest) return await download();
      // A manifest listed earlier may be stale: a file replaced since, and its old chunks
      // collected, cannot be read. Its current manifest is asked for once.
      return await download(item.manifest).catch((err) => {
        if (err instanceof DropboxError && err.kind === "UNAVAILABLE") return download();
        throw err;
      });
    } finally {
      if (joins) working--;
      flushWhenAllWait();
    }
  };
  return runTransfers(plan.items(), lanesFor(plan, DOWNLOAD_FILES_IN_FLIGHT), work, onOutcome, events);
}

/** Lanes for a plan: no more than it has files (a plan re-read lazily may find a few more; they queue). */
const lanesFor = (plan: Plan<unknown>, most: number) => Math.max(1, Math.min(most, plan.files));

/** A one-line account of a failed file, for reports. */
export function failureOf(error: unknown): { kind: string; message: string } {
  return { kind: (error as { kind?: string })?.kind ?? "INTERNAL", message: errorMessage(error) };
}
