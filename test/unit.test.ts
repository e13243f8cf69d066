/** The pure pieces: ids, names, sizes, addresses, placement, the semaphore, and the master's metadata on a temp file. */
import { describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseHostPort } from "../src/core/address";
import { assertChunkId, chunkIdOf, chunkIdOfAsync, contentHashOf, isChunkId } from "../src/core/chunk-id";
import { allocShared, sha256WorkerStats } from "../src/core/sha256-worker";
import { nameProblem } from "../src/core/names";
import { BufferedOut, table } from "../src/cli/output";
import { listJson, listTable } from "../src/cli/list";
import { StreamedJsonList } from "../src/cli/output";
import { Semaphore } from "../src/core/semaphore";
import { formatBytes, parseSize } from "../src/core/size";
import { REPAIR_SCAN_PAGE_CHUNKS } from "../src/core/limits";
import { DeletionRetries } from "../src/master/deletion-retries";
import { compareInventory } from "../src/master/inventory";
import { Metadata } from "../src/master/metadata";
import { NodeRegistry } from "../src/master/node-registry";
import { Repairer } from "../src/master/repair";
import { pickWeighted } from "../src/master/placement";
import { loadScrubState, msUntilNextPass } from "../src/node/scrubber";
import { Coalescer } from "../src/rpc/batch";
import { StoragePool } from "../src/rpc/client";
import { unavailableCause } from "../src/rpc/status";
import { overlongList } from "../src/rpc/list-bound";
import { waitFor } from "./poll";

describe("chunk ids", () => {
  test("are the SHA-256 of the bytes and nothing else", () => {
    const bytes = Buffer.from("hello");
    expect(chunkIdOf(bytes)).toBe(createHash("sha256").update(bytes).digest("hex"));
    expect(isChunkId(chunkIdOf(bytes))).toBe(true);
  });
  test("only 64 lowercase hex characters pass", () => {
    for (const bad of ["../../etc/passwd", "A".repeat(64), "a".repeat(63), "a".repeat(65), "", 42, null]) expect(isChunkId(bad)).toBe(false);
    expect(() => assertChunkId("../../etc/passwd")).toThrow(/64 lowercase hex/);
  });
  test("the content hash is SHA-256 over the binary chunk digests (Dropbox's content_hash scheme)", () => {
    const a = chunkIdOf(Buffer.from("a"));
    const b = chunkIdOf(Buffer.from("b"));
    const expected = createHash("sha256").update(Buffer.concat([Buffer.from(a, "hex"), Buffer.from(b, "hex")])).digest("hex");
    expect(contentHashOf([a, b])).toBe(expected);
    expect(contentHashOf([])).toBe(createHash("sha256").digest("hex"));
  });
});

describe("names", () => {
  test("accept object-store style paths", () => {
    for (const ok of ["a", "report.pdf", "artifacts/app.tgz", "a/b/c.d", "ünïcode/名前", "with space", "x".repeat(1024)]) expect(nameProblem(ok)).toBeNull();
  });
  test("reject what could escape, hide or confuse, saying why", () => {
    expect(nameProblem("")).toBe("name is empty");
    expect(nameProblem("/abs")).toBe("name starts with '/'");
    expect(nameProblem("a/../b")).toBe("name contains a '..' segment");
    expect(nameProblem("./a")).toBe("name contains a '.' segment");
    expect(nameProblem("a//b")).toContain("empty segment");
    expect(nameProblem("a\u0000b")).toContain("NUL");
    expect(nameProblem("a\nb")).toContain("control character");
    expect(nameProblem("a\u009bb")).toContain("control character");
    expect(nameProblem("é".repeat(513))).toContain("longer than 1024 bytes");
  });
});

describe("sizes and addresses", () => {
  test("sizes parse with binary units", () => {
    expect(parseSize("65536")).toBe(65536);
    expect(parseSize("64k")).toBe(65536);
    expect(parseSize("4MiB")).toBe(4 * 1024 * 1024);
    expect(parseSize("1g")).toBe(1024 ** 3);
    expect(() => parseSize("lots")).toThrow(/number of bytes/);
    expect(formatBytes(1536)).toBe("1.5 KiB");
  });
  test("addresses are HOST:PORT with a valid port", () => {
    expect(parseHostPort("127.0.0.1:9000")).toEqual({ host: "127.0.0.1", port: 9000 });
    expect(parseHostPort("[::1]:9000")).toEqual({ host: "::1", port: 9000 });
    expect(() => parseHostPort("localhost")).toThrow(/HOST:PORT/);
    expect(() => parseHostPort("h:70000")).toThrow(/1-65535/);
  });
});

describe("placement", () => {
  test("picks distinct nodes, never more than exist", () => {
    const nodes = [{ id: "a", freeBytes: 10 }, { id: "b", freeBytes: 10 }, { id: "c", freeBytes: 10 }];
    for (let i = 0; i < 50; i++) {
      const ids = pickWeighted(nodes, 2).map((n) => n.id);
      expect(new Set(ids).size).toBe(2);
    }
    expect(pickWeighted(nodes, 5)).toHaveLength(3);
  });
  test("weights by free space: a node with 9x the space is chosen first about 9x as often", () => {
    const nodes = [{ id: "big", freeBytes: 900 }, { id: "small", freeBytes: 100 }];
    let seed = 1;
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    let big = 0;
    for (let i = 0; i < 10_000; i++) if (pickWeighted(nodes, 1, random)[0]!.id === "big") big++;
    expect(big).toBeGreaterThan(8700);
    expect(big).toBeLessThan(9300);
  });
});

