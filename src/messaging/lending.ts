/**
 * Connection ends on their way to another process or thread: serializing an end lends it a
 * hold (counted as a holder of that end until whoever deserializes it claims the hold), so
 * that the sender may close its own copy at once, as CPython's users do after `start()`.
 *
 * A hold that nobody claims stays while its lender lives. `collectLent` gathers the holds
 * that serializing a child's arguments made, so that they are given back once the child has
 * ended, whether or not it attached them.
 */

let collecting: Array<() => void> | undefined;

/** Called by a kind that lends: how to give this hold back, if a `collectLent` gathers. */
export function noteLent(giveBack: () => void): void {
  collecting?.push(giveBack);
}

/** Whether a `collectLent` is under way (a lender may skip what only it needs). */
export function isCollecting(): boolean {
  return collecting !== undefined;
}

/** Runs `fn` (which serializes); returns its result and what gives back the holds it lent. */
export function collectLent<T>(fn: () => T): [T, () => void] {
  const outer = collecting;
  const lent: Array<() => void> = [];
  collecting = lent;
  const giveBack = (): void => {
    for (const one of lent.splice(0)) one();
  };
  try {
    return [fn(), giveBack];
  } catch (error) {
    giveBack();
    throw error;
  } finally {
    collecting = outer;
  }
}
