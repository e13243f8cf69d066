/** MasterService handlers: validate every request, then consult or change the metadata. */
import type * as grpc from "@grpc/grpc-js";
import { formatHostPort, isHostName, isNodeId } from "../core/address";
import { assertChunkId, contentHashOf } from "../core/chunk-id";
import { DropboxError, failedPrecondition, invalidArgument, notFound } from "../core/errors";
import type { Log } from "../core/log";
import { signGrant } from "../core/grants";
import { type NodeProofOperation, nodeProofProblem } from "../core/node-proof";
import { GRANT_TTL_MS, LIST_MANIFESTS_MAX_FILE_CHUNKS, LIST_PAGE_FILES, MAX_CHUNK_IDS_PER_REQUEST, MAX_CHUNK_SIZE_BYTES, MAX_FILE_CHUNKS, MIN_CHUNK_SIZE_BYTES } from "../core/limits";
import { assertName, assertPrefix } from "../core/names";
import { VERSION } from "../core/version";
import type * as m from "../rpc/messages";
import { batchHandler } from "../rpc/batch";
import { unary } from "../rpc/server";
import type { Metadata, RecordedChunk, StoredManifest } from "./metadata";
import { NodeRegistry, type NodeState } from "./node-registry";
import { pickWeighted } from "./placement";
import type { Repairer } from "./repair";

/** What the master service needs. */
export interface MasterContext {
  metadata: Metadata;
  registry: NodeRegistry;
  repairer: Repairer;
  replication: number;
  minFreeBytes: number;
  startedAtMs: number;
  log: Log;
  /** Handed to registering nodes (who hold the full token), so they accept read-only clients' reads. */
  readTokenDigest?: Buffer;
  /** The secret shared with nodes: placements carry a grant per target signed with it. */
  grantSecret?: Buffer;
}


function assertNodeId(id: unknown): string {
  if (!isNodeId(id)) throw invalidArgument(`node id must be 1-64 letters, digits, '.', '_' or '-'`);
  return id;
}

function assertUsage(r: m.NodeUsage) {
  for (const key of ["capacityBytes", "freeBytes", "usedBytes", "chunkCount"] as const) {
    if (!Number.isSafeInteger(r[key]) || r[key] < 0) throw invalidArgument(`${key} must be a non-negative integer`);
  }
}

function assertChunkSize(size: unknown, what: string): number {
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 1 || size > MAX_CHUNK_SIZE_BYTES) {
    throw invalidArgument(`${what} must be 1 to ${MAX_CHUNK_SIZE_BYTES} bytes`);
  }
  return size;
}

/** Orders replicas live first, spreading reads across live holders. */
function orderReplicas(ctx: MasterContext, nodeIds: string[], nowMs: number): m.StorageNode[] {
  const known = nodeIds.map((id) => ctx.registry.get(id)).filter((n): n is NodeState => n !== undefined);
  const scored = known.map((n) => ({ n, score: (ctx.registry.isAlive(n, nowMs) ? 0 : 2) + Math.random() }));
  scored.sort((a, b) => a.score - b.score);
  return scored.map((s) => NodeRegistry.address(s.n));
}

/** Where a listing page starts and how long it is, validated. */
function listPage(r: m.ListFilesRequest): { prefix: string; startAfter: string; limit: number } {
  const prefix = assertPrefix(r.prefix);
  const startAfter = typeof r.startAfter === "string" ? r.startAfter : "";
  const limit = r.limit && r.limit > 0 ? Math.min(r.limit, LIST_PAGE_FILES) : LIST_PAGE_FILES;
  return { prefix, startAfter, limit };
}

/** Chunks per ListChunkReplicas page: each entry is a few hundred bytes, so a page stays far below the message limit. */
const CHUNK_REPLICAS_PAGE = 5000;

