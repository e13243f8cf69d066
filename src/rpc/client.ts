/** gRPC client plumbing: channel options, typed calls with deadlines, and a pool of node channels. */
import * as grpc from "@grpc/grpc-js";
import "./receive-buffers"; // large received messages land in reused buffers
import "./backoff-clock"; // no time-zone set-up in every call
import { FLOW_CONTROL_WINDOW_BYTES, MISMATCH_REPORT_TIMEOUT_MS, MAX_MESSAGE_BYTES, MAX_POOLED_CHANNELS, METADATA_RPC_TIMEOUT_MS } from "../core/limits";
import { healthClientConstructor, MasterServiceClient, ProcessServiceClient, StorageServiceClient } from "./proto";
import { passThroughPreEncoded, type PreEncodedPutChunk } from "./put-chunk-message";
import type * as m from "./messages";
import { callMetadata } from "./auth";
import { channelCredentials, dialsTls, tlsChannelOptions } from "./tls";
import { ChunkSender, FastPathFailure } from "./chunk-sender";
import { framedBytes } from "./framing";
import { fromServiceError } from "./status";

/** Channel options: whole chunks in both directions, and a wide flow-control window for throughput. */
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
  "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
  "grpc-node.flow_control_window": FLOW_CONTROL_WINDOW_BYTES,
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1000,
};

/** Options for a new channel: the fixed ones plus what TLS needs. */
const channelOptions = (): grpc.ChannelOptions => ({ ...CHANNEL_OPTIONS, ...tlsChannelOptions() });

type AnyClient = grpc.Client & Record<string, Function>;

/** Calls a unary method with a deadline; failures become typed errors naming `address`. */
function callUnary<Req, Res>(client: AnyClient, method: string, request: Req, address: string, timeoutMs: number): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    client[method]!(request, callMetadata(), { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, response: Res) => {
      if (err) reject(fromServiceError(err, address));
      else resolve(response);
    });
  });
}

/** Typed calls to a master. */
export class MasterApi {
  private readonly client: AnyClient;

  constructor(readonly address: string) {
    this.client = new MasterServiceClient(address, channelCredentials(), channelOptions()) as unknown as AnyClient;
  }

  private call<Req, Res>(method: string, request: Req, timeoutMs = METADATA_RPC_TIMEOUT_MS): Promise<Res> {
    return callUnary(this.client, method, request, `master ${this.address}`, timeoutMs);
  }

  registerNode = (r: m.RegisterRequest, timeoutMs?: number) => this.call<m.RegisterRequest, m.RegisterResponse>("RegisterNode", r, timeoutMs);
  heartbeat = (r: m.HeartbeatRequest, timeoutMs?: number) => this.call<m.HeartbeatRequest, m.HeartbeatResponse>("Heartbeat", r, timeoutMs);
  requestPutTargets = (r: m.PutTargetsRequest) => this.call<m.PutTargetsRequest, m.PutTargetsResponse>("RequestPutTargets", r);
  announceManifest = (r: m.ManifestRequest) => this.call<m.ManifestRequest, m.ManifestResponse>("AnnounceManifest", r);
  listFiles = (r: m.ListFilesRequest) => this.call<m.ListFilesRequest, m.ListFilesResponse>("ListFiles", r);
  listManifests = (r: m.ListFilesRequest) => this.call<m.ListFilesRequest, m.ListManifestsResponse>("ListManifests", r);
  getManifest = (r: m.GetManifestRequest) => this.call<m.GetManifestRequest, m.GetManifestResponse>("GetManifest", r);
  announceManifests = (r: m.AnnounceManifestsRequest) => this.call<m.AnnounceManifestsRequest, m.AnnounceManifestsResponse>("AnnounceManifests", r);
  getManifests = (r: m.GetManifestsRequest) => this.call<m.GetManifestsRequest, m.GetManifestsResponse>("GetManifests", r);
  requestGetTargets = (r: m.GetTargetsRequest) => this.call<m.GetTargetsRequest, m.GetTargetsResponse>("RequestGetTargets", r);
  deleteFile = (r: m.DeleteFileRequest) => this.call<m.DeleteFileRequest, m.DeleteFileResponse>("DeleteFile", r);
  getClusterStatus = (timeoutMs?: number) => this.call<object, m.ClusterStatusResponse>("GetClusterStatus", {}, timeoutMs);
  listChunkReplicas = (r: m.ListChunkReplicasRequest) => this.call<m.ListChunkReplicasRequest, m.ListChunkReplicasResponse>("ListChunkReplicas", r);
  requestRepair = (r: m.RequestRepairRequest) => this.call<m.RequestRepairRequest, m.RequestRepairResponse>("RequestRepair", r);

