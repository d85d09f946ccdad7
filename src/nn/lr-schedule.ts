/**
 * Learning-rate schedules as pure functions of the step, after diffusers' `get_scheduler`
 * (diffusers/optimization.py, which wraps torch's LambdaLR). `step` is the number of optimizer
 * steps already taken, so the first update uses `lr(0)`; with warmup that is 0, exactly as a
 * diffusers training loop (optimizer.step() then lr_scheduler.step()) does. A trainer sets
 * `optimizer.lr = schedule(step)` before each step.
 */

export type LrSchedule = (step: number) => number;

export interface WarmupOptions {
  /** The peak (base) learning rate. */
  lr: number;
  /** Steps of linear warmup from 0 to lr (default 0). */
  warmupSteps?: number;
}

export interface DecayOptions extends WarmupOptions {
  /** Total optimizer steps of the run (warmup included). */
  trainingSteps: number;
  /**
   * Floor of the decay as a learning rate (default 0): the decaying factor f becomes
   * minLr/lr + (1 − minLr/lr)·f, as transformers' cosine_with_min_lr. Warmup is unaffected.
   */
  minLr?: number;
}

export interface CosineOptions extends DecayOptions {
  /** Number of cosine waves over the decay (default 0.5: one half-wave from lr down to the floor). */
  numCycles?: number;
}

function warmupFactor(step: number, warmupSteps: number): number {
  return step / Math.max(1, warmupSteps);
}

function checkStep(step: number): void {
  if (!Number.isInteger(step) || step < 0) {
    throw new Error(`lr schedule: step must be a non-negative integer, got ${step}`);
  }
}

function floored(factor: number, o: DecayOptions): number {
  const rate = o.lr > 0 ? (o.minLr ?? 0) / o.lr : 0;
  return factor * (1 - rate) + rate;
}

/** The learning rate at `step`: diffusers' constant (warmupSteps 0) or constant_with_warmup. */
export function constantWithWarmupLr(step: number, o: WarmupOptions): number {
  checkStep(step);
  const w = o.warmupSteps ?? 0;
  return o.lr * (step < w ? warmupFactor(step, w) : 1);
}

/**
 * The learning rate at `step`: diffusers' get_cosine_schedule_with_warmup, linear warmup then
 * f = max(0, ½(1 + cos(π · numCycles · 2 · progress))), progress = (step − warmup)/(total − warmup).
 */
export function cosineWithWarmupLr(step: number, o: CosineOptions): number {
  checkStep(step);
  const w = o.warmupSteps ?? 0;
  if (step < w) return o.lr * warmupFactor(step, w);
  const progress = (step - w) / Math.max(1, o.trainingSteps - w);
  const f = Math.max(0, 0.5 * (1 + Math.cos(Math.PI * (o.numCycles ?? 0.5) * 2 * progress)));
  return o.lr * floored(f, o);
}

/**
 * The learning rate at `step`: diffusers' get_linear_schedule_with_warmup, linear warmup then
 * f = max(0, (total − step)/(total − warmup)).
 */
export function linearWithWarmupLr(step: number, o: DecayOptions): number {
  checkStep(step);
  const w = o.warmupSteps ?? 0;
  if (step < w) return o.lr * warmupFactor(step, w);
  const f = Math.max(0, (o.trainingSteps - step) / Math.max(1, o.trainingSteps - w));
  return o.lr * floored(f, o);
}

export type ScheduleName = 'constant' | 'constant_with_warmup' | 'cosine' | 'linear';

/** A schedule by diffusers' `--lr_scheduler` name ('constant' ignores warmupSteps, as diffusers). */
export function getLrSchedule(name: ScheduleName, o: CosineOptions): LrSchedule {
  switch (name) {
    case 'constant':
      return (step) => constantWithWarmupLr(step, { lr: o.lr });
    case 'constant_with_warmup':
      return (step) => constantWithWarmupLr(step, o);
    case 'cosine':
      return (step) => cosineWithWarmupLr(step, o);
    case 'linear':
      return (step) => linearWithWarmupLr(step, o);
    default:
      return name satisfies never;
  }
}
