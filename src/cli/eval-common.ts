/**
 * What the `sumi eval` subcommands share: their common options, loading the model, the evaluation
 * classifier and the reference set with one-line errors (exit code 2 for bad input), the sampling
 * request from the options, progress on stderr, and plain-text tables.
 */
import {
  checkSamplingSettings,
  ClassifierDirError,
  createSampler,
  type LoadedPipeline,
  loadClassifier,
  loadPipeline,
  MAX_GUIDANCE_SCALE,
  ModelDirError,
  predictionTypeOf,
  SamplingOptionError,
  type SamplingSettings,
  takesStepParameter,
} from '../diffusion/index.js';
import {
  checkEnoughSamples,
  checkFits,
  checkSampleRequest,
  type ConditionPlan,
  defaultCacheDir,
  type EvalClassifier,
  evalClassifier,
  EvalInputError,
  type Floor,
  type GuideSpec,
  loadReference,
  planConditions,
  referenceClassCounts,
  type Reference,
  type SampleRequest,
  sampleFloor,
} from '../eval/index.js';
import { type Args, CliError, type OptionSpec, UsageError } from './args.js';
import {
  BACKEND_OPTION,
  checkSamplerName,
  ETA_OPTION,
  KARRAS_OPTION,
  REPLICAS_OPTION,
  samplerOption,
  SEED_OPTION,
  selectBackend,
  weightsChoice,
  weightsOption,
} from './common.js';
import type { Progress } from './progress.js';

export const MODEL_OPTIONS: readonly OptionSpec[] = [
  {
    name: 'model',
    kind: 'string',
    arg: 'DIR',
    help: "a 'sumi train' output or checkpoint, or a diffusers pipeline folder",
  },
  weightsOption(),
];

export const CLASSIFIER_OPTIONS: readonly OptionSpec[] = [
  {
    name: 'classifier',
    kind: 'string',
    arg: 'DIR',
    help: "the evaluation classifier ('sumi train-classifier --clean --holdout F'): its features and predictions",
  },
  {
    name: 'data',
    kind: 'string',
    arg: 'D',
    help: "the real images: mnist, mnist-full, fashion-mnist or a folder (default: the classifier's training data)",
  },
  {
    name: 'cache-dir',
    kind: 'string',
    arg: 'DIR',
    help: 'where the reference features are cached',
    default: '$SUMI_CACHE/stats or ~/.cache/sumi/stats',
  },
  { name: 'cache', kind: 'flag', help: 'use the cache (--no-cache: compute, write nothing)' },
];

/**
 * Sampling options; `sampler` adds --sampler and --steps, `lists` gives --guidance and
 * --classifier-scale as comma lists (cond).
 */
export function samplingOptions(opts: { sampler?: boolean; lists?: boolean } = {}): OptionSpec[] {
  return [
    ...(opts.sampler === true
      ? [
          samplerOption('dpmpp-2m'),
          { name: 'steps', kind: 'int', help: 'sampler steps', default: '20' } as const,
        ]
      : []),
    KARRAS_OPTION,
    ETA_OPTION,
    SEED_OPTION,
    { name: 'batch', kind: 'int', arg: 'B', help: 'images per sampling batch', default: '64' },
    REPLICAS_OPTION,
    {
      name: 'guidance',
      kind: opts.lists === true ? 'string' : 'number',
      arg: opts.lists === true ? 'W,..' : 'W',
      help: `classifier-free guidance scale w, 0 to ${MAX_GUIDANCE_SCALE} (models trained with condition dropout)`,
      default: '1',
    },
    {
      name: 'guidance-rescale',
      kind: 'number',
      arg: 'φ',
      help: 'guidance rescale, 0 to 1',
      default: '0',
    },
    {
      name: 'class',
      kind: 'string',
      arg: 'K',
      help:
        'a class id or name for every image; "all": the classes in turn (the default); ' +
        '"reference": the classes in the reference set\'s proportions',
    },
    {
      name: 'prompts-from-classes',
      kind: 'flag',
      help: 'text models: image i gets the prompt of its class ("a handwritten seven")',
    },
    {
      name: 'guide-classifier',
      kind: 'string',
      arg: 'DIR',
      help: 'classifier guidance by a noise-aware classifier (any model)',
    },
    {
      name: 'classifier-scale',
      kind: opts.lists === true ? 'string' : 'number',
      arg: opts.lists === true ? 'S,..' : 'S',
      help: 'classifier guidance scale s',
      default: '1',
    },
  ];
}

export const COMMON_TAIL: readonly OptionSpec[] = [
  BACKEND_OPTION,
  { name: 'json', kind: 'flag', help: 'print the results as JSON' },
  { name: 'quiet', kind: 'flag', help: 'no progress on stderr' },
];

