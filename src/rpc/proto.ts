/**
 * The protocol, embedded in the binary: the .proto files are parsed at build time (a
 * macro) and their descriptors inlined, so the compiled executable needs no file beside
 * it and does not parse protocol text at start-up.
 *
 * This module holds what clients need: a protobufjs root and client constructors built from
 * it directly (definitions.ts). Servers get their definitions from proto-loader
 * (server-definitions.ts), from the same descriptors.
 */
import * as grpc from "@grpc/grpc-js";
import protobuf from "protobufjs/light";
import { protoDescriptor } from "./proto-descriptor" with { type: "macro" };
import { serviceDefinition } from "./definitions";

/** The protobufjs JSON descriptors of proto/dropbox.proto and proto/health.proto. */
export const DROPBOX_DESCRIPTOR: protobuf.INamespace = protoDescriptor("dropbox.proto");
export const HEALTH_DESCRIPTOR: protobuf.INamespace = protoDescriptor("health.proto");

type ServiceCtor = grpc.ServiceClientConstructor;

const dropbox = protobuf.Root.fromJSON(DROPBOX_DESCRIPTOR);

function clientOf(root: protobuf.Root, service: string): ServiceCtor {
  return grpc.makeGenericClientConstructor(serviceDefinition(root, service), service.slice(service.lastIndexOf(".") + 1));
}

/** Client constructors (their `.service` is the definition they call with). */
export const MasterServiceClient = clientOf(dropbox, "dropbox.MasterService");
export const StorageServiceClient = clientOf(dropbox, "dropbox.StorageService");
export const ProcessServiceClient = clientOf(dropbox, "dropbox.ProcessService");

let healthClient: ServiceCtor | undefined;
/** The standard health service's client constructor, built on first use: only readiness checks need it. */
export function healthClientConstructor(): ServiceCtor {
  healthClient ??= clientOf(protobuf.Root.fromJSON(HEALTH_DESCRIPTOR), "grpc.health.v1.Health");
  return healthClient;
}
