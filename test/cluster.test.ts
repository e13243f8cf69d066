/**
 * `dropbox cluster`: real supervisors and real children started from the compiled binary,
 * each test in its own temp dir on its own free ports, always torn down afterwards.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { localClusterMaster } from "../src/cluster/state";
import { BIN, bind, closeAll, freePortRange, randomBytes, runCli, sha256File, waitFor, type RunResult } from "./harness";

const HOST = "127.0.0.1";
const ANSI = "\x1b[";

/** True when something accepts connections on the port. */
async function listening(port: number): Promise<boolean> {
  const server = await bind(port);
  if (!server) return true;
  await closeAll([server]);
  return false;
}

/** Live (non-zombie) processes whose command line mentions `dir`: every child and supervisor of a test's cluster does. */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (cmdline.includes(dir) && state !== "Z") pids.push(Number(entry));
    } catch {
      // Gone while we looked.
    }
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

interface ChildJson {
  name: string;
  role: string;
  pid: number;
  port: number;
  state: string;
  restarts: number;
  healthy: boolean;
}
interface StatusJson {
  running: boolean;
  /** The supervisor's own verdict: "starting" until it declares the cluster ready. */
  phase?: string;
  supervisorPid: number;
  children: ChildJson[];
}

/** One test's cluster: a temp dir used as the working directory, and its ports. */
class Scene {
  constructor(
    readonly dir: string,
    readonly basePort: number,
    readonly nodes: number,
  ) {}

  get master() {
    return `${HOST}:${this.basePort}`;
  }

  get ports(): number[] {
    return Array.from({ length: this.nodes + 1 }, (_, i) => this.basePort + i);
  }

  cli(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
    return runCli(args, { cwd: this.dir, env });
  }

  up(extra: string[] = []): Promise<RunResult> {
    return this.cli(["cluster", "up", "--base-port", String(this.basePort), "--nodes", String(this.nodes), ...extra]);
  }

  async status(): Promise<StatusJson> {
    const result = await this.cli(["cluster", "status", "--json"]);
    return JSON.parse(result.stdout) as StatusJson;
  }

  /** Every pid the state file records, supervisor included. */
  recordedPids(): number[] {
    const doc = JSON.parse(readFileSync(join(this.dir, ".dropbox", "cluster.json"), "utf8")) as { supervisorPid: number; children: { pid: number }[] };
    return [doc.supervisorPid, ...doc.children.map((c) => c.pid)].filter((p) => p > 0);
  }

  async dumpLogs() {
    const logs = join(this.dir, ".dropbox", "logs");
    for (const file of existsSync(logs) ? readdirSync(logs) : []) process.stderr.write(`\n----- ${file} -----\n${readFileSync(join(logs, file), "utf8").slice(-4000)}\n`);
  }
}

let scenes: Scene[] = [];

/** A fresh temp dir and free ports for `nodes` nodes plus the master. */
async function scene(nodes = 3): Promise<Scene> {
  const dir = await mkdtemp(join(tmpdir(), "dropbox-cluster-"));
  const s = new Scene(dir, await freePortRange(nodes + 1), nodes);
  scenes.push(s);
  return s;
}

afterEach(async () => {
  // Whatever a test did or failed to do: stop the cluster, kill what is left, remove the dir.
  for (const s of scenes) {
    await s.cli(["cluster", "down"]).catch(() => undefined);
    for (const pid of processesUsing(s.dir)) process.kill(pid, "SIGKILL");
    await rm(s.dir, { recursive: true, force: true });
  }
  scenes = [];
});

/** Runs `body`, printing the cluster's logs when it fails. */
async function withLogs(s: Scene, body: () => Promise<void>) {
  try {
    await body();
  } catch (err) {
    await s.dumpLogs();
    throw err;
  }
}

function expectUp(result: RunResult) {
  if (result.exitCode !== 0) throw new Error(`cluster up failed (${result.exitCode}): ${result.stderr}${result.stdout}`);
}

