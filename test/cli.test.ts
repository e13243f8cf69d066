/** The command line's contract with scripts: one-line errors, documented exit codes, a binary that stands alone. */
import { describe, expect, test } from "bun:test";
import { copyFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BIN, cliCommandLine, randomBytes, runCli, waitFor, withCluster, withTempDir } from "./harness";

/** No bundled source or stack frames ever reach the user. */
function expectOneLineError(stderr: string, pattern: RegExp) {
  const lines = stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(pattern);
  expect(stderr).not.toMatch(/\n\s+at |\/\$bunfs\//);
}

describe("cli", () => {
  test("--version and --help work", async () => {
    const version = await runCli(["--version"]);
    expect(version.exitCode).toBe(0);
    expect(version.stdout.trim()).toMatch(/^dropbox \d+\.\d+\.\d+$/);
    const help = await runCli(["--help"]);
    expect(help.exitCode).toBe(0);
    for (const command of ["master", "node", "upload", "download", "list", "delete"]) expect(help.stdout).toContain(command);
    const uploadHelp = await runCli(["upload", "--help"]);
    expect(uploadHelp.stdout).toContain("--chunk-size");
    expect(uploadHelp.stdout).toContain("--as");
  });

  test("a bunfig.toml or .env in the working directory changes nothing: no preload runs, no variable is read", async () => {
    await withTempDir(async (dir) => {
      const marker = join(dir, "preload-ran");
      await writeFile(join(dir, "preload.js"), `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "");\n`);
      await writeFile(join(dir, "bunfig.toml"), `preload = ["./preload.js"]\n`);
      await writeFile(join(dir, ".env"), "DROPBOX_MASTER=127.0.0.1:1\n");
      const proc = Bun.spawn([BIN, "list", "--quiet"], { cwd: dir, env: { ...process.env, DROPBOX_MASTER: undefined }, stdout: "pipe", stderr: "pipe" });
      const [stderr] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
      expect(await Bun.file(marker).exists()).toBe(false);
      expect(stderr).not.toContain("127.0.0.1:1:");
    });
  });

  test("usage errors exit 2 with one line", async () => {
    const unknownCommand = await runCli(["frobnicate"]);
    expect(unknownCommand.exitCode).toBe(2);
    expectOneLineError(unknownCommand.stderr, /unknown command 'frobnicate'/);
    const unknownFlag = await runCli(["list", "--bogus"]);
    expect(unknownFlag.exitCode).toBe(2);
    expectOneLineError(unknownFlag.stderr, /Unknown option '--bogus'/);
    const missingArg = await runCli(["download"]);
    expect(missingArg.exitCode).toBe(2);
    expectOneLineError(missingArg.stderr, /missing required args/);
    const badMaster = await runCli(["list", "--master", "nonsense"]);
    expect(badMaster.exitCode).toBe(2);
    expectOneLineError(badMaster.stderr, /--master must look like HOST:PORT/);
    const badChunk = await runCli(["upload", BIN, "--chunk-size", "1k", "--master", "127.0.0.1:1"]);
    expect(badChunk.exitCode).toBe(2);
    expectOneLineError(badChunk.stderr, /--chunk-size must be between 64KiB and 64MiB/);
    const missingFile = await runCli(["upload", "/no/such/file", "--master", "127.0.0.1:1"]);
    expect(missingFile.exitCode).toBe(2);
    expectOneLineError(missingFile.stderr, /no such file/);
  });

  test("an unreachable master exits 4 with one line, within the connect deadline", async () => {
    const started = Date.now();
    const result = await runCli(["list"], { env: { DROPBOX_MASTER: "127.0.0.1:1" } });
    expect(result.exitCode).toBe(4);
    // The cause a person can act on, not grpc-js's wording around it.
    expectOneLineError(result.stderr, /^error: cannot reach master 127\.0\.0\.1:1: connect ECONNREFUSED 127\.0\.0\.1:1$/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test("bad names exit 2 and unknown files exit 3, each with one line; --json errors are JSON on stderr", async () => {
    await withCluster({ nodes: 2, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "f"), "x");
        for (const name of ["../up", "/abs", "a//b", "a/./b", "x".repeat(1025)]) {
          const result = await cluster.run(["upload", join(dir, "f"), "--as", name]);
          expect(result.exitCode).toBe(2);
          expectOneLineError(result.stderr, /invalid name .*: name /);
        }
        const missing = await cluster.run(["download", "nope.bin", join(dir, "out")]);
        expect(missing.exitCode).toBe(3);
        expectOneLineError(missing.stderr, /no such file: nope\.bin/);
        const missingJson = await cluster.run(["delete", "nope.bin", "--json"]);
        expect(missingJson.exitCode).toBe(3);
        expect(missingJson.stdout).toBe("");
        expect(JSON.parse(missingJson.stderr)).toEqual({ error: { kind: "NOT_FOUND", message: "no such file: nope.bin", exitCode: 3 } });
        // --master beats DROPBOX_MASTER.
        const explicit = await cluster.run(["list", "--json", "--master", cluster.master.address], { env: { DROPBOX_MASTER: "127.0.0.1:1" } });
        expect(explicit.exitCode).toBe(0);
      });
    });
  });

  test("list filters by prefix and delete removes names", async () => {
    await withCluster({ nodes: 2, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "f"), randomBytes(1000));
        for (const name of ["a/1", "a/2", "b/1", "007"]) expect((await cluster.run(["upload", join(dir, "f"), "--as", name])).exitCode).toBe(0);
        const names = async (args: string[]) => JSON.parse((await cluster.run(["list", "--json", ...args])).stdout).files.map((f: { name: string }) => f.name);
        expect(await names([])).toEqual(["007", "a/1", "a/2", "b/1"]);
        expect(await names(["a/"])).toEqual(["a/1", "a/2"]);
        const table = await cluster.run(["list", "a/"]);
        expect(table.stdout).toMatch(/^NAME\s+SIZE\s+CHUNKS\s+CREATED\n/);
        expect(table.stdout).toContain("1000 B");
        expect((await cluster.run(["delete", "a/1", "007"])).exitCode).toBe(0);
        expect(await names([])).toEqual(["a/2", "b/1"]);
        const quiet = await cluster.run(["delete", "b/1", "--quiet"]);
        expect(quiet.exitCode).toBe(0);
        expect(quiet.stdout).toBe("");
      });
    });
  });

  test("the binary copied alone into an empty directory runs every role", async () => {
    await withTempDir(async (dir) => {
      const bin = join(dir, "dropbox");
      await copyFile(BIN, bin);
      const version = await Bun.spawn([bin, "--version"], { cwd: dir, stdout: "pipe" });
      expect((await new Response(version.stdout).text()).trim()).toMatch(/^dropbox /);
      expect(await version.exited).toBe(0);
      const master = Bun.spawn([bin, "master", "--port", "0", "--data-dir", join(dir, "m"), "--replication", "1"], { cwd: dir, stdout: "pipe", stderr: "pipe" });
      let node: ReturnType<typeof Bun.spawn> | null = null;
      try {
        const reader = master.stdout.getReader();
        let text = "";
        const port = await waitFor("master port", async () => {
          const { value } = await reader.read();
          text += new TextDecoder().decode(value);
          return /listening on \S+:(\d+)/.exec(text)?.[1];
        });
        node = Bun.spawn([bin, "node", "--port", "0", "--master", `127.0.0.1:${port}`, "--data-dir", join(dir, "n")], { cwd: dir, stdout: "ignore", stderr: "ignore" });
        const env = { DROPBOX_MASTER: `127.0.0.1:${port}` };
        await writeFile(join(dir, "payload"), randomBytes(300_000));
        // The node registers asynchronously: retry the upload until it is accepted.
        await waitFor("an upload to succeed", async () => (await Bun.spawn([bin, "upload", join(dir, "payload")], { cwd: dir, env: { ...process.env, ...env }, stderr: "ignore" }).exited) === 0);
        const proc = Bun.spawn([bin, "download", "payload", join(dir, "back")], { cwd: dir, env: { ...process.env, ...env } });
        expect(await proc.exited).toBe(0);
        expect(Buffer.compare(Buffer.from(await Bun.file(join(dir, "back")).arrayBuffer()), Buffer.from(await Bun.file(join(dir, "payload")).arrayBuffer()))).toBe(0);
      } finally {
        master.kill("SIGKILL");
        node?.kill("SIGKILL");
        await master.exited;
        await node?.exited;
      }
    });
  });
});

