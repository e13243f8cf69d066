/** The one table of process exit codes, the same for every command (README: "Exit codes"). */
import type { ErrorKind } from "../core/errors";

export const EXIT = {
  OK: 0,
  /** An unexpected failure: a bug, or an error we did not anticipate. */
  INTERNAL: 1,
  /** Bad flags, arguments or names. */
  USAGE: 2,
  /** No such file. */
  NOT_FOUND: 3,
  /** The master or the nodes needed could not be reached in time. */
  UNAVAILABLE: 4,
  /** Stored bytes failed verification and no good copy was found. */
  INTEGRITY: 5,
  /** The cluster answered but is not healthy (dead node, under-replicated data). */
  DEGRADED: 6,
  /** Not enough live nodes or space to store the requested replicas. */
  INSUFFICIENT: 7,
  /** Missing or wrong credentials. */
  AUTH: 8,
  /** Stopped by SIGINT. */
  INTERRUPTED: 130,
} as const;

const BY_KIND: Record<ErrorKind, number> = {
  INVALID_ARGUMENT: EXIT.USAGE,
  NOT_FOUND: EXIT.NOT_FOUND,
  ALREADY_EXISTS: EXIT.USAGE,
  UNAVAILABLE: EXIT.UNAVAILABLE,
  DEADLINE_EXCEEDED: EXIT.UNAVAILABLE,
  DATA_LOSS: EXIT.INTEGRITY,
  RESOURCE_EXHAUSTED: EXIT.INSUFFICIENT,
  FAILED_PRECONDITION: EXIT.INSUFFICIENT,
  UNAUTHENTICATED: EXIT.AUTH,
  PERMISSION_DENIED: EXIT.AUTH,
  INTERNAL: EXIT.INTERNAL,
};

/** The exit code for an error kind. */
export function exitCodeFor(kind: ErrorKind): number {
  return BY_KIND[kind];
}
