/**
 * `sumi train-classifier`: trains the classifier of classifier guidance (noise-aware, on x_t of
 * a diffusion model's schedule) or of the evaluation metrics (clean images), with checkpoints
 * that resume bit for bit and a held-out accuracy.
 */
import { join } from 'node:path';

import type { Dataset } from '../data/index.js';
import {
  type ClassifierConfigInput,
  type ClassifierRunSettings,
  type ClassifierTrainConfig,
  ClassifierTrainer,
  type ClassifierTrainerState,
  checkSameImages,
  defaultClassifierRunSettings,
  defaultClassifierTrainConfig,
  exportClassifier,
  type HeldOutResult,
  readClassifierTrainerState,
  resolveClassifierConfig,
  resolveModelDir,
  runClassifierTraining,
} from '../diffusion/index.js';
import { type Args, type CommandSpec, UsageError } from './args.js';
import { defineCommand, dtypeChoice, dtypeOption, message, selectBackend } from './common.js';
import {
  asUsage,
  channelsOption,
  exportFolder,
  IMAGE_OPTIONS,
  type KeyedOption,
  keyedValues,
  loadData,
  readJsonOption,
  RESUME_NOTE,
  RUN_CONTROL_OPTIONS,
  splitRunValues,
  trainOptions,
  withoutOptions,
} from './train-options.js';
import { planRun, runTrainCommand } from './train-command.js';

type Key = keyof ClassifierTrainConfig | keyof ClassifierRunSettings;

/** Options that do not change how the classifier is trained (left out of the recorded command). */
const EXPORT_OPTIONS = ['--export', '--export-dtype'];

const DEFAULTS = { ...defaultClassifierTrainConfig, ...defaultClassifierRunSettings };

const KEYED: readonly KeyedOption<Key>[] = [
  ...trainOptions<Key>(
    ['steps', 'batch', 'lr', 'lr-schedule', 'warmup', 'min-lr', 'weight-decay', 'grad-clip'],
    DEFAULTS,
  ),
  {
    name: 'label-smoothing',
    kind: 'number',
    arg: 'L',
    key: 'labelSmoothing',
    help: 'label smoothing λ of the cross-entropy',
    default: '0',
  },
  {
    name: 'shift',
    kind: 'int',
    arg: 'PX',
    key: 'shift',
    help: 'random translations of up to PX pixels (augmentation)',
    default: '0',
  },
  {
    name: 'rotate',
    kind: 'number',
    arg: 'DEG',
    key: 'rotate',
    help: 'random rotations about the centre by up to ±DEG degrees, 0..180 (augmentation, bilinear)',
    default: '0',
  },
  {
    name: 'zoom',
    kind: 'number',
    arg: 'Z',
    key: 'zoom',
    help: 'random scaling about the centre by a factor in [1 − Z, 1 + Z], Z < 1 (augmentation)',
    default: '0',
  },
  ...trainOptions<Key>(['flip'], DEFAULTS),
  {
    name: 'holdout',
    kind: 'number',
    arg: 'F',
    key: 'holdout',
    help: 'keep a fraction F of every class out of training and report its accuracy',
    default: '0',
  },
  ...trainOptions<Key>(['seed', 'save-every', 'eval-every', 'log-every'], DEFAULTS, {
    'eval-every': 'held-out accuracy every N steps (0: only at the end)',
  }),
];

