/** Protobuf base-128 varints, for the messages this codebase encodes by hand. */

/** Bytes `n` (a non-negative safe integer) takes as a varint. */
export function varintLength(n: number): number {
  let length = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    length++;
  }
  return length;
}

/** Writes `n` as a varint at `offset`; returns the offset after it. */
export function writeVarint(buf: Buffer, offset: number, n: number): number {
  while (n >= 0x80) {
    buf[offset++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[offset++] = n;
  return offset;
}

/** The varint at `offset` and the bytes it took; null when `buf` ends inside it or it is longer than 64 bits. */
export function readVarint(buf: Uint8Array, offset: number): { value: number; bytes: number } | null {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10 && offset + i < buf.byteLength; i++) {
    const byte = buf[offset + i]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return { value, bytes: i + 1 };
    scale *= 128;
  }
  return null;
}
