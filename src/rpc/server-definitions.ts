/**
 * Servers' service definitions, loaded with proto-loader from the embedded descriptors.
 * Unlike the clients' (definitions.ts), they carry the protocol's descriptor protos, what a
 * gRPC reflection service would serve. A server loads them once, at start-up (with loading
 * proto-loader itself, ~30 ms of CPU on 2 cores); clients never load this module.
 */
import type * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { DROPBOX_DESCRIPTOR, HEALTH_DESCRIPTOR } from "./proto";
import { OBJECT_OPTIONS } from "./definitions";

const LOADER_OPTIONS: protoLoader.Options = { keepCase: false, ...OBJECT_OPTIONS };

let loaded: protoLoader.PackageDefinition | undefined;

/** The definition of a service by its full name ("dropbox.MasterService", "grpc.health.v1.Health"). */
export function serverDefinition(service: string): grpc.ServiceDefinition {
  loaded ??= { ...protoLoader.fromJSON(DROPBOX_DESCRIPTOR, LOADER_OPTIONS), ...protoLoader.fromJSON(HEALTH_DESCRIPTOR, LOADER_OPTIONS) };
  const definition = loaded[service];
  if (!definition || "format" in definition) throw new Error(`no service ${service} in the protocol`);
  return definition as grpc.ServiceDefinition;
}
