/**
 * grpc-js service definitions made straight from a protocol's JSON descriptor, the way
 * proto-loader makes them but without its reflection data, and building each message type
 * only when a call first needs it.
 *
 * proto-loader turns every message of the protocol into descriptor protos (for gRPC server
 * reflection) before it hands back a definition; grpc-js never reads them to make a call.
 * That work, with loading proto-loader itself (it builds descriptor.proto and the well-known
 * types as it loads), was 25-40 ms of a 70-100 ms `dropbox list` on 2 cores; building
 * protobufjs types for all 57 messages was another 12-19 ms, where a `list` needs three.
 * A message type's functions are compiled from source protobufjs wrote at build time
 * (proto-codecs.ts), not written at run time. Clients, which start for one short command,
 * build their definitions here; servers load theirs with proto-loader (server-definitions.ts). test/definitions.test.ts holds the two to
 * the same paths, names and bytes for every method.
 */
import type * as grpc from "@grpc/grpc-js";
import protobuf from "protobufjs/light";
import type { CodecSources } from "./proto-codecs";

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

/** The parts of a JSON descriptor this module reads. */
interface JsonNamespace {
  nested?: Record<string, JsonNamespace>;
  fields?: Record<string, { type: string }>;
  values?: Record<string, number>;
  methods?: Record<string, { requestType: string; responseType: string; requestStream?: boolean; responseStream?: boolean }>;
}

/** Field types that name no message or enum. */
const SCALAR_TYPES = new Set(["double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes"]);

/** lodash.camelcase of a method name, as proto-loader names a method's second alias ("ListFiles" -> "listFiles"). */
function methodAlias(name: string): string {
  return name.charAt(0).toLowerCase() + name.slice(1);
}

/**
 * One protocol (a JSON descriptor of one package). Message types are built into a protobufjs
 * root on first use, each with every type it refers to, so a command pays only for the
 * messages it sends and receives.
 */
export class Protocol {
  private readonly root = new protobuf.Root();
  private readonly namespace: protobuf.Namespace;
  private readonly packageName: string;
  private readonly packageJson: Record<string, JsonNamespace>;

  /**
   * `codecs`: the generated functions' source, by full type name (proto-codecs.ts); a type
   * missing from it gets protobufjs's own, written when first used.
   */
  constructor(
    descriptor: protobuf.INamespace,
    private readonly codecs: Record<string, CodecSources> = {},
  ) {
    // Walk the single chain of namespaces down to the package ("grpc" > "health" > "v1").
    const path: string[] = [];
    let json = descriptor as JsonNamespace;
    while (json.nested && Object.keys(json.nested).length === 1 && !json.fields && !json.methods) {
      const [name, inner] = Object.entries(json.nested)[0]!;
      if (inner.fields || inner.values || inner.methods) break;
      path.push(name);
      json = inner;
    }
    if (path.length === 0 || !json.nested) throw new Error("a protocol descriptor holds one package");
    this.packageName = path.join(".");
    this.packageJson = json.nested;
    this.namespace = this.root.define(this.packageName);
  }

  /**
   * The top-level type of the package that `name`, used inside `scopes` (innermost last),
   * refers to; null when it names a type nested in one of those scopes (it comes with it).
   */
  private resolve(name: string, scopes: JsonNamespace[]): string | null {
    const local = name.startsWith(`${this.packageName}.`) ? name.slice(this.packageName.length + 1) : name.replace(/^\./, "");
    const [first] = local.split(".");
    // Names resolve innermost scope first.
    for (let i = scopes.length - 1; i > 0; i--) if (scopes[i]!.nested?.[first!]) return null;
    if (!this.packageJson[first!]) throw new Error(`protocol: no type ${name} in ${this.packageName}`);
    return first!;
  }

  /** Every top-level type `name` needs, itself included. */
  private closure(name: string, into = new Set<string>()): Set<string> {
    if (into.has(name)) return into;
    into.add(name);
    const visit = (json: JsonNamespace, scopes: JsonNamespace[]) => {
      const inner = [...scopes, json];
      for (const field of Object.values(json.fields ?? {})) {
        if (SCALAR_TYPES.has(field.type)) continue;
        const top = this.resolve(field.type, inner);
        if (top !== null) this.closure(top, into);
      }
      for (const nested of Object.values(json.nested ?? {})) visit(nested, inner);
    };
    visit(this.packageJson[name]!, [{ nested: this.packageJson }]);
    return into;
  }

