import assert from 'node:assert/strict';
import { runNode } from './helpers';

// native/heap_layout.cc: with forkwise loaded, V8's new heap pages are packed together
// instead of scattered over the address space, so that fork() copies few page tables.
describe('the heap layout that fork() copies', function () {
  this.timeout(60000);

  async function layout(mode: 'forkwise' | 'plain', env: NodeJS.ProcessEnv = process.env) {
    const out = await runNode('fork-layout.js', [mode], { env, timeoutMs: 45000 });
    assert.equal(out.code, 0, out.stderr);
    return JSON.parse(out.stdout) as { newGigabytes: number; reservedBytes: number | null; childExit: number | null };
  }

  it('packs the heap pages made after forkwise loads into a few gigabytes; the child reads them', async function () {
    if (process.platform !== 'linux' || process.arch !== 'x64') this.skip();
    const packed = await layout('forkwise');
    assert.ok(packed.reservedBytes! > 2 ** 45, `reserved ${packed.reservedBytes} bytes`);
    // ~140 new V8 pages of 256 KB; measured: none outside the gigabytes already in use.
    assert.ok(packed.newGigabytes <= 4, `new heap pages in ${packed.newGigabytes} gigabytes`);
    assert.equal(packed.childExit, 0);
  });

  it('without it (plain node, or FORKWISE_HEAP_LAYOUT=random) V8 scatters them', async () => {
    const plain = await layout('plain');
    assert.ok(plain.newGigabytes > 50, `plain node: ${plain.newGigabytes} gigabytes`);
    const random = await layout('forkwise', { ...process.env, FORKWISE_HEAP_LAYOUT: 'random' });
    assert.equal(random.reservedBytes, 0);
    assert.ok(random.newGigabytes > 50, `FORKWISE_HEAP_LAYOUT=random: ${random.newGigabytes} gigabytes`);
    assert.equal(random.childExit, 0);
  });
});
