/**
 * SHA-256 of large buffers on a worker thread that reads the caller's memory in place.
 *
 * WebCrypto's digest also runs off the main thread, but it copies its input first and hashes
 * more slowly: 256 digests of 4 MiB took ~930 ms of process CPU, ~140 ms of it on the main
 * thread, against ~630 ms and ~5 ms here. A worker can only see memory in a SharedArrayBuffer,
 * so the buffers chunks are read and received into are allocated that way (`allocShared`).
 * Memory that is not shared, and everything asked before the worker is up (a few ms after the
 * first use) or after it failed, is hashed on the calling thread.
 *
 * The caller must leave the bytes alone until the promise settles: they are read, not copied.
 */

/** The worker: hashes the bytes it is pointed at and answers with their hex digest. */
const WORKER_SOURCE = `
self.onmessage = (e) => {
  const { id, buffer, offset, length } = e.data;
  postMessage({ id, hex: new Bun.CryptoHasher("sha256").update(new Uint8Array(buffer, offset, length)).digest("hex") });
};
postMessage({ ready: true });
`;

interface Job {
  bytes: Uint8Array;
  resolve: (hex: string) => void;
}

let worker: Worker | null = null;
let ready = false;
let failed = false;
const jobs = new Map<number, Job>();
let nextJob = 0;
/** How many digests were computed where: for tests and measurements. */
export const sha256WorkerStats = { onWorker: 0, onCaller: 0 };

/** A Buffer of `size` bytes in shared memory, which the hashing worker can read in place. */
export function allocShared(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size));
}

function hashHere(bytes: Uint8Array): string {
  sha256WorkerStats.onCaller++;
  return new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
}

/** Gives up on the worker: what it was asked is hashed here, and so is everything after. */
function abandon() {
  failed = true;
  ready = false;
  worker?.terminate();
  worker = null;
  for (const job of jobs.values()) job.resolve(hashHere(job.bytes));
  jobs.clear();
}

function startWorker() {
  try {
    const w = new Worker(URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "application/javascript" })));
    // Idle, it must not keep the process alive; it is held only while it has work.
    w.unref();
    w.onmessage = (event: MessageEvent<{ ready?: true; id?: number; hex?: string }>) => {
      if (event.data.ready) {
        ready = true;
        return;
      }
      const job = jobs.get(event.data.id!);
      if (!job) return;
      jobs.delete(event.data.id!);
      sha256WorkerStats.onWorker++;
      if (jobs.size === 0) w.unref();
      job.resolve(event.data.hex!);
    };
    w.onerror = () => abandon();
    worker = w;
  } catch {
    failed = true;
  }
}

/**
 * The hex SHA-256 of `bytes`, computed on the worker when the memory is shared and the worker
 * is up, else on this thread. The first call starts the worker.
 */
export function sha256OfShared(bytes: Uint8Array): Promise<string> {
  if (!(bytes.buffer instanceof SharedArrayBuffer) || failed) return Promise.resolve(hashHere(bytes));
  if (!worker) startWorker();
  if (!ready || !worker) return Promise.resolve(hashHere(bytes));
  const w = worker;
  return new Promise((resolve) => {
    const id = nextJob++;
    if (jobs.size === 0) w.ref();
    jobs.set(id, { bytes, resolve });
    w.postMessage({ id, buffer: bytes.buffer, offset: bytes.byteOffset, length: bytes.byteLength });
  });
}
