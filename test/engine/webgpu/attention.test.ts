/**
 * Fused attention and group norm + SiLU:
 *  - the CPU references (attentionKernel, attentionBackwardKernel in backends/cpu/fused.ts, and
 *    the op groupNormSilu) against the composite ops they replace, forward and gradients, in
 *    float64 (these run without a GPU);
 *  - the WebGPU kernels against the references on random shapes (odd and prime sizes, lq ≠ lk,
 *    d ≠ dv, lk = 1, heads wide enough to be split over several lanes), and the op on webgpu
 *    with autograd against the CPU.
 *
 * WebGPU tolerances are per-element bounds for f32 evaluation (u = 2^-24), from the f64
 * reference's magnitudes:
 *  - scores: εs_ij = (d + 2)·u·|scale|·Σ_c |q_ic k_jc| (a dot product of d terms, then the scale).
 *  - forward: every probability is off by at most its score's error plus the row's largest one,
 *    plus the online rescaling and summation (e^{m_old − m_new} once per tile, sums of lk terms):
 *    E_i = 2·max_j εs_ij + (2·lk + 16)·u, and |Δout_ic| ≤ (Σ_j P_ij |v_jc| + |out_ic|)·E_i;
 *    |Δlse_i| ≤ max_j εs_ij + (lk + 8)·u + 2u·|lse_i|.
 *  - backward (fed the GPU's out and logsumexp, so only its own error counts): P_ij within
 *    (εs_ij + 4u) relative, dP_ij within (dv + 2)·u·Σ_c |dOut_ic v_jc|, D_i within
 *    (dv + 2)·u·Σ_c |dOut_ic out_ic|, so |ΔdS_ij| ≤ P_ij·(|dP_ij − D_i|·(εs_ij + 4u) + εdP_ij
 *    + εD_i) + u·|dS_ij|; then dq = scale·Σ_j dS_ij k_j within |scale|·Σ_j (|ΔdS_ij| +
 *    (lk + 2)·u·|dS_ij|)·|k_jc|, dk likewise over i with q, and dv = Σ_i P_ij dOut_i within
 *    Σ_i P_ij·(εs_ij + (lq + 6)·u)·|dOut_ic|.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { AttentionSpec } from '../../../src/engine/backend.js';
import {
  attentionBackwardKernel,
  attentionKernel,
} from '../../../src/engine/backends/cpu/fused.js';
import {
  add,
  cpuBackend,
  exp,
  groupNorm,
  groupNormSilu,
  matmulT,
  max,
  mean,
  mul,
  noGrad,
  reshape,
  rsqrt,
  scaledDotProductAttention,
  silu,
  sub,
  sum,
  type Tensor,
  tensor,
  tidy,
  variance,
  div,
} from '../../../src/engine/index.js';
import { assertNear, randArray, setupGpu } from './setup.js';

const gpu = await setupGpu();
const skip = gpu === null;
const U = 2 ** -24;
const backend = cpuBackend();

type Case = AttentionSpec & { range?: number };

function inputs(c: Case, seed: number) {
  const r = c.range ?? 1;
  return {
    q: randArray(c.batch * c.lq * c.d, seed, -r, r),
    k: randArray(c.batch * c.lk * c.d, seed + 1, -r, r),
    v: randArray(c.batch * c.lk * c.dv, seed + 2),
    dOut: randArray(c.batch * c.lq * c.dv, seed + 3),
  };
}

/** softmax(scale·q kᵀ) v with the max shift taken without gradient: the composite path. */
function composite(q: Tensor, k: Tensor, v: Tensor, scale: number): Tensor {
  const z = mul(matmulT(q, k, false, true), scale);
  const m = noGrad(() => max(z, -1, true));
  const e = exp(sub(z, m));
  return matmulT(div(e, sum(e, -1, true)), v, false, false);
}

