/** Every limit of the system, named with its unit, each with the reason for its value. */

const KiB = 1024;
const MiB = 1024 * KiB;

/** Default chunk size: large enough that gRPC framing cost is small, equal to Dropbox's block size so content hashes match theirs. */
export const DEFAULT_CHUNK_SIZE_BYTES = 4 * MiB;
/** Smallest chunk an upload may ask for: below this, per-chunk metadata dominates. */
export const MIN_CHUNK_SIZE_BYTES = 64 * KiB;
/** Largest chunk: bounds the memory one in-flight chunk may take on every process. */
export const MAX_CHUNK_SIZE_BYTES = 64 * MiB;
/** Largest gRPC message any process accepts: one maximal chunk plus room for its envelope. */
export const MAX_MESSAGE_BYTES = MAX_CHUNK_SIZE_BYTES + 1 * MiB;
/**
 * Bytes of chunk data a client keeps in flight per transfer (6 chunks of the default size).
 * Each in-flight MiB cost ~2 MiB of client RSS (the chunk, WebCrypto's copy of it, HTTP/2's
 * send buffer; since chunks are hashed in place, without the copy). Measured on 2 cores, 1 GiB upload, median of 4: 16 MiB 5.42 s at 117-122 MiB
 * RSS, 24 MiB 5.08 s at 134-138 MiB; 32 MiB was faster again but above the 150 MiB we allow.
 * Re-measured once nodes packed small chunks and served unverified: 16 MiB 4.90 s, 20 MiB
 * 4.71 s at 127-132 MiB, 24 MiB 4.85 s at 136-141 MiB (a 10 GiB upload peaked at 148 MiB).
 * Since chunks leave through rpc/chunk-sender.ts, which keeps no copy of what it has queued, a
 * MiB of budget costs ~1 MiB: 1 GiB, interleaved, 3 each: 20 MiB 197/231/238 MiB/s at 93-94 MiB,
 * 32 MiB 253/288/257 MiB/s at 105-107 MiB; a 10 GiB upload at 32 MiB, 290 MiB/s, peak 122 MiB.
 * Then, noisier, 4 each: 32 MiB 193/269/209/217 at 105-106 MiB, 40 MiB 266/270/238/216 at
 * 111-113 MiB; a 10 GiB upload at 40 MiB, 283 MiB/s, peak 133 MiB (the bar: 150 for both).
 */
export const CLIENT_INFLIGHT_BUDGET_BYTES = 40 * MiB;
/**
 * Bytes of files a many-file transfer has in flight at once, across files (transfers.ts): a
 * file of this size or more goes alone, so a download -r of large files holds one file's
 * window at a time. Kept at the in-flight budget's old value when that grew for uploads.
 */
export const TRANSFER_FILES_BUDGET_BYTES = 20 * MiB;
/**
 * Bytes of chunks one download fetches ahead (4 chunks of the default size): downloads are
 * bound by CPU, not by round trips. Measured, 1 GiB, 4 runs each: 16, 24 and 40 MiB all took
 * 2.0-2.3 s, at 159-174, 183-208 and 215-247 MiB of client RSS.
 */
export const DOWNLOAD_WINDOW_BYTES = 16 * MiB;
/** Chunks per RequestPutTargets batch: one round trip per batch instead of per chunk. */
export const PUT_TARGETS_BATCH_CHUNKS = 16;
/**
 * Chunks at least this large are chain-replicated (client -> first node -> next node):
 * the client sends each byte once instead of once per replica. Smaller chunks fan out
 * from the client, where many of them share one batched call per node.
 */
export const CHAIN_REPLICATION_MIN_CHUNK_BYTES = 1024 * 1024;
/**
 * Files at least this large are written past the page cache (core/durable-file.ts): big
 * writes save the page-cache copy, while small chunks are cheap to cache and likely to be
 * read back soon.
 */
