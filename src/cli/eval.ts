/**
 * `sumi eval`: how good a model is. Subcommands:
 *   fd     FD, KID, precision/recall, class entropy and conditional accuracy of samples (or of a
 *          folder of PNGs) against the real reference set, with the floor of real vs real;
 *   cond   conditional accuracy per guidance scale (classifier-free or classifier guidance), with
 *          --fd also FD, KID and precision/recall per scale (the guidance trade-off) and a chart;
 *   nll    bits/dim of the variational bound on real images;
 *   sweep  FD per (sampler, steps), as JSON and an SVG chart;
 *   classifier  an evaluation classifier's accuracy on its reference set.
 * The equations and the reference set are in src/eval (evaluate.ts, reference.ts) and
 * docs/quality.md.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

import type { LoadedPipeline } from '../diffusion/index.js';
import {
  accuracyReport,
  checkEmptyOrAbsent,
  checkEnoughSamples,
  checkFits,
  checkSampleRequest,
  classDistribution,
  type ConditionPlan,
  type GuideSpec,
  type SampleRequest,
  EvalInputError,
  FeatureCollector,
  type FdScores,
  type Floor,
  guidanceSvg,
  isSingleClass,
  readSampleFolder,
  readSampleImages,
  type Reference,
  referenceOfClass,
  type SampleFolder,
  SampleFolderWriter,
  sampleBatches,
  type SampleRunInfo,
  SCORE_DEFAULTS,
  scoreSamples,
} from '../eval/index.js';
import { tensor } from '../engine/index.js';
import { writeTextAtomic } from '../nn/models/index.js';
import { type Args, type CommandSpec, UsageError } from './args.js';
import { commandGroup, defineCommand, EXIT, formatDuration, selectBackend } from './common.js';
import {
  asInputErrors,
  checkSampler,
  checkSamplingOptions,
  CLASSIFIER_OPTIONS,
  COMMON_TAIL,
  conditionPlan,
  dataSpec,
  floorFor,
  loadEvalClassifier,
  loadGuide,
  loadJudgedModel,
  loadModelDir,
  MODEL_OPTIONS,
  numberList,
  planSampling,
  positiveInt,
  reference,
  referenceJson,
  sampleRequest,
  samplingOptions,
  sig,
  table,
  toJson,
} from './eval-common.js';
import { Progress } from './progress.js';
import { classifierCommand, classifierSpec } from './eval-classifier.js';
import { nllCommand, nllSpec } from './eval-nll.js';
import { reconCommand, reconSpec } from './eval-recon.js';
import { sweepCommand, sweepSpec } from './eval-sweep.js';
import type { Command } from './main.js';

// ---- fd ---------------------------------------------------------------------------------------

const fdSpec: CommandSpec = {
  name: 'eval fd',
  summary:
    'FD, KID, precision/recall, class entropy and conditional accuracy of samples against real images.',
  usage:
    'sumi eval fd --model <dir> --classifier <dir> [--data D] [--n 10000] [--sampler S --steps K] [options]',
  options: [
    ...MODEL_OPTIONS,
    ...CLASSIFIER_OPTIONS,
    { name: 'n', kind: 'int', help: 'number of samples', default: '10000' },
    ...samplingOptions({ sampler: true }),
    {
      name: 'samples',
      kind: 'string',
      arg: 'DIR',
      help: 'score a folder of PNGs (labels.json gives their classes) instead of sampling',
    },
    {
      name: 'save-samples',
      kind: 'string',
      arg: 'DIR',
      help: 'also write the samples as PNGs + labels.json into DIR (new or empty)',
    },
    {
      name: 'kid-subsets',
      kind: 'int',
      help: 'KID: random subsets',
      default: String(SCORE_DEFAULTS.kidSubsets),
    },
    {
      name: 'kid-subset-size',
      kind: 'int',
      help: 'KID: rows of each set per subset',
      default: String(SCORE_DEFAULTS.kidSubsetSize),
    },
    ...COMMON_TAIL,
  ],
  notes: [
    'The reference set is the real images the classifier did not train on: the test split of\n' +
      'mnist-full and fashion-mnist, else the held-out split of its training (--holdout). Its\n' +
      'features are cached. The floor is FD of n real images the classifier held out of the train\n' +
      'split against it, or (without those) FD between two halves of it; those real images get\n' +
      "precision and recall too, to read the samples' against. See docs/quality.md.",
  ],
};

async function scoreFolder(
  folder: SampleFolder,
  collector: FeatureCollector,
  batch: number,
  progress: Progress,
): Promise<void> {
  const [c, h, w] = folder.shape;
  progress.update('scoring samples', 0, folder.files.length);
  for (let start = 0; start < folder.files.length; start += batch) {
    const count = Math.min(batch, folder.files.length - start);
    const x = tensor(await readSampleImages(folder, start, count), [count, c, h, w]);
    try {
      collector.add(x, `the images of ${folder.dir}`);
    } finally {
      x.dispose();
    }
    progress.update('scoring samples', start + count, folder.files.length);
  }
}

async function fdCommand(args: Args): Promise<number> {
  const json = args.flag('json') === true;
  const progress = new Progress(args.flag('quiet') === true);
  const samplesDir = args.str('samples');
  const saveDir = args.str('save-samples');
  if (samplesDir !== undefined && saveDir !== undefined) {
    throw new UsageError('--samples scores existing images; --save-samples is for sampling');
  }
  const n = positiveInt(args, 'n', 10000);
  const steps = positiveInt(args, 'steps', 20);
  const sampler = checkSampler(args.str('sampler') ?? 'dpmpp-2m', args.flag('karras') === true);
  const kidSubsets = positiveInt(args, 'kid-subsets', SCORE_DEFAULTS.kidSubsets);
  const kidSubsetSize = positiveInt(args, 'kid-subset-size', SCORE_DEFAULTS.kidSubsetSize);
  const guidance = args.num('guidance') ?? 1;
  checkSamplingOptions(args, [sampler], [guidance]);
  await selectBackend(args.str('backend'));
  const t0 = performance.now();

  const c = await loadEvalClassifier(args);
  const p = samplesDir === undefined || args.has('model') ? await loadModelDir(args) : null;
  const spec = dataSpec(args, c, p);
  const cls = args.str('class');
  let source: FdSource;
  if (samplesDir !== undefined) {
    const folder = await readSampleFolder(samplesDir, c.shape);
    checkEnoughSamples(folder.files.length, c.numFeatures);
    if (p !== null) checkFits(c, p.model.sampleShape, "the model's samples");
    const bad = folder.requested?.find((y) => y >= c.numClasses);
    if (bad !== undefined) {
      throw new EvalInputError(
        `${samplesDir}: class ${bad} in labels.json; the classifier has ${c.numClasses}`,
      );
    }
    source = { kind: 'folder', folder };
  } else {
    if (p === null) throw new UsageError('--model <dir> is required');
    checkFits(c, p.model.sampleShape, "the model's samples");
    const { guide, plan, request } = await planSampling(args, p, c, n, spec, {
      sampler,
      steps,
      guidance,
    });
    if (saveDir !== undefined) await checkEmptyOrAbsent(saveDir);
    source = { kind: 'sampling', p, plan, request, guide };
  }
  const plan = source.kind === 'sampling' ? source.plan : null;
  const single = isSingleClass(cls) ? (plan?.requested?.[0] ?? Number(cls)) : null;
  if (single !== null && !(Number.isInteger(single) && single >= 0 && single < c.numClasses)) {
    throw new EvalInputError(
      `--class ${cls}: not one of the classifier's classes 0..${c.numClasses - 1}`,
    );
  }

  let ref = await reference(args, c, spec, progress);
  const refAccuracy =
    ref.labels === null ? null : accuracyReport(ref.classes.predicted, ref.labels, c.numClasses);
  if (single !== null) ref = referenceOfClass(ref, single, c.numFeatures);
  const floor = await floorFor(
    args,
    c,
    ref,
    source.kind === 'folder' ? source.folder.files.length : n,
    progress,
  );

  const collector = new FeatureCollector(c);
  let requested: number[] | null;
  let info: SampleRunInfo | null = null;
  if (source.kind === 'folder') {
    await scoreFolder(source.folder, collector, positiveInt(args, 'batch', 64), progress);
    requested = source.folder.requested;
  } else {
    info = await sampleAndSave(
      source,
      collector,
      saveDir ?? null,
      { sampler, steps, guidance },
      progress,
    );
    requested = source.plan.requested;
  }
  progress.clear();
  const gen = collector.finish();
  const scores = scoreSamples(gen, ref, requested, c.numClasses, {
    kidSubsets,
    kidSubsetSize,
    seed: 0,
  });
  const request = source.kind === 'sampling' ? source.request : null;
  const guide = source.kind === 'sampling' ? source.guide : null;
  const folder = source.kind === 'folder' ? source.folder : null;
  const result = {
    format: 'sumi-eval',
    version: 1,
    command: 'fd',
    model:
      p === null
        ? null
        : {
            path: p.layout.root,
            weights: p.weights,
            step: p.info?.step ?? null,
            conditioning: p.condition.kind,
          },
    sampling:
      request === null || info === null
        ? null
        : {
            sampler,
            steps,
            karras: args.flag('karras') === true,
            eta: request.eta ?? 0,
            guidance,
            guidanceRescale: request.guidanceRescale ?? 0,
            guideClassifier: guide?.loaded.root ?? null,
            classifierScale: guide?.scale ?? null,
            conditions: plan?.description ?? null,
            n,
            seed: request.seed,
            batchSize: request.batchSize,
            modelCallsPerImage: info.modelCallsPerImage,
            seconds: info.seconds,
            savedTo: saveDir ?? null,
          },
    samples: folder === null ? null : { dir: folder.dir, count: folder.files.length },
    classifier: {
      path: c.root,
      hash: c.hash,
      features: c.numFeatures,
      classes: c.numClasses,
      referenceAccuracy: refAccuracy?.accuracy ?? null,
    },
    reference: referenceJson(ref),
    floor,
    metrics: scores,
    seconds: (performance.now() - t0) / 1000,
  };
  if (json) {
    console.log(toJson(result));
    return EXIT.ok;
  }
  const head: string[][] = [];
  if (p !== null) {
    const step = p.info?.step !== undefined ? `, step ${p.info.step}` : '';
    head.push([
      'model',
      `${p.layout.root} (${p.weights === 'ema' ? 'EMA' : 'model'} weights${step})`,
    ]);
  }
  if (request !== null && info !== null) {
    head.push([
      'sampling',
      `${sampler} ${steps} steps${args.flag('karras') === true ? ' (Karras)' : ''}, guidance ${guidance}` +
        (guide !== null ? `, classifier guidance ${guide.scale}` : '') +
        `, ${n} images, seed ${request.seed}, ${plan?.description ?? ''}; ${formatDuration(info.seconds)}`,
    ]);
  }
  if (folder !== null) head.push(['samples', `${folder.dir} (${folder.files.length} images)`]);
  head.push([
    'classifier',
    `${c.root} (${c.numFeatures} features, ${c.numClasses} classes` +
      (refAccuracy !== null
        ? `, ${(100 * refAccuracy.accuracy).toFixed(2)}% right on the reference`
        : '') +
      ')',
  ]);
  head.push([
    'reference',
    `${ref.split.description}${ref.cache.source === 'cache' ? '; features from the cache' : ''}`,
  ]);
  console.log(table(head));
  console.log();
  console.log(table(fdRows(scores, floor, ref.classes.n)));
  if (scores.conditional !== null) {
    const per = scores.conditional.perClass.map(
      (a, k) => `${k}:${a === null ? '-' : a.toFixed(3)}`,
    );
    console.log(`per class: ${per.join(' ')}`);
  }
  return EXIT.ok;
}

type FdSource =
  | { kind: 'folder'; folder: SampleFolder }
  | {
      kind: 'sampling';
      p: LoadedPipeline;
      plan: ConditionPlan;
      request: SampleRequest;
      guide: GuideSpec | null;
    };

/** Samples, classifies each batch and, with a folder, writes it there. */
async function sampleAndSave(
  source: Extract<FdSource, { kind: 'sampling' }>,
  collector: FeatureCollector,
  saveDir: string | null,
  what: { sampler: string; steps: number; guidance: number },
  progress: Progress,
): Promise<SampleRunInfo> {
  const { p, plan, request, guide } = source;
  const writer = saveDir === null ? null : await SampleFolderWriter.create(saveDir);
  const info = await sampleBatches(
    request,
    async (b) => {
      collector.add(b.x, "the model's samples");
      if (writer !== null) {
        const end = b.start + b.shape[0];
        await writer.add(
          b.values,
          b.shape,
          plan.values.slice(b.start, end),
          plan.requested?.slice(b.start, end) ?? null,
        );
      }
    },
    (done, total) => progress.update('sampling', done, total),
  );
  await writer?.finish(request.seed, {
    model: p.layout.root,
    weights: p.weights,
    ...what,
    ...(guide !== null ? { guideClassifier: guide.loaded.root, classifierScale: guide.scale } : {}),
  });
  return info;
}