  /** The message type `name` (relative to the package), built with everything it refers to. */
  type(name: string): protobuf.Type {
    // With the package as the only scope, every name resolves to a top-level type.
    const top = this.resolve(name, [{ nested: this.packageJson }])!;
    const added: protobuf.Type[] = [];
    for (const needed of this.closure(top)) {
      if (this.namespace.get(needed)) continue;
      const json = this.packageJson[needed]!;
      if (json.values) this.namespace.add(protobuf.Enum.fromJSON(needed, json as protobuf.IEnum));
      else added.push(this.namespace.add(protobuf.Type.fromJSON(needed, json as protobuf.IType)).get(needed) as protobuf.Type);
    }
    // Once all are in: a type's functions call those of the types its fields name.
    for (const type of added) this.installCodecs(type);
    return this.namespace.lookupType(name);
  }

  /**
   * Gives `type` (and the types nested in it) the functions compiled from their build-time
   * source, in the scope protobufjs's Type.setup() gives the ones it writes itself.
   */
  private installCodecs(type: protobuf.Type) {
    const sources = this.codecs[type.fullName];
    if (sources) {
      const compile = (source: string, types: unknown[]) => new Function("Writer", "Reader", "types", "util", `return ${source}`)(protobuf.Writer, protobuf.Reader, types, protobuf.util);
      // First: resolving a field sets its default on the constructor's prototype, and would have
      // protobufjs write a constructor when there is none yet.
      type.ctor = compile(sources.ctor, []);
      const types = type.fieldsArray.map((field) => field.resolve().resolvedType);
      type.encode = compile(sources.encode, types);
      type.decode = compile(sources.decode, types);
      type.fromObject = compile(sources.fromObject, types);
      type.toObject = compile(sources.toObject, types);
    }
    for (const nested of type.nestedArray) if (nested instanceof protobuf.Type) this.installCodecs(nested);
  }

  /** Names of the types built so far, for tests. */
  builtTypes(): string[] {
    return this.namespace.nestedArray.map((n) => n.name).sort();
  }

  /** The clients' definition of `service` (its name in the package). */
  service(service: string): grpc.ServiceDefinition {
    const methods = this.packageJson[service]?.methods;
    if (!methods) throw new Error(`protocol: no service ${service} in ${this.packageName}`);
    const fullName = `${this.packageName}.${service}`;
    const definition: Record<string, grpc.MethodDefinition<object, object>> = {};
    for (const [name, method] of Object.entries(methods)) {
      const request = this.lazyType(method.requestType);
      const response = this.lazyType(method.responseType);
      definition[name] = {
        path: `/${fullName}/${name}`,
        requestStream: Boolean(method.requestStream),
        responseStream: Boolean(method.responseStream),
        requestSerialize: serializerOf(request),
        requestDeserialize: deserializerOf(request),
        responseSerialize: serializerOf(response),
        responseDeserialize: deserializerOf(response),
        originalName: methodAlias(name),
      };
    }
    return definition;
  }

  private lazyType(name: string): () => protobuf.Type {
    let type: protobuf.Type | undefined;
    return () => (type ??= this.type(name));
  }
}

/** proto-loader's serializer: a plain object in, its wire bytes out. */
function serializerOf(type: () => protobuf.Type): grpc.serialize<object> {
  return (value) => {
    const t = type();
    if (Array.isArray(value)) throw new Error(`Failed to serialize message: expected object with ${t.name} structure, got array instead`);
    return t.encode(t.fromObject(value)).finish() as Buffer;
  };
}

/** proto-loader's deserializer: wire bytes in, a plain object out. */
function deserializerOf(type: () => protobuf.Type): grpc.deserialize<object> {
  return (bytes) => {
    const t = type();
    return t.toObject(t.decode(bytes), OBJECT_OPTIONS);
  };
}
