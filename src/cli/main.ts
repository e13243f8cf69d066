/**
 * The command line: one thin layer over the roles. Each action lazily imports its
 * command, so `dropbox list` never loads the master's code. Only main() decides the
 * exit code, and every failure becomes one readable line on stderr.
 */
import { cac } from "cac";
import { DropboxError, errorMessage } from "../core/errors";
import { VERSION } from "../core/version";
import { registerClusterCommands } from "./cluster-commands";
import { EXIT, exitCodeFor } from "./exit-codes";
import { cleanUpOnSignals } from "./interrupt";
import { writeOut, writeErr } from "../core/stdio";

/** Stands for a bare "-" (stdin/stdout) argument while options are parsed. */
export const STDIO_ARG = "\u0000-";

/** The exit-code table (README: "Exit codes"), shown under every help. */
const EXIT_CODES_HELP = [
  "  0 ok   1 internal error   2 usage   3 not found   4 unavailable (master or nodes unreachable)",
  "  5 integrity (no good copy)   6 degraded (status/verify: cluster answered but unhealthy)",
  "  7 insufficient nodes or space   8 auth   130 interrupted",
  "Run 'dropbox help COMMAND' (or 'dropbox COMMAND --help') for a command's flags and examples.",
].join("\n");

const MASTER_HELP = "master address HOST:PORT (default: $DROPBOX_MASTER or 127.0.0.1:9000)";