/** Runs an evaluation body; its bad-input errors become one line with exit code 2. */
export async function asInputErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (
      e instanceof EvalInputError ||
      e instanceof ModelDirError ||
      e instanceof ClassifierDirError
    ) {
      throw new CliError(e.message, 2);
    }
    throw e;
  }
}

/** A positive integer option (with its default). */
export function positiveInt(args: Args, name: string, fallback: number): number {
  const v = args.num(name) ?? fallback;
  if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${name} must be at least 1, got ${v}`);
  return v;
}

/** A comma-separated list of numbers ≥ 0 ("1,2,3.5"). */
export function numberList(text: string, name: string, integers = false): number[] {
  const items = text.split(',').map((s) => s.trim());
  const values = items.map(Number);
  const bad = items.findIndex(
    (s, i) => s === '' || !(values[i]! >= 0) || (integers && !Number.isInteger(values[i]!)),
  );
  if (bad >= 0 || values.length === 0) {
    throw new UsageError(
      `--${name} expects comma-separated ${integers ? 'integers' : 'numbers'} ≥ 0, got '${text}'`,
    );
  }
  return values;
}

/** Checks a sampler name and --karras; returns the name. */
export function checkSampler(name: string, karras: boolean): string {
  checkSamplerName(name);
  try {
    createSampler(name, {}, { karras });
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  return name;
}

/** The option of each sampling setting in the eval commands. */
const SETTING_OPTION: Record<keyof SamplingSettings, string> = {
  eta: 'eta',
  guidanceScale: 'guidance',
  guidanceRescale: 'guidance-rescale',
  batchSize: 'batch',
  replicas: 'replicas',
};

/**
 * --eta, every --guidance scale and --guidance-rescale, checked before any work as `sumi sample`
 * checks them: η in [0, 1] and only when one of `samplers` has it, w in [0, 100], φ in [0, 1].
 */
export function checkSamplingOptions(
  args: Args,
  samplers: readonly string[],
  guidances: readonly number[],
): void {
  const eta = args.num('eta');
  // With a list of samplers, η is checked against the first that has it.
  const name =
    (eta !== undefined ? samplers.find((s) => takesStepParameter(s, 'eta')) : undefined) ??
    samplers[0]!;
  try {
    for (const guidanceScale of guidances) {
      checkSamplingSettings(name, {
        eta,
        guidanceScale,
        guidanceRescale: args.num('guidance-rescale') ?? 0,
        replicas: args.num('replicas'),
      });
    }
  } catch (e) {
    if (e instanceof SamplingOptionError) {
      throw new UsageError(`--${SETTING_OPTION[e.option]} ${e.problem}`);
    }
    throw e;
  }
}

export async function loadModelDir(args: Args): Promise<LoadedPipeline> {
  const dir = args.str('model');
  if (dir === undefined) throw new UsageError('--model <dir> is required');
  return loadPipeline(dir, { weights: weightsChoice(args) });
}

export async function loadEvalClassifier(args: Args): Promise<EvalClassifier> {
  const dir = args.str('classifier');
  if (dir === undefined) throw new UsageError('--classifier <dir> is required');
  return evalClassifier(await loadClassifier(dir));
}

/**
 * The evaluation classifier and the --model whose samples it judges (checked to fit it), after
 * selecting the backend.
 */
export async function loadJudgedModel(
  args: Args,
): Promise<{ c: EvalClassifier; p: LoadedPipeline }> {
  await selectBackend(args.str('backend'));
  const c = await loadEvalClassifier(args);
  const p = await loadModelDir(args);
  checkFits(c, p.model.sampleShape, "the model's samples");
  return { c, p };
}

/** The guiding classifier of --guide-classifier (null without it). */
export async function loadGuide(args: Args, scale: number): Promise<GuideSpec | null> {
  const dir = args.str('guide-classifier');
  if (dir === undefined) {
    if (args.has('classifier-scale')) {
      throw new UsageError('--classifier-scale needs --guide-classifier DIR');
    }
    return null;
  }
  return { loaded: await loadClassifier(dir), scale };
}

/** The data spec of the reference set: --data, else what the classifier (or model) trained on. */
export function dataSpec(args: Args, c: EvalClassifier | null, p: LoadedPipeline | null): string {
  const spec = args.str('data') ?? c?.training?.data ?? c?.info?.data ?? p?.info?.data;
  if (spec === undefined) {
    throw new EvalInputError('give --data: neither the classifier nor the model names its data');
  }
  return spec;
}

/** The conditions of n images from --class, --prompts-from-classes and the guide. */
export function conditionPlan(
  args: Args,
  p: LoadedPipeline,
  n: number,
  c: EvalClassifier | null,
  guide: GuideSpec | null,
  spec: string | null,
): ConditionPlan {
  const cls = args.str('class');
  return planConditions(p, {
    n,
    cls,
    referenceCounts:
      cls === 'reference' && c !== null ? referenceClassCounts(dataSpec(args, c, p), c) : null,
    promptsFromClasses: args.flag('prompts-from-classes') === true,
    dataset: spec ?? p.info?.data ?? null,
    guide:
      guide === null
        ? null
        : {
            numClasses: guide.loaded.classifier.numClasses,
            classNames: guide.loaded.info?.classNames,
          },
    evalClasses: c?.numClasses ?? null,
  });
}

/** The sampler `name` with the options' --karras, on the noise schedule of p. */
export function schedulerOf(
  args: Args,
  p: LoadedPipeline,
  name: string,
): SampleRequest['scheduler'] {
  return createSampler(name, p.schedulerConfig, { karras: args.flag('karras') === true });
}

/** The sampling request of the options (one sampler and one guidance scale). */
export function sampleRequest(
  args: Args,
  p: LoadedPipeline,
  plan: ConditionPlan,
  opts: {
    sampler: string;
    steps: number;
    guidance: number;
    guide: GuideSpec | null;
  },
): SampleRequest {
  const rescale = args.num('guidance-rescale') ?? 0;
  if (!(rescale >= 0 && rescale <= 1)) {
    throw new UsageError(`--guidance-rescale must be from 0 to 1, got ${rescale}`);
  }
  return {
    model: p.model,
    condition: p.condition,
    scheduler: schedulerOf(args, p, opts.sampler),
    predictionType: predictionTypeOf(p.schedulerConfig),
    values: plan.values,
    guide: opts.guide,
    guideLabels: plan.guideLabels,
    guidanceScale: opts.guidance,
    guidanceRescale: rescale,
    eta: args.num('eta'),
    numInferenceSteps: opts.steps,
    seed: args.num('seed') ?? 0,
    batchSize: positiveInt(args, 'batch', 64),
    replicas: args.num('replicas'),
  };
}

/**
 * The guide (--guide-classifier at --classifier-scale), the conditions and the checked sampling
 * request of n samples of p judged by c (`spec`: the data of the reference set).
 */
export async function planSampling(
  args: Args,
  p: LoadedPipeline,
  c: EvalClassifier,
  n: number,
  spec: string,
  opts: { sampler: string; steps: number; guidance: number },
): Promise<{ guide: GuideSpec | null; plan: ConditionPlan; request: SampleRequest }> {
  const guide = await loadGuide(args, args.num('classifier-scale') ?? 1);
  const plan = conditionPlan(args, p, n, c, guide, spec);
  checkEnoughSamples(n, c.numFeatures);
  const request = sampleRequest(args, p, plan, { ...opts, guide });
  checkSampleRequest(request);
  return { guide, plan, request };
}

/** The stats cache folder of --cache-dir / --no-cache (null: compute and write nothing). */
function statsCacheDir(args: Args): string | null {
  return args.flag('cache') === false ? null : (args.str('cache-dir') ?? defaultCacheDir());
}

/** The reference set under the cache options. */
export async function reference(
  args: Args,
  c: EvalClassifier,
  spec: string,
  progress: Progress,
): Promise<Reference> {
  const ref = await loadReference(c, spec, {
    cacheDir: statsCacheDir(args),
    onProgress: (done, total) => progress.update('reference features', done, total),
    onNote: (line) => progress.note(`note: ${line}`),
  });
  progress.clear();
  return ref;
}

/** The floor for n samples (held-out real images when there are some, else the halves). */
export async function floorFor(
  args: Args,
  c: EvalClassifier,
  ref: Reference,
  n: number,
  progress: Progress,
): Promise<Floor | null> {
  const floor = await sampleFloor(c, ref, n, {
    cacheDir: statsCacheDir(args),
    onProgress: (done, total) => progress.update('floor features', done, total),
    onNote: (line) => progress.note(`note: ${line}`),
  });
  progress.clear();
  return floor;
}

/** The reference set as the commands' --json output describes it. */
export function referenceJson(ref: Reference): Record<string, unknown> {
  return {
    data: ref.split.data,
    split: ref.split.kind,
    description: ref.split.description,
    images: ref.classes.n,
    seenByClassifier: ref.split.seenByClassifier,
    cache: ref.cache,
  };
}

/** Columns padded to their widest cell, two spaces apart. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** A number with `digits` significant digits (at least the integer part). */
export function sig(v: number, digits = 4): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 10 ** digits) return v.toFixed(0);
  if (v !== 0 && Math.abs(v) < 1e-4) return v.toExponential(digits - 1);
  return v.toPrecision(digits);
}

/** JSON of a value, with non-finite numbers as null. */
export function toJson(v: unknown): string {
  return JSON.stringify(
    v,
    (_k, x: unknown) => (typeof x === 'number' && !Number.isFinite(x) ? null : x),
    2,
  );
}
