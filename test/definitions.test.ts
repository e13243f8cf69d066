/**
 * Clients build their service definitions from protobufjs directly (src/rpc/definitions.ts),
 * servers load theirs with proto-loader (src/rpc/server-definitions.ts). These tests hold the
 * two to the same wire: every method, the same path, streaming and names, and for a request
 * and a response with every field set, the same bytes and the same decoded objects.
 */
import { describe, expect, spyOn, test } from "bun:test";
import type * as grpc from "@grpc/grpc-js";
import protobuf from "protobufjs/light";
import { DROPBOX_CODECS, DROPBOX_DESCRIPTOR, HEALTH_CODECS, HEALTH_DESCRIPTOR } from "../src/rpc/proto";
import { Protocol } from "../src/rpc/definitions";
import type { CodecSources } from "../src/rpc/proto-codecs";
import { serverDefinition } from "../src/rpc/server-definitions";

const DROPBOX: [protobuf.INamespace, Record<string, CodecSources>] = [DROPBOX_DESCRIPTOR, DROPBOX_CODECS];
const HEALTH: [protobuf.INamespace, Record<string, CodecSources>] = [HEALTH_DESCRIPTOR, HEALTH_CODECS];
const SERVICES: [[protobuf.INamespace, Record<string, CodecSources>], string, string][] = [
  [DROPBOX, "dropbox", "MasterService"],
  [DROPBOX, "dropbox", "StorageService"],
  [DROPBOX, "dropbox", "ProcessService"],
  [HEALTH, "grpc.health.v1", "Health"],
];

/** The whole protocol as one protobufjs root, built eagerly: the reference for types and samples. */
function referenceRoot(descriptor: protobuf.INamespace): protobuf.Root {
  const root = protobuf.Root.fromJSON(descriptor);
  root.resolveAll();
  return root;
}

/** A plain object with every field of `type` set (repeated fields twice, nested messages two levels deep). */
function sample(type: protobuf.Type, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    field.resolve();
    const one = (i: number): unknown => {
      if (field.resolvedType instanceof protobuf.Type) return depth < 2 ? sample(field.resolvedType, depth + 1) : {};
      if (field.resolvedType instanceof protobuf.Enum) return Object.keys(field.resolvedType.values).at(-1);
      switch (field.type) {
        case "string":
          return `${field.name}-${i}`;
        case "bytes":
          return Buffer.from([i, 255 - i, 7]);
        case "bool":
          return true;
        case "double":
        case "float":
          return 1.5 + i;
        default:
          return 1_000_003 + i; // every integer kind; above 2^16 so varint widths are exercised
      }
    };
    out[field.name] = field.repeated ? [one(1), one(2)] : one(1);
  }
  return out;
}

