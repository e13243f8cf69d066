/**
 * The benchmark of issue 6: our cluster (master + 3 nodes, replication 2, loopback) against
 * the seed design, same workloads, same run, same machine. Prints a table and writes
 * bench/results/latest.json. Not a test: numbers for the README.
 *
 *   bun bench/run.ts [--sizes 1M,100M,1G] [--reps 3] [--small-files 1000] [--latency-reps 10]
 *                    [--cluster-up-runs 3] [--quick] [--no-seed] [--out FILE]
 *   (DROPBOX_BIN picks the binary; default bin/dropbox, built when missing)
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, release, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { dropboxBinary, REPO_ROOT } from "./lib/binary";
import { LocalCluster } from "./lib/local-cluster";
import { measureCliLatency, measureClusterUp, measureSmallFiles, measureThroughput, type ClusterUpResult, type CliLatencyResult, type SmallFilesResult, type ThroughputResult } from "./lib/our-workloads";
import { RSS_SOURCE, runTimed, vmHwmKiB } from "./lib/processes";
import { formatTable, ratio, type Row } from "./lib/report";
import { prepareSeed, runSeedBench, SEED_NO_RETRY_MIN_BYTES, type SeedResults } from "./lib/seed";
import { flagValue, sizeFromLabel } from "./lib/stats";

const NODES = 3;
const REPLICATION = 2;
/** Small files are 4 KiB, as in the issue and the seed's bench. */
const SMALL_FILE_BYTES = 4096;
/** Files per process in the seed's one-process-per-upload round, from which its CLI upload latency comes. */
const SEED_LATENCY_FILES = 20;

interface Settings {
  sizes: string[];
  reps: number;
  smallFiles: number;
  latencyReps: number;
  clusterUpRuns: number;
  seed: boolean;
  out: string;
  quick: boolean;
}

