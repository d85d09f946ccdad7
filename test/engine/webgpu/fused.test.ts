/**
 * The optional fused kernels (softmax and group norm, forward and backward): the WebGPU kernels
 * against the reference definitions in backends/cpu/fused.ts, and those references against the
 * composite ops they replace (float64 on the CPU), so the op layer can switch to them safely.
 *
 * Tolerances are per-element error bounds for f32 evaluation (u = 2^-24):
 *  - softmax: z = scale·x and z − max are rounded (absolute u·|z| each), exp is within 2 ulp,
 *    the row sum within cols·u relative (recursive-summation bound), the division 2.5 ulp:
 *    |Δy| ≤ y·u·(|z| + |z − max| + cols + 8).
 *  - softmax backward: dot = Σ dy·y within cols·u·Σ|dy·y|, then scale·y·(dy − dot):
 *    |Δdx| ≤ |scale|·y·(cols·u·Σ|dy·y| + u·(|dy| + |dot|)) + 2u·|dx|.
 *  - adam: each of m, v and θ takes a handful of f32 operations: 8·u·(|θ| + |update|) for θ and
 *    4·u·(|m| + |g|), 4·u·(|v| + g²) for the moments.
 *  - group norm: mean and variance are sums of M = (C/G)·spatial terms (M·u relative), so
 *    |Δz| ≤ (M + 8)·u·|w|·rstd·(|x − μ| + mean|x − μ| + |μ|) + 2u·|z| + u·|b| for the affine
 *    output z; the backward and dweight/dbias use the same (terms + 8)·u bound on the magnitudes
 *    they sum, with dz (the gradient at z) in place of dy.
 *  - group norm + SiLU: y = z·σ(z) with |silu′| ≤ 1.1, so |Δy| ≤ 1.1·|Δz| + 4u·|y|; dz = dy·silu′(z)
 *    moves by at most |dy|·|silu″|·|Δz| ≤ 0.5·|dy|·|Δz| plus 8u·|dz| of rounding, and that error
 *    enters dx directly and through the group means (twice the group's mean of it, times 1 + |x̂|).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { GroupNormSpec, SoftmaxSpec } from '../../../src/engine/backend.js';
import {
  adamKernel,
  groupNormBackwardKernel,
  groupNormKernel,
  softmaxBackwardKernel,
  softmaxKernel,
} from '../../../src/engine/backends/cpu/fused.js';
import { Adam, AdamW } from '../../../src/nn/index.js';
import {
  cpuBackend,
  groupNorm,
  mul,
  softmax,
  sum,
  tensor,
  tidy,
} from '../../../src/engine/index.js';
import { assertNear, randArray, setupGpu } from './setup.js';

const gpu = await setupGpu();
const skip = gpu === null;
const U = 2 ** -24;

const SOFTMAX: SoftmaxSpec[] = [
  { rows: 1, cols: 1, scale: 1 },
  { rows: 7, cols: 10, scale: 1 },
  { rows: 300, cols: 3, scale: -2 },
  { rows: 5, cols: 33, scale: 0.125 },
  { rows: 3, cols: 1000, scale: 1 },
  { rows: 2, cols: 4099, scale: 0.5 },
];

void describe('webgpu fused softmax', { skip }, () => {
  for (const spec of SOFTMAX) {
    void test(`forward and backward ${JSON.stringify(spec)}`, async () => {
      const n = spec.rows * spec.cols;
      const x = randArray(n, spec.cols, -6, 6);
      if (spec.cols > 2) x[1] = -Infinity; // a masked entry
      const ref = new Float64Array(n);
      softmaxKernel(Float64Array.from(x), spec, ref);
      const gx = gpu!.fromArray(x);
      const out = gpu!.softmax(gx, spec);
      const y = await gpu!.read(out);
      const rowMax = (r: number) =>
        Math.max(
          ...Array.from(x.subarray(r * spec.cols, (r + 1) * spec.cols), (v) => spec.scale * v),
        );
      const maxes = Array.from({ length: spec.rows }, (_, r) => rowMax(r));
      assertNear(
        y,
        Float32Array.from(ref),
        {
          bound: (i) => {
            const z = spec.scale * x[i]!;
            if (!Number.isFinite(z)) return 0;
            const m = maxes[Math.floor(i / spec.cols)]!;
            return ref[i]! * U * (Math.abs(z) + Math.abs(z - m) + spec.cols + 8) + 1e-45;
          },
        },
        'softmax',
      );

      const dy = randArray(n, 77);
      // The reference backward starts from the GPU's y, so only the backward kernel's error counts.
      const y64 = Float64Array.from(y);
      const refDx = new Float64Array(n);
      softmaxBackwardKernel(y64, Float64Array.from(dy), spec, refDx);
      const g = gpu!.fromArray(dy);
      const gdx = gpu!.softmaxBackward(out, g, spec);
      const dx = await gpu!.read(gdx);
      assertNear(
        dx,
        Float32Array.from(refDx),
        {
          bound: (i) => {
            const r = Math.floor(i / spec.cols);
            let dot = 0;
            let absDot = 0;
            for (let j = r * spec.cols; j < (r + 1) * spec.cols; j++) {
              dot += dy[j]! * y64[j]!;
              absDot += Math.abs(dy[j]! * y64[j]!);
            }
            return (
              Math.abs(spec.scale) *
                y64[i]! *
                (spec.cols * U * absDot + U * (Math.abs(dy[i]!) + Math.abs(dot))) +
              2 * U * Math.abs(refDx[i]!) +
              1e-30
            );
          },
        },
        'softmax backward',
      );
      for (const s of [gx, out, g, gdx]) gpu!.free(s);
    });
  }

  void test('the reference equals the composite softmax op (float64)', () => {
    const x = randArray(6 * 17, 5, -3, 3);
    const spec = { rows: 6, cols: 17, scale: 1 };
    const ref = new Float64Array(x.length);
    softmaxKernel(Float64Array.from(x), spec, ref);
    const ops = tidy(() =>
      softmax(tensor(Float64Array.from(x), [6, 17], { backend: cpuBackend() }), -1).dataSync(),
    );
    assertNear(ops, ref, { rtol: 1e-14, atol: 1e-300 }, 'reference vs ops');
  });
});

const GROUPS: (GroupNormSpec & { affine: boolean })[] = [
  { n: 1, channels: 1, groups: 1, spatial: 1, eps: 1e-5, affine: true },
  { n: 2, channels: 6, groups: 3, spatial: 7, eps: 1e-5, affine: true },
  { n: 3, channels: 8, groups: 2, spatial: 25, eps: 1e-6, affine: false },
  { n: 2, channels: 32, groups: 8, spatial: 300, eps: 1e-5, affine: true },
  { n: 1, channels: 4, groups: 4, spatial: 1031, eps: 1e-5, affine: true },
  { n: 2, channels: 6, groups: 3, spatial: 7, eps: 1e-5, affine: true, activation: 'silu' },
  { n: 3, channels: 8, groups: 2, spatial: 25, eps: 1e-6, affine: false, activation: 'silu' },
  { n: 2, channels: 32, groups: 8, spatial: 300, eps: 1e-5, affine: true, activation: 'silu' },
];

const silu1 = (z: number) => {
  const sg = 1 / (1 + Math.exp(-z));
  return sg * (1 + z * (1 - sg));
};

void describe('webgpu fused group norm', { skip }, () => {
  for (const spec of GROUPS) {
    void test(`forward and backward ${JSON.stringify(spec)}`, async () => {
      const { n, channels, groups, spatial } = spec;
      const size = (channels / groups) * spatial;
      const total = n * channels * spatial;
      const x = randArray(total, channels + spatial, -2, 3);
      const w = spec.affine ? randArray(channels, 3, 0.5, 1.5) : null;
      const b = spec.affine ? randArray(channels, 4) : null;
      const dy = randArray(total, 5);
      // Reference (f64).
      const y64 = new Float64Array(total);
      const mean64 = new Float64Array(n * groups);
      const rstd64 = new Float64Array(n * groups);
      const f64 = (a: Float32Array | null) => (a === null ? null : Float64Array.from(a));
      groupNormKernel(Float64Array.from(x), f64(w), f64(b), spec, y64, mean64, rstd64);
      const silu = spec.activation === 'silu';
      // The affine output z and the gradient there (dz = dy without the activation).
      const z64 = new Float64Array(total);
      const dz64 = new Float64Array(total);
      groupNormKernel(
        Float64Array.from(x),
        f64(w),
        f64(b),
        { ...spec, activation: undefined },
        z64,
        new Float64Array(n * groups),
        new Float64Array(n * groups),
      );
      for (let i = 0; i < total; i++) dz64[i] = silu ? dy[i]! * silu1(z64[i]!) : dy[i]!;
      const dx64 = new Float64Array(total);
      const dw64 = w === null ? null : new Float64Array(channels);
      const db64 = w === null ? null : new Float64Array(channels);
      groupNormBackwardKernel(
        Float64Array.from(x),
        f64(w),
        f64(b),
        mean64,
        rstd64,
        Float64Array.from(dy),
        spec,
        dx64,
        dw64,
        db64,
      );
      // GPU.
      const gx = gpu!.fromArray(x);
      const gw = w === null ? null : gpu!.fromArray(w);
      const gb = b === null ? null : gpu!.fromArray(b);
      const r = gpu!.groupNorm(gx, gw, gb, spec);
      const gdy = gpu!.fromArray(dy);
      const grads = gpu!.groupNormBackward(gx, gw, gb, r.mean, r.rstd, gdy, spec);
      const y = await gpu!.read(r.y);
      const mean = await gpu!.read(r.mean);
      const rstd = await gpu!.read(r.rstd);
      const dx = await gpu!.read(grads.dx);
      // Magnitudes per group for the bounds.
      const gi = (i: number) => Math.floor(i / spatial / (channels / groups));
      const ch = (i: number) => Math.floor(i / spatial) % channels;
      const absDev = new Float64Array(n * groups);
      const absDy = new Float64Array(n * groups);
      for (let i = 0; i < total; i++) {
        absDev[gi(i)]! += Math.abs(x[i]! - mean64[gi(i)]!) / size;
        absDy[gi(i)]! +=
          (Math.abs(dz64[i]!) *
            (w?.[ch(i)] ?? 1) *
            (1 + Math.abs(x[i]! - mean64[gi(i)]!) * rstd64[gi(i)]!)) /
          size;
      }
      const k = (size + 8) * U;
      const boundZ = (i: number) => {
        const g = gi(i);
        const wc = w?.[ch(i)] ?? 1;
        return (
          k *
            Math.abs(wc) *
            rstd64[g]! *
            (Math.abs(x[i]! - mean64[g]!) + absDev[g]! + Math.abs(mean64[g]!)) +
          2 * U * Math.abs(z64[i]!) +
          U * Math.abs(b?.[ch(i)] ?? 0)
        );
      };
      // With the SiLU: the error of dz from the error of z, and its mean per group.
      const dzErr = (i: number) =>
        silu ? 0.5 * Math.abs(dy[i]!) * boundZ(i) + 8 * U * Math.abs(dz64[i]!) : 0;
      const dzErrMean = new Float64Array(n * groups);
      for (let i = 0; i < total; i++) dzErrMean[gi(i)]! += (dzErr(i) * (w?.[ch(i)] ?? 1)) / size;
      assertNear(
        mean,
        Float32Array.from(mean64),
        { bound: (i) => k * (absDev[i]! + Math.abs(mean64[i]!)) },
        'mean',
      );
      assertNear(rstd, Float32Array.from(rstd64), { bound: (i) => 2 * k * rstd64[i]! }, 'rstd');
      assertNear(
        y,
        Float32Array.from(y64),
        { bound: (i) => (silu ? 1.1 * boundZ(i) + 4 * U * Math.abs(y64[i]!) : boundZ(i)) },
        'y',
      );
      assertNear(
        dx,
        Float32Array.from(dx64),
        {
          bound: (i) => {
            const g = gi(i);
            const xh = Math.abs(x[i]! - mean64[g]!) * rstd64[g]!;
            const wc = w?.[ch(i)] ?? 1;
            return (
              2 * k * rstd64[g]! * (absDy[g]! * (1 + xh) + Math.abs(dz64[i]! * wc)) +
              rstd64[g]! * (dzErr(i) * Math.abs(wc) + 2 * dzErrMean[g]! * (1 + xh)) +
              2 * U * Math.abs(dx64[i]!)
            );
          },
        },
        'dx',
      );
      if (w === null) {
        assert.equal(grads.dweight, null);
      } else {
        const dw = await gpu!.read(grads.dweight!);
        const db = await gpu!.read(grads.dbias!);
        const terms = n * spatial + size + 8;
        const mag = new Float64Array(channels);
        for (let i = 0; i < total; i++) {
          const xh = Math.abs(x[i]! - mean64[gi(i)]!) * rstd64[gi(i)]!;
          mag[ch(i)]! += (Math.abs(dz64[i]!) + dzErr(i) / (terms * U)) * (1 + xh);
        }
        assertNear(dw, Float32Array.from(dw64!), { bound: (c) => terms * U * mag[c]! }, 'dweight');
        assertNear(db, Float32Array.from(db64!), { bound: (c) => terms * U * mag[c]! }, 'dbias');
      }
    });
  }

  void test('the references equal the composite groupNorm op and its gradients (float64)', () => {
    const spec = { n: 2, channels: 6, groups: 3, spatial: 10, eps: 1e-5 };
    const total = 2 * 6 * 10;
    const x = Float64Array.from(randArray(total, 1, -2, 2));
    const w = Float64Array.from(randArray(6, 2, 0.5, 1.5));
    const b = Float64Array.from(randArray(6, 3));
    const dy = Float64Array.from(randArray(total, 4));
    const y = new Float64Array(total);
    const mean = new Float64Array(6);
    const rstd = new Float64Array(6);
    groupNormKernel(x, w, b, spec, y, mean, rstd);
    const dx = new Float64Array(total);
    const dw = new Float64Array(6);
    const db = new Float64Array(6);
    groupNormBackwardKernel(x, w, b, mean, rstd, dy, spec, dx, dw, db);
    const backend = cpuBackend();
    tidy(() => {
      const tx = tensor(x, [2, 6, 10], { backend, requiresGrad: true });
      const tw = tensor(w, [6], { backend, requiresGrad: true });
      const tb = tensor(b, [6], { backend, requiresGrad: true });
      const out = groupNorm(tx, 3, tw, tb, 1e-5);
      assertNear(out.dataSync(), y, { rtol: 1e-12, atol: 1e-12 }, 'y');
      sum(mul(out, tensor(dy, [2, 6, 10], { backend }))).backward();
      assertNear(tx.grad!.dataSync(), dx, { rtol: 1e-9, atol: 1e-12 }, 'dx');
      assertNear(tw.grad!.dataSync(), dw, { rtol: 1e-9, atol: 1e-12 }, 'dweight');
      assertNear(tb.grad!.dataSync(), db, { rtol: 1e-9, atol: 1e-12 }, 'dbias');
    });
  });
});

void describe('webgpu fused adam', { skip }, () => {
  for (const [decoupled, wd] of [
    [true, 0.01],
    [false, 0.1],
    [true, 0],
  ] as const) {
    void test(`adam step (decoupled ${decoupled}, weight decay ${wd})`, async () => {
      const n = 1031;
      const p = randArray(n, 1);
      const g = randArray(n, 2, -3, 3);
      const m = randArray(n, 3, -0.1, 0.1);
      const v = randArray(n, 4, 0, 0.01);
      const t = 7;
      const spec = {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weightDecay: wd,
        decoupled,
        biasCorrection1: 1 - 0.9 ** t,
        biasCorrection2Sqrt: Math.sqrt(1 - 0.999 ** t),
      };
      const [rp, rm, rv] = [0, 1, 2].map(() => new Float64Array(n));
      const f = (a: Float32Array) => Float64Array.from(a);
      adamKernel(f(p), f(g), f(m), f(v), spec, rp!, rm!, rv!);
      const ins = [p, g, m, v].map((a) => gpu!.fromArray(a));
      const r = gpu!.adamUpdate(ins[0]!, ins[1]!, ins[2]!, ins[3]!, spec);
      const gp = await gpu!.read(r.param);
      const gm = await gpu!.read(r.m);
      const gv = await gpu!.read(r.v);
      assertNear(
        gm,
        Float32Array.from(rm!),
        { bound: (i) => 4 * U * (Math.abs(m[i]!) + Math.abs(g[i]!) + 1e-30) },
        'm',
      );
      assertNear(
        gv,
        Float32Array.from(rv!),
        { bound: (i) => 4 * U * (v[i]! + g[i]! ** 2) + 1e-38 },
        'v',
      );
      assertNear(
        gp,
        Float32Array.from(rp!),
        { bound: (i) => 8 * U * (Math.abs(p[i]!) + Math.abs(rp![i]! - p[i]!)) },
        'param',
      );
      for (const s of [...ins, r.param, r.m, r.v]) gpu!.free(s);
    });
  }

  void test('the reference equals nn AdamW / Adam over several steps (float64)', () => {
    const n = 50;
    const p0 = Float64Array.from(randArray(n, 11));
    const grads = [0, 1, 2].map((k) => Float64Array.from(randArray(n, 20 + k)));
    for (const [Opt, decoupled, wd] of [
      [AdamW, true, 0.01],
      [Adam, false, 0.1],
    ] as const) {
      const backend = cpuBackend();
      const w = tensor(p0, [n], { backend, requiresGrad: true });
      const opt = new Opt([w], { lr: 0.01, weightDecay: wd });
      let [rp, rm, rv] = [p0.slice(), new Float64Array(n), new Float64Array(n)];
      grads.forEach((g, k) => {
        w.grad = tensor(g, [n], { backend });
        opt.step();
        const t = k + 1;
        const spec = {
          lr: 0.01,
          beta1: 0.9,
          beta2: 0.999,
          eps: 1e-8,
          weightDecay: wd,
          decoupled,
          biasCorrection1: 1 - 0.9 ** t,
          biasCorrection2Sqrt: Math.sqrt(1 - 0.999 ** t),
        };
        const [np, nm, nv] = [0, 1, 2].map(() => new Float64Array(n));
        adamKernel(rp, g, rm, rv, spec, np!, nm!, nv!);
        [rp, rm, rv] = [np!, nm!, nv!];
      });
      assertNear(w.dataSync(), rp, { rtol: 1e-12, atol: 1e-15 }, `${Opt.name} θ`);
      opt.dispose();
      w.zeroGrad();
      w.dispose();
    }
  });
});
