/** `dropbox cluster down`: stop the cluster, nodes first, then the master; return when every process is gone. */
import { EXIT } from "../cli/exit-codes";
import { STOP_GRACE_MS, STATE_POLL_INTERVAL_MS } from "./limits";
import { dataDirFrom, type ClusterFlags } from "./options";
import { isAlive, signal, terminate } from "./processes";
import { readState, removeState, supervisorAlive, type ClusterStateDoc } from "./state";
import { writeOut } from "../core/stdio";

/** How long the supervisor gets to stop its children (each stage may use the full grace period) before we step in. */
const SUPERVISOR_STOP_TIMEOUT_MS = 2 * STOP_GRACE_MS + 2_000;

/** Stops nodes, then the master, each with SIGTERM and SIGKILL after the grace period. */
async function stopInOrder(doc: ClusterStateDoc): Promise<void> {
  await terminate(doc.children.filter((c) => c.role === "node").map((c) => c.pid));
  await terminate(doc.children.filter((c) => c.role === "master").map((c) => c.pid));
}

/** Runs `cluster down`; exit 0 also when nothing runs (it says so). */
export async function downCommand(flags: ClusterFlags, argv: string[]): Promise<number> {
  const dataDir = dataDirFrom(flags, argv);
  const say = (line: string) => {
    if (!flags.quiet) writeOut(`${line}\n`);
  };
  let doc = readState(dataDir);
  if (!doc) {
    say(`no cluster running in ${dataDir}`);
    return EXIT.OK;
  }
  if (!supervisorAlive(doc)) {
    const leftovers = doc.children.filter((c) => c.pid > 0 && isAlive(c.pid)).length;
    await stopInOrder(doc);
    await removeState(dataDir);
    say(`no cluster running in ${dataDir}: removed stale state (supervisor pid ${doc.supervisorPid} is gone${leftovers ? `; stopped ${leftovers} leftover processes` : ""})`);
    return EXIT.OK;
  }
  const supervisorPid = doc.supervisorPid;
  // The supervisor stops its children in order and removes the state; we follow it to learn the latest pids.
  const knownPids = new Set(doc.children.map((c) => c.pid).filter((pid) => pid > 0));
  signal(supervisorPid, "SIGTERM");
  const deadlineMs = Date.now() + SUPERVISOR_STOP_TIMEOUT_MS;
  while (isAlive(supervisorPid) && Date.now() < deadlineMs) {
    await Bun.sleep(STATE_POLL_INTERVAL_MS);
    const latest = readState(dataDir);
    if (latest) {
      doc = latest;
      for (const c of latest.children) if (c.pid > 0) knownPids.add(c.pid);
    }
  }
  if (isAlive(supervisorPid)) {
    await stopInOrder(doc);
    await terminate([supervisorPid], 0);
  }
  // Anything the supervisor could not stop (it cannot have, but pids are cheap to check).
  const leftovers = [...knownPids].filter(isAlive);
  if (leftovers.length > 0) await terminate(leftovers);
  await removeState(dataDir);
  say(`cluster stopped (supervisor pid ${supervisorPid} and ${knownPids.size} processes)`);
  return EXIT.OK;
}
