/**
 * What HTTP/2 DATA frame size costs under Bun, for the choice of how chunks should leave a
 * process. 1 GiB goes as 4 MiB unary gRPC calls, 4 in flight, to a grpc-js server (what our
 * nodes run), sent three ways:
 *  - by grpc-js, whose HTTP/2 is Bun's: DATA frames of at most 16 KiB, one `send` each;
 *  - by a minimal gRPC-over-HTTP/2 sender on Bun.connect, with 16 KiB frames;
 *  - by the same sender with 1 MiB frames, the server advertising SETTINGS_MAX_FRAME_SIZE
 *    1 MiB (set through grpc-js's `commonServerOptions`, an internal).
 * Each side runs in its own process; CPU is the process's own (user + system). Not a test.
 *
 *   bun bench/h2-frames.ts [--mib 1024] [--reps 3]
 */
import * as grpc from "@grpc/grpc-js";
import { median } from "./lib/stats";

const MESSAGE_BYTES = 4 << 20;
const IN_FLIGHT = 4;
const METHOD = "/bench.Sink/Put";
const identity = (b: Buffer) => b;
const SINK: grpc.ServiceDefinition = {
  Put: { path: METHOD, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};
const MESSAGE_LIMITS = { "grpc.max_receive_message_length": MESSAGE_BYTES + 1024, "grpc.max_send_message_length": MESSAGE_BYTES + 1024 };

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/** One side's account, printed by the child as a JSON line on stdout. */
interface SideReport {
  cpuMs: number;
  wallMs?: number;
  bytes?: number;
  calls?: number;
}

const cpuMsSince = (start: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
};

/** Receiver, a grpc-js server: prints its port, then a report once `total` bytes have come, then exits. */
async function serve(maxFrameSize: number, total: number) {
  const server = new grpc.Server(MESSAGE_LIMITS);
  // grpc-js passes these to http2.createServer; it has no option of its own for the frame size.
  const internals = server as unknown as { commonServerOptions: { settings?: Record<string, number> } };
  internals.commonServerOptions.settings = { ...internals.commonServerOptions.settings, maxFrameSize };
  let start: NodeJS.CpuUsage | null = null;
  let bytes = 0;
  let calls = 0;
  server.addService(SINK, {
    Put: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      bytes += call.request.length;
      calls++;
      callback(null, Buffer.alloc(0));
      if (bytes >= total) {
        process.stdout.write(`${JSON.stringify({ cpuMs: cpuMsSince(start!), bytes, calls } satisfies SideReport)}\n`);
        setTimeout(() => process.exit(0), 100);
      }
    },
  });
  const port = await new Promise<number>((done, fail) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? fail(err) : done(p))));
  start = process.cpuUsage();
  process.stdout.write(`${port}\n`);
}

/** Sender, grpc-js (Bun's HTTP/2 underneath). */
function sendWithGrpcJs(port: number, total: number) {
  const Client = grpc.makeGenericClientConstructor(SINK, "Sink");
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { ...MESSAGE_LIMITS, "grpc-node.flow_control_window": 16 << 20 }) as unknown as {
    Put(message: Buffer, callback: (err: Error | null) => void): void;
    close(): void;
  };
  const message = Buffer.alloc(MESSAGE_BYTES, 7);
  const start = process.cpuUsage();
  const t0 = performance.now();
  let started = 0;
  let finished = 0;
  const next = () => {
    if (started * MESSAGE_BYTES >= total) return;
    started++;
    client.Put(message, (err) => {
      if (err) throw err;
      if (++finished * MESSAGE_BYTES >= total) {
        process.stdout.write(`${JSON.stringify({ cpuMs: cpuMsSince(start), wallMs: performance.now() - t0 } satisfies SideReport)}\n`);
        client.close();
      } else next();
    });
  };
  for (let i = 0; i < IN_FLIGHT; i++) next();
}

const frameHeader = (length: number, type: number, flags: number, stream: number) => {
  const header = Buffer.alloc(9);
  header.writeUIntBE(length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(stream, 5);
  return header;
};
const frame = (type: number, flags: number, stream: number, payload: Buffer) => Buffer.concat([frameHeader(payload.length, type, flags, stream), payload]);
/** An HPACK literal header field without indexing, no Huffman: enough for a request's few short headers. */
const literal = (name: string, value: string) => Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);

