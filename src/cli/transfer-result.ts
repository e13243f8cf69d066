/** What a many-file transfer ends with: the report, then one error for all failed files. */
import { DropboxError, invalidArgument } from "../core/errors";
import { failureOf, type Outcome } from "../client/transfers";

/** The error to exit with when some files failed: the first failure's kind, naming how many failed. */
export function batchError<T, R>(outcomes: Outcome<T, R>[], nameOf: (item: T) => string): Error | null {
  const failed = outcomes.filter((o) => o.error !== undefined);
  if (failed.length === 0) return null;
  const first = failed[0]!;
  const message = `${failed.length} of ${outcomes.length} files failed; first: ${nameOf(first.item)}: ${failureOf(first.error).message}`;
  if (outcomes.length === 1) return first.error as Error;
  if (first.error instanceof DropboxError) return new DropboxError(first.error.kind, message);
  // A local filesystem error (permission, a file where a directory must go): a usage problem.
  if ((first.error as NodeJS.ErrnoException)?.syscall) return invalidArgument(message);
  return new Error(message);
}