export const trainClassifierSpec: CommandSpec = {
  name: 'train-classifier',
  summary: 'Train an image classifier p(y | x_t, t) for classifier guidance or evaluation.',
  usage:
    'sumi train-classifier --data <dataset> --out <dir> [--noise-aware | --clean] [--schedule-from <model>] [options]',
  options: [
    {
      name: 'data',
      kind: 'string',
      arg: 'D',
      help: 'mnist, mnist-full, fashion-mnist, or a folder of labelled images',
    },
    {
      name: 'out',
      kind: 'string',
      arg: 'DIR',
      help: 'output: checkpoint/ (classifier/, sumi.json, ...), metrics.jsonl',
    },
    {
      name: 'noise-aware',
      kind: 'flag',
      help: 'train on noisy x_t, t ~ U{0..T-1} (for guidance; the default)',
    },
    { name: 'clean', kind: 'flag', help: 'train on clean images (t = 0), for evaluation' },
    {
      name: 'schedule-from',
      kind: 'string',
      arg: 'MODEL',
      help: "a diffusion model folder: its noise schedule, image size and channels (default: DDPMScheduler's schedule)",
    },
    {
      name: 'config',
      kind: 'string',
      arg: 'FILE',
      help: 'EncoderClassifierModel config keys (JSON) over the built-in small classifier',
    },
    {
      name: 'widths',
      kind: 'string',
      arg: 'C,..',
      help: 'channels of the levels (block_out_channels; default 32,64,64)',
    },
    ...IMAGE_OPTIONS,
    {
      name: 'eval-t',
      kind: 'string',
      arg: 'T,..',
      help: 'timesteps of the held-out accuracy (default 0,T/4,T/2,3T/4; clean: 0)',
    },
    ...KEYED,
    {
      name: 'export',
      kind: 'string',
      arg: 'DIR',
      help: 'when done, write a sample-ready copy to DIR',
    },
    dtypeOption('export-dtype', 'storage of the exported weights'),
    ...RUN_CONTROL_OPTIONS,
  ],
  notes: [
    'Guidance loads <out>/checkpoint (or an --export folder): classifier/ (config.json + weights),\n' +
      'scheduler/ (noise-aware) and sumi.json (classes, image size, held-out accuracy, the command).',
    RESUME_NOTE,
  ],
};

function optionValues(args: Args): Partial<Record<Key, unknown>> {
  const out = keyedValues(KEYED, args);
  const evalT = args.str('eval-t');
  if (evalT !== undefined) {
    const ts = evalT.split(',').map((s) => Number(s.trim()));
    if (ts.some((t) => !Number.isInteger(t) || t < 0)) {
      throw new UsageError(`--eval-t expects comma-separated timesteps, got '${evalT}'`);
    }
    out.evalTimesteps = ts;
  }
  const clean = args.flag('clean') === true;
  if (clean && args.flag('noise-aware') === true) {
    throw new UsageError('give --noise-aware or --clean, not both');
  }
  if (args.has('clean') || args.has('noise-aware'))
    out.noiseAware = !clean && args.flag('noise-aware') !== false;
  return out;
}

/** The schedule, image size and channels of a diffusion model folder. */
async function scheduleFrom(dir: string): Promise<{
  scheduler: Record<string, unknown>;
  size?: number;
  channels?: 1 | 3;
  note: string | null;
}> {
  const layout = await resolveModelDir(dir).catch((e: unknown) => {
    throw new UsageError(`--schedule-from: ${message(e)}`);
  });
  const unet = readJsonOption(join(layout.unetDir, 'config.json'), '--schedule-from');
  const size = typeof unet.sample_size === 'number' ? unet.sample_size : undefined;
  const ch = unet.in_channels === 1 || unet.in_channels === 3 ? unet.in_channels : undefined;
  if (layout.schedulerConfigPath === null) {
    return {
      scheduler: {},
      size,
      channels: ch,
      note: `note: ${dir} has no scheduler config; using DDPMScheduler's defaults`,
    };
  }
  return {
    scheduler: readJsonOption(layout.schedulerConfigPath, '--schedule-from'),
    size,
    channels: ch,
    note: null,
  };
}

function formatHeldOut(r: HeldOutResult): string {
  const scores = r.scores.map((s) => `t=${s.t} ${(100 * s.accuracy).toFixed(2)}%`).join(', ');
  return `held-out accuracy (${r.count} images, step ${r.step}): ${scores}`;
}