const FRAME = { DATA: 0, HEADERS: 1, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 };
const SETTING = { INITIAL_WINDOW_SIZE: 4, MAX_FRAME_SIZE: 5 };

/**
 * Sender, minimal gRPC over HTTP/2 on Bun.connect: one stream per call, DATA frames as large as
 * the server's SETTINGS_MAX_FRAME_SIZE (capped at `frameCap`) and the flow-control windows
 * allow. A call is done when its stream ends; its status is not decoded (HPACK is not needed
 * to send, only to read), so this is a measuring tool, not a client.
 */
function sendRaw(port: number, total: number, frameCap: number) {
  const message = Buffer.alloc(5 + MESSAGE_BYTES, 7);
  message[0] = 0;
  message.writeUInt32BE(MESSAGE_BYTES, 1);
  const start = process.cpuUsage();
  const t0 = performance.now();
  let maxFrame = 16_384;
  let initialStreamWindow = 65_535;
  let connectionWindow = 65_535;
  let ready = false;
  let nextStreamId = 1;
  let callsStarted = 0;
  let callsDone = 0;
  const calls = total / MESSAGE_BYTES;
  /** Streams still sending: id -> bytes of the message sent, and its window. */
  const sending = new Map<number, { sent: number; window: number }>();
  let unsent: Buffer[] = [];
  let inbox = Buffer.alloc(0);
  let socket: { write(data: Buffer): number; end(): void };
  const write = (data: Buffer) => {
    if (unsent.length > 0) return void unsent.push(data);
    const n = socket.write(data);
    if (n < data.length) unsent.push(data.subarray(n));
  };
  const headers = Buffer.concat([
    literal(":method", "POST"), literal(":scheme", "http"), literal(":path", METHOD), literal(":authority", `127.0.0.1:${port}`),
    literal("content-type", "application/grpc"), literal("te", "trailers"),
  ]);
  const pump = () => {
    while (unsent.length > 0) {
      const data = unsent.shift()!;
      const n = socket.write(data);
      if (n < data.length) return void unsent.unshift(data.subarray(n));
    }
    if (!ready) return;
    while (sending.size < IN_FLIGHT && callsStarted < calls) {
      const id = nextStreamId;
      nextStreamId += 2;
      callsStarted++;
      sending.set(id, { sent: 0, window: initialStreamWindow });
      write(frame(FRAME.HEADERS, 4, id, headers));
    }
    for (const [id, stream] of sending) {
      while (stream.sent < message.length && unsent.length === 0) {
        const n = Math.min(maxFrame, frameCap, connectionWindow, stream.window, message.length - stream.sent);
        if (n <= 0) break;
        const last = stream.sent + n === message.length;
        write(frameHeader(n, FRAME.DATA, last ? 1 : 0, id));
        write(message.subarray(stream.sent, stream.sent + n));
        stream.sent += n;
        stream.window -= n;
        connectionWindow -= n;
        if (last) sending.delete(id);
      }
      if (unsent.length > 0) return;
    }
  };
  const onFrame = (type: number, flags: number, stream: number, body: Buffer) => {
    if (type === FRAME.SETTINGS && !(flags & 1)) {
      for (let i = 0; i + 6 <= body.length; i += 6) {
        const id = body.readUInt16BE(i);
        const value = body.readUInt32BE(i + 2);
        if (id === SETTING.MAX_FRAME_SIZE) maxFrame = value;
        if (id === SETTING.INITIAL_WINDOW_SIZE) initialStreamWindow = value;
      }
      write(frame(FRAME.SETTINGS, 1, 0, Buffer.alloc(0)));
      ready = true;
    } else if (type === FRAME.WINDOW_UPDATE) {
      const increment = body.readUInt32BE(0) & 0x7fffffff;
      if (stream === 0) connectionWindow += increment;
      else if (sending.has(stream)) sending.get(stream)!.window += increment;
    } else if (type === FRAME.PING && !(flags & 1)) {
      write(frame(FRAME.PING, 1, 0, body));
    } else if (type === FRAME.HEADERS && flags & 1) {
      // Trailers: the call is over.
      if (++callsDone === calls) {
        process.stdout.write(`${JSON.stringify({ cpuMs: cpuMsSince(start), wallMs: performance.now() - t0 } satisfies SideReport)}\n`);
        socket.end();
        return;
      }
    } else if (type === FRAME.GOAWAY) {
      throw new Error(`server sent GOAWAY, code ${body.readUInt32BE(4)}`);
    } else if (type === 3) {
      throw new Error(`server reset stream ${stream}, code ${body.readUInt32BE(0)}`);
    }
    pump();
  };
  void Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      open(s) {
        socket = s;
        // A large connection window for the server's responses is not needed: they are empty.
        write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0))]));
      },
      data(_s, data) {
        inbox = inbox.length > 0 ? Buffer.concat([inbox, data]) : Buffer.from(data);
        while (inbox.length >= 9) {
          const length = inbox.readUIntBE(0, 3);
          if (inbox.length < 9 + length) break;
          onFrame(inbox[3]!, inbox[4]!, inbox.readUInt32BE(5) & 0x7fffffff, inbox.subarray(9, 9 + length));
          inbox = inbox.subarray(9 + length);
        }
      },
      drain: pump,
    },
  });
}