describe("semaphore", () => {
  test("bounds concurrency and hands permits to waiters in order", async () => {
    const sem = new Semaphore(2);
    let running = 0;
    let peak = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        await sem.acquire();
        running++;
        peak = Math.max(peak, running);
        await Bun.sleep(1);
        order.push(i);
        running--;
        sem.release();
      }),
    );
    expect(peak).toBe(2);
    expect(order).toHaveLength(6);
    expect(() => new Semaphore(0)).toThrow();
  });
});

describe("hand-encoded PutChunk messages", () => {
  test("decode with the protocol's own deserializer to the same chunk id and bytes, for awkward sizes", async () => {
    const { StorageServiceClient } = await import("../src/rpc/proto");
    const { layoutPutChunk, putChunkMessageCapacity, setPutChunkId } = await import("../src/rpc/put-chunk-message");
    const definition = StorageServiceClient.service as unknown as Record<string, { requestDeserialize(b: Buffer): { chunkId: string; data: Buffer } }>;
    const backing = Buffer.alloc(putChunkMessageCapacity(64 * 1024 * 1024));
    for (const size of [1, 127, 128, 16383, 16384, 65536, 4 * 1024 * 1024 + 1]) {
      const encoded = layoutPutChunk(backing, size);
      crypto.getRandomValues(encoded.data.subarray(0, Math.min(size, 65536)));
      const id = chunkIdOf(encoded.data);
      setPutChunkId(encoded, id);
      const decoded = definition.PutChunk!.requestDeserialize(encoded.message);
      expect(decoded.chunkId).toBe(id);
      expect(decoded.data.byteLength).toBe(size);
      expect(chunkIdOf(decoded.data)).toBe(id);
    }
  });

  test("a forward list appended after the payload decodes to the same nodes, and a shorter one replaces it", async () => {
    const { StorageServiceClient } = await import("../src/rpc/proto");
    const { layoutPutChunk, putChunkMessageCapacity, setPutChunkId, withRouting } = await import("../src/rpc/put-chunk-message");
    const definition = StorageServiceClient.service as unknown as Record<string, { requestDeserialize(b: Buffer): { chunkId: string; data: Buffer; forwardTo: { host: string; port: number; nodeId: string }[] } }>;
    const encoded = layoutPutChunk(Buffer.alloc(putChunkMessageCapacity(300_000)), 300_000);
    encoded.data.fill(9);
    setPutChunkId(encoded, chunkIdOf(encoded.data));
    const nodes = [
      { host: "10.0.0.7", port: 9002, nodeId: "node2" },
      { host: "storage-3.example.internal", port: 65535, nodeId: "n3" },
    ];
    const grant = { expiresAtMs: 1_795_000_000_123, mac: Buffer.alloc(32, 7) };
    const forwardGrants = [{ expiresAtMs: 1_795_000_000_456, mac: Buffer.alloc(32, 8) }, { expiresAtMs: 5, mac: Buffer.alloc(32, 9) }];
    const decoded = definition.PutChunk!.requestDeserialize(withRouting(encoded, grant, nodes, forwardGrants)) as unknown as { chunkId: string; data: Buffer; forwardTo: unknown[]; grant: { expiresAtMs: number; mac: Buffer }; forwardGrants: { expiresAtMs: number; mac: Buffer }[] };
    expect(decoded.forwardTo).toEqual(nodes);
    expect(chunkIdOf(decoded.data)).toBe(decoded.chunkId);
    expect(decoded.grant.expiresAtMs).toBe(grant.expiresAtMs);
    expect(Buffer.compare(decoded.grant.mac, grant.mac)).toBe(0);
    expect(decoded.forwardGrants.map((g) => g.expiresAtMs)).toEqual([1_795_000_000_456, 5]);
    const shorter = definition.PutChunk!.requestDeserialize(withRouting(encoded, null, nodes.slice(1), [])) as unknown as { forwardTo: unknown[]; grant: unknown; forwardGrants: unknown[] };
    expect(shorter.forwardTo).toEqual(nodes.slice(1));
    expect(shorter.grant).toBeNull();
    expect(shorter.forwardGrants).toEqual([]);
    const bare = withRouting(encoded, null, [], []);
    expect(definition.PutChunk!.requestDeserialize(bare).forwardTo).toEqual([]);
    // Framed in place: the gRPC header (uncompressed, length) sits in the 5 bytes before the message.
    const header = Buffer.from(bare.buffer, bare.byteOffset - 5, 5);
    expect(header[0]).toBe(0);
    expect(header.readUInt32BE(1)).toBe(bare.byteLength);
  });
});