describe("dropbox cluster", () => {
  test("up starts a ready cluster and down leaves no process and no listener behind", async () => {
    const s = await scene();
    await withLogs(s, async () => {
      const up = await s.up();
      expectUp(up);
      expect(up.stdout).toContain("cluster ready");
      expect(up.stdout + up.stderr).not.toContain(ANSI);
      const status = await s.status();
      expect(status.running).toBe(true);
      expect(status.children.map((c) => c.name)).toEqual(["master", "node1", "node2", "node3"]);
      expect(status.children.every((c) => c.healthy && c.state === "running")).toBe(true);
      const pids = s.recordedPids();
      expect(pids.length).toBe(5);
      expect(localClusterMaster(s.dir)).toBe(s.master);

      const down = await s.cli(["cluster", "down"]);
      expect(down.exitCode).toBe(0);
      expect(down.stdout + down.stderr).not.toContain(ANSI);
      expect(pids.filter(alive)).toEqual([]);
      for (const port of s.ports) expect(await listening(port)).toBe(false);
      expect(processesUsing(s.dir)).toEqual([]);
      expect(localClusterMaster(s.dir)).toBeUndefined();
    });
  });

  test("up twice starts nothing the second time; down twice says nothing runs", async () => {
    const s = await scene(2);
    await withLogs(s, async () => {
      expectUp(await s.up());
      const pids = s.recordedPids();
      const again = await s.up();
      expect(again.exitCode).toBe(0);
      expect(again.stdout).toContain("already running");
      expect(s.recordedPids()).toEqual(pids);
      expect((await s.cli(["cluster", "down"])).exitCode).toBe(0);
      const twice = await s.cli(["cluster", "down"]);
      expect(twice.exitCode).toBe(0);
      expect(twice.stdout).toContain("no cluster running");
    });
  });

  test("a node killed with SIGKILL is restarted, the restart shows in status, and files still go in and out", async () => {
    const s = await scene();
    await withLogs(s, async () => {
      expectUp(await s.up());
      const node1 = (await s.status()).children.find((c) => c.name === "node1")!;
      process.kill(node1.pid, "SIGKILL");
      const restarted = await waitFor("node1 restarted and healthy", async () => {
        const child = (await s.status()).children.find((c) => c.name === "node1")!;
        return child.pid !== node1.pid && child.state === "running" && child.healthy ? child : null;
      });
      expect(restarted.restarts).toBeGreaterThanOrEqual(1);

      const file = join(s.dir, "payload.bin");
      await writeFile(file, randomBytes(300_000));
      const upload = await s.cli(["upload", file, "--master", s.master]);
      expect(upload.exitCode).toBe(0);
      const out = join(s.dir, "back.bin");
      const download = await s.cli(["download", "payload.bin", out, "--master", s.master]);
      expect(download.exitCode).toBe(0);
      expect(await sha256File(out)).toBe(await sha256File(file));
    });
  });

  test("a node that keeps crashing is marked failed and left down, and status says the cluster is degraded", async () => {
    const s = await scene(2);
    await withLogs(s, async () => {
      expectUp(await s.up());
      let killed = 0;
      const failed = await waitFor(
        "node1 to be given up on",
        async () => {
          const st = await s.status();
          const node1 = st.children.find((c) => c.name === "node1")!;
          if (node1.state === "failed") return node1;
          if (node1.pid > 0 && alive(node1.pid)) {
            process.kill(node1.pid, "SIGKILL");
            killed++;
          }
          return null;
        },
        30_000,
      );
      expect(failed.restarts).toBe(5);
      expect(killed).toBe(6);
      const status = await s.cli(["cluster", "status"]);
      expect(status.exitCode).toBe(6);
      expect(status.stdout).toMatch(/node1\s+node\s+-\s+\d+\s+failed/);
    });
  });

  test("a supervisor killed with SIGKILL takes all its children with it within seconds", async () => {
    const s = await scene();
    await withLogs(s, async () => {
      expectUp(await s.up());
      const [supervisor, ...children] = s.recordedPids();
      process.kill(supervisor!, "SIGKILL");
      await waitFor("every child to exit", () => children.every((pid) => !alive(pid)), 5_000);
      const status = await s.cli(["cluster", "status"]);
      expect(status.exitCode).not.toBe(0);
      expect(status.stdout).toContain("stale");
    });
  });

  test("a port taken before up fails with the port named and leaves nothing running", async () => {
    const s = await scene();
    const taken = s.basePort + 2;
    const holder = await bind(taken);
    expect(holder).not.toBeNull();
    try {
      const up = await s.up();
      expect(up.exitCode).not.toBe(0);
      expect(up.stderr).toContain(`port ${taken}`);
      expect(up.stderr.trim().split("\n").filter((l) => l.startsWith("error:")).length).toBe(1);
      expect(processesUsing(s.dir)).toEqual([]);
      for (const port of s.ports.filter((p) => p !== taken)) expect(await listening(port)).toBe(false);
    } finally {
      await closeAll([holder!]);
    }
  });

  test("a child that dies during start is named, its log shown, and everything else stopped", async () => {
    const s = await scene();
    // node2's data dir is a file: that node exits at once with its own error.
    await mkdir(join(s.dir, ".dropbox"), { recursive: true });
    await writeFile(join(s.dir, ".dropbox", "node2"), "not a directory");
    const up = await s.up();
    expect(up.exitCode).not.toBe(0);
    expect(up.stderr).toContain("node2");
    expect(up.stderr).toContain("node2.log");
    expect(up.stderr).toMatch(/error: .*node2 exited during start/);
    expect(processesUsing(s.dir)).toEqual([]);
    for (const port of s.ports) expect(await listening(port)).toBe(false);
  });

  test("data survives down and up: a file uploaded before comes back intact", async () => {
    const s = await scene();
    await withLogs(s, async () => {
      expectUp(await s.up());
      const file = join(s.dir, "keep.bin");
      await writeFile(file, randomBytes(1_500_000));
      expect((await s.cli(["upload", file, "--master", s.master])).exitCode).toBe(0);
      expect((await s.cli(["cluster", "down"])).exitCode).toBe(0);
      expectUp(await s.up());
      const out = join(s.dir, "kept.bin");
      const download = await s.cli(["download", "keep.bin", out, "--master", s.master]);
      expect(download.exitCode).toBe(0);
      expect(await sha256File(out)).toBe(await sha256File(file));
    });
  });

  test("--foreground stays attached and SIGINT stops the whole cluster cleanly", async () => {
    const s = await scene(2);
    await withLogs(s, async () => {
      const proc = Bun.spawn([BIN, "cluster", "up", "--foreground", "--base-port", String(s.basePort), "--nodes", "2"], { cwd: s.dir, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
      const stdout = new Response(proc.stdout).text();
      const stderr = new Response(proc.stderr).text();
      try {
        // Ready by the supervisor's own verdict: children can probe healthy a moment before it
        // declares the cluster ready, and a SIGINT in between is an interrupted start (exit 130).
        const status = await waitFor("the foreground cluster to be ready", async () => {
          const st = await s.status();
          return st.running && st.phase === "ready" && st.children.every((c) => c.healthy) ? st : null;
        });
        expect(status.supervisorPid).toBe(proc.pid);
        proc.kill("SIGINT");
        expect(await proc.exited).toBe(0);
        expect(await stdout).toContain("cluster stopped");
        expect(await stdout).not.toContain(ANSI);
        expect(await stderr).toBe("");
        expect(status.children.map((c) => c.pid).filter(alive)).toEqual([]);
        expect(processesUsing(s.dir)).toEqual([]);
      } finally {
        proc.kill("SIGKILL");
      }
    });
  });

  test("SIGINT while the cluster is still starting stops everything, and nothing is started after it", async () => {
    for (let round = 0; round < 5; round++) {
      const s = await scene(2);
      await withLogs(s, async () => {
        const proc = Bun.spawn([BIN, "cluster", "up", "--foreground", "--base-port", String(s.basePort), "--nodes", "2"], { cwd: s.dir, stdout: "ignore", stderr: "ignore", stdin: "ignore" });
        try {
          // Every child started but the cluster not yet ready: the start loop is still running, and a
          // stop must not let it start a node again (the stop would wait on that node forever).
          await waitFor("every child to be started", () => s.recordedPids().length === 4, 15_000, 2);
          proc.kill("SIGINT");
          const code = await Promise.race([proc.exited, Bun.sleep(20_000).then(() => "still running after 20 s")]);
          // 130: interrupted before ready; 0: it had just become ready.
          expect([130, 0] as (number | string)[]).toContain(code);
          await waitFor("every process using the dir to be gone", () => processesUsing(s.dir).length === 0, 10_000);
        } finally {
          proc.kill("SIGKILL");
        }
      });
    }
  });

  test("restart NAME replaces one process and logs shows each process's lines", async () => {
    const s = await scene(2);
    await withLogs(s, async () => {
      expectUp(await s.up());
      const before = (await s.status()).children;
      const restart = await s.cli(["cluster", "restart", "node2"]);
      expect(restart.exitCode).toBe(0);
      const after = (await s.status()).children;
      expect(after.find((c) => c.name === "node2")!.pid).not.toBe(before.find((c) => c.name === "node2")!.pid);
      expect(after.find((c) => c.name === "master")!.pid).toBe(before.find((c) => c.name === "master")!.pid);
      const logs = await s.cli(["cluster", "logs", "node2", "-n", "5"]);
      expect(logs.exitCode).toBe(0);
      expect(logs.stdout).toContain("listening on");
      const all = await s.cli(["cluster", "logs"]);
      expect(all.stdout).toContain("master ");
      expect(all.stdout).toContain("node1 ");
    });
  });

  test("node flags given to up reach every node, and a node restarted by name keeps them", async () => {
    const s = await scene(2);
    await withLogs(s, async () => {
      expectUp(await s.up(["--capacity", "64MiB", "--scrub-rate", "0", "--scrub-interval", "0", "--verify-reads"]));
      const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      const expectFlags = async () => {
        for (const child of (await s.status()).children.filter((c) => c.name.startsWith("node"))) {
          const args = cmdline(child.pid);
          expect(args.slice(args.indexOf("--capacity"), args.indexOf("--capacity") + 2)).toEqual(["--capacity", String(64 * 1024 * 1024)]);
          expect(args.slice(args.indexOf("--scrub-rate"), args.indexOf("--scrub-rate") + 2)).toEqual(["--scrub-rate", "0"]);
          expect(args).toContain("--verify-reads");
        }
      };
      await expectFlags();
      // The master hears the capacity from each node.
      await waitFor("both nodes to report 64 MiB", async () => {
        const doc = JSON.parse((await s.cli(["status", "--json"])).stdout) as { nodes: { capacityBytes: number }[] };
        return doc.nodes.length === 2 && doc.nodes.every((n) => n.capacityBytes === 64 * 1024 * 1024);
      });
      expect((await s.cli(["cluster", "restart", "node2"])).exitCode).toBe(0);
      await expectFlags();
    });
  });

  test("bad input gets one clear line, exit 2, and starts nothing", async () => {
    const s = await scene();
    const port = ["--base-port", String(s.basePort)];
    const cases = [
      { args: ["cluster", "up", "--nodes", "0", ...port], says: "--nodes" },
      { args: ["cluster", "up", "--nodes", "2", "--replication", "3", ...port], says: "--replication" },
      { args: ["cluster", "up", "--bogus", ...port], says: "--bogus" },
      { args: ["cluster", "up", "--data-dir", "/dev/null/data", ...port], says: "not writable" },
      { args: ["cluster", "down", "--nodes", "3"], says: "--nodes" },
      { args: ["cluster", "sideways"], says: "sideways" },
      { args: ["cluster", "up", "--capacity", "lots", ...port], says: "--capacity" },
      { args: ["cluster", "up", "--scrub-rate", "fast", ...port], says: "scrub-rate" },
      { args: ["cluster", "down", "--verify-reads"], says: "--verify-reads" },
    ];
    for (const c of cases) {
      const result = await s.cli(c.args);
      expect(result.exitCode).toBe(2);
      expect(result.stderr.trim().split("\n").length).toBe(1);
      expect(result.stderr).toContain(c.says);
    }
    expect(existsSync(join(s.dir, ".dropbox", "cluster.json"))).toBe(false);
    expect(processesUsing(s.dir)).toEqual([]);
  });
});
