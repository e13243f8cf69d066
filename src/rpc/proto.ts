/**
 * The protocol, embedded in the binary: the .proto files are parsed at build time (a
 * macro) and their descriptors inlined, so the compiled executable needs no file beside
 * it and does not parse protocol text at start-up.
 *
 * This module holds what clients need: client constructors whose message types are built
 * on first use (definitions.ts), with functions protobufjs wrote at build time
 * (proto-codecs.ts). Servers get their definitions from proto-loader (server-definitions.ts),
 * from the same descriptors.
 */
import * as grpc from "@grpc/grpc-js";
import type protobuf from "protobufjs/light";
import { protoDescriptor } from "./proto-descriptor" with { type: "macro" };
import { protoCodecSources } from "./proto-codecs" with { type: "macro" };
import type { CodecSources } from "./proto-codecs";
import { Protocol } from "./definitions";

/** The protobufjs JSON descriptors of proto/dropbox.proto and proto/health.proto. */
export const DROPBOX_DESCRIPTOR: protobuf.INamespace = protoDescriptor("dropbox.proto");
export const HEALTH_DESCRIPTOR: protobuf.INamespace = protoDescriptor("health.proto");
/** The source of protobufjs's generated functions for their message types, written at build time. */
export const DROPBOX_CODECS: Record<string, CodecSources> = protoCodecSources("dropbox.proto");
export const HEALTH_CODECS: Record<string, CodecSources> = protoCodecSources("health.proto");

type ServiceCtor = grpc.ServiceClientConstructor;

const dropbox = new Protocol(DROPBOX_DESCRIPTOR, DROPBOX_CODECS);

function clientOf(protocol: Protocol, service: string): ServiceCtor {
  return grpc.makeGenericClientConstructor(protocol.service(service), service);
}

/** Client constructors (their `.service` is the definition they call with). */
export const MasterServiceClient = clientOf(dropbox, "MasterService");
export const StorageServiceClient = clientOf(dropbox, "StorageService");
export const ProcessServiceClient = clientOf(dropbox, "ProcessService");

let healthClient: ServiceCtor | undefined;
/** The standard health service's client constructor, built on first use: only readiness checks need it. */
export function healthClientConstructor(): ServiceCtor {
  healthClient ??= clientOf(new Protocol(HEALTH_DESCRIPTOR, HEALTH_CODECS), "Health");
  return healthClient;
}
