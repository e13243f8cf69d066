/**
 * Runs at build time only (imported `with { type: "macro" }`): parses a .proto file and
 * returns its descriptor as JSON, which the bundler inlines. The binary then skips
 * parsing protocol text at every start-up, which was a third of `dropbox list`'s time.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import protobuf from "protobufjs";

/** The protobufjs JSON descriptor of `proto/<file>`, camelCase field names. */
export function protoDescriptor(file: string): protobuf.INamespace {
  const text = readFileSync(join(import.meta.dir, "..", "..", "proto", file), "utf8");
  return protobuf.parse(text, { keepCase: false }).root.toJSON();
}
