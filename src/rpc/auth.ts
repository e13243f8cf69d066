/**
 * Cluster tokens. With a token set, every RPC but the standard health check must carry it
 * (metadata `x-dropbox-token`); a read-only token opens only the methods that change
 * nothing. Tokens are compared as SHA-256 digests in constant time, and never logged.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import * as grpc from "@grpc/grpc-js";

/** The metadata key that carries the token. */
export const TOKEN_METADATA_KEY = "x-dropbox-token";

/** Methods a read-only token may call: they read, list or verify, and change nothing. */
const READ_ONLY_METHODS = new Set([
  "/dropbox.MasterService/ListFiles",
  "/dropbox.MasterService/GetManifest",
  "/dropbox.MasterService/GetManifests",
  "/dropbox.MasterService/ListManifests",
  "/dropbox.MasterService/RequestGetTargets",
  "/dropbox.MasterService/GetClusterStatus",
  "/dropbox.MasterService/ListChunkReplicas",
  "/dropbox.StorageService/GetChunk",
  "/dropbox.StorageService/GetChunks",
  "/dropbox.StorageService/VerifyChunks",
  "/dropbox.ProcessService/GetStats",
]);

/** SHA-256 of a token: what servers keep and compare. */
export const tokenDigest = (token: string) => createHash("sha256").update(token, "utf8").digest();

/** Who may call a server, as token digests. */
export interface AuthPolicy {
  /** The cluster token's digest: every method. */
  tokenDigest: Buffer;
  /** The read-only token's digest, if any (a node learns it from the master at registration). */
  readTokenDigest?: Buffer;
}

/** What a call's metadata entitles it to. */
export type Access = "full" | "read" | "none";

/** Decides access from a call's metadata, in constant time per comparison. */
export function accessOf(policy: AuthPolicy, metadata: grpc.Metadata): Access {
  const presented = metadata.get(TOKEN_METADATA_KEY)[0];
  if (typeof presented !== "string" || presented.length === 0 || presented.length > 4096) return "none";
  const given = tokenDigest(presented);
  if (timingSafeEqual(given, policy.tokenDigest)) return "full";
  if (policy.readTokenDigest?.length === 32 && timingSafeEqual(given, policy.readTokenDigest)) return "read";
  return "none";
}

/** The standard health service stays open: supervisors and load balancers probe it without credentials. */
const OPEN_SERVICE_PREFIX = "/grpc.health.v1.Health/";

/** Why a call to `path` with this metadata is refused, or null when it may go on. */
export function refusalOf(policy: AuthPolicy, path: string, metadata: grpc.Metadata): { code: grpc.status; details: string } | null {
  if (path.startsWith(OPEN_SERVICE_PREFIX)) return null;
  const access = accessOf(policy, metadata);
  if (access === "none") return { code: grpc.status.UNAUTHENTICATED, details: "missing or wrong token" };
  if (access === "read" && !READ_ONLY_METHODS.has(path)) return { code: grpc.status.PERMISSION_DENIED, details: "this token is read-only" };
  return null;
}

/**
 * A server interceptor that refuses calls without the right token on their metadata alone.
 * grpc-js reads a request's body only once the handler asks for it, after the metadata has
 * passed: a refused caller's bytes are never decoded, so a peer without the token cannot
 * make the server build tens of millions of objects out of a 64 MiB message.
 */
export function authInterceptor(policy: AuthPolicy): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start(next) {
        const listener = new grpc.ServerListenerBuilder()
          .withOnReceiveMetadata((metadata, passOn) => {
            const refusal = refusalOf(policy, method.path, metadata);
            if (refusal) call.sendStatus(refusal);
            else passOn(metadata);
          })
          .build();
        next(listener);
      },
    });
}

let clientToken: string | undefined;

/** Sets the token this process presents on every call it makes (one identity per process). */
export function useToken(token: string | undefined) {
  clientToken = token;
}

/** Metadata carrying this process's token, when it has one. */
export function callMetadata(): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (clientToken) metadata.set(TOKEN_METADATA_KEY, clientToken);
  return metadata;
}
