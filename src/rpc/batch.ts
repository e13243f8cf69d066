/**
 * Batches of small items in one round trip. On the server a batch method runs each item
 * through the single-item handler, so validation and behaviour are exactly the same and
 * each item gets its own result or status. On the client a coalescer gathers the calls
 * that concurrent transfers make within one event-loop turn into one batch.
 */
import * as grpc from "@grpc/grpc-js";
import { DropboxError, invalidArgument } from "../core/errors";
import type { Log } from "../core/log";
import type { BatchResult } from "./messages";
import { unary } from "./server";
import { fromServiceError } from "./status";

/** Items one batch may carry: bounds the work and the memory of one call. */
export const MAX_BATCH_ITEMS = 256;

/**
 * A batch method over `single`: the request's `itemsField` holds the items, the response's
 * `results` their outcomes. `around` wraps the synchronous part of dispatching every item
 * (e.g. in one database transaction, so a batch of commits costs one fsync); responses
 * are sent only after it returns.
 */
export function batchHandler(
  single: grpc.UntypedHandleCall | undefined,
  itemsField: string,
  log: Log,
  around: (dispatch: () => void) => void = (dispatch) => dispatch(),
): grpc.handleUnaryCall<Record<string, unknown>, { results: BatchResult<unknown>[] }> {
  const handle = single as grpc.handleUnaryCall<unknown, unknown>;
  if (!handle) throw new Error(`batch over a missing handler (${itemsField})`);
  return unary(async (request, call) => {
    const items = request[itemsField];
    if (!Array.isArray(items) || items.length > MAX_BATCH_ITEMS) throw invalidArgument(`a batch holds at most ${MAX_BATCH_ITEMS} items`);
    let pending: Promise<BatchResult<unknown>>[] = [];
    around(() => {
      pending = items.map(
        (item) =>
          new Promise<BatchResult<unknown>>((resolve) => {
            const itemCall = Object.assign(Object.create(call), { request: item }) as grpc.ServerUnaryCall<unknown, unknown>;
            handle(itemCall, (err, response) => {
              if (err) resolve({ response: null, error: { code: err.code ?? grpc.status.INTERNAL, message: err.details ?? (err as Error).message ?? "" } });
              else resolve({ response: response ?? null, error: null });
            });
          }),
      );
    });
    return { results: await Promise.all(pending) };
  }, log);
}

/** Turns a batch result into the item's response, or the typed error it failed with. */
export function unwrapResult<Res>(result: BatchResult<Res> | undefined, peer: string): Res {
  if (!result) throw new DropboxError("INTERNAL", `${peer} returned fewer results than items`);
  if (result.error) throw fromServiceError({ code: result.error.code, details: result.error.message }, peer);
  return result.response as Res;
}

interface Pending<Item, Res> {
  item: Item;
  resolve: (value: Res) => void;
  reject: (err: unknown) => void;
}

/**
 * Gathers calls made within one event-loop turn (or up to `maxItems`, or `maxBytes` by
 * `sizeOf`) into one batch. `send` returns one outcome per item, in order: a value, or an
 * Error for that item alone.
 */
export class Coalescer<Item, Res> {
  private pending: Pending<Item, Res>[] = [];
  private pendingBytes = 0;
  private scheduled = false;

  constructor(
    private readonly send: (items: Item[]) => Promise<(Res | Error)[]>,
    private readonly maxItems = MAX_BATCH_ITEMS,
    private readonly sizeOf: (item: Item) => number = () => 0,
    private readonly maxBytes = Infinity,
  ) {}

  submit(item: Item): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      const bytes = this.sizeOf(item);
      // An item that would push the batch past the byte cap starts the next one.
      if (this.pending.length > 0 && this.pendingBytes + bytes > this.maxBytes) this.flush();
      this.pending.push({ item, resolve, reject });
      this.pendingBytes += bytes;
      if (this.pending.length >= this.maxItems || this.pendingBytes >= this.maxBytes) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.flush();
        });
      }
    });
  }

  private flush() {
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (batch.length === 0) return;
    this.send(batch.map((p) => p.item)).then(
      (outcomes) =>
        batch.forEach((p, i) => {
          const outcome = outcomes[i];
          if (outcome instanceof Error) p.reject(outcome);
          else if (outcome === undefined) p.reject(new DropboxError("INTERNAL", "batch returned fewer results than items"));
          else p.resolve(outcome);
        }),
      (err) => batch.forEach((p) => p.reject(err)),
    );
  }
}
