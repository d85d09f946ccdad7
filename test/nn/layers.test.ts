import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  conv2d,
  Generator,
  mul,
  randn,
  sum,
  type Tensor,
  tensor,
  tidy,
} from '../../src/engine/index.js';
import { assertClose, gradcheck } from '../engine/testing.js';
import { Attention } from '../../src/nn/attention.js';
import {
  Conv2d,
  Dropout,
  Embedding,
  GELU,
  GroupNorm,
  LayerNorm,
  Linear,
  SiLU,
} from '../../src/nn/layers.js';
import type { Module } from '../../src/nn/module.js';

const f64 = { dtype: 'float64' as const };
let seed = 100;
const rnd = (shape: readonly number[], dtype: 'float32' | 'float64' = 'float64'): Tensor =>
  randn(shape, { seed: seed++, dtype });
const vals = (t: Tensor): number[] => [...t.dataSync()];
const names = (m: Module): string[] => m.namedParameters().map(([n]) => n);

/** x W^T + b over rows, in plain numbers. */
function linearRef(x: number[], rows: number, w: number[], out: number, b?: number[]): number[] {
  const inF = w.length / out;
  const y: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i]! * w[o * inF + i]!;
      y.push(s);
    }
  }
  return y;
}

/** erf by its Maclaurin series (|x| ≤ 3 here), accurate to ~1e-12. */
function erf(x: number): number {
  let term = x;
  let s = x;
  for (let n = 1; n < 80; n++) {
    term *= (-x * x) / n;
    s += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * s;
}

function checkBounds(t: Tensor, bound: number): void {
  const v = vals(t);
  assert.ok(
    v.every((x) => Math.abs(x) <= bound),
    `values within ±${bound}`,
  );
  assert.ok(Math.max(...v.map(Math.abs)) > 0.8 * bound, 'and spread over the range');
}

void describe('Linear', () => {
  void it('has PyTorch names and shapes: weight [out, in], bias [out]', () => {
    const l = new Linear(5, 3);
    assert.deepEqual(names(l), ['weight', 'bias']);
    assert.deepEqual(l.weight.shape, [3, 5]);
    assert.deepEqual(l.bias!.shape, [3]);
    assert.deepEqual(names(new Linear(5, 3, { bias: false })), ['weight']);
  });

  void it('initializes weight and bias from U(±1/√in)', () => {
    const l = new Linear(50, 40, { generator: new Generator(1) });
    checkBounds(l.weight, 1 / Math.sqrt(50));
    checkBounds(l.bias!, 1 / Math.sqrt(50));
    const mean = vals(l.weight).reduce((a, b) => a + b, 0) / l.weight.size;
    assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
  });

  void it('same generator seed, same weights; the shared stream advances', () => {
    const a = new Linear(4, 4, { generator: new Generator(9) });
    const b = new Linear(4, 4, { generator: new Generator(9) });
    assert.deepEqual(a.weight.dataSync(), b.weight.dataSync());
    assert.notDeepEqual(new Linear(4, 4).weight.dataSync(), new Linear(4, 4).weight.dataSync());
  });

  void it('forward is x Wᵀ + b, on 2-D and 3-D inputs', async () => {
    const l = await new Linear(4, 3).to(f64);
    const x = rnd([2, 5, 4]);
    const y = l.forward(x);
    assert.deepEqual(y.shape, [2, 5, 3]);
    assertClose(y, linearRef(vals(x), 10, vals(l.weight), 3, vals(l.bias!)), { rtol: 1e-12 });
    const x2 = rnd([3, 4]);
    assertClose(l.forward(x2), linearRef(vals(x2), 3, vals(l.weight), 3, vals(l.bias!)), {
      rtol: 1e-12,
    });
  });
});

void describe('Conv2d', () => {
  void it('has PyTorch names and shapes, fan-in bound over in/groups · k²', () => {
    const c = new Conv2d(3, 8, 3);
    assert.deepEqual(names(c), ['weight', 'bias']);
    assert.deepEqual(c.weight.shape, [8, 3, 3, 3]);
    checkBounds(c.weight, 1 / Math.sqrt(27));
    checkBounds(c.bias!, 1 / Math.sqrt(27));
    const g = new Conv2d(4, 6, 3, { groups: 2 });
    assert.deepEqual(g.weight.shape, [6, 2, 3, 3]);
    checkBounds(g.weight, 1 / Math.sqrt(18));
    assert.throws(() => new Conv2d(3, 4, 3, { groups: 2 }), /divisible/);
  });

  void it('forward matches the functional op and a direct sum (stride 2, padding 1)', async () => {
    const c = await new Conv2d(2, 3, 3, { stride: 2, padding: 1 }).to(f64);
    const x = rnd([1, 2, 5, 5]);
    const y = c.forward(x);
    assert.deepEqual(y.shape, [1, 3, 3, 3]);
    assert.deepEqual(
      y.dataSync(),
      conv2d(x, c.weight, c.bias, { stride: 2, padding: 1 }).dataSync(),
    );
    const xv = vals(x);
    const w = vals(c.weight);
    const b = vals(c.bias!);
    const ref: number[] = [];
    for (let o = 0; o < 3; o++) {
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) {
          let s = b[o]!;
          for (let ci = 0; ci < 2; ci++) {
            for (let ki = 0; ki < 3; ki++) {
              for (let kj = 0; kj < 3; kj++) {
                const r = 2 * i - 1 + ki;
                const q = 2 * j - 1 + kj;
                if (r < 0 || r >= 5 || q < 0 || q >= 5) continue;
                s += xv[ci * 25 + r * 5 + q]! * w[((o * 2 + ci) * 3 + ki) * 3 + kj]!;
              }
            }
          }
          ref.push(s);
        }
      }
    }
    assertClose(y, ref, { rtol: 1e-12 });
  });
});

