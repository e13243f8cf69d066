/**
 * Messages that arrive at grpc-js already framed, so chunk bytes are not copied again.
 *
 * gRPC puts a 5-byte header (compressed flag, big-endian length) before every message, and
 * grpc-js adds it by allocating a new buffer and copying the whole message into it: for a
 * 4 MiB chunk, 4 MiB of fresh memory (page faults, garbage) and a 4 MiB copy on every hop.
 * Code that builds a chunk message itself leaves 5 bytes free in front of it, writes the
 * header there with `frame()`, and grpc-js sends that buffer as it is.
 *
 * This hooks two grpc-js internals: CompressionFilter.sendMessage (client requests) and
 * BaseServerInterceptingCall.serializeMessage (server responses). Both are checked at
 * start-up, so an upgrade that moves them fails every test loudly instead of silently
 * losing the speed. Messages that were not framed here take grpc-js's usual path.
 */
import { CompressionFilter } from "@grpc/grpc-js/build/src/compression-filter";
import { BaseServerInterceptingCall } from "@grpc/grpc-js/build/src/server-interceptors";

/** The gRPC message header: 1 byte compressed flag, 4 bytes length. */
export const FRAME_HEADER_BYTES = 5;

/** Messages that went out framed here, by direction: tests check the hooks are really taken. */
export const framedCounts = { requests: 0, responses: 0 };

/** Serialized message -> the same bytes with their gRPC header in front. */
const framedOf = new WeakMap<Buffer, Buffer>();

/** Marks a response object whose wire form is already framed. */
const FRAMED_RESPONSE = Symbol("framed response");

/**
 * Writes the gRPC header into the 5 bytes before `message` (which must be free, in the same
 * buffer) and remembers the framed form. Returns `message`, for the serializer to return.
 */
export function frame(message: Buffer): Buffer {
  if (message.byteOffset < FRAME_HEADER_BYTES) throw new Error("no room before the message for its gRPC header");
  const framed = Buffer.from(message.buffer, message.byteOffset - FRAME_HEADER_BYTES, message.byteLength + FRAME_HEADER_BYTES);
  framed[0] = 0; // not compressed: these channels never compress
  framed.writeUInt32BE(message.byteLength, 1);
  framedOf.set(message, framed);
  return message;
}

/** The framed form (gRPC header, then the message) of a message from `frame()`, if it is one. */
export function framedBytes(message: Buffer): Buffer | undefined {
  return framedOf.get(message);
}

/** A response object that grpc-js sends as `framedMessage` (a `frame()`d buffer) instead of serializing it. */
export function framedResponse<T extends object>(response: T, message: Buffer): T {
  const framed = framedOf.get(message);
  if (!framed) throw new Error("framedResponse needs a message from frame()");
  return Object.assign(response, { [FRAMED_RESPONSE]: framed });
}

type SendMessage = (this: { maxSendMessageLength: number }, message: unknown) => Promise<{ message: Buffer; flags?: number }>;
type SerializeMessage = (this: unknown, value: unknown) => Buffer;

function install() {
  const client = CompressionFilter.prototype as unknown as { sendMessage: SendMessage };
  const server = BaseServerInterceptingCall.prototype as unknown as { serializeMessage: SerializeMessage };
  if (typeof client.sendMessage !== "function" || typeof server.serializeMessage !== "function") {
    throw new Error("grpc-js internals changed: CompressionFilter.sendMessage or BaseServerInterceptingCall.serializeMessage is gone (src/rpc/framing.ts)");
  }
  const sendMessage = client.sendMessage;
  client.sendMessage = async function (message) {
    const resolved = (await message) as { message: Buffer; flags?: number };
    const framed = framedOf.get(resolved.message);
    // Over the size limit: grpc-js's own path rejects it with its usual status.
    if (!framed || (this.maxSendMessageLength !== -1 && resolved.message.length > this.maxSendMessageLength)) return sendMessage.call(this, resolved);
    framedCounts.requests++;
    return { message: framed, flags: resolved.flags };
  };
  const serializeMessage = server.serializeMessage;
  server.serializeMessage = function (value) {
    const framed = (value as { [FRAMED_RESPONSE]?: Buffer } | null)?.[FRAMED_RESPONSE];
    if (!framed) return serializeMessage.call(this, value);
    framedCounts.responses++;
    return framed;
  };
}

install();
