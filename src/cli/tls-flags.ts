/** TLS flags: the client side (every command) and the server side (master, node). */
import { readFileSync } from "node:fs";
import { invalidArgument } from "../core/errors";
import type { TlsClientConfig, TlsServerConfig } from "../rpc/tls";
import { stringFlag } from "./args";

function pem(argv: string[], name: string, parsed: unknown): Buffer | undefined {
  const path = stringFlag(argv, name, parsed);
  if (path === undefined) return undefined;
  try {
    const data = readFileSync(path);
    if (!data.includes("-----BEGIN ")) throw new Error("not a PEM file");
    return data;
  } catch (err) {
    throw invalidArgument(`--${name} ${path}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
}

/** Parsed TLS flags (camelCase as the option parser gives them). */
export interface TlsFlags {
  tlsCa?: unknown;
  tlsClientCert?: unknown;
  tlsClientKey?: unknown;
  tlsServerName?: unknown;
  tlsCert?: unknown;
  tlsKey?: unknown;
  tlsClientCa?: unknown;
}

/** How this process dials: TLS when --tls-ca is given. */
export function tlsClientFrom(argv: string[], flags: TlsFlags): TlsClientConfig | null {
  const ca = pem(argv, "tls-ca", flags.tlsCa);
  const clientCert = pem(argv, "tls-client-cert", flags.tlsClientCert);
  const clientKey = pem(argv, "tls-client-key", flags.tlsClientKey);
  const serverName = stringFlag(argv, "tls-server-name", flags.tlsServerName);
  if (!ca) {
    if (clientCert || clientKey || serverName) throw invalidArgument("--tls-client-cert, --tls-client-key and --tls-server-name need --tls-ca");
    return null;
  }
  if (Boolean(clientCert) !== Boolean(clientKey)) throw invalidArgument("--tls-client-cert and --tls-client-key go together");
  return { ca, clientCert, clientKey, serverName };
}

/** How a server serves: TLS when --tls-cert and --tls-key are given; mutual TLS with --tls-client-ca. */
export function tlsServerFrom(argv: string[], flags: TlsFlags): TlsServerConfig | undefined {
  const cert = pem(argv, "tls-cert", flags.tlsCert);
  const key = pem(argv, "tls-key", flags.tlsKey);
  const clientCa = pem(argv, "tls-client-ca", flags.tlsClientCa);
  if (!cert && !key) {
    if (clientCa) throw invalidArgument("--tls-client-ca needs --tls-cert and --tls-key");
    return undefined;
  }
  if (!cert || !key) throw invalidArgument("--tls-cert and --tls-key go together");
  return { cert, key, clientCa };
}
