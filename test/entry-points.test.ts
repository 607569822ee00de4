import assert from 'node:assert/strict';

const entryPoints = ['forkwise', 'forkwise/sync', 'forkwise/multiprocessing', 'forkwise/threading'];

describe('entry points', () => {
  for (const name of entryPoints) {
    it(`${name} loads from CommonJS and ESM, with the same exports`, async () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const cjs = require(name) as Record<string, unknown>;
      const esm = (await import(name)) as Record<string, unknown>;
      const named = Object.keys(esm).filter((key) => !['default', '__esModule', 'module.exports'].includes(key));
      assert.deepEqual(named.sort(), Object.keys(cjs).filter((k) => k !== '__esModule').sort());
    });
  }

  it('the raw layer is reachable from both', async () => {
    const esm = (await import('forkwise')) as typeof import('forkwise');
    assert.equal(typeof esm.fork, 'function');
    assert.equal(esm.getpid(), process.pid);
  });
});
