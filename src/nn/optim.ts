/**
 * Optimizers (SGD, Adam, AdamW) with PyTorch's update equations, and gradient-norm clipping.
 *
 * Every update runs under `noGrad` inside one `tidy` and writes parameters and state with
 * `assign`, so a step leaves no intermediate alive. Storages are never mutated in place (assign
 * swaps which storage a tensor refers to), which is why `stateDict()` can hand out cheap aliases
 * that are snapshots: the state at the time of the call, unaffected by later steps.
 *
 * State is named after the parameters, `${paramName}.${key}` with PyTorch's keys (`step`,
 * `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`, `momentum_buffer`), so a trainer can checkpoint it
 * to a safetensors file beside the model and resume bit-for-bit.
 */
import {
  abs,
  add,
  cast,
  clamp,
  cpuBackend,
  div,
  fmtShapeOf,
  keep,
  max,
  maximum,
  mul,
  noGrad,
  sqrt,
  square,
  sub,
  sum,
  Tensor,
  tensor,
  tidy,
  transfer,
  zerosLike,
} from '../engine/index.js';
import { checkStateDictKeys, Module } from './module.js';

/** What an optimizer optimizes: a module's parameters, named tensors, or tensors (named 0, 1, …). */
export type ParamsInput = Module | readonly Tensor[] | readonly (readonly [string, Tensor])[];

export function namedParamsOf(params: ParamsInput): [string, Tensor][] {
  if (params instanceof Module) return params.namedParameters();
  const out: [string, Tensor][] = [];
  params.forEach((p: Tensor | readonly [string, Tensor], i) => {
    out.push(p instanceof Tensor ? [String(i), p] : [p[0], p[1]]);
  });
  const seen = new Set<string>();
  for (const [n] of out) {
    if (seen.has(n)) throw new Error(`optimizer: parameter name '${n}' given twice`);
    seen.add(n);
  }
  return out;
}

interface ParamState {
  /** Steps this parameter has taken (PyTorch counts per parameter). */
  step: number;
  tensors: Map<string, Tensor>;
}

/**
 * The shared machinery: parameters by name, per-parameter state, `step()` under noGrad + tidy,
 * and state dicts. Subclasses implement `update` for one parameter.
 */
export abstract class Optimizer {
  /** Learning rate used by the next `step()`; a schedule sets it between steps. */
  lr: number;
  readonly params: readonly (readonly [string, Tensor])[];
  readonly #byName: Map<string, Tensor>;
  readonly #state = new Map<string, ParamState>();

  protected constructor(params: ParamsInput, lr: number) {
    if (!(lr >= 0)) throw new Error(`optimizer: invalid learning rate ${lr}`);
    this.lr = lr;
    this.params = namedParamsOf(params);
    this.#byName = new Map(this.params);
  }

  /** Whether per-parameter state includes a step count (Adam does, SGD does not). */
  protected abstract readonly countsSteps: boolean;
  /** Names of the state tensors each parameter carries once it has stepped. */
  protected abstract stateKeys(): readonly string[];
  /**
   * One parameter's update. `state` holds zero-initialized state tensors (fresh on the first
   * step, `state.step` already incremented); write results with `assign`.
   */
  protected abstract update(p: Tensor, g: Tensor, state: ParamState, first: boolean): void;

  /** Updates every parameter that has a gradient (parameters without one are skipped). */
  step(): void {
    noGrad(() =>
      tidy(() => {
        for (const [name, p] of this.params) {
          const g = p.grad;
          if (g === null) continue;
          if (!g.sameShape(p) || g.dtype !== p.dtype) {
            throw new Error(
              `optimizer: gradient of '${name}' is ${g.dtype} ${fmtShapeOf(g)}, ` +
                `parameter is ${p.dtype} ${fmtShapeOf(p)}`,
            );
          }
          let s = this.#state.get(name);
          const first = s === undefined;
          if (s === undefined) {
            const tensors = new Map(this.stateKeys().map((k) => [k, keep(zerosLike(p))]));
            s = { step: 0, tensors };
            this.#state.set(name, s);
          }
          s.step++;
          this.update(p, g, s, first);
        }
      }),
    );
  }

