/** `dropbox cluster logs [NAME] [-f] [-n 50]`: the end of one process's log, or of all of them, optionally following. */
import { readdirSync } from "node:fs";
import { intFlag } from "../cli/args";
import { EXIT } from "../cli/exit-codes";
import { notFound } from "../core/errors";
import { DEFAULT_LOG_LINES, LOG_FOLLOW_INTERVAL_MS } from "./limits";
import { fileSize, lastLines, readFrom } from "./log-tail";
import { dataDirFrom, type ClusterFlags } from "./options";
import { logPathFor, logsDir } from "./plan";
import { writeOut } from "../core/stdio";

/** Lines `-n` may ask for: more is not a tail any more. */
const MAX_LOG_LINES = 100_000;

/** The processes with a log in this data dir: master, nodes in number order, supervisor last. */
function loggedNames(dataDir: string): string[] {
  let files: string[];
  try {
    files = readdirSync(logsDir(dataDir));
  } catch {
    return [];
  }
  const rank = (name: string) => (name === "master" ? -1 : name === "supervisor" ? 1e9 : Number(name.replace(/\D/g, "")) || 1e8);
  return files
    .filter((f) => f.endsWith(".log"))
    .map((f) => f.slice(0, -4))
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** Runs `cluster logs`; with -f it follows until Ctrl-C. */
export async function logsCommand(name: string | undefined, flags: ClusterFlags, argv: string[]): Promise<number> {
  const dataDir = dataDirFrom(flags, argv);
  const count = intFlag(flags.lines ?? DEFAULT_LOG_LINES, "lines", 0, MAX_LOG_LINES);
  const available = loggedNames(dataDir);
  if (name !== undefined && !available.includes(name)) {
    throw notFound(available.length ? `no log for '${name}' in ${logsDir(dataDir)} (have: ${available.join(", ")})` : `no logs in ${logsDir(dataDir)}: no cluster was started there`);
  }
  const names = name !== undefined ? [name] : available;
  if (names.length === 0) throw notFound(`no logs in ${logsDir(dataDir)}: no cluster was started there`);
  // With several logs each line says whose it is, as foreman and overmind do.
  const width = Math.max(...names.map((n) => n.length));
  const prefix = (n: string) => (names.length > 1 ? `${n.padEnd(width)} | ` : "");
  const offsets = new Map<string, number>();
  for (const n of names) {
    const path = logPathFor(dataDir, n);
    offsets.set(n, await fileSize(path));
    const lines = await lastLines(path, count);
    if (lines.length > 0) writeOut(`${lines.map((l) => prefix(n) + l).join("\n")}\n`);
  }
  if (!flags.follow) return EXIT.OK;
  let stopped = false;
  const stop = () => (stopped = true);
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const partial = new Map<string, string>();
  while (!stopped) {
    for (const n of names) {
      const { text, end } = await readFrom(logPathFor(dataDir, n), offsets.get(n) ?? 0);
      offsets.set(n, end);
      if (!text) continue;
      const lines = ((partial.get(n) ?? "") + text).split("\n");
      partial.set(n, lines.pop() ?? "");
      if (lines.length > 0) writeOut(`${lines.map((l) => prefix(n) + l).join("\n")}\n`);
    }
    await Bun.sleep(LOG_FOLLOW_INTERVAL_MS);
  }
  return EXIT.OK;
}
