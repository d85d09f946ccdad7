/**
 * Exponential moving average of a model's parameters, as diffusers' `EMAModel`
 * (diffusers/training_utils.py): shadow parameters updated after each optimizer step with
 *
 *   s ← s − (1 − d) (s − θ)
 *
 * where the decay d follows `emaDecay`. The shadow parameters carry the model's parameter names,
 * so `stateDict()` is directly a model state dict (save it with `saveTensors` and it loads into
 * the model like any diffusers checkpoint).
 */
import { cast, keep, noGrad, sub, mul, type Tensor, tidy, transfer } from '../engine/index.js';
import { checkStateDictKeys, type Module, type StateDict } from './module.js';

/**
 * How the decay warms up:
 * - 'power': 1 − (1 + step/invGamma)^−power (diffusers `use_ema_warmup=True`, @crowsonkb's
 *   schedule; power 2/3 reaches 0.999 at ~31.6K steps, 3/4 at ~10K);
 * - 'ratio': (1 + step)/(10 + step) (diffusers' non-warmup path before it became constant;
 *   timm's and many DDPM trainers' warmup);
 * - 'none': the constant `decay` (diffusers `use_ema_warmup=False` today).
 */
export type EmaWarmup = 'power' | 'ratio' | 'none';

export interface EmaOptions {
  /** The maximum decay (diffusers `decay`, default 0.9999). */
  decay?: number;
  /** The minimum decay once averaging has started (default 0). */
  minDecay?: number;
  /** Steps during which the shadow just copies the model (default 0). */
  updateAfterStep?: number;
  /** Default 'power'. */
  warmup?: EmaWarmup;
  /** For 'power' (default 1). */
  invGamma?: number;
  /** For 'power' (default 2/3). */
  power?: number;
}

/**
 * The decay for the `optimizationStep`-th call of `step()` (counting from 1), as diffusers'
 * `EMAModel.get_decay`: with step = max(0, optimizationStep − updateAfterStep − 1), the decay is
 * 0 while step ≤ 0 (the shadow copies the model), otherwise the warmup value clamped to
 * [minDecay, decay].
 */
export function emaDecay(optimizationStep: number, opts: EmaOptions = {}): number {
  const maxDecay = opts.decay ?? 0.9999;
  const step = Math.max(0, optimizationStep - (opts.updateAfterStep ?? 0) - 1);
  if (step <= 0) return 0;
  const warmup = opts.warmup ?? 'power';
  let d: number;
  switch (warmup) {
    case 'power':
      d = 1 - (1 + step / (opts.invGamma ?? 1)) ** -(opts.power ?? 2 / 3);
      break;
    case 'ratio':
      d = (1 + step) / (10 + step);
      break;
    case 'none':
      d = maxDecay;
      break;
    default:
      return warmup satisfies never;
  }
  return Math.max(Math.min(d, maxDecay), opts.minDecay ?? 0);
}

export class EMA {
  readonly opts: Readonly<EmaOptions>;
  /** Calls to `step()` so far (diffusers `optimization_step`); part of the checkpoint state. */
  optimizationStep = 0;
  /** The decay used by the last `step()` (diffusers `cur_decay_value`). */
  curDecay: number | null = null;
  readonly #shadow = new Map<string, Tensor>();
  #stored: Map<string, Tensor> | null = null;

  /** Starts the shadow as a copy of the model's current parameters. */
  constructor(model: Module, opts: EmaOptions = {}) {
    this.opts = { ...opts };
    const d = opts.decay ?? 0.9999;
    if (!(d >= 0 && d <= 1)) throw new Error(`EMA: decay must be in [0, 1], got ${d}`);
    for (const [name, p] of model.namedParameters()) this.#shadow.set(name, keep(p.alias()));
  }

  decayAt(optimizationStep: number): number {
    return emaDecay(optimizationStep, this.opts);
  }