  zeroGrad(): void {
    for (const [, p] of this.params) p.zeroGrad();
  }

  /**
   * The state as named tensors: `${param}.step` (int32 scalar on the CPU backend, optimizers
   * that count steps) and `${param}.${key}` for each state tensor. Parameters that never stepped
   * have no entries. The tensors are snapshots (aliases of the current storages) owned by the
   * caller: dispose them when done.
   */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name] of this.params) {
      const s = this.#state.get(name);
      if (s === undefined) continue;
      if (this.countsSteps) {
        out.set(
          `${name}.step`,
          tensor(new Int32Array([s.step]), [], { dtype: 'int32', backend: cpuBackend() }),
        );
      }
      for (const [k, t] of s.tensors) out.set(`${name}.${k}`, t.alias());
    }
    return out;
  }

  /**
   * Replaces the whole state with `sd` (as made by `stateDict()`, possibly read back from a
   * file): values are copied to each parameter's backend and dtype. Everything is checked before
   * anything changes; unknown, missing (a parameter with only part of its state) and mis-shaped
   * entries are all named in one error. Parameters without entries start fresh.
   */
  async loadStateDict(sd: ReadonlyMap<string, Tensor>, opts: { source?: string } = {}) {
    const keys = [...(this.countsSteps ? ['step'] : []), ...this.stateKeys()];
    const found = new Map<string, Map<string, Tensor>>();
    const unexpected: string[] = [];
    const misShaped: string[] = [];
    for (const [k, t] of sd) {
      const dot = k.lastIndexOf('.');
      const name = k.slice(0, Math.max(dot, 0));
      const key = k.slice(dot + 1);
      const p = this.#byName.get(name);
      if (dot < 0 || p === undefined || !keys.includes(key)) {
        unexpected.push(k);
        continue;
      }
      if (key === 'step' ? t.size !== 1 : !t.sameShape(p)) {
        const want = key === 'step' ? 'one element' : fmtShapeOf(p);
        misShaped.push(`${k}: expected ${want}, found ${fmtShapeOf(t)}`);
      }
      let m = found.get(name);
      if (m === undefined) {
        m = new Map<string, Tensor>();
        found.set(name, m);
      }
      m.set(key, t);
    }
    const missing: string[] = [];
    for (const [name, m] of found) {
      for (const key of keys) if (!m.has(key)) missing.push(`${name}.${key}`);
    }
    const where = opts.source !== undefined ? ` (${opts.source})` : '';
    checkStateDictKeys(`${this.constructor.name}.loadStateDict${where}`, {
      misShaped,
      missing,
      unexpected,
    });

    const next = new Map<string, ParamState>();
    try {
      for (const [name, m] of found) {
        const p = this.#byName.get(name)!;
        const step = this.countsSteps ? (await m.get('step')!.data())[0]! : 0;
        const tensors = new Map<string, Tensor>();
        next.set(name, { step, tensors });
        for (const key of this.stateKeys()) {
          tensors.set(key, keep(await transfer(m.get(key)!, p.backend, p.dtype)));
        }
      }
    } catch (e) {
      for (const s of next.values()) for (const t of s.tensors.values()) t.dispose();
      throw e;
    }
    this.dispose();
    for (const [name, s] of next) this.#state.set(name, s);
  }

  /** Frees all state (the optimizer starts fresh if stepped again). */
  dispose(): void {
    for (const s of this.#state.values()) for (const t of s.tensors.values()) t.dispose();
    this.#state.clear();
  }
}

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  /** L2 penalty added to the gradient. */
  weightDecay?: number;
  nesterov?: boolean;
}

/**
 * Stochastic gradient descent, torch.optim.SGD
 * (https://pytorch.org/docs/stable/generated/torch.optim.SGD.html), per step t:
 *
 *   g ← ∇θ + λθ                                  (λ = weightDecay, when λ ≠ 0)
 *   b ← g at t = 1, else μ b + (1 − τ) g         (μ = momentum, τ = dampening, when μ ≠ 0)
 *   g ← g + μ b if nesterov, else b
 *   θ ← θ − γ g
 */