export const UNCACHED_WRITE_MIN_BYTES = 256 * KiB;
/**
 * Most files one group commit makes durable together (core/group-commit.ts). Until its
 * syncfs, a group's new inodes keep their inode-table blocks dirty, and on ext4 without a
 * journal the inode allocator then skips every inode freed in the last 6 minutes (60 s once the
 * block is clean) one by one, on every file created: after 160,000 files were removed, 20,000
 * tiny files came down in 9.9 s as groups of up to 1024 against 3.0-3.4 s as groups of 16-64
 * (3.35 s with an fsync each). 64 still saves 63 of every 64 device flushes.
 */
export const GROUP_COMMIT_MAX_FILES = 64;
/**
 * Chunks smaller than this are packed on nodes (node/pack-store.ts) rather than given a file
 * each: below it, a file's inode, rename and fsyncs cost more than the bytes. The same size
 * as the page-cache line above, so "small" means one thing on a node.
 */
export const PACKED_CHUNK_BELOW_BYTES = 256 * KiB;
/** Attempts to place one chunk on a fresh node after a target failed before the upload gives up. */
export const PUT_RETRY_ATTEMPTS = 4;
/** Chunks a single file may have: bounds manifest messages and master memory per request (1 TiB at 4 MiB chunks). */
export const MAX_FILE_CHUNKS = 262_144;
/** Largest file name in UTF-8 bytes, as in S3 keys. */
export const MAX_NAME_BYTES = 1024;
/** Files returned per ListFiles call; the client pages past it. */
export const LIST_PAGE_FILES = 1000;
/**
 * Chunks a ListManifests page carries per file: small files come whole (the case where one
 * manifest call per file would cost more than the file), larger ones are read on their own,
 * and a page stays under ~3 MB.
 */
export const LIST_MANIFESTS_MAX_FILE_CHUNKS = 16;
/** Replication factors the master accepts. */
export const MIN_REPLICATION = 1;
export const MAX_REPLICATION = 7;
/** Default replication factor, as in the seed. */
export const DEFAULT_REPLICATION = 2;

/** Chunk ids per DeleteChunks / ListChunks / heartbeat loss report: bounds every such message. */
export const MAX_CHUNK_IDS_PER_REQUEST = 10_000;
/** Default scrub rate per node: a full pass over 1 TB every ~36 hours without hurting clients. */
export const DEFAULT_SCRUB_RATE_MIB_PER_S = 8;
/**
 * Default time between the starts of two scrub passes: Ceph deep-scrubs weekly, HDFS scans
 * every three weeks. Readers verify what they read in between; this finds rot in cold data.
 */
export const DEFAULT_SCRUB_INTERVAL_MS = 7 * 24 * 60 * 60 * 1000;
/** Bounds of the scrub flags: a year between passes, and far past any disk's speed. */
export const MAX_SCRUB_INTERVAL_MS = 366 * 24 * 60 * 60 * 1000;
export const MAX_SCRUB_RATE_MIB_PER_S = 100_000;
/** Default wait before unreferenced chunks are deleted: long enough for any upload to commit what it placed. */
export const DEFAULT_GC_GRACE_MS = 10 * 60_000;
/** How often the master looks for chunks to repair, trim or collect. */
export const DEFAULT_REPAIR_INTERVAL_MS = 1000;
/** Chunk copies the master has in flight at once while repairing: clients keep being served meanwhile. */
export const REPAIR_CONCURRENCY = 4;
/** Chunks examined per repair round. */
export const REPAIR_BATCH_CHUNKS = 256;
/**
 * Chunk records a full repair scan reads per step, between which the master answers calls
 * and heartbeats: ~2-4 ms of SQLite each. Read in one piece, 200,000 chunks held the event
 * loop for 180-400 ms, and a few million for longer than a node's timeout.
 */
