/**
 * The messaging classes of this platform, for multiprocessing and threading: those of
 * messaging/ over shared memory, or on the platform fallback (Windows, or
 * FORKWISE_FORCE_FALLBACK=1) those of compat/, which have the same methods. Their types are
 * the shared-memory classes'.
 */
import * as onShm from '../messaging/index';
import * as onFallback from './messaging';
import { useFallback } from './platform';
export const Pipe = (useFallback ? onFallback.Pipe : onShm.Pipe) as typeof onShm.Pipe;
export const Connection = (useFallback ? onFallback.Connection : onShm.Connection) as unknown as typeof onShm.Connection;
export type Connection = onShm.Connection;
export const Queue = (useFallback ? onFallback.Queue : onShm.Queue) as unknown as typeof onShm.Queue;
export type Queue<T = unknown> = onShm.Queue<T>;
export const SimpleQueue = (useFallback ? onFallback.SimpleQueue : onShm.SimpleQueue) as unknown as typeof onShm.SimpleQueue;
export type SimpleQueue<T = unknown> = onShm.SimpleQueue<T>;
export const JoinableQueue = (useFallback ? onFallback.JoinableQueue : onShm.JoinableQueue) as unknown as typeof onShm.JoinableQueue;
export type JoinableQueue<T = unknown> = onShm.JoinableQueue<T>;
