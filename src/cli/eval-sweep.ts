/**
 * `sumi eval sweep`: FD per (sampler, number of steps) as JSON, rewritten after every point, and
 * an SVG chart (src/eval/sweep.ts).
 */
import { existsSync, readFileSync } from 'node:fs';

import {
  isSingleClass,
  referenceOfClass,
  runSweep,
  sameSettings,
  type SweepPoint,
  type SweepResult,
  sweepSvg,
} from '../eval/index.js';
import { writeTextAtomic } from '../nn/models/index.js';
import { type Args, type CommandSpec, UsageError } from './args.js';
import { EXIT } from './common.js';
import {
  checkSampler,
  checkSamplingOptions,
  CLASSIFIER_OPTIONS,
  COMMON_TAIL,
  dataSpec,
  floorFor,
  loadJudgedModel,
  MODEL_OPTIONS,
  numberList,
  planSampling,
  positiveInt,
  reference,
  samplingOptions,
  schedulerOf,
  sig,
  table,
  toJson,
} from './eval-common.js';
import { Progress } from './progress.js';

export const sweepSpec: CommandSpec = {
  name: 'eval sweep',
  summary: 'FD per (sampler, number of steps), as JSON and an SVG chart.',
  usage:
    'sumi eval sweep --model <dir> --classifier <dir> --samplers ddim,dpmpp-2m --steps 5,10,20,50 [--n 1000] --out sweep.json --plot sweep.svg',
  options: [
    ...MODEL_OPTIONS,
    ...CLASSIFIER_OPTIONS,
    {
      name: 'samplers',
      kind: 'string',
      arg: 'S,..',
      help: 'samplers to compare',
      default: 'ddim,dpmpp-2m,euler,unipc',
    },
    { name: 'steps', kind: 'string', arg: 'K,..', help: 'step counts', default: '5,10,20,50,100' },
    { name: 'n', kind: 'int', help: 'samples per point', default: '1000' },
    ...samplingOptions(),
    {
      name: 'out',
      kind: 'string',
      arg: 'FILE',
      help: 'the results (JSON, rewritten after every point; a rerun with the same settings continues)',
      default: 'sweep.json',
    },
    { name: 'plot', kind: 'string', arg: 'FILE', help: 'the chart (SVG)' },
    ...COMMON_TAIL,
  ],
};

export async function sweepCommand(args: Args): Promise<number> {
  const json = args.flag('json') === true;
  const progress = new Progress(args.flag('quiet') === true);
  const karras = args.flag('karras') === true;
  const samplers = (args.str('samplers') ?? 'ddim,dpmpp-2m,euler,unipc')
    .split(',')
    .map((s) => checkSampler(s.trim(), karras));
  const stepList = numberList(args.str('steps') ?? '5,10,20,50,100', 'steps', true);
  if (stepList.some((s) => s < 1)) throw new UsageError('--steps must all be at least 1');
  const n = positiveInt(args, 'n', 1000);
  const out = args.str('out') ?? 'sweep.json';
  const plot = args.str('plot');
  if (!out.endsWith('.json')) throw new UsageError(`--out must name a .json file, got '${out}'`);
  if (plot !== undefined && !plot.endsWith('.svg')) {
    throw new UsageError(`--plot must name a .svg file, got '${plot}'`);
  }
  const guidance = args.num('guidance') ?? 1;
  checkSamplingOptions(args, samplers, [guidance]);
  const { c, p } = await loadJudgedModel(args);
  const spec = dataSpec(args, c, p);
  const { guide, plan, request } = await planSampling(args, p, c, n, spec, {
    sampler: samplers[0]!,
    steps: 1,
    guidance,
  });
  let ref = await reference(args, c, spec, progress);
  if (isSingleClass(args.str('class')))
    ref = referenceOfClass(ref, plan.requested![0]!, c.numFeatures);
  const floor = await floorFor(args, c, ref, n, progress);
  const settings = {
    model: p.layout.root,
    weights: p.weights,
    classifier: c.root,
    classifierHash: c.hash,
    reference: ref.split.description,
    n,
    seed: request.seed,
    batchSize: request.batchSize,
    conditions: plan.description,
    guidance,
    guideScale: guide?.scale ?? null,
    karras,
  };
  let done: SweepPoint[] = [];
  if (existsSync(out)) {
    try {
      const old = JSON.parse(readFileSync(out, 'utf8')) as SweepResult;
      if (old.format === 'sumi-sweep' && sameSettings(old.settings, settings)) {
        done = old.points.filter((q) => samplers.includes(q.sampler) && stepList.includes(q.steps));
        if (done.length > 0)
          progress.note(`${out}: continuing; ${done.length} points are measured`);
      }
    } catch {
      // Not a sweep of ours: it is replaced.
    }
  }
  const result: SweepResult = {
    format: 'sumi-sweep',
    version: 1,
    settings,
    floor: floor?.distance ?? null,
    points: [...done],
  };
  const save = async (): Promise<void> => {
    await writeTextAtomic(out, `${toJson(result)}\n`);
    if (plot !== undefined && result.points.length > 0)
      await writeTextAtomic(plot, sweepSvg(result));
  };
  await runSweep({
    samplers,
    steps: stepList,
    makeScheduler: (name) => schedulerOf(args, p, name),
    request,
    classifier: c,
    reference: ref,
    requested: plan.requested,
    done,
    onPoint: async (q) => {
      result.points.push(q);
      await save();
    },
    onProgress: (what, i, total) => progress.update(what, i, total),
  });
  result.points.sort(
    (a, b) => samplers.indexOf(a.sampler) - samplers.indexOf(b.sampler) || a.steps - b.steps,
  );
  await save();
  progress.clear();
  if (json) {
    console.log(toJson(result));
    return EXIT.ok;
  }
  console.log(
    `${p.layout.root}: FD of ${n} samples against ${ref.split.description}` +
      (floor !== null ? `; floor ${sig(floor.distance)}` : ''),
  );
  const cell = (s: string, k: number): string => {
    const q = result.points.find((x) => x.sampler === s && x.steps === k);
    return q === undefined ? '-' : sig(q.fd);
  };
  console.log(
    table([
      ['sampler', ...stepList.map((k) => `${k} steps`)],
      ...samplers.map((s) => [s, ...stepList.map((k) => cell(s, k))]),
    ]),
  );
  console.log(`${out}${plot !== undefined ? `, ${plot}` : ''}`);
  return EXIT.ok;
}
