/**
 * GetChunk responses encoded in place: the node reads the chunk file into a buffer that
 * leaves room in front for the protobuf field header and the gRPC frame header, so the
 * bytes read from disk are the bytes sent, with no protobuf copy and no framing copy.
 */
import { FRAME_HEADER_BYTES, frame, framedResponse } from "./framing";
import type { GetChunkResponse } from "./messages";
import { varintLength, writeVarint } from "./varint";

const TAG_DATA = 0x0a; // GetChunkResponse.data = 1, wire type 2 (length-delimited)
/** A varint of a chunk's length (at most 64 MiB) takes at most 4 bytes; 5 covers any 32-bit length. */
const MAX_LENGTH_VARINT_BYTES = 5;

/** Bytes to leave free before a chunk read from disk so that `getChunkResponse` can frame it in place. */
export const GET_CHUNK_HEADROOM_BYTES = FRAME_HEADER_BYTES + 1 + MAX_LENGTH_VARINT_BYTES;

/**
 * The response for `data`, which must sit in its buffer at least GET_CHUNK_HEADROOM_BYTES
 * from the start, with those bytes free: they are overwritten with the headers.
 */
export function getChunkResponse(data: Buffer): GetChunkResponse {
  const header = 1 + varintLength(data.byteLength);
  if (data.byteOffset < FRAME_HEADER_BYTES + header) throw new Error("no headroom before the chunk for its headers");
  const message = Buffer.from(data.buffer, data.byteOffset - header, header + data.byteLength);
  message[0] = TAG_DATA;
  writeVarint(message, 1, data.byteLength);
  return framedResponse({ data }, frame(message));
}