/** Runs `dropbox ARGS | cat` in a shell and returns what came out of the pipe, the CLI's exit code and its stderr. */
async function throughShellPipe(args: string[], env: Record<string, string>) {
  const quoted = cliCommandLine(args);
  // PIPESTATUS is bash's; the CLI's own exit code goes to stderr's last line.
  const proc = Bun.spawn(["bash", "-c", `${quoted} | cat; echo "exit=\${PIPESTATUS[0]}" >&2`], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).bytes(), new Response(proc.stderr).text(), proc.exited]);
  const exit = /exit=(\d+)\s*$/.exec(stderr);
  return { stdout, exitCode: exit ? Number(exit[1]) : -1, stderr: stderr.replace(/exit=\d+\s*$/, "") };
}

describe("output through a pipe", () => {
  // Bun's process.stdout cut piped output at 64 or 128 KiB when a compiled binary exited
  // (`dropbox list --json | cat` gave 131072 bytes, every time). Both paths scripts rely on:
  test("a --json document of several pipe buffers arrives whole through `| cat`", async () => {
    await withCluster({ nodes: 2, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const src = join(dir, "many");
        await mkdir(src);
        for (let i = 0; i < 800; i++) await writeFile(join(src, `file-with-a-longish-name-${i}`), `content ${i}`);
        const up = await throughShellPipe(["upload", "-r", src, "--prefix", "many", "--json"], { DROPBOX_MASTER: cluster.master.address });
        expect({ exitCode: up.exitCode, stderr: up.stderr }).toEqual({ exitCode: 0, stderr: "" });
        expect(JSON.parse(new TextDecoder().decode(up.stdout)).totals.files).toBe(800);
        const list = await throughShellPipe(["list", "--json"], { DROPBOX_MASTER: cluster.master.address });
        expect(list.exitCode).toBe(0);
        expect(list.stdout.byteLength).toBeGreaterThan(128 * 1024);
        expect(JSON.parse(new TextDecoder().decode(list.stdout)).files).toHaveLength(800);
      });
    });
  });

  test("download to '-' delivers every byte through `| cat`; a reader that leaves early gets exit 1 and one line", async () => {
    await withCluster({ nodes: 2, replication: 2 }, async (cluster) => {
      await withTempDir(async (dir) => {
        const data = randomBytes(3 * 1024 * 1024 + 12345);
        await writeFile(join(dir, "blob"), data);
        expect((await cluster.run(["upload", join(dir, "blob"), "--chunk-size", "1MiB", "--quiet"])).exitCode).toBe(0);
        const down = await throughShellPipe(["download", "blob", "-"], { DROPBOX_MASTER: cluster.master.address });
        expect({ exitCode: down.exitCode, stderr: down.stderr }).toEqual({ exitCode: 0, stderr: "" });
        expect(down.stdout.byteLength).toBe(data.byteLength);
        expect(Buffer.from(down.stdout).equals(data)).toBe(true);

        const proc = Bun.spawn(["bash", "-c", `${cliCommandLine(["download", "blob", "-"])} | head -c 100 >/dev/null; echo "exit=\${PIPESTATUS[0]}" >&2`], {
          env: { ...process.env, DROPBOX_MASTER: cluster.master.address },
          stdout: "pipe",
          stderr: "pipe",
        });
        const [, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
        expect(stderr).toMatch(/^error: stdout was closed before all of blob was written\nexit=1\n$/);
      });
    });
  });
});
