/**
 * Scheduler registry: diffusers class names and the CLI's short names to constructors, with the
 * diffusers config read at the boundary (`createScheduler('DDIMScheduler', configJson)`).
 */
import type { Scheduler, StepOptions } from './common.js';
import { readDiffusersConfig, type SchedulerSpec } from './config.js';
import { DDIMScheduler, ddimSpec } from './ddim.js';
import { DDPMScheduler, ddpmSpec } from './ddpm.js';
import { DPMSolverMultistepScheduler, dpmSolverSpec } from './dpm-solver.js';
import { EulerAncestralDiscreteScheduler, eulerAncestralSpec } from './euler-ancestral.js';
import { EulerDiscreteScheduler, eulerSpec } from './euler.js';
import { HeunDiscreteScheduler, heunSpec } from './heun.js';
import { LMSDiscreteScheduler, lmsSpec } from './lms.js';
import { PNDMScheduler, pndmSpec } from './pndm.js';
import { UniPCMultistepScheduler, unipcSpec } from './unipc.js';

export type SchedulerClassName =
  | 'DDPMScheduler'
  | 'DDIMScheduler'
  | 'EulerDiscreteScheduler'
  | 'EulerAncestralDiscreteScheduler'
  | 'HeunDiscreteScheduler'
  | 'DPMSolverMultistepScheduler'
  | 'LMSDiscreteScheduler'
  | 'PNDMScheduler'
  | 'UniPCMultistepScheduler';

interface Entry {
  spec: SchedulerSpec<object>;
  create(options: Record<string, unknown>): Scheduler;
}

const entry = <O extends object>(
  spec: SchedulerSpec<O>,
  create: (o: Partial<O>) => Scheduler,
): Entry => ({
  spec,
  create: (o) => create(o as Partial<O>),
});

const classes: { [K in SchedulerClassName]: Entry } = {
  DDPMScheduler: entry(ddpmSpec, (o) => new DDPMScheduler(o)),
  DDIMScheduler: entry(ddimSpec, (o) => new DDIMScheduler(o)),
  EulerDiscreteScheduler: entry(eulerSpec, (o) => new EulerDiscreteScheduler(o)),
  EulerAncestralDiscreteScheduler: entry(
    eulerAncestralSpec,
    (o) => new EulerAncestralDiscreteScheduler(o),
  ),
  HeunDiscreteScheduler: entry(heunSpec, (o) => new HeunDiscreteScheduler(o)),
  DPMSolverMultistepScheduler: entry(dpmSolverSpec, (o) => new DPMSolverMultistepScheduler(o)),
  LMSDiscreteScheduler: entry(lmsSpec, (o) => new LMSDiscreteScheduler(o)),
  PNDMScheduler: entry(pndmSpec, (o) => new PNDMScheduler(o)),
  UniPCMultistepScheduler: entry(unipcSpec, (o) => new UniPCMultistepScheduler(o)),
};

/** CLI names: a class plus the config values that make the named method (these win). */
export const schedulerAliases: Readonly<
  Record<string, { className: SchedulerClassName; config?: Readonly<Record<string, unknown>> }>
> = {
  ddpm: { className: 'DDPMScheduler' },
  ddim: { className: 'DDIMScheduler' },
  euler: { className: 'EulerDiscreteScheduler' },
  'euler-a': { className: 'EulerAncestralDiscreteScheduler' },
  heun: { className: 'HeunDiscreteScheduler' },
  'dpmpp-2m': {
    className: 'DPMSolverMultistepScheduler',
    config: { algorithm_type: 'dpmsolver++', solver_order: 2 },
  },
  'dpmpp-2m-sde': {
    className: 'DPMSolverMultistepScheduler',
    config: { algorithm_type: 'sde-dpmsolver++', solver_order: 2 },
  },
  lms: { className: 'LMSDiscreteScheduler' },
  pndm: { className: 'PNDMScheduler' },
  unipc: { className: 'UniPCMultistepScheduler' },
};

