/**
 * The seed design as a measuring stick: ../shared/seed-baseline is a Python rebuild of the
 * seed's code with its own bench.py. We install its Debian packages when we may, run its
 * run.sh (disk mode) with sizes matching ours, and read its results JSON.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { REPO_ROOT } from "./binary";

/** Where the seed rebuild lives, next to the repository. */
export const SEED_DIR = process.env.SEED_BASELINE_DIR ? resolve(process.env.SEED_BASELINE_DIR) : resolve(REPO_ROOT, "..", "shared", "seed-baseline");
/** Its bench.py binds these and cannot be told otherwise. */
const SEED_PORTS = [9000, 9001, 9002];
const SEED_PACKAGES = ["python3-grpcio", "python3-grpc-tools", "protobuf-compiler", "python3-protobuf", "time"];
/**
 * bench.py waits for the machine to be quiet before every measurement (default up to 300 s
 * each) and repeats contended ones; bounded here so the whole benchmark fits its 10 minutes.
 * The foreign load it saw is kept in its JSON either way.
 */
const SEED_QUIET_MAX_WAIT_S = "5";
const SEED_CONTENDED_RETRIES = "1";
/**
 * Sizes from which the seed's measurements are not repeated when contended. One 1 GiB upload
 * of the seed's takes 40-90 s here, so a retry costs more than a minute, and a measurement that
 * long is barely moved by the short bursts of foreign load that trigger one: with retries, a
 * slow-hour run took 11.5 min, ~4 of them the seed's 1 GiB retries.
 */
export const SEED_NO_RETRY_MIN_BYTES = 512 * 1024 * 1024;

/** Per-size figures from the seed's results.json (the fields we use). */
export interface SeedSize {
  label: string;
  bytes: number;
  upload_mib_s: number;
  download_mib_s: number;
  upload_proc_wall_median_s: number;
  download_proc_wall_median_s: number;
  client_upload_max_rss_mib: number;
  client_download_max_rss_mib: number;
  server_max_rss_mib: Record<string, number>;
  foreign_cores_max: number;
}

/** Small-file figures from the seed's results.json (the fields we use). */
export interface SeedSmall {
  files: number;
  file_bytes: number;
  loop_upload_median_s: number;
  loop_download_median_s: number;
  proc_upload_median_s: number | null;
  proc_floor_list_s: number;
  server_max_rss_mib: Record<string, number>;
}

/** The seed's results.json. */
export interface SeedResults {
  env: Record<string, unknown>;
  sizes: SeedSize[];
  small?: SeedSmall;
}

async function succeeds(argv: string[]): Promise<boolean> {
  try {
    const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    return (await proc.exited) === 0;
  } catch {
    return false;
  }
}

function seedDepsPresent(): Promise<boolean> {
  return Promise.all([
    succeeds(["/usr/bin/python3", "-c", "import grpc, grpc_tools, google.protobuf"]),
    succeeds(["protoc", "--version"]),
    Promise.resolve(existsSync("/usr/bin/time")),
  ]).then((all) => all.every(Boolean));
}

function portFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once("error", () => done(false));
    server.listen({ host: "127.0.0.1", port, exclusive: true }, () => server.close(() => done(true)));
  });
}

/**
 * Makes sure the seed can run: its folder, its Debian packages (installed with apt-get
 * when missing and we are root), its ports. Returns null when ready, else the reason not.
 */
export async function prepareSeed(log: (line: string) => void): Promise<string | null> {
  if (!existsSync(join(SEED_DIR, "run.sh"))) return `${SEED_DIR}/run.sh not found`;
  if (!(await seedDepsPresent())) {
    if (process.getuid?.() !== 0) return `missing Debian packages (${SEED_PACKAGES.join(" ")}) and not root to install them`;
    log(`installing the seed's packages: apt-get install -y ${SEED_PACKAGES.join(" ")}`);
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const update = Bun.spawn(["apt-get", "update"], { env, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    if ((await update.exited) !== 0) return `apt-get update failed: ${(await new Response(update.stderr).text()).trim().split("\n").at(-1)}`;
    const install = Bun.spawn(["apt-get", "install", "-y", ...SEED_PACKAGES], { env, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    if ((await install.exited) !== 0) return `apt-get install failed: ${(await new Response(install.stderr).text()).trim().split("\n").at(-1)}`;
    if (!(await seedDepsPresent())) return "the seed's packages were installed but grpc/protoc still cannot be found";
  }
  const busy = [];
  for (const port of SEED_PORTS) if (!(await portFree(port))) busy.push(port);
  if (busy.length) return `port(s) ${busy.join(", ")} on 127.0.0.1 in use; the seed needs 9000-9002`;
  return null;
}

/** Options for one run of the seed's bench.py. */
export interface SeedRunOptions {
  /** Scratch dir (source copy, work dir, results), removed by the caller. */
  dir: string;
  sizes: string[];
  reps: number;
  smallFiles: number;
  smallBytes: number;
  /** Rounds of "one client process per small file"; 0 skips them. */
  procReps: number;
  /** Repeats of a contended measurement (default SEED_CONTENDED_RETRIES; $CONTENDED_RETRIES overrides both). */
  contendedRetries?: number;
}

/** Runs the seed's run.sh in disk mode and returns its results JSON; throws with its output's tail on failure. */
export async function runSeedBench(options: SeedRunOptions, log: (line: string) => void): Promise<SeedResults> {
  const out = join(options.dir, "out");
  await mkdir(options.dir, { recursive: true });
  const args = [
    "--sizes", options.sizes.join(","),
    "--reps", String(options.reps),
    "--small-files", String(options.smallFiles),
    "--small-size", String(options.smallBytes),
    "--proc-reps", String(options.procReps),
  ];
  const env = {
    ...process.env,
    MODE: "disk",
    SRC: join(options.dir, "src"),
    WORK: join(options.dir, "work"),
    OUT: out,
    QUIET_MAX_WAIT: process.env.QUIET_MAX_WAIT ?? SEED_QUIET_MAX_WAIT_S,
    CONTENDED_RETRIES: process.env.CONTENDED_RETRIES ?? String(options.contendedRetries ?? SEED_CONTENDED_RETRIES),
  };
  const proc = Bun.spawn(["bash", join(SEED_DIR, "run.sh"), ...args], { env, cwd: options.dir, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const lines: string[] = [];
  const relay = async (stream: ReadableStream<Uint8Array>) => {
    let pending = "";
    const emit = (line: string) => {
      if (!line.trim()) return;
      lines.push(line);
      // Its own summary tables repeat what we print; its progress lines are worth seeing.
      if (!/^\s*[|{]/.test(line)) log(`  seed | ${line}`);
    };
    const decoder = new TextDecoder();
    for await (const bytes of stream) {
      const parts = (pending + decoder.decode(bytes, { stream: true })).split("\n");
      pending = parts.pop() ?? "";
      parts.forEach(emit);
    }
    emit(pending);
  };
  const [, , code] = await Promise.all([relay(proc.stdout), relay(proc.stderr), proc.exited]);
  const resultsPath = join(out, "disk", "results.json");
  if (code !== 0 || !existsSync(resultsPath)) throw new Error(`seed bench exited with ${code}: ${lines.slice(-3).join(" | ")}`);
  return JSON.parse(readFileSync(resultsPath, "utf8")) as SeedResults;
}
