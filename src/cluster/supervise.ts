/**
 * Running a supervisor in this process until it is told to stop: the detached
 * `cluster _supervise` and `cluster up --foreground` both come here.
 */
import { appendFileSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "../core/errors";
import type { Log } from "../core/log";
import { EXIT } from "../cli/exit-codes";
import type { ClusterConfig } from "./plan";
import { logPathFor } from "./plan";
import type { ClusterStateDoc } from "./state";
import { StartFailure, Supervisor } from "./supervisor";

/** Where `cluster restart` leaves the names to restart before it signals the supervisor. */
export function restartRequestPath(dataDir: string): string {
  return join(dataDir, "restart-request.json");
}

/** The signal that asks a supervisor to read its restart request. */
export const RESTART_REQUEST_SIGNAL: NodeJS.Signals = "SIGUSR2";

/** How a supervision run ended. */
export interface SupervisionOutcome {
  exitCode: number;
  /** Set when the cluster never became ready. */
  failure?: StartFailure;
}

/** Hooks for a caller that shows the run (the foreground `up`). */
export interface SupervisionHooks {
  log: Log;
  onChange?: (doc: ClusterStateDoc) => void;
  /** Called once the cluster is ready, before waiting for the stop signal. */
  onReady?: (supervisor: Supervisor) => void;
}

/** A log that appends to the supervisor's log file, for a supervisor whose stdout is a terminal. */
export function fileLog(config: ClusterConfig, echo: (line: string) => void = () => {}): Log {
  const path = logPathFor(config.dataDir, "supervisor");
  return (line) => {
    const text = `${new Date().toISOString()} supervisor ${line}\n`;
    try {
      appendFileSync(path, text, { mode: 0o600 });
    } catch {
      // The logs dir is created by start(); a line before that only goes to the echo.
    }
    echo(text);
  };
}

/**
 * Starts the cluster, supervises it until SIGINT/SIGTERM, stops it in order. Exit code:
 * 0 after a clean stop, DEGRADED when a child had been given up on, UNAVAILABLE when the
 * cluster never became ready, INTERRUPTED when stopped before it was ready.
 */
export async function supervise(config: ClusterConfig, hooks: SupervisionHooks): Promise<SupervisionOutcome> {
  const supervisor = new Supervisor(config, hooks.log, hooks.onChange);
  let stopRequested = false;
  let wake: () => void = () => {};
  const stopSignal = new Promise<void>((resolve) => (wake = resolve));
  const onStop = (name: string) => {
    if (stopRequested) return;
    stopRequested = true;
    hooks.log(`${name} received`);
    wake();
    void supervisor.stop();
  };
  const onSigint = () => onStop("SIGINT");
  const onSigterm = () => onStop("SIGTERM");
  const onRestartRequest = () => void handleRestartRequest(supervisor, config, hooks.log);
  // A detached supervisor has no terminal; a hang-up of the shell that started it must not stop the cluster.
  const onHangup = () => hooks.log("SIGHUP ignored");
  process.on("SIGINT", onSigint);
  process.on("SIGTERM", onSigterm);
  process.on(RESTART_REQUEST_SIGNAL, onRestartRequest);
  process.on("SIGHUP", onHangup);
  try {
    try {
      await supervisor.start();
    } catch (err) {
      if (stopRequested) {
        await supervisor.stop();
        return { exitCode: EXIT.INTERRUPTED };
      }
      const failure = err instanceof StartFailure ? err : new StartFailure(undefined, errorMessage(err));
      return { exitCode: EXIT.UNAVAILABLE, failure };
    }
    hooks.onReady?.(supervisor);
    await stopSignal;
    await supervisor.stop();
    return { exitCode: supervisor.degraded ? EXIT.DEGRADED : EXIT.OK };
  } finally {
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigterm);
    process.off(RESTART_REQUEST_SIGNAL, onRestartRequest);
    process.off("SIGHUP", onHangup);
  }
}

async function handleRestartRequest(supervisor: Supervisor, config: ClusterConfig, log: Log) {
  const path = restartRequestPath(config.dataDir);
  try {
    const request = JSON.parse(readFileSync(path, "utf8")) as { names?: unknown };
    rmSync(path, { force: true });
    const names = Array.isArray(request.names) ? request.names.map(String) : [];
    log(`restart requested: ${names.length ? names.join(", ") : "all"}`);
    await supervisor.restart(names);
  } catch (err) {
    log(`restart request failed: ${errorMessage(err)}`);
  }
}
