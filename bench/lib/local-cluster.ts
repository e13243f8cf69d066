/**
 * A master and N storage nodes spawned straight from the binary on OS-chosen loopback
 * ports, each with its own data dir and log file under one temp dir. Used by the
 * benchmarks that need the processes' pids (peak RSS, killing a node); whatever happens,
 * every process is stopped when this script exits.
 */
import { closeSync, openSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { MasterApi } from "../../src/rpc/client";
import { waitFor } from "../../test/poll";
import { chunksOnDisk } from "../../test/disk-chunks";

export { waitFor };

/** How long a server may take to print its `listening on` line. */
const LISTEN_TIMEOUT_MS = 15_000;
/** How long the nodes may take to register and be seen alive. */
const READY_TIMEOUT_MS = 15_000;
/** How long a server gets to stop on SIGTERM before it is killed. */
const STOP_GRACE_MS = 5_000;

/** Every child still running; killed on exit so that nothing is left listening. */
const running = new Set<Subprocess>();
process.on("exit", () => {
  for (const proc of running) proc.kill("SIGKILL");
});
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    for (const proc of running) proc.kill("SIGKILL");
    process.exit(130);
  });
}

/** One server process: master or node. */
export class ServerProcess {
  port = 0;

  private constructor(
    readonly name: string,
    readonly dataDir: string,
    readonly logPath: string,
    readonly proc: Subprocess,
  ) {}

  /** Spawns `bin args…` with output to `logPath` and waits for its `listening on` line. */
  static async start(bin: string, name: string, dataDir: string, logPath: string, args: string[]): Promise<ServerProcess> {
    const fd = openSync(logPath, "a");
    let proc: Subprocess;
    try {
      proc = Bun.spawn([bin, ...args], { stdout: fd, stderr: fd, stdin: "ignore" });
    } finally {
      closeSync(fd);
    }
    running.add(proc);
    void proc.exited.then(() => running.delete(proc));
    const server = new ServerProcess(name, dataDir, logPath, proc);
    server.port = await waitFor(
      `${name} to listen`,
      () => {
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${name} exited (${proc.exitCode ?? proc.signalCode}): ${server.logTail()}`);
        const match = /listening on \S+:(\d+)/.exec(readFileSync(logPath, "utf8"));
        return match ? Number(match[1]) : 0;
      },
      LISTEN_TIMEOUT_MS,
    );
    return server;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.proc.pid;
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Sends `signal` and waits for the exit; SIGKILL after the grace period. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (!this.alive) return;
    this.proc.kill(signal);
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), STOP_GRACE_MS);
    await this.proc.exited;
    clearTimeout(timer);
  }

  /** The last lines of the log, for error messages. */
  logTail(lines = 5): string {
    try {
      return readFileSync(this.logPath, "utf8").trim().split("\n").slice(-lines).join(" | ");
    } catch {
      return "(no log)";
    }
  }
}

/** Settings for a local cluster. */
export interface LocalClusterOptions {
  bin: string;
  nodes: number;
  replication: number;
  masterArgs?: string[];
  nodeArgs?: string[];
}

/** A running master and its nodes, all under `dir`. */
export class LocalCluster {
  private readonly apis: MasterApi[] = [];

  private constructor(
    readonly dir: string,
    readonly master: ServerProcess,
    readonly nodes: ServerProcess[],
  ) {}

  /** Starts the master, then the nodes, and waits until the master sees every node alive. */
  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const dir = await mkdtemp(join(tmpdir(), "dropbox-bench-"));
    const servers: ServerProcess[] = [];
    try {
      const masterDir = join(dir, "master");
      const master = await ServerProcess.start(options.bin, "master", masterDir, join(dir, "master.log"), [
        "master", "--port", "0", "--data-dir", masterDir, "--replication", String(options.replication), ...(options.masterArgs ?? []),
      ]);
      servers.push(master);
      const nodes = await Promise.all(
        Array.from({ length: options.nodes }, (_, i) => {
          const id = `node${i + 1}`;
          const nodeDir = join(dir, id);
          return ServerProcess.start(options.bin, id, nodeDir, join(dir, `${id}.log`), [
            "node", "--port", "0", "--master", master.address, "--data-dir", nodeDir, "--id", id, ...(options.nodeArgs ?? []),
          ]).then((node) => (servers.push(node), node));
        }),
      );
      const cluster = new LocalCluster(dir, master, nodes);
      const api = cluster.api();
      await waitFor(`${nodes.length} live nodes`, async () => (await api.getClusterStatus(1000)).nodes.filter((n) => n.alive).length === nodes.length, READY_TIMEOUT_MS);
      return cluster;
    } catch (err) {
      await Promise.all(servers.map((s) => s.stop("SIGKILL")));
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** A master client that is closed with the cluster. */
  api(): MasterApi {
    const api = new MasterApi(this.master.address);
    this.apis.push(api);
    return api;
  }

  /** Master first, then nodes. */
  get servers(): ServerProcess[] {
    return [this.master, ...this.nodes];
  }

  /** Every chunk on a node's disk, a file or packed: the set of ids. */
  async chunkIdsOnDisk(node: ServerProcess): Promise<Set<string>> {
    return new Set((await chunksOnDisk(node.dataDir)).keys());
  }

  /** Stops every process (SIGTERM, then SIGKILL) and removes the temp dir, unless told to leave it (`dir`) for later. */
  async stop(options: { keepDir?: boolean } = {}): Promise<void> {
    for (const api of this.apis) api.close();
    await Promise.all(this.servers.map((s) => s.stop()));
    if (!options.keepDir) await rm(this.dir, { recursive: true, force: true });
  }
}
