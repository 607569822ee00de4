/**
 * POSIX shared memory segments (`shm_open` + `mmap(MAP_SHARED)`), seen from JavaScript as an
 * ArrayBuffer.
 *
 * Who removes a segment's name (`shm_unlink`), and when:
 * - A segment created without a `name` gets an unguessable one,
 *   `forkwise-<creator pid>-<creator start time>-<128 random bits>`, and is owned by the
 *   thread that created it (the main thread or a worker): its name is removed when that
 *   thread's environment ends (the process exits, the worker ends or is terminated; not when
 *   a forked child exits), or earlier by `unlink()`. Those who attached keep their mapping.
 * - If the creator dies without exiting (SIGKILL, a crash), its names are removed by the
 *   next process that creates a segment (at its first creation, then at most once a second):
 *   names whose creator is gone (the pid is dead, or reused by a process with another start
 *   time), so nothing accumulates in /dev/shm.
 * - A segment created with a `name` of the caller's choice is never removed automatically:
 *   whoever chose the name calls `unlink()` (as with CPython's SharedMemory).
 *
 * Segments are created with mode 0600 and O_EXCL, and their pages are reserved at creation
 * (a full /dev/shm is an ENOSPC then, never a SIGBUS later).
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { invalidArgValue, outOfRange } from '../posix/errors';
import { native } from '../posix/native';
import { validateCString, validateInteger, validateObject } from '../posix/validate';

const MAX_SIZE = 2 ** 40;
const ownedName = /^forkwise-(\d+)-(\d+)-[0-9a-f]{32}$/;

export interface SharedMemoryOptions {
  /** Size in bytes (at least 1). */
  size: number;
  /** A name of your choice (no '/'); you unlink it. Default: an unguessable, owned name. */
  name?: string | null;
}

/**
 * A shared memory segment. Writes through `.buffer` are seen by forked children, by worker
 * threads and by other processes that `attach` by name.
 *
 * @example
 * import { SharedMemory } from 'forkwise/sync';
 * const shm = new SharedMemory({ size: 1024 });
 * new Uint8Array(shm.buffer)[0] = 42;
 * // in another process: new Uint8Array(SharedMemory.attach(shm.name).buffer)[0] === 42
 */
export class SharedMemory {
  /** The segment's name, without the leading '/'. */
  readonly name: string;
  /** The size in bytes. */
  readonly size: number;
  private readonly mapped: ArrayBuffer;

  constructor(options: SharedMemoryOptions) {
    const { size, name: given } = validateObject(options, 'options') as Partial<SharedMemoryOptions>;
    validateInteger(size, 'options.size', 1, MAX_SIZE);
    const name = given ?? undefined;
    if (name === undefined) {
      sweepSegmentsOfDeadCreators();
      this.name = `${ownedNamePrefix()}${randomBytes(16).toString('hex')}`;
    } else {
      this.name = validateName(name, 'options.name');
    }
    this.mapped = native.shmOpen(`/${this.name}`, true, size!, name === undefined);
    this.size = size!;
    if (name === undefined) removeOwnedNamesAtExit();
  }

  /** Maps the existing segment `name`. Throws ENOENT when there is none. */
  static attach(name: string): SharedMemory {
    validateName(name, 'name');
    const shm = Object.create(SharedMemory.prototype) as { -readonly [K in keyof SharedMemory]: unknown };
    const mapped = native.shmOpen(`/${name}`, false, 0, false);
    Object.assign(shm, { name, size: mapped.byteLength, mapped });
    return shm as unknown as SharedMemory;
  }

  /** The memory, as an ArrayBuffer (detached, of length 0, after `close()`). */
  get buffer(): ArrayBuffer {
    return this.mapped;
  }

  /** Unmaps the segment in this process; views over `.buffer` become empty. Idempotent. */
  close(): void {
    native.shmUnmap(this.mapped);
  }

  /** Removes the segment's name: no one can attach any more; mappings stay valid. */
  unlink(): void {
    native.shmUnlink(`/${this.name}`);
  }
}

function validateName(name: unknown, argument: string): string {
  validateCString(name, argument);
  const text = name as string;
  if (text.length === 0 || text.length > 200) throw outOfRange(`${argument}.length`, '>= 1 && <= 200', text.length);
  if (text.includes('/')) throw invalidArgValue(argument, text, "must not contain '/'");
  return text;
}

/** Whether `name` can name a segment: 1 to 200 characters, no '/' (nor NUL). */
export function isSegmentName(name: unknown): name is string {
  return typeof name === 'string' && /^[^/\0]{1,200}$/.test(name);
}

// `forkwise-<pid>-<start time>-`, read from /proc once per process (a forked child has its own).
let prefix = { pid: 0, text: '' };

function ownedNamePrefix(): string {
  if (prefix.pid !== process.pid) prefix = { pid: process.pid, text: `forkwise-${process.pid}-${startTime('self')}-` };
  return prefix.text;
}

// The addon removes owned names when the environment that made them ends (a worker too,
// even terminated); in the main thread process.exit() comes first, hence this listener.
let exitHookInstalled = false;

function removeOwnedNamesAtExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => native.shmUnlinkOwned());
}

/** Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. */
function startTime(pid: number | 'self'): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

let sweptBy = 0;
let sweptAt = -Infinity;

/**
 * Removes owned segments whose creator died without exiting: at the first creation in each
 * process, then at most once a second (it reads /dev/shm and a /proc entry per creator).
 */
function sweepSegmentsOfDeadCreators(): void {
  const now = performance.now();
  if (sweptBy === process.pid && now - sweptAt < 1000) return;
  sweptBy = process.pid;
  sweptAt = now;
  let names: string[];
  try {
    names = readdirSync('/dev/shm');
  } catch {
    return;
  }
  const alive = new Map<string, string | undefined>();
  for (const name of names) {
    const match = ownedName.exec(name);
    if (!match) continue;
    const [, pid, started] = match;
    if (!alive.has(pid!)) alive.set(pid!, startTime(Number(pid)));
    if (alive.get(pid!) === started) continue;
    try {
      native.shmUnlink(`/${name}`);
    } catch {
      // swept by another process at the same time
    }
  }
}
