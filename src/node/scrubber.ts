/**
 * Background scrubbing: re-read and re-hash every chunk at a bounded rate, forever.
 * A copy that fails is quarantined by the store, which reports it to the master.
 */
import { DropboxError, errorMessage } from "../core/errors";
import type { Log } from "../core/log";
import type { ChunkStore } from "./chunk-store";

/** Chunks listed per step of a pass: bounds the scrubber's own memory. */
const SCRUB_PAGE_CHUNKS = 256;
/** Pause between passes over an empty or tiny store, so it does not spin. */
const SCRUB_IDLE_MS = 1000;
/**
 * What one chunk costs against the rate, at least: listing, opening and closing a chunk cost
 * far more than reading 4 KiB of it. Counted by bytes alone, a store of 4 KiB chunks would be
 * re-read at ~2000 chunks/s at the default 8 MiB/s, every pass, forever.
 */
const SCRUB_MIN_CHUNK_COST_BYTES = 64 * 1024;

/** Starts scrubbing `store` at `rateMiBps`; returns a function that stops it. */
export function startScrubber(store: ChunkStore, rateMiBps: number, log: Log): () => void {
  let stopped = false;
  let wake: (() => void) | null = null;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const bytesPerMs = (rateMiBps * 1024 * 1024) / 1000;
  const loop = async () => {
    while (!stopped) {
      const passStarted = Date.now();
      let startAfter = "";
      let corrupt = 0;
      let checked = 0;
      for (;;) {
        const page = await store.list(startAfter, SCRUB_PAGE_CHUNKS);
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
        startAfter = page.chunks[page.chunks.length - 1]!.chunkId;
      }
      if (corrupt > 0) log(`scrub pass: ${checked} chunks verified, ${corrupt} corrupt and quarantined`);
      if (Date.now() - passStarted < SCRUB_IDLE_MS) await pause(SCRUB_IDLE_MS);
    }
  };
  void loop().catch((err) => log(`scrubber stopped: ${errorMessage(err)}`));
  return () => {
    stopped = true;
    wake?.();
  };
}
