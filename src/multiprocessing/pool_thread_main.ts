/**
 * A ThreadPool worker thread: attach the Connection and the setup the pool serialized into
 * `workerData`, run the worker loop (pool_worker.ts) until told to stop or the pool is gone,
 * then end the thread, whatever a task left pending (a timer, a watcher), as a worker
 * process ends once its loop is over.
 */
import { workerData } from 'node:worker_threads';
// The kinds that cross by handle (Queue, Connection; the threading queues) are registered
// by their modules: loaded here so that tasks may take them as arguments.
import '../messaging/index';
import '../threading/ordered_queue';
import type { Connection } from '../messaging/connection';
import { deserialize } from '../messaging/serializer';
import { workerLoop, type WorkerSetup } from './pool_worker';

const bytes = workerData as Uint8Array;
const [conn, setup] = deserialize(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as [Connection, WorkerSetup];

void workerLoop(conn, setup).then(() => {
  conn.close();
  process.exit(0);
});