function settingsFrom(argv: string[]): Settings {
  const known = new Set(["--sizes", "--reps", "--small-files", "--latency-reps", "--cluster-up-runs", "--out", "--quick", "--no-seed", "--help", "-h"]);
  for (const arg of argv) {
    if (arg.startsWith("-") && !known.has(arg)) throw new Error(`unknown flag ${arg} (see the header of bench/run.ts)`);
  }
  const quick = argv.includes("--quick");
  const int = (name: string, full: number, quickValue: number) => {
    const text = flagValue(argv, name);
    const value = text === undefined ? (quick ? quickValue : full) : Number(text);
    if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a whole number, got ${text}`);
    return value;
  };
  const sizes = (flagValue(argv, "sizes") ?? (quick ? "1M,16M" : "1M,100M,1G")).split(",").filter(Boolean);
  sizes.forEach(sizeFromLabel);
  return {
    sizes,
    reps: Math.max(1, int("reps", 3, 1)),
    smallFiles: int("small-files", 1000, 100),
    latencyReps: Math.max(1, int("latency-reps", 10, 3)),
    clusterUpRuns: int("cluster-up-runs", 3, 1),
    seed: !argv.includes("--no-seed"),
    out: resolve(flagValue(argv, "out") ?? join(REPO_ROOT, "bench", "results", "latest.json")),
    quick,
  };
}

const log = (line: string) => process.stderr.write(`${line}\n`);

/** Everything we measured on our side. */
interface Ours {
  version: string;
  clusterUp: ClusterUpResult | null;
  sizes: ThroughputResult[];
  cliLatency: CliLatencyResult;
  smallFiles: SmallFilesResult | null;
  serverPeakRssMiB: Record<string, number>;
  /** Our cluster's files, removed once the seed has run (see measureOurs). */
  leftDir: string;
}

async function measureOurs(bin: string, settings: Settings): Promise<Ours> {
  const version = (await runTimed([bin, "--version"])).stdout.trim();
  let clusterUp: ClusterUpResult | null = null;
  if (settings.clusterUpRuns > 0) {
    log(`== ours: cluster up -> ready (${settings.clusterUpRuns} cold starts)`);
    clusterUp = await measureClusterUp(bin, settings.clusterUpRuns, NODES);
    log(`  median ${clusterUp.medianMs} ms (min ${clusterUp.minMs}, max ${clusterUp.maxMs})`);
  }
  const cluster = await LocalCluster.start({ bin, nodes: NODES, replication: REPLICATION });
  try {
    log(`== ours: master + ${NODES} nodes, replication ${REPLICATION}, in ${cluster.dir}`);
    const sizes: ThroughputResult[] = [];
    for (const label of settings.sizes) sizes.push(await measureThroughput(bin, cluster, label, settings.reps, log));
    log(`== ours: CLI latency (${settings.latencyReps} x upload of ${SMALL_FILE_BYTES} B, ${settings.latencyReps} x list)`);
    const cliLatency = await measureCliLatency(bin, cluster, settings.latencyReps, SMALL_FILE_BYTES);
    log(`  upload ${cliLatency.uploadSmallMedianMs.toFixed(0)} ms, list ${cliLatency.listMedianMs.toFixed(0)} ms (${cliLatency.filesListed} files listed)`);
    let smallFiles: SmallFilesResult | null = null;
    if (settings.smallFiles > 0) {
      log(`== ours: ${settings.smallFiles} files of ${SMALL_FILE_BYTES} B`);
      smallFiles = await measureSmallFiles(bin, cluster, settings.smallFiles, SMALL_FILE_BYTES, settings.reps, log);
    }
    const serverPeakRssMiB: Record<string, number> = {};
    for (const server of cluster.servers) serverPeakRssMiB[server.name] = (vmHwmKiB(server.pid) ?? 0) / 1024;
    return { version, clusterUp, sizes, cliLatency, smallFiles, serverPeakRssMiB, leftDir: cluster.dir };
  } finally {
    // The files stay until the seed has run: removing thousands of inodes just before its
    // small-file phase would slow its creates on ext4 without a journal (our-workloads.ts).
    await cluster.stop({ keepDir: true });
  }
}

/** The seed's figures, or why there are none. */
interface Seed {
  unavailable?: string;
  main?: SeedResults;
  latency?: SeedResults;
}

async function measureSeed(settings: Settings): Promise<Seed> {
  if (!settings.seed) return { unavailable: "skipped (--no-seed)" };
  const reason = await prepareSeed(log);
  if (reason) {
    log(`== seed unavailable: ${reason}`);
    return { unavailable: reason };
  }
  const dir = await mkdtemp(join(tmpdir(), "dropbox-bench-seed-"));
  try {
    const short = settings.sizes.filter((label) => sizeFromLabel(label) < SEED_NO_RETRY_MIN_BYTES);
    const long = settings.sizes.filter((label) => sizeFromLabel(label) >= SEED_NO_RETRY_MIN_BYTES);
    log(`== seed: ${short.join(", ") || "no sizes"} x ${settings.reps}, ${settings.smallFiles} small files (disk mode)`);
    const main = await runSeedBench({ dir: join(dir, "main"), sizes: short, reps: settings.reps, smallFiles: settings.smallFiles, smallBytes: SMALL_FILE_BYTES, procReps: 0 }, log);
    if (long.length > 0) {
      log(`== seed: ${long.join(", ")} x ${settings.reps}, contended measurements not repeated`);
      const longRun = await runSeedBench({ dir: join(dir, "long"), sizes: long, reps: settings.reps, smallFiles: 0, smallBytes: SMALL_FILE_BYTES, procReps: 0, contendedRetries: 0 }, log);
      main.sizes.push(...longRun.sizes);
    }
    // One client process per file, over a few files: the seed's whole-process upload time.
    const files = settings.quick ? 5 : SEED_LATENCY_FILES;
    log(`== seed: CLI latency (${files} upload processes, 20 list processes)`);
    const latency = await runSeedBench({ dir: join(dir, "latency"), sizes: [], reps: 1, smallFiles: files, smallBytes: SMALL_FILE_BYTES, procReps: 1 }, log);
    return { main, latency };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log(`== seed failed: ${message}`);
    return { unavailable: `failed: ${message}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function maxOf(values: number[]): number | null {
  return values.length ? Math.max(...values) : null;
}

function settingsSkippedSeed(seed: Seed): boolean {
  return seed.unavailable?.startsWith("skipped") ?? false;
}

function rowsFor(ours: Ours, seed: Seed): Row[] {
  const seedNote = seed.unavailable ? (settingsSkippedSeed(seed) ? "skipped" : "unavailable") : undefined;
  const rows: Row[] = [];
  for (const size of ours.sizes) {
    const s = seed.main?.sizes.find((x) => x.label === size.label);
    rows.push({ workload: `upload ${size.label}`, unit: "MiB/s", better: "higher", ours: size.uploadMiBps, seed: s ? size.bytes / 1048576 / s.upload_proc_wall_median_s : null, seedNote });
    rows.push({ workload: `download ${size.label}`, unit: "MiB/s", better: "higher", ours: size.downloadMiBps, seed: s ? size.bytes / 1048576 / s.download_proc_wall_median_s : null, seedNote });
  }
  const small = ours.smallFiles;
  const seedSmall = seed.main?.small;
  if (small) {
    const files = `${small.files} x 4 KiB`;
    const seconds = (ms: number | null) => (ms === null ? null : ms / 1000);
    rows.push({ workload: `${files}: upload -r, one call`, unit: "s", better: "lower", ours: seconds(small.upload.medianMs), oursNote: small.upload.notImplemented ? "n/a (not implemented)" : undefined, seed: seedSmall?.loop_upload_median_s ?? null, seedNote });
    if (small.fallbackUpload) rows.push({ workload: `${files}: upload f1…f${small.files}, one call`, unit: "s", better: "lower", ours: seconds(small.fallbackUpload.medianMs), seed: seedSmall?.loop_upload_median_s ?? null, seedNote });
    rows.push({ workload: `${files}: download -r, one call`, unit: "s", better: "lower", ours: seconds(small.download.medianMs), oursNote: small.download.notImplemented ? "n/a (not implemented)" : undefined, seed: seedSmall?.loop_download_median_s ?? null, seedNote });
  }
  const seedLatency = seed.latency?.small;
  rows.push({ workload: "CLI: upload 4 KiB, whole process", unit: "ms", better: "lower", ours: ours.cliLatency.uploadSmallMedianMs, seed: seedLatency?.proc_upload_median_s ? (seedLatency.proc_upload_median_s / seedLatency.files) * 1000 : null, seedNote });
  rows.push({ workload: "CLI: list, whole process", unit: "ms", better: "lower", ours: ours.cliLatency.listMedianMs, seed: seedLatency ? seedLatency.proc_floor_list_s * 1000 : null, seedNote });
  const largest = ours.sizes.at(-1);
  if (largest) {
    const s = seed.main?.sizes.find((x) => x.label === largest.label);
    rows.push({ workload: `client peak RSS, upload ${largest.label}`, unit: "MiB", better: "lower", ours: largest.clientUploadPeakRssMiB, seed: s?.client_upload_max_rss_mib ?? null, seedNote });
    rows.push({ workload: `client peak RSS, download ${largest.label}`, unit: "MiB", better: "lower", ours: largest.clientDownloadPeakRssMiB, seed: s?.client_download_max_rss_mib ?? null, seedNote });
  }
  const seedServers = [...(seed.main?.sizes.map((s) => s.server_max_rss_mib) ?? []), ...(seedSmall ? [seedSmall.server_max_rss_mib] : [])];
  const seedMaster = maxOf(seedServers.map((s) => s.master ?? 0));
  const seedNode = maxOf(seedServers.flatMap((s) => Object.entries(s).filter(([k]) => k.startsWith("node")).map(([, v]) => v)));
  const ourNode = maxOf(Object.entries(ours.serverPeakRssMiB).filter(([k]) => k.startsWith("node")).map(([, v]) => v));
  rows.push({ workload: "server peak RSS, master", unit: "MiB", better: "lower", ours: ours.serverPeakRssMiB.master ?? null, seed: seedMaster, seedNote });
  rows.push({ workload: "server peak RSS, largest node", unit: "MiB", better: "lower", ours: ourNode, seed: seedNode, seedNote });
  rows.push({ workload: `cluster up -> ready, ${NODES} nodes`, unit: "ms", better: "lower", ours: ours.clusterUp?.medianMs ?? null, oursNote: "not measured", seed: null, seedNote: "— (no such command)" });
  return rows;
}

async function main(): Promise<number> {
  const started = performance.now();
  if (process.argv.includes("--help") || process.argv.includes("-h")) {
    log("usage: bun bench/run.ts [--sizes 1M,100M,1G] [--reps 3] [--small-files 1000] [--latency-reps 10] [--cluster-up-runs 3] [--quick] [--no-seed] [--out FILE]");
    return 0;
  }
  const settings = settingsFrom(process.argv.slice(2));
  const bin = await dropboxBinary();
  log(`binary ${bin}; sizes ${settings.sizes.join(",")}; ${settings.reps} rep(s); peak RSS from ${RSS_SOURCE}`);
  const ours = await measureOurs(bin, settings);
  let seed: Seed;
  try {
    seed = await measureSeed(settings);
  } finally {
    await rm(ours.leftDir, { recursive: true, force: true });
  }
  const rows = rowsFor(ours, seed);
  const table = formatTable(rows);
  const durationS = (performance.now() - started) / 1000;
  const results = {
    env: {
      startedAt: new Date(Date.now() - durationS * 1000).toISOString(),
      binary: bin,
      version: ours.version,
      bun: Bun.version,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "?",
      kernel: release(),
      rssSource: RSS_SOURCE,
      settings,
      cluster: { nodes: NODES, replication: REPLICATION, seedNodes: 2 },
      timing: "whole client process, spawn to exit, on both sides (the seed's client-internal times are in seed.*.sizes)",
    },
    rows: rows.map((row) => ({ ...row, ratio: ratio(row) })),
    ours,
    seed,
    durationS,
  };
  await mkdir(dirname(settings.out), { recursive: true });
  await writeFile(settings.out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(table);
  if (seed.unavailable) console.log(`\nseed column: ${seed.unavailable}`);
  else {
    const floorMs = (seed.latency?.small?.proc_floor_list_s ?? 0) * 1000;
    console.log(
      [
        "",
        `Ours: master + ${NODES} nodes; seed: master + 2 nodes (its design); replication ${REPLICATION} on both; chunks on disk (${tmpdir()}).`,
        "Throughput, CLI and RSS rows time the whole client process on both sides (spawn to exit).",
        `Small-file rows: ours is the whole process; the seed's is its client's own timer, without its ~${floorMs.toFixed(0)} ms process start (favours the seed).`,
      ].join("\n"),
    );
  }
  const noisy = Math.max(0, ...ours.sizes.map((s) => s.foreignCoresMax), ours.smallFiles?.foreignCoresMax ?? 0);
  if (noisy > 0.25) console.log(`\nnote: other processes used up to ${noisy.toFixed(2)} cores during our measurements; figures may be low.`);
  console.log(`\n${settings.out} written; whole run ${durationS.toFixed(0)} s`);
  return 0;
}

try {
  process.exitCode = await main();
} catch (err) {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
