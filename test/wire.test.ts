/**
 * The hooks into grpc-js are really on the path a call takes: the copy-saving ones
 * (src/rpc/framing.ts, src/rpc/receive-buffers.ts) on a chunk's, the UTC timers
 * (src/rpc/backoff-clock.ts) on every channel's. A grpc-js upgrade that routed around them
 * would keep every other test green and quietly lose the speed. One process, a real server
 * and client on loopback.
 */
import { BackoffTimeout } from "@grpc/grpc-js/build/src/backoff-timeout";
import { afterAll, beforeAll, describe, expect, spyOn, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { chunkIdOf } from "../src/core/chunk-id";
import { misalignment } from "../src/core/direct-io-alignment";
import { StorageApi } from "../src/rpc/client";
import { chunkSenderCounts } from "../src/rpc/chunk-sender";
import { tokenDigest, useToken } from "../src/rpc/auth";
import { DropboxError, invalidArgument } from "../src/core/errors";
import { framedCounts } from "../src/rpc/framing";
import { GET_CHUNK_HEADROOM_BYTES, getChunkResponse } from "../src/rpc/get-chunk-message";
import type * as m from "../src/rpc/messages";
import { layoutPutChunk, putChunkMessageCapacity, receivedPutChunk, setPutChunkId, withRouting } from "../src/rpc/put-chunk-message";
import { isLent } from "../src/rpc/receive-buffers";
import { type RpcServer, startServer, unary } from "../src/rpc/server";

const SIZE = 1024 * 1024 + 17;
const stored = new Map<string, Buffer>();
let server: RpcServer;
let api: StorageApi;
let receivedPooled = false;
let forwardableInPlace = false;
let receivedAligned = false;

beforeAll(async () => {
  const log = () => {};
  server = await startServer("127.0.0.1", 0, [
    {
      name: "dropbox.StorageService",
      implementation: {
        PutChunk: unary<m.PutChunkRequest, m.PutChunkResponse>(async (request) => {
          if (chunkIdOf(request.data) !== request.chunkId) throw invalidArgument("chunk id does not match the data");
          receivedPooled = isLent(request.data);
          receivedAligned = misalignment(request.data) === 0;
          // What a chain node does before passing the chunk on: reuse the message it got.
          forwardableInPlace = receivedPutChunk(request.chunkId, Buffer.from(request.data.buffer, request.data.byteOffset, request.data.byteLength)) !== null;
          stored.set(request.chunkId, Buffer.from(request.data));
          return { status: "OK", alreadyPresent: false, storedNodeIds: [], chainFailures: [] };
        }, log),
        GetChunk: unary<m.GetChunkRequest, m.GetChunkResponse>(async (request) => {
          const bytes = stored.get(request.chunkId)!;
          const buffer = Buffer.allocUnsafe(GET_CHUNK_HEADROOM_BYTES + bytes.length);
          bytes.copy(buffer, GET_CHUNK_HEADROOM_BYTES);
          return getChunkResponse(buffer.subarray(GET_CHUNK_HEADROOM_BYTES));
        }, log),
      },
    },
  ], log);
  api = new StorageApi(`127.0.0.1:${server.port}`);
});

afterAll(async () => {
  api.close();
  await server.shutdown(100);
});

/** A pre-encoded PutChunk of `size` random bytes (or of bytes that do not match its id). */
function preEncoded(size: number, mismatched = false) {
  const encoded = layoutPutChunk(Buffer.allocUnsafe(putChunkMessageCapacity(size)), size);
  randomBytes(size).copy(encoded.data);
  const id = mismatched ? chunkIdOf(randomBytes(8)) : chunkIdOf(encoded.data);
  setPutChunkId(encoded, id);
  return { id, request: { chunkId: id, data: encoded.data, grant: null, encoded: withRouting(encoded, null, [], []) } };
}

describe("chunks on the wire", () => {
  test("a pre-encoded PutChunk goes out framed in place, in frames larger than HTTP/2's default 16 KiB frame and 64 KiB window, and arrives whole, aligned in a reused buffer it can be forwarded from", async () => {
    const { request, id } = preEncoded(SIZE);
    const before = { ...chunkSenderCounts };
    expect((await api.putChunk(request, 10_000)).status).toBe("OK");
    expect(chunkSenderCounts.succeeded).toBe(before.succeeded + 1);
    expect(chunkSenderCounts.failed).toBe(before.failed);
    // Past 16 KiB: the node advertises larger frames; past 64 KiB: and wider windows (server.ts).
    expect(chunkSenderCounts.largestFrameBytes).toBeGreaterThan(64 * 1024);
    expect(chunkIdOf(stored.get(id)!)).toBe(id);
    expect(receivedPooled).toBe(true);
    expect(forwardableInPlace).toBe(true);
    // Ready for O_DIRECT as it is (durable-file.ts).
    expect(receivedAligned).toBe(true);
  });

  test("through grpc-js (DROPBOX_CHUNK_SENDER=grpc-js), a pre-encoded PutChunk still goes out framed in place", async () => {
    process.env.DROPBOX_CHUNK_SENDER = "grpc-js";
    const viaGrpcJs = new StorageApi(`127.0.0.1:${server.port}`);
    delete process.env.DROPBOX_CHUNK_SENDER;
    try {
      const { request, id } = preEncoded(SIZE);
      const before = { framed: framedCounts.requests, fast: chunkSenderCounts.succeeded };
      expect((await viaGrpcJs.putChunk(request, 10_000)).status).toBe("OK");
      expect(framedCounts.requests).toBe(before.framed + 1);
      expect(chunkSenderCounts.succeeded).toBe(before.fast);
      expect(chunkIdOf(stored.get(id)!)).toBe(id);
    } finally {
      viaGrpcJs.close();
    }
  });

  test("a PutChunk the node refuses fails with the node's own error, as through grpc-js", async () => {
    const { request } = preEncoded(64 * 1024, true);
    const before = { ...chunkSenderCounts };
    const err = await api.putChunk(request, 10_000).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(DropboxError);
    expect((err as DropboxError).kind).toBe("INVALID_ARGUMENT");
    expect((err as DropboxError).message).toContain("chunk id does not match the data");
    // The fast path ended without a response and handed the call to grpc-js.
    expect(chunkSenderCounts.failed).toBe(before.failed + 1);
  });

  test("a node nobody listens on fails as unavailable", async () => {
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const gone = new StorageApi(`127.0.0.1:${port}`);
    try {
      const err = await gone.putChunk(preEncoded(1024).request, 5_000).then(() => null, (e: unknown) => e);
      expect((err as DropboxError).kind).toBe("UNAVAILABLE");
    } finally {
      gone.close();
    }
  });

  test("a node that takes the connection and never answers: the call fails once, within its deadline, not twice over", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const stuck = new StorageApi(`127.0.0.1:${silent.port}`);
    try {
      const started = Date.now();
      const err = await stuck.putChunk(preEncoded(1024).request, 1000).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(DropboxError);
      // The fast path gave up at the deadline and grpc-js got what was left of it.
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
      expect(Date.now() - started).toBeLessThan(1800);
    } finally {
      stuck.close();
      silent.stop(true);
    }
  });

  test("the token goes with a fast-path call, however long: a server that requires it takes the chunk", async () => {
    const token = "t".repeat(300); // longer than HPACK's 7-bit length prefix: multi-byte lengths
    const guarded = await startServer("127.0.0.1", 0, [{ name: "dropbox.StorageService", implementation: { PutChunk: unary<m.PutChunkRequest, m.PutChunkResponse>(async () => ({ status: "OK", alreadyPresent: false, storedNodeIds: [], chainFailures: [] }), () => {}) } }], () => {}, { tokenDigest: tokenDigest(token) });
    useToken(token);
    const client = new StorageApi(`127.0.0.1:${guarded.port}`);
    try {
      const before = { ...chunkSenderCounts };
      expect((await client.putChunk(preEncoded(256 * 1024).request, 10_000)).status).toBe("OK");
      expect(chunkSenderCounts.succeeded).toBe(before.succeeded + 1);
      expect(chunkSenderCounts.failed).toBe(before.failed);
      // Without it the node refuses, whichever way the call went.
      useToken(undefined);
      const refused = new StorageApi(`127.0.0.1:${guarded.port}`);
      const err = await refused.putChunk(preEncoded(1024).request, 10_000).then(() => null, (e: unknown) => e);
      refused.close();
      expect((err as DropboxError).kind).toBe("UNAUTHENTICATED");
    } finally {
      useToken(undefined);
      client.close();
      await guarded.shutdown(100);
    }
  });

  test("a GetChunk response goes out framed in place and arrives whole, aligned in a reused buffer", async () => {
    const [id] = [...stored.keys()];
    const before = framedCounts.responses;
    const { data } = await api.getChunk({ chunkId: id! }, 10_000);
    expect(framedCounts.responses).toBe(before + 1);
    expect(chunkIdOf(data)).toBe(id!);
    expect(isLent(data)).toBe(true);
    expect(misalignment(data)).toBe(0);
  });
});

