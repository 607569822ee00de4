/**
 * What every primitive shares: its own small shared memory segment, and a handle (a plain
 * object naming the segment) from which another thread or process attaches to it.
 */
import { invalidArgType, invalidArgValue } from '../posix/errors';
import { native } from '../posix/native';
import { isSegmentName, SharedMemory } from './shared_memory';

/** The kinds of native/sync.cc, as they are stored in a segment's header. */
export const Kind = {
  Mutex: 1,
  RLock: 2,
  RWLock: 3,
  Semaphore: 4,
  Event: 5,
  Barrier: 6,
  Condition: 7,
} as const;
export type KindName = keyof typeof Kind;

/** A structured-cloneable description of a primitive: `X.fromHandle(handle)` attaches. */
export interface PrimitiveHandle<K extends string = string> {
  kind: K;
  name: string;
}

// One page each: the pthread objects and the futex words need far less.
const SEGMENT_SIZE = 4096;

// The segment that fromHandle attached, for the constructor it calls to take over.
let adopted: SharedMemory | undefined;

/**
 * The segment for a new primitive of `kind`, initialised by native code, or the one that
 * `fromHandle` attached.
 */
export function segmentFor(kind: KindName, arg?: number, bound?: number): SharedMemory {
  if (adopted) {
    const segment = adopted;
    adopted = undefined;
    return segment;
  }
  const segment = new SharedMemory({ size: SEGMENT_SIZE });
  native.syncInit(segment.buffer, Kind[kind], arg, bound);
  return segment;
}

/**
 * Attaches the segment a handle of `handleKind` names, checks that it holds a `kind`, and
 * builds the object over it.
 */
export function fromHandle<T>(handle: unknown, handleKind: string, kind: KindName, build: () => T): T {
  const { name } = checkHandle(handle, handleKind);
  const segment = SharedMemory.attach(name);
  if (native.syncKind(segment.buffer) !== Kind[kind]) {
    segment.close();
    throw invalidArgValue('handle', handle, `does not name a live ${handleKind}`);
  }
  adopted = segment;
  try {
    return build();
  } finally {
    adopted = undefined;
  }
}

export function checkHandle(handle: unknown, kind: string): PrimitiveHandle {
  if (handle === null || typeof handle !== 'object') throw invalidArgType('handle', 'an object', handle);
  const { kind: actual, name } = handle as Partial<PrimitiveHandle>;
  if (actual !== kind) throw invalidArgValue('handle', handle, `is not the handle of a ${kind}`);
  if (!isSegmentName(name)) throw invalidArgValue('handle', handle, 'does not name a segment');
  return { kind: actual, name };
}
