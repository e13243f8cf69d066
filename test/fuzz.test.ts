/**
 * A fuzzer: thousands of malformed, truncated and random protobuf messages, from a fixed seed
 * and within a time budget, to every method of master and nodes. It proves that each server
 * answers every message with a status (never INTERNAL, which would mean a handler met input it
 * did not validate), never crashes, keeps serving real work afterwards and keeps its RSS bounded.
 */
import { describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import protobuf from "protobufjs";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { chunkIdOf, contentHashOf } from "../src/core/chunk-id";
import { checkHealth } from "../src/rpc/client";
import { healthClientConstructor, MasterServiceClient, ProcessServiceClient, StorageServiceClient } from "../src/rpc/proto";
import { ROOT, type ServerProcess, randomBytes, sha256File, withCluster, withTempDir } from "./harness";

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed_d80b);
/** Messages in total, and the wall time to send them in: whichever ends first. */
const MAX_MESSAGES = Number(process.env.FUZZ_MESSAGES ?? 12_000);
const TIME_BUDGET_MS = Number(process.env.FUZZ_TIME_MS ?? 20_000);
const IN_FLIGHT = 16;
/**
 * Per-call deadline: far above what any valid request takes on loopback. A huge list is up to
 * 270,000 strings for a server to decode on its one thread (2-3.4 s each here), and 16 calls are
 * in flight: in a slow hour on 2 cores, a health Watch queued behind such lists once went past
 * 10 s. What this bounds is an answer that never comes.
 */
const CALL_DEADLINE_MS = 30_000;
/** RSS each server must stay under after the run. */
const RSS_LIMIT_BYTES = 512 * 1024 * 1024;
const KiB = 1024;
const MiB = 1024 * KiB;

/** mulberry32: a tiny seeded PRNG, so a failing run can be replayed with FUZZ_SEED. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    next,
    int,
    pick: <T>(items: readonly T[]): T => items[int(items.length)]!,
    chance: (p: number) => next() < p,
    bytes(n: number): Buffer {
      const out = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) out[i] = int(256);
      return out;
    },
  };
}
type Rng = ReturnType<typeof prng>;

/** One method as the fuzzer sees it: where to send it, how to encode a valid request, its schema. */
interface Target {
  path: string;
  method: string;
  serverStreaming: boolean;
  serialize: (value: object) => Buffer;
  type: protobuf.Type;
}

const schema = new protobuf.Root();
for (const file of ["dropbox.proto", "health.proto"]) protobuf.parse(readFileSync(join(ROOT, "proto", file), "utf8"), schema, { keepCase: false });
schema.resolveAll();

/** Every method of the services a process serves, enumerated from the loaded definitions. */
function targetsOf(ctors: grpc.ServiceClientConstructor[]): Target[] {
  const out: Target[] = [];
  for (const ctor of ctors) {
    for (const [method, def] of Object.entries(ctor.service)) {
      expect(def.requestStream).toBe(false); // a client-streaming method would need its own driver
      const serviceName = def.path.split("/")[1]!;
      const type = (schema.lookupService(serviceName).methods[method]!.resolve() as protobuf.Method).resolvedRequestType!;
      out.push({ path: def.path, method, serverStreaming: def.responseStream, serialize: def.requestSerialize as (v: object) => Buffer, type });
    }
  }
  return out;
}

/** A file the fuzzer may name (and delete); its chunk ids are among those the fuzzer uses. */
const REAL_IDS = { file: "real/file.bin" };
/** A file the fuzzer never names, with chunks it never names: it must come back intact. */
const KEPT_FILE = "kept/file.bin";

