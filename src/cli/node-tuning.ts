/**
 * A storage node's tuning flags and their rules, in one place: `dropbox node` reads them, and
 * `cluster up` checks them the same way before it passes them on to every node.
 */
import { intFlag, stringFlag } from "./args";
import { MAX_SCRUB_INTERVAL_MS, MAX_SCRUB_RATE_MIB_PER_S } from "../core/limits";
import { parseSize } from "../core/size";

/** The tuning flags as the option parser hands them over. */
export interface NodeTuningFlags {
  scrubRate?: unknown;
  scrubInterval?: unknown;
  capacity?: unknown;
  verifyReads?: unknown;
}

/** The tuning flags given, checked; a flag not given is undefined (the node's default applies). */
export interface NodeTuning {
  scrubRateMiBps?: number;
  scrubIntervalMs?: number;
  capacityBytes?: number;
  verifyReads: boolean;
}

/** Reads and checks the tuning flags; a bad value throws INVALID_ARGUMENT naming the flag. */
export function nodeTuningFrom(flags: NodeTuningFlags, argv: string[]): NodeTuning {
  return {
    scrubRateMiBps: flags.scrubRate === undefined ? undefined : intFlag(flags.scrubRate, "scrub-rate", 0, MAX_SCRUB_RATE_MIB_PER_S),
    scrubIntervalMs: flags.scrubInterval === undefined ? undefined : intFlag(flags.scrubInterval, "scrub-interval", 0, MAX_SCRUB_INTERVAL_MS),
    capacityBytes: flags.capacity === undefined ? undefined : parseSize(stringFlag(argv, "capacity", flags.capacity), "--capacity"),
    verifyReads: flags.verifyReads === true,
  };
}