  #pairs(model: Module, what: string): [Tensor, Tensor, string][] {
    const params = model.namedParameters();
    const names = params.map(([n]) => n);
    const same = names.length === this.#shadow.size && names.every((n) => this.#shadow.has(n));
    if (!same) {
      const missing = names.filter((n) => !this.#shadow.has(n));
      const extra = [...this.#shadow.keys()].filter((n) => !names.includes(n));
      throw new Error(
        `EMA.${what}: the model's parameters differ from the averaged ones` +
          (missing.length > 0 ? `; not averaged: ${missing.join(', ')}` : '') +
          (extra.length > 0 ? `; not in the model: ${extra.join(', ')}` : ''),
      );
    }
    return params.map(([n, p]) => {
      const s = this.#shadow.get(n)!;
      if (!s.sameShape(p) || s.backend !== p.backend) {
        throw new Error(`EMA.${what}: '${n}' is ${p.toString()}, its average ${s.toString()}`);
      }
      return [s, p, n];
    });
  }

  /**
   * Folds the model's current parameters into the average (call after each optimizer step).
   * Parameters that do not require grad (frozen) are copied, as diffusers does.
   */
  step(model: Module): void {
    const pairs = this.#pairs(model, 'step');
    this.optimizationStep++;
    const decay = this.decayAt(this.optimizationStep);
    this.curDecay = decay;
    const oneMinusDecay = 1 - decay;
    noGrad(() =>
      tidy(() => {
        for (const [s, p] of pairs) {
          const v = p.dtype === s.dtype ? p : cast(p, s.dtype);
          // Decay 0 copies exactly (the formula would round: s − (s − θ) need not equal θ).
          if (!p.requiresGrad || oneMinusDecay === 1) s.assign(v);
          else s.assign(sub(s, mul(sub(s, v), oneMinusDecay)));
        }
      }),
    );
  }

  /** Writes the averaged parameters into `model` (cast to each parameter's dtype). */
  copyTo(model: Module): void {
    const pairs = this.#pairs(model, 'copyTo');
    noGrad(() =>
      tidy(() => {
        for (const [s, p] of pairs) p.assign(p.dtype === s.dtype ? s : cast(s, p.dtype));
      }),
    );
  }

  /** Remembers the model's current parameters (before `copyTo` for an evaluation). */
  store(model: Module): void {
    this.#dropStored();
    this.#stored = new Map(model.namedParameters().map(([n, p]) => [n, keep(p.alias())]));
  }

  /** Puts back the parameters saved by `store`. */
  restore(model: Module): void {
    const stored = this.#stored;
    if (stored === null) throw new Error('EMA.restore: nothing was stored; call store() first');
    for (const [n, p] of model.namedParameters()) {
      const t = stored.get(n);
      if (t === undefined) throw new Error(`EMA.restore: parameter '${n}' was not stored`);
      p.assign(t);
    }
    this.#dropStored();
  }

  #dropStored(): void {
    for (const t of this.#stored?.values() ?? []) t.dispose();
    this.#stored = null;
  }

  /**
   * The averaged parameters under the model's names, as snapshots (aliases) the caller owns and
   * disposes. `optimizationStep` is the rest of the state a checkpoint needs.
   */
  stateDict(): StateDict {
    return new Map([...this.#shadow].map(([n, t]) => [n, t.alias()]));
  }

  /**
   * Loads averaged parameters (same names and shapes as at construction; values are cast to the
   * current shadow's dtype and backend) and optionally the step count. Checks everything first.
   */
  async loadStateDict(
    sd: ReadonlyMap<string, Tensor>,
    opts: { optimizationStep?: number; source?: string } = {},
  ): Promise<void> {
    const missing = [...this.#shadow.keys()].filter((k) => !sd.has(k));
    const unexpected = [...sd.keys()].filter((k) => !this.#shadow.has(k));
    const misShaped = [...this.#shadow]
      .filter(([k, s]) => sd.has(k) && !sd.get(k)!.sameShape(s))
      .map(
        ([k, s]) =>
          `${k}: expected [${s.shape.join(', ')}], found [${sd.get(k)!.shape.join(', ')}]`,
      );
    const where = opts.source !== undefined ? ` (${opts.source})` : '';
    checkStateDictKeys(`EMA.loadStateDict${where}`, { misShaped, missing, unexpected });
    const next = new Map<string, Tensor>();
    for (const [k, s] of this.#shadow) {
      next.set(k, keep(await transfer(sd.get(k)!, s.backend, s.dtype)));
    }
    for (const [k, t] of next) {
      this.#shadow.get(k)!.dispose();
      this.#shadow.set(k, t);
    }
    if (opts.optimizationStep !== undefined) this.optimizationStep = opts.optimizationStep;
  }

  /** Frees the averaged (and any stored) parameters. */
  dispose(): void {
    for (const t of this.#shadow.values()) t.dispose();
    this.#shadow.clear();
    this.#dropStored();
  }
}