describe("client and server definitions", () => {
  for (const [[descriptor, codecs], packageName, name] of SERVICES) {
    const service = `${packageName}.${name}`;
    test(`${service}: every method has the same path, streaming, names, bytes and decoded objects`, () => {
      const root = referenceRoot(descriptor);
      const client = new Protocol(descriptor, codecs).service(name);
      const server = serverDefinition(service);
      expect(Object.keys(client).sort()).toEqual(Object.keys(server).sort());
      expect(Object.keys(client).length).toBeGreaterThan(0);
      for (const [name, method] of Object.entries(client)) {
        const theirs = server[name] as grpc.MethodDefinition<object, object> & { originalName?: string };
        expect({ path: method.path, requestStream: method.requestStream, responseStream: method.responseStream, originalName: method.originalName }).toEqual({
          path: theirs.path,
          requestStream: theirs.requestStream,
          responseStream: theirs.responseStream,
          originalName: theirs.originalName,
        });
        const methodType = root.lookupService(service).methods[name]!.resolve() as protobuf.Method;
        for (const [type, serialize, theirSerialize, deserialize, theirDeserialize] of [
          [methodType.resolvedRequestType!, method.requestSerialize, theirs.requestSerialize, method.requestDeserialize, theirs.requestDeserialize],
          [methodType.resolvedResponseType!, method.responseSerialize, theirs.responseSerialize, method.responseDeserialize, theirs.responseDeserialize],
        ] as const) {
          for (const value of [sample(type), {}]) {
            const bytes = Buffer.from(serialize(value));
            expect(bytes.equals(Buffer.from(theirSerialize(value)))).toBe(true);
            expect(deserialize(bytes)).toEqual(theirDeserialize(bytes));
          }
        }
      }
    });
  }

  test("a message whose fields are all set really encodes them (the comparison above is not of empty messages)", () => {
    const root = referenceRoot(DROPBOX_DESCRIPTOR);
    const put = new Protocol(...DROPBOX).service("MasterService").RequestPutTargets!;
    const type = (root.lookupService("dropbox.MasterService").methods.RequestPutTargets!.resolve() as protobuf.Method).resolvedRequestType!;
    const value = sample(type);
    const decoded = put.requestDeserialize(Buffer.from(put.requestSerialize(value))) as Record<string, unknown>;
    for (const field of type.fieldsArray) expect(decoded[field.name]).not.toEqual(type.toObject(type.create(), { defaults: true, arrays: true })[field.name]);
  });

  test("an array where a message belongs is refused, as proto-loader refuses it", () => {
    const client = new Protocol(...DROPBOX).service("MasterService").ListFiles!;
    const server = serverDefinition("dropbox.MasterService").ListFiles!;
    expect(() => client.requestSerialize([] as unknown as object)).toThrow(/got array/);
    expect(() => server.requestSerialize([] as unknown as object)).toThrow(/got array/);
  });

  test("a call builds only the message types it sends and receives, and what they refer to", () => {
    const protocol = new Protocol(...DROPBOX);
    const master = protocol.service("MasterService");
    expect(protocol.builtTypes()).toEqual([]);
    const listFiles = master.ListFiles!;
    listFiles.responseDeserialize(Buffer.from(listFiles.responseSerialize({ files: [{ name: "a" }], truncated: true })));
    expect(protocol.builtTypes()).toEqual(["FileInfo", "ListFilesResponse"]);
    // A nested type's references to top-level types are followed too (Placement -> StorageNode, Grant).
    master.RequestPutTargets!.responseSerialize({ placements: [{ chunkId: "x", targets: [{ nodeId: "n" }], grants: [{}] }] });
    expect(protocol.builtTypes()).toEqual(expect.arrayContaining(["PutTargetsResponse", "StorageNode", "Grant"]));
    expect(protocol.builtTypes()).not.toContain("PutTargetsRequest");
  });

  test("message types get the functions written at build time: protobufjs writes none at run time", () => {
    const codegen = spyOn(protobuf.util, "codegen");
    try {
      const master = new Protocol(...DROPBOX).service("MasterService");
      const listFiles = master.ListFiles!;
      const decoded = listFiles.responseDeserialize(Buffer.from(listFiles.responseSerialize({ files: [{ name: "a", size: 3 }], truncated: true }))) as { files: { name: string; size: number }[] };
      expect(decoded.files[0]).toMatchObject({ name: "a", size: 3 });
      // A nested type (PutTargetsResponse.Placement) too.
      const put = master.RequestPutTargets!;
      const placed = put.responseDeserialize(Buffer.from(put.responseSerialize({ placements: [{ chunkId: "x", targets: [{ nodeId: "n" }] }] }))) as { placements: { chunkId: string }[] };
      expect(placed.placements[0]!.chunkId).toBe("x");
      expect(codegen).not.toHaveBeenCalled();
      // Without them, the same calls have protobufjs write its own (the spy is on its path).
      const plain = new Protocol(DROPBOX_DESCRIPTOR).service("MasterService").ListFiles!;
      plain.responseSerialize({ files: [{ name: "a" }] });
      expect(codegen).toHaveBeenCalled();
    } finally {
      codegen.mockRestore();
    }
  });

  test("every message type of both protocols has build-time functions", () => {
    for (const [descriptor, codecs] of [DROPBOX, HEALTH]) {
      const root = referenceRoot(descriptor);
      const names: string[] = [];
      const visit = (namespace: protobuf.NamespaceBase) => {
        for (const nested of namespace.nestedArray) {
          if (nested instanceof protobuf.Type) names.push(nested.fullName);
          if (nested instanceof protobuf.Namespace) visit(nested);
        }
      };
      visit(root);
      expect(names.length).toBeGreaterThan(0);
      expect(Object.keys(codecs).sort()).toEqual(names.sort());
    }
  });
});
