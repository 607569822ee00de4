/**
 * What a fallback queue or Connection holds in the thread that uses it: the reference to its
 * object in the hub of the process that created it, and the calls in flight, so that
 * `close()` ends them and an abort cancels its own.
 */
import { abortError } from '../posix/errors';
import { closedError } from '../messaging/errors';
import { theService } from './service';
import type { ObjectRef } from './service_main';

export interface ObjectHandle extends ObjectRef {
  kind: string;
}

/** The reference a handle carries, or undefined if it is not one (its key may have crossed as a Uint8Array). */
export function refOf(handle: { address?: unknown; key?: unknown; id?: unknown }): ObjectRef | undefined {
  const { address, key, id } = handle;
  if (typeof address !== 'string' || !(key instanceof Uint8Array) || key.length !== 32 || !Number.isInteger(id)) return undefined;
  return { address, key: Buffer.from(key), id: id as number };
}

export class ObjectUse {
  readonly #pending = new Map<number, () => void>();
  #closed = false;

  constructor(
    readonly ref: ObjectRef,
    readonly what: string,
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  /** Throws if this thread closed it. */
  open(): void {
    if (this.#closed) throw closedError(this.what);
  }

  /**
   * Calls `method` on the object. An abort of `signal` cancels the wait in the hub (the call
   * then rejects, unless the hub answered first: then it resolves). `onLateValue` takes a
   * value that arrived after `close()` (a queue puts it back).
   */
  async call(method: string, args: Record<string, unknown>, signal?: AbortSignal, onLateValue?: (value: unknown) => void): Promise<unknown> {
    this.open();
    if (signal?.aborted) throw abortError(signal);
    const service = theService();
    const { rid, result } = service.start({ op: 'call', ref: this.ref, method, args });
    const cancel = (): void => void service.call({ op: 'cancel', target: rid, address: this.ref.address }, false);
    signal?.addEventListener('abort', cancel, { once: true });
    this.#pending.set(rid, cancel);
    try {
      const value = asBuffer(await result);
      if (this.#closed && value !== undefined) onLateValue?.(value);
      if (this.#closed) throw closedError(this.what);
      return value;
    } catch (error) {
      if (this.#closed) throw closedError(this.what);
      if ((error as { code?: string }).code === 'ABORT_ERR' && signal?.aborted) throw abortError(signal);
      throw error;
    } finally {
      signal?.removeEventListener('abort', cancel);
      this.#pending.delete(rid);
    }
  }

  callSync(method: string, args: Record<string, unknown>): unknown {
    this.open();
    return asBuffer(theService().callSync({ op: 'call', ref: this.ref, method, args }));
  }

  /** Ends this thread's use: calls in flight are cancelled and reject. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const cancel of this.#pending.values()) cancel();
  }
}

// Bytes come back from the service thread as a Uint8Array (postMessage's clone of a Buffer).
function asBuffer(value: unknown): unknown {
  if (value instanceof Uint8Array && !Buffer.isBuffer(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return value;
}

/**
 * `bytes` with an ArrayBuffer of its own: posting a view clones its whole ArrayBuffer, and a
 * small Buffer is a view of Node's 8 KB pool.
 */
export function ownBytes(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : new Uint8Array(bytes);
}
