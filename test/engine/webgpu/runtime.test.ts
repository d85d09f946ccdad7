/**
 * The WebGPU runtime: command batching, the buffer pool (reuse, no reuse that could corrupt
 * recorded work, no leak over many tidy'd steps, giving memory back past its budget), reductions
 * with and without subgroups, errors (device lost, oversized buffers, use after free) and backend
 * selection. The pool's out-of-memory handling is tested without a GPU in pool.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { WebGpuBackend, type WebGpuStorage } from '../../../src/engine/backends/webgpu/index.js';
import { BATCH_LIMIT } from '../../../src/engine/backends/webgpu/runtime.js';
import {
  cpuBackend,
  defaultBackend,
  getBackend,
  initBackend,
  initDefaultBackend,
  layerNorm,
  mul,
  setDefaultBackend,
  softmax,
  tensor,
  tidy,
} from '../../../src/engine/index.js';
import { createWebGpuBackend } from '../../../src/engine/backends/webgpu/index.js';
import { assertNear, both, randArray, setupGpu } from './setup.js';

const gpu = await setupGpu();
const skip = gpu === null;

void describe('webgpu runtime', { skip }, () => {
  void test('many dispatches share one submission', async () => {
    const x = gpu!.fromArray(randArray(64, 1));
    await gpu!.read(x);
    const before = gpu!.stats();
    const outs = [];
    for (let i = 0; i < 1200; i++) outs.push(gpu!.unary('neg', x));
    const mid = gpu!.stats();
    assert.equal(mid.dispatches - before.dispatches, 1200);
    // Submitted only when a batch fills up (no read yet).
    assert.equal(mid.submits - before.submits, Math.floor(1200 / BATCH_LIMIT));
    const last = await gpu!.read(outs[1199]!);
    assert.equal(last[3], -(await gpu!.read(x))[3]!);
    for (const o of outs) gpu!.free(o);
    gpu!.free(x);
  });

  void test('a buffer freed while recorded work reads it is not given to an upload', async () => {
    const data = randArray(300, 2);
    const x = gpu!.fromArray(data) as WebGpuStorage;
    await gpu!.read(x); // x's upload is submitted; the encoder is empty
    const y = gpu!.unary('neg', x); // recorded, not submitted
    const xId = x.buf!.id;
    gpu!.free(x);
    // queue.writeBuffer runs before the pending encoder: reusing x's buffer here would
    // overwrite x before neg reads it.
    const z = gpu!.fromArray(randArray(300, 3)) as WebGpuStorage;
    assert.notEqual(z.buf!.id, xId);
    // A dispatch output may reuse it (dispatches run in order).
    const w = gpu!.unary('abs', z) as WebGpuStorage;
    assert.equal(w.buf!.id, xId);
    assertNear(
      await gpu!.read(y),
      data.map((v) => -v),
      {},
      'neg of the freed input',
    );
    for (const s of [y, z, w]) gpu!.free(s);
    // Once submitted (the read above) the buffer is clean: an upload reuses it (last freed,
    // first reused).
    await gpu!.sync();
    const u = gpu!.fromArray(randArray(300, 4)) as WebGpuStorage;
    assert.equal(u.buf!.id, xId);
    gpu!.free(u);
  });

  void test('no leak: storages and pool buffers stay steady over many tidy steps', async () => {
    const w = tensor(randArray(64 * 64, 5), [64, 64], { backend: gpu! });
    const step = (): number =>
      tidy(() => {
        const h = w.matmul(w).tanh().add(1).mul(w).sum([1]);
        return h.size;
      });
    for (let i = 0; i < 20; i++) step();
    await gpu!.sync();
    const base = gpu!.stats();
    for (let i = 0; i < 2000; i++) step();
    await gpu!.sync();
    const after = gpu!.stats();
    assert.equal(after.live, base.live, 'live storages');
    assert.equal(after.created, base.created, 'buffers created after warm-up');
    assert.equal(after.inUse, base.inUse, 'buffers in use');
    w.dispose();
  });

  void test('past the pool budget, pooled memory goes back mid-recording; results unchanged', async () => {
    const x = tensor(randArray(33 * 65, 9), [33, 65], { backend: gpu! });
    // Composites free their intermediates as they go, so buffers are pooled while recording.
    const run = () => tidy(() => softmax(layerNorm(mul(x, 3), 1), 0));
    const pool = gpu!.runtime.pool;
    await gpu!.sync();
    gpu!.trim();
    const first = run();
    const want = await first.data();
    first.dispose();
    await gpu!.sync();
    gpu!.trim();
    const submits = gpu!.stats().submits;
    pool.budget = pool.stats().bytesInUse + 1;
    try {
      const second = run();
      assert.ok(gpu!.stats().submits > submits, 'pooled buffers were given back while recording');
      assert.deepEqual(await second.data(), want);
      second.dispose();
    } finally {
      pool.budget = Infinity;
      x.dispose();
    }
  });

  void test('reductions agree with and without subgroups', async () => {
    const plain = new WebGpuBackend(gpu!.device, { subgroups: false });
    assert.equal(plain.subgroups, false);
    const x = randArray(7 * 3001, 6);
    for (const op of ['sum', 'max', 'min'] as const) {
      const a = await both(plain, [x], (b, [s]) => b.reduce(op, s!, 7, 3001, 1));
      const bound = (i: number) => 3000 * 2 ** -24 * 3001 + Math.abs(a.c[i]!) * 2 ** -24;
      assertNear(a.g, a.c, { bound }, `${op} without subgroups`);
      const s = await both(gpu!, [x], (b, [t]) => b.reduce(op, t!, 7, 3001, 1));
      assertNear(s.g, s.c, { bound }, `${op} default (subgroups: ${gpu!.subgroups})`);
    }
  });

  void test('use after free and oversized buffers throw clear errors', () => {
    const x = gpu!.fromArray(randArray(4, 7));
    gpu!.free(x);
    assert.throws(() => gpu!.unary('neg', x), /after free/);
    assert.throws(() => gpu!.fill(2 ** 31, 0, 'float32'), /exceeds this device/);
    const cpuS = cpuBackend().fromArray(new Float32Array(2));
    assert.throws(() => gpu!.unary('neg', cpuS), /cpu backend/);
  });

  void test('a lost device fails reads and new work with a clear error, not a hang', async () => {
    const other = await createWebGpuBackend();
    assert.ok(other !== null, 'a second device on the same adapter');
    const x = other.fromArray(randArray(16, 8));
    const y = other.unary('exp', x);
    other.device.destroy();
    await assert.rejects(other.read(y), /device lost|destroyed|lost/i);
    await other.device.lost;
    assert.equal(other.lost, true);
    assert.throws(() => other.unary('exp', x), /device lost/);
  });

  void test('SUMI_WEBGPU_BUDGET_MB sets the pool budget of a new backend', async () => {
    const prev = process.env.SUMI_WEBGPU_BUDGET_MB;
    process.env.SUMI_WEBGPU_BUDGET_MB = '64';
    try {
      const other = await createWebGpuBackend();
      assert.ok(other !== null, 'a second device on the same adapter');
      assert.equal(other.runtime.pool.budget, 64 * 2 ** 20);
      other.device.destroy();
    } finally {
      if (prev === undefined) delete process.env.SUMI_WEBGPU_BUDGET_MB;
      else process.env.SUMI_WEBGPU_BUDGET_MB = prev;
    }
    assert.equal(gpu!.runtime.pool.budget, Infinity, 'unset: no budget');
  });

  void test('initBackend and SUMI_BACKEND select backends', async () => {
    const prev = process.env.SUMI_BACKEND;
    const prevDefault = defaultBackend();
    try {
      process.env.SUMI_BACKEND = 'cpu';
      assert.equal((await initBackend()).name, 'cpu');
      process.env.SUMI_BACKEND = 'webgpu';
      const w = await initBackend();
      assert.equal(w.name, 'webgpu');
      assert.equal(getBackend('webgpu'), w);
      assert.equal(await initBackend('webgpu'), w, 'initialized once');
      delete process.env.SUMI_BACKEND;
      assert.equal((await initDefaultBackend()).name, 'webgpu');
      assert.equal(defaultBackend(), w);
      process.env.SUMI_BACKEND = 'tpu';
      await assert.rejects(initBackend(), /SUMI_BACKEND/);
    } finally {
      if (prev === undefined) delete process.env.SUMI_BACKEND;
      else process.env.SUMI_BACKEND = prev;
      setDefaultBackend(prevDefault);
    }
  });
});
