/** gRPC server plumbing shared by master and node: binding, handler adaptation, health. */
import * as grpc from "@grpc/grpc-js";
import "./receive-buffers"; // large received messages land in reused buffers
import { formatHostPort } from "../core/address";
import { DropboxError, invalidArgument } from "../core/errors";
import { FLOW_CONTROL_WINDOW_BYTES, MAX_MESSAGE_BYTES, MAX_RECEIVE_FRAME_BYTES, SERVER_STREAM_WINDOW_BYTES } from "../core/limits";
import { type AuthPolicy, authInterceptor } from "./auth";
import { serverCredentials, type TlsServerConfig } from "./tls";
import { toServiceError } from "./status";
import { MAX_LIST_ITEMS, overlongList } from "./list-bound";

/** Server options: accept whole chunks, and keep idle peers' connections cheap. */
const SERVER_OPTIONS: grpc.ServerOptions = {
  "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
  "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
};

/**
 * What this process has served, cumulative since it started: calls are counted in the one
 * adapter below, chunk bytes where chunks move (the storage service). Read by ProcessService.
 */
export const rpcCounters = { calls: 0, errors: 0, bytesIn: 0, bytesOut: 0 };

/** Longest status detail sent: it travels as an HTTP/2 trailer, and peers cap header sizes. */
const MAX_STATUS_DETAILS_CHARS = 1024;

/**
 * Status details as they may go on the wire. grpc-js percent-encodes them with encodeURI,
 * which throws on a lone surrogate (an echo of a client's ill-formed string, or a message cut
 * mid-pair) outside any handler: that would take the whole process down.
 */
function safeDetails(details: string | undefined): string {
  const text = (details ?? "").toWellFormed();
  return text.length > MAX_STATUS_DETAILS_CHARS ? `${text.slice(0, MAX_STATUS_DETAILS_CHARS).toWellFormed()}…` : text;
}

/**
 * A request whose bytes did not decode as its message type. grpc-js would answer INTERNAL
 * on its own; the server's deserializers hand this over instead so the caller gets
 * INVALID_ARGUMENT (INTERNAL stays reserved for bugs).
 */
class Undecodable {
  constructor(readonly reason: string) {}
}

/** The definition with deserializers that turn undecodable bytes into an `Undecodable`. */
function tolerant(definition: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const methods = Object.entries(definition).map(([name, method]) => {
    const decode = method.requestDeserialize;
    const requestDeserialize = (bytes: Buffer) => {
      // Counted before decoding: a list of millions of tiny items must not be built first.
      const overlong = overlongList(bytes);
      if (overlong !== null) return new Undecodable(`field ${overlong} holds more than ${MAX_LIST_ITEMS} items`);
      try {
        return decode(bytes);
      } catch (err) {
        return new Undecodable(err instanceof Error ? err.message : String(err));
      }
    };
    return [name, { ...method, requestDeserialize }];
  });
  return Object.fromEntries(methods) as grpc.ServiceDefinition;
}

function undecodableError(request: unknown): DropboxError | null {
  return request instanceof Undecodable ? invalidArgument(`the request is not a valid protobuf message of its type (${request.reason})`) : null;
}

/** An async handler: returns the response or throws; the adapter owns the callback. */
export type UnaryHandler<Req, Res> = (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res;

/** Adapts an async handler to grpc-js, mapping thrown errors to statuses in one place. */
export function unary<Req, Res>(handler: UnaryHandler<Req, Res>, log: (line: string) => void): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    rpcCounters.calls++;
    let result: Promise<Res>;
    try {
      const undecodable = undecodableError(call.request);
      if (undecodable) throw undecodable;
      result = Promise.resolve(handler(call.request, call));
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (response) => callback(null, response),
      (err) => {
        rpcCounters.errors++;
        const status = toServiceError(err, log);
        callback({ ...status, details: safeDetails(status.details) } as grpc.ServiceError);
      },
    );
  };
}

type ServingStatus = "SERVING" | "NOT_SERVING";

/** The standard grpc.health.v1 service, reporting the same status for the server and each named service. */
class HealthService {
  private status: ServingStatus = "SERVING";
  private readonly watchers = new Set<grpc.ServerWritableStream<{ service: string }, { status: string }>>();

  constructor(private readonly serviceNames: Set<string>) {}

  set(status: ServingStatus) {
    this.status = status;
    for (const watcher of this.watchers) watcher.write({ status });
  }

  private statusOf(service: string): string | null {
    return service === "" || this.serviceNames.has(service) ? this.status : null;
  }

