/**
 * Where a large transfer's CPU goes: for each rep, one `dropbox upload` and one `dropbox
 * download` of fresh random data against a master and 3 nodes (replication 2), with the wall
 * time, the client's peak RSS and CPU seconds (user + system, from its rusage) and each
 * server's CPU seconds over the call (from /proc). Not a test: numbers for the README.
 *
 *   bun bench/transfer-cpu.ts [--size 1G] [--reps 3]      (DROPBOX_BIN picks the binary)
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { dropboxBinary } from "./lib/binary";
import { LocalCluster } from "./lib/local-cluster";
import { processCpuSeconds } from "./lib/processes";
import { sha256File, writeRandomFile } from "./lib/random-data";
import { flagValue, median, mibPerSecond, sizeFromLabel } from "./lib/stats";

const label = flagValue(process.argv, "size") ?? "1G";
const reps = Number(flagValue(process.argv, "reps") ?? 3);
const bytes = sizeFromLabel(label);
const bin = await dropboxBinary();
const cluster = await LocalCluster.start({ bin, nodes: 3, replication: 2 });

/** Runs one client command; returns its wall time and a line of who spent what. */
async function measured(argv: string[]): Promise<{ wallMs: number; line: string }> {
  Bun.spawnSync(["sync"]);
  const before = cluster.servers.map((s) => processCpuSeconds(s.pid) ?? 0);
  const started = performance.now();
  const proc = Bun.spawn([bin, ...argv, "--master", cluster.master.address, "--quiet"], { stdout: "inherit", stderr: "inherit" });
  await proc.exited;
  const wallMs = performance.now() - started;
  if (proc.exitCode !== 0) throw new Error(`${argv[0]} exited ${proc.exitCode}`);
  const usage = proc.resourceUsage();
  const clientCpu = usage ? (Number(usage.cpuTime.user) + Number(usage.cpuTime.system)) / 1e6 : NaN;
  const rssMiB = usage ? Number(usage.maxRSS) / 1024 / 1024 : NaN;
  const servers = cluster.servers.map((s, i) => `${s.name} ${((processCpuSeconds(s.pid) ?? 0) - before[i]!).toFixed(2)}`);
  const line = `${argv[0]} ${(wallMs / 1000).toFixed(2)} s, ${mibPerSecond(bytes, wallMs).toFixed(0)} MiB/s, client RSS ${rssMiB.toFixed(0)} MiB | CPU s: client ${clientCpu.toFixed(2)}, ${servers.join(", ")}`;
  return { wallMs, line };
}

const ups: number[] = [];
const downs: number[] = [];
try {
  for (let rep = 0; rep < reps; rep++) {
    const source = join(cluster.dir, `source-${rep}.bin`);
    const target = join(cluster.dir, `target-${rep}.bin`);
    const hash = await writeRandomFile(source, bytes);
    const up = await measured(["upload", source, "--as", `cpu/${rep}`]);
    const down = await measured(["download", `cpu/${rep}`, target]);
    if ((await sha256File(target)) !== hash) throw new Error(`rep ${rep + 1}: downloaded bytes differ`);
    ups.push(up.wallMs);
    downs.push(down.wallMs);
    console.log(`rep ${rep + 1}: ${up.line}\n       ${down.line}`);
    await rm(source, { force: true });
    await rm(target, { force: true });
  }
  console.log(`median: upload ${mibPerSecond(bytes, median(ups)).toFixed(0)} MiB/s, download ${mibPerSecond(bytes, median(downs)).toFixed(0)} MiB/s`);
} finally {
  await cluster.stop();
}
