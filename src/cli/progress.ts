/**
 * Live progress on a terminal: a listr2 task list whose titles are refreshed a few times a
 * second. Only used when `liveOutput()` allows it; piped, under CI, with --json or --quiet
 * nothing is drawn, so no control codes reach a file or a script.
 */
import { Listr, type ListrTaskWrapper } from "listr2";
import type { TransferEvents } from "../client/transfers";
import { formatBytes } from "./output";

/** Per-file lines shown at most: more files may be in flight, and they count in the overall line. */
const MAX_FILE_LINES = 8;

/** How often titles are pushed to the renderer: fast enough to look live, cheap with thousands of small files. */
const REFRESH_INTERVAL_MS = 100;

/** A fixed set of live lines, each a listr2 task that stays open until `done`. */
export class LiveBoard {
  private readonly titles: string[];
  private readonly tasks: (ListrTaskWrapper<unknown, any, any> | undefined)[] = [];
  private readonly settles: ((() => void) | undefined)[] = [];
  private readonly settled: boolean[] = [];
  private readonly running: Promise<unknown>;
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(titles: string[]) {
    this.titles = [...titles];
    const list = new Listr(
      titles.map((title, i) => ({
        title,
        task: (_ctx: unknown, task: ListrTaskWrapper<unknown, any, any>) =>
          new Promise<void>((resolve) => {
            this.tasks[i] = task;
            this.settles[i] = resolve;
            if (this.settled[i]) resolve();
          }),
      })),
      // Signals are handled by cli/interrupt.ts, which removes partial downloads first; listr2's own would exit 127.
      { concurrent: true, exitOnError: false, registerSignalListeners: false, renderer: "default", rendererOptions: { formatOutput: "truncate", clearOutput: true } },
    );
    this.running = list.run().catch(() => undefined);
    this.timer = setInterval(() => this.refresh(), REFRESH_INTERVAL_MS);
  }

  private refresh() {
    this.titles.forEach((title, i) => {
      const task = this.tasks[i];
      if (task && task.title !== title) task.title = title;
    });
  }

  set(index: number, title: string) {
    this.titles[index] = title;
  }

  done(index: number) {
    this.refresh();
    this.settled[index] = true;
    this.settles[index]?.();
  }

  /** Closes every line and waits for the renderer to finish (it clears its output). */
  async finish() {
    clearInterval(this.timer);
    this.refresh();
    this.titles.forEach((_, i) => this.done(i));
    await this.running;
  }
}

const rate = (bytes: number, sinceMs: number) => `${formatBytes(Math.round(bytes / Math.max((Date.now() - sinceMs) / 1000, 0.001)))}/s`;

/** Per-file lines (one per file in flight) with bytes and rate, plus an overall line; `events` feed it. */
export function transferProgress<T extends { size: number }>(live: boolean, verb: string, totals: { files: number; bytes: number }, label: (item: T) => string, lanes: number): { events: TransferEvents<T>; finish(): Promise<void> } {
  if (!live || totals.files === 0) return { events: {}, finish: async () => {} };
  const laneCount = Math.min(lanes, totals.files, MAX_FILE_LINES);
  const shown = (lane: number) => lane < laneCount;
  const totalBytes = totals.bytes;
  const started = Date.now();
  let filesDone = 0;
  let failed = 0;
  let finishedBytes = 0;
  const current = new Map<number, { item: T; bytes: number; started: number }>();
  const board = new LiveBoard([`${verb} 0/${totals.files} files`, ...Array.from({ length: laneCount }, () => "waiting")]);
  const overall = () => {
    let bytes = finishedBytes;
    for (const c of current.values()) bytes += c.bytes;
    board.set(0, `${verb} ${filesDone}/${Math.max(totals.files, filesDone)} files${failed ? ` (${failed} failed)` : ""}  ${formatBytes(bytes)}${totalBytes ? ` / ${formatBytes(totalBytes)}` : ""}  ${rate(bytes, started)}`);
  };
  const events: TransferEvents<T> = {
    onStart(lane, item) {
      current.set(lane, { item, bytes: 0, started: Date.now() });
      if (shown(lane)) board.set(lane + 1, `${label(item)}  0 B${item.size ? ` / ${formatBytes(item.size)}` : ""}`);
    },
    onProgress(lane, item, bytes) {
      const c = current.get(lane);
      if (!c) return;
      c.bytes = bytes;
      if (shown(lane)) board.set(lane + 1, `${label(item)}  ${formatBytes(bytes)}${item.size ? ` / ${formatBytes(item.size)}` : ""}  ${rate(bytes, c.started)}`);
      overall();
    },
    onFinish(lane, item, error) {
      current.delete(lane);
      filesDone++;
      if (error) failed++;
      finishedBytes += item.size;
      overall();
    },
    onLaneDone(lane) {
      if (!shown(lane)) return;
      board.set(lane + 1, "done");
      board.done(lane + 1);
    },
  };
  return { events, finish: () => board.finish() };
}