/** A child's stdout, a line at a time. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const bytes of stream) {
    text += decoder.decode(bytes, { stream: true });
    for (let end = text.indexOf("\n"); end >= 0; end = text.indexOf("\n")) {
      yield text.slice(0, end);
      text = text.slice(end + 1);
    }
  }
}

async function nextLine(from: AsyncGenerator<string>): Promise<string> {
  const { value, done } = await from.next();
  if (done) throw new Error("a child process ended before reporting");
  return value;
}

/** One transfer: a receiver advertising `maxFrameSize`, a sender of kind `sender`. */
async function once(maxFrameSize: number, sender: string[], mib: number): Promise<{ sender: SideReport; receiver: SideReport }> {
  const self = [process.execPath, import.meta.path];
  const receiver = Bun.spawn([...self, "--serve", String(maxFrameSize), String(mib)], { stdout: "pipe", stderr: "inherit" });
  try {
    const fromReceiver = lines(receiver.stdout);
    const port = await nextLine(fromReceiver);
    const client = Bun.spawn([...self, ...sender, port, String(mib)], { stdout: "pipe", stderr: "inherit" });
    const [sent, received] = await Promise.all([nextLine(lines(client.stdout)), nextLine(fromReceiver)]);
    await client.exited;
    return { sender: JSON.parse(sent) as SideReport, receiver: JSON.parse(received) as SideReport };
  } finally {
    receiver.kill();
  }
}

async function main() {
  const mib = flag("mib", 1024);
  const reps = flag("reps", 3);
  const cases: [string, number, string[]][] = [
    ["grpc-js (Bun's HTTP/2: 16 KiB frames)", 16_384, ["--send-grpc-js"]],
    ["minimal sender, 16 KiB frames", 16_384, ["--send-raw", "16384"]],
    ["minimal sender, 1 MiB frames", 1 << 20, ["--send-raw", String(1 << 20)]],
  ];
  console.log(`| ${mib} MiB as 4 MiB calls, ${IN_FLIGHT} in flight, to grpc-js; median of ${reps} | wall | sender CPU | receiver CPU |`);
  console.log("|---|---:|---:|---:|");
  for (const [label, maxFrameSize, sender] of cases) {
    const runs: { sender: SideReport; receiver: SideReport }[] = [];
    for (let i = 0; i < reps; i++) runs.push(await once(maxFrameSize, sender, mib));
    const m = (pick: (r: (typeof runs)[number]) => number) => median(runs.map(pick));
    console.log(`| ${label} | ${m((r) => r.sender.wallMs!).toFixed(0)} ms | ${m((r) => r.sender.cpuMs).toFixed(0)} ms | ${m((r) => r.receiver.cpuMs).toFixed(0)} ms |`);
  }
}

const role = process.argv[2];
if (role === "--serve") await serve(Number(process.argv[3]), Number(process.argv[4]) << 20);
else if (role === "--send-grpc-js") sendWithGrpcJs(Number(process.argv[3]), Number(process.argv[4]) << 20);
else if (role === "--send-raw") sendRaw(Number(process.argv[4]), Number(process.argv[5]) << 20, Number(process.argv[3]));
else await main();