describe("forwarding a received PutChunk in place", () => {
  test("the bytes a node received go on with the next hop's routing, and anything unexpected is refused", async () => {
    const { StorageServiceClient } = await import("../src/rpc/proto");
    const { layoutPutChunk, putChunkMessageCapacity, receivedPutChunk, setPutChunkId, withRouting } = await import("../src/rpc/put-chunk-message");
    type Decoded = { chunkId: string; data: Buffer; forwardTo: { host: string; port: number; nodeId: string }[]; grant: { expiresAtMs: number } | null; forwardGrants: { expiresAtMs: number }[] };
    const decode = (b: Buffer) => (StorageServiceClient.service as unknown as Record<string, { requestDeserialize(b: Buffer): Decoded }>).PutChunk!.requestDeserialize(b);
    const encoded = layoutPutChunk(Buffer.alloc(putChunkMessageCapacity(200_000)), 200_000);
    encoded.data.fill(3);
    const id = chunkIdOf(encoded.data);
    setPutChunkId(encoded, id);
    const nodes = [
      { host: "127.0.0.1", port: 9002, nodeId: "node2" },
      { host: "127.0.0.1", port: 9003, nodeId: "node3" },
    ];
    const grants = [1, 2, 3].map((n) => ({ expiresAtMs: 1_795_000_000_000 + n, mac: Buffer.alloc(32, n) }));
    const sent = withRouting(encoded, grants[0], nodes, grants.slice(1));
    // What grpc-js's decoder hands a server: the framed message in a buffer of its own.
    const framedCopy = (message: Buffer) => Buffer.from(Buffer.from(message.buffer, message.byteOffset - 5, message.byteLength + 5));
    const arrived = framedCopy(sent);
    const request = decode(arrived.subarray(5));
    const received = receivedPutChunk(id, request.data);
    expect(received).not.toBeNull();
    const onward = decode(withRouting(received!, grants[1], nodes.slice(1), grants.slice(2)));
    expect(onward.chunkId).toBe(id);
    expect(chunkIdOf(onward.data)).toBe(id);
    expect(onward.forwardTo).toEqual(nodes.slice(1));
    expect(onward.grant!.expiresAtMs).toBe(grants[1]!.expiresAtMs);
    expect(onward.forwardGrants.map((g) => g.expiresAtMs)).toEqual([grants[2]!.expiresAtMs]);
    // The payload itself was not touched.
    expect(request.data.every((b) => b === 3)).toBe(true);

    // Not exactly one framed message, or another id: encode afresh instead.
    const inLargerBuffer = Buffer.concat([framedCopy(sent), Buffer.alloc(16)]);
    expect(receivedPutChunk(id, decode(inLargerBuffer.subarray(5, 5 + sent.byteLength)).data)).toBeNull();
    expect(receivedPutChunk("b".repeat(64), decode(framedCopy(sent).subarray(5)).data)).toBeNull();
    // A longer tail than the old one does not fit: withRouting refuses rather than overwrite.
    const bare = withRouting(encoded, null, [], []);
    const bareArrived = framedCopy(bare);
    const bareReceived = receivedPutChunk(id, decode(bareArrived.subarray(5)).data);
    expect(bareReceived).not.toBeNull();
    expect(() => withRouting(bareReceived!, grants[0], nodes, grants.slice(1))).toThrow(/does not fit/);
  });
});

describe("names from hostile clients", () => {
  test("ill-formed Unicode is rejected, and long names are quoted whole characters at a time", async () => {
    const { assertName } = await import("../src/core/names");
    expect(nameProblem("a\uD800b")).toContain("not valid Unicode");
    const emoji = "🙂".repeat(600);
    const message = (() => {
      try {
        assertName(emoji);
      } catch (err) {
        return (err as Error).message;
      }
      return "";
    })();
    expect(message).toContain("longer than 1024 bytes");
    expect(message.isWellFormed()).toBe(true);
  });
  test("hosts are hostnames or IP literals only", async () => {
    const { isHostName } = await import("../src/core/address");
    for (const ok of ["127.0.0.1", "::1", "node-3.example.internal", "fe80::1"]) expect(isHostName(ok)).toBe(true);
    for (const bad of ["", "a b", "x/y", "\u202e\u0007\u001b[2J", "h".repeat(256), 42]) expect(isHostName(bad)).toBe(false);
  });
});

describe("coalescer", () => {
  /** A coalescer that records each batch it sends and answers each item with itself doubled. */
  function recording(maxItems: number, maxBytes = Infinity) {
    const batches: number[][] = [];
    const coalescer = new Coalescer<number, number>(
      async (items) => {
        batches.push(items);
        return items.map((n) => (n < 0 ? new Error(`bad ${n}`) : n * 2));
      },
      maxItems,
      (n) => Math.abs(n),
      maxBytes,
    );
    return { batches, coalescer };
  }

  test("calls made in one turn go as one batch, each caller gets its own result or error", async () => {
    const { batches, coalescer } = recording(100);
    const results = await Promise.allSettled([1, 2, -3, 4].map((n) => coalescer.submit(n)));
    expect(batches).toEqual([[1, 2, -3, 4]]);
    expect(results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as Error).message))).toEqual([2, 4, "bad -3", 8]);
  });

  test("a batch never holds more than maxItems items or maxBytes bytes", async () => {
    const byCount = recording(3);
    await Promise.all([1, 1, 1, 1, 1, 1, 1].map((n) => byCount.coalescer.submit(n)));
    expect(byCount.batches.map((b) => b.length)).toEqual([3, 3, 1]);

    const byBytes = recording(100, 10);
    await Promise.all([4, 4, 4, 9, 1, 12, 2].map((n) => byBytes.coalescer.submit(n)));
    // 4+4 fits, +4 would not; 4 alone, +9 would not; 9+1 reaches the cap; 12 is too big alone but still goes, alone.
    expect(byBytes.batches).toEqual([[4, 4], [4], [9, 1], [12], [2]]);
  });
});

