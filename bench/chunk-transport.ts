/**
 * What sending chunks costs, per path: 1 GiB as 4 MiB PutChunk calls, 4 in flight, from a
 * StorageApi to a storage server of ours (startServer, the node's gRPC plumbing, a handler that
 * only counts), once through grpc-js (DROPBOX_CHUNK_SENDER=grpc-js: Bun's HTTP/2 client, DATA
 * frames of at most 16 KiB, a `send` each) and once through src/rpc/chunk-sender.ts (frames up
 * to the server's windows). Each side runs in its own process; CPU is the process's own (user +
 * system). No hashing and no disk: the transport alone. Not a test.
 *
 *   bun bench/chunk-transport.ts [--mib 1024] [--reps 3]
 */
import { randomBytes } from "node:crypto";
import { flagValue, median } from "./lib/stats";
import { chunkIdOf } from "../src/core/chunk-id";
import { StorageApi } from "../src/rpc/client";
import type * as m from "../src/rpc/messages";
import { layoutPutChunk, putChunkMessageCapacity, setPutChunkId, withRouting } from "../src/rpc/put-chunk-message";
import { releaseReceived } from "../src/rpc/receive-buffers";
import { startServer, unary } from "../src/rpc/server";

const CHUNK_BYTES = 4 * 1024 * 1024;
const IN_FLIGHT = 4;

/** One side's account, printed by the child as a JSON line on stdout. */
interface SideReport {
  cpuMs: number;
  wallMs?: number;
}

const cpuMsSince = (start: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
};

/** Receiver: prints its port, then a report once `total` bytes have come, then exits. */
async function serve(total: number) {
  let start: NodeJS.CpuUsage | null = null;
  let bytes = 0;
  const PutChunk = unary<m.PutChunkRequest, m.PutChunkResponse>((request) => {
    bytes += request.data.byteLength;
    releaseReceived(request.data);
    if (bytes >= total) {
      process.stdout.write(`${JSON.stringify({ cpuMs: cpuMsSince(start!) } satisfies SideReport)}\n`);
      setTimeout(() => process.exit(0), 100);
    }
    return { status: "OK", alreadyPresent: false, storedNodeIds: [], chainFailures: [] };
  }, () => {});
  const server = await startServer("127.0.0.1", 0, [{ name: "dropbox.StorageService", implementation: { PutChunk } }], () => {});
  start = process.cpuUsage();
  process.stdout.write(`${server.port}\n`);
}

/** Sender: `total` bytes as pre-encoded 4 MiB chunks, each message built once and sent as many times as needed. */
async function send(port: number, total: number) {
  const encoded = layoutPutChunk(Buffer.allocUnsafe(putChunkMessageCapacity(CHUNK_BYTES)), CHUNK_BYTES);
  randomBytes(CHUNK_BYTES).copy(encoded.data);
  const id = chunkIdOf(encoded.data);
  setPutChunkId(encoded, id);
  const request = { chunkId: id, data: encoded.data, grant: null, encoded: withRouting(encoded, null, [], []) };
  const api = new StorageApi(`127.0.0.1:${port}`);
  const start = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  const lane = async () => {
    while (next++ * CHUNK_BYTES < total) await api.putChunk(request, 60_000);
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  process.stdout.write(`${JSON.stringify({ cpuMs: cpuMsSince(start), wallMs: performance.now() - t0 } satisfies SideReport)}\n`);
  api.close();
}

/** A child's stdout, a line at a time. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const bytes of stream) {
    text += decoder.decode(bytes, { stream: true });
    for (let end = text.indexOf("\n"); end >= 0; end = text.indexOf("\n")) {
      yield text.slice(0, end);
      text = text.slice(end + 1);
    }
  }
}

async function nextLine(from: AsyncGenerator<string>): Promise<string> {
  const { value, done } = await from.next();
  if (done) throw new Error("a child process ended before reporting");
  return value;
}

async function once(sender: "grpc-js" | "chunk-sender", mib: number): Promise<{ sender: SideReport; receiver: SideReport }> {
  const self = [process.execPath, import.meta.path];
  const receiver = Bun.spawn([...self, "--serve", String(mib)], { stdout: "pipe", stderr: "inherit" });
  try {
    const fromReceiver = lines(receiver.stdout);
    const port = await nextLine(fromReceiver);
    const env = { ...process.env, DROPBOX_CHUNK_SENDER: sender };
    const client = Bun.spawn([...self, "--send", port, String(mib)], { env, stdout: "pipe", stderr: "inherit" });
    const [sent, received] = await Promise.all([nextLine(lines(client.stdout)), nextLine(fromReceiver)]);
    await client.exited;
    return { sender: JSON.parse(sent) as SideReport, receiver: JSON.parse(received) as SideReport };
  } finally {
    receiver.kill();
  }
}

async function main() {
  const mib = Number(flagValue(process.argv, "mib") ?? 1024);
  const reps = Number(flagValue(process.argv, "reps") ?? 3);
  console.log(`| ${mib} MiB as 4 MiB PutChunk calls, ${IN_FLIGHT} in flight; median of ${reps} | wall | sender CPU | receiver CPU |`);
  console.log("|---|---:|---:|---:|");
  for (const sender of ["grpc-js", "chunk-sender"] as const) {
    const runs: { sender: SideReport; receiver: SideReport }[] = [];
    for (let i = 0; i < reps; i++) runs.push(await once(sender, mib));
    const m = (pick: (r: (typeof runs)[number]) => number) => median(runs.map(pick)).toFixed(0);
    console.log(`| ${sender} | ${m((r) => r.sender.wallMs!)} ms | ${m((r) => r.sender.cpuMs)} ms | ${m((r) => r.receiver.cpuMs)} ms |`);
  }
}

const role = process.argv[2];
if (role === "--serve") await serve(Number(process.argv[3]) << 20);
else if (role === "--send") await send(Number(process.argv[3]), Number(process.argv[4]) << 20);
else await main();
