/**
 * Connection ends on their way to another process or thread: serializing an end lends it a
 * hold (counted as a holder of that end until whoever deserializes it claims the hold), so
 * that the sender may close its own copy at once, as CPython's users do after `start()`.
 *
 * A hold that nobody claims stays while its lender lives. `collectLent` gathers the holds
 * that serializing a child's arguments made: once the child's pid is known they become the
 * child's (`toChild`: its death then ends them, even for a reader blocked meanwhile), and
 * they are given back when it ends or if it could not start.
 */

/** One hold lent by a serialization. */
export interface Lent {
  /** Gives the hold back, unless it was claimed (idempotent, best effort). */
  giveBack(): void;
  /** Makes the hold the child's, `pid` (a shared-memory end). */
  toChild?(pid: number): void;
  /** What the fallback's service thread gives back itself when the child ends. */
  forService?: unknown;
}

let collecting: Lent[] | undefined;
let off = 0;

/** Whether serializing a Connection end now lends it a hold. */
export function lendingOn(): boolean {
  return off === 0;
}

/** Called by a kind that lent a hold, for the `collectLent` under way if any. */
export function noteLent(lent: Lent): void {
  collecting?.push(lent);
}

/** Whether a `collectLent` is under way (a lender may skip what only it needs). */
export function isCollecting(): boolean {
  return collecting !== undefined;
}

/** Runs `fn` (which serializes) and returns its result with the holds it lent. */
export function collectLent<T>(fn: () => T): [T, Lent[]] {
  const outer = collecting;
  const lent: Lent[] = [];
  collecting = lent;
  try {
    return [fn(), lent];
  } catch (error) {
    for (const one of lent) one.giveBack();
    throw error;
  } finally {
    collecting = outer;
  }
}

/** Runs `fn` (a serialization made only to check a value) without lending anything. */
export function withoutLending<T>(fn: () => T): T {
  off++;
  try {
    return fn();
  } finally {
    off--;
  }
}