const REF_CASES: Case[] = [
  { batch: 1, lq: 1, lk: 1, d: 1, dv: 1, scale: 1 },
  { batch: 2, lq: 3, lk: 1, d: 4, dv: 2, scale: 0.5 },
  { batch: 3, lq: 7, lk: 11, d: 5, dv: 3, scale: 1 / Math.sqrt(5) },
  { batch: 1, lq: 70, lk: 13, d: 2, dv: 9, scale: 1.3, range: 3 },
  { batch: 2, lq: 13, lk: 67, d: 17, dv: 1, scale: 0.25 },
];

void describe('attention reference (cpu, float64) vs the composite op', () => {
  for (const c of REF_CASES) {
    void test(`forward, logsumexp and gradients ${JSON.stringify(c)}`, () => {
      const x = inputs(c, 11);
      const f = (a: Float32Array) => Float64Array.from(a);
      const out = new Float64Array(c.batch * c.lq * c.dv);
      const lse = new Float64Array(c.batch * c.lq);
      attentionKernel(f(x.q), f(x.k), f(x.v), c, out, lse);
      const [dq, dk, dv] = [x.q.length, x.k.length, x.v.length].map((n) => new Float64Array(n));
      attentionBackwardKernel(f(x.q), f(x.k), f(x.v), out, lse, f(x.dOut), c, dq!, dk!, dv!);
      tidy(() => {
        const opts = { backend, requiresGrad: true };
        const tq = tensor(f(x.q), [c.batch, c.lq, c.d], opts);
        const tk = tensor(f(x.k), [c.batch, c.lk, c.d], opts);
        const tv = tensor(f(x.v), [c.batch, c.lk, c.dv], opts);
        const o = composite(tq, tk, tv, c.scale);
        assertNear(out, o.dataSync(), { rtol: 1e-12, atol: 1e-14 }, 'out');
        const s = mul(matmulT(tq, tk, false, true), c.scale);
        const m = max(s, -1, true);
        const ref = add(m, exp(sub(s, m)).sum(-1, true).log());
        assertNear(lse, ref.dataSync(), { rtol: 1e-12, atol: 1e-14 }, 'logsumexp');
        sum(mul(o, tensor(f(x.dOut), o.shape, { backend }))).backward();
        assertNear(dq!, tq.grad!.dataSync(), { rtol: 1e-10, atol: 1e-13 }, 'dq');
        assertNear(dk!, tk.grad!.dataSync(), { rtol: 1e-10, atol: 1e-13 }, 'dk');
        assertNear(dv!, tv.grad!.dataSync(), { rtol: 1e-10, atol: 1e-13 }, 'dv');
      });
    });
  }

  void test('the op takes the fused path on the cpu backend, with heads and a rank-2 input', () => {
    tidy(() => {
      const opts = { backend, requiresGrad: true };
      const mk = (shape: number[], seed: number) =>
        tensor(
          Float64Array.from(
            randArray(
              shape.reduce((a, b) => a * b),
              seed,
            ),
          ),
          shape,
          opts,
        );
      for (const [qs, ks, vs] of [
        [
          [2, 3, 5, 4],
          [2, 3, 7, 4],
          [2, 3, 7, 6],
        ],
        [
          [5, 3],
          [2, 3],
          [2, 6],
        ],
      ]) {
        const [q, k, v] = [mk(qs!, 1), mk(ks!, 2), mk(vs!, 3)];
        const y = scaledDotProductAttention(q, k, v);
        assert.equal(y.node?.name, 'scaledDotProductAttention', 'fused node recorded');
        const scale = 1 / Math.sqrt(qs!.at(-1)!);
        assertNear(y.dataSync(), composite(q, k, v, scale).dataSync(), { rtol: 1e-12 }, 'op');
      }
      // A mask, or mismatched leading dims, take the composite path.
      const [q, k, v] = [mk([2, 3, 4], 4), mk([2, 5, 4], 5), mk([2, 5, 2], 6)];
      const masked = scaledDotProductAttention(q, k, v, { mask: mk([3, 5], 7) });
      assert.notEqual(masked.node?.name, 'scaledDotProductAttention', 'mask: composite');
      const kb = mk([1, 5, 4], 8);
      const vb = mk([1, 5, 2], 9);
      const bc = scaledDotProductAttention(q, kb, vb);
      assert.notEqual(bc.node?.name, 'scaledDotProductAttention', 'broadcast: composite');
    });
  });
});

