/**
 * WebGPU matmul and convolutions (implicit GEMMs) against the CPU reference, over tiny, odd,
 * prime and batch-1 shapes, every transpose case, broadcast batches, each tile size, split-K,
 * strides, padding, dilation and groups.
 *
 * Tolerance: each output is a dot product of K terms accumulated in f32 (the CPU accumulates in
 * f64 and rounds once), so the bound is the classical |error| ≤ K·2^-24·Σ|a_k b_k| plus half an
 * ulp of the result. Σ|a_k b_k| is computed exactly by running the same op on |A| and |B| on the
 * CPU. Split-K adds its partial sums in f32 too; the bound holds with the same K.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { Backend, Conv2dSpec, MatmulSpec, Storage } from '../../../src/engine/backend.js';
import {
  pickSplits,
  pickTile,
  TILE_L,
  TILE_M,
  TILE_S,
} from '../../../src/engine/backends/webgpu/gemm.wgsl.js';
import { conv2dSpec } from '../../../src/engine/ops/conv.js';
import { assertNear, both, cpu, randArray, setupGpu } from './setup.js';

const gpu = await setupGpu();
const skip = gpu === null;

/** The bound K·2^-24·Σ|terms| + 2^-24·|ref| per element. */
async function checkProduct(
  inputs: [Float32Array, Float32Array],
  k: number,
  op: (b: Backend, x: Storage, y: Storage) => Storage,
  what: string,
): Promise<void> {
  const { g, c } = await both(gpu!, inputs, (b, [x, y]) => op(b, x!, y!));
  const ax = cpu.fromArray(inputs[0].map(Math.abs));
  const ay = cpu.fromArray(inputs[1].map(Math.abs));
  const abs = await cpu.read(op(cpu, ax, ay));
  assertNear(g, c, { bound: (i) => k * 2 ** -24 * abs[i]! + 2 ** -24 * Math.abs(c[i]!) }, what);
}

function mm(
  batch: number,
  m: number,
  n: number,
  k: number,
  transA = false,
  transB = false,
  bcast: 'none' | 'a' | 'b' = 'none',
): MatmulSpec {
  return {
    batch,
    m,
    n,
    k,
    transA,
    transB,
    aBatchStride: bcast === 'a' ? 0 : m * k,
    bBatchStride: bcast === 'b' ? 0 : k * n,
  };
}

async function checkMatmul(spec: MatmulSpec, seed: number): Promise<void> {
  const aLen = (spec.aBatchStride === 0 ? 1 : spec.batch) * spec.m * spec.k;
  const bLen = (spec.bBatchStride === 0 ? 1 : spec.batch) * spec.k * spec.n;
  await checkProduct(
    [randArray(aLen, seed), randArray(bLen, seed + 1)],
    spec.k,
    (b, x, y) => b.matmul(x, y, spec),
    `matmul ${JSON.stringify(spec)}`,
  );
}

void describe('webgpu matmul', { skip }, () => {
  void test('tiny, odd and prime shapes, every transpose case', async () => {
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [1, 7, 1],
      [3, 5, 2],
      [37, 29, 53],
      [17, 13, 1],
      [2, 33, 31],
      [64, 1, 17],
    ];
    let seed = 1;
    for (const [m, n, k] of shapes) {
      for (const ta of [false, true]) {
        for (const tb of [false, true]) await checkMatmul(mm(1, m, n, k, ta, tb), seed++);
      }
    }
  });

  void test('batched, with one operand broadcast (batch stride 0)', async () => {
    await checkMatmul(mm(3, 5, 7, 9), 100);
    await checkMatmul(mm(4, 8, 3, 16, false, true, 'a'), 101);
    await checkMatmul(mm(5, 6, 11, 4, true, false, 'b'), 102);
    await checkMatmul(mm(1, 9, 9, 9, true, true), 103);
  });

  void test('each tile size, aligned (no bounds checks) and ragged', async () => {
    assert.equal(pickTile(128, 128, 96), TILE_L);
    assert.equal(pickTile(250, 200, 24), TILE_L);
    assert.equal(pickTile(64, 64, 96), TILE_M);
    assert.equal(pickTile(120, 100, 24), TILE_M);
    assert.equal(pickTile(33, 40, 1), TILE_S);
    // A device with WebGPU's default 16 KiB of workgroup memory cannot take the large tile.
    assert.equal(pickTile(128, 128, 96, 16384), TILE_M);
    await checkMatmul(mm(96, 128, 128, 16), 200);
    await checkMatmul(mm(24, 250, 200, 9, true, false), 201);
    await checkMatmul(mm(96, 64, 64, 8, false, true), 202);
    await checkMatmul(mm(24, 120, 100, 5, true, true), 203);
  });

  void test('split-K for small outputs with a long K', async () => {
    assert.ok(pickSplits(TILE_S, 8, 8, 1, 1200).splits > 1, 'an 8×8 output with K 1200 is split');
    await checkMatmul(mm(1, 8, 8, 1200), 300);
    await checkMatmul(mm(2, 5, 3, 5000, true, true), 301);
  });

  void test('more than 65535 column tiles take several dispatches', async () => {
    await checkMatmul(mm(1, 1, 65536 * 32 + 77, 2), 400);
  });

  void test('k = 0 gives zeros; empty outputs', async () => {
    const { g } = await both(gpu!, [new Float32Array(0), new Float32Array(0)], (b, [x, y]) =>
      b.matmul(x!, y!, mm(2, 3, 4, 0)),
    );
    assert.deepEqual(g, new Float32Array(24));
    const e = await both(gpu!, [new Float32Array(0), randArray(12, 1)], (b, [x, y]) =>
      b.matmul(x!, y!, mm(1, 0, 4, 3)),
    );
    assert.equal(e.g.length, 0);
  });

  void test('int32 matmul is refused with a clear error', () => {
    const a = gpu!.fromArray(new Int32Array(4));
    assert.throws(() => gpu!.matmul(a, a, mm(1, 2, 2, 2)), /float32/);
  });
});

