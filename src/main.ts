/** The dropbox executable: master, storage node, client and cluster supervisor in one. */
import { tuneAllocator } from "./cli/allocator";
import { main } from "./cli/main";
import { writeErr } from "./core/stdio";

function crash(err: unknown) {
  // Never print bundled source: one line, then the internal-error exit code.
  writeErr(`error: internal: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
process.on("uncaughtException", crash);
process.on("unhandledRejection", crash);

tuneAllocator(process.argv.slice(2));
// No top-level await: the bytecode build (fast start-up) needs a CommonJS-compatible entry.
// Commands print through core/stdio (synchronous writes), so nothing is left buffered to lose here.
main(process.argv).then((code) => process.exit(code), crash);
