/** Only holders of the cluster token get in; a read-only token only reads; the token never shows. */
import { describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { chunkIdOf } from "../src/core/chunk-id";
import { MasterServiceClient, ProcessServiceClient, StorageServiceClient } from "../src/rpc/proto";
import { TOKEN_METADATA_KEY } from "../src/rpc/auth";
import { checkHealth } from "../src/rpc/client";
import { freePortRange, randomBytes, runCli, sha256File, waitFor, withCluster, withTempDir } from "./harness";

const TOKEN = "cluster-token-0123456789abcdef";
const READ_TOKEN = "read-only-token-0123456789abcdef";

/** Calls `method` on a raw client with an empty request and the given token (or none); resolves with the status code. */
function statusOf(ctor: grpc.ServiceClientConstructor, address: string, method: string, token: string | undefined): Promise<number> {
  const client = new ctor(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, Function>;
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set(TOKEN_METADATA_KEY, token);
  return new Promise<number>((resolve) => {
    const definition = ctor.service[method]!;
    if (definition.responseStream) {
      const stream = client[method]!({}, metadata, { deadline: Date.now() + 5000 });
      stream.on("error", (err: grpc.ServiceError) => resolve(err.code));
      stream.on("data", () => {});
      stream.on("end", () => resolve(0));
      return;
    }
    client[method]!({}, metadata, { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null) => resolve(err ? err.code : 0));
  }).finally(() => client.close());
}

/** CPU time (user + system) and peak RSS of a live process, from /proc. */
async function processUsage(pid: number): Promise<{ cpuMs: number; peakRssMiB: number }> {
  const stat = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]!.split(" ");
  // Fields 14 and 15 of stat (utime, stime), in clock ticks of 10 ms; the split drops the first two.
  const cpuMs = (Number(stat[11]) + Number(stat[12])) * 10;
  const peak = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, "utf8"));
  return { cpuMs, peakRssMiB: Number(peak![1]) / 1024 };
}

/** Sends `body` as the raw request of `path`, with `token` if given; resolves with the status code. */
function rawCallStatus(address: string, path: string, body: Buffer, token?: string): Promise<number> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), { "grpc.max_send_message_length": -1 });
  const identity = (b: Buffer) => b;
  const metadata = new grpc.Metadata();
  if (token) metadata.set(TOKEN_METADATA_KEY, token);
  return new Promise<number>((resolve) => {
    client.makeUnaryRequest(path, identity, identity, body, metadata, { deadline: Date.now() + 30_000 }, (err) => resolve(err ? err.code : 0));
  }).finally(() => client.close());
}

/**
 * Sends a server three ~60 MiB requests of `item` repeated, expecting `code` for each, and
 * returns what they cost it: CPU time and growth of its peak RSS.
 */
async function floodCost(pid: number, address: string, path: string, item: number[], token: string | undefined, code: grpc.status) {
  const size = 60 * 1024 * 1024;
  const body = Buffer.alloc(size - (size % item.length), Buffer.from(item));
  const before = await processUsage(pid);
  for (let i = 0; i < 3; i++) expect(`${path}:${await rawCallStatus(address, path, body, token)}`).toBe(`${path}:${code}`);
  const after = await processUsage(pid);
  return { cpuMs: after.cpuMs - before.cpuMs, peakRssMiB: after.peakRssMiB - before.peakRssMiB };
}

const SECURED = { masterArgs: ["--token", TOKEN, "--read-token", READ_TOKEN], nodeArgs: ["--token", TOKEN] };