  close() {
    this.client.close();
  }
}

/** The StorageService client, with a PutChunk serializer that accepts pre-encoded requests. */
const StorageServiceFastClient = (() => {
  const definition = { ...(StorageServiceClient.service as grpc.ServiceDefinition) };
  const put = definition.PutChunk!;
  definition.PutChunk = { ...put, requestSerialize: passThroughPreEncoded(put.requestSerialize as (r: m.PutChunkRequest) => Buffer) };
  return grpc.makeGenericClientConstructor(definition, "StorageService");
})();

const PUT_CHUNK = (StorageServiceClient.service as grpc.ServiceDefinition).PutChunk!;
/** Fast-path calls in a row that grpc-js then completed: past this, a node is sent chunks through grpc-js only. */
const FAST_PATH_MISSES_TOLERATED = 3;

/** The token metadata (auth.ts), as header fields. */
function metadataHeaders(): [string, string][] {
  return Object.entries(callMetadata().getMap()).map(([key, value]) => [key, typeof value === "string" ? value : value.toString("base64")]);
}

/** Typed calls to one storage node. */
export class StorageApi {
  private readonly client: AnyClient;
  /** Pre-encoded chunks go this way (chunk-sender.ts); null: over TLS, or turned off. */
  private chunkSender: ChunkSender | null = null;
  private fastPathMisses = 0;

  constructor(readonly address: string) {
    this.client = new StorageServiceFastClient(address, channelCredentials(), channelOptions()) as unknown as AnyClient;
    if (!dialsTls() && process.env.DROPBOX_CHUNK_SENDER !== "grpc-js") this.chunkSender = new ChunkSender(address);
  }

  private call<Req, Res>(method: string, request: Req, timeoutMs: number): Promise<Res> {
    return callUnary(this.client, method, request, `node ${this.address}`, timeoutMs);
  }

  /**
   * Puts a chunk; a pre-encoded request (see put-chunk-message.ts) is sent without re-encoding,
   * in large frames (chunk-sender.ts). What that path cannot complete, grpc-js sends again.
   */
  putChunk = async (r: m.PutChunkRequest | PreEncodedPutChunk, timeoutMs: number): Promise<m.PutChunkResponse> => {
    const viaGrpcJs = (ms: number) => this.call<m.PutChunkRequest | PreEncodedPutChunk, m.PutChunkResponse>("PutChunk", r, ms);
    const sender = this.chunkSender;
    const framed = sender && "encoded" in r ? framedBytes(r.encoded) : undefined;
    if (!sender || !framed) return viaGrpcJs(timeoutMs);
    const started = Date.now();
    try {
      const response = PUT_CHUNK.responseDeserialize(await sender.call(PUT_CHUNK.path, framed, metadataHeaders(), timeoutMs)) as m.PutChunkResponse;
      this.fastPathMisses = 0;
      return response;
    } catch (err) {
      if (!(err instanceof FastPathFailure)) throw err;
    }
    const response = await viaGrpcJs(Math.max(1, timeoutMs - (Date.now() - started)));
    if (++this.fastPathMisses >= FAST_PATH_MISSES_TOLERATED) {
      this.chunkSender?.close();
      this.chunkSender = null;
    }
    return response;
  };
  getChunk = (r: m.GetChunkRequest, timeoutMs: number) => this.call<m.GetChunkRequest, m.GetChunkResponse>("GetChunk", r, timeoutMs);
  putChunks = (r: m.PutChunksRequest, timeoutMs: number) => this.call<m.PutChunksRequest, m.PutChunksResponse>("PutChunks", r, timeoutMs);
  getChunks = (r: m.GetChunksRequest, timeoutMs: number) => this.call<m.GetChunksRequest, m.GetChunksResponse>("GetChunks", r, timeoutMs);
  replicateChunk = (r: m.ReplicateChunkRequest, timeoutMs: number) => this.call<m.ReplicateChunkRequest, m.ReplicateChunkResponse>("ReplicateChunk", r, timeoutMs);
  deleteChunks = (r: m.DeleteChunksRequest, timeoutMs: number) => this.call<m.DeleteChunksRequest, m.DeleteChunksResponse>("DeleteChunks", r, timeoutMs);
  listChunks = (r: m.ListChunksRequest, timeoutMs: number) => this.call<m.ListChunksRequest, m.ListChunksResponse>("ListChunks", r, timeoutMs);
  verifyChunks = (r: m.VerifyChunksRequest, timeoutMs: number) => this.call<m.VerifyChunksRequest, m.VerifyChunksResponse>("VerifyChunks", r, timeoutMs);
  /**
   * Tells the node that the bytes it served for `chunkId` do not match the id. The node re-hashes
   * its copy itself (VerifyChunks) and quarantines it if bad, so no reader can get a good copy
   * dropped. Best effort: the reader has moved on to another replica, and the scrubber would
   * find the copy in time anyway.
   */
  reportMismatch = (chunkId: string): Promise<void> => this.verifyChunks({ chunkIds: [chunkId] }, MISMATCH_REPORT_TIMEOUT_MS).then(() => {}, () => {});

