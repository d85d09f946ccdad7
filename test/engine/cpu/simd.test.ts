/**
 * The CPU backend's float32 products (WebAssembly SIMD gemm, and the table-driven stride-1
 * convolution) against its float64 path, over odd and prime shapes, every transpose case, strides,
 * padding, dilation and groups. float32 accumulates in float32, so the bound is the classical
 * |error| ≤ K·2^-24·Σ|a_k b_k| + 2^-24·|ref| (the float64 result of float32 inputs is exact to
 * ~1e-16 here). Also: the worker-thread split does not change a single bit.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

import type { Backend, Conv2dSpec, MatmulSpec, Storage } from '../../../src/engine/backend.js';
import { simdRuntime } from '../../../src/engine/backends/cpu/simd-gemm.js';
import { conv2dSpec } from '../../../src/engine/ops/conv.js';
import { assertNear, cpu, randArray } from '../webgpu/setup.js';

function read(s: Storage): Float64Array {
  return Float64Array.from(cpu.readSync!(s));
}

/** f32 result vs the f64 result of the same inputs, within the K-term accumulation bound. */
function checkProduct(
  inputs: [Float32Array, Float32Array],
  k: number,
  op: (b: Backend, x: Storage, y: Storage) => Storage,
  what: string,
): void {
  const f32 = read(op(cpu, cpu.fromArray(inputs[0]), cpu.fromArray(inputs[1])));
  const f64 = read(
    op(
      cpu,
      cpu.fromArray(Float64Array.from(inputs[0])),
      cpu.fromArray(Float64Array.from(inputs[1])),
    ),
  );
  const abs = read(
    op(
      cpu,
      cpu.fromArray(Float64Array.from(inputs[0], Math.abs)),
      cpu.fromArray(Float64Array.from(inputs[1], Math.abs)),
    ),
  );
  assertNear(
    f32,
    f64,
    { bound: (i) => k * 2 ** -24 * abs[i]! + 2 ** -24 * Math.abs(f64[i]!) },
    what,
  );
  // Not vacuous: float32 accumulation differs from float64 somewhere on these sizes.
  if (k >= 64)
    assert.ok(
      f32.some((v, i) => v !== f64[i]),
      `${what}: f32 result equals f64 exactly`,
    );
}

function mm(
  batch: number,
  m: number,
  n: number,
  k: number,
  transA = false,
  transB = false,
): MatmulSpec {
  return { batch, m, n, k, transA, transB, aBatchStride: m * k, bBatchStride: k * n };
}

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
  { x: [3, 8, 10, 10], w: [16, 8, 3, 3], padding: 1 },
  { x: [1, 5, 11, 13], w: [7, 5, 3, 3], padding: 1 },
  { x: [2, 6, 9, 9], w: [5, 6, 3, 3] },
  { x: [3, 8, 5, 5], w: [6, 8, 1, 1] },
  { x: [2, 3, 6, 6], w: [4, 3, 5, 5], padding: 2 },
  { x: [1, 2, 8, 8], w: [3, 2, 3, 3], dilation: 2, padding: 2 },
  { x: [1, 3, 7, 6], w: [2, 3, 1, 1], padding: 1 }, // pad > dil·(k − 1): the input gradient takes the col2im path
  { x: [1, 4, 9, 9], w: [5, 4, 3, 3], stride: 2, padding: 1 },
  { x: [1, 3, 7, 5], w: [2, 3, 3, 1], stride: [2, 1], padding: [1, 0] },
  { x: [2, 4, 6, 6], w: [6, 2, 3, 3], groups: 2, padding: 1 },
  { x: [4, 32, 14, 14], w: [64, 32, 3, 3], padding: 1 }, // large enough to use the threads
];

void describe('cpu float32 products (wasm SIMD)', () => {
  void test('the SIMD runtime is active', () => {
    assert.ok(simdRuntime() !== null, 'WebAssembly SIMD is unavailable: the JS gemm is in use');
  });

  void test('matmul: odd and prime shapes, every transpose case', () => {
    const shapes: [number, number, number, number][] = [
      [1, 1, 1, 1],
      [1, 3, 5, 2],
      [2, 37, 29, 53],
      [1, 4, 8, 16],
      [3, 9, 17, 65],
      [1, 128, 96, 200],
    ];
    let seed = 1;
    for (const [batch, m, n, k] of shapes) {
      for (const [ta, tb] of [
        [false, false],
        [true, false],
        [false, true],
        [true, true],
      ] as const) {
        const spec = mm(batch, m, n, k, ta, tb);
        checkProduct(
          [randArray(batch * m * k, seed++), randArray(batch * k * n, seed++)],
          k,
          (b, x, y) => b.matmul(x, y, spec),
          `matmul ${JSON.stringify(spec)}`,
        );
      }
    }
  });

  for (const cc of CONVS) {
    const spec: Conv2dSpec = conv2dSpec(cc.x, cc.w, cc);
    const name = `x ${cc.x.join('×')} w ${cc.w.join('×')} ${JSON.stringify({ ...cc, x: undefined, w: undefined })}`;
    void test(`conv2d forward, grad input, grad weight: ${name}`, () => {
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
      checkProduct([xs, ws], kFwd, (b, x, w) => b.conv2d(x, w, spec), `conv2d ${name}`);
      checkProduct([dys, ws], kDx, (b, dy, w) => b.conv2dGradInput(dy, w, spec), `dx ${name}`);
      checkProduct([xs, dys], kDw, (b, x, dy) => b.conv2dGradWeight(x, dy, spec), `dw ${name}`);
    });
  }

  void test('empty batches and k = 0 give zeros', () => {
    const spec = conv2dSpec([0, 3, 5, 5], [4, 3, 3, 3], { padding: 1 });
    const w = cpu.fromArray(randArray(4 * 3 * 9, 1));
    const x = cpu.fromArray(new Float32Array(0));
    const dy = cpu.fromArray(new Float32Array(0));
    assert.equal(read(cpu.conv2d(x, w, spec)).length, 0);
    assert.deepEqual(read(cpu.conv2dGradWeight(x, dy, spec)), new Float64Array(4 * 3 * 9));
    const e = cpu.fromArray(new Float32Array(0));
    assert.deepEqual(read(cpu.matmul(e, e, mm(2, 3, 4, 0))), new Float64Array(24));
  });

  void test('results do not depend on the number of threads', () => {
    const script = fileURLToPath(new URL('./simd-digest.ts', import.meta.url));
    const run = (threads: string): string => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', script], {
        env: { ...process.env, SUMI_CPU_THREADS: threads },
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, `digest script failed: ${r.stderr}`);
      return r.stdout.trim();
    };
    const one = run('1');
    const two = run('2');
    const four = run('4');
    assert.match(one, /^[0-9a-f]{64} workers 0$/, 'one thread: no workers');
    assert.match(two, / workers 1$/, 'two threads: one worker took part');
    assert.match(four, / workers 3$/, 'four threads: three workers took part');
    const digest = (line: string): string => line.split(' ')[0]!;
    assert.equal(digest(two), digest(one), 'two threads vs one');
    assert.equal(digest(four), digest(one), 'four threads vs one');
  });
});
