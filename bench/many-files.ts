/**
 * Client memory and time for many small files: `upload -r` of a tree of N files of a few
 * bytes, `download -r` of it, and `list --json` of it, each a whole client process with its
 * peak RSS. A plan, its outcomes and its report must not make memory grow with N (past the
 * 10,000 files a plan keeps), so the figures for two sizes are printed side by side.
 * Master + 3 nodes, replication 2. Not a test: numbers for the README.
 *
 *   bun bench/many-files.ts [--files 20000,60000] [--out FILE]
 *   (DROPBOX_BIN picks the binary; default bin/dropbox, built when missing)
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { dropboxBinary, REPO_ROOT } from "./lib/binary";
import { LocalCluster } from "./lib/local-cluster";
import { RSS_SOURCE, runTimed } from "./lib/processes";
import { flagValue } from "./lib/stats";

const log = (line: string) => process.stderr.write(`${line}\n`);

/** Files per directory of the generated tree: a few levels, as real trees have. */
const FILES_PER_DIRECTORY = 500;

interface Step {
  command: string;
  wallMs: number;
  peakRssMiB: number | null;
}

/** Runs one client command; throws with its stderr when it fails. */
async function step(command: string, argv: string[]): Promise<Step> {
  const run = await runTimed(argv, { measure: true });
  if (run.exitCode !== 0) throw new Error(`${command} exited ${run.exitCode}: ${run.stderr.trim()}`);
  return { command, wallMs: Math.round(run.wallMs), peakRssMiB: run.peakRssKiB === null ? null : Math.round(run.peakRssKiB / 1024) };
}

async function measure(bin: string, cluster: LocalCluster, files: number): Promise<Step[]> {
  const master = ["--master", cluster.master.address];
  const tree = join(cluster.dir, `tree-${files}`);
  for (let i = 0; i < files; i++) {
    const dir = join(tree, `d${Math.floor(i / FILES_PER_DIRECTORY)}`);
    if (i % FILES_PER_DIRECTORY === 0) await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `f${i}`), `file ${i} of ${files}\n`);
  }
  const prefix = `many-${files}/`;
  const out = join(cluster.dir, `out-${files}`);
  const steps = [
    await step("upload -r", [bin, "upload", "-r", tree, "--prefix", prefix, ...master, "--quiet"]),
    await step("download -r", [bin, "download", "-r", prefix, out, ...master, "--quiet"]),
    await step("list --json", [bin, "list", prefix, ...master, "--json"]),
  ];
  for (const s of steps) log(`  ${files} files: ${s.command} ${(s.wallMs / 1000).toFixed(2)} s, peak RSS ${s.peakRssMiB ?? "?"} MiB`);
  return steps;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  for (const arg of argv) if (arg.startsWith("-") && !["--files", "--out"].includes(arg)) throw new Error(`unknown flag ${arg} (see the header of bench/many-files.ts)`);
  const sizes = (flagValue(argv, "files") ?? "20000,60000").split(",").map(Number);
  if (sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error("--files takes positive integers, comma-separated");
  const out = resolve(flagValue(argv, "out") ?? join(REPO_ROOT, "bench", "results", "many-files.json"));
  const bin = await dropboxBinary();
  log(`binary ${bin}; peak RSS from ${RSS_SOURCE}`);
  const cluster = await LocalCluster.start({ bin, nodes: 3, replication: 2 });
  const results: Record<string, Step[]> = {};
  try {
    for (const files of sizes) results[files] = await measure(bin, cluster, files);
  } finally {
    await cluster.stop();
  }
  const commands = results[sizes[0]!]!.map((s) => s.command);
  console.log(`| command | ${sizes.map((n) => `${n} files`).join(" | ")} |`);
  console.log(`|---|${sizes.map(() => "--:").join("|")}|`);
  for (const [i, command] of commands.entries()) {
    console.log(`| ${command} | ${sizes.map((n) => `${(results[n]![i]!.wallMs / 1000).toFixed(2)} s, ${results[n]![i]!.peakRssMiB ?? "?"} MiB`).join(" | ")} |`);
  }
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify({ rssSource: RSS_SOURCE, results }, null, 2)}\n`);
  log(`${out} written`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    log(`many-files: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