/** The config and dataset that --data, --config, --schedule-from and the other options ask for. */
async function configFromOptions(
  args: Args,
  flags: Record<string, unknown>,
  noiseAware: boolean,
  notes: string[],
): Promise<{ config: ClassifierTrainConfig; data: Dataset }> {
  const data = args.str('data');
  if (data === undefined) throw new UsageError('--data is required');
  const from = args.str('schedule-from');
  if (from !== undefined && !noiseAware) {
    throw new UsageError(
      '--schedule-from gives the noise schedule of noise-aware training; drop it with --clean',
    );
  }
  const sched = from === undefined ? null : await scheduleFrom(from);
  if (sched?.note) notes.push(sched.note);
  const channels = channelsOption(args, sched?.channels);
  const cfgPath = args.str('config');
  const model = cfgPath === undefined ? {} : readJsonOption(cfgPath, '--config');
  const widths = args.str('widths');
  if (widths !== undefined) {
    const ch = widths.split(',').map((w) => Number(w.trim()));
    if (ch.some((c) => !Number.isInteger(c) || c < 1)) {
      throw new UsageError(`--widths expects comma-separated channel counts, got '${widths}'`);
    }
    model.block_out_channels = ch;
  }
  const input: ClassifierConfigInput = {
    model,
    scheduler: sched?.scheduler ?? {},
    train: { ...(flags as Partial<ClassifierTrainConfig>), data, noiseAware },
  };
  const dataset = loadData(data, args.num('image-size') ?? sched?.size, channels);
  return { config: asUsage(() => resolveClassifierConfig(input, dataset)), data: dataset };
}

async function trainClassifier(args: Args, argv: readonly string[]): Promise<number> {
  const out = args.str('out');
  if (out === undefined) throw new UsageError('--out <dir> is required');
  const exportDir = exportFolder(args);
  const given = optionValues(args);
  const { config: flags, run: runFlags } = splitRunValues(given);
  const noiseAware = given.noiseAware !== false;
  const plan = await planRun<
    ClassifierTrainConfig,
    ClassifierRunSettings,
    ClassifierTrainerState,
    Dataset
  >({
    args,
    out,
    argv: withoutOptions(argv, EXPORT_OPTIONS),
    readState: readClassifierTrainerState,
    given: flags,
    run: runFlags,
    defaultRun: defaultClassifierRunSettings,
    fresh: (notes) => configFromOptions(args, flags, noiseAware, notes),
    asked: () => (args.has('data') ? configFromOptions(args, flags, noiseAware, []) : null),
    modelOptions: ['config', 'widths', 'schedule-from', 'image-size', 'channels'],
  });
  const { config, resumed } = plan;
  const dataset = plan.data ?? loadData(config.data, config.imageSize, config.channels);
  if (resumed !== null) checkSameImages(resumed.state.data, config.data, dataset);

  const backend = await selectBackend(args.str('backend'));
  const trainer = asUsage(() => new ClassifierTrainer(config, dataset));
  return runTrainCommand({
    args,
    out,
    command: 'train-classifier',
    plan,
    trainer,
    describe: () =>
      `training a ${config.noiseAware ? 'noise-aware' : 'clean'} classifier of ` +
      `${trainer.model.numParameters().toLocaleString('en-US')} parameters on ${dataset.name} ` +
      `(${trainer.trainSet.length} images for training, ${trainer.heldOutSet?.length ?? 0} held out, ` +
      `${config.numClasses} classes, ${config.channels}x${config.imageSize}x${config.imageSize}) on ` +
      `${backend.name}: batch ${config.batchSize}, lr ${config.lr}`,
    train: (opts, say) =>
      runClassifierTraining(trainer, { ...opts, onEval: (r) => say(formatHeldOut(r)) }),
    after:
      exportDir === undefined
        ? undefined
        : async () => {
            const dtype = dtypeChoice(args, 'export-dtype');
            await exportClassifier(out, exportDir, { dtype });
            console.log(`${exportDir}: the classifier of ${out} (${dtype} weights)`);
          },
  });
}

export const trainClassifierCommand = defineCommand(trainClassifierSpec, (args) =>
  trainClassifier(args, args.parsed.argv),
);
