/** `dropbox cluster up`: start a supervised cluster and return once it is ready (or stay attached with --foreground). */
import { mkdir } from "node:fs/promises";
import { NODE_SECRET_ENV, TOKEN_ENV } from "../cli/args";
import { useToken } from "../rpc/auth";
import { ensureClusterToken, ensureNodeSecret } from "./token";
import { unavailable } from "../core/errors";
import { makeLog } from "../core/log";
import { EXIT } from "../cli/exit-codes";
import { CLUSTER_HOST, FAILURE_LOG_LINES, STATE_POLL_INTERVAL_MS, SUPERVISOR_VERDICT_MARGIN_MS } from "./limits";
import { lastLines } from "./log-tail";
import { clusterConfigFrom, type ClusterFlags } from "./options";
import { logPathFor, logsDir, planChildren, type ClusterConfig } from "./plan";
import { firstBusyPort } from "./ports";
import { isAlive, RUN_MARKER, spawnSelf, terminate } from "./processes";
import { progressMode, startProgress } from "./progress";
import { liveChildPids, readState, removeState, supervisorAlive, type ClusterStateDoc } from "./state";
import { fileLog, supervise } from "./supervise";
import { writeOut, writeErr } from "../core/stdio";

/** The arguments that make a detached supervisor run exactly this configuration. */
export function superviseArgs(config: ClusterConfig): string[] {
  return [
    "cluster", "_supervise",
    "--nodes", String(config.nodeCount), "--replication", String(config.replication), "--base-port", String(config.basePort),
    "--data-dir", config.dataDir, "--timeout", String(config.readyTimeoutMs),
    ...config.nodeFlags,
  ];
}

/** Runs `cluster up`; exit 0 also when a cluster already runs there (it says so and starts nothing). */
export async function upCommand(flags: ClusterFlags, argv: string[]): Promise<number> {
  const config = clusterConfigFrom(flags, argv);
  const say = (line: string) => {
    if (!flags.quiet) writeOut(`${line}\n`);
  };
  const existing = readState(config.dataDir);
  if (existing && supervisorAlive(existing)) {
    say(`cluster already running in ${config.dataDir}: master ${existing.masterAddress}, supervisor pid ${existing.supervisorPid}; nothing started`);
    return EXIT.OK;
  }
  if (existing) await clearStale(existing, say);
  await checkPorts(config);
  await mkdir(logsDir(config.dataDir), { recursive: true, mode: 0o700 });
  // Security on by default: the cluster's token reaches the supervisor and the children through
  // the environment they inherit (never argv), and clients in this directory read the file.
  const token = await ensureClusterToken(config.dataDir);
  process.env[TOKEN_ENV] = token;
  process.env[NODE_SECRET_ENV] = await ensureNodeSecret(config.dataDir);
  useToken(token);
  const startedAtMs = Date.now();
  const ok = flags.foreground ? await runForeground(config, flags, startedAtMs) : await runDetached(config, flags, startedAtMs);
  return ok;
}

/** Leftovers of a supervisor that died: stop any child still running and drop the state. */
async function clearStale(doc: ClusterStateDoc, say: (line: string) => void) {
  const leftovers = liveChildPids(doc);
  if (leftovers.length > 0) await terminate(leftovers);
  await removeState(doc.dataDir);
  if (doc.phase !== "failed") say(`found stale state (supervisor pid ${doc.supervisorPid} is gone${leftovers.length ? `, stopped ${leftovers.length} leftover processes` : ""}); starting afresh`);
}

/** Fails before anything starts when a port the cluster needs is taken, naming the port and its process. */
async function checkPorts(config: ClusterConfig) {
  const specs = planChildren(config);
  const busy = await firstBusyPort(CLUSTER_HOST, specs.map((s) => s.port));
  if (busy !== undefined) {
    const who = specs.find((s) => s.port === busy)!.name;
    throw unavailable(`port ${busy} on ${CLUSTER_HOST} is already in use (needed by ${who}); nothing was started`);
  }
}

function readyLine(config: ClusterConfig, doc: ClusterStateDoc, startedAtMs: number): string {
  const seconds = ((Date.now() - startedAtMs) / 1000).toFixed(2);
  return `cluster ready in ${seconds} s: master ${doc.masterAddress}, ${config.nodeCount} nodes, replication ${config.replication}, data in ${config.dataDir} (supervisor pid ${doc.supervisorPid})`;
}

