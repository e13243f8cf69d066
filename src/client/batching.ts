/**
 * Batching views of the master and the nodes for transfers of many files: the calls that
 * concurrent small-file transfers make in one event-loop turn go out as one batch
 * (1000 files of 4 KiB: a few dozen round trips instead of thousands). Large requests
 * bypass batching, so no batch ever approaches the message size limit.
 */
import { CHUNK_RPC_TIMEOUT_MS } from "../core/limits";
import { Coalescer, unwrapResult } from "../rpc/batch";
import type { ChunkCalls, ChunkPool, MasterApi, StoragePool, TransferMaster } from "../rpc/client";
import type * as m from "../rpc/messages";
import type { PreEncodedPutChunk } from "../rpc/put-chunk-message";

/** Chunks up to this size are batched: larger ones already amortise their round trip. */
export const BATCHED_CHUNK_MAX_BYTES = 256 * 1024;
/**
 * Chunks per PutChunks/GetChunks batch, and bytes: a batch never nears the message limit.
 * 1000 x 4 KiB on 2 cores: 64 per batch took ~190 PutChunks calls, 256 about 20.
 */
const CHUNKS_PER_BATCH = 256;
const BATCH_BYTES = 16 * 1024 * 1024;
/** Manifests and target requests with more chunks than this go alone. */
const BATCHED_MANIFEST_MAX_CHUNKS = 64;

/** Runs `f`, turning a throw into a returned Error (one item's failure, not the batch's). */
function settle<T>(f: () => T): T | Error {
  try {
    return f();
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

/** The master, with RequestPutTargets, AnnounceManifest and GetManifest batched across files. */
export class BatchingMaster implements TransferMaster {
  private readonly peer: string;
  private readonly targets: Coalescer<m.PutTargetsRequest, m.PutTargetsResponse>;
  private readonly commits: Coalescer<m.ManifestRequest, m.ManifestResponse>;
  private readonly manifests: Coalescer<m.GetManifestRequest, m.GetManifestResponse>;

  constructor(private readonly master: MasterApi) {
    this.peer = `master ${master.address}`;
    this.targets = new Coalescer(async (requests) => {
      // One RequestPutTargets already takes many chunks: merge, then hand each caller its share.
      const response = await master.requestPutTargets({ chunks: requests.flatMap((r) => r.chunks) });
      let offset = 0;
      return requests.map((r) => {
        const placements = response.placements.slice(offset, (offset += r.chunks.length));
        return { placements, replication: response.replication };
      });
    });
    this.commits = new Coalescer(async (requests) => {
      const response = await master.announceManifests({ manifests: requests });
      return requests.map((_, i) => settle(() => unwrapResult(response.results[i], this.peer)));
    });
    this.manifests = new Coalescer(async (requests) => {
      const response = await master.getManifests({ requests });
      return requests.map((_, i) => settle(() => unwrapResult(response.results[i], this.peer)));
    });
  }

  requestPutTargets = (r: m.PutTargetsRequest) => (r.chunks.length > BATCHED_MANIFEST_MAX_CHUNKS ? this.master.requestPutTargets(r) : this.targets.submit(r));
  announceManifest = (r: m.ManifestRequest) => (r.chunks.length > BATCHED_MANIFEST_MAX_CHUNKS ? this.master.announceManifest(r) : this.commits.submit(r));
  getManifest = (r: m.GetManifestRequest) => this.manifests.submit(r);
  requestGetTargets = (r: m.GetTargetsRequest) => this.master.requestGetTargets(r);
}

/** One node, with small chunk puts and gets batched. */
class BatchingNode implements ChunkCalls {
  private readonly puts: Coalescer<m.PutChunkRequest, m.PutChunkResponse>;
  private readonly gets: Coalescer<{ request: m.GetChunkRequest; size: number }, m.GetChunkResponse>;

  constructor(
    private readonly node: ReturnType<StoragePool["get"]>,
    peer: string,
  ) {
    this.puts = new Coalescer(async (chunks) => {
      const response = await node.putChunks({ chunks }, CHUNK_RPC_TIMEOUT_MS);
      return chunks.map((_, i) => settle(() => unwrapResult(response.results[i], peer)));
    }, CHUNKS_PER_BATCH, (chunk) => chunk.data.byteLength, BATCH_BYTES);
    this.gets = new Coalescer(async (items) => {
      const response = await node.getChunks({ chunks: items.map((item) => item.request) }, CHUNK_RPC_TIMEOUT_MS);
      return items.map((_, i) => settle(() => unwrapResult(response.results[i], peer)));
    }, CHUNKS_PER_BATCH, (item) => item.size, BATCH_BYTES);
  }

  putChunk = (r: m.PutChunkRequest | PreEncodedPutChunk, timeoutMs: number) =>
    r.data.byteLength <= BATCHED_CHUNK_MAX_BYTES ? this.puts.submit({ chunkId: r.chunkId, data: r.data, grant: r.grant }) : this.node.putChunk(r, timeoutMs);

  getChunk = (r: m.GetChunkRequest, timeoutMs: number, expectedSize?: number) =>
    expectedSize !== undefined && expectedSize <= BATCHED_CHUNK_MAX_BYTES ? this.gets.submit({ request: r, size: expectedSize }) : this.node.getChunk(r, timeoutMs);

  reportMismatch = (chunkId: string) => this.node.reportMismatch(chunkId);
}

/** The node pool, handing out batching views (one per address) over the real channels. */
export class BatchingPool implements ChunkPool {
  private readonly nodes = new Map<string, BatchingNode>();

  constructor(private readonly pool: StoragePool) {}

  get(address: string): ChunkCalls {
    let node = this.nodes.get(address);
    if (!node) {
      node = new BatchingNode(this.pool.get(address), `node ${address}`);
      this.nodes.set(address, node);
    }
    return node;
  }
}

