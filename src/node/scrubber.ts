/**
 * Background scrubbing: re-read and re-hash every chunk at a bounded rate, one full pass at
 * most every `intervalMs` (HDFS's block scanner and Ceph's deep scrub work the same way: a
 * period, not a loop). A copy that fails is quarantined by the store, which reports it to
 * the master. Where the pass stands is kept in the data dir, so a restarted node resumes it
 * instead of starting over, and does not re-scrub early because it restarted.
 */
import { readFileSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { DropboxError, errorMessage } from "../core/errors";
import { isChunkId } from "../core/chunk-id";
import type { Log } from "../core/log";
import type { ChunkStore } from "./chunk-store";

/** Chunks listed per step of a pass: bounds the scrubber's own memory. */
const SCRUB_PAGE_CHUNKS = 256;
/** Pause between passes when they may run back to back (interval 0), so an empty store does not spin. */
const SCRUB_IDLE_MS = 1000;
/** The longest single wait: timers take at most ~24.8 days, and a long wait is re-checked now and then. */
const MAX_WAIT_MS = 24 * 60 * 60 * 1000;
/**
 * What one chunk costs against the rate, at least: listing, opening and closing a chunk cost
 * far more than reading 4 KiB of it. Counted by bytes alone, a store of 4 KiB chunks would be
 * re-read at ~2000 chunks/s at the default 8 MiB/s.
 */
const SCRUB_MIN_CHUNK_COST_BYTES = 64 * 1024;

/** How the scrubber runs. */
export interface ScrubOptions {
  /** MiB/s of chunks re-read (small chunks count as 64 KiB). */
  rateMiBps: number;
  /** A full pass starts at most this often; 0 runs passes back to back. */
  intervalMs: number;
  /** Where progress is kept across restarts. */
  statePath: string;
}

/** Where scrubbing stands, as kept in the data dir. */
export interface ScrubState {
  /** When the last pass (the current one, if `inPass`) started. */
  passStartedAtMs: number | null;
  /** A pass is under way, verified up to and including `after`. */
  inPass: boolean;
  /** The last chunk id verified in the current pass ("" at its start). */
  after: string;
  /** When the last complete pass ended. */
  lastPassEndedAtMs: number | null;
}

const FRESH: ScrubState = { passStartedAtMs: null, inPass: false, after: "", lastPassEndedAtMs: null };

/** The saved state, or a fresh one when there is none or it cannot be trusted (a pass is cheap to redo). */
export function loadScrubState(path: string): ScrubState {
  try {
    const s = JSON.parse(readFileSync(path, "utf8")) as Partial<ScrubState>;
    const time = (v: unknown) => (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : null);
    const after = s.after === "" || isChunkId(s.after) ? (s.after as string) : "";
    const passStartedAtMs = time(s.passStartedAtMs);
    // A pass under way without its start time cannot be scheduled from: start a new one.
    const inPass = s.inPass === true && passStartedAtMs !== null;
    return { passStartedAtMs, inPass, after: inPass ? after : "", lastPassEndedAtMs: time(s.lastPassEndedAtMs) };
  } catch {
    return { ...FRESH };
  }
}

async function saveScrubState(path: string, state: ScrubState) {
  // Replaced whole; not fsynced: a state lost to a crash only means re-verifying some chunks.
  const tmp = `${path}.tmp`;
  await writeFile(tmp, JSON.stringify(state));
  await rename(tmp, path);
}

/** Milliseconds until the next pass may start: 0 when one is under way or due; never more than an interval (a clock set back). */
export function msUntilNextPass(state: ScrubState, intervalMs: number, nowMs: number): number {
  if (state.inPass || state.passStartedAtMs === null) return 0;
  return Math.min(intervalMs, Math.max(0, state.passStartedAtMs + intervalMs - nowMs));
}

/** Starts scrubbing `store`; returns a function that stops it. */
export function startScrubber(store: ChunkStore, options: ScrubOptions, log: Log): () => void {
  let stopped = false;
  let wake: (() => void) | null = null;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.min(ms, MAX_WAIT_MS));
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const bytesPerMs = (options.rateMiBps * 1024 * 1024) / 1000;
  const loop = async () => {
    let state = loadScrubState(options.statePath);
    while (!stopped) {
      const wait = msUntilNextPass(state, options.intervalMs, Date.now());
      if (wait > 0) {
        await pause(wait);
        continue;
      }
      if (!state.inPass) state = { ...state, passStartedAtMs: Date.now(), inPass: true, after: "" };
      let corrupt = 0;
      let checked = 0;
      for (;;) {
        const page = await store.list(state.after, SCRUB_PAGE_CHUNKS);
        for (const chunk of page.chunks) {
          if (stopped) return;
          const began = Date.now();
          try {
            await store.verify(chunk.chunkId);
            checked++;
          } catch (err) {
            if (err instanceof DropboxError && err.kind === "DATA_LOSS") corrupt++;
            else log(`scrub: cannot read chunk ${chunk.chunkId}: ${errorMessage(err)}`);
          }
          // Rate limit: a chunk of N bytes earns N / rate milliseconds (small ones count as 64 KiB).
          const owed = Math.max(chunk.size, SCRUB_MIN_CHUNK_COST_BYTES) / bytesPerMs - (Date.now() - began);
          if (owed > 0) await pause(owed);
        }
        if (!page.truncated || page.chunks.length === 0) break;
        state = { ...state, after: page.chunks[page.chunks.length - 1]!.chunkId };
        await saveScrubState(options.statePath, state);
      }
      const startedAtMs = state.passStartedAtMs!;
      state = { passStartedAtMs: startedAtMs, inPass: false, after: "", lastPassEndedAtMs: Date.now() };
      await saveScrubState(options.statePath, state);
      // Passes back to back (interval 0, tests) would fill the log: those report damage only.
      if (corrupt > 0 || (checked > 0 && options.intervalMs > 0)) log(`scrub pass: ${checked} chunks verified in ${((Date.now() - startedAtMs) / 1000).toFixed(1)} s, ${corrupt} corrupt and quarantined`);
      if (options.intervalMs < SCRUB_IDLE_MS) await pause(SCRUB_IDLE_MS);
    }
  };
  void loop().catch((err) => log(`scrubber stopped: ${errorMessage(err)}`));
  return () => {
    stopped = true;
    wake?.();
  };
}
