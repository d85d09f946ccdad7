/**
 * The buffer pool under memory pressure, on a stand-in device whose createBuffer fails when told
 * to (now, by throwing, or later, through its out-of-memory error scope): no GPU needed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  BufferPool,
  poolBudgetFromEnv,
  sizeClass,
} from '../../../src/engine/backends/webgpu/pool.js';

interface FakeBuffer {
  readonly size: number;
  destroyed: boolean;
  destroy(): void;
}

/** A device with just what the pool calls; `throwNext` and `reportNext` inject failures. */
function fakeDevice() {
  const made: FakeBuffer[] = [];
  const state = { throwNext: 0, reportNext: 0, calls: 0 };
  const scopes: boolean[] = [];
  const device = {
    limits: { maxStorageBufferBindingSize: 1 << 30 },
    pushErrorScope: () => scopes.push(false),
    createBuffer: ({ size }: { size: number }): FakeBuffer => {
      state.calls++;
      if (state.throwNext > 0) {
        state.throwNext--;
        throw new RangeError('allocation failed');
      }
      if (state.reportNext > 0) {
        state.reportNext--;
        scopes[scopes.length - 1] = true;
      }
      const b: FakeBuffer = {
        size,
        destroyed: false,
        destroy() {
          this.destroyed = true;
        },
      };
      made.push(b);
      return b;
    },
    popErrorScope: () =>
      Promise.resolve(scopes.pop() === true ? { message: 'Out of memory' } : null),
  };
  return { device: device as unknown as GPUDevice, made, state };
}

function makePool() {
  const fake = fakeDevice();
  const errors: Error[] = [];
  const pool = new BufferPool(fake.device, (e) => errors.push(e));
  let flushes = 0;
  let pending = false;
  pool.hasPendingWork = () => pending;
  pool.flush = () => {
    flushes++;
    pending = false;
    pool.submitted();
  };
  return {
    pool,
    fake,
    errors,
    flushes: () => flushes,
    setPending: (p: boolean) => (pending = p),
  };
}

const alive = (bs: readonly FakeBuffer[]) => bs.filter((b) => !b.destroyed).length;

void describe('webgpu buffer pool under memory pressure', () => {
  void test('a failed allocation gives pooled memory back and is tried once more', () => {
    const { pool, fake, flushes, setPending } = makePool();
    const held = pool.acquire(1024, false);
    setPending(true); // released while recorded work may read them: dirty
    for (const b of [pool.acquire(1024, false), pool.acquire(1024, false)]) pool.release(b);
    fake.state.throwNext = 1;
    const big = pool.acquire(4000, false);
    assert.equal(big.bytes, sizeClass(4000));
    assert.equal(flushes(), 1, 'the recorded work was submitted so the dirty buffers could go');
    assert.equal(alive(fake.made), 2, 'the two pooled buffers were destroyed');
    assert.deepEqual(pool.stats(), {
      inUse: 2,
      pooled: 0,
      bytesInUse: 1024 + big.bytes,
      bytesPooled: 0,
      created: 4,
    });
    pool.release(held);
  });

  void test('a second failure throws one error with the bytes asked, in use and pooled', () => {
    const { pool, fake } = makePool();
    pool.acquire(2048, false);
    pool.release(pool.acquire(1024, false));
    fake.state.throwNext = 2;
    assert.throws(
      () => pool.acquire(5000, false),
      new RegExp(
        '^Error: webgpu: out of memory allocating 5000 bytes \\(a 5120-byte buffer\\) with 2048 ' +
          'bytes in use and 0 pooled, after giving 1024 pooled bytes back; free tensors, use a ' +
          'smaller batch, or the cpu backend \\(allocation failed\\)$',
      ),
    );
    assert.equal(fake.state.calls, 4, 'two buffers, then the failed call and its one retry');
    const s = pool.stats();
    assert.equal(s.inUse, 1, 'the failed request holds nothing');
    assert.equal(s.bytesInUse, 2048);
    // The pool still works once memory is there again.
    pool.release(pool.acquire(5000, false));
    assert.equal(pool.stats().pooled, 1);
  });

  void test('past its budget the pool trims before creating, and not before', () => {
    const { pool, fake } = makePool();
    pool.budget = 4096;
    const held = pool.acquire(1024, false);
    for (const b of [pool.acquire(1024, false), pool.acquire(1024, false)]) pool.release(b);
    // 3072 bytes held: a 1024-byte class still fits, from the pool (nothing new made).
    pool.release(pool.acquire(1000, false));
    assert.equal(alive(fake.made), 3);
    // 3072 + 2048 > 4096: the pooled 2048 bytes go first.
    const b = pool.acquire(2048, false);
    assert.equal(alive(fake.made), 2);
    assert.equal(pool.stats().bytesPooled, 0);
    pool.release(b);
    pool.release(held);
  });

  void test('a late out-of-memory report gives pooled memory back and reports once', async () => {
    const { pool, fake, errors } = makePool();
    const kept = pool.acquire(1024, false);
    pool.release(pool.acquire(2048, false));
    fake.state.reportNext = 1;
    const bad = pool.acquire(8000, false);
    assert.equal(errors.length, 0, 'the report comes later');
    await new Promise((r) => setImmediate(r));
    assert.equal(errors.length, 1);
    assert.match(
      errors[0]!.message,
      /^webgpu: out of memory allocating 8000 bytes \(a 8192-byte buffer\) with 1024 bytes in use and 2048 pooled, after giving 2048 pooled bytes back; .* the results of the work recorded since the previous read are lost \(SUMI_WEBGPU_BUDGET_MB below the device's memory makes the pool give memory back before it runs out\)$/,
    );
    assert.equal(pool.stats().bytesPooled, 0);
    // The failed buffer is destroyed when released, never handed out again.
    const badBuffer = bad.buffer as unknown as FakeBuffer;
    pool.release(bad);
    assert.equal(badBuffer.destroyed, true);
    assert.equal(pool.stats().pooled, 0);
    assert.notEqual(pool.acquire(8000, false), bad);
    pool.release(kept);
  });

  void test('SUMI_WEBGPU_BUDGET_MB: megabytes; unset or empty is no budget; nonsense refused', () => {
    assert.equal(poolBudgetFromEnv(undefined), Infinity);
    assert.equal(poolBudgetFromEnv(''), Infinity);
    assert.equal(poolBudgetFromEnv('1.5'), 1.5 * 2 ** 20);
    assert.throws(
      () => poolBudgetFromEnv('-1'),
      /^Error: SUMI_WEBGPU_BUDGET_MB must be a number of megabytes above 0, got '-1'$/,
    );
    assert.throws(() => poolBudgetFromEnv('2GB'), /got '2GB'/);
    assert.throws(() => poolBudgetFromEnv('0'), /got '0'/);
  });
});
