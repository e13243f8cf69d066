/** Chain replication: pass a chunk on to the next node of the chain, which passes it further. */
import * as grpc from "@grpc/grpc-js";
import { formatHostPort, isHostName, isNodeId } from "../core/address";
import { DropboxError, errorMessage, invalidArgument } from "../core/errors";
import { CHUNK_RPC_TIMEOUT_MS, MAX_REPLICATION } from "../core/limits";
import type { StoragePool } from "../rpc/client";
import { type EncodedPutChunk, withRouting } from "../rpc/put-chunk-message";
import type { ChainFailure, Grant, StorageNode } from "../rpc/messages";


/** Checks a forward list: a few distinct, well-formed node addresses. */
export function assertForwardList(forwardTo: unknown): StorageNode[] {
  if (forwardTo === undefined || forwardTo === null) return [];
  if (!Array.isArray(forwardTo) || forwardTo.length > MAX_REPLICATION - 1) throw invalidArgument(`forward_to holds at most ${MAX_REPLICATION - 1} nodes`);
  const seen = new Set<string>();
  for (const node of forwardTo as StorageNode[]) {
    if (!node || !isHostName(node.host)) throw invalidArgument("forward_to: bad host");
    if (!Number.isInteger(node.port) || node.port < 1 || node.port > 65535) throw invalidArgument("forward_to: port must be 1-65535");
    if (!isNodeId(node.nodeId)) throw invalidArgument("forward_to: bad node id");
    if (seen.has(node.nodeId)) throw invalidArgument(`forward_to names ${node.nodeId} twice`);
    seen.add(node.nodeId);
  }
  return forwardTo as StorageNode[];
}

/**
 * Sends the chunk down the chain; resolves (never rejects) with who stored it and who did not.
 * `received` is the incoming message (receivedPutChunk): when given, its bytes go on with a
 * new routing tail instead of being encoded again.
 */
export async function forwardChunk(pool: StoragePool, chunkId: string, data: Buffer, forwardTo: StorageNode[], forwardGrants: Grant[], received: EncodedPutChunk | null = null): Promise<{ stored: string[]; failures: ChainFailure[] }> {
  const [next, ...rest] = forwardTo;
  if (!next) return { stored: [], failures: [] };
  // Each node's grant travels with the chunk; the next node checks its own.
  const [grant, ...restGrants] = forwardGrants;
  let encoded: Buffer | null = null;
  try {
    if (received) encoded = withRouting(received, grant ?? null, rest, restGrants);
  } catch {
    encoded = null; // the new tail did not fit: encode afresh below
  }
  const request = encoded ? { chunkId, data, grant, encoded } : { chunkId, data, forwardTo: rest, grant, forwardGrants: restGrants };
  try {
    const response = await pool.get(formatHostPort(next.host, next.port)).putChunk(request, CHUNK_RPC_TIMEOUT_MS * (1 + rest.length));
    return { stored: [next.nodeId, ...response.storedNodeIds], failures: response.chainFailures };
  } catch (err) {
    const code =
      err instanceof DropboxError && err.kind === "RESOURCE_EXHAUSTED"
        ? grpc.status.RESOURCE_EXHAUSTED
        : err instanceof DropboxError && err.kind === "PERMISSION_DENIED"
          ? grpc.status.PERMISSION_DENIED
          : grpc.status.UNAVAILABLE;
    // Nodes after the failed one were never tried: they are neither stored nor failed.
    return { stored: [], failures: [{ nodeId: next.nodeId, code, message: errorMessage(err) }] };
  }
}
