/**
 * The autoencoder losses: values against plain loops, gradients against float64 central
 * differences, and the straight-through estimator passing the gradient exactly (ours and
 * VectorQuantizer's).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  hingeDiscriminatorLoss,
  hingeGeneratorLoss,
  klLoss,
  reconstructionLoss,
  straightThrough,
  vqLoss,
} from '../../src/diffusion/index.js';
import { Generator, mul, randn, sub, sum, type Tensor, tensor } from '../../src/engine/index.js';
import { DiagonalGaussianDistribution, VectorQuantizer } from '../../src/nn/models/index.js';
import { assertClose, gradcheck } from '../engine/testing.js';

const g = new Generator(7);
const f64 = (shape: number[]): Tensor => randn(shape, { generator: g, dtype: 'float64' });

void describe('reconstructionLoss', () => {
  void it('is mean(l1 |x̂ − x| + mse (x̂ − x)²)', () => {
    const a = f64([2, 3, 4, 4]);
    const b = f64([2, 3, 4, 4]);
    const av = a.dataSync();
    const bv = b.dataSync();
    const want = (l1: number, mse: number): number => {
      let s = 0;
      for (let i = 0; i < av.length; i++) {
        const d = av[i]! - bv[i]!;
        s += l1 * Math.abs(d) + mse * d * d;
      }
      return s / av.length;
    };
    // both terms, and each alone (the loss skips the term whose weight is 0)
    for (const [l1, mse] of [
      [0.7, 1.3],
      [2, 0],
      [0, 0.5],
    ] as const) {
      const got = reconstructionLoss(a, b, { l1, mse }).dataSync()[0]!;
      assertClose(got, want(l1, mse), { rtol: 1e-12 }, `l1 ${l1}, mse ${mse}`);
    }
  });

  void it('has the gradient of its central differences (both weights, each alone)', () => {
    for (const w of [
      { l1: 0.7, mse: 1.3 },
      { l1: 1, mse: 0 },
      { l1: 0, mse: 2 },
    ]) {
      gradcheck((x, y) => reconstructionLoss(x, y, w), [f64([2, 2, 3, 3]), f64([2, 2, 3, 3])], {
        name: `reconstruction ${JSON.stringify(w)}`,
      });
    }
  });
});

void describe('klLoss', () => {
  void it('is ½ Σ (μ² + σ² − 1 − log σ²) over the latent, averaged over the batch', () => {
    const params = f64([3, 8, 2, 2]);
    const v = params.dataSync();
    // params [B, 2C, H, W]: the first C channels are μ, the last C log σ² (C·H·W = 16 each)
    let want = 0;
    for (let b = 0; b < 3; b++) {
      for (let i = 0; i < 16; i++) {
        const mu = v[b * 32 + i]!;
        const logvar = v[b * 32 + 16 + i]!;
        want += 0.5 * (mu * mu + Math.exp(logvar) - 1 - logvar);
      }
    }
    want /= 3;
    const got = klLoss(new DiagonalGaussianDistribution(params)).dataSync()[0]!;
    assertClose(got, want, { rtol: 1e-12 });
    // zero exactly at the prior
    const prior = new DiagonalGaussianDistribution(tensor(new Float64Array(8), [1, 4, 1, 2]));
    assert.equal(klLoss(prior).dataSync()[0], 0);
  });

  void it('has the gradient of its central differences in μ and log σ²', () => {
    gradcheck((params) => klLoss(new DiagonalGaussianDistribution(params)), [f64([2, 6, 2, 2])], {
      name: 'kl',
    });
  });
});

void describe('vqLoss', () => {
  void it('is mean((sg[z_e] − e)²) + β mean((z_e − sg[e])²), split between encoder and codebook', () => {
    const ze = f64([2, 3, 2, 2]).requireGrad();
    const e = f64([2, 3, 2, 2]).requireGrad();
    const zv = ze.dataSync();
    const ev = e.dataSync();
    let mse = 0;
    for (let i = 0; i < zv.length; i++) mse += (zv[i]! - ev[i]!) ** 2;
    mse /= zv.length;
    const loss = vqLoss(ze, e, 0.25);
    assertClose(loss.dataSync()[0]!, 1.25 * mse, { rtol: 1e-12 });
    loss.backward();
    // d/dz_e = 2β (z_e − e)/n; d/de = 2 (e − z_e)/n
    const n = zv.length;
    assertClose(
      ze.grad!,
      Array.from(zv, (z, i) => (0.5 * (z - ev[i]!)) / n),
      { rtol: 1e-12, atol: 1e-15 },
    );
    assertClose(
      e.grad!,
      Array.from(ev, (v, i) => (2 * (v - zv[i]!)) / n),
      { rtol: 1e-12, atol: 1e-15 },
    );
  });

  void it('without the codebook term (EMA codebook) sends no gradient to e', () => {
    const ze = f64([1, 2, 2, 2]).requireGrad();
    const e = f64([1, 2, 2, 2]).requireGrad();
    vqLoss(ze, e, 0.5, false).backward();
    assert.ok(
      e.grad === null || e.grad.dataSync().every((v) => v === 0),
      'e.grad === null || e.grad.dataSync().every((v) => v === 0)',
    );
    assert.ok(
      ze.grad!.dataSync().some((v) => v !== 0),
      'ze.grad!.dataSync().some((v) => v !== 0)',
    );
  });

  void it('has the gradient of its central differences, term by term (the stop-gradients hide the other)', () => {
    // The commitment term alone (codebook: false) in z_e, with e a constant.
    gradcheck((ze, e) => vqLoss(ze, e, 0.25, false), [f64([2, 2, 2, 2]), f64([2, 2, 2, 2])], {
      name: 'vq commitment',
      wrt: [0],
    });
    // The codebook term alone (the loss minus its commitment term) in e, with z_e a constant.
    gradcheck(
      (ze, e) => sub(vqLoss(ze, e, 0.25), vqLoss(ze, e, 0.25, false)),
      [f64([2, 2, 2, 2]), f64([2, 2, 2, 2])],
      { name: 'vq codebook', wrt: [1] },
    );
  });
});

void describe('hinge losses', () => {
  void it('discriminator: ½ (mean relu(1 − real) + mean relu(1 + fake)); generator: −mean(fake)', () => {
    const real = tensor([2, 0.5, -1, 0.9], [4], { dtype: 'float64' });
    const fake = tensor([-2, -0.5, 1, 0], [4], { dtype: 'float64' });
    // relu(1 − real) = [0, 0.5, 2, 0.1]; relu(1 + fake) = [0, 0.5, 2, 1]
    assertClose(hingeDiscriminatorLoss(real, fake).dataSync()[0]!, 0.5 * (2.6 / 4 + 3.5 / 4), {
      rtol: 1e-12,
    });
    assertClose(hingeGeneratorLoss(fake).dataSync()[0]!, 1.5 / 4, { rtol: 1e-12 });
  });

  void it('have the gradients of their central differences', () => {
    gradcheck((r, f) => hingeDiscriminatorLoss(r, f), [f64([2, 1, 3, 3]), f64([2, 1, 3, 3])], {
      name: 'hinge D',
    });
    gradcheck((f) => hingeGeneratorLoss(f), [f64([2, 1, 3, 3])], { name: 'hinge G' });
  });
});

void describe('straight-through estimator', () => {
  void it('is e in the forward pass and passes the gradient to z_e exactly, none to e', () => {
    const ze = f64([2, 3, 2, 2]).requireGrad();
    const e = f64([2, 3, 2, 2]).requireGrad();
    const st = straightThrough(ze, e);
    assertClose(st, e, { rtol: 0, atol: 1e-15 });
    const up = f64([2, 3, 2, 2]);
    sum(mul(st, up)).backward();
    assert.deepEqual(Array.from(ze.grad!.dataSync()), Array.from(up.dataSync()));
    assert.ok(
      e.grad === null || e.grad.dataSync().every((v) => v === 0),
      'e.grad === null || e.grad.dataSync().every((v) => v === 0)',
    );
  });

  void it("VectorQuantizer.forward's quantized output passes the gradient to z exactly", () => {
    const q = new VectorQuantizer(6, 3, 0.25, undefined);
    const z = randn([2, 3, 2, 2], { generator: g }).requireGrad();
    const { quantized } = q.forward(z);
    const up = randn([2, 3, 2, 2], { generator: g });
    sum(mul(quantized, up)).backward();
    assert.deepEqual(Array.from(z.grad!.dataSync()), Array.from(up.dataSync()));
  });

  void it('composes with a downstream function: the gradient of f(st) at z_e is f′(e)', () => {
    // f(s) = Σ s³: at the straight-through output the gradient is 3 e², handed to z_e as is.
    const ze = f64([1, 2, 2, 2]).requireGrad();
    const e = f64([1, 2, 2, 2]);
    const st = straightThrough(ze, e);
    sum(mul(mul(st, st), st)).backward();
    assertClose(
      ze.grad!,
      Array.from(e.dataSync(), (v) => 3 * v * v),
      { rtol: 1e-12, atol: 1e-15 },
    );
  });
});
