/** Which `dropbox` executable the benchmarks drive, building the user's one when it is missing. */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

/** The repository root (bench/lib/../..). */
export const REPO_ROOT = resolve(import.meta.dir, "..", "..");

/**
 * `$DROPBOX_BIN` if set (it must exist), else bin/dropbox, built with the package's own
 * `build` script when missing so that we measure what `npm run build` ships.
 */
export async function dropboxBinary(): Promise<string> {
  if (process.env.DROPBOX_BIN) {
    const bin = resolve(process.env.DROPBOX_BIN);
    if (!existsSync(bin)) throw new Error(`DROPBOX_BIN=${bin} does not exist`);
    return bin;
  }
  const bin = join(REPO_ROOT, "bin", "dropbox");
  if (existsSync(bin)) return bin;
  process.stderr.write(`${bin} is missing: building it (bun run build)\n`);
  const build = Bun.spawn([process.execPath, "run", "build"], { cwd: REPO_ROOT, stdout: "inherit", stderr: "inherit", stdin: "ignore" });
  if ((await build.exited) !== 0 || !existsSync(bin)) throw new Error("building bin/dropbox failed");
  return bin;
}
