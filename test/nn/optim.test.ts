import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  cpuBackend,
  mean,
  mul,
  randn,
  square,
  sub,
  sum,
  type Tensor,
  tensor,
  tidy,
  add,
} from '../../src/engine/index.js';
import { assertClose } from '../engine/testing.js';
import { Linear, SiLU } from '../../src/nn/layers.js';
import { Module } from '../../src/nn/module.js';
import { Adam, AdamW, clipGradNorm, type Optimizer, SGD } from '../../src/nn/optim.js';
import { Generator } from '../../src/engine/index.js';

const f64 = { dtype: 'float64' as const };

/**
 * A separable test objective: L = Σ ½ a θ² + b θ, so ∇L = a θ + b changes every step and the
 * reference can be computed element by element in plain numbers.
 */
const A = [1, 0.5, 2, 0];
const B = [0.3, -1, 0.25, 0.7];
const grad = (theta: number[]): number[] => theta.map((t, i) => A[i]! * t + B[i]!);

function lossOf(p: Tensor): Tensor {
  const a = tensor(A, [4], f64);
  const b = tensor(B, [4], f64);
  return sum(add(mul(mul(square(p), a), 0.5), mul(p, b)));
}

/** Runs n steps of opt on p with the test objective; returns p's values. */
function run(opt: Optimizer, p: Tensor, n: number): number[] {
  for (let i = 0; i < n; i++) {
    tidy(() => lossOf(p).backward());
    opt.step();
    opt.zeroGrad();
  }
  return [...p.dataSync()];
}

const THETA0 = [1, -2, 0.5, 3];

