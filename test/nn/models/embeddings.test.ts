import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { tensor } from '../../../src/engine/index.js';
import {
  getTimestepEmbedding,
  TimestepEmbedding,
  timestepsTensor,
} from '../../../src/nn/models/embeddings.js';
import { cpuBackend } from '../../../src/engine/index.js';

/** diffusers' get_timestep_embedding, evaluated in float64. */
function reference(t: number, dim: number, flip: boolean, shift: number): number[] {
  const half = Math.floor(dim / 2);
  const f = Array.from({ length: half }, (_, i) =>
    Math.exp((-Math.log(10000) * i) / (half - shift)),
  );
  const sin = f.map((v) => Math.sin(t * v));
  const cos = f.map((v) => Math.cos(t * v));
  const out = flip ? [...cos, ...sin] : [...sin, ...cos];
  return dim % 2 === 1 ? [...out, 0] : out;
}

void describe('getTimestepEmbedding', () => {
  for (const [dim, flip, shift] of [
    [32, true, 0],
    [32, false, 1],
    [7, true, 1],
  ] as const) {
    void it(`matches the formula (dim ${dim}, flip ${flip}, shift ${shift}) in float32`, () => {
      const ts = [0, 10, 999];
      const emb = getTimestepEmbedding(tensor(ts), dim, {
        flipSinToCos: flip,
        downscaleFreqShift: shift,
      });
      assert.equal(emb.dtype, 'float32');
      assert.deepEqual(emb.shape, [3, dim]);
      const got = emb.dataSync();
      ts.forEach((t, b) => {
        reference(t, dim, flip, shift).forEach((v, i) => {
          // float32 arguments of up to ~1000 rad: a few 1e-5 of absolute rounding
          assert.ok(
            Math.abs(got[b * dim + i]! - v) < 1e-4,
            `t=${t} i=${i}: ${got[b * dim + i]} vs ${v}`,
          );
        });
      });
    });
  }

  void it('is float32 even for float64 timesteps (as diffusers)', () => {
    const emb = getTimestepEmbedding(tensor([1.5], [1], { dtype: 'float64' }), 4);
    assert.equal(emb.dtype, 'float32');
  });
});

void describe('timestepsTensor', () => {
  const be = cpuBackend();
  void it('broadcasts one timestep to the batch', () => {
    assert.deepEqual([...timestepsTensor(5, 3, be).dataSync()], [5, 5, 5]);
    assert.deepEqual(
      [...timestepsTensor(tensor([7], [], { dtype: 'int32' }), 2, be).dataSync()],
      [7, 7],
    );
    assert.deepEqual([...timestepsTensor([1, 2], 2, be).dataSync()], [1, 2]);
  });
  void it('rejects a wrong count', () => {
    assert.throws(() => timestepsTensor([1, 2, 3], 2, be), /expected one timestep or 2/);
  });
});

void describe('TimestepEmbedding', () => {
  void it('has diffusers parameter names and maps [B, in] to [B, out]', () => {
    const m = new TimestepEmbedding(8, 16);
    assert.deepEqual(
      m.namedParameters().map(([n]) => n),
      ['linear_1.weight', 'linear_1.bias', 'linear_2.weight', 'linear_2.bias'],
    );
    assert.deepEqual(m.forward(tensor(new Float32Array(16), [2, 8])).shape, [2, 16]);
  });
});
