/** Argument checks with Node's messages and codes, run before anything reaches C++. */
import { isArrayBufferView } from 'node:util/types';
import { invalidArgType, invalidArgValue, outOfRange } from './errors';

const INT32_MAX = 2 ** 31 - 1;
const INT32_MIN = -(2 ** 31);

export function validateInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value)) throw outOfRange(name, 'an integer', value);
  if (value < min || value > max) throw outOfRange(name, `>= ${min} && <= ${max}`, value);
  return value;
}

export function validateFd(value: unknown, name = 'fd'): number {
  return validateInteger(value, name, 0, INT32_MAX);
}

/** A pid argument: any 32-bit integer (0 and negative values mean groups to some calls). */
export function validatePid(value: unknown, name = 'pid'): number {
  return validateInteger(value, name, INT32_MIN, INT32_MAX);
}

export function validateInt32(value: unknown, name: string): number {
  return validateInteger(value, name, INT32_MIN, INT32_MAX);
}

export function validateBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value);
  return value;
}

/** A string that the kernel will see as a C string: no NUL bytes. */
export function validateCString(value: unknown, name: string): string {
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value);
  if (value.includes('\0')) throw invalidArgValue(name, value, 'must be a string without null bytes');
  return value;
}

export function validateArgv(value: unknown, name: string): string[] {
  if (!Array.isArray(value)) throw invalidArgType(name, 'an instance of Array', value);
  if (value.length === 0) throw invalidArgValue(name, value, 'must not be empty');
  // A plain loop, not map(): map skips the holes of a sparse array.
  const args: string[] = [];
  for (let i = 0; i < value.length; i++) args.push(validateCString(value[i], `${name}[${i}]`));
  if (args[0] === '') throw invalidArgValue(`${name}[0]`, args[0], 'must not be empty');
  return args;
}

/** `Record<string, string>` to `NAME=value` strings, refusing what execve cannot express. */
export function validateEnv(value: unknown, name = 'env'): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgType(name, 'of type object', value);
  }
  return Object.entries(value as Record<string, unknown>).map(([key, v]) => {
    validateCString(key, `${name} key`);
    if (key === '' || key.includes('=')) {
      throw invalidArgValue(`${name} key`, key, "must be a non-empty name without '='");
    }
    return `${key}=${validateCString(v, `${name}.${key}`)}`;
  });
}

/**
 * An options argument, read as Node's own functions read one and as CPython takes `None`:
 * `undefined` or `null` is no options, and a property that is `null` is not given (callers
 * read each one with `??`).
 */
export function validateOptions(value: unknown, name = 'options'): Record<string, unknown> {
  return value === undefined || value === null ? {} : validateObject(value, name);
}

export function validateObject(value: unknown, name: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgType(name, 'of type object', value);
  }
  return value as Record<string, unknown>;
}

/** Bytes as Node's APIs take them (Buffer, any TypedArray, DataView), seen as a Uint8Array. */
export function validateBytes(value: unknown, name: string): Uint8Array {
  if (!isArrayBufferView(value)) {
    throw invalidArgType(name, 'an instance of Buffer, TypedArray, or DataView', value);
  }
  return value instanceof Uint8Array ? value : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

/** An array of at most `max` descriptor numbers. */
export function validateFdArray(value: unknown, name: string, max: number): number[] {
  if (!Array.isArray(value)) throw invalidArgType(name, 'an instance of Array', value);
  if (value.length > max) throw outOfRange(`${name}.length`, `<= ${max}`, value.length);
  // A plain loop, not map(): map skips the holes of a sparse array.
  const fds: number[] = [];
  for (let i = 0; i < value.length; i++) fds.push(validateFd(value[i], `${name}[${i}]`));
  return fds;
}
