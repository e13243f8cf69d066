/** HOST:PORT addresses as flags and messages carry them. */
import { invalidArgument } from "./errors";

/** A parsed network address. */
export interface HostPort {
  host: string;
  port: number;
}

/** Parses `HOST:PORT` (or `[v6]:PORT`); throws INVALID_ARGUMENT with the reason. */
export function parseHostPort(text: string, what = "address"): HostPort {
  const match = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text.trim());
  if (!match) throw invalidArgument(`${what} must look like HOST:PORT, got ${JSON.stringify(text)}`);
  const port = Number(match[3]);
  if (port < 1 || port > 65535) throw invalidArgument(`${what} port must be 1-65535, got ${port}`);
  return { host: match[1] ?? match[2]!, port };
}

/** Formats an address for gRPC to dial, bracketing IPv6 literals. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Parses a port number flag (0 lets the OS choose). */
export function parsePort(value: unknown, what = "port"): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidArgument(`${what} must be an integer 0-65535, got ${JSON.stringify(value)}`);
  return port;
}

/** Hostnames, IPv4 and IPv6 literals: they are dialled, logged and shown, so nothing else (no control characters). */
const HOST_PATTERN = /^[A-Za-z0-9._:-]{1,255}$/;

/** True when `host` is a plausible hostname or IP literal. */
export function isHostName(host: unknown): host is string {
  return typeof host === "string" && HOST_PATTERN.test(host);
}

/** True for loopback hosts, where running without a token exposes nothing beyond this machine. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

/** Node ids: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (they name files and appear in logs). */
const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** True when `id` is a well-formed node id. */
export function isNodeId(id: unknown): id is string {
  return typeof id === "string" && NODE_ID_PATTERN.test(id);
}
