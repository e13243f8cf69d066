/** Processes come up in any order and say when they are ready. */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { readFile, truncate, writeFile } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { checkHealth } from "../src/rpc/client";
import { BIN, randomBytes, sha256File, TestCluster, waitFor, withTempDir } from "./harness";

/** The environment a running process was started with. */
const environOf = async (pid: number) => (await readFile(`/proc/${pid}/environ`, "utf8")).split("\0");

test("master and nodes answer the standard gRPC health check", async () => {
  const cluster = await TestCluster.start({ nodes: 1, replication: 1 });
  try {
    expect(await checkHealth(cluster.master.address, 2000)).toBe(true);
    expect(await checkHealth(cluster.nodes[0]!.address, 2000)).toBe(true);
    await cluster.nodes[0]!.kill("SIGTERM");
    expect(await checkHealth(cluster.nodes[0]!.address, 2000)).toBe(false);
  } finally {
    await cluster.stop();
  }
});

test("a node started while the master is down keeps retrying and registers once the master is up", async () => {
  const cluster = await TestCluster.start({ nodes: 2, replication: 2 });
  try {
    await cluster.master.kill("SIGKILL");
    // A fresh node whose master is not there yet.
    const late = cluster.addNode();
    await late.start();
    await waitFor("the late node to log a retry", async () => /not answering.*retrying/.test(await late.log()));
    await cluster.master.start();
    await cluster.waitForLiveNodes(3);
    await withTempDir(async (dir) => {
      await writeFile(join(dir, "f"), randomBytes(3 * 1024 * 1024));
      expect((await cluster.run(["upload", join(dir, "f")])).exitCode).toBe(0);
      expect((await cluster.run(["download", "f", join(dir, "g")])).exitCode).toBe(0);
      expect(await sha256File(join(dir, "g"))).toBe(await sha256File(join(dir, "f")));
    });
  } catch (err) {
    await cluster.dumpLogs();
    throw err;
  } finally {
    await cluster.stop();
  }
});

test("a node re-executes itself, same pid, with the allocator tuned unless the user set it", async () => {
  const cluster = await TestCluster.start({ nodes: 1, replication: 1 });
  try {
    // The pid the harness spawned is the process serving: execve kept it.
    expect(await environOf(cluster.nodes[0]!.pid)).toContain("MIMALLOC_PURGE_DELAY=5000");
    // The master moves no chunk data and is left as started.
    expect((await environOf(cluster.master.pid)).some((v) => v.startsWith("MIMALLOC_PURGE_DELAY="))).toBe(false);
  } finally {
    await cluster.stop();
  }
  const tuned = await TestCluster.start({ nodes: 1, replication: 1, env: { MIMALLOC_PURGE_DELAY: "250" } });
  try {
    expect(await environOf(tuned.nodes[0]!.pid)).toContain("MIMALLOC_PURGE_DELAY=250");
  } finally {
    await tuned.stop();
  }
});

test("an upload of 64 MiB or more re-executes itself with the allocator tuned; a small one does not", async () => {
  // A "master" that accepts connections and never answers: the client is then known to be
  // past its start-up (and any re-execution) while it waits, so its environment can be read.
  const sockets: Socket[] = [];
  let connections = 0;
  const silent = createServer((socket) => {
    connections++;
    sockets.push(socket);
  });
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const master = `127.0.0.1:${(silent.address() as { port: number }).port}`;
  const environWhileWaiting = async (file: string): Promise<string[]> => {
    const before = connections;
    const proc = Bun.spawn([BIN, "upload", file, "--master", master, "--quiet"], { env: { ...process.env, MIMALLOC_PURGE_DELAY: undefined }, stdout: "ignore", stderr: "ignore" });
    try {
      await waitFor("the upload to reach the master", () => connections > before);
      return await environOf(proc.pid);
    } finally {
      proc.kill("SIGKILL");
      await proc.exited;
    }
  };
  try {
    await withTempDir(async (dir) => {
      const big = join(dir, "big.bin");
      await writeFile(big, "");
      await truncate(big, 64 * 1024 * 1024); // sparse: the size is what counts
      const small = join(dir, "small.bin");
      await writeFile(small, randomBytes(4096));
      expect(await environWhileWaiting(big)).toContain("MIMALLOC_PURGE_DELAY=5000");
      expect((await environWhileWaiting(small)).some((v) => v.startsWith("MIMALLOC_PURGE_DELAY="))).toBe(false);
    });
  } finally {
    for (const socket of sockets) socket.destroy();
    silent.close();
  }
});