void describe('GroupNorm and LayerNorm', () => {
  void it('GroupNorm: weight 1, bias 0 at init; normalizes each group over channels and space', async () => {
    const gn = await new GroupNorm(2, 4, 1e-5).to(f64);
    assert.deepEqual(names(gn), ['weight', 'bias']);
    assert.deepEqual(vals(gn.weight!), [1, 1, 1, 1]);
    assert.deepEqual(vals(gn.bias!), [0, 0, 0, 0]);
    gn.weight!.assign(tensor([1, 2, -1, 0.5], [4], f64));
    gn.bias!.assign(tensor([0, 0.1, 0.2, 0.3], [4], f64));
    const x = rnd([2, 4, 3, 2]);
    const xv = vals(x);
    const gamma = vals(gn.weight!);
    const beta = vals(gn.bias!);
    const ref = new Array<number>(xv.length);
    for (let n = 0; n < 2; n++) {
      for (let g = 0; g < 2; g++) {
        const start = n * 24 + g * 12; // a group is 2 channels × 6 positions, contiguous
        const part = xv.slice(start, start + 12);
        const mu = part.reduce((a, b) => a + b, 0) / 12;
        const v = part.reduce((a, b) => a + (b - mu) ** 2, 0) / 12;
        part.forEach((val, k) => {
          const c = 2 * g + Math.floor(k / 6);
          ref[start + k] = ((val - mu) / Math.sqrt(v + 1e-5)) * gamma[c]! + beta[c]!;
        });
      }
    }
    assertClose(gn.forward(x), ref, { rtol: 1e-10, atol: 1e-12 });
    assert.deepEqual(names(new GroupNorm(2, 4, 1e-5, false)), []);
    assert.throws(() => new GroupNorm(3, 4), /not divisible/);
  });

  void it('LayerNorm normalizes the last axis', async () => {
    const ln = await new LayerNorm(5, 1e-6).to(f64);
    assert.deepEqual(names(ln), ['weight', 'bias']);
    ln.bias!.assign(tensor([1, 2, 3, 4, 5], [5], f64));
    const x = rnd([3, 5]);
    const xv = vals(x);
    const ref: number[] = [];
    for (let r = 0; r < 3; r++) {
      const row = xv.slice(5 * r, 5 * r + 5);
      const mu = row.reduce((a, b) => a + b, 0) / 5;
      const v = row.reduce((a, b) => a + (b - mu) ** 2, 0) / 5;
      row.forEach((val, k) => ref.push((val - mu) / Math.sqrt(v + 1e-6) + k + 1));
    }
    assertClose(ln.forward(x), ref, { rtol: 1e-10, atol: 1e-12 });
    assert.deepEqual(names(new LayerNorm(5, 1e-5, { elementwiseAffine: false })), []);
    assert.deepEqual(names(new LayerNorm(5, 1e-5, { bias: false })), ['weight']);
  });
});

