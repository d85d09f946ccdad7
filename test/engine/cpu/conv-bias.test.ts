/**
 * The CPU backend's convolution with its bias added as the output is written (conv2dBias): the
 * same bits as the convolution followed by a separate bias add, on the float32 paths (stride 1
 * through the wasm row copy, strided and grouped through im2col) and in float64.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { conv2dSpec } from '../../../src/engine/ops/conv.js';
import type { TypedArray } from '../../../src/engine/dtype.js';
import { cpu, randArray } from '../webgpu/setup.js';

const CASES: { x: number[]; w: number[]; opts: Parameters<typeof conv2dSpec>[2] }[] = [
  { x: [3, 5, 9, 7], w: [6, 5, 3, 3], opts: { padding: 1 } },
  { x: [2, 4, 8, 8], w: [3, 4, 1, 1], opts: {} },
  { x: [2, 4, 9, 9], w: [6, 4, 3, 3], opts: { stride: 2, padding: 1 } },
  { x: [1, 4, 6, 6], w: [4, 2, 3, 3], opts: { padding: 1, groups: 2 } },
];

void describe('cpu conv2d with bias', () => {
  for (const c of CASES) {
    for (const dtype of ['float32', 'float64'] as const) {
      void test(`${dtype} x${c.x.join('x')} w${c.w.join('x')} ${JSON.stringify(c.opts)}`, () => {
        const spec = conv2dSpec(c.x, c.w, c.opts);
        const arr = (n: number, seed: number): TypedArray =>
          dtype === 'float32' ? randArray(n, seed) : Float64Array.from(randArray(n, seed));
        const x = cpu.fromArray(
          arr(
            c.x.reduce((a, b) => a * b, 1),
            1,
          ),
        );
        const w = cpu.fromArray(
          arr(
            c.w.reduce((a, b) => a * b, 1),
            2,
          ),
        );
        const bias = arr(c.w[0]!, 3);
        const fused = cpu.readSync!(cpu.conv2dBias!(x, w, cpu.fromArray(bias), spec));
        const plain = cpu.readSync!(cpu.conv2d(x, w, spec));
        const P = spec.hOut * spec.wOut;
        const want = plain.map((v, i) => v + bias[Math.floor(i / P) % spec.cOut]!);
        assert.equal(fused.length, want.length);
        const differ = fused.findIndex((v, i) => !Object.is(v, want[i]));
        assert.equal(differ, -1, `element ${differ}: ${fused[differ]} vs ${want[differ]}`);
      });
    }
  }
});
