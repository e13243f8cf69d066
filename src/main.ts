/** The dropbox executable: master, storage node, client and cluster supervisor in one. */
import { main } from "./cli/main";

function crash(err: unknown) {
  // Never print bundled source: one line, then the internal-error exit code.
  process.stderr.write(`error: internal: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
process.on("uncaughtException", crash);
process.on("unhandledRejection", crash);

// No top-level await: the bytecode build (fast start-up) needs a CommonJS-compatible entry.
main(process.argv).then((code) => process.exit(code), crash);