export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  protected readonly countsSteps = false;

  constructor(params: ParamsInput, opts: SGDOptions) {
    super(params, opts.lr);
    this.momentum = opts.momentum ?? 0;
    this.dampening = opts.dampening ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
    this.nesterov = opts.nesterov ?? false;
    if (this.momentum < 0) throw new Error(`SGD: invalid momentum ${this.momentum}`);
    if (this.weightDecay < 0) throw new Error(`SGD: invalid weightDecay ${this.weightDecay}`);
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new Error('SGD: nesterov momentum requires momentum > 0 and dampening = 0');
    }
  }

  protected stateKeys(): readonly string[] {
    return this.momentum !== 0 ? ['momentum_buffer'] : [];
  }

  protected update(p: Tensor, g: Tensor, state: ParamState, first: boolean): void {
    let d = this.weightDecay !== 0 ? add(g, mul(p, this.weightDecay)) : g;
    if (this.momentum !== 0) {
      const buf = state.tensors.get('momentum_buffer')!;
      buf.assign(first ? d : add(mul(buf, this.momentum), mul(d, 1 - this.dampening)));
      d = this.nesterov ? add(d, mul(buf, this.momentum)) : buf;
    }
    p.assign(sub(p, mul(d, this.lr)));
  }
}

export interface AdamOptions {
  lr?: number;
  betas?: readonly [number, number];
  eps?: number;
  weightDecay?: number;
  amsgrad?: boolean;
}

/**
 * Adam (Kingma & Ba, https://arxiv.org/abs/1412.6980) as torch.optim.Adam
 * (https://pytorch.org/docs/stable/generated/torch.optim.Adam.html), per step t:
 *
 *   g ← ∇θ + λθ                       (L2 penalty, λ = weightDecay; AdamW decays θ instead)
 *   m ← β₁ m + (1 − β₁) g             (computed as PyTorch's lerp: m + (1 − β₁)(g − m))
 *   v ← β₂ v + (1 − β₂) g²
 *   v̂max ← max(v̂max, v)               (amsgrad only; the uncorrected v, as PyTorch keeps it)
 *   θ ← θ − (γ / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
 *
 * The last line is the documented θ − γ m̂ / (√v̂ + ε) in the order PyTorch's single-tensor
 * implementation evaluates it (bias corrections as host numbers, eps added after the division).
 */
export class Adam extends Optimizer {
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly amsgrad: boolean;
  /** AdamW: θ ← θ (1 − γλ) before the update, keeping the decay out of m and v. */
  readonly decoupledWeightDecay: boolean;
  protected readonly countsSteps = true;

