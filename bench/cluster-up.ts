/**
 * How long `dropbox cluster up` takes to return READY (master serving, every node alive),
 * measured end to end from the compiled binary: median of several cold starts, each in a
 * fresh data dir, each followed by `cluster down`. Not a test: numbers for the README.
 *
 *   bun bench/cluster-up.ts [--runs 7] [--nodes 3]      (DROPBOX_BIN picks the binary)
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createServer } from "node:net";

const BIN = resolve(process.env.DROPBOX_BIN ?? join(import.meta.dir, "..", "bin", "dropbox"));

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}
const RUNS = flag("runs", 7);
const NODES = flag("nodes", 3);

function portFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once("error", () => done(false));
    server.listen({ host: "127.0.0.1", port, exclusive: true }, () => server.close(() => done(true)));
  });
}

async function freeBase(count: number): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const free = await Promise.all(Array.from({ length: count }, (_, i) => portFree(base + i)));
    if (free.every(Boolean)) return base;
  }
}

async function run(args: string[], cwd: string): Promise<number> {
  const proc = Bun.spawn([BIN, ...args], { cwd, stdout: "ignore", stderr: "inherit", stdin: "ignore" });
  return proc.exited;
}

const timesMs: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const dir = await mkdtemp(join(tmpdir(), "dropbox-bench-up-"));
  try {
    const base = await freeBase(NODES + 1);
    const started = performance.now();
    const code = await run(["cluster", "up", "--quiet", "--nodes", String(NODES), "--base-port", String(base)], dir);
    const elapsed = performance.now() - started;
    if (code !== 0) throw new Error(`cluster up exited with ${code}`);
    timesMs.push(elapsed);
    process.stderr.write(`run ${i + 1}: ${elapsed.toFixed(0)} ms\n`);
  } finally {
    await run(["cluster", "down", "--quiet"], dir);
    await rm(dir, { recursive: true, force: true });
  }
}
timesMs.sort((a, b) => a - b);
const median = timesMs[Math.floor(timesMs.length / 2)]!;
console.log(`cluster up -> ready, master + ${NODES} nodes: median ${median.toFixed(0)} ms over ${RUNS} runs (min ${timesMs[0]!.toFixed(0)}, max ${timesMs.at(-1)!.toFixed(0)})`);
