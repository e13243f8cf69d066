/** StorageService handlers: validate what arrives, then hand it to the chunk store. */
import type * as grpc from "@grpc/grpc-js";
import { assertChunkId } from "../core/chunk-id";
import { invalidArgument } from "../core/errors";
import type { Log } from "../core/log";
import { MAX_CHUNK_SIZE_BYTES } from "../core/limits";
import type * as m from "../rpc/messages";
import { unary } from "../rpc/server";
import type { ChunkStore } from "./chunk-store";

/** The StorageService implementation over `store`. */
export function storageService(store: ChunkStore, log: Log): grpc.UntypedServiceImplementation {
  return {
    PutChunk: unary<m.PutChunkRequest, m.PutChunkResponse>(async (request) => {
      const id = assertChunkId(request.chunkId);
      const data = request.data;
      if (!data || data.byteLength > MAX_CHUNK_SIZE_BYTES) throw invalidArgument(`chunk must be 1 byte to ${MAX_CHUNK_SIZE_BYTES} bytes`);
      const alreadyPresent = await store.put(id, data);
      return { status: "OK", alreadyPresent };
    }, log),
    GetChunk: unary<m.GetChunkRequest, m.GetChunkResponse>(async (request) => {
      return { data: await store.get(assertChunkId(request.chunkId)) };
    }, log),
  };
}
