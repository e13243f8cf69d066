/** A counting semaphore: bounds work in flight (and so memory) without a queue of its own. */
export class Semaphore {
  private readonly waiters: (() => void)[] = [];

  constructor(private available: number) {
    if (!Number.isInteger(available) || available < 1) throw new Error(`semaphore needs at least 1 permit, got ${available}`);
  }

  /** Takes a permit if one is free right now. */
  tryAcquire(): boolean {
    if (this.available === 0) return false;
    this.available--;
    return true;
  }

  /** Waits for a permit. */
  acquire(): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release() {
    const next = this.waiters.shift();
    if (next) next();
    else this.available++;
  }
}
