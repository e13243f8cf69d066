/**
 * Chunk uploads sent over an HTTP/2 connection of our own, in DATA frames as large as the
 * node allows, instead of through grpc-js. The node is the same grpc-js server and sees the
 * same gRPC call; only the sending side differs.
 *
 * grpc-js sends through Bun's HTTP/2 client, which cuts every message into DATA frames of at
 * most 16 KiB, whatever the peer allows, and hands each to the kernel with its own `send`:
 * ~65,000-100,000 sends per GiB per hop, each waking the receiver. bench/chunk-transport.ts,
 * 1 GiB as 4 MiB PutChunks into our storage server on 2 cores, medians of 3: through grpc-js
 * 1.43 s of sender CPU and 1.34 s of receiver CPU, 1.60 s; this way 0.61 s, 1.10 s and 1.02 s.
 * An upload makes two such hops per byte (client to first node, first node to the next), on
 * the same two cores.
 *
 * Only what a PutChunk needs is here: one unary call per stream, a request already framed
 * (framing.ts), a small response. Sending needs no HPACK state (headers go as literals), but
 * reading the server's headers would (Huffman, a dynamic table), so they are not read: a call
 * that ends with a response message is a success, and anything else (a trailers-only answer,
 * a reset, a lost connection, a timeout) is a FastPathFailure. The caller then makes the same
 * call through grpc-js, which reports what the node says. PutChunk is idempotent: the node
 * stores a chunk under its content's hash, after checking it, so sending twice is safe.
 */
import { parseHostPort } from "../core/address";
import { FRAME_HEADER_BYTES } from "./framing";

/** Frames carry at most this much data even when a peer allows more: bounds one write. */
const MAX_SEND_FRAME_BYTES = 1024 * 1024;
/** Receive windows we grant: responses are small, so one grant covers many calls. */
const RECEIVE_WINDOW_BYTES = 16 * 1024 * 1024;

const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8, CONTINUATION: 0x9 };
const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8 };
const SETTING = { INITIAL_WINDOW_SIZE: 0x4, MAX_FRAME_SIZE: 0x5, MAX_CONCURRENT_STREAMS: 0x3 };
const DEFAULT_WINDOW_BYTES = 65_535;
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const FRAME_HEAD_BYTES = 9;
const MAX_STREAM_ID = 2 ** 31 - 1;

/** The fast path did not end in a plain success; the caller retries through grpc-js. */
export class FastPathFailure extends Error {}

/** Calls on this path, and the largest DATA frame sent, for tests: that the path is really taken, with large frames. */
export const chunkSenderCounts = { succeeded: 0, failed: 0, largestFrameBytes: 0 };

function frameHead(length: number, type: number, flags: number, stream: number): Buffer {
  const head = Buffer.allocUnsafe(FRAME_HEAD_BYTES);
  head.writeUIntBE(length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return head;
}

const frameOf = (type: number, flags: number, stream: number, payload: Buffer) => Buffer.concat([frameHead(payload.length, type, flags, stream), payload]);

/** An HPACK integer with an N-bit prefix (RFC 7541 5.1). */
function hpackInteger(value: number, prefixBits: number, firstByteFlags: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [firstByteFlags | value];
  const bytes = [firstByteFlags | max];
  for (value -= max; value >= 128; value = Math.floor(value / 128)) bytes.push((value % 128) | 128);
  bytes.push(value);
  return bytes;
}

/** A header block of literal fields without indexing, new names, no Huffman (RFC 7541 6.2.2). */
function hpackLiterals(headers: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    const n = Buffer.from(name, "latin1");
    const v = Buffer.from(value, "latin1");
    parts.push(Buffer.from([0x00, ...hpackInteger(n.length, 7, 0)]), n, Buffer.from(hpackInteger(v.length, 7, 0)), v);
  }
  return Buffer.concat(parts);
}

