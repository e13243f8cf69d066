/**
 * Expected failures, as one typed error. Each kind maps to a gRPC status in
 * rpc/status.ts and to a process exit code in cli/exit-codes.ts; nowhere else.
 */
export type ErrorKind =
  | "INVALID_ARGUMENT" // bad input from the caller: name, chunk id, size, flag
  | "NOT_FOUND" // no such file or chunk
  | "ALREADY_EXISTS"
  | "UNAVAILABLE" // a process could not be reached
  | "DATA_LOSS" // bytes failed verification
  | "RESOURCE_EXHAUSTED" // disk full, too large
  | "FAILED_PRECONDITION" // not enough live nodes, wrong state
  | "DEADLINE_EXCEEDED"
  | "UNAUTHENTICATED"
  | "PERMISSION_DENIED"
  | "INTERNAL"; // a bug or an unexpected failure

/** An expected, reportable failure with a kind that decides its status and exit code. */
export class DropboxError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
  ) {
    super(message);
    this.name = "DropboxError";
  }
}

/** Shorthands, so call sites read as what went wrong. */
export const invalidArgument = (message: string) => new DropboxError("INVALID_ARGUMENT", message);
export const notFound = (message: string) => new DropboxError("NOT_FOUND", message);
export const unavailable = (message: string) => new DropboxError("UNAVAILABLE", message);
export const dataLoss = (message: string) => new DropboxError("DATA_LOSS", message);
export const resourceExhausted = (message: string) => new DropboxError("RESOURCE_EXHAUSTED", message);
export const failedPrecondition = (message: string) => new DropboxError("FAILED_PRECONDITION", message);

/** The message of anything thrown, without a stack. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