interface SgdRef {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/** torch.optim.SGD's equations, in plain numbers. */
function sgdRef(o: SgdRef, n: number): number[] {
  const theta = [...THETA0];
  const buf: number[] = [];
  const mu = o.momentum ?? 0;
  for (let t = 1; t <= n; t++) {
    const g = grad(theta);
    theta.forEach((th, i) => {
      let d = g[i]! + (o.weightDecay ?? 0) * th;
      if (mu !== 0) {
        buf[i] = t === 1 ? d : mu * buf[i]! + (1 - (o.dampening ?? 0)) * d;
        d = o.nesterov ? d + mu * buf[i] : buf[i];
      }
      theta[i] = th - o.lr * d;
    });
  }
  return theta;
}

interface AdamRef {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  decoupled?: boolean;
  amsgrad?: boolean;
}

/** torch.optim.Adam / AdamW's documented algorithm, in plain numbers. */
function adamRef(o: AdamRef, n: number): number[] {
  const [b1, b2] = o.betas ?? [0.9, 0.999];
  const eps = o.eps ?? 1e-8;
  const wd = o.weightDecay ?? 0;
  const theta = [...THETA0];
  const m = theta.map(() => 0);
  const v = theta.map(() => 0);
  const vMax = theta.map(() => 0);
  for (let t = 1; t <= n; t++) {
    const g0 = grad(theta);
    theta.forEach((th0, i) => {
      let th = th0;
      let g = g0[i]!;
      if (o.decoupled) th = th - o.lr * wd * th;
      else g = g + wd * th;
      m[i] = b1 * m[i]! + (1 - b1) * g;
      v[i] = b2 * v[i]! + (1 - b2) * g * g;
      vMax[i] = Math.max(vMax[i]!, v[i]);
      const mHat = m[i] / (1 - b1 ** t);
      const vHat = (o.amsgrad ? vMax[i] : v[i]) / (1 - b2 ** t);
      theta[i] = th - (o.lr * mHat) / (Math.sqrt(vHat) + eps);
    });
  }
  return theta;
}

const param = (): Tensor => tensor(THETA0, [4], f64).requireGrad();
const TOL = { rtol: 1e-12, atol: 1e-14 };

void describe('SGD', () => {
  void it('plain steps follow θ ← θ − γ∇', () => {
    const p = param();
    assertClose(run(new SGD([p], { lr: 0.1 }), p, 3), sgdRef({ lr: 0.1 }, 3), TOL);
  });

  void it('one step by hand', () => {
    const p = param();
    // ∇ = [1·1 + 0.3, 0.5·(−2) − 1, 2·0.5 + 0.25, 0.7] = [1.3, −2, 1.25, 0.7]
    assertClose(run(new SGD([p], { lr: 0.1 }), p, 1), [0.87, -1.8, 0.375, 2.93], TOL);
  });

  void it('momentum, dampening and weight decay (L2 into the gradient)', () => {
    const o = { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 };
    const p = param();
    assertClose(run(new SGD([p], o), p, 3), sgdRef(o, 3), TOL);
  });

  void it('nesterov', () => {
    const o = { lr: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0.02 };
    const p = param();
    assertClose(run(new SGD([p], o), p, 3), sgdRef(o, 3), TOL);
  });

  void it('momentum buffer by hand: b₁ = g₁, b₂ = μb₁ + g₂', () => {
    const p = tensor([1], [1], f64).requireGrad();
    const opt = new SGD([p], { lr: 1, momentum: 0.5 });
    for (const g of [2, 4]) {
      p.grad = tensor([g], [1], f64);
      opt.step();
    }
    // θ = 1 − 2 − (0.5·2 + 4) = −6
    assert.deepEqual([...p.dataSync()], [-6]);
    opt.dispose();
  });

  void it('rejects nesterov without momentum', () => {
    assert.throws(() => new SGD([param()], { lr: 0.1, nesterov: true }), /nesterov/);
  });

  void it('honours a changed lr and skips parameters without gradients', () => {
    const p = param();
    const q = tensor([5], [1], f64).requireGrad();
    const opt = new SGD([p, q], { lr: 0.1 });
    run(opt, p, 1);
    opt.lr = 0.2;
    const got = run(opt, p, 1);
    const th1 = sgdRef({ lr: 0.1 }, 1);
    const g1 = grad(th1);
    assertClose(
      got,
      th1.map((t, i) => t - 0.2 * g1[i]!),
      TOL,
    );
    assert.deepEqual([...q.dataSync()], [5]);
  });
});

void describe('Adam and AdamW', () => {
  void it('first step by hand: m̂ = g and v̂ = g², so θ moves by γ·g/(|g| + ε)', () => {
    const p = param();
    const got = run(new Adam([p], { lr: 0.01 }), p, 1);
    const g = grad(THETA0);
    assertClose(
      got,
      THETA0.map((t, i) => t - (0.01 * g[i]!) / (Math.abs(g[i]!) + 1e-8)),
      TOL,
    );
  });

  void it('bias correction: a constant gradient moves θ by γ on every step', () => {
    const p = tensor([0], [1], f64).requireGrad();
    const opt = new Adam([p], { lr: 0.01 });
    const seen: number[] = [];
    for (let t = 0; t < 3; t++) {
      p.grad = tensor([2], [1], f64);
      opt.step();
      seen.push(p.dataSync()[0]!);
    }
    // Without correction step 1 would move by 0.1·2/√(0.001·4) ≈ 3.16 γ.
    assertClose(seen, [-0.01, -0.02, -0.03], { rtol: 1e-8 });
    opt.dispose();
  });

  void it('Adam matches the equations over 3 steps', () => {
    const o = { lr: 0.05, betas: [0.8, 0.95] as [number, number], eps: 1e-6 };
    const p = param();
    assertClose(run(new Adam([p], o), p, 3), adamRef(o, 3), TOL);
  });

  void it('Adam weight decay is L2 (added to the gradient)', () => {
    const o = { lr: 0.05, weightDecay: 0.1 };
    const p = param();
    assertClose(run(new Adam([p], o), p, 3), adamRef(o, 3), TOL);
  });

  void it('AdamW weight decay is decoupled, default 1e-2', () => {
    const p = param();
    const opt = new AdamW([p], { lr: 0.05 });
    assert.equal(opt.weightDecay, 0.01);
    assertClose(run(opt, p, 3), adamRef({ lr: 0.05, weightDecay: 0.01, decoupled: true }, 3), TOL);
  });

  void it('decoupled vs L2 on a zero gradient: AdamW only shrinks θ, Adam takes a full step', () => {
    const zeroGrad = (opt: Optimizer, p: Tensor): number => {
      p.grad = tensor([0], [1], f64);
      opt.step();
      return p.dataSync()[0]!;
    };
    const pw = tensor([2], [1], f64).requireGrad();
    assert.equal(zeroGrad(new AdamW([pw], { lr: 0.1, weightDecay: 0.5 }), pw), 2 * (1 - 0.1 * 0.5));
    const pa = tensor([2], [1], f64).requireGrad();
    // g = λθ = 1: the first Adam step moves by γ·g/(|g| + ε).
    assertClose(zeroGrad(new Adam([pa], { lr: 0.1, weightDecay: 0.5 }), pa), 2 - 0.1 / (1 + 1e-8));
  });

  void it('amsgrad keeps the running maximum of v', () => {
    const o = { lr: 0.05, amsgrad: true, betas: [0.5, 0.6] as [number, number] };
    const p = param();
    assertClose(run(new Adam([p], o), p, 4), adamRef(o, 4), TOL);
  });

  void it('float32 parameters stay float32 and close to the float64 result', () => {
    const p = tensor(THETA0, [4]).requireGrad();
    const opt = new AdamW([p], { lr: 0.05 });
    for (let i = 0; i < 3; i++) {
      tidy(() => {
        const a = tensor(A, [4]);
        const b = tensor(B, [4]);
        sum(add(mul(mul(square(p), a), 0.5), mul(p, b))).backward();
      });
      opt.step();
      opt.zeroGrad();
    }
    assert.equal(p.dtype, 'float32');
    assertClose(p, adamRef({ lr: 0.05, weightDecay: 0.01, decoupled: true }, 3), { rtol: 1e-6 });
    opt.dispose();
  });
});

void describe('clipGradNorm', () => {
  const withGrads = (): Tensor[] => {
    const a = tensor([0, 0], [2], f64).requireGrad();
    const b = tensor([0], [1], f64).requireGrad();
    const c = tensor([0], [1], f64).requireGrad(); // no gradient: ignored
    a.grad = tensor([3, 4], [2], f64);
    b.grad = tensor([12], [1], f64);
    return [a, b, c];
  };

  void it('returns the global L2 norm and scales by maxNorm/(total + 1e-6)', () => {
    const ps = withGrads();
    const total = clipGradNorm(ps, 6.5);
    assert.equal(total.itemSync(), 13);
    const coef = 6.5 / (13 + 1e-6);
    assertClose(ps[0]!.grad!, [3 * coef, 4 * coef], TOL);
    assertClose(ps[1]!.grad!, [12 * coef], TOL);
    assert.equal(ps[2]!.grad, null);
  });

  void it('leaves gradients untouched below the limit', () => {
    const ps = withGrads();
    assert.equal(clipGradNorm(ps, 100).itemSync(), 13);
    assert.deepEqual([...ps[0]!.grad!.dataSync()], [3, 4]);
    assert.deepEqual([...ps[1]!.grad!.dataSync()], [12]);
  });

  void it('infinity norm', () => {
    const ps = withGrads();
    assert.equal(clipGradNorm(ps, 6, { normType: Infinity }).itemSync(), 12);
    assertClose(ps[1]!.grad!, [12 * (6 / (12 + 1e-6))], TOL);
  });

  void it('no gradients: norm 0', () => {
    assert.equal(clipGradNorm([tensor([1], [1])], 1).itemSync(), 0);
  });
});

/** A small MLP with deterministic weights. */
class Mlp extends Module {
  readonly fc1: Linear;
  readonly act = new SiLU();
  readonly fc2: Linear;
  constructor(seed: number) {
    super();
    const generator = new Generator(seed);
    this.fc1 = this.child('fc1', new Linear(3, 8, { generator }));
    this.fc2 = this.child('fc2', new Linear(8, 2, { generator }));
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.act.forward(this.fc1.forward(x)));
  }
}

