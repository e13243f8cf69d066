/**
 * The workloads of issue 6, run against our binary: big-file throughput, many small files
 * in one call, whole-process CLI latency, and `cluster up` to ready. Every figure is the
 * whole client process from spawn to exit, as a user would time it.
 */
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { basename, join } from "node:path";
import type { LocalCluster } from "./local-cluster";
import { machineBusySeconds, processCpuSeconds, runTimed, type TimedRun } from "./processes";
import { sha256File, writeRandomFile } from "./random-data";
import { median, mibPerSecond, sizeFromLabel } from "./stats";
import { REPO_ROOT } from "./binary";

/** The exit code our CLI gives a usage error, e.g. a flag it does not know yet. */
const EXIT_USAGE = 2;

/** Flushes dirty pages so that one measurement does not pay for the previous one's writes (the seed's bench does the same). */
async function syncDisks(): Promise<void> {
  await Bun.spawn(["sync"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" }).exited;
}

/** A measured run plus how many cores other processes used meanwhile (noise: the machine is shared). */
export interface LoadedRun extends TimedRun {
  foreignCores: number;
}

/** Runs argv measured, and works out the CPU used meanwhile by processes that are neither the client, our servers, nor us. */
async function runMeasured(argv: string[], cluster: LocalCluster): Promise<LoadedRun> {
  const serverCpu = () => cluster.servers.reduce((sum, s) => sum + (processCpuSeconds(s.pid) ?? 0), 0);
  const selfCpu = () => {
    const usage = process.cpuUsage();
    return (usage.user + usage.system) / 1e6;
  };
  const [busy0, servers0, self0] = [machineBusySeconds(), serverCpu(), selfCpu()];
  const run = await runTimed(argv, { measure: true });
  const ours = serverCpu() - servers0 + (selfCpu() - self0) + (run.cpuSeconds ?? 0);
  const foreignCores = Math.max(0, machineBusySeconds() - busy0 - ours) / (run.wallMs / 1000);
  return { ...run, foreignCores };
}

function check(run: TimedRun, what: string): void {
  if (run.exitCode !== 0) throw new Error(`${what} exited with ${run.exitCode}: ${run.stderr.trim().split("\n").at(-1) ?? ""}`);
}

/** Upload and download of one file size, every rep with fresh random bytes. */
export interface ThroughputResult {
  label: string;
  bytes: number;
  reps: number;
  uploadWallMs: number[];
  downloadWallMs: number[];
  uploadMiBps: number;
  downloadMiBps: number;
  clientUploadPeakRssMiB: number;
  clientDownloadPeakRssMiB: number;
  /** Every download's SHA-256 equalled its upload's. */
  verified: boolean;
  foreignCoresMax: number;
}

/** Uploads and downloads `label` bytes `reps` times; the download goes to a file beside the source and is checked by SHA-256. */
export async function measureThroughput(bin: string, cluster: LocalCluster, label: string, reps: number, log: (line: string) => void): Promise<ThroughputResult> {
  const bytes = sizeFromLabel(label);
  const master = ["--master", cluster.master.address];
  const ups: LoadedRun[] = [];
  const downs: LoadedRun[] = [];
  const tag = randomBytes(4).toString("hex");
  for (let rep = 0; rep < reps; rep++) {
    const source = join(cluster.dir, `source-${label}-${rep}.bin`);
    const target = join(cluster.dir, `download-${label}-${rep}.bin`);
    const name = `bench/${tag}/${label}-${rep}`;
    try {
      const sourceHash = await writeRandomFile(source, bytes);
      await syncDisks();
      const up = await runMeasured([bin, "upload", source, "--as", name, ...master, "--quiet"], cluster);
      check(up, `upload of ${label}`);
      await syncDisks();
      const down = await runMeasured([bin, "download", name, target, ...master, "--quiet"], cluster);
      check(down, `download of ${label}`);
      const targetHash = await sha256File(target);
      if (targetHash !== sourceHash) throw new Error(`${label} rep ${rep}: downloaded bytes differ from the uploaded ones (sha256 ${targetHash} != ${sourceHash})`);
      ups.push(up);
      downs.push(down);
      log(
        `  ${label} rep ${rep + 1}/${reps}: up ${up.wallMs.toFixed(0)} ms (${mibPerSecond(bytes, up.wallMs).toFixed(1)} MiB/s, rss ${((up.peakRssKiB ?? 0) / 1024).toFixed(0)} MiB)` +
          ` | down ${down.wallMs.toFixed(0)} ms (${mibPerSecond(bytes, down.wallMs).toFixed(1)} MiB/s, rss ${((down.peakRssKiB ?? 0) / 1024).toFixed(0)} MiB)` +
          ` | sha256 ok | foreign cores ${up.foreignCores.toFixed(2)}/${down.foreignCores.toFixed(2)}`,
      );
    } finally {
      await rm(source, { force: true });
      await rm(target, { force: true });
    }
  }
  const uploadWallMs = ups.map((r) => r.wallMs);
  const downloadWallMs = downs.map((r) => r.wallMs);
  return {
    label,
    bytes,
    reps,
    uploadWallMs,
    downloadWallMs,
    uploadMiBps: mibPerSecond(bytes, median(uploadWallMs)),
    downloadMiBps: mibPerSecond(bytes, median(downloadWallMs)),
    clientUploadPeakRssMiB: Math.max(...ups.map((r) => r.peakRssKiB ?? 0)) / 1024,
    clientDownloadPeakRssMiB: Math.max(...downs.map((r) => r.peakRssKiB ?? 0)) / 1024,
    verified: true,
    foreignCoresMax: Math.max(...ups.map((r) => r.foreignCores), ...downs.map((r) => r.foreignCores)),
  };
}

/** One small-file transfer, or why there is no figure. */
export interface SmallFilesPhase {
  /** The command line that was measured, e.g. "upload -r DIR --prefix P". */
  command: string;
  wallMs: number[];
  medianMs: number | null;
  /** Set when the call the issue asks for is not there yet (exit 2, usage). */
  notImplemented?: string;
}

/** Many small files, one CLI call each way. */
export interface SmallFilesResult {
  files: number;
  fileBytes: number;
  reps: number;
  /** The measured `upload -r`; when it is missing, `upload f1 … fN` in `fallbackUpload`. */
  upload: SmallFilesPhase;
  fallbackUpload?: SmallFilesPhase;
  download: SmallFilesPhase;
  clientUploadPeakRssMiB: number;
  foreignCoresMax: number;
}

async function writeSmallFiles(dir: string, count: number, bytes: number, prefix: string): Promise<Map<string, Buffer>> {
  await mkdir(dir, { recursive: true });
  const files = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    const name = `${prefix}${String(i).padStart(5, "0")}`;
    const data = randomBytes(bytes);
    await writeFile(join(dir, name), data);
    files.set(name, data);
  }
  return files;
}

/** Every regular file under `dir`, by base name. */
async function filesByBaseName(dir: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) found.set(entry.name, join(entry.parentPath, entry.name));
  }
  return found;
}

