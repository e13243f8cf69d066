/**
 * Starts real clusters from the compiled binary: a master and N nodes, each a separate
 * process on an OS-chosen port with its own temp dir and log file. Tests wrap their
 * body in `withCluster`, which tears everything down and dumps the logs on failure.
 */
import { mkdtemp, open, readFile, rm, stat } from "node:fs/promises";
import { closeSync, existsSync, openSync, statSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { useToken } from "../src/rpc/auth";
import { PACK_RECORD_HEADER_BYTES } from "../src/node/pack-store";
import { MasterApi } from "../src/rpc/client";
import { waitFor } from "./poll";
import { chunksOnDisk, withPackIndex } from "./disk-chunks";

export { waitFor };

export const ROOT = resolve(import.meta.dir, "..");
/** The binary under test; DROPBOX_BIN lets a parallel build be tested without touching bin/dropbox. */
export const BIN = process.env.DROPBOX_BIN ? resolve(process.env.DROPBOX_BIN) : join(ROOT, "bin", "dropbox");
if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run 'bun run build' first (npm test does)`);

/** The result of running the CLI once. */
export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs the binary to completion. */
export async function runCli(args: string[], options: { env?: Record<string, string>; cwd?: string; stdin?: Uint8Array } = {}): Promise<RunResult> {
  const proc = Bun.spawn([BIN, ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdin: options.stdin ?? "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { exitCode, stdout, stderr };
}

/** `dropbox ARGS` as one shell word list, each argument single-quoted, for tests that need a shell (pipes, terminals). */
export function cliCommandLine(args: string[]): string {
  return [BIN, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
}

/** One server process of a test cluster. */
export class ServerProcess {
  proc: Subprocess | null = null;
  port = 0;

  constructor(
    readonly name: string,
    readonly dataDir: string,
    readonly logPath: string,
    private readonly argsFor: (port: number) => string[],
    private readonly env: Record<string, string> = {},
  ) {}

  /** Starts the process (on its previous port when restarting), with `extraArgs` this time, and waits until it reports its port. */
  async start(extraArgs: string[] = []): Promise<void> {
    const before = (await stat(this.logPath).catch(() => null))?.size ?? 0;
    // The child writes straight into its log (append mode keeps earlier runs for the dump).
    const fd = openSync(this.logPath, "a");
    try {
      this.proc = Bun.spawn([BIN, ...this.argsFor(this.port), ...extraArgs], { stdout: fd, stderr: fd, stdin: "ignore", env: { ...process.env, ...this.env } });
    } finally {
      closeSync(fd);
    }
    this.port = await waitFor(`${this.name} to listen`, async () => {
      if (this.proc?.exitCode !== null && this.proc?.exitCode !== undefined) throw new Error(`${this.name} exited with ${this.proc.exitCode}`);
      const text = (await readFile(this.logPath)).subarray(before).toString("utf8");
      const match = /listening on \S+:(\d+)/.exec(text);
      return match ? Number(match[1]) : 0;
    });
  }

  get address() {
    return `127.0.0.1:${this.port}`;
  }

  get pid() {
    return this.proc?.pid ?? 0;
  }

  /** Sends a signal and waits for the process to exit. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<number | null> {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc?.exitCode ?? null;
    this.proc.kill(signal);
    return await this.proc.exited;
  }

  async log(): Promise<string> {
    return readFile(this.logPath, "utf8").catch(() => "(no log)");
  }
}

/** Options for a test cluster. */
export interface ClusterOptions {
  nodes?: number;
  replication?: number;
  masterArgs?: string[];
  nodeArgs?: string[];
  /** Do not wait for the nodes to be alive (e.g. when a test expects them not to come up). */
  noWait?: boolean;
  /** Environment for the servers and for `run` (e.g. DROPBOX_TOKEN); its token is also this process's. */
  env?: Record<string, string>;
}

/** A master and its nodes in one temp dir. */
export class TestCluster {
  readonly master: ServerProcess;
  readonly nodes: ServerProcess[] = [];
  readonly api: () => MasterApi;
  private apis: MasterApi[] = [];

  private constructor(
    readonly dir: string,
    private readonly options: ClusterOptions,
  ) {
    this.master = new ServerProcess("master", join(dir, "master"), join(dir, "master.log"), (port) => [
      "master",
      "--port",
      String(port),
      "--data-dir",
      join(dir, "master"),
      "--replication",
      String(options.replication ?? 2),
      ...(options.masterArgs ?? []),
    ], options.env);
    this.api = () => {
      const api = new MasterApi(this.master.address);
      this.apis.push(api);
      return api;
    };
  }

  static async start(options: ClusterOptions = {}): Promise<TestCluster> {
    const dir = await mkdtemp(join(tmpdir(), "dropbox-test-"));
    const cluster = new TestCluster(dir, options);
    // The harness's own calls (waiting for nodes, reading manifests) present the cluster's token.
    useToken(options.env?.DROPBOX_TOKEN || undefined);
    try {
      await cluster.master.start();
      for (let i = 1; i <= (options.nodes ?? 3); i++) cluster.addNode();
      await Promise.all(cluster.nodes.map((n) => n.start()));
      if (!options.noWait) await cluster.waitForLiveNodes(cluster.nodes.length);
    } catch (err) {
      await cluster.dumpLogs();
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Adds (does not start) another node. */
  addNode(extraArgs: string[] = []): ServerProcess {
    const i = this.nodes.length + 1;
    const dataDir = join(this.dir, `node${i}`);
    const node = new ServerProcess(`node${i}`, dataDir, join(this.dir, `node${i}.log`), (port) => [
      "node",
      "--port",
      String(port),
      "--master",
      this.master.address,
      "--data-dir",
      dataDir,
      "--id",
      `node${i}`,
      ...(this.options.nodeArgs ?? []),
      ...extraArgs,
    ], this.options.env);
    this.nodes.push(node);
    return node;
  }

  /** Waits until the master sees exactly `count` live nodes. */
  async waitForLiveNodes(count: number, timeoutMs = 15_000) {
    const api = this.api();
    await waitFor(`${count} live nodes`, async () => (await api.getClusterStatus(1000)).nodes.filter((n) => n.alive).length === count, timeoutMs);
  }

  /** Runs the CLI against this cluster's master. */
  run(args: string[], options: { cwd?: string; stdin?: Uint8Array; env?: Record<string, string> } = {}): Promise<RunResult> {
    return runCli(args, { ...options, env: { DROPBOX_MASTER: this.master.address, ...this.options.env, ...options.env } });
  }

  /** The chunks a node holds on disk, packed or in files, with their sizes: read off its disk, not asked. */
  chunkFiles(node: ServerProcess): Promise<Map<string, number>> {
    return chunksOnDisk(node.dataDir);
  }

  async dumpLogs() {
    for (const p of [this.master, ...this.nodes]) {
      process.stderr.write(`\n----- ${p.name} log (${p.logPath}) -----\n${await p.log()}\n`);
    }
  }

  async stop() {
    useToken(undefined);
    for (const api of this.apis) api.close();
    await Promise.all([...this.nodes, this.master].map((p) => p.kill("SIGKILL")));
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Runs `body` against a fresh cluster; always tears it down, and dumps logs when the body fails. */
export async function withCluster(options: ClusterOptions, body: (cluster: TestCluster) => Promise<void>): Promise<void> {
  const cluster = await TestCluster.start(options);
  try {
    await body(cluster);
  } catch (err) {
    await cluster.dumpLogs();
    throw err;
  } finally {
    await cluster.stop();
  }
}

/** A temp dir for a test's local files, removed afterwards. */
export function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  return withTempDirUnder(tmpdir(), body);
}

/** A temp dir under `root` (a filesystem a test needs, such as tmpfs), removed afterwards. */
export async function withTempDirUnder(root: string, body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(root, "dropbox-files-"));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Random bytes of a given size (crypto-quality, so chunks never collide by accident). */
export function randomBytes(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65536) crypto.getRandomValues(out.subarray(offset, Math.min(size, offset + 65536)));
  return out;
}

/** SHA-256 of a file on disk, hex. */
export async function sha256File(path: string): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  for await (const piece of Bun.file(path).stream()) hasher.update(piece);
  return hasher.digest("hex");
}

/** The start of every ANSI control sequence: piped output must never contain it. */
export const ANSI = "\x1b[";

/** How many chunks a node holds packed, read off its pack index (0 before it has one). */
export function packedChunkCount(node: ServerProcess): number {
  return withPackIndex(node.dataDir, (db) => (db.query("SELECT COUNT(*) AS n FROM packed").get() as { n: number }).n) ?? 0;
}

/** Where a node keeps a chunk's bytes on disk: a chunk file, or a record in a pack. */
function locateChunk(node: ServerProcess, chunkId: string): { path: string; offset: number; size: number } {
  const packed = withPackIndex(node.dataDir, (db) => db.query("SELECT pack, offset, size FROM packed WHERE chunk_id = ?").get(chunkId) as { pack: number; offset: number; size: number } | null);
  if (packed) return { path: join(node.dataDir, "packs", `${String(packed.pack).padStart(8, "0")}.pack`), offset: packed.offset + PACK_RECORD_HEADER_BYTES, size: packed.size };
  const path = join(node.dataDir, "chunks", chunkId.slice(0, 2), chunkId);
  return { path, offset: 0, size: statSync(path).size };
}

/** Whether a node holds a copy of the chunk on disk whose bytes hash to its id. */
export async function holdsGoodCopy(node: ServerProcess, chunkId: string): Promise<boolean> {
  let where: { path: string; offset: number; size: number };
  try {
    where = locateChunk(node, chunkId);
  } catch {
    return false; // no such file
  }
  const handle = await open(where.path, "r");
  try {
    const bytes = Buffer.alloc(where.size);
    await handle.read(bytes, 0, where.size, where.offset);
    return new Bun.CryptoHasher("sha256").update(bytes).digest("hex") === chunkId;
  } finally {
    await handle.close();
  }
}

/** Rots a node's copy of a chunk on disk: flips the byte at `at` (for tests of damage). */
export async function rotChunk(node: ServerProcess, chunkId: string, at = 1000) {
  const { path, offset, size } = locateChunk(node, chunkId);
  await flipByte(path, offset + Math.min(at, size - 1));
}

/** Flips the byte at `position` of a file, in place (bit rot, for tests of damage). */
export async function flipByte(path: string, position: number) {
  const handle = await open(path, "r+");
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, position);
    byte[0] = byte[0]! ^ 0xff;
    await handle.write(byte, 0, 1, position);
  } finally {
    await handle.close();
  }
}

/** Overwrites a node's copy of a chunk on disk with other bytes of the same length. */
export async function overwriteChunk(node: ServerProcess, chunkId: string, bytes: Uint8Array) {
  const { path, offset, size } = locateChunk(node, chunkId);
  if (bytes.byteLength !== size) throw new Error(`overwriteChunk: ${bytes.byteLength} bytes for a ${size}-byte chunk`);
  const handle = await open(path, "r+");
  try {
    await handle.write(bytes, 0, bytes.byteLength, offset);
  } finally {
    await handle.close();
  }
}

/** Removes a node's copy of a chunk from its disk, as a lost file would (behind the node's back). */
export async function removeChunk(node: ServerProcess, chunkId: string) {
  const removed = withPackIndex(node.dataDir, (db) => db.query("DELETE FROM packed WHERE chunk_id = ?").run(chunkId).changes);
  if (!removed) await rm(join(node.dataDir, "chunks", chunkId.slice(0, 2), chunkId));
}

/** Lines of output parsed as JSON, one document per line. */
export function jsonLines<T = Record<string, unknown>>(text: string): T[] {
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as T);
}

/** Binds a port the way the children will; resolves with the server holding it, or null when taken. */
export function bind(port: number): Promise<Server | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(null));
    server.listen({ host: "127.0.0.1", port, exclusive: true }, () => resolve(server));
  });
}

export async function closeAll(servers: Server[]) {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
}

/** A base port with `count` consecutive free ports, from a random spot so parallel runs rarely meet. */
export async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const held: Server[] = [];
    let ok = true;
    for (let i = 0; i < count && ok; i++) {
      const server = await bind(base + i);
      if (server) held.push(server);
      else ok = false;
    }
    await closeAll(held);
    if (ok) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

/** The outcome of a call as a word: "OK", or the kind of the error it failed with. */
export async function kindOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => "OK",
    (err) => err.kind,
  );
}
