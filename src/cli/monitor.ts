/**
 * `dropbox monitor`: CPU, memory, chunks, disk, operations/s and MiB/s for the master and
 * every node, from the stats each process reports about itself. A redrawn table on a
 * terminal; one line (or one JSON object) per process per interval otherwise.
 */
import { intFlag, masterAddress } from "./args";
import { errorMessage } from "../core/errors";
import { CONNECT_TIMEOUT_MS } from "../core/limits";
import { MasterApi } from "../rpc/client";
import type { ProcessStats } from "../rpc/messages";
import { STATS_TIMEOUT_MS, StatsClients, ratesBetween, targetsOf, type ProcessSample, type ProcessTarget } from "../client/stats";
import { formatBytes, formatDuration, liveOutput, report, table, type OutputOptions } from "./output";
import { EXIT } from "./exit-codes";
import { writeOut } from "../core/stdio";

export interface MonitorFlags extends OutputOptions {
  master?: unknown;
  once?: boolean;
  interval?: unknown;
}

/** One process in one interval (a `monitor --json` line). */
export interface MonitorRow {
  timeMs: number;
  role: string;
  id: string;
  address: string;
  /** The master's view for nodes; for the master, whether it answered. */
  alive: boolean;
  /** Whether the process answered the stats call. */
  answered: boolean;
  error?: string;
  pid: number | null;
  uptimeMs: number | null;
  cpuPercent: number | null;
  rssBytes: number | null;
  chunkCount: number | null;
  usedBytes: number | null;
  freeBytes: number | null;
  opsPerSec: number | null;
  inBytesPerSec: number | null;
  outBytesPerSec: number | null;
  rpcCalls: number | null;
  bytesIn: number | null;
  bytesOut: number | null;
}

const DEFAULT_INTERVAL_MS = 1000;
const MiB = 1024 * 1024;

function rowOf(sample: ProcessSample, before: ProcessStats | undefined, timeMs: number): MonitorRow {
  const s = sample.stats;
  const rates = ratesBetween(before, s);
  const node = sample.role === "node";
  return {
    timeMs,
    role: sample.role,
    id: sample.id,
    address: sample.address,
    alive: sample.role === "master" ? s !== null : sample.alive,
    answered: s !== null,
    ...(sample.error ? { error: sample.error } : {}),
    pid: s?.pid ?? null,
    uptimeMs: s?.uptimeMs ?? null,
    cpuPercent: rates ? Math.round(rates.cpuPercent * 10) / 10 : null,
    rssBytes: s?.rssBytes ?? null,
    chunkCount: node && s ? s.chunkCount : null,
    usedBytes: node && s ? s.usedBytes : null,
    freeBytes: node && s ? s.freeBytes : null,
    opsPerSec: rates ? Math.round(rates.opsPerSec * 10) / 10 : null,
    inBytesPerSec: rates ? Math.round(rates.inBytesPerSec) : null,
    outBytesPerSec: rates ? Math.round(rates.outBytesPerSec) : null,
    rpcCalls: s?.rpcCalls ?? null,
    bytesIn: s?.bytesIn ?? null,
    bytesOut: s?.bytesOut ?? null,
  };
}

const num = (v: number | null, f: (n: number) => string) => (v === null ? "-" : f(v));
const mibps = (v: number | null) => num(v, (n) => (n / MiB).toFixed(2));

function tableOf(rows: MonitorRow[]): string {
  return table(
    ["PROCESS", "ADDRESS", "STATE", "CPU%", "RSS", "CHUNKS", "USED", "FREE", "OPS/S", "IN MiB/s", "OUT MiB/s", "UPTIME"],
    rows.map((r) => [
      r.id,
      r.address,
      !r.answered ? "no answer" : r.alive ? "alive" : "dead",
      num(r.cpuPercent, (n) => n.toFixed(1)),
      num(r.rssBytes, formatBytes),
      num(r.chunkCount, String),
      num(r.usedBytes, formatBytes),
      num(r.freeBytes, formatBytes),
      num(r.opsPerSec, (n) => n.toFixed(1)),
      mibps(r.inBytesPerSec),
      mibps(r.outBytesPerSec),
      formatDuration(r.uptimeMs),
    ]),
  );
}

