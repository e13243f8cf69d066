/**
 * Master, nodes and client on different hosts: each in its own Linux network namespace,
 * wired to one bridge, so every byte crosses a (virtual) network and a node can be cut off
 * by taking its link down while its process keeps running. Needs root and iproute2; where
 * namespaces cannot be created the test reports itself skipped with the reason.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, openSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { MasterApi } from "../src/rpc/client";
import { BIN, randomBytes, sha256File, waitFor } from "./harness";
import { chunksOnDisk } from "./disk-chunks";

const MiB = 1024 * 1024;
const IP = "/usr/sbin/ip";
/** Everything this test creates carries its pid, so it only ever deletes its own (or a dead run's) objects. */
const PREFIX = "dbxt-";
const RUN = `${PREFIX}${process.pid}`;
/** The root-side end of the veth into the bridge; interface names are at most 15 bytes, so no dashes. */
const HOST_LINK = `dbxt${process.pid}h`;

/** Runs `ip` to completion. */
function ip(args: string[]): { ok: boolean; out: string; err: string } {
  const r = Bun.spawnSync([IP, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  return { ok: r.exitCode === 0, out: r.stdout.toString(), err: r.stderr.toString().trim() };
}

/** Runs `ip` and throws with its stderr when it fails (building the topology must not half-succeed silently). */
function mustIp(args: string[]): string {
  const r = ip(args);
  if (!r.ok) throw new Error(`ip ${args.join(" ")}: ${r.err}`);
  return r.out;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Why namespaces cannot be used here, or null when they can (tried once: add a namespace and a veth pair, then delete). */
function probeNamespaces(): string | null {
  if (process.platform !== "linux") return `network namespaces need Linux, this is ${process.platform}`;
  if (!existsSync(IP)) return `${IP} (iproute2) is missing`;
  const name = `${RUN}-probe`;
  const add = ip(["netns", "add", name]);
  if (!add.ok) return `'ip netns add' failed (not root?): ${add.err}`;
  try {
    const veth = ip(["-n", name, "link", "add", "name", "probe-a", "type", "veth", "peer", "name", "probe-b"]);
    if (!veth.ok) return `cannot create a veth pair: ${veth.err}`;
  } finally {
    ip(["netns", "del", name]);
  }
  return null;
}

const skipReason = probeNamespaces();
const canCreateNamespaces = skipReason === null;
if (!canCreateNamespaces) console.warn(`netns.test.ts: skipping the network namespace test: ${skipReason}`);

/** Kills the processes inside a namespace, then deletes it (its veths go with it). */
function destroyNamespace(name: string) {
  for (const pid of ip(["netns", "pids", name]).out.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {}
  }
  ip(["netns", "del", name]);
}

/** Removes namespaces, root-side links and temp dirs left by earlier runs of this test that crashed (their pid is gone). */
function removeLeftovers() {
  const dead = (pid: string) => Number(pid) !== process.pid && !pidAlive(Number(pid));
  for (const line of ip(["netns", "list"]).out.split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const m = /^dbxt-(\d+)-/.exec(name);
    if (m && dead(m[1]!)) destroyNamespace(name);
  }
  for (const line of ip(["-o", "link", "show"]).out.split("\n")) {
    const m = /^\d+:\s+(dbxt(\d+)h)[@:]/.exec(line);
    if (m && dead(m[2]!)) ip(["link", "del", m[1]!]);
  }
  for (const entry of readdirSync(tmpdir())) {
    const m = /^dbxt-(\d+)-/.exec(entry);
    if (m && dead(m[1]!)) rmSync(join(tmpdir(), entry), { recursive: true, force: true });
  }
}

/** A /24 in 10.213.0.0/16 that no route or address of this machine uses yet (concurrent runs pick different ones). */
function freeSubnet(): string {
  const used = ip(["-4", "route", "show", "table", "all"]).out + ip(["-4", "addr", "show"]).out;
  for (let i = 0; i < 250; i++) {
    const prefix = `10.213.${1 + ((process.pid + i) % 250)}`;
    if (!used.includes(`${prefix}.`)) return prefix;
  }
  throw new Error("no free /24 in 10.213.0.0/16");
}

/**
 * One bridge in its own "switch" namespace; every host is a namespace with one veth
 * (`eth0`) into it, and the test process gets one more veth so it can ask the master for
 * its status. Nothing is routed beyond the /24.
 */
class Network {
  readonly switchNs = `${RUN}-sw`;
  readonly namespaces: string[] = [];
  private hostLinkCreated = false;

  constructor(readonly subnet: string) {}

  create(hosts: Record<string, number>) {
    this.addNamespace(this.switchNs);
    mustIp(["-n", this.switchNs, "link", "add", "name", "br0", "type", "bridge"]);
    mustIp(["-n", this.switchNs, "link", "set", "br0", "up"]);
    for (const [host, octet] of Object.entries(hosts)) {
      const ns = this.ns(host);
      this.addNamespace(ns);
      mustIp(["-n", this.switchNs, "link", "add", "name", `p-${host}`, "type", "veth", "peer", "name", "eth0", "netns", ns]);
      mustIp(["-n", this.switchNs, "link", "set", `p-${host}`, "master", "br0", "up"]);
      mustIp(["-n", ns, "addr", "add", `${this.subnet}.${octet}/24`, "dev", "eth0"]);
      mustIp(["-n", ns, "link", "set", "eth0", "up"]);
    }
    mustIp(["link", "add", "name", HOST_LINK, "type", "veth", "peer", "name", "p-root", "netns", this.switchNs]);
    this.hostLinkCreated = true;
    mustIp(["-n", this.switchNs, "link", "set", "p-root", "master", "br0", "up"]);
    mustIp(["addr", "add", `${this.subnet}.254/24`, "dev", HOST_LINK]);
    mustIp(["link", "set", HOST_LINK, "up"]);
  }

  ns(host: string) {
    return `${RUN}-${host}`;
  }

  /** Takes a host's only link down (or up again): the host is cut off, its processes keep running. */
  setLink(host: string, state: "up" | "down") {
    mustIp(["-n", this.ns(host), "link", "set", "eth0", state]);
  }

  /** Idempotent; also runs from the exit and signal handlers. */
  destroy() {
    for (const ns of this.namespaces.splice(0).reverse()) destroyNamespace(ns);
    if (this.hostLinkCreated) ip(["link", "del", HOST_LINK]);
    this.hostLinkCreated = false;
  }

  private addNamespace(name: string) {
    mustIp(["netns", "add", name]);
    this.namespaces.push(name);
    mustIp(["-n", name, "link", "set", "lo", "up"]);
  }
}

/** A server process started inside a namespace, logging to a file. */
class NsServer {
  proc: Subprocess | null = null;

  constructor(
    readonly name: string,
    readonly ns: string,
    readonly logPath: string,
    readonly args: string[],
  ) {}

  async start() {
    const fd = openSync(this.logPath, "a");
    try {
      // `ip netns exec` enters the namespace and execs the binary: the pid is the server's own.
      this.proc = Bun.spawn([IP, "netns", "exec", this.ns, BIN, ...this.args], { stdout: fd, stderr: fd, stdin: "ignore" });
    } finally {
      closeSync(fd);
    }
    started.add(this.proc);
    await waitFor(`${this.name} to listen`, async () => {
      if (this.proc?.exitCode != null) throw new Error(`${this.name} exited with ${this.proc.exitCode}`);
      return /listening on /.test(await this.log());
    });
  }

  get running() {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** The network namespace the process really runs in (an inode link like `net:[4026532…]`). */
  netNamespace() {
    return readlinkSync(`/proc/${this.proc!.pid}/ns/net`);
  }

  log() {
    return readFile(this.logPath, "utf8").catch(() => "(no log)");
  }
}

/** Runs the CLI to completion inside a namespace. */
async function runIn(ns: string, args: string[]) {
  const proc = Bun.spawn([IP, "netns", "exec", ns, BIN, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  started.add(proc);
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  started.delete(proc);
  return { exitCode, stdout, stderr };
}

/** Every process this file started and every network it built, for the cleanup of an aborted run. */
const started = new Set<Subprocess>();
let network: Network | null = null;
let tempDir: string | null = null;

function cleanUp() {
  for (const proc of started) proc.kill("SIGKILL");
  started.clear();
  network?.destroy();
  network = null;
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  tempDir = null;
}

if (canCreateNamespaces) {
  process.on("exit", cleanUp);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      cleanUp();
      process.exit(128 + (signal === "SIGINT" ? 2 : signal === "SIGTERM" ? 15 : 1));
    });
  }
}
afterAll(cleanUp);

/** chunk id -> how many of the given data dirs hold it on disk (in a file or packed). */
async function copiesOnDisk(dataDirs: string[]): Promise<Map<string, number>> {
  const copies = new Map<string, number>();
  for (const dataDir of dataDirs) for (const id of (await chunksOnDisk(dataDir)).keys()) copies.set(id, (copies.get(id) ?? 0) + 1);
  return copies;
}

describe("hosts, not just ports", () => {
  test.skipIf(!canCreateNamespaces)(
    "master, nodes and client in separate network namespaces: a node cut off by its link is declared dead and repaired around, and trimmed back when it returns",
    async () => {
      removeLeftovers();
      tempDir = await mkdtemp(join(tmpdir(), `${RUN}-`));
      const dir = tempDir;
      const net = (network = new Network(freeSubnet()));
      const at = (octet: number) => `${net.subnet}.${octet}`;
      const nodeOctets = { node1: 11, node2: 12, node3: 13 };
      net.create({ master: 1, client: 100, ...nodeOctets });
      const masterAddress = `${at(1)}:9000`;

      const master = new NsServer("master", net.ns("master"), join(dir, "master.log"), [
        "master", "--host", at(1), "--port", "9000", "--data-dir", join(dir, "master"), "--replication", "2",
        "--node-timeout", "1500", "--repair-interval", "100", "--gc-grace", "1000",
      ]);
      const nodes = Object.entries(nodeOctets).map(
        ([id, octet]) =>
          new NsServer(id, net.ns(id), join(dir, `${id}.log`), [
            "node", "--host", at(octet), "--port", "9001", "--advertise", `${at(octet)}:9001`, "--master", masterAddress,
            "--heartbeat-interval", "200", "--data-dir", join(dir, id), "--id", id,
          ]),
      );
      const dataDir = (node: NsServer) => join(dir, node.name);
      const api = new MasterApi(masterAddress);
      const aliveOf = async (id: string) => (await api.getClusterStatus(1000)).nodes.find((n) => n.node?.nodeId === id)?.alive;
      try {
        await master.start();
        await Promise.all(nodes.map((n) => n.start()));
        await waitFor("3 live nodes", async () => (await api.getClusterStatus(1000)).nodes.filter((n) => n.alive).length === 3, 15_000, 100);
        // Different hosts indeed: four distinct network namespaces, none of them ours, and every node known by its own address.
        const namespaces = [master, ...nodes].map((p) => p.netNamespace());
        expect(new Set([...namespaces, readlinkSync("/proc/self/ns/net")]).size).toBe(5);
        const registered = (await api.getClusterStatus(1000)).nodes.map((n) => `${n.node?.nodeId}@${n.node?.host}:${n.node?.port}`).sort();
        expect(registered).toEqual(nodes.map((n, i) => `${n.name}@${at(11 + i)}:9001`));

        // Upload and download from the client's own namespace.
        const client = net.ns("client");
        await writeFile(join(dir, "f.bin"), randomBytes(8 * MiB));
        const up = await runIn(client, ["upload", join(dir, "f.bin"), "--chunk-size", "1MiB", "--master", masterAddress]);
        expect(up.stderr).toBe("");
        expect(up.exitCode).toBe(0);
        const ids = [...new Set((await api.getManifest({ filename: "f.bin" })).chunks.map((c) => c.chunkId))];
        expect(ids).toHaveLength(8);
        const first = await runIn(client, ["download", "f.bin", join(dir, "first.bin"), "--master", masterAddress]);
        expect(first.exitCode).toBe(0);
        expect(await sha256File(join(dir, "first.bin"))).toBe(await sha256File(join(dir, "f.bin")));

        // Cut off the node holding the most copies: its process keeps running, only its link goes down.
        const held = await Promise.all(nodes.map(async (n) => (await copiesOnDisk([dataDir(n)])).size));
        const victimIndex = held.indexOf(Math.max(...held));
        const victim = nodes[victimIndex]!;
        const survivors = nodes.filter((n) => n !== victim);
        expect(held[victimIndex]).toBeGreaterThan(0);
        const cutAt = Date.now();
        net.setLink(victim.name, "down");
        await waitFor(`the master to declare ${victim.name} dead`, async () => (await aliveOf(victim.name)) === false, 10_000, 100);
        // Node timeout (1.5 s) plus a bounded repair time.
        await waitFor("every chunk to have 2 copies on the surviving nodes", async () => {
          const copies = await copiesOnDisk(survivors.map(dataDir));
          return ids.every((id) => copies.get(id) === 2);
        }, 20_000, 100);
        await waitFor("status to show no under-replicated chunks", async () => (await api.getClusterStatus(1000)).repair?.underReplicatedChunks === 0, 10_000, 100);
        const repairedMs = Date.now() - cutAt;
        const during = await runIn(client, ["download", "f.bin", join(dir, "during.bin"), "--master", masterAddress]);
        expect(during.stderr).toBe("");
        expect(during.exitCode).toBe(0);
        expect(await sha256File(join(dir, "during.bin"))).toBe(await sha256File(join(dir, "f.bin")));
        expect(await aliveOf(victim.name)).toBe(false);
        expect(victim.running).toBe(true);
        // The cut-off node still holds its old copies, so its return leaves some chunks with 3.
        expect([...(await copiesOnDisk(nodes.map(dataDir))).values()].some((n) => n > 2)).toBe(true);

        // The link comes back: the same process resumes its heartbeats and the surplus copies are trimmed.
        const backAt = Date.now();
        net.setLink(victim.name, "up");
        await waitFor(`${victim.name} to be alive again`, async () => (await aliveOf(victim.name)) === true, 15_000, 100);
        await waitFor("exactly 2 copies of every chunk across all 3 nodes' disks", async () => {
          const copies = await copiesOnDisk(nodes.map(dataDir));
          return ids.every((id) => copies.get(id) === 2) && copies.size === ids.length;
        }, 30_000, 100);
        const trimmedMs = Date.now() - backAt;
        expect(victim.running).toBe(true);
        expect(await victim.log()).toContain("not answering");
        // The node logs this once the master's answer reaches it, a moment after the master has seen it.
        await waitFor(`${victim.name} to log that the master answers again`, async () => (await victim.log()).includes("reachable again"), 10_000, 100);
        const after = await runIn(client, ["download", "f.bin", join(dir, "after.bin"), "--master", masterAddress]);
        expect(after.exitCode).toBe(0);
        expect(await sha256File(join(dir, "after.bin"))).toBe(await sha256File(join(dir, "f.bin")));
        console.log(`netns: ${victim.name} cut off, repaired in ${repairedMs} ms; back, trimmed to 2 copies in ${trimmedMs} ms (subnet ${net.subnet}.0/24)`);
      } catch (err) {
        for (const p of [master, ...nodes]) process.stderr.write(`\n----- ${p.name} log (${p.ns}) -----\n${await p.log()}\n`);
        throw err;
      } finally {
        api.close();
        cleanUp();
      }
    },
    120_000,
  );
});
