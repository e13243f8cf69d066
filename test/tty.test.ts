/**
 * What a person at a terminal sees: listr2 progress drawn with control codes, then the same
 * summary a script gets. Run under util-linux `script`, which gives the CLI a real
 * pseudo-terminal (sized with stty: a 0-column terminal gets no live drawing).
 */
import { describe, expect, test } from "bun:test";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cliCommandLine, randomBytes, withCluster, withTempDir } from "./harness";

const ESC = "\x1b[";

/** Runs the CLI on a pseudo-terminal 100 columns wide; returns everything it drew and its exit code. */
async function onTerminal(args: string[], env: Record<string, string>) {
  const quoted = cliCommandLine(args);
  // Outside CI: under CI=true the CLI rightly draws nothing live.
  const { CI: _ci, ...rest } = process.env;
  const proc = Bun.spawn(["script", "-qec", `stty cols 100 rows 40; exec ${quoted}`, "/dev/null"], { env: { ...rest, ...env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [output, , exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { output, exitCode };
}

describe("on a terminal", () => {
  test("upload draws live per-file progress, then prints the summary; a failure still exits with its code", async () => {
    await withCluster({ nodes: 2, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const src = join(dir, "src");
        await mkdir(src);
        for (let i = 1; i <= 3; i++) await writeFile(join(src, `f${i}`), randomBytes(2 * 1024 * 1024 + i));
        const env = { DROPBOX_MASTER: cluster.master.address };

        const up = await onTerminal(["upload", "-r", src, "--prefix", "tty"], env);
        expect(up.exitCode).toBe(0);
        expect(up.output).toContain(ESC); // drawn live, not printed line by line
        expect(up.output).toMatch(/uploading \d\/3 files/);
        expect(up.output).toMatch(/uploading 3\/3 files\s+6\.0 MiB \/ 6\.0 MiB/);
        expect(up.output).toMatch(/3 of 3 files uploaded/);
        const listed = await cluster.run(["list", "tty/", "--json"]);
        expect(JSON.parse(listed.stdout).files.map((f: { name: string }) => f.name).sort()).toEqual(["tty/f1", "tty/f2", "tty/f3"]);

        const missing = await onTerminal(["download", "tty/nope", join(dir, "out")], env);
        expect(missing.exitCode).toBe(3);
        expect(missing.output).toMatch(/error: no such file: tty\/nope/);
      });
    });
  });

  test("a terminal keeps the first 1000 per-file lines until the progress closes, then counts the rest", async () => {
    await withCluster({ nodes: 1, replication: 1 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const src = join(dir, "src");
        await mkdir(src);
        for (let i = 0; i < 1005; i++) await writeFile(join(src, `f${String(i).padStart(4, "0")}`), `${i}`);
        const env = { DROPBOX_MASTER: cluster.master.address };
        const up = await onTerminal(["upload", "-r", src, "--prefix", "many"], env);
        expect(up.exitCode).toBe(0);
        expect(up.output.match(/uploaded many\/f\d{4} /g)).toHaveLength(1000);
        // In plan order: the first thousand by name.
        expect(up.output).toMatch(/^uploaded many\/f0999 /m);
        expect(up.output).not.toMatch(/^uploaded many\/f1000 /m);
        expect(up.output).toMatch(/^… and 5 more files \(--json lists every one\)\r?\n1005 of 1005 files uploaded/m);
      });
    });
  });
});
