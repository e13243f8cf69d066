/**
 * The protocol, embedded in the binary: the .proto texts are imported as strings at
 * build time, so the compiled executable needs no file beside it.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";
import dropboxProtoText from "../../proto/dropbox.proto" with { type: "text" };
import healthProtoText from "../../proto/health.proto" with { type: "text" };

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
  arrays: true,
  oneofs: true,
};

function loadProto(text: string): grpc.GrpcObject {
  const root = protobuf.parse(text, { keepCase: false }).root;
  return grpc.loadPackageDefinition(protoLoader.fromJSON(root.toJSON(), LOADER_OPTIONS));
}

type ServiceCtor = grpc.ServiceClientConstructor;

const dropbox = loadProto(dropboxProtoText).dropbox as grpc.GrpcObject;
const health = ((loadProto(healthProtoText).grpc as grpc.GrpcObject).health as grpc.GrpcObject).v1 as grpc.GrpcObject;

/** Client constructors (their `.service` is the server-side definition). */
export const MasterServiceClient = dropbox.MasterService as ServiceCtor;
export const StorageServiceClient = dropbox.StorageService as ServiceCtor;
export const ProcessServiceClient = dropbox.ProcessService as ServiceCtor;
export const HealthClient = health.Health as ServiceCtor;
