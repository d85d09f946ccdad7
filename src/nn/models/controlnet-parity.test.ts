/**
 * ControlNetModel against the plain-PyTorch reference of scripts/ref/controlnet_ref.py (diffusers'
 * ControlNetModel with DownBlock2D, AttnDownBlock2D, the single-resnet mid block, a class embedding
 * and a condition embedding with one stride-2 block; every weight random, the zero convolutions
 * included): the residuals in float64 to 1e-10 and in float32 to 1e-5.
 */
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { assertClose } from '../../engine/testing.js';
import { loadTensors } from '../state-io.js';
import { loadControlNet } from './controlnet-fs.js';

const FIXTURE = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../../test/fixtures/controlnet',
);

void describe('ControlNetModel parity', () => {
  void it('matches the PyTorch reference (float64 to 1e-10, float32 to 1e-5)', async () => {
    const io = await loadTensors(resolve(FIXTURE, 'io.safetensors'));
    const scale = io.get('conditioning_scale')!.dataSync()[0]!;
    const timesteps = Array.from(io.get('timesteps')!.dataSync());
    for (const [dtype, tol] of [
      ['float64', 1e-10],
      ['float32', 1e-5],
    ] as const) {
      const cn = await loadControlNet(FIXTURE);
      if (dtype === 'float64') await cn.to({ dtype });
      const cast = (name: string) => {
        const t = io.get(name)!;
        return dtype === 'float64' ? t.cast('float64') : t;
      };
      const out = cn.forward(cast('sample'), timesteps, cast('controlnet_cond'), {
        classLabels: io.get('class_labels')!,
        conditioningScale: scale,
      });
      assert.equal(out.downBlockResSamples.length, 4, 'one residual per skip');
      out.downBlockResSamples.forEach((r, i) => {
        assert.equal(r.dtype, dtype);
        assertClose(r, io.get(`down_${i}`)!, { rtol: tol, atol: tol }, `down_${i} ${dtype}`);
      });
      assertClose(out.midBlockResSample, io.get('mid')!, { rtol: tol, atol: tol }, `mid ${dtype}`);
    }
  });
});
