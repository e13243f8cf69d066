/** `dropbox cluster restart [NAME]`: restart one process, or all, under the running supervisor. */
import { adoptClusterToken } from "./token";
import { writeFileSync } from "node:fs";
import { EXIT } from "../cli/exit-codes";
import { invalidArgument, unavailable } from "../core/errors";
import { DEFAULT_READY_TIMEOUT_MS, STATE_POLL_INTERVAL_MS } from "./limits";
import { dataDirFrom, type ClusterFlags } from "./options";
import { signal } from "./processes";
import { readState, supervisorAlive } from "./state";
import { RESTART_REQUEST_SIGNAL, restartRequestPath } from "./supervise";
import { writeOut } from "../core/stdio";

/** Asks the supervisor to restart, then waits until every restarted process is healthy again. */
export async function restartCommand(name: string | undefined, flags: ClusterFlags, argv: string[]): Promise<number> {
  const dataDir = dataDirFrom(flags, argv);
  adoptClusterToken(dataDir);
  const doc = readState(dataDir);
  if (!doc || !supervisorAlive(doc)) throw unavailable(`no cluster running in ${dataDir}: start one with 'dropbox cluster up'`);
  const targets = name === undefined ? doc.children : doc.children.filter((c) => c.name === name);
  if (targets.length === 0) throw invalidArgument(`no process named '${name}' (have: ${doc.children.map((c) => c.name).join(", ")})`);
  const before = new Map(targets.map((c) => [c.name, c.pid]));
  writeFileSync(restartRequestPath(dataDir), JSON.stringify({ names: name === undefined ? [] : [name] }), { mode: 0o600 });
  signal(doc.supervisorPid, RESTART_REQUEST_SIGNAL);
  const timeoutMs = DEFAULT_READY_TIMEOUT_MS;
  const deadlineMs = Date.now() + timeoutMs;
  for (;;) {
    const now = readState(dataDir);
    if (!now || !supervisorAlive(now)) throw unavailable("the supervisor stopped while restarting");
    const current = now.children.filter((c) => before.has(c.name));
    if (current.every((c) => c.pid > 0 && c.pid !== before.get(c.name) && c.state === "running")) {
      if (!flags.quiet) for (const c of current) writeOut(`${c.name} restarted: pid ${before.get(c.name) || "-"} -> ${c.pid}, healthy\n`);
      return EXIT.OK;
    }
    if (Date.now() > deadlineMs) {
      const late = current.filter((c) => c.state !== "running").map((c) => `${c.name} (${c.state})`);
      throw unavailable(`restart did not finish within ${timeoutMs} ms: ${late.join(", ") || "no new process yet"}; see 'dropbox cluster logs'`);
    }
    await Bun.sleep(STATE_POLL_INTERVAL_MS);
  }
}
