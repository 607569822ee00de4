import assert from 'node:assert/strict';
import { join } from 'node:path';
import { runNode } from './helpers';

const examples = join(__dirname, '..', 'examples');

describe('examples run and check themselves', function () {
  this.timeout(60000);

  it('pipeline (npm run demo)', async () => {
    const out = await runNode(join(examples, 'pipeline.mjs'), [], { timeoutMs: 30000 });
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.match(out.stdout, /all checks passed/);
  });

  it('parallel-sum', async () => {
    const out = await runNode(join(examples, 'parallel-sum.mjs'), [], { timeoutMs: 30000 });
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.match(out.stdout, /all checks passed/);
  });

  it('threads-producer-consumer', async () => {
    const out = await runNode(join(examples, 'threads-producer-consumer.mjs'), [], { timeoutMs: 30000 });
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.match(out.stdout, /all checks passed/);
  });

  it('processes-producer-consumer', async () => {
    const out = await runNode(join(examples, 'processes-producer-consumer.mjs'), [], { timeoutMs: 30000 });
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.match(out.stdout, /all checks passed/);
  });

  for (const method of ['fork', 'forkserver', 'spawn']) {
    it(`manager-dict (two processes fill one managed dict; ${method})`, async () => {
      const out = await runNode(join(examples, 'manager-dict.mjs'), ['--start-method', method], { timeoutMs: 30000 });
      assert.equal(out.code, 0, out.stdout + out.stderr);
      assert.match(out.stdout, /set keys 0\.\.4: \{ '0': 100, '1': 101, '2': 102, '3': 103, '4': 104 \}/);
      assert.match(out.stdout, /set keys 5\.\.9: \{ '5': 105, '6': 106, '7': 107, '8': 108, '9': 109 \}/);
      assert.match(out.stdout, /the parent sees: \{"0":100,"1":101,.*"9":109\}/);
      assert.match(out.stdout, /all checks passed/);
    });
  }

  it('signals', async () => {
    const out = await runNode(join(examples, 'signals.mjs'), [], { timeoutMs: 30000 });
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.match(out.stdout, /all checks passed/);
  });

  it('pool-progress (a small dataset; the progress goes one line per 10 % into a pipe)', async () => {
    const out = await runNode(join(examples, 'pool-progress.mjs'), ['--records', '200000'], { timeoutMs: 30000 });
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.match(out.stdout, /all checks passed/);
    assert.equal(out.stdout.match(/^ +progress +\d+ %/gm)?.length, 10, out.stdout);
    assert.match(out.stdout, /progress 100 % \(20\/20 blocks/);
  });

  it('supervisor gives up after its restart limit and exits 0', async () => {
    const out = await runNode(join(examples, 'supervisor.mjs'), ['--max-restarts', '1'], { nodeArgs: [], timeoutMs: 30000 });
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.match(out.stdout + out.stderr, /restart limit reached/);
  });
});