interface ConvCase {
  x: [number, number, number, number];
  w: [number, number, number, number];
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}

const CONVS: ConvCase[] = [
  { x: [2, 3, 7, 7], w: [4, 3, 3, 3], padding: 1 },
  { x: [1, 4, 9, 9], w: [5, 4, 3, 3], stride: 2, padding: 1 },
  { x: [3, 8, 5, 5], w: [6, 8, 1, 1] },
  { x: [1, 2, 8, 8], w: [3, 2, 3, 3], dilation: 2, padding: 2 },
  { x: [2, 4, 6, 6], w: [6, 2, 3, 3], groups: 2, padding: 1 },
  { x: [2, 3, 6, 5], w: [3, 1, 3, 3], groups: 3, padding: 1 },
  { x: [1, 3, 7, 5], w: [2, 3, 3, 1], stride: [2, 1], padding: [1, 0] },
  { x: [1, 5, 11, 13], w: [7, 5, 3, 3], padding: 1 },
  { x: [2, 3, 6, 6], w: [4, 3, 5, 5] },
  { x: [1, 2, 9, 10], w: [3, 2, 4, 4], stride: 3, padding: 2 },
  { x: [4, 3, 16, 16], w: [5, 3, 3, 3], padding: 1 }, // gradWeight K = 1024: split-K
  { x: [6, 16, 16, 16], w: [64, 16, 3, 3], padding: 1 }, // medium tiles
];

void describe('webgpu conv2d (implicit GEMM)', { skip }, () => {
  for (const cc of CONVS) {
    const spec: Conv2dSpec = conv2dSpec(cc.x, cc.w, cc);
    const name = `x ${cc.x.join('×')} w ${cc.w.join('×')} ${JSON.stringify({ ...cc, x: undefined, w: undefined })}`;
    void test(`forward, grad input, grad weight: ${name}`, async () => {
      const xs = randArray(
        cc.x.reduce((a, b) => a * b),
        7,
      );
      const ws = randArray(
        cc.w.reduce((a, b) => a * b),
        8,
      );
      const dys = randArray(spec.n * spec.cOut * spec.hOut * spec.wOut, 9);
      const kFwd = (spec.cIn / spec.groups) * spec.kh * spec.kw;
      const kDx = (spec.cOut / spec.groups) * spec.kh * spec.kw;
      const kDw = spec.n * spec.hOut * spec.wOut;
      await checkProduct([xs, ws], kFwd, (b, x, w) => b.conv2d(x, w, spec), `conv2d ${name}`);
      await checkProduct(
        [dys, ws],
        kDx,
        (b, dy, w) => b.conv2dGradInput(dy, w, spec),
        `conv2dGradInput ${name}`,
      );
      await checkProduct(
        [xs, dys],
        kDw,
        (b, x, dy) => b.conv2dGradWeight(x, dy, spec),
        `conv2dGradWeight ${name}`,
      );
    });
  }
});