/** groupNorm as the composite ops (reshape, mean, variance), whatever the backend fuses. */
function groupNormComposite(x: Tensor, groups: number, w: Tensor | null, b: Tensor | null) {
  const [n, c] = x.shape as [number, number];
  const g = reshape(x, [n, groups, -1]);
  const xc = sub(g, mean(g, 2, true));
  let y = reshape(mul(xc, rsqrt(add(variance(g, 2, true), 1e-5))), x.shape);
  const affine = [1, c, ...x.shape.slice(2).map(() => 1)];
  if (w) y = mul(y, reshape(w, affine));
  if (b) y = add(y, reshape(b, affine));
  return y;
}

void describe('groupNormSilu (cpu, float64) vs silu of the composite group norm', () => {
  for (const [shape, groups, affine] of [
    [[2, 6, 5], 3, true],
    [[1, 4, 3, 3], 2, false],
    [[3, 8, 7], 8, true],
  ] as const) {
    void test(`${JSON.stringify(shape)}, ${groups} groups, affine ${affine}`, () => {
      tidy(() => {
        const opts = { backend, requiresGrad: true };
        const size = shape.reduce((a: number, b: number) => a * b, 1);
        const c = shape[1];
        const x = tensor(Float64Array.from(randArray(size, 1, -3, 3)), [...shape], opts);
        const w = affine ? tensor(Float64Array.from(randArray(c, 2, 0.5, 1.5)), [c], opts) : null;
        const b = affine ? tensor(Float64Array.from(randArray(c, 3)), [c], opts) : null;
        const dy = tensor(Float64Array.from(randArray(size, 4)), [...shape], { backend });
        const fused = groupNormSilu(x, groups, w, b);
        assert.equal(fused.node?.name, 'groupNormSilu', 'fused node recorded');
        const ref = silu(groupNormComposite(x, groups, w, b));
        assertNear(fused.dataSync(), ref.dataSync(), { rtol: 1e-12, atol: 1e-14 }, 'y');
        const grads = (y: Tensor) => {
          for (const t of [x, w, b]) t?.zeroGrad();
          sum(mul(y, dy)).backward();
          return [x, w, b].flatMap((t) => (t ? [t.grad!.dataSync()] : []));
        };
        const gf = grads(fused);
        const gr = grads(ref);
        gf.forEach((g, i) => assertNear(g, gr[i]!, { rtol: 1e-10, atol: 1e-13 }, `grad ${i}`));
        // And the same as the op pair it replaces.
        const pair = silu(groupNorm(x, groups, w, b));
        assertNear(fused.dataSync(), pair.dataSync(), { rtol: 1e-12, atol: 1e-14 }, 'pair');
      });
    });
  }
});

// ---- WebGPU ---------------------------------------------------------------------------------

/** Per-element bounds of the header comment, from f64 quantities. */
function forwardBounds(c: AttentionSpec, q: Float64Array, k: Float64Array, v: Float64Array) {
  const out = new Float64Array(c.batch * c.lq * c.dv);
  const lse = new Float64Array(c.batch * c.lq);
  attentionKernel(q, k, v, c, out, lse);
  const bOut = new Float64Array(out.length);
  const bLse = new Float64Array(lse.length);
  for (let b = 0; b < c.batch; b++) {
    for (let i = 0; i < c.lq; i++) {
      const row = b * c.lq + i;
      const eps = new Float64Array(c.lk);
      const p = new Float64Array(c.lk);
      for (let j = 0; j < c.lk; j++) {
        let dot = 0;
        let abs = 0;
        for (let e = 0; e < c.d; e++) {
          const t = q[row * c.d + e]! * k[(b * c.lk + j) * c.d + e]!;
          dot += t;
          abs += Math.abs(t);
        }
        eps[j] = (c.d + 2) * U * Math.abs(c.scale) * abs;
        p[j] = Math.exp(c.scale * dot - lse[row]!);
      }
      const maxEps = Math.max(...eps);
      const e = 2 * maxEps + (2 * c.lk + 16) * U;
      for (let ch = 0; ch < c.dv; ch++) {
        let a = 0;
        for (let j = 0; j < c.lk; j++) a += p[j]! * Math.abs(v[(b * c.lk + j) * c.dv + ch]!);
        bOut[row * c.dv + ch] = (a + Math.abs(out[row * c.dv + ch]!)) * e;
      }
      bLse[row] = maxEps + (c.lk + 8) * U + 2 * U * Math.abs(lse[row]!);
    }
  }
  return { out, lse, bOut, bLse };
}

