/**
 * The protocol, embedded in the binary: the .proto files are parsed at build time (a
 * macro) and their descriptors inlined, so the compiled executable needs no file beside
 * it and does not parse protocol text at start-up.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type protobuf from "protobufjs";
import { protoDescriptor } from "./proto-descriptor" with { type: "macro" };

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
  arrays: true,
  oneofs: true,
};

function loadProto(descriptor: protobuf.INamespace): grpc.GrpcObject {
  return grpc.loadPackageDefinition(protoLoader.fromJSON(descriptor, LOADER_OPTIONS));
}

type ServiceCtor = grpc.ServiceClientConstructor;

const dropbox = loadProto(protoDescriptor("dropbox.proto")).dropbox as grpc.GrpcObject;

/** Client constructors (their `.service` is the server-side definition). */
export const MasterServiceClient = dropbox.MasterService as ServiceCtor;
export const StorageServiceClient = dropbox.StorageService as ServiceCtor;
export const ProcessServiceClient = dropbox.ProcessService as ServiceCtor;

let healthClient: ServiceCtor | undefined;
/**
 * The standard health service's client constructor, built on first use: only servers and
 * readiness checks need it, and building it costs every other command ~2 ms of start-up.
 */
export function healthClientConstructor(): ServiceCtor {
  healthClient ??= ((((loadProto(protoDescriptor("health.proto")).grpc as grpc.GrpcObject).health as grpc.GrpcObject).v1 as grpc.GrpcObject).Health as ServiceCtor);
  return healthClient;
}
