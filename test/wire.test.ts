/**
 * The copy-saving hooks into grpc-js (src/rpc/framing.ts, src/rpc/receive-buffers.ts) are
 * really on the path a chunk takes: a grpc-js upgrade that routed messages around them would
 * keep every other test green and quietly lose the speed. One process, a real server and
 * client on loopback.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
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