void describe('activations and Embedding', () => {
  void it('SiLU is x·σ(x), GELU is x·Φ(x) (erf form)', () => {
    const x = tensor(
      Array.from({ length: 25 }, (_, i) => -3 + i / 4),
      [25],
      f64,
    );
    const xs = vals(x);
    assertClose(
      new SiLU().forward(x),
      xs.map((v) => v / (1 + Math.exp(-v))),
      { rtol: 1e-12, atol: 1e-15 },
    );
    assertClose(
      new GELU().forward(x),
      xs.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2))),
      { rtol: 1e-6, atol: 1e-7 },
    );
  });

  void it('Embedding looks up rows of weight [num, dim], N(0, 1) at init', () => {
    const e = new Embedding(1000, 4, { generator: new Generator(3) });
    assert.deepEqual(names(e), ['weight']);
    assert.deepEqual(e.weight.shape, [1000, 4]);
    const w = vals(e.weight);
    const mean = w.reduce((a, b) => a + b, 0) / w.length;
    const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
    assert.ok(Math.abs(mean) < 0.05 && Math.abs(std - 1) < 0.05, `mean ${mean} std ${std}`);
    const ids = tensor(new Int32Array([5, 0, 999, 5, 7, 1]), [2, 3]);
    const y = e.forward(ids);
    assert.deepEqual(y.shape, [2, 3, 4]);
    const got = vals(y);
    [5, 0, 999, 5, 7, 1].forEach((id, k) => {
      assert.deepEqual(got.slice(4 * k, 4 * k + 4), w.slice(4 * id, 4 * id + 4));
    });
  });
});

void describe('Dropout', () => {
  void it('is the identity in eval mode and for p = 0', () => {
    const d = new Dropout(0.5);
    const x = rnd([100], 'float32');
    d.eval();
    assert.deepEqual(d.forward(x).dataSync(), x.dataSync());
    assert.deepEqual(new Dropout(0).forward(x).dataSync(), x.dataSync());
  });

  void it('in training keeps 1 − p of the elements, scaled by 1/(1 − p)', () => {
    const p = 0.3;
    const n = 20000;
    const d = new Dropout(p, new Generator(11));
    const x = tensor(new Float32Array(n).fill(1), [n]);
    const y = vals(d.forward(x));
    const kept = y.filter((v) => v !== 0);
    // Binomial(n, 0.7): σ ≈ 65 elements; allow 5σ.
    assert.ok(Math.abs(kept.length - 0.7 * n) < 5 * Math.sqrt(n * p * (1 - p)), `${kept.length}`);
    assert.ok(
      kept.every((v) => v === Math.fround(1 / (1 - p))),
      'every kept value scaled by 1/(1 − p)',
    );
    const again = vals(d.forward(x));
    assert.notDeepEqual(again, y, 'a new mask each call');
    const mean = y.reduce((a, b) => a + b, 0) / n;
    assert.ok(Math.abs(mean - 1) < 0.03, `mean ${mean}`);
  });
});

