/** TypeScript shapes of proto/dropbox.proto messages as proto-loader decodes them (camelCase, int64 as number). */

export interface Grant {
  expiresAtMs: number;
  mac: Buffer;
}
export interface StorageNode {
  host: string;
  port: number;
  nodeId: string;
}
export interface ChunkRef {
  chunkId: string;
  size: number;
}
export interface FileInfo {
  name: string;
  size: number;
  chunkCount: number;
  chunkSize: number;
  contentHash: string;
  createdAtMs: number;
}
export interface NodeUsage {
  capacityBytes: number;
  freeBytes: number;
  usedBytes: number;
  chunkCount: number;
}
export interface RegisterRequest extends NodeUsage {
  nodeId: string;
  host: string;
  port: number;
  version: string;
  /** With a node secret: core/node-proof.ts. */
  nodeProof?: Buffer;
}
export interface RegisterResponse {
  status: string;
  heartbeatIntervalMs: number;
  readTokenSha256?: Buffer;
}
export interface HeartbeatRequest extends NodeUsage {
  nodeId: string;
  lostChunkIds: string[];
  /** With a node secret: core/node-proof.ts. */
  nodeProof?: Buffer;
}
export interface HeartbeatResponse {
  known: boolean;
}
export interface PutTargetsWant {
  chunkId: string;
  size: number;
  excludeNodeIds?: string[];
  holderNodeIds?: string[];
}
export interface PutTargetsRequest {
  chunks: PutTargetsWant[];
}
export interface Placement {
  chunkId: string;
  targets: StorageNode[];
  existingNodeIds: string[];
  grants?: Grant[];
}
export interface PutTargetsResponse {
  placements: Placement[];
  replication: number;
}
export interface StoredChunk {
  chunkId: string;
  nodeIds: string[];
}
export interface ManifestRequest {
  filename: string;
  size: number;
  chunkSize: number;
  contentHash: string;
  chunks: ChunkRef[];
  stored: StoredChunk[];
}
export interface ManifestResponse {
  status: string;
  missingChunkIds: string[];
  file: FileInfo | null;
}
export interface ListFilesRequest {
  prefix?: string;
  startAfter?: string;
  limit?: number;
}
export interface ListFilesResponse {
  files: FileInfo[];
  truncated: boolean;
}
export interface GetManifestRequest {
  filename: string;
}
export interface ChunkLocation {
  chunkId: string;
  size: number;
  replicas: StorageNode[];
}
export interface GetManifestResponse {
  file: FileInfo | null;
  chunks: ChunkLocation[];
}
export interface ListManifestsResponse {
  manifests: GetManifestResponse[];
  truncated: boolean;
}
export interface GetTargetsRequest {
  chunkIds: string[];
}
export interface GetTargetsResponse {
  chunks: ChunkLocation[];
}
export interface DeleteFileRequest {
  filename: string;
}
export interface DeleteFileResponse {
  file: FileInfo | null;
}
export interface RepairStatus {
  underReplicatedChunks: number;
  unavailableChunks: number;
  overReplicatedChunks: number;
  repairsInProgress: number;
  repairsCompleted: number;
  repairsFailed: number;
  replicasTrimmed: number;
  gcPendingChunks: number;
  gcCollectedChunks: number;
}
export interface NodeStatus extends NodeUsage {
  node: StorageNode | null;
  alive: boolean;
  lastHeartbeatMs: number;
  registeredAtMs: number;
}
export interface ClusterStatusResponse {
  nodes: NodeStatus[];
  replication: number;
  fileCount: number;
  chunkCount: number;
  underReplicatedChunks: number;
  masterStartedAtMs: number;
  version: string;
  repair: RepairStatus | null;
}
export interface PutChunkRequest {
  chunkId: string;
  data: Uint8Array;
  forwardTo?: StorageNode[];
  grant?: Grant | null;
  forwardGrants?: Grant[];
}
export interface ChainFailure {
  nodeId: string;
  code: number;
  message: string;
}
export interface PutChunkResponse {
  status: string;
  alreadyPresent: boolean;
  storedNodeIds: string[];
  chainFailures: ChainFailure[];
}
export interface GetChunkRequest {
  chunkId: string;
}
export interface GetChunkResponse {
  data: Buffer;
}
export interface ReplicateChunkRequest {
  chunkId: string;
  sources: StorageNode[];
  grant?: Grant | null;
}
export interface ReplicateChunkResponse {
  sourceNodeId: string;
  corruptSourceNodeIds: string[];
}
export interface DeleteChunksRequest {
  chunkIds: string[];
  keepIfWrittenWithinMs: number;
  grant?: Grant | null;
}
export interface DeleteChunksResponse {
  deletedChunkIds: string[];
  keptChunkIds: string[];
}
export interface ListChunksRequest {
  startAfter: string;
  limit: number;
}
export interface ListChunksResponse {
  chunks: ChunkRef[];
  truncated: boolean;
}
export interface ChunkReplicas {
  chunkId: string;
  size: number;
  nodeIds: string[];
  liveReplicas: number;
  references: number;
}
export interface ListChunkReplicasRequest {
  chunkIds?: string[];
  startAfter?: string;
  limit?: number;
}
export interface ListChunkReplicasResponse {
  chunks: ChunkReplicas[];
  truncated: boolean;
}
export interface ReplicaRef {
  chunkId: string;
  nodeId: string;
}
export interface RequestRepairRequest {
  badReplicas: ReplicaRef[];
  reconcileNodeIds: string[];
}
export interface RequestRepairResponse {
  replicasForgotten: number;
  nodesReconciled: number;
}
export interface VerifyChunksRequest {
  chunkIds?: string[];
  startAfter?: string;
  limit?: number;
}
/** ok, corrupt (now quarantined) or missing. */
export type ChunkState = "ok" | "corrupt" | "missing";
export interface ChunkVerdict {
  chunkId: string;
  size: number;
  state: ChunkState;
}
export interface VerifyChunksResponse {
  chunks: ChunkVerdict[];
  truncated: boolean;
}
export interface ProcessStats {
  role: string;
  id: string;
  pid: number;
  version: string;
  startedAtMs: number;
  uptimeMs: number;
  cpuMicros: number;
  rssBytes: number;
  rpcCalls: number;
  rpcErrors: number;
  bytesIn: number;
  bytesOut: number;
  chunkCount: number;
  usedBytes: number;
  freeBytes: number;
  capacityBytes: number;
  dataDir: string;
  sampledAtMs: number;
}
/** One item's outcome in a batch: its response, or the status it failed with. */
export interface BatchResult<Res> {
  response: Res | null;
  error: { code: number; message: string } | null;
}
export interface AnnounceManifestsRequest {
  manifests: ManifestRequest[];
}
export interface AnnounceManifestsResponse {
  results: BatchResult<ManifestResponse>[];
}
export interface GetManifestsRequest {
  requests: GetManifestRequest[];
}
export interface GetManifestsResponse {
  results: BatchResult<GetManifestResponse>[];
}
export interface PutChunksRequest {
  chunks: PutChunkRequest[];
}
export interface PutChunksResponse {
  results: BatchResult<PutChunkResponse>[];
}
export interface GetChunksRequest {
  chunks: GetChunkRequest[];
}
export interface GetChunksResponse {
  results: BatchResult<GetChunkResponse>[];
}
