/**
 * PutChunk requests encoded by hand into reusable buffers. The file is read straight into
 * the message's payload and the same bytes go to every target: no protobuf copy per
 * target, no fresh multi-MiB allocation per chunk. On 2 cores this halved the client's
 * system time (page faults) and its peak RSS on a 1 GiB upload.
 */
import type { PutChunkRequest } from "./messages";

/** A PutChunk message laid out in a buffer: `data` is where the chunk's bytes go. */
export interface EncodedPutChunk {
  /** The whole protobuf message: chunk_id = 1 (string), data = 2 (bytes). */
  message: Buffer;
  /** The payload region inside `message`. */
  data: Buffer;
}

/** A PutChunk request that is already encoded; the serializer passes `encoded` through. */
export interface PreEncodedPutChunk {
  chunkId: string;
  /** The payload, for callers that need the bytes themselves (batches). */
  data: Buffer;
  encoded: Buffer;
}

const CHUNK_ID_LENGTH = 64;
const TAG_CHUNK_ID = 0x0a; // field 1, wire type 2 (length-delimited)
const TAG_DATA = 0x12; // field 2, wire type 2

function varintLength(n: number): number {
  let length = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    length++;
  }
  return length;
}

function writeVarint(buf: Buffer, offset: number, n: number) {
  while (n >= 0x80) {
    buf[offset++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[offset] = n;
}

/** Bytes a buffer needs to hold the message for a chunk of up to `size` bytes. */
export function putChunkMessageCapacity(size: number): number {
  return 2 + CHUNK_ID_LENGTH + 1 + varintLength(size) + size;
}

/** Lays out a message for `size` payload bytes at the start of `backing`; the id is set later. */
export function layoutPutChunk(backing: Buffer, size: number): EncodedPutChunk {
  const header = 2 + CHUNK_ID_LENGTH + 1 + varintLength(size);
  backing[0] = TAG_CHUNK_ID;
  backing[1] = CHUNK_ID_LENGTH;
  backing[2 + CHUNK_ID_LENGTH] = TAG_DATA;
  writeVarint(backing, 3 + CHUNK_ID_LENGTH, size);
  return { message: backing.subarray(0, header + size), data: backing.subarray(header, header + size) };
}

/** Writes the chunk id (64 lowercase hex characters) once the payload is hashed. */
export function setPutChunkId(encoded: EncodedPutChunk, chunkId: string) {
  if (chunkId.length !== CHUNK_ID_LENGTH) throw new Error(`chunk id must be ${CHUNK_ID_LENGTH} characters`);
  encoded.message.write(chunkId, 2, CHUNK_ID_LENGTH, "latin1");
}

/** Wraps a request serializer so that pre-encoded PutChunk requests pass through untouched. */
export function passThroughPreEncoded(serialize: (request: PutChunkRequest) => Buffer): (request: PutChunkRequest | PreEncodedPutChunk) => Buffer {
  return (request) => ("encoded" in request ? request.encoded : serialize(request));
}
