/**
 * grpc-js's reconnect and re-resolve timers, kept in UTC.
 *
 * grpc-js's BackoffTimeout computes when a timer ends with local-time Date arithmetic
 * (`setMilliseconds(getMilliseconds() + delay)`) on its `startTime`, and every channel starts
 * one as it connects. The first local-time Date operation in a process initializes the
 * runtime's time-zone support: 4-10 ms here, in every CLI call, before its first byte is sent.
 * The start time is kept as a Date whose millisecond accessors are the UTC ones: the same
 * instant plus `delay` (right across daylight-saving changes, too), without that cost.
 *
 * This hooks a grpc-js internal, checked at start-up like the hooks in framing.ts.
 */
import { BackoffTimeout } from "@grpc/grpc-js/build/src/backoff-timeout";

/** A Date whose millisecond field is read and set in UTC. */
class UtcMillisecondsDate extends Date {
  override getMilliseconds(): number {
    return this.getUTCMilliseconds();
  }
  override setMilliseconds(ms: number): number {
    return this.setUTCMilliseconds(ms);
  }
}

const START = Symbol("backoff start time");

function install() {
  const prototype = BackoffTimeout.prototype as unknown as { runTimer?: unknown; [START]?: Date };
  if (typeof prototype.runTimer !== "function") throw new Error("grpc-js internals changed: BackoffTimeout.runTimer is gone (src/rpc/backoff-clock.ts)");
  Object.defineProperty(prototype, "startTime", {
    configurable: true,
    get(this: { [START]?: Date }) {
      return this[START];
    },
    set(this: { [START]?: Date }, value: Date) {
      this[START] = value instanceof UtcMillisecondsDate ? value : new UtcMillisecondsDate(value.getTime());
    },
  });
}

install();