function fdRows(s: FdScores, floor: Floor | null, refN: number): string[][] {
  const rows: string[][] = [
    ['metric', 'value', ''],
    ['FD', sig(s.fd), `${s.samples} samples vs ${refN} reference images, ${s.featureDim} features`],
    floor === null
      ? ['FD floor', 'n/a', 'halves of the reference have too few images for the features']
      : [
          'FD floor',
          sig(floor.distance),
          floor.kind === 'held-out'
            ? `${floor.nA} held-out real images vs the ${floor.nB} reference images`
            : `reference half vs half (${floor.nA} vs ${floor.nB} images)`,
        ],
    [
      'KID',
      `${sig(s.kid.value)} ± ${sig(s.kid.std, 2)}`,
      `mean ± std over ${s.kid.subsets} subsets of ${s.kid.subsetSize}`,
    ],
    [
      `precision (k=${s.k})`,
      s.precision.toFixed(4),
      `${s.prRows} samples vs ${s.prRows} reference images` +
        (floor === null ? '' : `; the floor's real images: ${floor.precision.toFixed(4)}`),
    ],
    [
      `recall (k=${s.k})`,
      s.recall.toFixed(4),
      floor === null ? '' : `the floor's real images: ${floor.recall.toFixed(4)}`,
    ],
    [
      'class entropy',
      `${s.classes.entropyBits.toFixed(3)} bits`,
      `uniform ${s.classes.maxBits.toFixed(3)}; reference ${s.classes.referenceEntropyBits.toFixed(3)}`,
    ],
  ];
  if (s.conditional !== null) {
    rows.push([
      'conditional accuracy',
      `${s.conditional.accuracy.toFixed(4)} ± ${s.conditional.standardError.toFixed(4)}`,
      `${s.conditional.correct}/${s.conditional.n} classified as asked (± binomial standard error)`,
    ]);
  }
  return rows;
}

