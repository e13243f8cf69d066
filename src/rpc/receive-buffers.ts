/**
 * Received chunk messages land in reused buffers instead of fresh ones.
 *
 * grpc-js collects a message's HTTP/2 pieces and copies them into a new buffer once the last
 * one arrives: for every 4 MiB chunk, 4 MiB of fresh memory, page-faulted in and left to the
 * collector. A download of 1 GiB churned through 1 GiB that way (peak RSS 250-400 MiB), and
 * so did the nodes taking an upload. Here the decoder copies each piece straight into a
 * buffer of the message's size as it arrives (the same one copy), taken from a small free
 * list for large messages; code done with a received chunk hands its buffer back with
 * `releaseReceived`. A buffer never handed back is simply collected, as before.
 *
 * Only a message that carries one chunk (a PutChunk, a GetChunk response) can be handed back,
 * and only through the view of that chunk's bytes. A batch (PutChunks, GetChunks) carries many
 * chunks in one buffer, each used by a different file or request for as long as it needs:
 * releasing the buffer when the first of them is done let the next message overwrite the others
 * (seen as a download -r file with the wrong bytes). Batch buffers are left to the collector.
 *
 * The chunk bytes inside a large message (its first large length-delimited field: the payload
 * of a PutChunk or a GetChunk response) are placed at a 4096-byte-aligned address, so that a
 * node storing them, or a client writing them to a file, hands them to O_DIRECT as they are
 * (core/durable-file.ts) instead of copying them into an aligned buffer first.
 *
 * This replaces grpc-js's StreamDecoder.write (checked at start-up, like framing.ts); its
 * output is the same: each framed message (5-byte header, then the message) in a buffer of
 * its own.
 */
import { StreamDecoder } from "@grpc/grpc-js/build/src/stream-decoder";
import { DIRECT_IO_ALIGNMENT_BYTES, misalignment } from "../core/direct-io-alignment";
import { allocShared } from "../core/sha256-worker";
import { FRAME_HEADER_BYTES } from "./framing";
import { readVarint } from "./varint";

/** Messages at least this large use pooled buffers: below it allocation is cheap and pooled by the runtime. */
const POOLED_MIN_BYTES = 256 * 1024;
/** Pooled sizes are rounded up to this, so messages of one chunk size share buffers. */
const POOL_GRANULE_BYTES = 64 * 1024;
/** Free bytes kept for reuse at most: the rest is left to the collector. */
const POOL_MAX_FREE_BYTES = 48 * 1024 * 1024;

/** Free buffers by capacity. */
const free = new Map<number, Buffer[]>();
let freeBytes = 0;
/**
 * Buffers this module handed out and not yet got back, by their memory, with where in that
 * memory the message's one chunk payload starts (-1: not known, so never handed back).
 */
const lent = new WeakMap<ArrayBufferLike, { buffer: Buffer; payloadAt: number }>();

/**
 * A buffer for a framed message of `size` bytes whose byte `payload` (the start of its one
 * chunk) should sit at an aligned address; -1: no such payload is known.
 */
function take(size: number, payload: number): Buffer {
  if (size < POOLED_MIN_BYTES) return Buffer.allocUnsafe(size);
  const capacity = Math.ceil((size + DIRECT_IO_ALIGNMENT_BYTES) / POOL_GRANULE_BYTES) * POOL_GRANULE_BYTES;
  const list = free.get(capacity);
  let buffer = list?.pop();
  if (buffer) freeBytes -= capacity;
  // Shared memory: a worker hashes the chunk where it lies (core/sha256-worker.ts).
  else buffer = allocShared(capacity);
  const start = payload < 0 ? 0 : (DIRECT_IO_ALIGNMENT_BYTES - ((misalignment(buffer) + payload) % DIRECT_IO_ALIGNMENT_BYTES)) % DIRECT_IO_ALIGNMENT_BYTES;
  lent.set(buffer.buffer, { buffer, payloadAt: payload < 0 ? -1 : buffer.byteOffset + start + payload });
  return buffer.subarray(start, start + size);
}

/**
 * Where the first length-delimited field of at least POOLED_MIN_BYTES starts in `message`
 * (the start of a protobuf message, possibly cut short), or -1 when it is not in view.
 */
