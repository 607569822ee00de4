/**
 * Root hooks: the whole suite must leave no child process (zombie or alive), no descriptor
 * and no shared memory segment of a process that is gone. Recorded before the first test,
 * checked after the last one.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { childPids, openFds, orphanedSegments, processState } from './helpers';

let fdsAtStart: Map<number, string>;
let orphansAtStart: Set<string>;

export const mochaHooks = {
  async beforeAll(): Promise<void> {
    // libuv opens descriptors of its own the first time child_process spawns (one on
    // /dev/null when stdout is a file) and keeps them: let that happen before counting.
    await once(spawn('true'), 'close');
    fdsAtStart = openFds();
    orphansAtStart = new Set(orphanedSegments());
  },
  async afterAll(): Promise<void> {
    // Descriptors closed by libuv or Node asynchronously (child_process pipes) need a turn.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const children = childPids().map((pid) => `${pid} (${processState(pid)})`);
    assert.deepEqual(children, [], 'child processes left behind');
    const leaked = [...openFds()].filter(([fd, target]) => fdsAtStart.get(fd) !== target);
    assert.deepEqual(leaked, [], 'descriptors left open');
    // This process's own segments go when it exits; those of the processes it ran must be
    // gone already.
    const orphans = orphanedSegments().filter((name) => !orphansAtStart.has(name));
    assert.deepEqual(orphans, [], 'shared memory segments left by processes that are gone');
  },
};
