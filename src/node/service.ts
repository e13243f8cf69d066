/** StorageService handlers: validate what arrives, then hand it to the chunk store. */
import type * as grpc from "@grpc/grpc-js";
import { formatHostPort } from "../core/address";
import { assertChunkId, chunkIdOf } from "../core/chunk-id";
import { DropboxError, dataLoss, errorMessage, invalidArgument, unavailable } from "../core/errors";
import type { Log } from "../core/log";
import { CHUNK_RPC_TIMEOUT_MS, MAX_CHUNK_IDS_PER_REQUEST, MAX_CHUNK_SIZE_BYTES } from "../core/limits";
import type { StoragePool } from "../rpc/client";
import type * as m from "../rpc/messages";
import { unary } from "../rpc/server";
import type { ChunkStore } from "./chunk-store";

function assertIdList(ids: unknown): string[] {
  if (!Array.isArray(ids) || ids.length > MAX_CHUNK_IDS_PER_REQUEST) throw invalidArgument(`at most ${MAX_CHUNK_IDS_PER_REQUEST} chunk ids per request`);
  return ids.map((id) => assertChunkId(id));
}

/** The StorageService implementation over `store`; `pool` dials peers for replication. */
export function storageService(store: ChunkStore, pool: StoragePool, log: Log): grpc.UntypedServiceImplementation {
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

    ReplicateChunk: unary<m.ReplicateChunkRequest, m.ReplicateChunkResponse>(async (request) => {
      const id = assertChunkId(request.chunkId);
      if (!Array.isArray(request.sources) || request.sources.length === 0 || request.sources.length > 16) throw invalidArgument("1 to 16 sources required");
      const corrupt: string[] = [];
      const failures: string[] = [];
      for (const source of request.sources) {
        try {
          const { data } = await pool.get(formatHostPort(source.host, source.port)).getChunk({ chunkId: id }, CHUNK_RPC_TIMEOUT_MS);
          // The source verified its copy; verify again here, after the network.
          if (chunkIdOf(data) !== id) throw dataLoss(`bytes from ${source.nodeId} do not match the chunk id`);
          await store.put(id, data);
          return { sourceNodeId: source.nodeId, corruptSourceNodeIds: corrupt };
        } catch (err) {
          if (err instanceof DropboxError && err.kind === "DATA_LOSS") corrupt.push(source.nodeId);
          if (err instanceof DropboxError && err.kind === "RESOURCE_EXHAUSTED") throw err;
          failures.push(`${source.nodeId}: ${errorMessage(err)}`);
        }
      }
      throw unavailable(`no source could provide chunk ${id}: ${failures.join("; ")}`);
    }, log),

    DeleteChunks: unary<m.DeleteChunksRequest, m.DeleteChunksResponse>(async (request) => {
      const ids = assertIdList(request.chunkIds);
      const keep = request.keepIfWrittenWithinMs;
      if (!Number.isSafeInteger(keep) || keep < 0) throw invalidArgument("keep_if_written_within_ms must be a non-negative integer");
      const { deleted, kept } = await store.delete(ids, keep);
      if (deleted.length > 0) log(`deleted ${deleted.length} unreferenced chunks`);
      return { deletedChunkIds: deleted, keptChunkIds: kept };
    }, log),

    ListChunks: unary<m.ListChunksRequest, m.ListChunksResponse>(async (request) => {
      const startAfter = request.startAfter ? assertChunkId(request.startAfter) : "";
      const limit = request.limit;
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_CHUNK_IDS_PER_REQUEST) throw invalidArgument(`limit must be 1 to ${MAX_CHUNK_IDS_PER_REQUEST}`);
      return store.list(startAfter, limit);
    }, log),
  };
}
