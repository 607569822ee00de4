/**
 * Whether the high level runs on the platform fallback: on Windows (no addon), or on POSIX
 * with `FORKWISE_FORCE_FALLBACK=1` so that the same code path is tested there.
 */
import { supported } from '../posix/native';

export const useFallback = !supported;

/** Where the fallback runs, for error messages. */
export function fallbackWhere(): string {
  return process.platform === 'win32' ? 'on Windows' : 'with FORKWISE_FORCE_FALLBACK=1';
}