function buildCli(argv: string[], setResult: (p: Promise<number>) => void) {
  const cli = cac("dropbox");
  const run = (load: () => Promise<number>) => setResult(load());
  // Transfers write local files: a signal removes the partial ones before the process ends.
  const runTransfer = (load: () => Promise<number>) => {
    cleanUpOnSignals((code) => process.exit(code));
    run(load);
  };

  cli
    .command("master", "Run the master (metadata server)")
    .option("--host <host>", "address to bind (default: 127.0.0.1)")
    .option("--port <port>", "port to listen on, 0 for any free port (default: 9000)")
    .option("--data-dir <dir>", "where the metadata database lives (default: ./.dropbox/master)")
    .option("--replication <n>", "copies of every chunk (default: 2)")
    .option("--node-timeout <ms>", "silence after which a node is declared dead (default: 10000)")
    .option("--gc-grace <ms>", "how long unreferenced chunks are kept before deletion (default: 600000)")
    .option("--repair-interval <ms>", "how often to look for chunks to repair, trim or collect (default: 1000)")
    .option("--min-free <size>", "nodes with less free space get no new chunks (default: 256MiB)")
    .option("--read-token <token>", "a second token that may only list, download and read status (default: $DROPBOX_READ_TOKEN)")
    .option("--tls-cert <pem>", "serve over TLS with this certificate")
    .option("--tls-key <pem>", "key of --tls-cert")
    .option("--tls-client-ca <pem>", "require client certificates signed by this CA (mutual TLS)")
    .option("--node-secret-file <path>", "secret shared by master and nodes (never clients): nodes then accept writes only with the master's grants (default: $DROPBOX_NODE_SECRET)")
    .example("dropbox master --port 9000 --data-dir /tmp/m")
    .action((flags) => run(async () => (await import("./master")).masterCommand(flags, argv)));

  cli
    .command("node", "Run a storage node")
    .option("--host <host>", "address to bind (default: 127.0.0.1)")
    .option("--port <port>", "port to listen on, 0 for any free port (default: 9001)")
    .option("--master <addr>", MASTER_HELP)
    .option("--data-dir <dir>", "where chunks are stored (required)")
    .option("--advertise <addr>", "HOST:PORT other processes dial (default: --host and the bound port)")
    .option("--id <name>", "node id (default: kept in the data dir, generated at first start)")
    .option("--heartbeat-interval <ms>", "how often to report to the master (default: 1000)")
    .option("--scrub-rate <MiBps>", "MiB/s at which stored chunks are re-verified in the background, 0 to disable (default: 8)")
    .option("--scrub-interval <ms>", "a full pass over the stored chunks starts at most this often, 0 for back to back (default: 604800000, a week)")
    .option("--capacity <size>", "most bytes this node stores, e.g. 100GiB (default: the whole disk)")
    .option("--verify-reads", "re-hash every chunk before serving it; readers verify what they get in any case (default: off)")
    .option("--tls-cert <pem>", "serve over TLS with this certificate")
    .option("--tls-key <pem>", "key of --tls-cert")
    .option("--tls-client-ca <pem>", "require client certificates signed by this CA (mutual TLS)")
    .option("--node-secret-file <path>", "secret shared by master and nodes (never clients): nodes then accept writes only with the master's grants (default: $DROPBOX_NODE_SECRET)")
    .example("dropbox node --port 9001 --master 127.0.0.1:9000 --data-dir /tmp/n1")
    .action((flags) => run(async () => (await import("./node")).nodeCommand(flags, argv)));

  cli
    .command("upload <...paths>", "Upload files, or with -r directory trees (remote name: the file's basename, or its path under the directory)")
    .option("-r, --recursive", "upload the files under each directory given; names keep their path relative to it")
    .option("--prefix <dir>", "put the remote names under this directory, e.g. backups/2024/")
    .option("--as <name>", "remote name for a single file, e.g. artifacts/app.tgz")
    .option("--chunk-size <size>", "chunk size, 64KiB to 64MiB (default: 4MiB)")
    .option("--master <addr>", MASTER_HELP)
    .option("--json", "print the result as one JSON document")
    .option("--quiet", "print nothing but errors")
    .example("dropbox upload ./report.pdf")
    .example("dropbox upload ./build/app.tgz --as artifacts/app.tgz")
    .example("dropbox upload *.log --prefix logs/")
    .example("dropbox upload -r ./photos --prefix photos/   # photos/2024/a.jpg, …")
    .action((paths, flags) => runTransfer(async () => (await import("./upload")).uploadCommand(paths, flags, argv)));

  cli
    .command("download <name> [output]", "Download a file ('-' writes to stdout; default: the name's basename), or with -r every file under a prefix")
    .option("-r, --recursive", "download every file under NAME (a prefix, taken as a directory) into OUTPUT (default: .)")
    .option("--master <addr>", MASTER_HELP)
    .option("--json", "print the result as one JSON document")
    .option("--quiet", "print nothing but errors")
    .example("dropbox download artifacts/app.tgz ./app.tgz")
    .example("dropbox download report.pdf - | sha256sum")
    .example("dropbox download -r photos/ ./restored   # ./restored/2024/a.jpg, …")
    .action((name, output, flags) => runTransfer(async () => (await import("./download")).downloadCommand(String(name), output === undefined ? undefined : output === STDIO_ARG ? "-" : String(output), flags, argv)));

  cli
    .command("list [prefix]", "List files: name, size, chunks, time")
    .option("--master <addr>", MASTER_HELP)
    .option("--json", "print the result as one JSON document")
    .option("--quiet", "print nothing but errors")
    .example("dropbox list artifacts/")
    .action((prefix, flags) => run(async () => (await import("./list")).listCommand(prefix, flags, argv)));

  cli
    .command("delete <...names>", "Delete files")
    .option("--master <addr>", MASTER_HELP)
    .option("--json", "print the result as one JSON document")
    .option("--quiet", "print nothing but errors")
    .example("dropbox delete report.pdf")
    .action((names, flags) => run(async () => (await import("./delete")).deleteCommand(names.map(String), flags, argv)));

  cli
    .command("status", "The master and every node: liveness, heartbeats, chunks, space, uptime, pids; exit 0 only when healthy")
    .option("--master <addr>", MASTER_HELP)
    .option("--json", "print the result as one JSON document")
    .option("--quiet", "print nothing but errors (the exit code tells health)")
    .example("dropbox status")
    .example("dropbox status --quiet || echo 'cluster degraded or down'")
    .example("dropbox status --json | jq '.nodes[] | select(.alive | not) | .id'")
    .action((flags) => run(async () => (await import("./status")).statusCommand(flags, argv)));

  cli
    .command("analyze", "Report: system status, storage per node, chunk analysis, replica distribution, file manifest, network configuration")
    .option("--limit <n>", "chunks whose replicas are listed (default: 10)")
    .option("--master <addr>", MASTER_HELP)
    .option("--json", "print the result as one JSON document")
    .option("--quiet", "print nothing but errors")
    .example("dropbox analyze")
    .example("dropbox analyze --limit 50")
    .example("dropbox analyze --json | jq .chunks.dedupSavingsBytes")
    .action((flags) => run(async () => (await import("./analyze")).analyzeCommand(flags, argv)));

  cli
    .command("verify [...names]", "Re-hash every stored copy (or the named files' chunks) against the master's map; exit 0 only when clean")
    .option("--verbose", "list every problem: chunk, node, files")
    .option("--repair", "forget bad copies, re-replicate from good ones, and wait until done")
    .option("--timeout <ms>", "how long --repair waits for re-replication (default: 120000)")
    .option("--master <addr>", MASTER_HELP)
    .option("--json", "print the result as one JSON document")
    .option("--quiet", "print nothing but errors (the exit code tells the result)")
    .example("dropbox verify")
    .example("dropbox verify photos/a.jpg --verbose")
    .example("dropbox verify --repair && dropbox verify")
    .action((names, flags) => run(async () => (await import("./verify")).verifyCommand(names.map(String), flags, argv)));

  cli
    .command("monitor", "Live CPU, memory, chunks, disk, ops/s and MiB/s of the master and every node (Ctrl+C to exit)")
    .option("--once", "print one snapshot (rates over one interval) and exit")
    .option("--interval <ms>", "time between samples (default: 1000)")
    .option("--master <addr>", MASTER_HELP)
    .option("--json", "one JSON object per process per interval, one per line")
    .option("--quiet", "print nothing but errors")
    .example("dropbox monitor")
    .example("dropbox monitor --once --json | jq 'select(.role == \"node\") | .bytesIn'")
    .example("dropbox monitor --interval 5000 > monitor.log")
    .action((flags) => run(async () => (await import("./monitor")).monitorCommand(flags, argv)));

  registerClusterCommands(cli, run, argv);

  cli.option("--token <token>", "cluster token (default: $DROPBOX_TOKEN, else the token of a 'cluster up' in this directory); $DROPBOX_TOKEN and --token-file keep it out of 'ps'");
  cli.option("--token-file <path>", "read the cluster token from this file");
  cli.option("--tls-ca <pem>", "dial servers over TLS, verifying them against this CA");
  cli.option("--tls-client-cert <pem>", "client certificate for servers that require one (mutual TLS)");
  cli.option("--tls-client-key <pem>", "key of --tls-client-cert");
  cli.option("--tls-server-name <name>", "name to verify in server certificates (needed when dialling IP addresses)");

  cli.help((sections) => [...sections, { title: "Exit codes", body: EXIT_CODES_HELP }]);
  cli.version(VERSION);
  return cli;
}

