/**
 * grpc-js service definitions made straight from a protobufjs root, the way proto-loader
 * makes them but without its reflection data.
 *
 * proto-loader turns every message of the protocol into descriptor protos (for gRPC server
 * reflection) before it hands back a definition; grpc-js never reads them to make a call.
 * That work, with loading proto-loader itself (it builds descriptor.proto and the well-known
 * types as it loads), was 25-40 ms of a 70-100 ms `dropbox list` on 2 cores. Clients, which
 * start for one short command, build their definitions here; servers load theirs with
 * proto-loader (server-definitions.ts). test/unit.test.ts holds the two to the same paths,
 * names and bytes for every method.
 */
import type * as grpc from "@grpc/grpc-js";
import type protobuf from "protobufjs";

/** How decoded messages look: the options proto-loader is given for the same protocol. */
export interface ObjectOptions {
  longs: typeof Number;
  enums: typeof String;
  bytes: typeof Buffer;
  defaults: boolean;
  arrays: boolean;
  oneofs: boolean;
}

/** The options every process decodes with. */
export const OBJECT_OPTIONS: ObjectOptions = {
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
  arrays: true,
  oneofs: true,
};

/** proto-loader's serializer: a plain object in, its wire bytes out. */
function serializerOf(type: protobuf.Type): grpc.serialize<object> {
  return (value) => {
    if (Array.isArray(value)) throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`);
    return type.encode(type.fromObject(value)).finish() as Buffer;
  };
}

/** proto-loader's deserializer: wire bytes in, a plain object out. */
function deserializerOf(type: protobuf.Type, options: ObjectOptions): grpc.deserialize<object> {
  return (bytes) => type.toObject(type.decode(bytes), options);
}

/** lodash.camelcase of a method name, as proto-loader names a method's second alias ("ListFiles" -> "listFiles"). */
export function methodAlias(name: string): string {
  return name.charAt(0).toLowerCase() + name.slice(1);
}

/** The definition of `service` (a fully qualified name in `root`), for clients and servers alike. */
export function serviceDefinition(root: protobuf.Root, service: string, options: ObjectOptions = OBJECT_OPTIONS): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const method of root.lookupService(service).methodsArray) {
    method.resolve();
    const request = method.resolvedRequestType!;
    const response = method.resolvedResponseType!;
    definition[method.name] = {
      path: `/${service}/${method.name}`,
      requestStream: Boolean(method.requestStream),
      responseStream: Boolean(method.responseStream),
      requestSerialize: serializerOf(request),
      requestDeserialize: deserializerOf(request, options),
      responseSerialize: serializerOf(response),
      responseDeserialize: deserializerOf(response, options),
      originalName: methodAlias(method.name),
    };
  }
  return definition;
}
