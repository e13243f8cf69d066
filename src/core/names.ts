/** Remote file names: `/`-separated paths, like object-store keys. */
import { invalidArgument } from "./errors";
import { MAX_NAME_BYTES } from "./limits";

// C0 controls, DEL and C1 controls: invisible in listings and unsafe in terminals.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/** Why `name` is not a valid remote name, or null when it is. */
export function nameProblem(name: unknown): string | null {
  if (typeof name !== "string" || name.length === 0) return "name is empty";
  if (!name.isWellFormed()) return "name is not valid Unicode (a lone surrogate)";
  if (Buffer.byteLength(name, "utf8") > MAX_NAME_BYTES) return `name is longer than ${MAX_NAME_BYTES} bytes`;
  if (name.includes("\u0000")) return "name contains a NUL character";
  if (CONTROL_CHARS.test(name)) return "name contains a control character";
  if (name.startsWith("/")) return "name starts with '/'";
  if (name.endsWith("/")) return "name ends with '/'";
  for (const segment of name.split("/")) {
    if (segment === "") return "name contains an empty segment ('//')";
    if (segment === "." || segment === "..") return `name contains a '${segment}' segment`;
  }
  return null;
}

/** Throws INVALID_ARGUMENT with the reason unless `name` is valid. */
export function assertName(name: unknown): string {
  const problem = nameProblem(name);
  if (problem) {
    // Cut before quoting, and never inside a surrogate pair: this text goes back on the wire.
    const shown = String(name ?? "").toWellFormed();
    throw invalidArgument(`invalid name ${JSON.stringify(shown.length > 100 ? `${[...shown].slice(0, 80).join("")}…` : shown)}: ${problem}`);
  }
  return name as string;
}

/** Throws INVALID_ARGUMENT unless `prefix` could begin a valid name (empty means everything). */
export function assertPrefix(prefix: unknown): string {
  if (prefix === undefined || prefix === null || prefix === "") return "";
  if (typeof prefix !== "string") throw invalidArgument("prefix must be a string");
  if (Buffer.byteLength(prefix, "utf8") > MAX_NAME_BYTES) throw invalidArgument(`prefix is longer than ${MAX_NAME_BYTES} bytes`);
  if (CONTROL_CHARS.test(prefix)) throw invalidArgument("prefix contains a control character");
  return prefix;
}