function backwardBounds(
  c: AttentionSpec,
  x: { q: Float64Array; k: Float64Array; v: Float64Array; dOut: Float64Array },
  out: Float64Array,
  lse: Float64Array,
) {
  const { batch, lq, lk, d, dv, scale } = c;
  const bq = new Float64Array(batch * lq * d);
  const bk = new Float64Array(batch * lk * d);
  const bv = new Float64Array(batch * lk * dv);
  const as = Math.abs(scale);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < lq; i++) {
      const row = b * lq + i;
      let dd = 0;
      let ddAbs = 0;
      for (let e = 0; e < dv; e++) {
        dd += x.dOut[row * dv + e]! * out[row * dv + e]!;
        ddAbs += Math.abs(x.dOut[row * dv + e]! * out[row * dv + e]!);
      }
      for (let j = 0; j < lk; j++) {
        const kr = b * lk + j;
        let s = 0;
        let sAbs = 0;
        for (let e = 0; e < d; e++) {
          s += x.q[row * d + e]! * x.k[kr * d + e]!;
          sAbs += Math.abs(x.q[row * d + e]! * x.k[kr * d + e]!);
        }
        let dp = 0;
        let dpAbs = 0;
        for (let e = 0; e < dv; e++) {
          dp += x.dOut[row * dv + e]! * x.v[kr * dv + e]!;
          dpAbs += Math.abs(x.dOut[row * dv + e]! * x.v[kr * dv + e]!);
        }
        const es = (d + 2) * U * as * sAbs;
        const p = Math.exp(scale * s - lse[row]!);
        const ds = p * (dp - dd);
        const dsErr =
          p * (Math.abs(dp - dd) * (es + 4 * U) + (dv + 2) * U * (dpAbs + ddAbs)) +
          U * Math.abs(ds);
        for (let e = 0; e < d; e++) {
          bq[row * d + e]! +=
            as * (dsErr + (lk + 2) * U * Math.abs(ds)) * Math.abs(x.k[kr * d + e]!);
          bk[kr * d + e]! +=
            as * (dsErr + (lq + 2) * U * Math.abs(ds)) * Math.abs(x.q[row * d + e]!);
        }
        for (let e = 0; e < dv; e++) {
          bv[kr * dv + e]! += p * (es + (lq + 6) * U) * Math.abs(x.dOut[row * dv + e]!);
        }
      }
    }
  }
  return { bq, bk, bv };
}

const GPU_CASES: Case[] = [
  { batch: 1, lq: 1, lk: 1, d: 1, dv: 1, scale: 1 },
  { batch: 3, lq: 7, lk: 11, d: 5, dv: 3, scale: 1 / Math.sqrt(5) },
  { batch: 2, lq: 3, lk: 1, d: 8, dv: 2, scale: 0.5 },
  { batch: 2, lq: 33, lk: 70, d: 16, dv: 24, scale: 0.25, range: 2 },
  { batch: 2, lq: 130, lk: 37, d: 64, dv: 64, scale: 0.125 },
  { batch: 2, lq: 9, lk: 5, d: 100, dv: 40, scale: 0.1, range: 2 },
  { batch: 1, lq: 19, lk: 41, d: 256, dv: 256, scale: 1 / 16 },
  { batch: 1, lq: 6, lk: 53, d: 3, dv: 7, scale: 2, range: 3 },
];