interface Call {
  /** The gRPC-framed request. */
  request: Buffer;
  sent: number;
  window: number;
  /** Response DATA, to be one gRPC-framed message. */
  received: Buffer[];
  /** A HEADERS/CONTINUATION block is open (END_STREAM waits for its END_HEADERS). */
  endsWithHeaderBlock: boolean;
  resolve(message: Buffer): void;
  reject(err: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

type Socket = { write(data: Uint8Array): number; end(): void };

/** Rejects with a FastPathFailure when `deadlineMs` passes first. */
function beforeDeadline<T>(promise: Promise<T>, deadlineMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FastPathFailure(`${what} took too long`)), Math.max(0, deadlineMs - Date.now()));
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** One HTTP/2 connection: its settings, windows and calls. */
class Connection {
  private socket: Socket | null = null;
  /** The server's first SETTINGS arrived: calls may start. */
  readonly ready: Promise<void>;
  private markReady!: () => void;
  private failOpen!: (err: Error) => void;
  private settled = false;
  /** GOAWAY came, or the stream ids ran out: no new calls. */
  private draining = false;
  private dead = false;
  private peerMaxFrame = 16_384;
  private peerInitialWindow = DEFAULT_WINDOW_BYTES;
  private peerMaxStreams = Number.POSITIVE_INFINITY;
  private connectionWindow = DEFAULT_WINDOW_BYTES;
  private receivedSinceUpdate = 0;
  private nextStreamId = 1;
  private readonly calls = new Map<number, Call>();
  /** Calls waiting for a free stream. */
  private readonly queued: (() => void)[] = [];
  private unsent: Buffer[] = [];
  private inbox: Buffer = Buffer.alloc(0);