describe("tokens", () => {
  test("every method of master and node refuses a missing or wrong token with UNAUTHENTICATED; health stays open", async () => {
    await withCluster({ nodes: 1, replication: 1, ...SECURED, env: { DROPBOX_TOKEN: TOKEN } }, async (cluster) => {
      const targets: [grpc.ServiceClientConstructor, string][] = [
        [MasterServiceClient, cluster.master.address],
        [ProcessServiceClient, cluster.master.address],
        [StorageServiceClient, cluster.nodes[0]!.address],
        [ProcessServiceClient, cluster.nodes[0]!.address],
      ];
      for (const [ctor, address] of targets) {
        for (const method of Object.keys(ctor.service)) {
          for (const token of [undefined, "wrong-token-0123456789abcdef", `${TOKEN}x`]) {
            expect(`${method}:${await statusOf(ctor, address, method, token)}`).toBe(`${method}:${grpc.status.UNAUTHENTICATED}`);
          }
        }
      }
      expect(await checkHealth(cluster.master.address, 2000)).toBe(true);
      expect(await checkHealth(cluster.nodes[0]!.address, 2000)).toBe(true);
    });
  });

  test("a caller without the token cannot make a server decode what it sends", async () => {
    await withCluster({ nodes: 1, replication: 1, ...SECURED, env: { DROPBOX_TOKEN: TOKEN } }, async (cluster) => {
      // The smallest list items each method takes: decoding one flood of them builds tens of
      // millions of objects (seconds of CPU, gigabytes of memory).
      const targets = [
        { server: cluster.nodes[0]!, path: "/dropbox.StorageService/DeleteChunks", item: [0x0a, 0x01, 0x61] }, // chunk_ids: "a"
        { server: cluster.master, path: "/dropbox.MasterService/GetManifests", item: [0x0a, 0x00] }, // requests: {}
      ];
      for (const { server, path, item } of targets) {
        const cost = await floodCost(server.pid, server.address, path, item, undefined, grpc.status.UNAUTHENTICATED);
        // Refused on its metadata alone, the body is never decoded (nor all read).
        expect(cost.cpuMs).toBeLessThan(1500);
        expect(cost.peakRssMiB).toBeLessThan(200);
      }
    });
  });

  test("a read-only caller's list of millions of tiny items is refused before it is decoded", async () => {
    await withCluster({ nodes: 1, replication: 1, ...SECURED, env: { DROPBOX_TOKEN: TOKEN } }, async (cluster) => {
      const targets = [
        { server: cluster.nodes[0]!, path: "/dropbox.StorageService/VerifyChunks", item: [0x0a, 0x01, 0x61] }, // chunk_ids: "a"
        { server: cluster.master, path: "/dropbox.MasterService/GetManifests", item: [0x0a, 0x00] }, // requests: {}
      ];
      // The node learns the read-only token from the master when it registers.
      await waitFor("the node to accept the read-only token", async () => (await rawCallStatus(cluster.nodes[0]!.address, "/dropbox.StorageService/VerifyChunks", Buffer.from([0x0a, 0x00]), READ_TOKEN)) !== grpc.status.UNAUTHENTICATED);
      for (const { server, path, item } of targets) {
        const cost = await floodCost(server.pid, server.address, path, item, READ_TOKEN, grpc.status.INVALID_ARGUMENT);
        // Received (60 MiB each) but never decoded.
        expect(cost.cpuMs).toBeLessThan(1500);
        expect(cost.peakRssMiB).toBeLessThan(400);
      }
      // Lists of a legitimate length still pass.
      const list = await cluster.run(["list", "--json"], { env: { DROPBOX_TOKEN: READ_TOKEN } });
      expect(list.exitCode).toBe(0);
    });
  });

  test("the CLI with the token works; without it or with a wrong one it exits 8 with one line", async () => {
    await withCluster({ nodes: 2, replication: 2, ...SECURED, env: { DROPBOX_TOKEN: TOKEN } }, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "f"), randomBytes(5 * 1024 * 1024));
        const tokenFile = join(dir, "token");
        await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
        expect((await cluster.run(["upload", join(dir, "f"), "--token-file", tokenFile], { env: { DROPBOX_TOKEN: "" } })).exitCode).toBe(0);
        const none = await cluster.run(["list"], { env: { DROPBOX_TOKEN: "" } });
        expect(none.exitCode).toBe(8);
        expect(none.stderr).toMatch(/^error: .*missing or wrong token\n$/);
        const wrong = await cluster.run(["list"], { env: { DROPBOX_TOKEN: "wrong-token-0123456789abcdef" } });
        expect(wrong.exitCode).toBe(8);
        expect(wrong.stderr).not.toContain(TOKEN);
        const down = await cluster.run(["download", "f", join(dir, "g")]);
        expect(down.exitCode).toBe(0);
        expect(await sha256File(join(dir, "g"))).toBe(await sha256File(join(dir, "f")));
      });
    });
  });

  test("a read-only token lists and downloads but cannot upload, delete or PutChunk", async () => {
    await withCluster({ nodes: 2, replication: 2, ...SECURED, env: { DROPBOX_TOKEN: TOKEN } }, async (cluster) => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "f"), randomBytes(3 * 1024 * 1024));
        expect((await cluster.run(["upload", join(dir, "f")])).exitCode).toBe(0);
        const ro = { env: { DROPBOX_TOKEN: READ_TOKEN } };
        expect(JSON.parse((await cluster.run(["list", "--json"], ro)).stdout).files).toHaveLength(1);
        const down = await cluster.run(["download", "f", join(dir, "g")], ro);
        expect(down.stderr).toBe("");
        expect(down.exitCode).toBe(0);
        expect(await sha256File(join(dir, "g"))).toBe(await sha256File(join(dir, "f")));
        const up = await cluster.run(["upload", join(dir, "f"), "--as", "other"], ro);
        expect(up.exitCode).toBe(8);
        expect(up.stderr).toContain("read-only");
        expect((await cluster.run(["delete", "f"], ro)).exitCode).toBe(8);
        // Straight to a node: no writes with the read-only token.
        const data = Buffer.from("sneaky chunk");
        const client = new StorageServiceClient(cluster.nodes[0]!.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, Function>;
        const metadata = new grpc.Metadata();
        metadata.set(TOKEN_METADATA_KEY, READ_TOKEN);
        const code = await new Promise<number>((resolve) => client.PutChunk!({ chunkId: chunkIdOf(data), data }, metadata, (err: grpc.ServiceError | null) => resolve(err ? err.code : 0)));
        client.close();
        expect(code).toBe(grpc.status.PERMISSION_DENIED);
        expect(JSON.parse((await cluster.run(["list", "--json"])).stdout).files.map((f: { name: string }) => f.name)).toEqual(["f"]);
      });
    });
  });

  test("cluster up generates a 0600 token, children get it by environment (not in ps), and clients in the directory use it", async () => {
    await withTempDir(async (dir) => {
      const base = await freePortRange(3);
      const up = await runCli(["cluster", "up", "--base-port", String(base), "--nodes", "2", "--quiet"], { cwd: dir });
      try {
        expect(up.stderr).toBe("");
        expect(up.exitCode).toBe(0);
        const tokenPath = join(dir, ".dropbox", "token");
        expect((await stat(tokenPath)).mode & 0o777).toBe(0o600);
        // State, secrets and logs are the user's alone.
        expect((await stat(join(dir, ".dropbox"))).mode & 0o777).toBe(0o700);
        for (const file of ["cluster.json", "node-secret", "logs/master.log", "logs/supervisor.log"]) expect(`${file}:${((await stat(join(dir, ".dropbox", file))).mode & 0o777).toString(8)}`).toBe(`${file}:600`);
        const token = (await readFile(tokenPath, "utf8")).trim();
        expect(token).toMatch(/^[0-9a-f]{64}$/);
        const status = JSON.parse((await runCli(["cluster", "status", "--json"], { cwd: dir })).stdout);
        for (const child of status.children as { pid: number }[]) {
          const cmdline = await readFile(`/proc/${child.pid}/cmdline`, "utf8");
          expect(cmdline).not.toContain(token);
          const environ = await readFile(`/proc/${child.pid}/environ`, "utf8");
          expect(environ).toContain(`DROPBOX_TOKEN=${token}`);
        }
        await writeFile(join(dir, "f"), "hello secured cluster");
        expect((await runCli(["upload", "f"], { cwd: dir, env: { DROPBOX_TOKEN: "" } })).exitCode).toBe(0);
        const list = await runCli(["list", "--json"], { cwd: dir, env: { DROPBOX_TOKEN: "" } });
        expect(list.stdout).not.toContain(token);
        expect(JSON.parse(list.stdout).files).toHaveLength(1);
        // From another directory, with no token, the same master refuses.
        const outside = await runCli(["list", "--master", `127.0.0.1:${base}`], { env: { DROPBOX_TOKEN: "" } });
        expect(outside.exitCode).toBe(8);
        for (const log of ["master", "node1", "node2", "supervisor"]) {
          const text = await readFile(join(dir, ".dropbox", "logs", `${log}.log`), "utf8").catch(() => "");
          expect(text).not.toContain(token);
        }
      } finally {
        await runCli(["cluster", "down", "--quiet"], { cwd: dir });
      }
      await waitFor("the cluster to be down", async () => (await runCli(["cluster", "status", "--json"], { cwd: dir })).stdout.includes('"running":false'));
    });
  });

  test("a server bound to a non-loopback address without a token warns at start-up", async () => {
    await withTempDir(async (dir) => {
      const proc = Bun.spawn([(await import("./harness")).BIN, "master", "--host", "0.0.0.0", "--port", "0", "--data-dir", join(dir, "m")], { stdout: "pipe", stderr: "pipe", env: { ...process.env, DROPBOX_TOKEN: "" } });
      try {
        const reader = proc.stdout.getReader();
        let text = "";
        await waitFor("the warning", async () => {
          const { value, done } = await reader.read();
          if (done) throw new Error(`master exited: ${text}`);
          text += new TextDecoder().decode(value);
          return text.includes("listening on");
        });
        expect(text).toMatch(/warning: listening on 0\.0\.0\.0 without a token/);
      } finally {
        proc.kill("SIGKILL");
        await proc.exited;
      }
    });
  });

  test("a bad token value is a usage error, and --read-token alone is refused", async () => {
    const short = await runCli(["list", "--token", "short", "--master", "127.0.0.1:1"]);
    expect(short.exitCode).toBe(2);
    expect(short.stderr).toMatch(/^error: --token: a token is 16 to 4096 printable ASCII characters/);
    const lonely = await runCli(["master", "--port", "0", "--data-dir", "/tmp/never-created-dbx", "--read-token", READ_TOKEN], { env: { DROPBOX_TOKEN: "" } });
    expect(lonely.exitCode).toBe(2);
    expect(lonely.stderr).toContain("--read-token needs a cluster token");
  });
});
