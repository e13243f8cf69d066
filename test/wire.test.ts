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

describe("chunks on the wire", () => {
  test("a pre-encoded PutChunk goes out framed in place and arrives whole, aligned in a reused buffer it can be forwarded from", async () => {
    const encoded = layoutPutChunk(Buffer.allocUnsafe(putChunkMessageCapacity(SIZE)), SIZE);
    randomBytes(SIZE).copy(encoded.data);
    const id = chunkIdOf(encoded.data);
    setPutChunkId(encoded, id);
    const before = framedCounts.requests;
    await api.putChunk({ chunkId: id, data: encoded.data, grant: null, encoded: withRouting(encoded, null, [], []) }, 10_000);
    expect(framedCounts.requests).toBe(before + 1);
    expect(chunkIdOf(stored.get(id)!)).toBe(id);
    expect(receivedPooled).toBe(true);
    expect(forwardableInPlace).toBe(true);
    // Ready for O_DIRECT as it is (durable-file.ts).
    expect(receivedAligned).toBe(true);
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
