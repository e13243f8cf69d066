/** The dropbox executable: master, storage node, client and cluster supervisor in one. */
import { main } from "./cli/main";

function crash(err: unknown) {
  // Never print bundled source: one line, then the internal-error exit code.
  process.stderr.write(`error: internal: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
process.on("uncaughtException", crash);
process.on("unhandledRejection", crash);

/** Resolves once everything written to `stream` so far has been handed to the OS. */
function drained(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.writableLength === 0) resolve();
    else stream.write("", () => resolve());
  });
}

// No top-level await: the bytecode build (fast start-up) needs a CommonJS-compatible entry.
// process.exit() drops output still buffered for a slow pipe: a script reading a large --json
// document would get it cut short. Drain first.
main(process.argv).then(async (code) => {
  await Promise.all([drained(process.stdout), drained(process.stderr)]);
  process.exit(code);
}, crash);