export function largeFieldOffset(message: Uint8Array): number {
  let at = 0;
  while (at < message.byteLength) {
    const tag = readVarint(message, at);
    if (!tag) return -1;
    at += tag.bytes;
    switch (tag.value & 7) {
      case 0: {
        const skipped = readVarint(message, at);
        if (!skipped) return -1;
        at += skipped.bytes;
        break;
      }
      case 1:
        at += 8;
        break;
      case 5:
        at += 4;
        break;
      case 2: {
        const length = readVarint(message, at);
        if (!length) return -1;
        at += length.bytes;
        if (length.value >= POOLED_MIN_BYTES) return at;
        at += length.value;
        break;
      }
      default:
        return -1;
    }
  }
  return -1;
}

/** The pool entry `view` can hand back: only the view of a lent buffer's one chunk payload. */
function entryOf(view: Uint8Array) {
  const entry = lent.get(view.buffer);
  return entry && entry.payloadAt >= 0 && view.byteOffset === entry.payloadAt ? entry : undefined;
}

/**
 * Whether `view` is the chunk payload of a message in a buffer lent from the free list and not
 * yet handed back: the memory around it (the message it came in) is then the holder's alone.
 */
export function isLent(view: Uint8Array): boolean {
  return entryOf(view) !== undefined;
}

/**
 * Hands back the buffer behind a received chunk, given the chunk's bytes as received, for
 * reuse. Call it only when nothing will read those bytes again, including a send still in
 * progress. Any other view (a chunk of a batch, a slice) is ignored: its buffer may be shared.
 */
export function releaseReceived(view: Uint8Array): void {
  const entry = entryOf(view);
  if (!entry) return; // not ours, shared, or already back
  lent.delete(view.buffer);
  const { buffer } = entry;
  if (freeBytes + buffer.byteLength > POOL_MAX_FREE_BYTES) return;
  let list = free.get(buffer.byteLength);
  if (!list) free.set(buffer.byteLength, (list = []));
  list.push(buffer);
  freeBytes += buffer.byteLength;
}

/** The decoder's state, as grpc-js's own constructor sets it up (fields used here only). */
interface DecoderState {
  maxReadMessageLength: number;
  /** Bytes of the 5-byte header read so far, and the header itself. */
  headerFill?: number;
  header?: Buffer;
  /** The message being filled, and how much of it is there. */
  message?: Buffer | null;
  messageFill?: number;
}

/** Splits `data` into framed messages, each in a buffer of its own; keeps partial state between calls. */
function write(this: DecoderState, data: Buffer): Buffer[] {
  const result: Buffer[] = [];
  this.header ??= Buffer.alloc(FRAME_HEADER_BYTES);
  this.headerFill ??= 0;
  let at = 0;
  while (at < data.length) {
    if (!this.message) {
      const n = Math.min(FRAME_HEADER_BYTES - this.headerFill, data.length - at);
      data.copy(this.header, this.headerFill, at, at + n);
      this.headerFill += n;
      at += n;
      if (this.headerFill < FRAME_HEADER_BYTES) break;
      const size = this.header.readUInt32BE(1);
      if (this.maxReadMessageLength !== -1 && size > this.maxReadMessageLength) {
        throw new Error(`Received message larger than max (${size} vs ${this.maxReadMessageLength})`);
      }
      // The message's start is usually in this piece: find its payload, to place it aligned.
      const payload = size >= POOLED_MIN_BYTES ? largeFieldOffset(data.subarray(at, at + 256)) : -1;
      this.message = take(FRAME_HEADER_BYTES + size, payload < 0 ? -1 : FRAME_HEADER_BYTES + payload);
      this.header.copy(this.message, 0);
      this.messageFill = FRAME_HEADER_BYTES;
      this.headerFill = 0;
    }
    const n = Math.min(this.message.length - this.messageFill!, data.length - at);
    data.copy(this.message, this.messageFill!, at, at + n);
    this.messageFill! += n;
    at += n;
    if (this.messageFill === this.message.length) {
      result.push(this.message);
      this.message = null;
    }
  }
  return result;
}

function install() {
  const prototype = StreamDecoder.prototype as unknown as { write: unknown };
  if (typeof prototype.write !== "function" || typeof new StreamDecoder(-1).write !== "function") {
    throw new Error("grpc-js internals changed: StreamDecoder.write is gone (src/rpc/receive-buffers.ts)");
  }
  prototype.write = write;
}

install();
