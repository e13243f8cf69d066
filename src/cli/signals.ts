/** Keeping a server process up until it is told to stop, or until its supervisor is gone. */

/** Set by `dropbox cluster` on its children: the supervisor's pid. */
export const SUPERVISOR_PID_ENV = "DROPBOX_SUPERVISOR_PID";
/** How often a supervised child checks that its supervisor is still its parent. */
const SUPERVISOR_CHECK_INTERVAL_MS = 250;

/**
 * Resolves with exit code 0 after SIGINT or SIGTERM once `stop` has finished. Safe
 * against the signal arriving twice (Ctrl-C reaches the whole process group). A child
 * of a supervisor also stops when it is re-parented, i.e. the supervisor died, even by
 * SIGKILL: no orphans.
 */
export function untilStopped(stop: () => Promise<void>, log: (line: string) => void = () => {}): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const shutdown = (why: string) => {
      if (stopping) return;
      stopping = true;
      log(`stopping (${why})`);
      stop().finally(() => resolve(0));
    };
    process.on("SIGINT", () => shutdown("SIGINT"));
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    const supervisor = Number(process.env[SUPERVISOR_PID_ENV]);
    if (Number.isInteger(supervisor) && supervisor > 0) {
      const timer = setInterval(() => {
        if (process.ppid !== supervisor) {
          clearInterval(timer);
          shutdown(`supervisor ${supervisor} is gone`);
        }
      }, SUPERVISOR_CHECK_INTERVAL_MS);
    }
  });
}