/** Prints a failure as one line (JSON with --json) and picks its exit code. */
function fail(err: unknown, json: boolean): number {
  let code: number = EXIT.INTERNAL;
  let kind = "INTERNAL";
  let message = errorMessage(err);
  if (err instanceof DropboxError) {
    code = exitCodeFor(err.kind);
    kind = err.kind;
  } else if ((err as Error)?.name === "CACError") {
    code = EXIT.USAGE;
    kind = "USAGE";
    message = `${message.replace(/`/g, "'")} (see 'dropbox --help')`;
  } else if (typeof (err as NodeJS.ErrnoException)?.code === "string" && (err as NodeJS.ErrnoException).syscall) {
    // A local filesystem error: the message already names the path and the reason.
    code = EXIT.USAGE;
    kind = "IO";
  }
  if (json) writeErr(`${JSON.stringify({ error: { kind, message, exitCode: code } })}\n`);
  else writeErr(`error: ${message.split("\n")[0]}\n`);
  return code;
}

/** Runs the command line and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  // `dropbox help [COMMAND]` is `dropbox [COMMAND] --help`.
  if (argv[2] === "help") argv = [argv[0]!, argv[1]!, ...argv.slice(3, 4), "--help"];
  const args = argv.slice(2);
  const json = args.includes("--json");
  let result: Promise<number> | null = null;
  if (args.length === 1 && (args[0] === "--version" || args[0] === "-v")) {
    writeOut(`dropbox ${VERSION}\n`);
    return EXIT.OK;
  }
  try {
    const cli = buildCli(args, (p) => (result = p));
    // The option parser drops a bare "-"; carry it through as a marker the commands know.
    cli.parse(argv.map((a, i) => (i >= 2 && a === "-" ? STDIO_ARG : a)), { run: false });
    if (cli.options.help || cli.options.version) return EXIT.OK;
    if (!cli.matchedCommand) {
      if (args.length === 0) {
        cli.outputHelp();
        return EXIT.USAGE;
      }
      throw Object.assign(new Error(`unknown command '${args[0]}'`), { name: "CACError" });
    }
    // One identity per process: the token every call of this command presents.
    const [{ useToken }, { tokenFrom, TOKEN_ENV }, { localClusterToken }, { useTlsClient }, { tlsClientFrom }] = await Promise.all([
      import("../rpc/auth"),
      import("./args"),
      import("../cluster/token"),
      import("../rpc/tls"),
      import("./tls-flags"),
    ]);
    useToken(tokenFrom(args, "token", cli.options.token, "token-file", cli.options.tokenFile, TOKEN_ENV) ?? localClusterToken(process.cwd()));
    useTlsClient(tlsClientFrom(args, cli.options));
    cli.runMatchedCommand();
    return await (result ?? Promise.resolve(EXIT.OK));
  } catch (err) {
    return fail(err, json);
  }
}
