/**
 * The garbage collections that fork() and warmup() make in the parent, so that no child pays
 * for them (DESIGN.md fact 15). The counts come from native/heap_gc.cc.
 *
 * Why a child must not inherit a full nursery: V8's young generation is collected by
 * copying every live object in it. A parent that has just built its data holds up to 16 MB
 * of it there (plus young large objects), and V8 may already have queued the scavenge as a
 * task. Each child then runs that scavenge itself, the first time its loop turns or its code
 * allocates, copying the parent's objects and promoting them into old-space pages, which
 * copy-on-write duplicates: 190 ms per child in DESIGN.md, against a few milliseconds for
 * the whole fork. Done once in the parent, it is paid once. The same holds for a full
 * collection that V8 has begun (incremental marking): the child would finish it, and a
 * mark-compact writes to every page it marks or moves; but fork() leaves that one to the
 * child (see emptyYoungGeneration), only warmup() makes it.
 */
import { isMainThread } from 'node:worker_threads';
import { rehearseChild } from './child';
import { native, supported } from './native';

if (supported && isMainThread) native.watchMarking();

/**
 * Above this many bytes in the young generation, fork() empties it first. Below it, what a
 * child's first scavenge could copy of its parent's objects costs about a millisecond.
 */
export const YOUNG_GENERATION_LIMIT = 1024 * 1024;

// How the parent asks V8 for a scavenge. Measured here (parent with 1e6 small objects, 24 MB
// young, of which 8.5 MB live; 2 cores, loaded):
// - gc({ type: 'minor' }), after v8.setFlagsFromString('--expose-gc') and taking `gc` from a
//   new vm context: 13 + 110 ms (two scavenges: the first leaves this round's survivors
//   young). Node documents changing V8 flags after start-up as liable to crash, and the flag
//   puts `gc` into every context and worker created later.
// - Isolate::RequestGarbageCollectionForTesting: the same collection, but V8 aborts the
//   process unless it runs with --expose-gc.
// - Isolate::LowMemoryNotification and MemoryPressureNotification(kCritical), V8's public
//   API: full collections of the whole heap, 300-740 ms each time here. Right for warmup(),
//   which is called once; too dear for every fork that follows some allocation.
// - Allocating short-lived arrays until the nursery overflows: V8 scavenges exactly as it
//   does for any program that allocates, 26 + 136 ms for the same parent (80-200 ms in
//   bench/fork.mjs), nothing but ordinary JavaScript and no flag. This is the one used.
// The young generation's size is read through the addon (Isolate::GetHeapSpaceStatistics
// on two spaces, under 1 µs): v8.getHeapSpaceStatistics() costs ~100 µs a call here.
const CHUNK_SLOTS = 1024; // one array of 1024 holes: 8 KB of nursery
const CHUNKS_PER_CHECK = 16;
let sink: unknown;

/**
 * Leaves no collection for a child to inherit: empties V8's young generation when it holds
 * more than {@link YOUNG_GENERATION_LIMIT} (scavenges until what is left is below it: the
 * survivors of a first scavenge are promoted by the second). Called by fork() before it
 * forks; forks in a row find nothing to do and pay one read of the counts.
 */
export function emptyYoungGeneration(): void {
  for (let round = 0; round < 4; round++) {
    const { used, available } = native.youngGenerationSize();
    if (used <= YOUNG_GENERATION_LIMIT) break;
    overflowNursery(used, available);
  }
  // Incremental marking that V8 has begun is left to the child. Finishing it here takes a
  // full collection, whose mark-compact wakes the platform's worker threads: a child forked
  // after that hung in its own next mark-compact, signalling the worker queue's condition
  // variable, which still counts the parent's waiters (test/fixtures/fork-workload.js).
}

// Allocates garbage until the young generation shrinks (a scavenge ran). The bound stops
// the loop whatever V8 does: at most four times the room that was left in the nursery.
function overflowNursery(used: number, available: number): void {
  const chunkBytes = CHUNK_SLOTS * 8;
  const maxChecks = Math.ceil((4 * available) / (chunkBytes * CHUNKS_PER_CHECK)) + 8;
  let last = used;
  for (let check = 0; check < maxChecks; check++) {
    for (let i = 0; i < CHUNKS_PER_CHECK; i++) sink = new Array(CHUNK_SLOTS);
    const now = native.youngGenerationSize().used;
    if (now < last) break;
    last = now;
  }
  sink = undefined;
}

/**
 * Tells forkwise that start-up is over and children will now be forked (as Ruby 3.3's
 * `Process.warmup` and Python's `gc.freeze()` do for prefork servers): full, compacting
 * garbage collections, so that what survives is packed into few pages, promoted out of the
 * young generation and shared copy-on-write by every later child, with nothing left for a
 * child to collect; the C heap's free memory is given back to the system; and the child's
 * fix-ups are compiled in this process, not in each child. Costs one or more full
 * collections (hundreds of milliseconds for a heap of 100 MB): call it once, after loading,
 * before forking. Optional: fork() alone never hands a child the parent's pending scavenge.
 * Where there is no fork() (Windows), does nothing.
 *
 * @example
 * import { warmup, fork } from 'forkwise';
 * const table = loadBigTable();
 * warmup();
 * for (let i = 0; i < 8; i++) if (fork() === 0) serve(table);
 */
export function warmup(): void {
  if (!supported) return; // no fork() there: nothing to prepare
  rehearseChild();
  native.collectAllGarbage();
}