/** One training step on batch number `i` (deterministic data). */
function trainStep(model: Mlp, opt: Optimizer, i: number): number {
  const loss = tidy(() => {
    const x = randn([4, 3], { seed: 99, offset: 10 * i });
    const y = randn([4, 2], { seed: 77, offset: 10 * i });
    const l = mean(square(sub(model.forward(x), y)));
    l.backward();
    return l.itemSync();
  });
  tidy(() => {
    clipGradNorm(model, 1); // the returned norm is disposed with the scope
  });
  opt.step();
  opt.zeroGrad();
  return loss;
}

/** Each parameter of a with its namesake in b. */
function paramPairs(a: Module, b: Module): [string, Tensor, Tensor][] {
  const other = new Map(b.namedParameters());
  return a.namedParameters().map(([n, p]): [string, Tensor, Tensor] => [n, p, other.get(n)!]);
}

function snapshot(m: Module): Map<string, Tensor> {
  return new Map(m.namedParameters().map(([n, p]) => [n, p.alias()]));
}

void describe('optimizer state', () => {
  void it('names state after the parameters', () => {
    const model = new Mlp(1);
    const opt = new AdamW(model, { lr: 1e-2 });
    assert.deepEqual([...opt.stateDict().keys()], []);
    trainStep(model, opt, 0);
    const sd = opt.stateDict();
    assert.deepEqual([...sd.keys()].slice(0, 3), [
      'fc1.weight.step',
      'fc1.weight.exp_avg',
      'fc1.weight.exp_avg_sq',
    ]);
    assert.equal(sd.size, 4 * 3);
    assert.equal(sd.get('fc2.bias.step')!.itemSync(), 1);
    assert.equal(sd.get('fc2.bias.step')!.dtype, 'int32');
    assert.deepEqual(sd.get('fc1.weight.exp_avg')!.shape, [8, 3]);
    for (const t of sd.values()) t.dispose();
    opt.dispose();

    const sgd = new SGD(model, { lr: 0.1, momentum: 0.9 });
    trainStep(model, sgd, 0);
    assert.deepEqual([...sgd.stateDict().keys()].slice(0, 2), [
      'fc1.weight.momentum_buffer',
      'fc1.bias.momentum_buffer',
    ]);
  });

  void it('stateDict is a snapshot: later steps do not change it', () => {
    const model = new Mlp(2);
    const opt = new Adam(model, { lr: 1e-2 });
    trainStep(model, opt, 0);
    const sd = opt.stateDict();
    const before = [...sd.get('fc1.weight.exp_avg')!.dataSync()];
    trainStep(model, opt, 1);
    assert.deepEqual([...sd.get('fc1.weight.exp_avg')!.dataSync()], before);
    assert.equal(sd.get('fc1.weight.step')!.itemSync(), 1);
  });

  for (const make of [
    (m: Module) => new AdamW(m, { lr: 1e-2, weightDecay: 0.05 }),
    (m: Module) => new Adam(m, { lr: 1e-2, amsgrad: true }),
    (m: Module) => new SGD(m, { lr: 0.05, momentum: 0.9, nesterov: true }),
  ]) {
    const name = make(new Mlp(0)).constructor.name;
    void it(`${name}: continuing vs reloading state gives bit-identical parameters`, async () => {
      const model = new Mlp(3);
      const opt = make(model);
      for (let i = 0; i < 5; i++) trainStep(model, opt, i);
      const params = snapshot(model);
      const state = opt.stateDict();
      for (let i = 5; i < 10; i++) trainStep(model, opt, i);

      const model2 = new Mlp(4); // different initial weights, replaced by the snapshot
      await model2.loadStateDict(params);
      const opt2 = make(model2);
      await opt2.loadStateDict(state);
      for (let i = 5; i < 10; i++) trainStep(model2, opt2, i);

      for (const [n, a, b] of paramPairs(model, model2)) {
        assert.deepEqual(b.dataSync(), a.dataSync(), `parameter ${n}`);
      }
    });
  }

  void it('loadStateDict names unexpected, partial and mis-shaped entries and loads nothing', async () => {
    const model = new Mlp(5);
    const opt = new AdamW(model, { lr: 1e-2 });
    trainStep(model, opt, 0);
    const good = opt.stateDict();
    const bad = new Map(good);
    bad.delete('fc1.bias.exp_avg_sq');
    bad.set('fc1.weight.exp_avg', tensor(new Float32Array(4), [4]));
    bad.set('fc9.weight.exp_avg', tensor(new Float32Array(4), [4]));
    bad.set('fc1.weight.momentum', tensor(new Float32Array(24), [8, 3]));
    const before = [...good.get('fc1.weight.exp_avg')!.dataSync()];
    trainStep(model, opt, 1);
    const current = opt.stateDict();
    await assert.rejects(opt.loadStateDict(bad, { source: 'ckpt/optimizer.safetensors' }), (e) => {
      const msg = (e as Error).message;
      assert.match(msg, /ckpt\/optimizer\.safetensors/);
      assert.match(msg, /mis-shaped: fc1\.weight\.exp_avg: expected \[8, 3\], found \[4\]/);
      assert.match(msg, /missing: fc1\.bias\.exp_avg_sq/);
      assert.match(msg, /unexpected: fc9\.weight\.exp_avg, fc1\.weight\.momentum/);
      return true;
    });
    // Unchanged: still the state after two steps, not the one before.
    const after = opt.stateDict();
    assert.deepEqual(after.get('fc1.weight.step')!.itemSync(), 2);
    assert.deepEqual(
      [...after.get('fc1.weight.exp_avg')!.dataSync()],
      [...current.get('fc1.weight.exp_avg')!.dataSync()],
    );
    assert.notDeepEqual([...after.get('fc1.weight.exp_avg')!.dataSync()], before);
  });

  void it('does not leak: the live storage count is steady over 200 steps', () => {
    const backend = cpuBackend();
    const model = new Mlp(6);
    const opt = new AdamW(model, { lr: 1e-3 });
    trainStep(model, opt, 0);
    const live = backend.liveCount();
    for (let i = 1; i <= 200; i++) trainStep(model, opt, i);
    assert.equal(backend.liveCount(), live);
    opt.dispose();
    assert.equal(backend.liveCount(), live - 4 * 2);
  });
});