  close() {
    this.client.close();
    this.chunkSender?.close();
  }
}

/** Typed calls to any server's ProcessService (master or node). */
export class ProcessApi {
  private readonly client: AnyClient;

  constructor(readonly address: string) {
    this.client = new ProcessServiceClient(address, channelCredentials(), channelOptions()) as unknown as AnyClient;
  }

  getStats = (timeoutMs: number) => callUnary<object, m.ProcessStats>(this.client, "GetStats", {}, this.address, timeoutMs);

  close() {
    this.client.close();
  }
}

/** The master calls a file transfer makes; a batching view (client/batching.ts) offers the same. */
export type TransferMaster = Pick<MasterApi, "requestPutTargets" | "announceManifest" | "getManifest" | "requestGetTargets">;

/** The node calls a file transfer makes. `expectedSize` lets a batching view keep large chunks out of batches. */
export interface ChunkCalls {
  putChunk: StorageApi["putChunk"];
  getChunk(r: m.GetChunkRequest, timeoutMs: number, expectedSize?: number): Promise<m.GetChunkResponse>;
  reportMismatch: StorageApi["reportMismatch"];
}

/** Where a file transfer finds its nodes. */
export interface ChunkPool {
  get(address: string): ChunkCalls;
}

/**
 * One channel per node address, reused across calls; closing the pool closes them all.
 * At most `capacity` channels stay open: addresses arrive from peers (forward lists,
 * replication sources), so the least recently used channel is closed to make room rather
 * than letting the map grow with every address anyone names.
 */
export class StoragePool {
  private readonly byAddress = new Map<string, StorageApi>();

  constructor(private readonly capacity = MAX_POOLED_CHANNELS) {}

  get(address: string): StorageApi {
    let api = this.byAddress.get(address);
    if (api) {
      // Map order is insertion order: re-inserting marks the channel most recently used.
      this.byAddress.delete(address);
    } else {
      api = new StorageApi(address);
      if (this.byAddress.size >= this.capacity) {
        const [oldest, evicted] = this.byAddress.entries().next().value!;
        this.byAddress.delete(oldest);
        evicted.close();
      }
    }
    this.byAddress.set(address, api);
    return api;
  }

  /** Channels open now. */
  get size() {
    return this.byAddress.size;
  }

  close() {
    for (const api of this.byAddress.values()) api.close();
    this.byAddress.clear();
  }
}

/** Asks a server's standard health service whether it serves; false on any failure. */
export function checkHealth(address: string, timeoutMs: number): Promise<boolean> {
  const HealthClient = healthClientConstructor();
  const client = new HealthClient(address, channelCredentials(), tlsChannelOptions()) as unknown as AnyClient;
  return callUnary<{ service: string }, { status: string }>(client, "Check", { service: "" }, address, timeoutMs)
    .then((r) => r.status === "SERVING")
    .catch(() => false)
    .finally(() => client.close());
}