/** Strings that have broken parsers and path handling before. */
function nastyString(rng: Rng, ids: string[]): string {
  return rng.pick([
    () => "",
    () => "\u0000",
    () => `a\u0000b`,
    () => "../../etc/passwd",
    () => "/",
    () => "a//b",
    () => "x".repeat(rng.pick([63, 64, 65, 1024, 1025, 70_000])),
    () => rng.pick(ids),
    () => chunkIdOf(rng.bytes(8)),
    () => chunkIdOf(rng.bytes(8)).toUpperCase(),
    () => `${chunkIdOf(rng.bytes(8)).slice(0, 62)}/.`,
    () => REAL_IDS.file,
    () => "node1", // (RegisterNode inputs never carry it: see makeInput)
    () => `fuzz-${rng.int(8)}`,
    () => "127.0.0.1",
    () => "\u202e\u0007\u001b[2J",
    () => "🙂".repeat(300),
    () => rng.bytes(rng.int(40)).toString("latin1"),
  ])();
}

/** A 64-bit value as protobufjs writes it (two's complement halves), without the optional long package. */
function long(value: bigint): protobuf.Long {
  const bits = BigInt.asUintN(64, value);
  return { low: Number(bits & 0xffffffffn) | 0, high: Number(bits >> 32n) | 0, unsigned: false } as protobuf.Long;
}

/** Integers at and past every boundary the handlers check. */
function nastyInt(rng: Rng, bits: 32 | 64): number | protobuf.Long {
  if (bits === 32) return rng.pick([0, 1, -1, 65535, 65536, 2 ** 31 - 1, -(2 ** 31), 4 * MiB, 64 * MiB + 1, rng.int(2 ** 31)]);
  return rng.pick([
    0,
    1,
    -1,
    64 * KiB,
    64 * MiB,
    64 * MiB + 1,
    2 ** 53 - 1,
    2 ** 53 + 1,
    rng.int(2 ** 31),
    long(4611686018427387904n), // 2^62
    long(9223372036854775807n),
    long(-9223372036854775808n),
  ]);
}

/**
 * A message of `type` written field by field with the wire types the schema says, but with
 * hostile values: boundary integers, invalid UTF-8 in strings, long repeated lists.
 */
function hostileMessage(rng: Rng, type: protobuf.Type, ids: string[], depth = 0, budgetBytes = 2 * MiB): Buffer {
  const w = protobuf.Writer.create();
  for (const field of type.fieldsArray) {
    if (rng.chance(0.2)) continue;
    // Long lists only at the top, so nesting cannot multiply them past the message limit.
    const count = !field.repeated ? 1 : depth > 0 ? rng.pick([0, 1, 2, 3]) : rng.pick([0, 1, 2, 3, 17, 300, rng.chance(0.05) ? 20_000 : 5]);
    for (let i = 0; i < count && w.len < budgetBytes; i++) writeField(rng, w, field, ids, depth, count > 1000, budgetBytes - w.len);
  }
  return Buffer.from(w.finish());
}

function writeField(rng: Rng, w: protobuf.Writer, field: protobuf.Field, ids: string[], depth: number, bulk: boolean, budgetBytes: number) {
  const tag = (wire: number) => w.uint32((field.id << 3) | wire);
  field.resolve();
  if (field.resolvedType instanceof protobuf.Type) {
    tag(2).bytes(depth < 3 ? hostileMessage(rng, field.resolvedType, ids, depth + 1, budgetBytes) : rng.bytes(rng.int(16)));
    return;
  }
  switch (field.type) {
    case "string":
      if (bulk) tag(2).string(rng.pick(ids));
      else if (rng.chance(0.15)) tag(2).bytes(Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0xed, 0xa0, 0x80])); // invalid UTF-8
      else tag(2).string(nastyString(rng, ids));
      break;
    case "bytes":
      tag(2).bytes(bulk ? rng.bytes(4) : rng.pick([Buffer.alloc(0), rng.bytes(rng.int(64)), Buffer.alloc(64 * KiB)]));
      break;
    case "int32":
      tag(0).int32(nastyInt(rng, 32) as number);
      break;
    case "int64":
      tag(0).int64(nastyInt(rng, 64));
      break;
    case "bool":
      if (rng.chance(0.3)) tag(0).uint64(long(18446744073709551615n));
      else tag(0).bool(rng.chance(0.5));
      break;
    default:
      // Enums and anything else scalar: a varint far outside its range.
      tag(0).int64(nastyInt(rng, 64));
  }
}

