/** StorageService handlers: validate what arrives, then hand it to the chunk store. */
import type * as grpc from "@grpc/grpc-js";
import { formatHostPort, isHostName } from "../core/address";
import { assertChunkId, chunkIdOfAsync } from "../core/chunk-id";
import { DropboxError, dataLoss, errorMessage, invalidArgument, unavailable } from "../core/errors";
import type { Log } from "../core/log";
import { CHUNK_RPC_TIMEOUT_MS, MAX_CHUNK_IDS_PER_REQUEST, MAX_CHUNK_SIZE_BYTES } from "../core/limits";
import type { StoragePool } from "../rpc/client";
import type * as m from "../rpc/messages";
import { batchHandler } from "../rpc/batch";
import { GET_CHUNK_HEADROOM_BYTES, getChunkResponse } from "../rpc/get-chunk-message";
import { receivedPutChunk } from "../rpc/put-chunk-message";
import { releaseReceived } from "../rpc/receive-buffers";
import { rpcCounters, unary } from "../rpc/server";
import { assertForwardList, forwardChunk } from "./chain";
import type { ChunkStore } from "./chunk-store";
import { type GrantOperation, grantProblem, listSubject, type SignedGrant } from "../core/grants";

/** The word a put takes for bytes already checked against their id. */
const VERIFIED = Promise.resolve(true);
/** Bytes one VerifyChunks call re-reads before it returns: at disk speed this ends well inside the chunk deadline. */
const VERIFY_CALL_BYTES = 256 * 1024 * 1024;
/** Chunks one VerifyChunks call examines at most: bounds the response. */
const VERIFY_CALL_CHUNKS = 1000;


function assertIdList(ids: unknown): string[] {
  if (!Array.isArray(ids) || ids.length > MAX_CHUNK_IDS_PER_REQUEST) throw invalidArgument(`at most ${MAX_CHUNK_IDS_PER_REQUEST} chunk ids per request`);
  return ids.map((id) => assertChunkId(id));
}

/** The StorageService implementation over `store`; `pool` dials peers for replication. */
/** Who this node is, and the secret it checks the master's grants with (none: writes need no grant). */
export interface NodeIdentity {
  nodeId: string;
  grantSecret?: Buffer;
}