export const schedulerClassNames = Object.keys(classes) as SchedulerClassName[];

/** The method parameters of `step` (not its noise source): what each class reads. */
export type StepParameter = Exclude<keyof StepOptions, 'generator' | 'noise'>;

const stepParameters: { [K in SchedulerClassName]: readonly StepParameter[] } = {
  DDPMScheduler: [],
  DDIMScheduler: ['eta', 'useClippedModelOutput'],
  EulerDiscreteScheduler: ['sChurn', 'sTmin', 'sTmax', 'sNoise'],
  EulerAncestralDiscreteScheduler: [],
  HeunDiscreteScheduler: [],
  DPMSolverMultistepScheduler: [],
  LMSDiscreteScheduler: ['order'],
  PNDMScheduler: [],
  UniPCMultistepScheduler: [],
};

/** Whether the scheduler (class or CLI name) reads `parameter` in `step` (DDIM's η, say). */
export function takesStepParameter(name: string, parameter: StepParameter): boolean {
  return stepParameters[resolveSchedulerName(name).className].includes(parameter);
}

/** The CLI names of the samplers whose `step` reads `parameter`. */
export function samplersTaking(parameter: StepParameter): string[] {
  return Object.entries(schedulerAliases)
    .filter(([, a]) => stepParameters[a.className].includes(parameter))
    .map(([n]) => n);
}

function isClassName(name: string): name is SchedulerClassName {
  return Object.hasOwn(classes, name);
}

/** The diffusers class a class name or CLI name stands for. */
export function resolveSchedulerName(name: string): {
  className: SchedulerClassName;
  config: Readonly<Record<string, unknown>>;
} {
  if (isClassName(name)) return { className: name, config: {} };
  const alias = schedulerAliases[name.toLowerCase()];
  if (alias !== undefined) return { className: alias.className, config: alias.config ?? {} };
  throw new Error(
    `unknown scheduler '${name}' (classes: ${schedulerClassNames.join(', ')}; names: ${Object.keys(schedulerAliases).join(', ')})`,
  );
}

let otherKeysCache: Set<string> | null = null;

/** Every constructor argument of every registered class (snake_case). */
function allClassKeys(): Set<string> {
  if (otherKeysCache === null) {
    otherKeysCache = new Set();
    for (const { spec } of Object.values(classes)) {
      for (const k of Object.keys(spec.defaults)) {
        otherKeysCache.add(k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
      }
      for (const k of Object.keys(spec.unsupported)) otherKeysCache.add(k);
    }
  }
  return otherKeysCache;
}

/** The spec (defaults and unsupported arguments) of a class. */
export function schedulerSpec(name: string): SchedulerSpec<object> {
  return classes[resolveSchedulerName(name).className].spec;
}

/**
 * Maps a diffusers config (snake_case, as in `scheduler_config.json`; camelCase keys work too) to
 * the options of the named scheduler. Errors name every key we do not support.
 */
export function schedulerOptionsFromConfig(
  name: string,
  config: Readonly<Record<string, unknown>> = {},
): { className: SchedulerClassName; options: Record<string, unknown>; ignored: string[] } {
  const { className, config: forced } = resolveSchedulerName(name);
  const { options, ignored } = readDiffusersConfig(
    classes[className].spec,
    { ...config, ...forced },
    allClassKeys(),
  );
  return { className, options, ignored };
}

/**
 * A scheduler by diffusers class name (`DDIMScheduler`) or CLI name (`ddim`, `euler-a`,
 * `dpmpp-2m-sde`, …), configured from a diffusers config object.
 */
export function createScheduler(
  name: string,
  config: Readonly<Record<string, unknown>> = {},
): Scheduler {
  const { className, options } = schedulerOptionsFromConfig(name, config);
  return classes[className].create(options);
}