// ---- cond -------------------------------------------------------------------------------------

const condSpec: CommandSpec = {
  name: 'eval cond',
  summary: 'Conditional accuracy (and with --fd FD, KID, precision/recall) per guidance scale.',
  usage:
    'sumi eval cond --model <dir> --classifier <dir> --guidance 1,2,3,5 [--n 1000] [--fd [--plot F]]\n' +
    '       sumi eval cond --model <dir> --classifier <dir> --guide-classifier <dir> --classifier-scale 1,2,4',
  options: [
    ...MODEL_OPTIONS,
    ...CLASSIFIER_OPTIONS.map((o) =>
      o.name === 'data'
        ? {
            ...o,
            help: 'the data of --prompts-from-classes (mnist, mnist-full, fashion-mnist) and of the --fd reference set',
          }
        : o,
    ),
    { name: 'n', kind: 'int', help: 'samples per scale', default: '1000' },
    {
      name: 'fd',
      kind: 'flag',
      help: 'also FD, KID and precision/recall against the reference set per scale, with the floor',
    },
    {
      name: 'plot',
      kind: 'string',
      arg: 'FILE',
      help: 'with --fd: an SVG chart of FD over the guidance scale, the floor dashed',
    },
    ...samplingOptions({ sampler: true, lists: true }),
    ...COMMON_TAIL,
  ],
  notes: [
    'Accuracy p̂ = correct / n with its binomial standard error √(p̂(1−p̂)/n), overall and per class;\n' +
      'the images ask for the classes in turn unless --class K. Every scale uses the same noise.\n' +
      'With --fd, each scale is also scored like `sumi eval fd` (same reference set, floor and\n' +
      'seed): the trade-off of guidance, sharper and more often right but less diverse.',
  ],
};