  readonly implementation: grpc.UntypedServiceImplementation = {
    Check: (call: grpc.ServerUnaryCall<{ service: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const undecodable = undecodableError(call.request);
      if (undecodable) return callback({ code: grpc.status.INVALID_ARGUMENT, details: undecodable.message } as grpc.ServiceError);
      const status = this.statusOf(call.request.service);
      if (status === null) callback({ code: grpc.status.NOT_FOUND, details: "unknown service" } as grpc.ServiceError);
      else callback(null, { status });
    },
    Watch: (call: grpc.ServerWritableStream<{ service: string }, { status: string }>) => {
      const undecodable = undecodableError(call.request);
      if (undecodable) return call.emit("error", { code: grpc.status.INVALID_ARGUMENT, details: undecodable.message });
      call.write({ status: this.statusOf(call.request.service) ?? "SERVICE_UNKNOWN" });
      this.watchers.add(call);
      call.on("cancelled", () => this.watchers.delete(call));
    },
  };

  endWatches() {
    for (const watcher of this.watchers) watcher.end();
    this.watchers.clear();
  }
}

/** A service to serve: its full name in the protocol, and its handlers. */
export interface ServiceBinding {
  name: string;
  implementation: grpc.UntypedServiceImplementation;
}

/**
 * Has the server accept DATA frames up to MAX_RECEIVE_FRAME_BYTES, with SERVER_STREAM_WINDOW_BYTES
 * of window per call. grpc-js has no options for these, but hands `commonServerOptions.settings`
 * to http2.createServer (an internal, checked here so an upgrade that moves it fails loudly):
 * chunk-sender.ts then sends a 4 MiB chunk in 4 frames instead of 256 (or 64 at the 64 KiB
 * default window).
 */
function allowLargeFrames(server: grpc.Server) {
  const internals = server as unknown as { commonServerOptions?: { settings?: Record<string, number> } };
  if (typeof internals.commonServerOptions !== "object") throw new Error("grpc-js internals changed: Server.commonServerOptions is gone (src/rpc/server.ts)");
  internals.commonServerOptions.settings = { ...internals.commonServerOptions.settings, maxFrameSize: MAX_RECEIVE_FRAME_BYTES, initialWindowSize: SERVER_STREAM_WINDOW_BYTES };
}

type Http2ServerInternals = { on(event: "session", listener: (session: { setLocalWindowSize?(bytes: number): void }) => void): void };

/**
 * Opens each connection's receive window to FLOW_CONTROL_WINDOW_BYTES as it is accepted. Left
 * at HTTP/2's 64 KiB, a sender waits for a WINDOW_UPDATE after every 64 KiB on a connection,
 * whatever its streams' windows. Through grpc-js's `http2Servers` (an internal, checked).
 */
function widenConnectionWindows(server: grpc.Server) {
  const internals = server as unknown as { http2Servers?: Map<Http2ServerInternals, unknown> };
  if (!(internals.http2Servers instanceof Map)) throw new Error("grpc-js internals changed: Server.http2Servers is gone (src/rpc/server.ts)");
  for (const http2Server of internals.http2Servers.keys()) http2Server.on("session", (session) => session.setLocalWindowSize?.(FLOW_CONTROL_WINDOW_BYTES));
}

/** A running server. */
export interface RpcServer {
  /** The port actually bound (the OS's choice when asked for port 0). */
  port: number;
  /** Stops accepting calls, gives running calls `graceMs`, then cuts them. */
  shutdown(graceMs?: number): Promise<void>;
}

/** Binds a server with the given services plus health, on host:port. A busy port is a clear error. */
export async function startServer(host: string, port: number, services: ServiceBinding[], log: (line: string) => void, auth?: AuthPolicy, tls?: TlsServerConfig): Promise<RpcServer> {
  // Tokens are checked before a request's body is read (auth.ts); health stays open.
  const server = new grpc.Server({ ...SERVER_OPTIONS, interceptors: auth ? [authInterceptor(auth)] : [] });
  allowLargeFrames(server);
  // Loaded here, not at the top: client commands import this module for `unary` and must not load proto-loader.
  const { serverDefinition } = await import("./server-definitions");
  for (const service of services) server.addService(tolerant(serverDefinition(service.name)), service.implementation);
  const health = new HealthService(new Set(services.map((s) => s.name)));
  server.addService(tolerant(serverDefinition("grpc.health.v1.Health")), health.implementation);

  const address = formatHostPort(host, port);
  const boundPort = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, serverCredentials(tls), (err, bound) => {
      if (err) {
        const inUse = /EADDRINUSE|address already in use/i.test(err.message);
        reject(new DropboxError("UNAVAILABLE", inUse ? `port ${port} on ${host} is already in use` : `cannot listen on ${address}: ${err.message}`));
      } else resolve(bound);
    });
  });

  widenConnectionWindows(server);
  let stopping: Promise<void> | null = null;
  return {
    port: boundPort,
    shutdown(graceMs = 2000) {
      // Idempotent: a signal to the whole process group can arrive twice.
      stopping ??= new Promise<void>((resolve) => {
        health.set("NOT_SERVING");
        health.endWatches();
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return stopping;
    },
  };
}
