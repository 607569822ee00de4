import assert from 'node:assert/strict';
import { readSync, writeSync } from 'node:fs';
import * as fw from 'forkwise';
import { runNode } from './helpers';

describe('descriptors', () => {
  it('pipe() is close-on-exec and blocking by default', () => {
    const [r, w] = fw.pipe();
    try {
      assert.equal(fw.getInheritable(r), false);
      assert.equal(fw.getInheritable(w), false);
      assert.equal(fw.getBlocking(r), true);
      writeSync(w, 'abc');
      const buf = Buffer.alloc(3);
      assert.equal(readSync(r, buf), 3);
      assert.equal(buf.toString(), 'abc');
    } finally {
      fw.close(r);
      fw.close(w);
    }
  });

  it('pipe({ cloexec: false, nonblock: true })', () => {
    const [r, w] = fw.pipe({ cloexec: false, nonblock: true });
    try {
      assert.equal(fw.getInheritable(r), true);
      assert.equal(fw.getBlocking(r), false);
      assert.throws(() => readSync(r, Buffer.alloc(1)), { code: 'EAGAIN' });
    } finally {
      fw.close(r);
      fw.close(w);
    }
  });

  it('dup is close-on-exec; dup2 is inheritable unless asked otherwise', () => {
    const [r, w] = fw.pipe();
    const d = fw.dup(w);
    const target = fw.dup(w); // a free number to dup2 onto
    try {
      assert.equal(fw.getInheritable(d), false);
      assert.equal(fw.dup2(r, target), target);
      assert.equal(fw.getInheritable(target), true);
      fw.dup2(r, target, { inheritable: false });
      assert.equal(fw.getInheritable(target), false);
      assert.equal(fw.dup2(target, target), target); // as dup2(2): same fd is fine
      writeSync(d, 'z');
      const buf = Buffer.alloc(1);
      readSync(target, buf);
      assert.equal(buf.toString(), 'z');
    } finally {
      for (const fd of [r, w, d, target]) fw.close(fd);
    }
  });

  it('setInheritable and setBlocking toggle the flags', () => {
    const [r, w] = fw.pipe();
    try {
      fw.setInheritable(r, true);
      assert.equal(fw.getInheritable(r), true);
      fw.setInheritable(r, false);
      assert.equal(fw.getInheritable(r), false);
      fw.setBlocking(r, false);
      assert.equal(fw.getBlocking(r), false);
      fw.setBlocking(r, true);
      assert.equal(fw.getBlocking(r), true);
    } finally {
      fw.close(r);
      fw.close(w);
    }
  });

  it('close of a closed descriptor is EBADF', () => {
    const [r, w] = fw.pipe();
    fw.close(r);
    fw.close(w);
    assert.throws(() => fw.close(r), { code: 'EBADF', errno: -9, syscall: 'close' });
  });

  it('only inheritable descriptors cross exec', async () => {
    const out = await runNode('fd-inherit.js');
    assert.equal(out.code, 0, out.stderr);
    const r = JSON.parse(out.stdout);
    assert.equal(r.inheritableSeen, true);
    assert.equal(r.cloexecSeen, false);
  });
});
