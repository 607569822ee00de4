// The manager objects of every kind that manager-tasks.js's useAll works on, and what a
// party that ran it (tagged `where`) must have left in them. Used by the POSIX and the
// platform-fallback suites.
import assert from 'node:assert/strict';
import type { Manager } from 'forkwise/multiprocessing';

export async function managerObjects(manager: Manager) {
  const o = {
    dict: await manager.dict({ parent: 'hello' }),
    list: await manager.list([0]),
    ns: await manager.Namespace({ base: 41 }),
    value: await manager.Value('s', 'start'),
    lock: await manager.Lock(),
    rlock: await manager.RLock(),
    semaphore: await manager.Semaphore(),
    event: await manager.Event(),
    condition: await manager.Condition(),
    barrier: await manager.Barrier(2),
    queue: await manager.Queue(),
    jobs: await manager.JoinableQueue(),
  };
  await o.jobs.put('job-1');
  return o;
}

export async function checkManagerObjects(o: Awaited<ReturnType<typeof managerObjects>>, where: string): Promise<void> {
  assert.deepEqual(await o.dict.get(`${where}-async`), { tag: where, n: 1 });
  assert.deepEqual(o.dict.getSync(`${where}-sync`), [where]);
  assert.deepEqual(await o.dict.get(`${where}-done`), { had: 'hello', arrival: 'number' });
  assert.equal(await o.dict.get(`${where}-job`), 'job-1');
  assert.deepEqual(await o.list.toArray(), [0, `${where}-async`, `${where}-sync`]);
  assert.equal(await o.ns.get(where), 42);
  assert.equal(await o.value.get(), `${where}:start`);
  assert.equal(await o.queue.get({ timeout: 5000 }), `${where} via queue`);
  assert.equal(await o.event.isSet(), true);
  assert.equal(o.semaphore.getValue(), 1);
  assert.equal(await o.lock.acquire({ timeout: 1000 }), true, 'the child released the lock');
  await o.lock.release();
  assert.equal(o.rlock.locked(), false);
  await o.jobs.join();
}