/** The MasterService implementation. */
export function masterService(ctx: MasterContext): grpc.UntypedServiceImplementation {
  const { metadata, registry, repairer, log } = ctx;

  /** A stored manifest as readers get it: each chunk's replicas as addresses, live ones first. */
  const locate = (manifest: StoredManifest, nowMs: number): m.GetManifestResponse => {
    // A chunk a file holds twice is ordered once.
    const ordered = new Map<string, m.StorageNode[]>();
    const chunks = manifest.chunks.map((c) => {
      let replicas = ordered.get(c.chunkId);
      if (!replicas) ordered.set(c.chunkId, (replicas = orderReplicas(ctx, c.nodeIds, nowMs)));
      return { chunkId: c.chunkId, size: c.size, replicas };
    });
    return { file: manifest.file, chunks };
  };

  /** With a node secret, only a node that proves it may register or report for a node id. */
  const checkNodeProof = (operation: NodeProofOperation, nodeId: string, address: string, proof: Uint8Array | undefined) => {
    if (!ctx.grantSecret) return;
    const problem = nodeProofProblem(ctx.grantSecret, operation, nodeId, address, proof);
    if (problem) throw new DropboxError("PERMISSION_DENIED", problem);
  };

  const validateManifest = (r: m.ManifestRequest) => {
    const name = assertName(r.filename);
    if (!Number.isSafeInteger(r.chunkSize) || r.chunkSize < MIN_CHUNK_SIZE_BYTES || r.chunkSize > MAX_CHUNK_SIZE_BYTES) {
      throw invalidArgument(`chunk size must be ${MIN_CHUNK_SIZE_BYTES} to ${MAX_CHUNK_SIZE_BYTES} bytes`);
    }
    if (r.chunks.length > MAX_FILE_CHUNKS) throw invalidArgument(`a file may have at most ${MAX_FILE_CHUNKS} chunks; use a larger --chunk-size`);
    let total = 0;
    r.chunks.forEach((chunk, index) => {
      assertChunkId(chunk.chunkId);
      assertChunkSize(chunk.size, "chunk size");
      const last = index === r.chunks.length - 1;
      if (last ? chunk.size > r.chunkSize : chunk.size !== r.chunkSize) throw invalidArgument(`chunk ${index} has size ${chunk.size}, which does not fit chunk size ${r.chunkSize}`);
      const recorded = metadata.chunkSize(chunk.chunkId);
      if (recorded !== null && recorded !== chunk.size) throw invalidArgument(`chunk ${chunk.chunkId} is ${recorded} bytes, not ${chunk.size}`);
      total += chunk.size;
    });
    if (total !== r.size) throw invalidArgument(`chunk sizes add up to ${total} bytes, not the file size ${r.size}`);
    const expectedHash = contentHashOf(r.chunks.map((c) => c.chunkId));
    if (r.contentHash !== expectedHash) throw invalidArgument("content hash does not match the chunk list");
    const inFile = new Set(r.chunks.map((c) => c.chunkId));
    const stored = new Map<string, string[]>();
    for (const entry of r.stored) {
      assertChunkId(entry.chunkId);
      if (!inFile.has(entry.chunkId)) throw invalidArgument(`stored chunk ${entry.chunkId} is not part of the file`);
      for (const nodeId of entry.nodeIds) if (!registry.get(nodeId)) throw invalidArgument(`unknown node ${JSON.stringify(nodeId)}`);
      stored.set(entry.chunkId, [...new Set([...(stored.get(entry.chunkId) ?? []), ...entry.nodeIds])]);
    }
    return { name, stored };
  };

  const handlers: grpc.UntypedServiceImplementation = {
    RegisterNode: unary<m.RegisterRequest, m.RegisterResponse>((r) => {
      const id = assertNodeId(r.nodeId);
      if (!isHostName(r.host)) throw invalidArgument("host must be a hostname or IP address");
      if (!Number.isInteger(r.port) || r.port < 1 || r.port > 65535) throw invalidArgument("port must be 1-65535");
      assertUsage(r);
      checkNodeProof("register", id, formatHostPort(r.host, r.port), r.nodeProof);
      registry.register(id, r.host, r.port, r, Date.now());
      log(`node ${id} registered at ${r.host}:${r.port}`);
      repairer.onNodeRegistered(id);
      return { status: "OK", heartbeatIntervalMs: 0, readTokenSha256: ctx.readTokenDigest ?? Buffer.alloc(0) };
    }, log),

    Heartbeat: unary<m.HeartbeatRequest, m.HeartbeatResponse>((r) => {
      const id = assertNodeId(r.nodeId);
      assertUsage(r);
      checkNodeProof("heartbeat", id, "", r.nodeProof);
      const lost = r.lostChunkIds ?? [];
      if (lost.length > MAX_CHUNK_IDS_PER_REQUEST) throw invalidArgument(`at most ${MAX_CHUNK_IDS_PER_REQUEST} lost chunk ids per heartbeat`);
      lost.forEach((chunkId) => assertChunkId(chunkId));
      const known = registry.heartbeat(id, r, Date.now());
      if (known) repairer.onLost(id, lost);
      return { known };
    }, log),

    RequestPutTargets: unary<m.PutTargetsRequest, m.PutTargetsResponse>((r) => {
      if (r.chunks.length > MAX_FILE_CHUNKS) throw invalidArgument(`at most ${MAX_FILE_CHUNKS} chunks per request`);
      const now = Date.now();
      const live = registry.live(now);
      const liveIds = new Set(live.map((n) => n.id));
      const roomy = live.filter((n) => n.capacityBytes === 0 || n.freeBytes >= ctx.minFreeBytes);
      const known = metadata.replicasOf(r.chunks.map((c) => assertChunkId(c.chunkId)));
      const placements = r.chunks.map((want): m.Placement => {
        assertChunkSize(want.size, "chunk size");
        const existing = (known.get(want.chunkId) ?? []).filter((id) => liveIds.has(id));
        const holders = new Set([...existing, ...(want.holderNodeIds ?? [])]);
        const needed = ctx.replication - holders.size;
        if (needed <= 0) return { chunkId: want.chunkId, targets: [], existingNodeIds: existing };
        const excluded = new Set(want.excludeNodeIds ?? []);
        const candidates = roomy.filter((n) => !holders.has(n.id) && !excluded.has(n.id));
        if (candidates.length < needed) {
          throw failedPrecondition(
            `cannot place chunk on ${ctx.replication} nodes: ${live.length} live node(s), ${roomy.length} with free space, ${holders.size} already holding it, ${excluded.size} failed`,
          );
        }
        const chosen = pickWeighted(candidates, needed).map((c) => NodeRegistry.address(registry.get(c.id)!));
        const secret = ctx.grantSecret;
        const grants = secret ? chosen.map((t) => signGrant(secret, "put", want.chunkId, t.nodeId, now, GRANT_TTL_MS)) : [];
        return { chunkId: want.chunkId, targets: chosen, existingNodeIds: existing, grants };
      });
      return { placements, replication: ctx.replication };
    }, log),

    AnnounceManifest: unary<m.ManifestRequest, m.ManifestResponse>((r) => {
      const { name, stored } = validateManifest(r);
      const result = metadata.commit({ name, size: r.size, chunkSize: r.chunkSize, contentHash: r.contentHash, chunks: r.chunks, stored }, Date.now());
      if (result.missing) {
        log(`commit of ${name} deferred: ${result.missing.length} chunks have no replica (collected meanwhile?); the client will resend them`);
        return { status: "MISSING_CHUNKS", missingChunkIds: result.missing, file: null };
      }
      repairer.markDirty();
      log(`committed ${name} (${r.size} bytes, ${r.chunks.length} chunks)`);
      return { status: "OK", missingChunkIds: [], file: result.file };
    }, log),

    ListFiles: unary<m.ListFilesRequest, m.ListFilesResponse>((r) => {
      const { prefix, startAfter, limit } = listPage(r);
      return metadata.listFiles(prefix, startAfter, limit);
    }, log),

    GetManifest: unary<m.GetManifestRequest, m.GetManifestResponse>((r) => {
      const name = assertName(r.filename);
      const manifest = metadata.manifest(name);
      if (!manifest) throw notFound(`no such file: ${name}`);
      return locate(manifest, Date.now());
    }, log),

    ListManifests: unary<m.ListFilesRequest, m.ListManifestsResponse>((r) => {
      const { prefix, startAfter, limit } = listPage(r);
      const page = metadata.listManifests(prefix, startAfter, limit, LIST_MANIFESTS_MAX_FILE_CHUNKS);
      const now = Date.now();
      return { manifests: page.manifests.map((manifest) => locate(manifest, now)), truncated: page.truncated };
    }, log),

    RequestGetTargets: unary<m.GetTargetsRequest, m.GetTargetsResponse>((r) => {
      if (r.chunkIds.length > MAX_FILE_CHUNKS) throw invalidArgument(`at most ${MAX_FILE_CHUNKS} chunks per request`);
      const ids = r.chunkIds.map((id) => assertChunkId(id));
      const replicas = metadata.replicasOf(ids);
      const now = Date.now();
      return {
        chunks: ids.map((id) => ({ chunkId: id, size: metadata.chunkSize(id) ?? 0, replicas: orderReplicas(ctx, replicas.get(id) ?? [], now) })),
      };
    }, log),

    DeleteFile: unary<m.DeleteFileRequest, m.DeleteFileResponse>((r) => {
      const name = assertName(r.filename);
      const file = metadata.deleteFile(name, Date.now());
      if (!file) throw notFound(`no such file: ${name}`);
      repairer.markDirty();
      log(`deleted ${name}`);
      return { file };
    }, log),

    ListChunkReplicas: unary<m.ListChunkReplicasRequest, m.ListChunkReplicasResponse>((r) => {
      const ids = r.chunkIds ?? [];
      if (ids.length > MAX_CHUNK_IDS_PER_REQUEST) throw invalidArgument(`at most ${MAX_CHUNK_IDS_PER_REQUEST} chunk ids per request`);
      const now = Date.now();
      const withLiveness = (c: RecordedChunk): m.ChunkReplicas => ({
        ...c,
        liveReplicas: c.nodeIds.filter((id) => {
          const node = registry.get(id);
          return node !== undefined && registry.isAlive(node, now);
        }).length,
      });
      if (ids.length > 0) return { chunks: metadata.chunkReplicasOf(ids.map((id) => assertChunkId(id))).map(withLiveness), truncated: false };
      const startAfter = r.startAfter ? assertChunkId(r.startAfter) : "";
      const limit = r.limit && r.limit > 0 ? Math.min(r.limit, CHUNK_REPLICAS_PAGE) : CHUNK_REPLICAS_PAGE;
      const page = metadata.chunkReplicasPage(startAfter, limit);
      return { chunks: page.chunks.map(withLiveness), truncated: page.truncated };
    }, log),

    RequestRepair: unary<m.RequestRepairRequest, m.RequestRepairResponse>((r) => {
      const bad = r.badReplicas ?? [];
      const nodes = r.reconcileNodeIds ?? [];
      if (bad.length > MAX_CHUNK_IDS_PER_REQUEST || nodes.length > MAX_CHUNK_IDS_PER_REQUEST) throw invalidArgument(`at most ${MAX_CHUNK_IDS_PER_REQUEST} entries per request`);
      const replicas = bad.map((b) => ({ chunkId: assertChunkId(b.chunkId), nodeId: assertNodeId(b.nodeId) }));
      const known = nodes.map((id) => assertNodeId(id)).filter((id) => registry.get(id) !== undefined);
      const replicasForgotten = repairer.forget(replicas);
      for (const id of known) repairer.reinventory(id);
      return { replicasForgotten, nodesReconciled: known.length };
    }, log),

    GetClusterStatus: unary<object, m.ClusterStatusResponse>(() => {
      const now = Date.now();
      const nodes = registry.all().map((n) => ({
        node: NodeRegistry.address(n),
        alive: registry.isAlive(n, now),
        lastHeartbeatMs: n.lastHeartbeatMs,
        registeredAtMs: n.registeredAtMs,
        capacityBytes: n.capacityBytes,
        freeBytes: n.freeBytes,
        usedBytes: n.usedBytes,
        chunkCount: n.chunkCount,
      }));
      const counts = metadata.counts();
      const repair = repairer.status();
      return {
        nodes,
        replication: ctx.replication,
        fileCount: counts.files,
        chunkCount: counts.chunks,
        underReplicatedChunks: repair.underReplicatedChunks + repair.unavailableChunks,
        masterStartedAtMs: ctx.startedAtMs,
        version: VERSION,
        repair,
      };
    }, log),
  };
  // Batches run each item through the single-item handler: same validation, per-item results.
  // One transaction around the whole batch: each commit becomes a savepoint, and the batch costs one fsync.
  handlers.AnnounceManifests = batchHandler(handlers.AnnounceManifest, "manifests", log, (dispatch) => metadata.inTransaction(dispatch));
  handlers.GetManifests = batchHandler(handlers.GetManifest, "requests", log);
  return handlers;
}
