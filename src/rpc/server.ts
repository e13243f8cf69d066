/** gRPC server plumbing shared by master and node: binding, handler adaptation, health. */
import * as grpc from "@grpc/grpc-js";
import { formatHostPort } from "../core/address";
import { DropboxError } from "../core/errors";
import { MAX_MESSAGE_BYTES } from "../core/limits";
import { HealthClient } from "./proto";
import { toServiceError } from "./status";

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

/** An async handler: returns the response or throws; the adapter owns the callback. */
export type UnaryHandler<Req, Res> = (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res;

/** Adapts an async handler to grpc-js, mapping thrown errors to statuses in one place. */
export function unary<Req, Res>(handler: UnaryHandler<Req, Res>, log: (line: string) => void): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    rpcCounters.calls++;
    let result: Promise<Res>;
    try {
      result = Promise.resolve(handler(call.request, call));
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (response) => callback(null, response),
      (err) => {
        rpcCounters.errors++;
        callback(toServiceError(err, log) as grpc.ServiceError);
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
      const status = this.statusOf(call.request.service);
      if (status === null) callback({ code: grpc.status.NOT_FOUND, details: "unknown service" } as grpc.ServiceError);
      else callback(null, { status });
    },
    Watch: (call: grpc.ServerWritableStream<{ service: string }, { status: string }>) => {
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

/** A service to serve: its definition (from a client constructor) and its handlers. */
export interface ServiceBinding {
  name: string;
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

/** A running server. */
export interface RpcServer {
  /** The port actually bound (the OS's choice when asked for port 0). */
  port: number;
  /** Stops accepting calls, gives running calls `graceMs`, then cuts them. */
  shutdown(graceMs?: number): Promise<void>;
}

/** Binds a server with the given services plus health, on host:port. A busy port is a clear error. */
export async function startServer(host: string, port: number, services: ServiceBinding[], log: (line: string) => void): Promise<RpcServer> {
  const server = new grpc.Server(SERVER_OPTIONS);
  for (const service of services) server.addService(service.definition, service.implementation);
  const health = new HealthService(new Set(services.map((s) => s.name)));
  server.addService(HealthClient.service, health.implementation);

  const address = formatHostPort(host, port);
  const boundPort = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) => {
      if (err) {
        const inUse = /EADDRINUSE|address already in use/i.test(err.message);
        reject(new DropboxError("UNAVAILABLE", inUse ? `port ${port} on ${host} is already in use` : `cannot listen on ${address}: ${err.message}`));
      } else resolve(bound);
    });
  });

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