describe("storage pool", () => {
  test("reuses one channel per address and closes the least recently used beyond its capacity", async () => {
    const pool = new StoragePool(2);
    try {
      const a = pool.get("127.0.0.1:1");
      const b = pool.get("127.0.0.1:2");
      expect(pool.get("127.0.0.1:1")).toBe(a); // a is now the most recently used
      pool.get("127.0.0.1:3"); // evicts b, not a
      expect(pool.size).toBe(2);
      expect(pool.get("127.0.0.1:1")).toBe(a);
      const b2 = pool.get("127.0.0.1:2");
      expect(b2).not.toBe(b);
      // A closed channel refuses new calls: the evicted one was really closed.
      await expect(b.getChunk({ chunkId: "a".repeat(64) }, 1000)).rejects.toThrow(/shut down/);
    } finally {
      pool.close();
    }
  });
});

describe("unreachable peers", () => {
  test("grpc-js's connection details are cut to their cause", () => {
    expect(unavailableCause("No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ")).toBe("connect ECONNREFUSED 127.0.0.1:1");
    expect(unavailableCause("No connection established. Last error: getaddrinfo ENOTFOUND nohost. Resolution note: DNS")).toBe("getaddrinfo ENOTFOUND nohost");
    expect(unavailableCause("Connection dropped")).toBe("Connection dropped");
    expect(unavailableCause("Something. Resolution note: ")).toBe("Something.");
  });
});

describe("receiving into reused buffers", () => {
  const framed = (message: Buffer) => {
    const out = Buffer.alloc(5 + message.length);
    out.writeUInt32BE(message.length, 1);
    message.copy(out, 5);
    return out;
  };

  test("the payload to align is found past varint, fixed and small fields, and not guessed when cut short", async () => {
    const { largeFieldOffset } = await import("../src/rpc/receive-buffers");
    const { StorageServiceClient } = await import("../src/rpc/proto");
    const encode = (r: object) => (StorageServiceClient.service as unknown as Record<string, { requestSerialize(r: object): Buffer }>).PutChunk!.requestSerialize(r);
    const data = Buffer.alloc(300 * 1024, 1);
    const message = encode({ chunkId: "a".repeat(64), data, forwardTo: [], grant: null, forwardGrants: [] });
    const offset = largeFieldOffset(message.subarray(0, 256));
    expect(offset).toBe(message.indexOf(data.subarray(0, 64)));
    expect(message.subarray(offset, offset + data.length).equals(data)).toBe(true);
    // A varint field, a 64-bit and a 32-bit fixed field, a small bytes field, then the large one.
    const mixed = Buffer.concat([Buffer.from([0x08, 0x96, 0x01, 0x11]), Buffer.alloc(8), Buffer.from([0x1d]), Buffer.alloc(4), Buffer.from([0x22, 0x02, 0x61, 0x62, 0x2a, 0x80, 0x80, 0x14])]);
    expect(largeFieldOffset(Buffer.concat([mixed, Buffer.alloc(16)]))).toBe(mixed.length);
    expect(largeFieldOffset(mixed.subarray(0, mixed.length - 1))).toBe(-1);
    expect(largeFieldOffset(Buffer.from([0x0a, 0x05, 0x61]))).toBe(-1);
    expect(largeFieldOffset(Buffer.from([0x0f]))).toBe(-1); // wire type 7 does not exist
  });

  test("the decoder yields each framed message whole, however the bytes are split", async () => {
    const { StreamDecoder } = await import("@grpc/grpc-js/build/src/stream-decoder");
    await import("../src/rpc/receive-buffers");
    const messages = [0, 1, 300, 70_000, 300_000, 4 * 1024 * 1024 + 77, 5].map((n, i) => Buffer.alloc(n, i + 1));
    const stream = Buffer.concat(messages.map(framed));
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 20; round++) {
      const decoder = new StreamDecoder(-1);
      const out: Buffer[] = [];
      for (let at = 0; at < stream.length; ) {
        // Pieces from 1 byte to 64 KiB, as HTTP/2 frames and socket reads would cut them.
        const n = Math.max(1, Math.floor(random() ** 3 * 65536));
        out.push(...decoder.write(stream.subarray(at, at + n)));
        at += n;
      }
      expect(out.map((b) => b.length)).toEqual(messages.map((m) => m.length + 5));
      out.forEach((b, i) => expect(b.equals(framed(messages[i]!))).toBe(true));
    }
    expect(() => new StreamDecoder(100).write(framed(Buffer.alloc(101)))).toThrow(/larger than max/);
  });

  /** A message of one length-delimited field of `size` bytes of `fill` (a GetChunk response's shape). */
  const oneChunk = (size: number, fill: number) => Buffer.concat([Buffer.from([0x0a, 0x80, 0x80, 0x40]), Buffer.alloc(size, fill)]);
  const payloadOf = (framedMessage: Buffer) => framedMessage.subarray(5 + 4);

  test("a chunk handed back lends its buffer to the next message of its size; one not handed back never", async () => {
    const { StreamDecoder } = await import("@grpc/grpc-js/build/src/stream-decoder");
    const { releaseReceived } = await import("../src/rpc/receive-buffers");
    const decoder = new StreamDecoder(-1);
    const MiB = 1024 * 1024;
    const [first] = decoder.write(framed(oneChunk(MiB, 1)));
    const [second] = decoder.write(framed(oneChunk(MiB, 2)));
    expect(second!.buffer).not.toBe(first!.buffer);
    releaseReceived(first!.subarray(5, 9)); // not the chunk's bytes: ignored
    const [notYet] = decoder.write(framed(oneChunk(MiB, 9)));
    expect(notYet!.buffer).not.toBe(first!.buffer);
    releaseReceived(payloadOf(first!));
    releaseReceived(payloadOf(first!)); // a second release is ignored
    const [third] = decoder.write(framed(oneChunk(MiB, 3)));
    expect(third!.buffer).toBe(first!.buffer);
    const [fourth] = decoder.write(framed(oneChunk(MiB, 4)));
    expect(fourth!.buffer).not.toBe(first!.buffer);
    expect(payloadOf(second!).every((b) => b === 2)).toBe(true);
    expect(payloadOf(third!).every((b) => b === 3)).toBe(true);
  });

  test("chunks that came in one batch never hand their shared buffer back, so none is overwritten while another is in use", async () => {
    const { StreamDecoder } = await import("@grpc/grpc-js/build/src/stream-decoder");
    const { isLent, releaseReceived } = await import("../src/rpc/receive-buffers");
    const decoder = new StreamDecoder(-1);
    // Two 200 KiB chunks in one 400 KiB message, as a GetChunks response carries them.
    const item = (fill: number) => Buffer.concat([Buffer.from([0x0a, 0x80, 0xc0, 0x0c]), Buffer.alloc(200 * 1024, fill)]);
    const [batch] = decoder.write(framed(Buffer.concat([item(1), item(2)])));
    const chunkA = batch!.subarray(5 + 4, 5 + 4 + 200 * 1024);
    const chunkB = batch!.subarray(5 + 8 + 200 * 1024);
    expect(isLent(chunkA)).toBe(false);
    releaseReceived(chunkA); // the first file is done with its chunk...
    const [next] = decoder.write(framed(Buffer.concat([item(7), item(7)])));
    expect(next!.buffer).not.toBe(batch!.buffer);
    expect(chunkB.every((b) => b === 2)).toBe(true); // ...and the second file's is intact
  });
});

