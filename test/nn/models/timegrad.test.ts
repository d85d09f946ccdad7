import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Generator, randn, type Tensor, tidy } from '../../../src/engine/index.js';
import { assertClose, gradcheck } from '../../engine/testing.js';
import {
  Conv1d,
  conv1d,
  GRU,
  gruCell,
  TimeGradModel,
  timeGradInputSize,
} from '../../../src/nn/models/timegrad.js';

const rnd = (shape: number[], seed: number): Tensor => randn(shape, { seed, dtype: 'float64' });

/** PyTorch's GRU equations on plain arrays (one layer, one step), the reference for GRU.step. */
function gruStepReference(
  x: Float64Array,
  h: Float64Array,
  wih: Float64Array,
  whh: Float64Array,
  bih: Float64Array,
  bhh: Float64Array,
  I: number,
  H: number,
): Float64Array {
  const sig = (v: number): number => 1 / (1 + Math.exp(-v));
  const dot = (w: Float64Array, row: number, v: Float64Array, n: number): number => {
    let s = 0;
    for (let k = 0; k < n; k++) s += w[row * n + k]! * v[k]!;
    return s;
  };
  const out = new Float64Array(H);
  for (let j = 0; j < H; j++) {
    const r = sig(dot(wih, j, x, I) + bih[j]! + dot(whh, j, h, H) + bhh[j]!);
    const z = sig(dot(wih, H + j, x, I) + bih[H + j]! + dot(whh, H + j, h, H) + bhh[H + j]!);
    const n = Math.tanh(
      dot(wih, 2 * H + j, x, I) +
        bih[2 * H + j]! +
        r * (dot(whh, 2 * H + j, h, H) + bhh[2 * H + j]!),
    );
    out[j] = (1 - z) * n + z * h[j]!;
  }
  return out;
}

void describe('TimeGrad layers', () => {
  void it('gruCell follows the GRU equations', () => {
    tidy(() => {
      const f = (t: Tensor): Float64Array => Float64Array.from(t.dataSync());
      const shapes = [[1, 3], [1, 4], [12, 3], [12, 4], [12], [12]];
      const [x, h, wih, whh, bih, bhh] = shapes.map((sh, k) => rnd(sh, k + 1)) as [
        Tensor,
        Tensor,
        Tensor,
        Tensor,
        Tensor,
        Tensor,
      ];
      const got = gruCell(x, h, wih, whh, bih, bhh);
      const want = gruStepReference(f(x), f(h), f(wih), f(whh), f(bih), f(bhh), 3, 4);
      assertClose(got, want, { rtol: 1e-12, atol: 1e-12 });
      // The module applies the same cell to its own weights.
      const gru = new GRU(3, 4, 1, { generator: new Generator(5) });
      const w = gru.weights[0]!;
      const x32 = x.cast('float32');
      const h32 = h.cast('float32');
      assertClose(gru.step(x32, [h32])[0]!, gruCell(x32, h32, w.ih, w.hh, w.bih, w.bhh));
    });
  });

  void it('gruCell has f64 gradients that match finite differences', () => {
    const shapes = [[2, 3], [2, 4], [12, 3], [12, 4], [12], [12]];
    gradcheck(
      gruCell,
      shapes.map((sh, k) => rnd(sh, k + 10)),
      { name: 'gruCell' },
    );
  });

  void it('conv1d with dilation and padding: shape, and f64 gradients', () => {
    const conv = new Conv1d(2, 3, 3, { padding: 2, dilation: 2, generator: new Generator(3) });
    assert.deepEqual(conv.forward(randn([2, 2, 5], { seed: 1 })).shape, [2, 3, 5]);
    const inputs = [rnd([2, 2, 5], 4), rnd([3, 2, 3], 5), rnd([3], 6)];
    gradcheck((x, w, b) => conv1d(x, w, b, 2, 2), inputs, { name: 'conv1d' });
  });
});

void describe('TimeGradModel', () => {
  const config = {
    target_dim: 3,
    context_length: 4,
    prediction_length: 2,
    lags_seq: [1, 2],
    time_features: ['day_of_week'],
    num_layers: 1,
    hidden_size: 5,
    residual_layers: 2,
    residual_channels: 4,
    cond_channels: 2,
  };

  void it('encodes [B, I] steps to [B, H] states and denoises [B, D] targets', () => {
    tidy(() => {
      const m = new TimeGradModel(config, { generator: new Generator(1) });
      const I = timeGradInputSize(m.config);
      assert.equal(I, 3 * 2 + 2 + 3);
      const steps = [0, 1, 2].map((k) => randn([2, I], { seed: k }));
      const { hidden, state } = m.encode(steps);
      assert.deepEqual([hidden.length, hidden[2]!.shape, state.length], [3, [2, 5], 1]);
      const eps = m.denoise(randn([2, 3], { seed: 9 }), [4, 50], hidden[2]!);
      assert.deepEqual(eps.shape, [2, 3]);
      assert.throws(() => m.encode([randn([2, I + 1], { seed: 0 })]), /expected \[B, 11\]/);
    });
  });

  void it('ε_θ has f64 gradients wrt x_k and the state that match finite differences', async () => {
    const m = new TimeGradModel(config, { generator: new Generator(2) });
    // The zero-initialised output layer would hide every other gradient: give it weights.
    m.epsilon.outputProjection.weight.assign(randn([1, 4, 3], { seed: 3 }));
    await m.to({ dtype: 'float64' });
    gradcheck((x, h) => m.denoise(x, [7, 30], h), [rnd([2, 3], 5), rnd([2, 5], 6)], {
      name: 'TimeGrad ε_θ',
    });
  });

  void it('keeps PyTorch names and refuses configs it cannot build', () => {
    const m = new TimeGradModel(config);
    const names = [...m.stateDict().keys()];
    for (const n of [
      'rnn.weight_ih_l0',
      'rnn.bias_hh_l0',
      'epsilon.diffusion_embedding.projection1.weight',
      'epsilon.cond_upsampler.linear2.bias',
      'epsilon.residual_layers.1.dilated_conv.weight',
      'epsilon.output_projection.weight',
    ]) {
      assert.ok(names.includes(n), `${n} in ${names.join(' ')}`);
    }
    assert.deepEqual(
      m.stateDict().get('epsilon.residual_layers.1.dilated_conv.weight')!.shape,
      [8, 4, 3],
    );
    assert.throws(() => new TimeGradModel({ time_features: ['minute'] }), /time_features/);
    assert.throws(() => new TimeGradModel({ lags_seq: [] }), /lags_seq/);
  });
});