/** Diffusers' attention on a feature map, computed directly in plain numbers. */
function attentionRef(
  a: Attention,
  x: Tensor,
  ctx: Tensor | null,
  opts: { eps: number; groups: number | null },
): number[] {
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const L = H * W;
  const xv = vals(x);
  const heads = a.heads;
  const D = a.dimHead;
  const inner = heads * D;
  const out = new Array<number>(xv.length);
  for (let b = 0; b < B; b++) {
    // tokens [L][C]
    let t: number[] = [];
    for (let l = 0; l < L; l++) for (let c = 0; c < C; c++) t.push(xv[b * C * L + c * L + l]!);
    if (opts.groups !== null) {
      const G = opts.groups;
      const per = C / G;
      const gamma = vals(a.groupNorm!.weight!);
      const beta = vals(a.groupNorm!.bias!);
      const tn = [...t];
      for (let g = 0; g < G; g++) {
        const idx: number[] = [];
        for (let l = 0; l < L; l++)
          for (let c = g * per; c < (g + 1) * per; c++) idx.push(l * C + c);
        const mu = idx.reduce((s, i) => s + t[i]!, 0) / idx.length;
        const v = idx.reduce((s, i) => s + (t[i]! - mu) ** 2, 0) / idx.length;
        for (const i of idx) {
          const c = i % C;
          tn[i] = ((t[i]! - mu) / Math.sqrt(v + opts.eps)) * gamma[c]! + beta[c]!;
        }
      }
      t = tn;
    }
    let cv = t;
    let M = L;
    if (ctx !== null) {
      const [, m, cd] = ctx.shape as [number, number, number];
      M = m;
      cv = vals(ctx).slice(b * m * cd, (b + 1) * m * cd);
    }
    const bias = (lin: Linear): number[] | undefined => (lin.bias ? vals(lin.bias) : undefined);
    const q = linearRef(t, L, vals(a.toQ.weight), inner, bias(a.toQ));
    const k = linearRef(cv, M, vals(a.toK.weight), inner, bias(a.toK));
    const v = linearRef(cv, M, vals(a.toV.weight), inner, bias(a.toV));
    const o = new Array<number>(L * inner).fill(0);
    for (let h = 0; h < heads; h++) {
      for (let l = 0; l < L; l++) {
        const scores: number[] = [];
        for (let m = 0; m < M; m++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += q[l * inner + h * D + d]! * k[m * inner + h * D + d]!;
          scores.push(s / Math.sqrt(D));
        }
        const mx = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - mx));
        const z = e.reduce((s1, s2) => s1 + s2, 0);
        for (let d = 0; d < D; d++) {
          let s = 0;
          for (let m = 0; m < M; m++) s += (e[m]! / z) * v[m * inner + h * D + d]!;
          o[l * inner + h * D + d] = s;
        }
      }
    }
    const outLin = a.toOut.at(0) as Linear;
    const y = linearRef(o, L, vals(outLin.weight), C, bias(outLin));
    for (let l = 0; l < L; l++) {
      for (let c = 0; c < C; c++) {
        const at = b * C * L + c * L + l;
        let r = y[l * C + c]!;
        if (a.residualConnection) r += xv[at]!;
        out[at] = r / a.rescaleOutputFactor;
      }
    }
  }
  return out;
}

/** Central differences of Σ w ⊙ f() for every element of a (float64) parameter. */
function checkParamGrad(p: Tensor, f: () => Tensor, what: string): void {
  const wts = tidy(() => rnd(f().shape));
  const loss = (): number => tidy(() => sum(mul(f(), wts)).itemSync());
  p.zeroGrad();
  tidy(() => sum(mul(f(), wts)).backward());
  const analytic = vals(p.grad!);
  const base = vals(p);
  const numeric = base.map((v0, i) => {
    const at = (v: number): number => {
      const data = Float64Array.from(base);
      data[i] = v;
      const t = tensor(data, p.shape, f64);
      p.assign(t);
      t.dispose();
      return loss();
    };
    const h = 1e-6;
    const d = (at(v0 + h) - at(v0 - h)) / (2 * h);
    return d;
  });
  const restore = tensor(Float64Array.from(base), p.shape, f64);
  p.assign(restore);
  restore.dispose();
  assertClose(analytic, numeric, { rtol: 1e-5, atol: 1e-7 }, what);
  p.zeroGrad();
}

