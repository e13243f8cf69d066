/** When to restart a child that died: exponential backoff, and a limit that detects a crash loop. */
import { MAX_RESTARTS_IN_WINDOW, RESTART_BACKOFF_INITIAL_MS, RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_RESET_AFTER_MS, RESTART_WINDOW_MS } from "./limits";

/** The restart history of one child. */
export class RestartPolicy {
  private recentRestartsMs: number[] = [];
  private consecutiveCrashes = 0;

  /**
   * Called after an unexpected exit of a process that had been up `upForMs`: the delay
   * before restarting it, or "failed" when it has crashed too often to keep trying.
   */
  afterCrash(upForMs: number, nowMs: number): number | "failed" {
    if (upForMs >= RESTART_BACKOFF_RESET_AFTER_MS) this.consecutiveCrashes = 0;
    this.recentRestartsMs = this.recentRestartsMs.filter((t) => nowMs - t < RESTART_WINDOW_MS);
    if (this.recentRestartsMs.length >= MAX_RESTARTS_IN_WINDOW) return "failed";
    const delayMs = Math.min(RESTART_BACKOFF_INITIAL_MS * 2 ** this.consecutiveCrashes, RESTART_BACKOFF_MAX_MS);
    this.consecutiveCrashes++;
    this.recentRestartsMs.push(nowMs);
    return delayMs;
  }
}