  constructor(
    host: string,
    port: number,
    private readonly onGone: (connection: Connection) => void,
  ) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.markReady = resolve;
      this.failOpen = reject;
    });
    this.ready.catch(() => {}); // observed by calls; an unused connection must not raise
    Bun.connect({
      hostname: host,
      port,
      socket: {
        open: (socket) => {
          this.socket = socket;
          // Our settings, and a wide connection window for the many small responses.
          this.write(Buffer.concat([PREFACE, frameOf(FRAME.SETTINGS, 0, 0, settingsPayload([[SETTING.INITIAL_WINDOW_SIZE, RECEIVE_WINDOW_BYTES]])), windowUpdate(0, RECEIVE_WINDOW_BYTES - DEFAULT_WINDOW_BYTES)]));
        },
        data: (_socket, data) => this.receive(data),
        drain: () => this.pump(),
        close: () => this.drop(new FastPathFailure("connection closed")),
        error: (_socket, err) => this.drop(new FastPathFailure(`connection failed: ${err.message}`)),
        connectError: (_socket, err) => this.drop(new FastPathFailure(`cannot connect: ${err.message}`)),
      },
    }).catch((err: Error) => this.drop(new FastPathFailure(`cannot connect: ${err.message}`)));
  }

  /** Whether new calls may start here. */
  get usable(): boolean {
    return !this.dead && !this.draining;
  }

  /** One call on this connection (see ChunkSender.call). */
  async call(headers: [string, string][], framed: Buffer, deadlineMs: number): Promise<Buffer> {
    await beforeDeadline(this.ready, deadlineMs, "connecting");
    while (this.calls.size >= this.peerMaxStreams && this.usable) await beforeDeadline(new Promise<void>((start) => this.queued.push(start)), deadlineMs, "waiting for a stream");
    if (!this.usable) throw new FastPathFailure("the connection closed");
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    if (this.nextStreamId > MAX_STREAM_ID) this.draining = true;
    return new Promise<Buffer>((resolve, reject) => {
      const timeoutMs = Math.max(1, deadlineMs - Date.now());
      const call: Call = {
        request: framed,
        sent: 0,
        window: this.peerInitialWindow,
        received: [],
        endsWithHeaderBlock: false,
        resolve,
        reject,
        // The whole connection goes: what it still has queued to send is in an unknown state, and
        // a node that does not answer one call in time is not answering the others either.
        timer: setTimeout(() => this.drop(new FastPathFailure(`no answer within ${timeoutMs} ms`)), timeoutMs),
      };
      this.calls.set(id, call);
      this.write(frameOf(FRAME.HEADERS, FLAG.END_HEADERS, id, hpackLiterals([...headers, ["grpc-timeout", `${timeoutMs}m`]])));
      this.pump();
    });
  }

  /** Closes the connection; its calls fail. */
  drop(err: Error) {
    if (this.dead) return;
    this.dead = true;
    this.failOpen(err);
    for (const id of [...this.calls.keys()]) this.finish(id, err);
    for (const start of this.queued.splice(0)) start();
    this.socket?.end();
    this.socket = null;
    this.onGone(this);
  }

  private write(data: Buffer) {
    if (!this.socket) return;
    if (this.unsent.length > 0) {
      this.unsent.push(data);
      return;
    }
    const n = this.socket.write(data);
    if (n < data.length) this.unsent.push(n > 0 ? data.subarray(n) : data);
  }

  /** Sends what the windows and the socket allow, in stream order. */
  private pump() {
    const socket = this.socket;
    if (!socket) return;
    while (this.unsent.length > 0) {
      const data = this.unsent[0]!;
      const n = socket.write(data);
      if (n < data.length) {
        this.unsent[0] = data.subarray(Math.max(n, 0));
        return;
      }
      this.unsent.shift();
    }
    const frameLimit = Math.min(this.peerMaxFrame, MAX_SEND_FRAME_BYTES);
    for (const [id, call] of this.calls) {
      while (call.sent < call.request.length) {
        const n = Math.min(frameLimit, this.connectionWindow, call.window, call.request.length - call.sent);
        if (n <= 0) break;
        const last = call.sent + n === call.request.length;
        this.write(frameHead(n, FRAME.DATA, last ? FLAG.END_STREAM : 0, id));
        if (n > chunkSenderCounts.largestFrameBytes) chunkSenderCounts.largestFrameBytes = n;
        this.write(call.request.subarray(call.sent, call.sent + n));
        call.sent += n;
        call.window -= n;
        this.connectionWindow -= n;
        if (this.unsent.length > 0) return;
      }
      if (this.connectionWindow <= 0) return;
    }
  }

  private receive(data: Uint8Array) {
    this.inbox = this.inbox.length > 0 ? Buffer.concat([this.inbox, data]) : Buffer.from(data);
    let at = 0;
    while (this.inbox.length - at >= FRAME_HEAD_BYTES && !this.dead) {
      const length = this.inbox.readUIntBE(at, 3);
      if (this.inbox.length - at < FRAME_HEAD_BYTES + length) break;
      const type = this.inbox[at + 3]!;
      const flags = this.inbox[at + 4]!;
      const stream = this.inbox.readUInt32BE(at + 5) & 0x7fffffff;
      // A view: the inbox is our own copy of what arrived, and is never written again.
      const payload = this.inbox.subarray(at + FRAME_HEAD_BYTES, at + FRAME_HEAD_BYTES + length);
      at += FRAME_HEAD_BYTES + length;
      this.onFrame(type, flags, stream, payload);
    }
    this.inbox = this.inbox.subarray(at);
    this.pump();
  }

  private onFrame(type: number, flags: number, stream: number, payload: Buffer) {
    switch (type) {
      case FRAME.SETTINGS:
        if (flags & FLAG.ACK) return;
        for (let i = 0; i + 6 <= payload.length; i += 6) {
          const id = payload.readUInt16BE(i);
          const value = payload.readUInt32BE(i + 2);
          if (id === SETTING.MAX_FRAME_SIZE) this.peerMaxFrame = value;
          else if (id === SETTING.MAX_CONCURRENT_STREAMS) this.peerMaxStreams = Math.max(1, value);
          else if (id === SETTING.INITIAL_WINDOW_SIZE) {
            for (const call of this.calls.values()) call.window += value - this.peerInitialWindow;
            this.peerInitialWindow = value;
          }
        }
        this.write(frameOf(FRAME.SETTINGS, FLAG.ACK, 0, Buffer.alloc(0)));
        if (!this.settled) {
          this.settled = true;
          this.markReady();
        }
        return;
      case FRAME.WINDOW_UPDATE: {
        const increment = payload.readUInt32BE(0) & 0x7fffffff;
        if (stream === 0) this.connectionWindow += increment;
        else {
          const call = this.calls.get(stream);
          if (call) call.window += increment;
        }
        return;
      }
      case FRAME.PING:
        if (!(flags & FLAG.ACK)) this.write(frameOf(FRAME.PING, FLAG.ACK, 0, payload));
        return;
      case FRAME.GOAWAY: {
        // Streams above the last one the server took were not processed; the rest may finish.
        const last = payload.readUInt32BE(0) & 0x7fffffff;
        this.draining = true;
        for (const id of [...this.calls.keys()]) if (id > last) this.finish(id, new FastPathFailure("the server is going away"));
        if (this.calls.size === 0) this.drop(new FastPathFailure("the server went away"));
        return;
      }
      case FRAME.RST_STREAM:
        this.finish(stream, new FastPathFailure(`the server reset the call (code ${payload.readUInt32BE(0)})`));
        return;
      case FRAME.DATA: {
        this.receivedSinceUpdate += payload.length;
        if (this.receivedSinceUpdate >= RECEIVE_WINDOW_BYTES / 2) {
          this.write(windowUpdate(0, this.receivedSinceUpdate));
          this.receivedSinceUpdate = 0;
        }
        const call = this.calls.get(stream);
        if (!call) return;
        const padding = flags & FLAG.PADDED ? payload[0]! : -1;
        call.received.push(padding >= 0 ? payload.subarray(1, payload.length - padding) : payload);
        if (flags & FLAG.END_STREAM) this.ended(stream, call);
        return;
      }
      case FRAME.HEADERS:
      case FRAME.CONTINUATION: {
        const call = this.calls.get(stream);
        if (!call) return;
        if (type === FRAME.HEADERS && flags & FLAG.END_STREAM) call.endsWithHeaderBlock = true;
        if (flags & FLAG.END_HEADERS && call.endsWithHeaderBlock) this.ended(stream, call);
        return;
      }
    }
  }

  /** The server ended the call: a success when it sent one whole response message. */
  private ended(id: number, call: Call) {
    const body = Buffer.concat(call.received);
    const length = body.length >= FRAME_HEADER_BYTES ? body.readUInt32BE(1) : -1;
    if (length >= 0 && body[0] === 0 && body.length === FRAME_HEADER_BYTES + length) this.finish(id, body.subarray(FRAME_HEADER_BYTES));
    else this.finish(id, new FastPathFailure("the call ended without a response message"));
  }

  private finish(id: number, outcome: Buffer | Error) {
    const call = this.calls.get(id);
    if (!call) return;
    this.calls.delete(id);
    clearTimeout(call.timer);
    if (outcome instanceof Error) {
      chunkSenderCounts.failed++;
      call.reject(outcome);
    } else {
      chunkSenderCounts.succeeded++;
      call.resolve(outcome);
    }
    this.queued.shift()?.();
    if (this.draining && this.calls.size === 0) this.drop(new FastPathFailure("the server went away"));
  }
}

