/**
 * How a transfer command ends when it is stopped by SIGINT (Ctrl-C), SIGTERM or SIGHUP: the
 * partial downloads it was writing are removed, the terminal's cursor (hidden by the progress
 * board) is shown again, and the exit code is 128 + the signal's number (130 for Ctrl-C, as in
 * README "Exit codes"). Left to the default, each signal killed the process with its temporary
 * files in place, and with the progress board on, listr2 exited 127.
 */
import { tempFiles } from "../core/temp-files";
import { EXIT } from "./exit-codes";

const SIGNAL_NUMBERS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
const SHOW_CURSOR = "\u001b[?25h";

/** Installs the handlers; `exit` ends the process with the code (main decides how). */
export function cleanUpOnSignals(exit: (code: number) => void): void {
  let stopping = false;
  for (const [signal, number] of Object.entries(SIGNAL_NUMBERS)) {
    process.on(signal, () => {
      if (stopping) return; // Ctrl-C reaches the whole process group, and may come twice
      stopping = true;
      // After SIGHUP the terminal is gone: writing to it would only fail.
      if (signal !== "SIGHUP") {
        for (const stream of [process.stderr, process.stdout]) {
          if (!stream.isTTY) continue;
          stream.on("error", () => {});
          stream.write(SHOW_CURSOR);
        }
      }
      const code = signal === "SIGINT" ? EXIT.INTERRUPTED : 128 + number;
      tempFiles.removeAll().then(() => exit(code), () => exit(code));
    });
  }
}