async function verifySmallDownload(outDir: string, expected: Map<string, Buffer>): Promise<void> {
  const found = await filesByBaseName(outDir);
  for (const [name, data] of expected) {
    const path = found.get(name);
    if (!path) throw new Error(`download -r: ${name} missing from ${outDir}`);
    if (!(await readFile(path)).equals(data)) throw new Error(`download -r: ${name} differs from what was uploaded`);
  }
}

function usageLine(run: TimedRun): string {
  return `n/a (not implemented): ${run.stderr.trim().split("\n")[0] ?? `exit ${run.exitCode}`}`;
}

/**
 * `upload -r DIR --prefix small/…/` and `download -r small/…/ OUTDIR`, each rep on fresh
 * files. When `upload -r` is refused as a usage error the row says so, and
 * `upload f1 … fN` (one process, many paths) is measured instead so there is a number.
 *
 * Every rep's files stay under the cluster's dir, removed with it after the seed has run (run.ts).
 * On ext4 without a journal (this VM's root), the inode allocator skips, one by one, every
 * inode freed in the last minute (six while its inode-table block is dirty): a rep that created
 * its 1000 files right after the previous rep removed 2000 paid that scan in the kernel, and
 * its download took up to 2.5× as long (measured: 274 → 708 ms over nine reps that each removed
 * their outputs, against a flat ~200 ms when none did). Removing them when this phase ended put
 * the same cost on the seed's small-file phase that follows. That is the harness's own
 * clean-up, not either tool's work. (The seed's own bench still removes its chunk files and
 * outputs between its reps, which is its harness's cost, and shows as its later reps slowing.)
 */
