/**
 * Downloading one file: one GetManifest for the chunk list and every replica, chunks
 * fetched in parallel within the download window, each verified, written in order to a
 * temp file beside the output and renamed at the end.
 */
import { rename, unlink } from "node:fs/promises";
import { formatHostPort } from "../core/address";
import { chunkIdOfAsync, contentHashOf } from "../core/chunk-id";
import { DropboxError, dataLoss, errorMessage, unavailable } from "../core/errors";
import { CHUNK_RPC_TIMEOUT_MS, DOWNLOAD_WINDOW_BYTES } from "../core/limits";
import { assertName } from "../core/names";
import { writeOut } from "../core/stdio";
import { DurableFile } from "../core/durable-file";
import { type GroupCommit, joinsGroup } from "../core/group-commit";
import { tempFiles, tempPathBeside } from "../core/temp-files";
import { releaseReceived } from "../rpc/receive-buffers";
import type { ChunkPool, TransferMaster } from "../rpc/client";
import type { ChunkLocation, FileInfo, GetManifestResponse, StorageNode } from "../rpc/messages";

/** What to download, and where to. */
export interface DownloadOptions {
  master: TransferMaster;
  pool: ChunkPool;
  name: string;
  /** A path, or "-" for stdout. */
  output: string;
  onProgress?: (bytes: number) => void;
  /** The file's manifest when already read (listed with its directory); else it is asked for. */
  manifest?: GetManifestResponse;
  /** Where a small file is made durable along with others (many-file downloads); else on its own. */
  groupCommit?: GroupCommit;
}

const addressOf = (node: StorageNode) => formatHostPort(node.host, node.port);

/** Fetches a chunk from the first replica that returns verified bytes. */
async function fetchChunk(master: TransferMaster, pool: ChunkPool, location: ChunkLocation): Promise<Buffer> {
  const failures: string[] = [];
  let corrupt = false;
  const reports: Promise<void>[] = [];
  const tryReplicas = async (replicas: StorageNode[]) => {
    for (const replica of replicas) {
      const node = pool.get(addressOf(replica));
      try {
        const { data } = await node.getChunk({ chunkId: location.chunkId }, CHUNK_RPC_TIMEOUT_MS, location.size);
        if (data.byteLength === location.size && (await chunkIdOfAsync(data)) === location.chunkId) return data;
        // Nodes serve what they stored unchecked: the reader is the check, and says so.
        reports.push(node.reportMismatch(location.chunkId));
        corrupt = true;
        failures.push(`${replica.nodeId}: returned bytes that do not match the chunk id`);
      } catch (err) {
        if (err instanceof DropboxError && err.kind === "DATA_LOSS") corrupt = true;
        failures.push(`${replica.nodeId}: ${errorMessage(err)}`);
      }
    }
    return null;
  };
  try {
    const first = await tryReplicas(location.replicas);
    if (first) return first;
    // Replicas may have moved since the manifest was read (repair): ask once more.
    const fresh = await master.requestGetTargets({ chunkIds: [location.chunkId] });
    const tried = new Set(location.replicas.map((r) => r.nodeId));
    const second = await tryReplicas((fresh.chunks[0]?.replicas ?? []).filter((r) => !tried.has(r.nodeId)));
    if (second) return second;
  } finally {
    // Delivered before the process may exit: the bad copy is quarantined and re-replicated.
    await Promise.all(reports);
  }
  const detail = failures.length > 0 ? failures.join("; ") : "no replica is recorded";
  const message = `chunk ${location.chunkId.slice(0, 12)}… could not be read from any replica (${detail})`;
  throw corrupt ? dataLoss(message) : unavailable(message);
}

/** Where the bytes go: a file written in place, or stdout with backpressure. */
interface Sink {
  write(data: Buffer): Promise<void>;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * A small file's bytes, held until they are all here and then written in one go, made durable
 * with the rest of its group (core/group-commit.ts) and renamed over `output`.
 */
function groupedSink(output: string, group: GroupCommit): Sink {
  const held: Buffer[] = [];
  return {
    // A copy: the caller may reuse its buffer once this resolves.
    write: async (data) => void held.push(Buffer.from(data)),
    finish: () => group.write(output, held.length === 1 ? held[0]! : Buffer.concat(held), 0o644),
    abort: async () => {},
  };
}

/** A temp file beside `output`, renamed over it once complete and durable; large files go past the page cache. */
async function fileSink(output: string, size: number): Promise<Sink> {
  const tmpPath = tempPathBeside(output);
  const file = await tempFiles.create(tmpPath, () => DurableFile.create(tmpPath, 0o644, size)).catch((err) => {
    tempFiles.delete(tmpPath);
    throw err;
  });
  return {
    // A small file is created only when its bytes are all here (at commit, or on an append past
    // the line): tracked, so that a signal in between cannot leave it behind.
    write: (data) => tempFiles.create(tmpPath, () => file.append(data)),
    async finish() {
      await tempFiles.create(tmpPath, () => file.commit());
      await rename(tmpPath, output);
      tempFiles.delete(tmpPath);
    },
    async abort() {
      await file.close();
      await unlink(tmpPath).catch(() => {});
      tempFiles.delete(tmpPath);
    },
  };
}

function stdoutSink(name: string): Sink {
  return {
    write: async (data) => {
      if (!writeOut(data)) throw new DropboxError("INTERNAL", `stdout was closed before all of ${name} was written`);
    },
    finish: async () => {},
    abort: async () => {},
  };
}

/** Downloads `name` to `output`; a failure leaves no partial output file. */
export async function downloadFile(options: DownloadOptions): Promise<FileInfo> {
  const { master, pool } = options;
  const name = assertName(options.name);
  const manifest = options.manifest ?? (await master.getManifest({ filename: name }));
  const file = manifest.file!;
  const total = manifest.chunks.reduce((sum, c) => sum + c.size, 0);
  if (manifest.chunks.length !== file.chunkCount || total !== file.size || contentHashOf(manifest.chunks.map((c) => c.chunkId)) !== file.contentHash) {
    throw dataLoss(`the master's manifest of ${name} is inconsistent with its content hash`);
  }

  const sink =
    options.output === "-"
      ? stdoutSink(name)
      : options.groupCommit && joinsGroup(file.size)
        ? groupedSink(options.output, options.groupCommit)
        : await fileSink(options.output, file.size);
  try {
    const window = Math.max(1, Math.floor(DOWNLOAD_WINDOW_BYTES / Math.max(file.chunkSize, 1)));
    const fetches: Promise<Buffer>[] = [];
    let next = 0;
    const startNext = () => {
      if (next < manifest.chunks.length) {
        const fetch = fetchChunk(master, pool, manifest.chunks[next++]!);
        fetch.catch(() => {}); // awaited in order below; avoid an unhandled rejection meanwhile
        fetches.push(fetch);
      }
    };
    for (let i = 0; i < window; i++) startNext();
    let done = 0;
    for (let index = 0; index < manifest.chunks.length; index++) {
      const data = await fetches[index]!;
      delete fetches[index]; // release the buffer once written
      startNext();
      await sink.write(data);
      done += data.byteLength;
      // Written and hashed: the next chunk may land in this buffer.
      releaseReceived(data);
      options.onProgress?.(done);
    }
    await sink.finish();
    return file;
  } catch (err) {
    await sink.abort();
    throw err;
  }
}