/** A request each method would accept, so truncations and mutations start from something plausible. */
function validRequest(rng: Rng, method: string, ids: string[], ports: number[]): object {
  const id = () => rng.pick(ids);
  const data = rng.bytes(1 + rng.int(256));
  switch (method) {
    case "RegisterNode":
      return { nodeId: `fuzz-${rng.int(4)}`, host: "127.0.0.1", port: 1, capacityBytes: 0, freeBytes: 0, usedBytes: 0, chunkCount: 0, version: "fuzz" };
    case "Heartbeat":
      return { nodeId: `fuzz-${rng.int(4)}`, capacityBytes: 1, freeBytes: 1, usedBytes: 0, chunkCount: 0, lostChunkIds: [id()] };
    case "RequestPutTargets":
      return { chunks: [{ chunkId: id(), size: 1000, excludeNodeIds: ["node1"], holderNodeIds: [] }] };
    case "AnnounceManifest": {
      const chunks = [{ chunkId: id(), size: 65536 }];
      return { filename: `fuzz/${rng.int(10)}`, size: 65536, chunkSize: 65536, contentHash: contentHashOf(chunks.map((c) => c.chunkId)), chunks, stored: [{ chunkId: chunks[0]!.chunkId, nodeIds: ["node1"] }] };
    }
    case "ListFiles":
    case "ListManifests":
      return { prefix: "real/", startAfter: "", limit: 10 };
    case "GetManifest":
    case "DeleteFile":
      return { filename: rng.pick([REAL_IDS.file, "no/such/file"]) };
    case "RequestGetTargets":
      return { chunkIds: [id(), id()] };
    case "ListChunkReplicas":
      return rng.chance(0.5) ? { chunkIds: [id()] } : { startAfter: id(), limit: 5 };
    case "RequestRepair":
      return { badReplicas: [{ chunkId: id(), nodeId: "fuzz-0" }], reconcileNodeIds: ["fuzz-1"] };
    case "PutChunk":
      return { chunkId: rng.chance(0.5) ? chunkIdOf(data) : id(), data };
    case "GetChunk":
      return { chunkId: id() };
    case "ReplicateChunk":
      return { chunkId: id(), sources: [{ host: "127.0.0.1", port: rng.pick(ports), nodeId: "node1" }] };
    case "DeleteChunks":
      return { chunkIds: [chunkIdOf(rng.bytes(8))], keepIfWrittenWithinMs: 60_000 };
    case "ListChunks":
    case "VerifyChunks":
      return { startAfter: "", limit: 1 + rng.int(20) };
    case "Check":
    case "Watch":
      return { service: rng.pick(["", "dropbox.MasterService", "dropbox.StorageService", "nope"]) };
    default:
      return {};
  }
}

/** Bytes of length-delimited fields nested `depth` deep. */
function nested(depth: number, fieldId: number): Buffer {
  let inner = Buffer.alloc(0);
  for (let i = 0; i < depth; i++) {
    const w = protobuf.Writer.create();
    w.uint32((fieldId << 3) | 2).bytes(inner);
    inner = Buffer.from(w.finish());
  }
  return inner;
}

/**
 * One fuzz input for `target` and the name of the strategy that made it. Until nodes
 * authenticate (issue 7, tokens), RegisterNode with a real node's id re-points that node,
 * which would fail the checks afterwards for a reason the fuzzer is not about: such inputs are redrawn.
 */
function makeInput(rng: Rng, target: Target, ids: string[], ports: number[]): { kind: string; bytes: Buffer } {
  for (;;) {
    const input = makeAnyInput(rng, target, ids, ports);
    if (target.method !== "RegisterNode" || !input.bytes.includes("node1") && !input.bytes.includes("node2")) return input;
  }
}

