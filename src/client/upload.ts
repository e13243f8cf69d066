/**
 * Uploading one file: read it chunk by chunk, hash, ask the master where each batch
 * goes, write every chunk to its targets in parallel, then commit the manifest.
 * Memory is bounded by the in-flight budget, never by the file size.
 */
import { open, type FileHandle } from "node:fs/promises";
import { formatHostPort } from "../core/address";
import { chunkIdOf, chunkIdOfAsync, contentHashOf, hashedOffThread } from "../core/chunk-id";
import { DropboxError, errorMessage, invalidArgument, unavailable } from "../core/errors";
import { CHAIN_REPLICATION_MIN_CHUNK_BYTES, CHUNK_RPC_TIMEOUT_MS, CLIENT_INFLIGHT_BUDGET_BYTES, MAX_CHUNK_SIZE_BYTES, MAX_FILE_CHUNKS, MIN_CHUNK_SIZE_BYTES, PUT_RETRY_ATTEMPTS, PUT_TARGETS_BATCH_CHUNKS } from "../core/limits";
import { assertName } from "../core/names";
import { readFully } from "../core/positioned-io";
import { Semaphore } from "../core/semaphore";
import { allocShared } from "../core/sha256-worker";
import { type EncodedPutChunk, layoutPutChunk, putChunkMessageCapacity, setPutChunkId, withRouting } from "../rpc/put-chunk-message";
import type { ChunkPool, TransferMaster } from "../rpc/client";
import type { ChunkRef, FileInfo, Grant, Placement, StorageNode } from "../rpc/messages";

/** What to upload, and where. */
export interface UploadOptions {
  master: TransferMaster;
  pool: ChunkPool;
  path: string;
  name: string;
  chunkSize: number;
  /** The file's size when it was listed, if known: a small file is then read whole at once. */
  expectedSize?: number;
  /** Called with the bytes read and hashed so far. */
  onProgress?: (bytes: number) => void;
}

/** What an upload did. */
export interface UploadResult {
  file: FileInfo;
  /** Chunk copies written to nodes. */
  chunksWritten: number;
  /** Distinct chunks the cluster already held enough copies of. */
  chunksDeduplicated: number;
  /**
   * Copies that failed on a target and were written elsewhere, plus chunks sent again because
   * they vanished before the commit. 0 on a healthy cluster: anything else is worth a look.
   */
  retries: number;
}

interface Chunk {
  id: string;
  data: Buffer;
  /** The PutChunk message that holds `data`, sent without re-encoding. */
  message?: EncodedPutChunk;
}

/** What one send did at each target: stored, failed (with the error), or never tried. */
type SendOutcome = { stored: true } | { stored: false; error: unknown } | { stored: false; untried: true };

/** Commit attempts when chunks vanish between placement and commit (concurrent delete and GC). */
const COMMIT_ATTEMPTS = 3;

const addressOf = (node: StorageNode) => formatHostPort(node.host, node.port);

/** Checks a chunk size against the limits. */
export function assertUploadChunkSize(size: number): number {
  if (!Number.isInteger(size) || size < MIN_CHUNK_SIZE_BYTES || size > MAX_CHUNK_SIZE_BYTES) {
    throw invalidArgument(`--chunk-size must be between 64KiB and 64MiB, got ${size} bytes`);
  }
  return size;
}

/** Files under this size are read whole, in one task that opens, reads and closes them. */
const READ_WHOLE_BELOW_BYTES = 256 * 1024;

/** Where an upload reads its file: all of it read at once (small files), or an open handle. */
interface Source {
  size: number;
  /** Fills `data` from the file at `offset`. */
  readInto(data: Buffer, offset: number): Promise<Buffer>;
  /** Lets go of the file (again: a no-op). */
  close(): Promise<void>;
}

/**
 * Opens `path` for reading. A file listed as small is read whole in one step: a thousand small
 * files in flight to the cluster then hold no descriptors (each held one until its upload was
 * done, and 512 of them under a 256-descriptor limit, macOS's default, failed with EMFILE).
 */