  constructor(params: ParamsInput, opts: AdamOptions = {}, decoupled = false) {
    super(params, opts.lr ?? 1e-3);
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.amsgrad = opts.amsgrad ?? false;
    this.decoupledWeightDecay = decoupled;
    const [b1, b2] = this.betas;
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) {
      throw new Error(`${this.constructor.name}: betas must be in [0, 1), got [${b1}, ${b2}]`);
    }
    if (!(this.eps >= 0)) throw new Error(`${this.constructor.name}: invalid eps ${this.eps}`);
    if (!(this.weightDecay >= 0)) {
      throw new Error(`${this.constructor.name}: invalid weightDecay ${this.weightDecay}`);
    }
  }

  protected stateKeys(): readonly string[] {
    return this.amsgrad ? ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'] : ['exp_avg', 'exp_avg_sq'];
  }

  protected update(p: Tensor, g: Tensor, state: ParamState): void {
    const [b1, b2] = this.betas;
    const lr = this.lr;
    const wd = this.weightDecay;
    const t = state.step;
    const biasCorrection1 = 1 - b1 ** t;
    const biasCorrection2Sqrt = Math.sqrt(1 - b2 ** t);
    const m = state.tensors.get('exp_avg')!;
    const v = state.tensors.get('exp_avg_sq')!;
    const be = p.backend;
    if (be.adamUpdate && !this.amsgrad && g.dtype === p.dtype && g.backend === be) {
      // One fused kernel for the whole update (same equations as below).
      const r = be.adamUpdate(p.storage, g.storage, m.storage, v.storage, {
        lr,
        beta1: b1,
        beta2: b2,
        eps: this.eps,
        weightDecay: wd,
        decoupled: this.decoupledWeightDecay,
        biasCorrection1,
        biasCorrection2Sqrt,
      });
      p.assign(new Tensor(r.param, p.shape));
      m.assign(new Tensor(r.m, m.shape));
      v.assign(new Tensor(r.v, v.shape));
      return;
    }
    let theta = p;
    let grad = g;
    if (wd !== 0) {
      if (this.decoupledWeightDecay) theta = mul(p, 1 - lr * wd);
      else grad = add(g, mul(p, wd));
    }
    m.assign(add(m, mul(sub(grad, m), 1 - b1)));
    v.assign(add(mul(v, b2), mul(mul(grad, grad), 1 - b2)));
    const stepSize = lr / biasCorrection1;
    let vUsed = v;
    if (this.amsgrad) {
      const vMax = state.tensors.get('max_exp_avg_sq')!;
      vMax.assign(maximum(vMax, v));
      vUsed = vMax;
    }
    const denom = add(div(sqrt(vUsed), biasCorrection2Sqrt), this.eps);
    p.assign(sub(theta, div(mul(m, stepSize), denom)));
  }
}

/**
 * AdamW (Loshchilov & Hutter, https://arxiv.org/abs/1711.05101) as torch.optim.AdamW
 * (https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html): Adam with decoupled
 * weight decay θ ← θ − γλθ applied before the moment update. Default weightDecay 1e-2.
 */
export class AdamW extends Adam {
  constructor(params: ParamsInput, opts: AdamOptions = {}) {
    super(params, { ...opts, weightDecay: opts.weightDecay ?? 1e-2 }, true);
  }
}

export interface ClipGradNormOptions {
  /** 2 (default) or Infinity. */
  normType?: number;
}

/**
 * Scales all gradients in place so their global norm is at most maxNorm, as
 * torch.nn.utils.clip_grad_norm_: total = ‖(‖g₁‖, ‖g₂‖, …)‖, every gradient is multiplied by
 * min(1, maxNorm / (total + 1e-6)). Returns the total norm before clipping as a 0-d tensor of
 * the gradients' dtype (no readback, so it stays on the device; read it with `await t.item()`).
 * Parameters without a gradient are ignored; with none at all the norm is 0. A non-finite
 * total leaves non-finite gradients, as PyTorch does with error_if_nonfinite=False.
 */
export function clipGradNorm(
  params: ParamsInput,
  maxNorm: number,
  opts: ClipGradNormOptions = {},
): Tensor {
  const normType = opts.normType ?? 2;
  if (normType !== 2 && normType !== Infinity) {
    throw new Error(`clipGradNorm: normType must be 2 or Infinity, got ${String(normType)}`);
  }
  const withGrad = namedParamsOf(params)
    .map(([, p]) => p)
    .filter((p) => p.grad !== null);
  if (withGrad.length === 0) return tensor([0], []);
  return noGrad(() =>
    tidy(() => {
      const first = withGrad[0]!.grad!;
      const dtype = first.dtype;
      let acc: Tensor | null = null;
      for (const p of withGrad) {
        const g = p.grad!;
        if (g.backend !== first.backend) {
          throw new Error('clipGradNorm: gradients live on different backends');
        }
        const part = cast(normType === 2 ? sum(square(g)) : max(abs(g)), dtype);
        acc = acc === null ? part : normType === 2 ? add(acc, part) : maximum(acc, part);
      }
      const total = normType === 2 ? sqrt(acc!) : acc!;
      const coef = clamp(div(maxNorm, add(total, 1e-6)), undefined, 1);
      for (const p of withGrad) {
        const g = p.grad!;
        g.assign(mul(g, g.dtype === dtype ? coef : cast(coef, g.dtype)));
      }
      return total;
    }),
  );
}
