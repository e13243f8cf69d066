/**
 * List lengths checked before a request is decoded. protobufjs builds an object or a string
 * for every item of a repeated field, so 60 MiB of two-byte items would become 30 million
 * objects: seconds of CPU and gigabytes of memory, spent before any handler could refuse the
 * request. No request carries a list longer than MAX_LIST_ITEMS (a file's chunks at most),
 * and the methods open to read-only callers keep their lists at the top level of the message;
 * so the top-level fields are counted first, and counting stops at the first list too long.
 * An attack costs microseconds; a legitimate message, one pass over its tags.
 */
import { MAX_FILE_CHUNKS } from "../core/limits";

/** Items any one field of a request may repeat: a file's chunks are the longest list there is. */
export const MAX_LIST_ITEMS = MAX_FILE_CHUNKS;

/** Field numbers counted per message: every field this protocol uses is below it. */
const COUNTED_FIELDS = 64;

/**
 * The number of the first top-level field that occurs more than `maxItems` times in the
 * encoded message `bytes`, or null. Bytes that do not parse as fields (groups, a length past
 * the end) are left to the decoder, which rejects them with its own reason.
 */
export function overlongList(bytes: Uint8Array, maxItems = MAX_LIST_ITEMS): number | null {
  const counts = new Uint32Array(COUNTED_FIELDS);
  const end = bytes.byteLength;
  let at = 0;
  /** The varint at `at` (moving past it), of at most `most` bytes; -1 when cut short or longer. */
  const varint = (most: number) => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < most && at < end; i++) {
      const byte = bytes[at++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
    return -1;
  };
  while (at < end) {
    // The tag: field number and wire type (field numbers fit 29 bits, so 5 bytes).
    const tag = varint(5);
    if (tag < 0) return null;
    const field = Math.floor(tag / 8);
    if (field < COUNTED_FIELDS && ++counts[field]! > maxItems) return field;
    const wireType = tag & 7;
    if (wireType === 0 && varint(10) >= 0) continue;
    else if (wireType === 1) at += 8;
    else if (wireType === 2) {
      const length = varint(5);
      if (length < 0) return null;
      at += length;
    } else if (wireType === 5) at += 4;
    // Groups (unused by this protocol), invalid wire types, a cut varint: the decoder's to judge.
    else return null;
  }
  return null;
}
