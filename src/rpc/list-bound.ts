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
  while (at < end) {
    // The tag: field number and wire type, a varint (field numbers fit 29 bits).
    let tag = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      if (at >= end || i >= 5) return null;
      const byte = bytes[at++]!;
      tag += (byte & 0x7f) * scale;
      if (byte < 0x80) break;
      scale *= 128;
    }
    const field = Math.floor(tag / 8);
    if (field < COUNTED_FIELDS && ++counts[field]! > maxItems) return field;
    switch (tag & 7) {
      case 0: // varint
        for (let i = 0; ; i++) {
          if (at >= end || i >= 10) return null;
          if (bytes[at++]! < 0x80) break;
        }
        break;
      case 1: // 64-bit
        at += 8;
        break;
      case 2: {
        // length-delimited: skip the length's worth
        let length = 0;
        let lengthScale = 1;
        for (let i = 0; ; i++) {
          if (at >= end || i >= 5) return null;
          const byte = bytes[at++]!;
          length += (byte & 0x7f) * lengthScale;
          if (byte < 0x80) break;
          lengthScale *= 128;
        }
        at += length;
        break;
      }
      case 5: // 32-bit
        at += 4;
        break;
      default: // groups (unused by this protocol) and invalid wire types: the decoder's to judge
        return null;
    }
  }
  return null;
}
