/**
 * TLS between every pair of processes. One setting per process, like the token: the
 * channels it dials use `useTlsClient`, the server it runs `serverCredentials`.
 * Bun refuses an IP address as a TLS server name, so certificates name hosts, and a
 * cluster addressed by IP sets `--tls-server-name` to the name its certificates carry.
 */
import * as grpc from "@grpc/grpc-js";

/** How this process dials others. */
export interface TlsClientConfig {
  /** PEM of the CA that signed the servers' certificates. */
  ca: Buffer;
  /** PEM certificate and key presented to servers that require client certificates. */
  clientCert?: Buffer;
  clientKey?: Buffer;
  /** The name to verify in servers' certificates instead of the dialled host. */
  serverName?: string;
}

/** How this process serves. */
export interface TlsServerConfig {
  cert: Buffer;
  key: Buffer;
  /** PEM of the CA client certificates must chain to; set: mutual TLS is required. */
  clientCa?: Buffer;
}

let client: TlsClientConfig | null = null;

/** Sets how every channel this process opens is secured (null: plaintext). */
export function useTlsClient(config: TlsClientConfig | null) {
  client = config;
}

/** Whether this process dials servers over TLS. */
export function dialsTls(): boolean {
  return client !== null;
}

/** Credentials for a new channel. */
export function channelCredentials(): grpc.ChannelCredentials {
  if (!client) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(client.ca, client.clientKey ?? null, client.clientCert ?? null);
}

/** Channel options that TLS needs (the server name override). */
export function tlsChannelOptions(): grpc.ChannelOptions {
  return client?.serverName ? { "grpc.ssl_target_name_override": client.serverName, "grpc.default_authority": client.serverName } : {};
}

/** Credentials for a server: TLS when configured, requiring client certificates when a client CA is given. */
export function serverCredentials(config: TlsServerConfig | undefined): grpc.ServerCredentials {
  if (!config) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(config.clientCa ?? null, [{ private_key: config.key, cert_chain: config.cert }], config.clientCa !== undefined);
}
