/**
 * Running a command and measuring it from the outside: wall time, peak RSS and CPU time,
 * plus what /proc says about long-lived processes and about the rest of the machine.
 */
import { existsSync, readFileSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Debian's GNU time: exact peak RSS of a child that has already exited. */
const GNU_TIME = "/usr/bin/time";
/** How often /proc is sampled when GNU time is missing; VmHWM is a high-water mark, so sampling loses little. */
const PROC_POLL_INTERVAL_MS = 10;
const CLOCK_TICKS_PER_SECOND = 100;

/** One finished command. */
export interface TimedRun {
  exitCode: number;
  wallMs: number;
  /** Peak resident set of the command, or null when not asked for. */
  peakRssKiB: number | null;
  /** User + system CPU seconds of the command, or null when not asked for. */
  cpuSeconds: number | null;
  stdout: string;
  stderr: string;
}

/** Where peak RSS comes from on this machine, for the report. */
export const RSS_SOURCE = existsSync(GNU_TIME) ? "/usr/bin/time -f %M" : "/proc/PID/status VmHWM, sampled";

/** Runs argv to completion; with `measure`, also its peak RSS and CPU time. */
export async function runTimed(argv: string[], options: { env?: Record<string, string>; cwd?: string; measure?: boolean } = {}): Promise<TimedRun> {
  const env = { ...process.env, ...options.env };
  const useGnuTime = options.measure === true && existsSync(GNU_TIME);
  const timeFile = join(tmpdir(), `dropbox-bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const command = useGnuTime ? [GNU_TIME, "-f", "%M %U %S", "-o", timeFile, "--", ...argv] : argv;
  const started = performance.now();
  const proc = Bun.spawn(command, { cwd: options.cwd, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let polledRssKiB = 0;
  let polledCpuSeconds = 0;
  const poller =
    options.measure && !useGnuTime
      ? setInterval(() => {
          polledRssKiB = Math.max(polledRssKiB, vmHwmKiB(proc.pid) ?? 0);
          polledCpuSeconds = Math.max(polledCpuSeconds, processCpuSeconds(proc.pid) ?? 0);
        }, PROC_POLL_INTERVAL_MS)
      : null;
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const wallMs = performance.now() - started;
  if (poller) clearInterval(poller);
  let peakRssKiB: number | null = options.measure ? polledRssKiB : null;
  let cpuSeconds: number | null = options.measure ? polledCpuSeconds : null;
  if (useGnuTime) {
    // GNU time prefixes a "Command exited with non-zero status" line when the child fails.
    const last = (await readFile(timeFile, "utf8").catch(() => "")).trim().split("\n").at(-1) ?? "";
    const [rss, user, sys] = last.split(" ").map(Number);
    peakRssKiB = Number.isFinite(rss) ? rss! : null;
    cpuSeconds = Number.isFinite(user) && Number.isFinite(sys) ? user! + sys! : null;
    await rm(timeFile, { force: true });
  }
  return { exitCode, wallMs, peakRssKiB, cpuSeconds, stdout, stderr };
}

/** Peak RSS so far of a live process (VmHWM), or null once it is gone. */
export function vmHwmKiB(pid: number): number | null {
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/** User + system CPU seconds of a live process, or null once it is gone. */
export function processCpuSeconds(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/** Busy CPU seconds of the whole machine, all cores together (from /proc/stat). */
export function machineBusySeconds(): number {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_SECOND;
}