function makeAnyInput(rng: Rng, target: Target, ids: string[], ports: number[]): { kind: string; bytes: Buffer } {
  const valid = () => target.serialize(validRequest(rng, target.method, ids, ports));
  const strategy = rng.int(100);
  if (strategy < 15) {
    const size = rng.chance(0.01) ? 1 * MiB + rng.int(3 * MiB) : rng.chance(0.1) ? rng.int(64 * KiB) : rng.int(256);
    return { kind: "random", bytes: rng.bytes(size) };
  }
  if (strategy < 30) {
    const bytes = rng.chance(0.5) ? valid() : hostileMessage(rng, target.type, ids);
    return { kind: "truncated", bytes: bytes.subarray(0, rng.int(Math.max(1, bytes.length))) };
  }
  if (strategy < 45) {
    const bytes = Buffer.from(valid());
    for (let i = 1 + rng.int(4); i > 0 && bytes.length > 0; i--) bytes[rng.int(bytes.length)] = rng.int(256);
    return { kind: "mutated", bytes };
  }
  if (strategy < 52) {
    // Every declared field number with the wrong wire type (and the reserved types 6 and 7).
    const w = protobuf.Writer.create();
    for (const field of target.type.fieldsArray) {
      const wire = rng.pick([0, 1, 2, 3, 4, 5, 6, 7]);
      w.uint32((field.id << 3) | wire);
      if (wire === 0) w.uint64(long(18446744073709551615n));
      else if (wire === 1) w.fixed64(7);
      else if (wire === 2) w.bytes(rng.bytes(rng.int(8)));
      else if (wire === 5) w.fixed32(7);
    }
    return { kind: "wrong-wire-types", bytes: Buffer.from(w.finish()) };
  }
  if (strategy < 57) {
    // A length prefix far beyond the bytes that follow.
    const w = protobuf.Writer.create();
    const field = target.type.fieldsArray.length > 0 ? rng.pick(target.type.fieldsArray).id : 1;
    w.uint32((field << 3) | 2).uint64(rng.pick([long(4611686018427387904n), long(2n ** 31n), long(2n ** 32n - 1n)]));
    return { kind: "huge-length", bytes: Buffer.concat([Buffer.from(w.finish()), rng.bytes(rng.int(32))]) };
  }
  if (strategy < 62) {
    // Deep nesting: length-delimited inside length-delimited, or open groups never closed.
    if (rng.chance(0.5)) return { kind: "deep-nested", bytes: nested(rng.pick([100, 1000, 5000]), rng.pick([1, 2, 5, 6])) };
    const openGroup = Buffer.from([(1 << 3) | 3]);
    return { kind: "deep-groups", bytes: Buffer.concat(Array.from({ length: rng.pick([100, 10_000, 50_000]) }, () => openGroup)) };
  }
  if (strategy < 64) {
    // A huge list of valid ids within the message size limit.
    const w = protobuf.Writer.create();
    const field = target.type.fieldsArray.find((f) => f.repeated && f.type === "string") ?? target.type.fieldsArray[0];
    if (field) for (let i = rng.chance(0.1) ? 270_000 : rng.pick([10_000, 50_000]); i > 0; i--) w.uint32((field.id << 3) | 2).string(ids[i % ids.length]!);
    return { kind: "huge-list", bytes: Buffer.from(w.finish()) };
  }
  if (strategy < 67) return { kind: "empty", bytes: Buffer.alloc(0) };
  if (strategy < 72) return { kind: "valid", bytes: valid() };
  return { kind: "hostile-fields", bytes: hostileMessage(rng, target.type, ids) };
}

/** How one call ended. */
interface Outcome {
  code: number;
  details: string;
}