void describe('webgpu fused attention vs the cpu reference', { skip }, () => {
  for (const c of GPU_CASES) {
    void test(JSON.stringify(c), async () => {
      const x = inputs(c, c.lq + c.lk);
      const f = (a: Float32Array) => Float64Array.from(a);
      const x64 = { q: f(x.q), k: f(x.k), v: f(x.v), dOut: f(x.dOut) };
      const ref = forwardBounds(c, x64.q, x64.k, x64.v);
      const [gq, gk, gv, gd] = [x.q, x.k, x.v, x.dOut].map((a) => gpu!.fromArray(a));
      const r = gpu!.attention(gq!, gk!, gv!, c);
      const grads = gpu!.attentionBackward(gq!, gk!, gv!, r.out, r.logsumexp, gd!, c);
      const out = (await gpu!.read(r.out)) as Float32Array;
      const lse = (await gpu!.read(r.logsumexp)) as Float32Array;
      assertNear(out, Float32Array.from(ref.out), { bound: (i) => ref.bOut[i]! }, 'out');
      assertNear(lse, Float32Array.from(ref.lse), { bound: (i) => ref.bLse[i]! }, 'lse');
      // The reference backward from the GPU's out and logsumexp.
      const [dq, dk, dv] = [x.q, x.k, x.v].map((a) => new Float64Array(a.length));
      attentionBackwardKernel(x64.q, x64.k, x64.v, f(out), f(lse), x64.dOut, c, dq!, dk!, dv!);
      const bb = backwardBounds(c, x64, f(out), f(lse));
      const tiny = 1e-30;
      const [rq, rk, rv] = [grads.dq, grads.dk, grads.dv];
      assertNear(
        await gpu!.read(rq),
        Float32Array.from(dq!),
        { bound: (i) => bb.bq[i]! + tiny },
        'dq',
      );
      assertNear(
        await gpu!.read(rk),
        Float32Array.from(dk!),
        { bound: (i) => bb.bk[i]! + tiny },
        'dk',
      );
      assertNear(
        await gpu!.read(rv),
        Float32Array.from(dv!),
        { bound: (i) => bb.bv[i]! + tiny },
        'dv',
      );
      for (const s of [gq, gk, gv, gd, r.out, r.logsumexp, rq, rk, rv]) gpu!.free(s!);
    });
  }

  void test('scaledDotProductAttention and groupNormSilu with autograd match the cpu', async () => {
    const run = async (be: typeof backend) => {
      const opts = { backend: be, requiresGrad: true };
      const q = tensor(randArray(2 * 3 * 9 * 8, 1), [2, 3, 9, 8], opts);
      const k = tensor(randArray(2 * 3 * 6 * 8, 2), [2, 3, 6, 8], opts);
      const v = tensor(randArray(2 * 3 * 6 * 5, 3), [2, 3, 6, 5], opts);
      const x = tensor(randArray(2 * 8 * 25, 4, -2, 2), [2, 8, 5, 5], opts);
      const w = tensor(randArray(8, 5, 0.5, 1.5), [8], opts);
      const b = tensor(randArray(8, 6), [8], opts);
      const loss = tidy(() => {
        const a = sum(mul(scaledDotProductAttention(q, k, v), scaledDotProductAttention(q, k, v)));
        const l = add(a, sum(mul(groupNormSilu(x, 4, w, b), groupNormSilu(x, 2))));
        l.backward();
        return l;
      });
      const all = [loss, ...[q, k, v, x, w, b].map((t) => t.grad!)];
      const data = await Promise.all(all.map(async (t) => (await t.data()) as Float32Array));
      for (const t of [q, k, v, x, w, b]) {
        t.grad!.dispose();
        t.dispose();
      }
      loss.dispose();
      return data;
    };
    const g = await run(gpu!);
    const c = await run(backend);
    const names = ['loss', 'dq', 'dk', 'dv', 'dx', 'dweight', 'dbias'];
    g.forEach((a, i) => assertNear(a, c[i]!, { rtol: 1e-4, atol: 1e-5 }, names[i]!));
  });
});