export async function measureSmallFiles(bin: string, cluster: LocalCluster, count: number, bytes: number, reps: number, log: (line: string) => void): Promise<SmallFilesResult> {
  const master = ["--master", cluster.master.address];
  const tag = randomBytes(4).toString("hex");
  const upload: SmallFilesPhase = { command: "upload -r DIR --prefix P", wallMs: [], medianMs: null };
  const download: SmallFilesPhase = { command: "download -r P OUTDIR", wallMs: [], medianMs: null };
  let fallbackUpload: SmallFilesPhase | undefined;
  const runs: LoadedRun[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const dir = join(cluster.dir, `small-${rep}`);
    const outDir = join(cluster.dir, `small-out-${rep}`);
    const filePrefix = `s${tag}r${rep}-`;
    const files = await writeSmallFiles(dir, count, bytes, filePrefix);
    await mkdir(outDir, { recursive: true });
    let remotePrefix = `small/${tag}/r${rep}/`;
    await syncDisks();
    let line = `  ${count} x ${bytes} B rep ${rep + 1}/${reps}:`;
    if (!upload.notImplemented) {
      const up = await runMeasured([bin, "upload", "-r", dir, "--prefix", remotePrefix, ...master, "--quiet"], cluster);
      if (up.exitCode === EXIT_USAGE) upload.notImplemented = usageLine(up);
      else {
        check(up, "upload -r");
        upload.wallMs.push(up.wallMs);
        runs.push(up);
        line += ` upload -r ${up.wallMs.toFixed(0)} ms`;
      }
    }
    if (upload.notImplemented) {
      fallbackUpload ??= { command: `upload f1 … f${count} (one process)`, wallMs: [], medianMs: null };
      const paths = [...files.keys()].map((name) => join(dir, name));
      const up = await runMeasured([bin, "upload", ...paths, ...master, "--quiet"], cluster);
      check(up, `upload of ${count} paths`);
      fallbackUpload.wallMs.push(up.wallMs);
      runs.push(up);
      // Uploaded under their base names: the common file-name prefix is the only way to ask for them together.
      remotePrefix = filePrefix;
      line += ` upload f1…f${count} ${up.wallMs.toFixed(0)} ms (upload -r not implemented)`;
    }
    if (!download.notImplemented) {
      await syncDisks();
      const down = await runMeasured([bin, "download", "-r", remotePrefix, outDir, ...master, "--quiet"], cluster);
      if (down.exitCode === EXIT_USAGE) download.notImplemented = usageLine(down);
      else {
        check(down, "download -r");
        await verifySmallDownload(outDir, files);
        download.wallMs.push(down.wallMs);
        runs.push(down);
        line += ` | download -r ${down.wallMs.toFixed(0)} ms, bytes ok`;
      }
    }
    if (download.notImplemented) line += " | download -r not implemented";
    log(line);
  }
  for (const phase of [upload, download, fallbackUpload]) if (phase && phase.wallMs.length) phase.medianMs = median(phase.wallMs);
  return {
    files: count,
    fileBytes: bytes,
    reps,
    upload,
    ...(fallbackUpload ? { fallbackUpload } : {}),
    download,
    clientUploadPeakRssMiB: Math.max(0, ...runs.map((r) => r.peakRssKiB ?? 0)) / 1024,
    foreignCoresMax: Math.max(0, ...runs.map((r) => r.foreignCores)),
  };
}

/** Whole-process times of the lightest calls. */
export interface CliLatencyResult {
  reps: number;
  uploadSmallMs: number[];
  listMs: number[];
  uploadSmallMedianMs: number;
  listMedianMs: number;
  /** Files the master held while `list` was timed (it prints them all). */
  filesListed: number;
}

/** `upload` of one fresh 4 KiB file and `list`, `reps` times each, unwrapped (no timing wrapper in the way). */
export async function measureCliLatency(bin: string, cluster: LocalCluster, reps: number, fileBytes: number): Promise<CliLatencyResult> {
  const master = ["--master", cluster.master.address];
  const tag = randomBytes(4).toString("hex");
  const uploadSmallMs: number[] = [];
  const listMs: number[] = [];
  const path = join(cluster.dir, "latency.bin");
  try {
    for (let rep = 0; rep < reps; rep++) {
      await writeFile(path, randomBytes(fileBytes));
      const up = await runTimed([bin, "upload", path, "--as", `latency/${tag}/${rep}`, ...master, "--quiet"]);
      check(up, "small upload");
      uploadSmallMs.push(up.wallMs);
    }
  } finally {
    await rm(path, { force: true });
  }
  let filesListed = 0;
  for (let rep = 0; rep < reps; rep++) {
    const list = await runTimed([bin, "list", ...master]);
    check(list, "list");
    listMs.push(list.wallMs);
    filesListed = Math.max(0, list.stdout.trim().split("\n").length - 1);
  }
  return { reps, uploadSmallMs, listMs, uploadSmallMedianMs: median(uploadSmallMs), listMedianMs: median(listMs), filesListed };
}

/** `dropbox cluster up` until READY, as bench/cluster-up.ts measures it. */
export interface ClusterUpResult {
  runs: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
}

/** Runs bench/cluster-up.ts (master + `nodes` nodes, cold, `runs` times) and reads its summary line. */
export async function measureClusterUp(bin: string, runs: number, nodes: number): Promise<ClusterUpResult> {
  const script = join(REPO_ROOT, "bench", "cluster-up.ts");
  const run = await runTimed([process.execPath, script, "--runs", String(runs), "--nodes", String(nodes)], { env: { DROPBOX_BIN: bin } });
  check(run, basename(script));
  const match = /median (\d+) ms over (\d+) runs \(min (\d+), max (\d+)\)/.exec(run.stdout);
  if (!match) throw new Error(`cannot read ${basename(script)}'s summary: ${run.stdout.trim()}`);
  return { runs: Number(match[2]), medianMs: Number(match[1]), minMs: Number(match[3]), maxMs: Number(match[4]) };
}