describe("master metadata", () => {
  test("a ListManifests page: chunks in order with their holders, big files without chunks, paged by name", () => {
    const dir = mkdtempSync(join(tmpdir(), "dropbox-meta-"));
    const metadata = new Metadata(join(dir, "master.sqlite"));
    try {
      const id = (s: string) => chunkIdOf(Buffer.from(s));
      const [a, b, c] = [id("a"), id("b"), id("c")];
      const commit = (name: string, chunks: string[], stored: [string, string[]][]) => {
        const result = metadata.commit({ name, size: chunks.length * 10, chunkSize: 10, contentHash: contentHashOf(chunks), chunks: chunks.map((chunkId) => ({ chunkId, size: 10 })), stored: new Map(stored) }, 1000);
        expect(result.file?.name).toBe(name);
      };
      // Out of name order, a chunk held twice by one file, one held by two nodes.
      commit("p/two", [b, a, b], [[a, ["n1", "n2"]], [b, ["n2"]]]);
      commit("p/big", [a, b, c, a], [[c, ["n3"]]]);
      commit("p/one", [c], []);
      commit("q/other", [a], []);

      const page = metadata.listManifests("p/", "", 10, 3);
      expect(page.truncated).toBe(false);
      expect(page.manifests.map((m) => m.file.name)).toEqual(["p/big", "p/one", "p/two"]);
      expect(page.manifests.map((m) => m.file.chunkCount)).toEqual([4, 1, 3]);
      // p/big has 4 chunks, more than 3 per file: listed without them.
      expect(page.manifests[0]!.chunks).toEqual([]);
      expect(page.manifests[1]!.chunks).toEqual([{ chunkId: c, size: 10, nodeIds: ["n3"] }]);
      const two = page.manifests[2]!.chunks.map((ch) => [ch.chunkId, [...ch.nodeIds].sort()]);
      expect(two).toEqual([[b, ["n2"]], [a, ["n1", "n2"]], [b, ["n2"]]]);
      // The same manifest as a file's own.
      expect(metadata.manifest("p/two")!.chunks.map((ch) => ch.chunkId)).toEqual([b, a, b]);

      const first = metadata.listManifests("p/", "", 2, 4);
      expect([first.truncated, first.manifests.map((m) => [m.file.name, m.chunks.length])]).toEqual([true, [["p/big", 4], ["p/one", 1]]]);
      const rest = metadata.listManifests("p/", "p/one", 2, 4);
      expect([rest.truncated, rest.manifests.map((m) => [m.file.name, m.chunks.length])]).toEqual([false, [["p/two", 3]]]);
      expect(metadata.listManifests("none/", "", 10, 3)).toEqual({ manifests: [], truncated: false });
    } finally {
      metadata.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("repair scan", () => {
  /** A master database in a temp dir with `files` files of `chunksPerFile` distinct chunks, each held by n1 and n2. */
  function metadataWith(files: number, chunksPerFile: number) {
    const dir = mkdtempSync(join(tmpdir(), "dropbox-scan-"));
    const metadata = new Metadata(join(dir, "master.sqlite"));
    const ids: string[] = [];
    metadata.inTransaction(() => {
      for (let f = 0; f < files; f++) {
        const chunks = Array.from({ length: chunksPerFile }, (_, i) => chunkIdOf(Buffer.from(`${f}/${i}`)));
        ids.push(...chunks);
        const stored = new Map(chunks.map((id) => [id, ["n1", "n2"]]));
        metadata.commit({ name: `f${f}`, size: chunksPerFile * 10, chunkSize: 10, contentHash: contentHashOf(chunks), chunks: chunks.map((chunkId) => ({ chunkId, size: 10 })), stored }, 1000);
      }
    });
    const close = () => {
      metadata.close();
      rmSync(dir, { recursive: true, force: true });
    };
    return { metadata, ids: ids.sort(), close };
  }

  test("referenced chunks are read in id order, a page at a time, without deleted files' chunks", () => {
    const { metadata, ids, close } = metadataWith(3, 4);
    try {
      const first = metadata.referencedChunkReplicasPage("", 5);
      expect(first.map((c) => c.chunkId)).toEqual(ids.slice(0, 5));
      expect(first.every((c) => c.size === 10 && [...c.nodeIds].sort().join() === "n1,n2")).toBe(true);
      expect(metadata.referencedChunkReplicasPage(ids[4]!, 100).map((c) => c.chunkId)).toEqual(ids.slice(5));
      metadata.deleteFile("f0", 2000);
      const gone = new Set(Array.from({ length: 4 }, (_, i) => chunkIdOf(Buffer.from(`0/${i}`))));
      expect(metadata.referencedChunkReplicasPage("", 100).map((c) => c.chunkId)).toEqual(ids.filter((id) => !gone.has(id)));
    } finally {
      close();
    }
  });

  test("copies recorded on a node are read by id range, only those recorded before a time", () => {
    const { metadata, ids, close } = metadataWith(2, 5);
    try {
      const late = ids[7]!;
      metadata.removeReplica(late, "n1");
      metadata.addReplica(late, "n1", 5000);
      expect(metadata.replicasOnNodeBetween("n1", 2000, "", null, 100)).toEqual(ids.filter((id) => id !== late));
      expect(metadata.replicasOnNodeBetween("n1", 2000, ids[1]!, ids[4]!, 100)).toEqual(ids.slice(2, 5));
      expect(metadata.replicasOnNodeBetween("n1", 2000, ids[1]!, null, 3)).toEqual(ids.slice(2, 5));
      expect(metadata.replicasOnNodeBetween("n3", 2000, "", null, 100)).toEqual([]);
    } finally {
      close();
    }
  });

  test("a full scan counts every chunk and lets the event loop run between pages", async () => {
    const chunks = Math.ceil(REPAIR_SCAN_PAGE_CHUNKS * 2.5);
    const { metadata, close } = metadataWith(Math.ceil(chunks / 100), 100);
    // Where each page read found a ticker that reschedules itself on every turn of the loop.
    const ticksAtPage: number[] = [];
    let ticks = 0;
    let ticking = true;
    const tick = () => {
      ticks++;
      if (ticking) setImmediate(tick);
    };
    const readPage = metadata.referencedChunkReplicasPage.bind(metadata);
    metadata.referencedChunkReplicasPage = (after, limit) => {
      ticksAtPage.push(ticks);
      return readPage(after, limit);
    };
    const registry = new NodeRegistry(metadata, 60_000);
    const usage = { capacityBytes: 0, freeBytes: 0, usedBytes: 0, chunkCount: 0 };
    for (const id of ["n1", "n2"]) registry.register(id, "127.0.0.1", 1, usage, Date.now());
    // Replication 3 on two live nodes: every chunk is short of a copy, and no node could take one.
    const repairer = new Repairer({ metadata, registry, pool: new StoragePool(), replication: 3, gcGraceMs: 60_000, intervalMs: 1, minFreeBytes: 0, log: () => {} });
    try {
      tick();
      repairer.start();
      await waitFor("a full scan", () => repairer.status().underReplicatedChunks === Math.ceil(chunks / 100) * 100, 20_000);
      const firstScan = ticksAtPage.slice(0, 3);
      expect(firstScan).toHaveLength(3);
      expect(firstScan[1]!).toBeGreaterThan(firstScan[0]!);
      expect(firstScan[2]!).toBeGreaterThan(firstScan[1]!);
      expect(repairer.status().unavailableChunks).toBe(0);
    } finally {
      ticking = false;
      repairer.stop();
      close();
    }
  });
});

describe("node inventory against the master's records", () => {
  /** Runs compareInventory over a node listing `pages` and records `recorded`, reading `step` recorded ids at a time. */
  async function compare(pages: string[][], recorded: string[], step: number) {
    const calls: { held: string[]; missing: string[] }[] = [];
    let served = 0;
    const totals = await compareInventory({
      nextPage: async (startAfter) => {
        const ids = pages[served++]!;
        expect(startAfter).toBe(served === 1 ? "" : pages[served - 2]!.at(-1)!);
        return { ids, last: served === pages.length };
      },
      recordedBetween: (after, upTo, limit) => recorded.filter((id) => id > after && (upTo === null || id <= upTo)).slice(0, limit),
      recordedPageLimit: step,
      onPage: async (held, missing) => void calls.push({ held, missing }),
    });
    return { totals, calls, served };
  }

  test("copies recorded but not listed are found in every page's range, before the first id and after the last", async () => {
    const { totals, calls, served } = await compare([["b", "d"], ["f", "h"], ["j"]], ["a", "b", "c", "d", "e", "h", "i", "j", "k", "l"], 2);
    expect(served).toBe(3);
    expect(totals).toEqual({ held: 5, missing: 6 });
    expect(calls.flatMap((c) => c.held)).toEqual(["b", "d", "f", "h", "j"]);
    expect(calls.flatMap((c) => c.missing)).toEqual(["a", "c", "e", "i", "k", "l"]);
  });

  test("an empty node: every recorded copy is missing, handed over a step at a time", async () => {
    const { totals, calls } = await compare([[]], ["a", "b", "c", "d", "e"], 2);
    expect(totals).toEqual({ held: 0, missing: 5 });
    expect(calls).toEqual([{ held: [], missing: ["a", "b"] }, { held: [], missing: ["c", "d"] }, { held: [], missing: ["e"] }]);
  });

  test("a page out of id order stops the comparison before anything is forgotten", async () => {
    const forgotten: string[] = [];
    const walk = compareInventory({
      nextPage: async (startAfter) => (startAfter === "" ? { ids: ["b", "d"], last: false } : { ids: ["c", "e"], last: true }),
      recordedBetween: () => [],
      recordedPageLimit: 10,
      onPage: async (_, missing) => void forgotten.push(...missing),
    });
    await expect(walk).rejects.toThrow("out of id order");
    expect(forgotten).toEqual([]);
  });
});

describe("scrub schedule", () => {
  const HOUR = 3_600_000;
  test("a pass starts at once when none ran or one is under way, else an interval after the last one started", () => {
    const fresh = { passStartedAtMs: null, inPass: false, after: "", lastPassEndedAtMs: null };
    expect(msUntilNextPass(fresh, HOUR, 10 * HOUR)).toBe(0);
    expect(msUntilNextPass({ ...fresh, passStartedAtMs: 9 * HOUR, inPass: true }, HOUR, 9.5 * HOUR)).toBe(0);
    const done = { passStartedAtMs: 9 * HOUR, inPass: false, after: "", lastPassEndedAtMs: 9.2 * HOUR };
    expect(msUntilNextPass(done, HOUR, 9.5 * HOUR)).toBe(0.5 * HOUR);
    expect(msUntilNextPass(done, HOUR, 11 * HOUR)).toBe(0);
    expect(msUntilNextPass(done, 0, 9.5 * HOUR)).toBe(0);
    // The clock set back two hours: the next pass is still at most an interval away.
    expect(msUntilNextPass(done, HOUR, 7 * HOUR)).toBe(HOUR);
  });
  test("a state file that cannot be trusted reads as no state; a bad cursor as the start", () => {
    const dir = mkdtempSync(join(tmpdir(), "dropbox-scrub-"));
    try {
      const path = join(dir, "scrub.json");
      const fresh = { passStartedAtMs: null, inPass: false, after: "", lastPassEndedAtMs: null };
      expect(loadScrubState(path)).toEqual(fresh);
      writeFileSync(path, "{not json");
      expect(loadScrubState(path)).toEqual(fresh);
      writeFileSync(path, JSON.stringify({ passStartedAtMs: 5, inPass: true, after: "../../etc", lastPassEndedAtMs: -1 }));
      expect(loadScrubState(path)).toEqual({ passStartedAtMs: 5, inPass: true, after: "", lastPassEndedAtMs: null });
      // Under way but without a start: a new pass, from the beginning.
      writeFileSync(path, JSON.stringify({ inPass: true, after: chunkIdOf(Buffer.from("y")) }));
      expect(loadScrubState(path)).toEqual(fresh);
      const id = chunkIdOf(Buffer.from("x"));
      writeFileSync(path, JSON.stringify({ passStartedAtMs: 5, inPass: true, after: id, lastPassEndedAtMs: 4 }));
      expect(loadScrubState(path)).toEqual({ passStartedAtMs: 5, inPass: true, after: id, lastPassEndedAtMs: 4 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("hashing large chunks off the main thread", () => {
  test("chunks in shared memory are hashed in place on the worker, others here or by WebCrypto, all to the same ids", async () => {
    const size = 512 * 1024;
    const views = Array.from({ length: 12 }, (_, i) => {
      const view = allocShared(size + 100).subarray(i, i + size); // odd offsets: read in place, not from 0
      view.set(randomBytes(size));
      return view;
    });
    const expected = views.map((v) => chunkIdOf(v));
    // Until the worker is up the caller hashes; poll until the worker has taken some.
    await waitFor("the hashing worker to be used", async () => {
      const before = sha256WorkerStats.onWorker;
      expect(await chunkIdOfAsync(views[0]!)).toBe(expected[0]!);
      return sha256WorkerStats.onWorker > before;
    });
    const onWorker = sha256WorkerStats.onWorker;
    // Many at once, each answered with its own digest.
    expect(await Promise.all(views.map((v) => chunkIdOfAsync(v)))).toEqual(expected);
    expect(sha256WorkerStats.onWorker).toBe(onWorker + views.length);
    // Memory that is not shared: WebCrypto, same id.
    const plain = Buffer.from(views[3]!);
    expect(await chunkIdOfAsync(plain)).toBe(expected[3]!);
    expect(sha256WorkerStats.onWorker).toBe(onWorker + views.length);
  });
});

describe("output tables", () => {
  test("columns are as wide as their widest cell, the last one unpadded", () => {
    expect(table(["NAME", "SIZE"], [["a", "1 B"], ["longer-name", "10 KiB"]]).split("\n")).toEqual(["NAME         SIZE", "a            1 B", "longer-name  10 KiB"]);
  });

  test("a listing of more than a million rows lays out (a spread of that many arguments overflowed the stack)", () => {
    const rows = Array.from({ length: 1_100_000 }, (_, i) => [`f${i}`, "4 KiB"]);
    const lines = table(["NAME", "SIZE"], rows).split("\n");
    expect(lines).toHaveLength(1_100_001);
    expect(lines[1]).toBe(`f0${" ".repeat("f1099999".length - 2)}  4 KiB`);
    expect(lines.at(-1)).toBe("f1099999  4 KiB");
  });
});

describe("streamed listings", () => {
  const file = (name: string, size: number) => ({ name, size, chunkCount: 1, chunkSize: 4194304, contentHash: "", createdAtMs: 0 });
  async function* pages(...batches: (ReturnType<typeof file>[] | Error)[]) {
    for (const batch of batches) {
      if (batch instanceof Error) throw batch;
      yield batch;
    }
  }

  test("a long table is printed as it is read: the first rows set the widths, later ones keep them", async () => {
    const written: string[] = [];
    await listTable(pages([file("a", 1), file("bb", 2)], [file("ccc", 3), file("d", 4), file("a-much-longer-name", 5)]), new BufferedOut((t) => written.push(t)), 3);
    const lines = written.join("").trimEnd().split("\n").map((l) => l.replace(/\s+(\S+ \S+|CREATED)$/, "")); // drop CREATED
    expect(lines).toEqual(["NAME  SIZE  CHUNKS", "a     1 B   1", "bb    2 B   1", "ccc   3 B   1", "d     4 B   1", "a-much-longer-name  5 B   1"]);
    const none: string[] = [];
    await listTable(pages(), new BufferedOut((t) => none.push(t)), 3);
    expect(none.join("")).toBe("no files\n");
  });

  test("a JSON listing cut short by an error is still one whole document, and the error goes on", async () => {
    const written: string[] = [];
    const doc = new StreamedJsonList(new BufferedOut((t) => written.push(t)), "files");
    await expect(listJson(pages([file("a", 1)], [file("b", 2)], new Error("master went away")), doc)).rejects.toThrow("master went away");
    expect(JSON.parse(written.join("")).files.map((f: { name: string }) => f.name)).toEqual(["a", "b"]);
    const early: string[] = [];
    await expect(listJson(pages(new Error("unreachable")), new StreamedJsonList(new BufferedOut((t) => early.push(t)), "files"))).rejects.toThrow("unreachable");
    expect(early).toEqual([]);
    const tail: string[] = [];
    const withTail = new StreamedJsonList(new BufferedOut((t) => tail.push(t)), "files");
    withTail.end({ totals: { files: 0 } });
    expect(JSON.parse(tail.join(""))).toEqual({ files: [], totals: { files: 0 } });
  });
});

describe("list bounds before decoding", () => {
  const field = (n: number, payload: number[]) => [(n << 3) | 2, payload.length, ...payload];
  test("a top-level field repeated past the bound is found; up to it, and below the top level, nothing is", () => {
    const items = (n: number, count: number) => Array.from({ length: count }, () => field(n, [0x61])).flat();
    expect(overlongList(Uint8Array.from(items(1, 5)), 5)).toBeNull();
    expect(overlongList(Uint8Array.from(items(1, 6)), 5)).toBe(1);
    // Two lists of five, a varint, a fixed64 and a fixed32 field between them.
    const mixed = [...items(2, 5), 0x30, 0x96, 0x01, 0x21, 1, 2, 3, 4, 5, 6, 7, 8, 0x2d, 1, 2, 3, 4, ...items(3, 5)];
    expect(overlongList(Uint8Array.from(mixed), 5)).toBeNull();
    // Seven items inside one submessage: its bytes are skipped, not counted.
    expect(overlongList(Uint8Array.from(field(4, items(1, 7))), 5)).toBeNull();
    // A bytes field whose payload looks like many tags is skipped whole.
    expect(overlongList(Uint8Array.from(field(5, items(1, 20))), 5)).toBeNull();
  });

  test("bytes that are not fields are left to the decoder", () => {
    expect(overlongList(Uint8Array.from([0x0a, 0x80]), 1)).toBeNull(); // a length cut short
    expect(overlongList(Uint8Array.from([0x0b, 0x0a, 0x00, 0x0a, 0x00]), 1)).toBeNull(); // a group
    expect(overlongList(new Uint8Array(0), 1)).toBeNull();
  });
});

describe("deletion retries", () => {
  test("kept copies come due a grace period after they were kept, oldest first, each once", () => {
    const retries = new DeletionRetries(300, 100, 3);
    expect(retries.add("node1", ["a", "b"], 1000)).toBe(0);
    expect(retries.add("node2", ["c"], 1100)).toBe(0);
    expect(retries.add("node1", [], 1100)).toBe(0);
    expect(retries.size).toBe(3);
    expect(retries.takeDue(1299)).toEqual([]);
    expect(retries.takeDue(1300)).toEqual([{ nodeId: "node1", chunkIds: ["a", "b"], attempt: 1 }]);
    expect(retries.takeDue(5000)).toEqual([{ nodeId: "node2", chunkIds: ["c"], attempt: 1 }]);
    expect(retries.takeDue(5000)).toEqual([]);
    expect(retries.size).toBe(0);
  });

  test("the queue holds at most its bound of chunk ids, and a copy is retried at most the attempt limit", () => {
    const retries = new DeletionRetries(10, 5, 2);
    expect(retries.add("node1", ["a", "b", "c"], 0)).toBe(0);
    expect(retries.add("node1", ["d", "e", "f", "g"], 0)).toBe(2);
    expect(retries.size).toBe(5);
    expect(retries.takeDue(10).flatMap((r) => r.chunkIds)).toEqual(["a", "b", "c", "d", "e"]);
    // Kept again on its first retry: once more; on its second: given up, to the node's inventory.
    expect(retries.add("node1", ["a"], 10, 1)).toBe(0);
    expect(retries.takeDue(20)).toEqual([{ nodeId: "node1", chunkIds: ["a"], attempt: 2 }]);
    expect(retries.add("node1", ["a"], 20, 2)).toBe(1);
    expect(retries.size).toBe(0);
  });
});