async function openSource(path: string, expectedSize: number | undefined): Promise<Source> {
  if (expectedSize !== undefined && expectedSize < READ_WHOLE_BELOW_BYTES) {
    // Never more than the line: a file that grew since it was listed is not read whole.
    const whole = Buffer.from(await Bun.file(path).slice(0, READ_WHOLE_BELOW_BYTES).arrayBuffer());
    // Grown to the line or past it: read through a handle like a large file.
    if (whole.byteLength < READ_WHOLE_BELOW_BYTES) {
      return {
        size: whole.byteLength,
        readInto: async (data, offset) => {
          whole.copy(data, 0, offset, offset + data.byteLength);
          return data;
        },
        close: async () => {},
      };
    }
  }
  const handle = await open(path, "r");
  let closed: Promise<void> | null = null;
  try {
    return { size: (await handle.stat()).size, readInto: (data, offset) => readInto(handle, data, offset, path), close: () => (closed ??= handle.close()) };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

async function readChunk(source: Source, offset: number, length: number): Promise<Buffer> {
  return source.readInto(Buffer.allocUnsafe(length), offset);
}

/** Fills `data` from the file at `offset`. */
async function readInto(handle: FileHandle, data: Buffer, offset: number, path: string): Promise<Buffer> {
  if ((await readFully(handle, data, offset)) < data.byteLength) throw invalidArgument(`${path} shrank while it was being uploaded`);
  return data;
}

/** One upload's state: where chunks went and what it cost. */
class Upload {
  /** chunk id -> nodes this upload wrote it to (each verified the bytes). */
  readonly stored = new Map<string, string[]>();
  chunksWritten = 0;
  chunksDeduplicated = 0;
  retries = 0;

  constructor(
    private readonly master: TransferMaster,
    private readonly pool: ChunkPool,
  ) {}

  /** Writes `chunk` to the placement's targets, replacing failed targets until enough nodes hold it. */
  async place(chunk: Chunk, placement: Placement): Promise<void> {
    let targets = placement.targets;
    if (targets.length === 0) {
      this.chunksDeduplicated++;
      return;
    }
    const holders = [...placement.existingNodeIds];
    const excluded: string[] = [];
    // The master's grant for each target (when the cluster signs writes), kept across retries.
    const grants = new Map<string, Grant>();
    const noteGrants = (p: Placement) => p.targets.forEach((t, i) => p.grants?.[i] && grants.set(t.nodeId, p.grants[i]!));
    noteGrants(placement);
    for (let attempt = 0; ; attempt++) {
      const outcomes = await this.send(chunk, targets, grants);
      let lastError = "";
      for (const target of targets) {
        const outcome = outcomes.get(target.nodeId)!;
        if (outcome.stored) {
          holders.push(target.nodeId);
          this.stored.set(chunk.id, [...(this.stored.get(chunk.id) ?? []), target.nodeId]);
          this.chunksWritten++;
        } else if ("error" in outcome) {
          // A node rejecting our bytes as not matching their id means this client is broken: stop.
          if (outcome.error instanceof DropboxError && outcome.error.kind === "INVALID_ARGUMENT") throw outcome.error;
          excluded.push(target.nodeId);
          lastError = `${target.nodeId} (${addressOf(target)}): ${errorMessage(outcome.error)}`;
        }
      }
      if (targets.every((t) => outcomes.get(t.nodeId)!.stored)) return;
      if (attempt >= PUT_RETRY_ATTEMPTS) throw unavailable(`could not store chunk ${chunk.id.slice(0, 12)}… on enough nodes; last failure: ${lastError || "nodes not reached"}`);
      this.retries += targets.filter((t) => !outcomes.get(t.nodeId)!.stored).length;
      const retry = await this.master.requestPutTargets({ chunks: [{ chunkId: chunk.id, size: chunk.data.byteLength, excludeNodeIds: excluded, holderNodeIds: holders }] });
      const next = retry.placements[0];
      targets = next?.targets ?? [];
      if (next) noteGrants(next);
      if (targets.length === 0) return;
    }
  }

  /**
   * Sends a chunk to its targets once: large chunks down a chain (the client sends the
   * bytes once, each node passes them on), small ones to every target directly.
   */
  private async send(chunk: Chunk, targets: StorageNode[], grants: Map<string, Grant>): Promise<Map<string, SendOutcome>> {
    const outcomes = new Map<string, SendOutcome>();
    // The pre-encoded message lives in one reused buffer whose tail (grant, forward list) is
    // per request: use it only when a single request is in flight, i.e. a chain or one target.
    const single = targets.length === 1 || chunk.data.byteLength >= CHAIN_REPLICATION_MIN_CHUNK_BYTES;
    const request = (to: StorageNode, forwardTo: StorageNode[]) => {
      const grant = grants.get(to.nodeId) ?? null;
      const forwardGrants = forwardTo.map((n) => grants.get(n.nodeId)).filter((g): g is Grant => g !== undefined);
      return chunk.message && single
        ? { chunkId: chunk.id, data: chunk.data, grant, encoded: withRouting(chunk.message, grant, forwardTo, forwardGrants) }
        : { chunkId: chunk.id, data: chunk.data, grant, forwardTo, forwardGrants };
    };
    if (targets.length > 1 && chunk.data.byteLength >= CHAIN_REPLICATION_MIN_CHUNK_BYTES) {
      const [first, ...rest] = targets as [StorageNode, ...StorageNode[]];
      try {
        const response = await this.pool.get(addressOf(first)).putChunk(request(first, rest), CHUNK_RPC_TIMEOUT_MS * targets.length);
        outcomes.set(first.nodeId, { stored: true });
        for (const id of response.storedNodeIds) outcomes.set(id, { stored: true });
        for (const failure of response.chainFailures) outcomes.set(failure.nodeId, { stored: false, error: new Error(failure.message) });
      } catch (err) {
        outcomes.set(first.nodeId, { stored: false, error: err });
      }
      for (const t of rest) if (!outcomes.has(t.nodeId)) outcomes.set(t.nodeId, { stored: false, untried: true });
      return outcomes;
    }
    const results = await Promise.allSettled(targets.map((t) => this.pool.get(addressOf(t)).putChunk(request(t, []), CHUNK_RPC_TIMEOUT_MS)));
    results.forEach((result, i) => outcomes.set(targets[i]!.nodeId, result.status === "fulfilled" ? { stored: true } : { stored: false, error: result.reason }));
    return outcomes;
  }

  /** Asks for targets for a batch and places each chunk, calling `done` once per chunk when it is finished with. */
  async placeBatch(batch: Chunk[], done: (chunk: Chunk) => void): Promise<void> {
    let response;
    try {
      response = await this.master.requestPutTargets({ chunks: batch.map((c) => ({ chunkId: c.id, size: c.data.byteLength })) });
    } catch (err) {
      batch.forEach(done);
      throw err;
    }
    const results = await Promise.allSettled(batch.map((chunk, i) => this.place(chunk, response.placements[i]!).finally(() => done(chunk))));
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }
}

/** Uploads `path` as `name`; resolves once the manifest is committed. */
export async function uploadFile(options: UploadOptions): Promise<UploadResult> {
  const { master, pool, path, chunkSize } = options;
  const name = assertName(options.name);
  assertUploadChunkSize(chunkSize);
  const source = await openSource(path, options.expectedSize);
  try {
    const size = source.size;
    const chunkCount = Math.ceil(size / chunkSize);
    if (chunkCount > MAX_FILE_CHUNKS) throw invalidArgument(`${path} would need ${chunkCount} chunks, more than ${MAX_FILE_CHUNKS}; use a larger --chunk-size`);

    const inflightChunks = Math.max(1, Math.floor(CLIENT_INFLIGHT_BUDGET_BYTES / chunkSize));
    const batchLimit = Math.min(PUT_TARGETS_BATCH_CHUNKS, inflightChunks);
    const permits = new Semaphore(inflightChunks);
    const upload = new Upload(master, pool);
    const chunks: ChunkRef[] = [];
    const seen = new Set<string>();
    const work: Promise<void>[] = [];
    let failure: unknown = null;
    let batch: Chunk[] = [];

    // One message buffer per permit, reused for the whole upload (see put-chunk-message.ts). A
    // file smaller than one chunk needs a buffer of its size, not the chunk size's. A large
    // chunk goes in shared memory, where a worker hashes it in place (core/sha256-worker.ts);
    // a small one is hashed here, and a shared buffer per small file cost more than its hash.
    const bufferChunkBytes = Math.min(chunkSize, size);
    const messageCapacity = putChunkMessageCapacity(bufferChunkBytes);
    const newBuffer = () => (hashedOffThread(bufferChunkBytes) ? allocShared(messageCapacity) : Buffer.allocUnsafe(messageCapacity));
    const freeBuffers: Buffer[] = [];
    const backingOf = new Map<Chunk, Buffer>();
    const finished = (chunk: Chunk) => {
      const backing = backingOf.get(chunk);
      if (backing) {
        backingOf.delete(chunk);
        freeBuffers.push(backing);
      }
      permits.release();
    };
    const dispatch = () => {
      const current = batch;
      batch = [];
      work.push(upload.placeBatch(current, finished).catch((err) => void (failure ??= err)));
    };

    for (let index = 0; index < chunkCount && !failure; index++) {
      // Send a partial batch before blocking, so it never waits on its own permits.
      if (!permits.tryAcquire()) {
        if (batch.length > 0) dispatch();
        await permits.acquire();
      }
      const offset = index * chunkSize;
      const backing = freeBuffers.pop() ?? newBuffer();
      const encoded = layoutPutChunk(backing, Math.min(chunkSize, size - offset));
      const data = await source.readInto(encoded.data, offset);
      const id = await chunkIdOfAsync(data);
      chunks.push({ chunkId: id, size: data.byteLength });
      options.onProgress?.(offset + data.byteLength);
      if (seen.has(id)) {
        freeBuffers.push(backing);
        permits.release();
        continue;
      }
      seen.add(id);
      setPutChunkId(encoded, id);
      const chunk: Chunk = { id, data, message: encoded };
      backingOf.set(chunk, backing);
      batch.push(chunk);
      if (batch.length >= batchLimit) dispatch();
    }
    if (batch.length > 0) dispatch();
    // Every chunk is read: the file is let go now rather than once the cluster has the chunks
    // (a resend reopens it).
    await source.close();
    await Promise.all(work);
    if (failure) throw failure;

    const file = await commit(options, upload, name, size, chunks);
    return { file, chunksWritten: upload.chunksWritten, chunksDeduplicated: upload.chunksDeduplicated, retries: upload.retries };
  } finally {
    await source.close();
  }
}

/**
 * Commits the manifest. When the master reports chunks that lost every replica since
 * placement (a concurrent delete let them be collected), sends them again and retries.
 */
async function commit(options: UploadOptions, upload: Upload, name: string, size: number, chunks: ChunkRef[]): Promise<FileInfo> {
  const { master, chunkSize, path } = options;
  const contentHash = contentHashOf(chunks.map((c) => c.chunkId));
  for (let attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
    const response = await master.announceManifest({
      filename: name,
      size,
      chunkSize,
      contentHash,
      chunks,
      stored: [...upload.stored].map(([chunkId, nodeIds]) => ({ chunkId, nodeIds })),
    });
    if (response.status === "OK" && response.file) return response.file;
    for (const missingId of response.missingChunkIds) {
      const index = chunks.findIndex((c) => c.chunkId === missingId);
      if (index < 0) throw unavailable(`master reported chunk ${missingId} missing, which is not part of ${name}`);
      const source = await openSource(path, undefined);
      const data = await readChunk(source, index * chunkSize, chunks[index]!.size).finally(() => source.close());
      if (chunkIdOf(data) !== missingId) throw invalidArgument(`${path} changed while it was being uploaded`);
      upload.stored.delete(missingId);
      upload.retries++;
      const placement = await master.requestPutTargets({ chunks: [{ chunkId: missingId, size: data.byteLength }] });
      await upload.place({ id: missingId, data }, { ...placement.placements[0]!, existingNodeIds: [] });
    }
  }
  throw unavailable(`could not commit ${name}: its chunks kept disappearing (concurrent deletes?)`);
}