function lineOf(r: MonitorRow): string {
  const time = new Date(r.timeMs).toISOString();
  if (!r.answered) return `${time} ${r.id} ${r.address} no answer${r.error ? `: ${r.error}` : ""}`;
  const parts = [
    `${time} ${r.id} ${r.address} ${r.alive ? "alive" : "dead"}`,
    `cpu ${num(r.cpuPercent, (n) => `${n.toFixed(1)}%`)}`,
    `rss ${num(r.rssBytes, formatBytes)}`,
    `ops/s ${num(r.opsPerSec, (n) => n.toFixed(1))}`,
    `in ${mibps(r.inBytesPerSec)} MiB/s`,
    `out ${mibps(r.outBytesPerSec)} MiB/s`,
  ];
  if (r.role === "node") parts.push(`chunks ${num(r.chunkCount, String)}`, `used ${num(r.usedBytes, formatBytes)}`, `free ${num(r.freeBytes, formatBytes)}`);
  return parts.join("  ");
}

export async function monitorCommand(flags: MonitorFlags, argv: string[]): Promise<number> {
  const intervalMs = flags.interval === undefined ? DEFAULT_INTERVAL_MS : intFlag(flags.interval, "interval", 100, 3_600_000);
  const master = new MasterApi(masterAddress(argv, flags.master));
  const stats = new StatsClients();
  let stop: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  let stopping = false;
  const onSignal = () => {
    stopping = true;
    stop();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const pause = (ms: number) => Promise.race([Bun.sleep(ms), stopped]);

  let targets: ProcessTarget[] = [];
  const sample = async (): Promise<ProcessSample[]> => {
    try {
      targets = targetsOf(master.address, await master.getClusterStatus(Math.min(CONNECT_TIMEOUT_MS, Math.max(intervalMs, STATS_TIMEOUT_MS))));
    } catch (err) {
      // Before the first answer there is nothing to show: the master is unreachable (exit 4).
      if (targets.length === 0) throw err;
      return targets.map((t) => ({ ...t, stats: null, error: t.role === "master" ? errorMessage(err) : "master not answering" }));
    }
    return stats.sample(targets, Math.min(STATS_TIMEOUT_MS, intervalMs));
  };

  const live = liveOutput(flags);
  try {
    let previous = new Map<string, ProcessStats>();
    const remember = (samples: ProcessSample[]) => {
      previous = new Map(samples.filter((s) => s.stats).map((s) => [s.address, s.stats!]));
    };
    remember(await sample());
    if (flags.once) {
      await pause(intervalMs);
      const now = Date.now();
      const rows = (await sample()).map((s) => rowOf(s, previous.get(s.address), now));
      if (flags.json) {
        if (!flags.quiet) for (const row of rows) writeOut(`${JSON.stringify(row)}\n`);
      } else report(flags, rows, () => tableOf(rows));
      return EXIT.OK;
    }
    while (!stopping) {
      await pause(intervalMs);
      if (stopping) break;
      const samples = await sample();
      const now = Date.now();
      const rows = samples.map((s) => rowOf(s, previous.get(s.address), now));
      remember(samples);
      if (flags.quiet) continue;
      if (flags.json) for (const row of rows) writeOut(`${JSON.stringify(row)}\n`);
      else if (live) writeOut(`\x1b[H\x1b[2J${`dropbox monitor: master ${master.address}, every ${formatDuration(intervalMs)} (Ctrl+C to exit)`}\n\n${tableOf(rows)}\n`);
      else writeOut(`${rows.map(lineOf).join("\n")}\n`);
    }
    return EXIT.OK;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    stats.close();
    master.close();
  }
}