describe("grpc-js's reconnect timers", () => {
  test("a new channel's backoff timers do no local-time Date arithmetic (no time-zone set-up per CLI call)", async () => {
    const localTime = spyOn(Date.prototype, "setMilliseconds");
    // runTimer is private in the type declarations.
    const runTimer = spyOn(BackoffTimeout.prototype as unknown as { runTimer: (delay: number) => void }, "runTimer");
    const fresh = new StorageApi(`127.0.0.1:${server.port}`);
    try {
      const data = randomBytes(100);
      expect((await fresh.putChunk({ chunkId: chunkIdOf(data), data }, 5000)).status).toBe("OK");
      // Timers did run on this channel's way to the call...
      expect(runTimer).toHaveBeenCalled();
      // ...and none of them touched the local-time accessors.
      expect(localTime).not.toHaveBeenCalled();
    } finally {
      fresh.close();
      localTime.mockRestore();
      runTimer.mockRestore();
    }
  });

  test("a backoff timer still ends its delay after it started", () => {
    const timer = new BackoffTimeout(() => {}, { initialDelay: 250 });
    const before = Date.now();
    timer.runOnce();
    const after = Date.now();
    timer.stop();
    const end = timer.getEndTime().getTime();
    expect(end).toBeGreaterThanOrEqual(before + 250);
    expect(end).toBeLessThanOrEqual(after + 250);
  });
});