void describe('Attention', () => {
  void it('uses diffusers names', () => {
    const a = new Attention(8, { heads: 2, dimHead: 4, bias: true, normNumGroups: 4 });
    assert.deepEqual(names(a), [
      'group_norm.weight',
      'group_norm.bias',
      'to_q.weight',
      'to_q.bias',
      'to_k.weight',
      'to_k.bias',
      'to_v.weight',
      'to_v.bias',
      'to_out.0.weight',
      'to_out.0.bias',
    ]);
    assert.deepEqual(names(new Attention(8, { heads: 2, dimHead: 4 })), [
      'to_q.weight',
      'to_k.weight',
      'to_v.weight',
      'to_out.0.weight',
      'to_out.0.bias',
    ]);
  });

  void it('self-attention keeps [B, L, C]; cross-attention projects the context', () => {
    const self = new Attention(6, { heads: 2, dimHead: 3 });
    assert.deepEqual(self.forward(rnd([2, 5, 6], 'float32')).shape, [2, 5, 6]);
    const cross = new Attention(6, { heads: 2, dimHead: 4, crossAttentionDim: 10 });
    assert.deepEqual(cross.toK.weight.shape, [8, 10]);
    assert.deepEqual(cross.toQ.weight.shape, [8, 6]);
    assert.deepEqual(cross.toOut.at(0).namedParameters()[0]![1].shape, [6, 8]);
    const y = cross.forward(rnd([2, 5, 6], 'float32'), rnd([2, 7, 10], 'float32'));
    assert.deepEqual(y.shape, [2, 5, 6]);
  });

  void it('[B, C, H, W] with group_norm, residual and rescale matches a direct computation', async () => {
    const a = await new Attention(4, {
      heads: 2,
      dimHead: 3,
      bias: true,
      normNumGroups: 2,
      eps: 1e-6,
      residualConnection: true,
      rescaleOutputFactor: 2,
    }).to(f64);
    a.groupNorm!.weight!.assign(tensor([1, 0.5, 2, -1], [4], f64));
    a.groupNorm!.bias!.assign(tensor([0.1, 0, -0.2, 0.3], [4], f64));
    const x = rnd([2, 4, 3, 2]);
    const y = a.forward(x);
    assert.deepEqual(y.shape, [2, 4, 3, 2]);
    assertClose(y, attentionRef(a, x, null, { eps: 1e-6, groups: 2 }), {
      rtol: 1e-10,
      atol: 1e-12,
    });
  });

  void it('cross-attention on a feature map matches a direct computation', async () => {
    const a = await new Attention(4, { heads: 2, dimHead: 2, crossAttentionDim: 3 }).to(f64);
    const x = rnd([2, 4, 2, 2]);
    const ctx = rnd([2, 5, 3]);
    assertClose(a.forward(x, ctx), attentionRef(a, x, ctx, { eps: 1e-5, groups: null }), {
      rtol: 1e-10,
      atol: 1e-12,
    });
  });

  void it('gradients check against finite differences in float64 (inputs and parameters)', async () => {
    const a = await new Attention(4, {
      heads: 2,
      dimHead: 2,
      bias: true,
      normNumGroups: 2,
      crossAttentionDim: 3,
      residualConnection: true,
    }).to(f64);
    const x = rnd([2, 4, 2, 2]);
    const ctx = rnd([2, 3, 3]);
    gradcheck((xi, ci) => a.forward(xi, ci), [x, ctx], { name: 'attention wrt inputs' });
    const xs = rnd([1, 3, 4]);
    const self = await new Attention(4, { heads: 2, dimHead: 3, bias: true }).to(f64);
    gradcheck((xi) => self.forward(xi), [xs], { name: 'self-attention wrt tokens' });
    for (const [n, p] of a.namedParameters()) {
      checkParamGrad(p, () => a.forward(x, ctx), `d/d ${n}`);
    }
  });
});
