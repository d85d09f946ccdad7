/** `sumi eval nll`: bits/dim of the variational bound on real images (src/eval/metrics/nll.ts). */
import { classCaptionDataset, classPrompt, SPLIT_DATASETS } from '../data/index.js';
import type { ConditionValue, ModelVarType } from '../diffusion/index.js';
import { EvalInputError, loadDataFor, modelNll, spreadIndices } from '../eval/index.js';
import type { Args, CommandSpec } from './args.js';
import { EXIT, formatDuration, SEED_OPTION, selectBackend } from './common.js';
import {
  COMMON_TAIL,
  loadModelDir,
  MODEL_OPTIONS,
  positiveInt,
  sig,
  table,
  toJson,
} from './eval-common.js';
import { Progress } from './progress.js';

/** How p_θ(x_{t−1} | x_t)'s variance was taken, by scheduler `variance_type`. */
const VARIANCE_TEXT: Record<ModelVarType, string> = {
  fixed_small: 'fixed, β̃_t (fixed_small)',
  fixed_large: 'fixed, β_t (fixed_large)',
  learned: "the model's σ² (learned)",
  learned_range: "the model's Σ_θ between β̃_t and β_t (learned_range)",
};

export const nllSpec: CommandSpec = {
  name: 'eval nll',
  summary: 'Bits/dim of the variational bound on real images, with its standard error.',
  usage: 'sumi eval nll --model <dir> --data D [--n 1000] [--stride K] [options]',
  options: [
    ...MODEL_OPTIONS,
    {
      name: 'data',
      kind: 'string',
      arg: 'D',
      help: "mnist, mnist-full or fashion-mnist (their test splits) or a folder (default: the model's data)",
    },
    { name: 'n', kind: 'int', help: 'images, spread evenly over the dataset', default: '1000' },
    {
      name: 'stride',
      kind: 'int',
      arg: 'K',
      help: '1: all T terms (the bound); K > 1: one timestep per stratum of K (an unbiased estimate)',
      default: '1',
    },
    { name: 'batch', kind: 'int', arg: 'B', help: 'images per batch', default: '50' },
    SEED_OPTION,
    {
      name: 'null-condition',
      kind: 'flag',
      help: "condition on ∅ instead of each image's class or class prompt",
    },
    ...COMMON_TAIL,
  ],
  notes: [
    "Class-conditional models are conditioned on each image's true class, text models on its class\n" +
      'prompt (mnist, mnist-full, fashion-mnist), unless --null-condition.',
    "p_θ's variance follows the model's scheduler config (variance_type): β̃_t, β_t, or the\n" +
      "model's own Σ_θ for a learned_range model (sumi train --variance learned_range).",
  ],
};

export async function nllCommand(args: Args): Promise<number> {
  const json = args.flag('json') === true;
  const progress = new Progress(args.flag('quiet') === true);
  const n = positiveInt(args, 'n', 1000);
  const stride = positiveInt(args, 'stride', 1);
  const batch = positiveInt(args, 'batch', 50);
  await selectBackend(args.str('backend'));
  const p = await loadModelDir(args);
  const spec = args.str('data') ?? p.info?.data;
  if (spec === undefined) throw new EvalInputError('give --data: the model does not name its data');
  const trainedOn = p.info?.data ?? null;
  const ds = loadDataFor(
    spec,
    p.model.sampleShape,
    trainedOn,
    'the model',
    SPLIT_DATASETS.includes(spec) ? { split: 'test' } : {},
  );
  const indices = spreadIndices(ds.length, n);
  const useNull = args.flag('null-condition') === true;
  const kind = p.condition.kind;
  let values: ConditionValue[];
  if (kind === 'none') values = indices.map(() => null);
  else if (useNull) values = indices.map(() => null);
  else {
    if (ds.numClasses === undefined) {
      throw new EvalInputError(`${spec} has no classes to condition on; add --null-condition`);
    }
    const labels = indices.map((i) => ds.get(i).label!);
    if (kind === 'class') values = labels;
    else {
      const pd = classCaptionDataset(spec);
      if (pd === null)
        throw new EvalInputError(`no class prompts for ${spec}; add --null-condition`);
      values = labels.map((y) => classPrompt(pd, y));
    }
  }
  const t0 = performance.now();
  const r = await modelNll({
    model: p.model,
    condition: p.condition,
    schedulerConfig: p.schedulerConfig,
    dataset: ds,
    indices,
    values,
    batchSize: batch,
    stride,
    seed: args.num('seed') ?? 0,
    onProgress: (done, total) => progress.update('bits/dim', done, total),
  });
  progress.clear();
  const seconds = (performance.now() - t0) / 1000;
  const seen = trainedOn === spec && !SPLIT_DATASETS.includes(spec);
  const dataNote = `${ds.name}: ${indices.length} of ${ds.length} images spread evenly${seen ? ' (the model trained on them)' : ''}`;
  const conditioning =
    kind === 'none'
      ? 'none'
      : useNull
        ? 'null condition'
        : kind === 'class'
          ? 'true class'
          : 'class prompt';
  if (json) {
    console.log(
      toJson({
        format: 'sumi-eval',
        version: 1,
        command: 'nll',
        model: { path: p.layout.root, weights: p.weights },
        data: { spec, name: ds.name, images: indices.length, of: ds.length, seenByModel: seen },
        conditioning,
        bitsPerDim: r.bitsPerDim,
        standardError: r.standardError,
        estimator: r.estimator,
        stride: r.stride,
        modelCallsPerImage: r.modelCallsPerImage,
        terms: { prior: r.prior, kl: r.kl, decoder: r.decoder },
        varianceType: r.varianceType,
        clipDenoised: r.clipDenoised,
        seconds,
      }),
    );
    return EXIT.ok;
  }
  console.log(
    table([
      [
        'model',
        `${p.layout.root} (${p.weights === 'ema' ? 'EMA' : 'model'} weights), conditioned on: ${conditioning}`,
      ],
      ['data', dataNote],
      [
        'estimator',
        r.estimator === 'exact'
          ? `the bound: all ${r.modelCallsPerImage} terms per image`
          : `stratified, stride ${r.stride}: ${r.modelCallsPerImage} model calls per image (an unbiased estimate of the bound)`,
      ],
      ['variance', VARIANCE_TEXT[r.varianceType]],
      [
        'bits/dim',
        `${r.bitsPerDim.toFixed(4)} ± ${sig(r.standardError, 2)} (standard error over images)`,
      ],
      ['terms', `prior ${sig(r.prior)}, KL ${sig(r.kl)}, decoder ${sig(r.decoder)} bits/dim`],
      ['time', formatDuration(seconds)],
    ]),
  );
  return EXIT.ok;
}
