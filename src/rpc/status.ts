/** The one place where typed errors become gRPC statuses and back. */
import * as grpc from "@grpc/grpc-js";
import { DropboxError, type ErrorKind } from "../core/errors";

const KIND_TO_STATUS: Record<ErrorKind, grpc.status> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  NOT_FOUND: grpc.status.NOT_FOUND,
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  DATA_LOSS: grpc.status.DATA_LOSS,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  DEADLINE_EXCEEDED: grpc.status.DEADLINE_EXCEEDED,
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  INTERNAL: grpc.status.INTERNAL,
};

const STATUS_TO_KIND = new Map<number, ErrorKind>(Object.entries(KIND_TO_STATUS).map(([kind, code]) => [code, kind as ErrorKind]));

/**
 * Turns anything a handler threw into a status for the caller. Unexpected errors become
 * INTERNAL with no detail on the wire; their stack goes to the server's log.
 */
export function toServiceError(err: unknown, log: (line: string) => void): Partial<grpc.StatusObject> {
  if (err instanceof DropboxError) return { code: KIND_TO_STATUS[err.kind], details: err.message };
  log(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return { code: grpc.status.INTERNAL, details: "internal error (see the server log)" };
}

/**
 * grpc-js's UNAVAILABLE details cut to the cause a person can act on:
 * "No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: "
 * becomes "connect ECONNREFUSED 127.0.0.1:1".
 */
export function unavailableCause(details: string): string {
  const last = /Last error: (?:Error: )?(.+?)\.?\s*(?:Resolution note:.*)?$/s.exec(details);
  if (last) return last[1]!;
  return details.replace(/\s*Resolution note:\s*$/, "");
}

/** Turns a failed call into a typed error that names the peer. */
export function fromServiceError(err: unknown, peer: string): DropboxError {
  if (err instanceof DropboxError) return err;
  const code = (err as grpc.ServiceError)?.code;
  const details = (err as grpc.ServiceError)?.details || (err as Error)?.message || String(err);
  if (code === grpc.status.UNAVAILABLE) return new DropboxError("UNAVAILABLE", `cannot reach ${peer}: ${unavailableCause(details)}`);
  if (code === grpc.status.DEADLINE_EXCEEDED) return new DropboxError("DEADLINE_EXCEEDED", `${peer} did not answer in time`);
  if (code === grpc.status.CANCELLED) return new DropboxError("UNAVAILABLE", `call to ${peer} was cancelled: ${details}`);
  const kind = (typeof code === "number" && STATUS_TO_KIND.get(code)) || "INTERNAL";
  return new DropboxError(kind, details);
}
