/**
 * `dropbox cluster …` and the seed's `start | stop | restart` verbs. The option parser
 * knows one command per first word, so `cluster` takes an action and the union of the
 * actions' flags; each action then refuses the flags that are not its own.
 */
import type { CAC } from "cac";
import { invalidArgument } from "../core/errors";
import type { ClusterFlags } from "../cluster/options";

/** Flags `up` passes on to every storage node. */
const NODE_FLAGS = ["scrub-rate", "scrub-interval", "capacity", "verify-reads"];
const UP_FLAGS = ["nodes", "replication", "base-port", "data-dir", "timeout", "foreground", "quiet", ...NODE_FLAGS];
/** The flags each action takes; `_supervise` is the detached supervisor that `up` starts, not for people. */
const FLAGS_BY_ACTION: Record<string, string[]> = {
  up: UP_FLAGS,
  _supervise: ["nodes", "replication", "base-port", "data-dir", "timeout", ...NODE_FLAGS],
  down: ["data-dir", "quiet"],
  status: ["data-dir", "json", "quiet"],
  logs: ["data-dir", "follow", "f", "lines", "n"],
  restart: ["data-dir", "quiet"],
};
/** Actions that name a process. */
const TAKES_NAME = new Set(["logs", "restart"]);

async function runAction(action: string, name: string | undefined, flags: ClusterFlags, argv: string[]): Promise<number> {
  const allowed = FLAGS_BY_ACTION[action];
  if (!allowed) throw invalidArgument(`unknown cluster action '${action}': use up, down, status, logs or restart`);
  if (name !== undefined && !TAKES_NAME.has(action)) throw invalidArgument(`'cluster ${action}' takes no argument, got '${name}'`);
  const { checkFlagsFor } = await import("../cluster/options");
  checkFlagsFor(action, argv, allowed);
  switch (action) {
    case "up":
      return (await import("../cluster/up")).upCommand(flags, argv);
    case "_supervise":
      return (await import("../cluster/up")).superviseCommand(flags, argv);
    case "down":
      return (await import("../cluster/down")).downCommand(flags, argv);
    case "status":
      return (await import("../cluster/status")).statusCommand(flags, argv);
    case "logs":
      return (await import("../cluster/logs")).logsCommand(name, flags, argv);
    default:
      return (await import("../cluster/restart")).restartCommand(name, flags, argv);
  }
}

/** `restart` as run.sh meant it: stop whatever runs, then start with the given settings. */
async function stopThenStart(flags: ClusterFlags, argv: string[]): Promise<number> {
  const down = await (await import("../cluster/down")).downCommand(flags, argv);
  if (down !== 0) return down;
  return (await import("../cluster/up")).upCommand(flags, argv);
}

function upOptions(command: ReturnType<CAC["command"]>) {
  return command
    .option("--nodes <n>", "storage nodes to run (default: 3)")
    .option("--replication <n>", "copies of every chunk, at most --nodes (default: 2)")
    .option("--base-port <port>", "master port; nodes take the next ones (default: 9000)")
    .option("--data-dir <dir>", "state, logs and data (default: ./.dropbox)")
    .option("--timeout <ms>", "how long to wait for the cluster to be ready (default: 15000)")
    .option("--foreground", "stay attached; Ctrl+C stops the cluster")
    .option("--scrub-rate <MiBps>", "every node: background re-verification rate, 0 to disable (default: 8)")
    .option("--scrub-interval <ms>", "every node: a full scrub pass starts at most this often (default: a week)")
    .option("--capacity <size>", "every node: most bytes its chunks may take, e.g. 10GiB (default: the whole disk)")
    .option("--verify-reads", "every node: re-hash chunks before serving them (default: off)")
    .option("--quiet", "print nothing but errors");
}

/** Registers the cluster commands; `run` receives the command's exit-code promise. */
export function registerClusterCommands(cli: CAC, run: (load: () => Promise<number>) => void, argv: string[]): void {
  upOptions(cli.command("cluster <action> [name]", "Run a local cluster: up | down | status | logs [NAME] | restart [NAME]"))
    .option("--json", "status: print one JSON document")
    .option("-f, --follow", "logs: keep printing new lines")
    .option("-n, --lines <n>", "logs: lines to print from the end (default: 50)")
    .example("dropbox cluster up --nodes 5 --replication 3 --base-port 7000")
    .example("dropbox cluster status --json")
    .example("dropbox cluster logs node1 -f")
    .example("dropbox cluster down")
    .action((action, name, flags) => run(() => runAction(String(action), name === undefined ? undefined : String(name), flags, argv)));

  upOptions(cli.command("start", "Start a local cluster in the background (same as 'cluster up')")).action((flags) =>
    run(() => runAction("up", undefined, flags, argv)),
  );
  cli
    .command("stop", "Stop the local cluster (same as 'cluster down')")
    .option("--data-dir <dir>", "state, logs and data (default: ./.dropbox)")
    .option("--quiet", "print nothing but errors")
    .action((flags) => run(() => runAction("down", undefined, flags, argv)));
  upOptions(cli.command("restart", "Stop the local cluster if it runs, then start it")).action((flags) =>
    run(async () => {
      const { checkFlagsFor } = await import("../cluster/options");
      checkFlagsFor("restart", argv, UP_FLAGS);
      return stopThenStart(flags, argv);
    }),
  );
}