/** The StorageService implementation over `store`; `pool` dials peers for forwarding and replication. */
export function storageService(store: ChunkStore, pool: StoragePool, log: Log, identity: NodeIdentity): grpc.UntypedServiceImplementation {
  /** Refuses a write the master did not grant to this node. */
  const checkGrant = (operation: GrantOperation, subject: string, grant: SignedGrant | null | undefined) => {
    if (!identity.grantSecret) return;
    const problem = grantProblem(identity.grantSecret, operation, subject, identity.nodeId, grant, Date.now());
    if (problem) throw new DropboxError("PERMISSION_DENIED", problem);
  };
  const handlers: grpc.UntypedServiceImplementation = {
    PutChunk: unary<m.PutChunkRequest, m.PutChunkResponse>(async (request) => {
      const id = assertChunkId(request.chunkId);
      if (!request.data || request.data.byteLength > MAX_CHUNK_SIZE_BYTES) throw invalidArgument(`chunk must be 1 byte to ${MAX_CHUNK_SIZE_BYTES} bytes`);
      // A view of the received bytes, not a copy: the chain passes those very bytes on.
      const data = Buffer.from(request.data.buffer, request.data.byteOffset, request.data.byteLength);
      rpcCounters.bytesIn += data.byteLength;
      const forwardTo = assertForwardList(request.forwardTo);
      checkGrant("put", id, request.grant);
      // Store here and pass the chunk on at the same time; the next node checks its grant and the bytes too.
      const received = forwardTo.length > 0 ? receivedPutChunk(id, data) : null;
      const forwarded = forwardChunk(pool, id, data, forwardTo, request.forwardGrants ?? [], received);
      // The next node stored these very bytes only if they hash to the id: its word is the check here.
      const vouched = forwardTo.length > 0 ? forwarded.then((c) => c.stored.length > 0) : undefined;
      const [alreadyPresent, chain] = await Promise.all([store.put(id, data, vouched), forwarded]);
      if (forwardTo.length > 0) rpcCounters.bytesOut += data.byteLength;
      // On disk and passed on: the next chunk may land in this buffer. After a failed forward a
      // send of these bytes might still be queued, so the buffer is left to the collector.
      if (chain.failures.length === 0) releaseReceived(data);
      return { status: "OK", alreadyPresent, storedNodeIds: chain.stored, chainFailures: chain.failures };
    }, log),

    GetChunk: unary<m.GetChunkRequest, m.GetChunkResponse>(async (request) => {
      // Read with room in front, so the bytes from disk go out with no copy (get-chunk-message.ts).
      const data = await store.get(assertChunkId(request.chunkId), GET_CHUNK_HEADROOM_BYTES);
      rpcCounters.bytesOut += data.byteLength;
      return getChunkResponse(data);
    }, log),

    ReplicateChunk: unary<m.ReplicateChunkRequest, m.ReplicateChunkResponse>(async (request) => {
      const id = assertChunkId(request.chunkId);
      if (!Array.isArray(request.sources) || request.sources.length === 0 || request.sources.length > 16) throw invalidArgument("1 to 16 sources required");
      checkGrant("replicate", id, request.grant);
      // Every source is dialled (and its channel kept): only plausible addresses get that far.
      for (const source of request.sources) {
        if (!isHostName(source.host)) throw invalidArgument("source host must be a hostname or IP address");
        if (!Number.isInteger(source.port) || source.port < 1 || source.port > 65535) throw invalidArgument("source port must be 1-65535");
      }
      const corrupt: string[] = [];
      const failures: string[] = [];
      for (const source of request.sources) {
        try {
          const sourceNode = pool.get(formatHostPort(source.host, source.port));
          const { data } = await sourceNode.getChunk({ chunkId: id }, CHUNK_RPC_TIMEOUT_MS);
          rpcCounters.bytesIn += data.byteLength;
          // Sources serve what they stored unchecked: this is the check.
          if ((await chunkIdOfAsync(data)) !== id) {
            await sourceNode.reportMismatch(id);
            throw dataLoss(`bytes from ${source.nodeId} do not match the chunk id`);
          }
          // Hashed just above: the store need not hash them again.
          await store.put(id, data, VERIFIED);
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
      checkGrant("delete", listSubject(ids), request.grant);
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

    VerifyChunks: unary<m.VerifyChunksRequest, m.VerifyChunksResponse>(async (request) => {
      const named = request.chunkIds ?? [];
      if (named.length > VERIFY_CALL_CHUNKS) throw invalidArgument(`at most ${VERIFY_CALL_CHUNKS} chunk ids per request`);
      let ids: string[];
      let more = false;
      if (named.length > 0) ids = named.map((id) => assertChunkId(id));
      else {
        const startAfter = request.startAfter ? assertChunkId(request.startAfter) : "";
        const limit = request.limit;
        if (!Number.isInteger(limit) || limit! < 1 || limit! > VERIFY_CALL_CHUNKS) throw invalidArgument(`limit must be 1 to ${VERIFY_CALL_CHUNKS}`);
        const page = await store.list(startAfter, limit!);
        ids = page.chunks.map((c) => c.chunkId);
        more = page.truncated;
      }
      const verdicts: m.ChunkVerdict[] = [];
      let bytes = 0;
      for (const id of ids) {
        if (bytes >= VERIFY_CALL_BYTES) {
          more = true;
          break;
        }
        try {
          const size = await store.verify(id);
          verdicts.push({ chunkId: id, size: size ?? 0, state: size === null ? "missing" : "ok" });
          bytes += size ?? 0;
        } catch (err) {
          if (!(err instanceof DropboxError && err.kind === "DATA_LOSS")) throw err;
          verdicts.push({ chunkId: id, size: 0, state: "corrupt" });
        }
      }
      return { chunks: verdicts, truncated: more };
    }, log),
  };
  // Batches run each item through the single-item handler: same validation, per-item results.
  handlers.PutChunks = batchHandler(handlers.PutChunk, "chunks", log);
  handlers.GetChunks = batchHandler(handlers.GetChunk, "chunks", log);
  return handlers;
}