/** Calls to one node: a connection opened on first use, and again when it is lost or drains. */
export class ChunkSender {
  private connection: Connection | null = null;
  private closed = false;
  private readonly host: string;
  private readonly port: number;
  /** The header fields every call shares, but the path: pseudo-headers, which must come first, then the rest. */
  private readonly pseudoHeaders: [string, string][];
  private readonly grpcHeaders: [string, string][] = [["content-type", "application/grpc"], ["te", "trailers"]];

  /** `address`: HOST:PORT as gRPC dials it (IPv6 bracketed), also the calls' :authority. */
  constructor(address: string) {
    ({ host: this.host, port: this.port } = parseHostPort(address));
    this.pseudoHeaders = [[":method", "POST"], [":scheme", "http"], [":authority", address]];
  }

  /**
   * One unary call: `path`, `framed` (the request with its 5-byte gRPC header), `metadata`
   * (lower-case names). Resolves with the response message (without its gRPC header); rejects
   * with FastPathFailure for anything but a plain success.
   */
  call(path: string, framed: Buffer, metadata: [string, string][], timeoutMs: number): Promise<Buffer> {
    if (this.closed) return Promise.reject(new FastPathFailure("closed"));
    if (!this.connection?.usable) {
      this.connection = new Connection(this.host, this.port, (gone) => {
        if (this.connection === gone) this.connection = null;
      });
    }
    return this.connection.call([...this.pseudoHeaders, [":path", path], ...this.grpcHeaders, ...metadata], framed, Date.now() + timeoutMs);
  }

  close() {
    this.closed = true;
    this.connection?.drop(new FastPathFailure("closed"));
  }
}

function settingsPayload(settings: [number, number][]): Buffer {
  const payload = Buffer.alloc(6 * settings.length);
  settings.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return payload;
}

function windowUpdate(stream: number, increment: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(increment, 0);
  return frameOf(FRAME.WINDOW_UPDATE, 0, stream, payload);
}