async function condCommand(args: Args): Promise<number> {
  const json = args.flag('json') === true;
  const progress = new Progress(args.flag('quiet') === true);
  const n = positiveInt(args, 'n', 1000);
  const steps = positiveInt(args, 'steps', 20);
  const sampler = checkSampler(args.str('sampler') ?? 'dpmpp-2m', args.flag('karras') === true);
  const ws = numberList(args.str('guidance') ?? '1', 'guidance');
  const ss = numberList(args.str('classifier-scale') ?? '1', 'classifier-scale');
  checkSamplingOptions(args, [sampler], ws);
  const { c, p } = await loadJudgedModel(args);
  const guide = await loadGuide(args, ss[0]!);
  const plan = conditionPlan(args, p, n, c, guide, args.str('data') ?? null);
  if (plan.requested === null) {
    throw new EvalInputError(
      'the model is unconditional: give --guide-classifier DIR for classifier guidance',
    );
  }
  const withFd = args.flag('fd') === true;
  const plotFile = args.str('plot');
  if (plotFile !== undefined && !withFd) throw new UsageError('--plot draws FD: add --fd');
  if (plotFile !== undefined && !plotFile.endsWith('.svg')) {
    throw new UsageError(`--plot must name a .svg file, got '${plotFile}'`);
  }
  if (withFd) checkEnoughSamples(n, c.numFeatures);
  const combos: [number, number | null][] = ws.flatMap((w) =>
    guide === null ? [[w, null]] : ss.map((s): [number, number | null] => [w, s]),
  );
  const requestAt = (w: number, s: number | null): SampleRequest =>
    sampleRequest(args, p, plan, {
      sampler,
      steps,
      guidance: w,
      guide: guide === null || s === null ? null : { ...guide, scale: s },
    });
  // Every scale's request is checked before the first is sampled.
  for (const [w, s] of combos) checkSampleRequest(requestAt(w, s));
  let ref: Reference | null = null;
  let floor: Floor | null = null;
  if (withFd) {
    ref = await reference(args, c, dataSpec(args, c, p), progress);
    if (isSingleClass(args.str('class')))
      ref = referenceOfClass(ref, plan.requested[0]!, c.numFeatures);
    floor = await floorFor(args, c, ref, n, progress);
  }
  // The chart's folder exists before the first sample, so that no result is lost at the end.
  if (plotFile !== undefined) await mkdir(dirname(plotFile), { recursive: true });
  const rows = [];
  for (const [w, s] of combos) {
    const req = requestAt(w, s);
    const collector = new FeatureCollector(c);
    const label = `guidance ${w}${s === null ? '' : `, classifier scale ${s}`}`;
    const info = await sampleBatches(
      req,
      (b) => collector.add(b.x, "the model's samples"),
      (done, total) => progress.update(label, done, total),
    );
    const gen = collector.finish();
    const scores = ref === null ? null : scoreSamples(gen, ref, null, c.numClasses, { seed: 0 });
    rows.push({
      guidance: w,
      classifierScale: s,
      ...accuracyReport(gen.predicted, plan.requested, c.numClasses),
      entropyBits: classDistribution(gen.predicted, c.numClasses).entropyBits,
      distribution:
        scores === null
          ? null
          : {
              fd: scores.fd,
              fdMeanTerm: scores.fdMeanTerm,
              fdTraceTerm: scores.fdTraceTerm,
              kid: scores.kid,
              precision: scores.precision,
              recall: scores.recall,
            },
      seconds: info.seconds,
    });
  }
  if (plotFile !== undefined) {
    await writeTextAtomic(
      plotFile,
      guidanceSvg(
        rows.map((r) => ({
          guidance: r.guidance,
          classifierScale: r.classifierScale,
          fd: r.distribution!.fd,
        })),
        { floor: floor?.distance ?? null, n, model: p.layout.root },
      ),
    );
  }
  progress.clear();
  if (json) {
    console.log(
      toJson({
        format: 'sumi-eval',
        version: 1,
        command: 'cond',
        model: { path: p.layout.root, weights: p.weights, conditioning: p.condition.kind },
        classifier: { path: c.root, hash: c.hash, classes: c.numClasses },
        guideClassifier: guide?.loaded.root ?? null,
        sampling: { sampler, steps, n, seed: args.num('seed') ?? 0, conditions: plan.description },
        reference: ref === null ? null : referenceJson(ref),
        floor,
        results: rows,
      }),
    );
    return EXIT.ok;
  }
  console.log(
    `${p.layout.root}: ${sampler} ${steps} steps, ${n} images per scale, ${plan.description}; judged by ${c.root}`,
  );
  const k = c.numClasses;
  console.log(
    table([
      [
        'guidance',
        ...(guide !== null ? ['classifier scale'] : []),
        'accuracy ± s.e.',
        'entropy',
        ...(withFd ? ['FD', 'precision', 'recall'] : []),
        ...Array.from({ length: k }, (_, i) => `c${i}`),
      ],
      ...rows.map((r) => [
        String(r.guidance),
        ...(guide !== null ? [String(r.classifierScale)] : []),
        `${r.accuracy.toFixed(4)} ± ${r.standardError.toFixed(4)}`,
        `${r.entropyBits.toFixed(3)}`,
        ...(r.distribution === null
          ? []
          : [
              sig(r.distribution.fd),
              r.distribution.precision.toFixed(3),
              r.distribution.recall.toFixed(3),
            ]),
        ...r.perClass.map((a) => (a === null ? '-' : a.toFixed(2))),
      ]),
    ]),
  );
  if (floor !== null) {
    console.log(
      `FD floor (${floor.kind}): ${sig(floor.distance)}; its real images' precision ` +
        `${floor.precision.toFixed(3)}, recall ${floor.recall.toFixed(3)}`,
    );
  }
  return EXIT.ok;
}

// ---- the command ------------------------------------------------------------------------------

const subcommands: Record<string, Command> = {
  fd: defineCommand(fdSpec, (a) => asInputErrors(() => fdCommand(a))),
  cond: defineCommand(condSpec, (a) => asInputErrors(() => condCommand(a))),
  nll: defineCommand(nllSpec, (a) => asInputErrors(() => nllCommand(a))),
  sweep: defineCommand(sweepSpec, (a) => asInputErrors(() => sweepCommand(a))),
  recon: defineCommand(reconSpec, (a) => asInputErrors(() => reconCommand(a))),
  classifier: defineCommand(classifierSpec, (a) => asInputErrors(() => classifierCommand(a))),
};

export const evalCommand: Command = commandGroup({
  name: 'eval',
  summary: 'Measure a model: FD/KID/precision/recall, conditional accuracy, bits/dim, sweeps.',
  intro: 'How good a model is (docs/quality.md):',
  subcommands,
});