export const REPAIR_SCAN_PAGE_CHUNKS = 2000;
/** How often the master re-reads each live node's full inventory (besides at registration). */
export const INVENTORY_INTERVAL_MS = 10 * 60_000;
/**
 * Chunk ids the master remembers to ask a node about again, after the node kept them from a
 * deletion because they were written within the grace period (~70 bytes each, so ~7 MB).
 * Past the bound, the node's next inventory finds what is left.
 */
export const MAX_DELETION_RETRY_CHUNKS = 100_000;
/** Times a kept copy is asked about again: each time the grace period passes, unless it was written again. */
export const DELETION_RETRY_ATTEMPTS = 3;

/** How long a master's grant stays valid: covers a slow upload's batch plus modest clock skew between hosts. */
export const GRANT_TTL_MS = 10 * 60_000;

/** How often a node reports to the master. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000;
/** Silence after which the master declares a node dead and stops placing on it. */
export const DEFAULT_NODE_TIMEOUT_MS = 10_000;
/** Delay between a node's attempts to register while the master is not answering. */
export const REGISTER_RETRY_INTERVAL_MS = 250;
/** Deadline for metadata RPCs: they touch only the master's database. */
export const METADATA_RPC_TIMEOUT_MS = 30_000;
/** Deadline for moving one chunk: a 64 MiB chunk at a slow 10 MiB/s still fits. */
export const CHUNK_RPC_TIMEOUT_MS = 60_000;
/**
 * Deadline for a reader's report of a bad copy (the node re-hashes that one chunk): short, as
 * the reader waits for it before it finishes, and a hung node should delay it little.
 */
export const MISMATCH_REPORT_TIMEOUT_MS = 5_000;
/** Deadline for a client's first contact with the master, so an unreachable master fails fast. */
export const CONNECT_TIMEOUT_MS = 5_000;
/** Nodes with less free space than this get no new chunks. */
export const MIN_FREE_BYTES_FOR_PLACEMENT = 256 * MiB;
/**
 * Largest HTTP/2 DATA frame servers accept (SETTINGS_MAX_FRAME_SIZE; the protocol's default
 * is 16 KiB): chunks sent by rpc/chunk-sender.ts go in frames this large, a write each.
 */
export const MAX_RECEIVE_FRAME_BYTES = 1024 * 1024;
/**
 * A server's receive window per call (SETTINGS_INITIAL_WINDOW_SIZE; HTTP/2's default is
 * 64 KiB): most of a chunk in flight before the sender waits. Each connection's is
 * FLOW_CONTROL_WINDOW_BYTES. With both at the default, 1 GiB uploads ran at a median 200
 * MiB/s; with these, 214 (4 runs each, interleaved).
 */
export const SERVER_STREAM_WINDOW_BYTES = 8 * 1024 * 1024;
/** HTTP/2 flow-control window per connection: large windows keep multi-MiB messages streaming without stalls. */
export const FLOW_CONTROL_WINDOW_BYTES = 16 * MiB;
/**
 * Node channels one process keeps open: far above any real cluster's node count, and a
 * bound on what peers naming addresses (forward lists, replication sources) can make it hold.
 */
export const MAX_POOLED_CHANNELS = 256;

/** Default master port, as in the seed. */
export const DEFAULT_MASTER_PORT = 9000;
/** Default master address for clients. */
export const DEFAULT_MASTER_ADDRESS = `127.0.0.1:${DEFAULT_MASTER_PORT}`;

if (MAX_MESSAGE_BYTES <= MAX_CHUNK_SIZE_BYTES) throw new Error("limits: a message must fit a whole chunk");
if (CLIENT_INFLIGHT_BUDGET_BYTES < DEFAULT_CHUNK_SIZE_BYTES) throw new Error("limits: the in-flight budget must fit one default chunk");
if (DEFAULT_NODE_TIMEOUT_MS < 3 * DEFAULT_HEARTBEAT_INTERVAL_MS) throw new Error("limits: node timeout must span several heartbeats");
