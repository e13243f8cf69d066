/** Keeping a server process up until it is told to stop. */

/**
 * Resolves after SIGINT or SIGTERM once `stop` has finished. Safe against the signal
 * arriving twice (Ctrl-C reaches the whole process group).
 */
export function untilStopped(stop: () => Promise<void>): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      stop().finally(() => resolve(signal === "SIGINT" ? 0 : 0));
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}
