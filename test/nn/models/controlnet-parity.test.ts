/**
 * ControlNetModel against the plain-PyTorch reference of scripts/ref/controlnet_ref.py (diffusers'
 * ControlNetModel with DownBlock2D, AttnDownBlock2D, the single-resnet mid block, a class embedding
 * and a condition embedding with one stride-2 block; and a UNet2DModel base with its mid block of
 * resnet, attention, resnet; every weight random, the zero convolutions included): the residuals
 * in float64 to 1e-10 and in float32 to 1e-5.
 */
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { assertClose } from '../../engine/testing.js';
import { loadTensors } from '../../../src/nn/state-io.js';
import { loadControlNet } from '../../../src/nn/models/controlnet-fs.js';

const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures');

void describe('ControlNetModel parity', () => {
  for (const name of ['controlnet', 'controlnet-unet2d']) {
    void it(`${name}: matches the PyTorch reference (float64 to 1e-10, float32 to 1e-5)`, async () => {
      const FIXTURE = resolve(FIXTURES, name);
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
        assertClose(
          out.midBlockResSample,
          io.get('mid')!,
          { rtol: tol, atol: tol },
          `mid ${dtype}`,
        );
      }
    });
  }
});
