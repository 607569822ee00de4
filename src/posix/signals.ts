/** Signal names and numbers, accepted as `process.kill` accepts them. */
import { constants } from 'node:os';
import { argError, invalidArgType, outOfRange } from './errors';
import { validateInteger } from './validate';

/** A signal name as `process.kill` takes it, a real-time name (`SIGRTMIN+2`), or a number. */
export type Signal = NodeJS.Signals | `SIGRTMIN${string}` | `SIGRTMAX${string}` | number;

const byName = constants.signals as Record<string, number>;
const byNumber = new Map<number, NodeJS.Signals>();
for (const [name, value] of Object.entries(byName)) {
  // Aliases (SIGIOT = SIGABRT, SIGPOLL = SIGIO) keep the first, canonical name.
  if (!byNumber.has(value)) byNumber.set(value, name as NodeJS.Signals);
}
const SIGRTMIN = 34;
const SIGRTMAX = 64;

/** The signal number for a name or number; 0 is allowed (existence checks). */
export function signalNumber(sig: unknown, name = 'signal'): number {
  if (typeof sig === 'string') {
    const value = Object.hasOwn(byName, sig) ? byName[sig] : realtimeSignal(sig);
    if (value === undefined) throw argError(TypeError, 'ERR_UNKNOWN_SIGNAL', `Unknown signal: ${sig}`);
    return value;
  }
  return validateInteger(sig, name, 0, SIGRTMAX);
}

// 'SIGRTMIN', 'SIGRTMIN+3', 'SIGRTMAX-2', as signalName() writes them and `kill -l` prints.
function realtimeSignal(name: string): number | undefined {
  const match = /^SIGRT(MIN|MAX)(?:([+-])([1-9]\d?))?$/.exec(name);
  if (match === null) return undefined;
  const base = match[1] === 'MIN' ? SIGRTMIN : SIGRTMAX;
  const offset = match[2] === undefined ? 0 : Number(match[3]) * (match[2] === '+' ? 1 : -1);
  const value = base + offset;
  return value >= SIGRTMIN && value <= SIGRTMAX ? value : undefined;
}

/** The name of a signal number; real-time signals read as `kill -l` prints them. */
export function signalName(signo: number): NodeJS.Signals {
  const name = byNumber.get(signo);
  if (name !== undefined) return name;
  if (signo === SIGRTMIN) return 'SIGRTMIN' as NodeJS.Signals;
  if (signo > SIGRTMIN && signo <= SIGRTMAX) return `SIGRTMIN+${signo - SIGRTMIN}` as NodeJS.Signals;
  return `SIG${signo}` as NodeJS.Signals;
}

// glibc keeps 32 and 33 for its threads: sigaddset refuses them.
const RESERVED_SIGNALS = new Set([32, 33]);

/** An array of signals as numbers, each one that a signal set can hold. */
export function validateSignalSet(value: unknown, name: string): number[] {
  if (!Array.isArray(value)) throw invalidArgType(name, 'an instance of Array', value);
  const signals: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const signo = signalNumber(value[i], `${name}[${i}]`);
    if (signo === 0 || RESERVED_SIGNALS.has(signo)) {
      throw outOfRange(`${name}[${i}]`, `>= 1 && <= 31 or >= ${SIGRTMIN} && <= ${SIGRTMAX}`, value[i]);
    }
    signals.push(signo);
  }
  return signals;
}