/** Sends raw bytes as the request of `path`, and resolves with the status the server answered. */
function call(client: grpc.Client, target: Target, bytes: Buffer): Promise<Outcome> {
  const identity = (b: Buffer) => b;
  const deadline = Date.now() + CALL_DEADLINE_MS;
  return new Promise((resolve) => {
    if (!target.serverStreaming) {
      client.makeUnaryRequest(target.path, identity, identity, bytes, { deadline }, (err) => resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: "" }));
      return;
    }
    // A stream that answers with a message has answered: the fuzzer hangs up then.
    const stream = client.makeServerStreamRequest(target.path, identity, identity, bytes, { deadline });
    let answered = false;
    stream.on("data", () => {
      answered = true;
      stream.cancel();
    });
    stream.on("error", () => {});
    stream.on("status", (status: grpc.StatusObject) => resolve(answered ? { code: grpc.status.OK, details: "(stream answered)" } : { code: status.code, details: status.details }));
  });
}

/** Resident set size of a process, from /proc. */
function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) * 1024 : 0;
}

const alive = (p: ServerProcess) => p.proc !== null && p.proc.exitCode === null && p.proc.signalCode === null;

describe("fuzzing every RPC", () => {
  test("thousands of malformed messages: every one answered with a status, no INTERNAL, no crash, servers still serve, RSS bounded", async () => {
    // A short node timeout, so nodes the fuzzer registers are dead (out of placement) soon after it stops.
    await withCluster({ nodes: 2, replication: 2, masterArgs: ["--node-timeout", "2000"] }, async (cluster) => {
      const rng = prng(SEED);
      console.log(`fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED}), up to ${MAX_MESSAGES} messages or ${TIME_BUDGET_MS} ms`);

      // Real content first, so some fuzz inputs name chunks and a file that exist.
      const ids: string[] = Array.from({ length: 8 }, () => chunkIdOf(rng.bytes(16)));
      const kept = join(cluster.dir, "kept.bin");
      await writeFile(kept, randomBytes(200 * KiB));
      expect((await cluster.run(["upload", kept, "--as", KEPT_FILE, "--chunk-size", "64k"])).exitCode).toBe(0);
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "f.bin"), randomBytes(200 * KiB));
        expect((await cluster.run(["upload", join(dir, "f.bin"), "--as", REAL_IDS.file, "--chunk-size", "64k"])).exitCode).toBe(0);
      });
      const manifest = await cluster.api().getManifest({ filename: REAL_IDS.file });
      ids.push(...manifest.chunks.map((c) => c.chunkId));

      const servers = [
        { process: cluster.master, targets: targetsOf([MasterServiceClient, ProcessServiceClient, healthClientConstructor()]) },
        ...cluster.nodes.map((process) => ({ process, targets: targetsOf([StorageServiceClient, ProcessServiceClient, healthClientConstructor()]) })),
      ];
      const ports = [1, ...cluster.nodes.map((n) => n.port)];
      const clients = servers.map((s) => new grpc.Client(s.process.address, grpc.credentials.createInsecure(), { "grpc.max_send_message_length": -1, "grpc.max_receive_message_length": -1 }));
      // A method no server has, and a service a server does not serve: both must be UNIMPLEMENTED.
      const unknown: Target = { ...servers[0]!.targets[0]!, path: "/dropbox.MasterService/NoSuchMethod", method: "NoSuchMethod" };

      const tally = new Map<string, number>();
      const failures: string[] = [];
      const slow: { ms: number; what: string }[] = [];
      let sent = 0;
      const started = Date.now();
      const worker = async () => {
        while (sent < MAX_MESSAGES && Date.now() - started < TIME_BUDGET_MS) {
          const n = sent++;
          // Each message from its own stream, so message n is the same whatever the timing.
          const rng = prng((SEED ^ Math.imul(n + 1, 0x9e3779b9)) >>> 0);
          const s = rng.int(servers.length);
          const server = servers[s]!;
          const target = n % 97 === 0 ? unknown : rng.pick(server.targets);
          const input = makeInput(rng, target, ids, ports);
          const t0 = Date.now();
          const outcome = await call(clients[s]!, target, input.bytes);
          slow.push({ ms: Date.now() - t0, what: `#${n} ${target.path} ${input.kind} ${input.bytes.length} ${grpc.status[outcome.code]}` });
          const key = `${target.path} ${grpc.status[outcome.code]}`;
          tally.set(key, (tally.get(key) ?? 0) + 1);
          const what = `#${n} ${server.process.name} ${target.path} ${input.kind} (${input.bytes.length} bytes, starts ${input.bytes.subarray(0, 24).toString("hex")}): ${grpc.status[outcome.code]} ${outcome.details}`;
          if (outcome.code === grpc.status.INTERNAL || outcome.code === grpc.status.DEADLINE_EXCEEDED || outcome.code === grpc.status.UNKNOWN) failures.push(what);
          // UNAVAILABLE from our own connection means the server went away; a handler may answer it about a peer.
          else if (outcome.code === grpc.status.UNAVAILABLE && !outcome.details.startsWith("no source could provide") && /Connection dropped|ECONNRESET|No connection established/i.test(outcome.details)) failures.push(what);
          else if (target === unknown && outcome.code !== grpc.status.UNIMPLEMENTED) failures.push(what);
        }
      };
      const sampler = process.env.FUZZ_DEBUG ? setInterval(() => console.log(`rss ${sent} ${servers.map((x) => (rssBytes(x.process.pid) / MiB).toFixed(0)).join(" ")}`), 2000) : null;
      await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
      if (sampler) clearInterval(sampler);
      const elapsedMs = Date.now() - started;
      for (const client of clients) client.close();

      console.log(`fuzz: ${sent} messages in ${elapsedMs} ms`);
      if (process.env.FUZZ_DEBUG) {
        for (const x of slow.sort((a, b) => b.ms - a.ms).slice(0, 40)) console.log(`slow ${x.ms} ${x.what}`);
        console.log(failures.filter((f) => !f.includes("Error deserializing")).join("\n"));
      }
      for (const [key, count] of [...tally].sort()) console.log(`  ${count.toString().padStart(5)}  ${key}`);
      if (failures.length > 0) console.log(`fuzz failures (${failures.length}):\n${failures.slice(0, 40).join("\n")}`);

      expect(sent).toBeGreaterThanOrEqual(Math.min(MAX_MESSAGES, 2000));
      expect(failures).toEqual([]);

      // Every server is still up, answers its health check and its RSS stayed bounded.
      for (const { process } of servers) {
        expect(alive(process)).toBe(true);
        expect(await checkHealth(process.address, 5000)).toBe(true);
        const rss = rssBytes(process.pid);
        console.log(`  ${process.name} RSS ${(rss / MiB).toFixed(0)} MiB`);
        expect(rss).toBeLessThan(RSS_LIMIT_BYTES);
      }

      // And real work still goes through: the old file is intact, a new one goes in and out.
      await cluster.waitForLiveNodes(2);
      const listed = await cluster.run(["list", "--json"]);
      expect(listed.exitCode).toBe(0);
      await withTempDir(async (dir) => {
        await writeFile(join(dir, "after.bin"), randomBytes(300 * KiB));
        const up = await cluster.run(["upload", join(dir, "after.bin")]);
        expect(up.stderr).toBe("");
        expect(up.exitCode).toBe(0);
        for (const [name, out] of [["after.bin", "after.out"], [KEPT_FILE, "kept.out"]] as const) {
          const down = await cluster.run(["download", name, join(dir, out)]);
          expect(down.stderr).toBe("");
          expect(down.exitCode).toBe(0);
        }
        expect(await sha256File(join(dir, "after.out"))).toBe(await sha256File(join(dir, "after.bin")));
        expect(await sha256File(join(dir, "kept.out"))).toBe(await sha256File(kept));
      });
      await Bun.sleep(200);
      for (const { process } of servers) expect(alive(process)).toBe(true);
    });
  }, 120_000);
});