/** Prints the end of the failed process's log to stderr, then the error for main() to report. */
async function startFailed(config: ClusterConfig, message: string, child: string | undefined): Promise<never> {
  const name = child ?? "supervisor";
  const log = logPathFor(config.dataDir, name);
  const all = await lastLines(log, FAILURE_LOG_LINES);
  // Only this run's lines: earlier runs' lines would mislead.
  const runStart = all.findLastIndex((l) => l.startsWith(RUN_MARKER));
  const lines = runStart < 0 ? all : all.slice(runStart);
  if (lines.length > 0) writeErr(`--- last lines of ${log} ---\n${lines.join("\n")}\n---\n`);
  throw unavailable(message);
}

/** Spawns the supervisor in its own session and follows the state file until it reports ready or failed. */
async function runDetached(config: ClusterConfig, flags: ClusterFlags, startedAtMs: number): Promise<number> {
  const supervisor = spawnSelf(superviseArgs(config), logPathFor(config.dataDir, "supervisor"), { supervised: false, detached: true });
  const progress = startProgress(progressMode(flags.quiet), planChildren(config));
  const deadlineMs = startedAtMs + config.readyTimeoutMs + SUPERVISOR_VERDICT_MARGIN_MS;
  let last: ClusterStateDoc | undefined;
  for (;;) {
    const doc = readState(config.dataDir);
    if (doc && doc.supervisorPid === supervisor.pid) {
      last = doc;
      progress.update(doc);
      if (doc.phase === "ready") {
        await progress.finish();
        if (!flags.quiet) writeOut(`${readyLine(config, doc, startedAtMs)}\n`);
        return EXIT.OK;
      }
      if (doc.phase === "failed") {
        await progress.finish();
        // The supervisor is stopping its children; return only once they are all gone.
        const gone = await waitSupervisorGone(supervisor.pid, last);
        return startFailed(config, `${doc.error ?? "the cluster failed to start"}${gone ? "" : "; some processes did not stop"}`, doc.failedChild);
      }
    }
    if (!isAlive(supervisor.pid)) {
      await progress.finish();
      if (last) await terminate(liveChildPids(last));
      return startFailed(config, `the supervisor (pid ${supervisor.pid}) exited before the cluster was ready`, undefined);
    }
    if (Date.now() > deadlineMs) {
      await progress.finish();
      await terminate([supervisor.pid]);
      if (last) await terminate(liveChildPids(last));
      await removeState(config.dataDir);
      return startFailed(config, `the supervisor did not report ready within ${config.readyTimeoutMs + SUPERVISOR_VERDICT_MARGIN_MS} ms; stopped it`, undefined);
    }
    await Bun.sleep(STATE_POLL_INTERVAL_MS);
  }
}

/** Waits for a failed supervisor to finish stopping its children; false if some outlived the wait. */
async function waitSupervisorGone(pid: number, doc: ClusterStateDoc): Promise<boolean> {
  const deadlineMs = Date.now() + SUPERVISOR_VERDICT_MARGIN_MS * 3;
  while (isAlive(pid) && Date.now() < deadlineMs) await Bun.sleep(STATE_POLL_INTERVAL_MS);
  const leftovers = [pid, ...liveChildPids(doc)].filter(isAlive);
  if (leftovers.length > 0) await terminate(leftovers);
  return leftovers.length === 0;
}

/** Supervises from this process; Ctrl-C or SIGTERM stops the cluster. */
async function runForeground(config: ClusterConfig, flags: ClusterFlags, startedAtMs: number): Promise<number> {
  const progress = startProgress(progressMode(flags.quiet), planChildren(config));
  let ready = false;
  // Before ready the task list owns the terminal; afterwards supervisor events are echoed as they happen.
  const log = fileLog(config, (text) => {
    if (ready && !flags.quiet) writeOut(text);
  });
  const outcome = await supervise(config, {
    log,
    onChange: (doc) => progress.update(doc),
    onReady: (supervisor) => {
      void progress.finish().then(() => {
        if (!flags.quiet) writeOut(`${readyLine(config, supervisor.doc, startedAtMs)}\nrunning in the foreground; Ctrl+C stops the cluster\n`);
        ready = true;
      });
    },
  });
  await progress.finish();
  if (outcome.failure) return startFailed(config, outcome.failure.message, outcome.failure.child);
  if (!flags.quiet) writeOut(outcome.exitCode === EXIT.OK ? "cluster stopped\n" : outcome.exitCode === EXIT.INTERRUPTED ? "interrupted before the cluster was ready; stopped\n" : "cluster stopped; some processes had failed\n");
  return outcome.exitCode;
}

/** `cluster _supervise`: the detached supervisor itself; never starts another supervisor. */
export async function superviseCommand(flags: ClusterFlags, argv: string[]): Promise<number> {
  const config = clusterConfigFrom(flags, argv);
  const outcome = await supervise(config, { log: makeLog("supervisor") });
  return outcome.exitCode;
}
