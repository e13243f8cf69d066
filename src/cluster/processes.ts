/** Starting, watching and stopping OS processes by pid, from this process or any other shell. */
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { SUPERVISOR_PID_ENV } from "../cli/signals";
import { STOP_GRACE_MS, STOP_POLL_INTERVAL_MS } from "./limits";

/**
 * True while `pid` runs. A zombie (dead, not yet reaped: likely here, since pid 1 in a
 * container may never reap) counts as gone.
 */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch (err) {
    // No /proc (not Linux): trust kill(0). Vanished between the two checks: gone.
    return (err as NodeJS.ErrnoException).code !== "ENOENT";
  }
}

/** Sends a signal; false when the process was already gone. */
export function signal(pid: number, name: NodeJS.Signals): boolean {
  try {
    process.kill(pid, name);
    return true;
  } catch {
    return false;
  }
}

/**
 * How to run this executable again. Compiled, `process.execPath` is the binary itself
 * (argv[0] and argv[1] are virtual there); run from source, it is bun plus the script.
 */
export function selfCommand(): string[] {
  const script = process.argv[1] ?? "";
  const compiled = script.startsWith("/$bunfs") || script.startsWith("B:/~BUN") || import.meta.path.includes("$bunfs");
  return compiled ? [process.execPath] : [process.execPath, script];
}

/** Opens the header line written to a log before each start, so a reader can find where this run's lines begin. */
export const RUN_MARKER = "-----";

/** A running child and how it ends. */
export interface SpawnedChild {
  pid: number;
  /** Resolves with a short description of the exit: "exit 0", "exit 1", "SIGKILL". */
  exited: Promise<string>;
}

/**
 * Spawns this executable with `args`, output appended to `logPath`. The child gets its own
 * process group, so a Ctrl-C reaches only the supervisor, which then stops the children in
 * order; and it learns the supervisor's pid, so it exits by itself if the supervisor dies.
 */
export function spawnSelf(args: string[], logPath: string, options: { supervised: boolean; detached?: boolean; env?: Record<string, string> }): SpawnedChild {
  const fd = openSync(logPath, "a", 0o600);
  try {
    writeSync(fd, `${RUN_MARKER} ${new Date().toISOString()} starting: ${args.join(" ")}\n`);
    const env: Record<string, string | undefined> = { ...process.env, ...options.env };
    if (options.supervised) env[SUPERVISOR_PID_ENV] = String(process.pid);
    else delete env[SUPERVISOR_PID_ENV];
    const proc = Bun.spawn([...selfCommand(), ...args], {
      stdin: "ignore",
      stdout: fd,
      stderr: fd,
      env,
      detached: options.detached ?? true,
    });
    const exited = proc.exited.then(() => (proc.signalCode ? String(proc.signalCode) : `exit ${proc.exitCode}`));
    return { pid: proc.pid, exited };
  } finally {
    closeSync(fd);
  }
}

/** Polls until every pid is gone or the deadline passes; returns the pids still alive. */
export async function waitGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter(isAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await Bun.sleep(STOP_POLL_INTERVAL_MS);
    alive = alive.filter(isAlive);
  }
  return alive;
}

/**
 * SIGTERM, then SIGKILL for those still alive after the grace period; resolves when every
 * pid is gone. Returns the pids that needed SIGKILL.
 */
export async function terminate(pids: number[], graceMs = STOP_GRACE_MS): Promise<number[]> {
  const targets = pids.filter((pid) => pid > 0 && isAlive(pid));
  for (const pid of targets) signal(pid, "SIGTERM");
  const stubborn = await waitGone(targets, graceMs);
  for (const pid of stubborn) signal(pid, "SIGKILL");
  // SIGKILL cannot be ignored; the wait only covers the kernel tearing the process down.
  await waitGone(stubborn, STOP_GRACE_MS);
  return stubborn;
}
