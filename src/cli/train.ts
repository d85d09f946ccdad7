/** `sumi train`: trains a UNet2DModel on a dataset, with checkpoints that resume bit for bit. */
import {
  configDifferences,
  datasetShapeFor,
  defaultRunSettings,
  findCheckpoint,
  parseBetaSchedule,
  parsePredictionType,
  parseVarianceType,
  readTrainerState,
  resolveTrainConfig,
  type RunSettings,
  runTraining,
  type TrainConfig,
  type TrainConfigInput,
  Trainer,
  TRAIN_KEYS,
  resolveSchedulerName,
} from '../diffusion/index.js';
import { type Dataset, ImageFileDataset, loadDataset } from '../data/index.js';
import { type Args, CliError, type CommandSpec, type OptionSpec, UsageError } from './args.js';
import { BACKEND_HELP, defineCommand, EXIT, formatDuration, selectBackend } from './common.js';
import { loadConfigSource, loadPreset, presetNames } from './presets.js';
import { ProgressReporter } from './progress.js';

type Key = keyof TrainConfig | keyof RunSettings;

/** Options that set a TrainConfig / RunSettings key directly (0 means "off" for the nullable ones). */
const KEYED: readonly (OptionSpec & { key: Key; zeroIsNull?: boolean })[] = [
  {
    name: 'data',
    kind: 'string',
    arg: 'D',
    key: 'data',
    help: 'mnist, fashion-mnist, emoji, or a folder of PNG/JPEG images',
  },
  { name: 'steps', kind: 'int', key: 'steps', help: 'total optimizer steps', default: '1000' },
  { name: 'batch', kind: 'int', arg: 'B', key: 'batchSize', help: 'batch size', default: '64' },
  {
    name: 'lr',
    kind: 'number',
    arg: 'LR',
    key: 'lr',
    help: 'peak learning rate (AdamW)',
    default: '2e-4',
  },
  {
    name: 'seed',
    kind: 'int',
    arg: 'S',
    key: 'seed',
    help: 'seed of every random stream',
    default: '0',
  },
  {
    name: 'lr-schedule',
    kind: 'string',
    arg: 'NAME',
    key: 'lrSchedule',
    choices: ['cosine', 'constant', 'constant_with_warmup', 'linear'],
    help: 'learning-rate schedule: cosine, constant, constant_with_warmup, linear',
    default: 'cosine',
  },
  { name: 'warmup', kind: 'int', key: 'warmupSteps', help: 'linear warmup steps', default: '100' },
  {
    name: 'min-lr',
    kind: 'number',
    arg: 'LR',
    key: 'minLr',
    help: 'floor of the decay',
    default: '0',
  },
  {
    name: 'weight-decay',
    kind: 'number',
    arg: 'W',
    key: 'weightDecay',
    help: 'AdamW weight decay',
    default: '0',
  },
  {
    name: 'grad-clip',
    kind: 'number',
    arg: 'G',
    key: 'maxGradNorm',
    zeroIsNull: true,
    help: 'clip the global gradient norm at G (0: off)',
    default: '1',
  },
  {
    name: 'ema-decay',
    kind: 'number',
    arg: 'D',
    key: 'emaDecay',
    zeroIsNull: true,
    help: 'maximum EMA decay (0: no EMA)',
    default: '0.999',
  },
  {
    name: 'ema-warmup',
    kind: 'string',
    arg: 'W',
    key: 'emaWarmup',
    choices: ['power', 'ratio', 'none'],
    help: 'EMA decay warmup: power (diffusers), ratio, none',
    default: 'power',
  },
  {
    name: 'ema-power',
    kind: 'number',
    arg: 'P',
    key: 'emaPower',
    help: "power of the 'power' warmup",
    default: '0.75',
  },
  {
    name: 'snr-gamma',
    kind: 'number',
    arg: 'G',
    key: 'snrGamma',
    zeroIsNull: true,
    help: 'min-SNR-γ loss weighting (0: off; 5 is usual)',
    default: '0',
  },
  {
    name: 'class-cond',
    kind: 'flag',
    key: 'classCond',
    help: 'condition on the class labels (adds a null class for guidance)',
  },
  {
    name: 'text',
    kind: 'flag',
    key: 'textCond',
    help: "condition on the images' captions through a text encoder and cross-attention",
  },
  {
    name: 'max-tokens',
    kind: 'int',
    arg: 'N',
    key: 'maxTokens',
    help: 'tokens per caption, start and end included (text models)',
    default: '16',
  },
  {
    name: 'label-dropout',
    kind: 'number',
    arg: 'P',
    key: 'labelDropout',
    help: 'probability of training on the null condition (null class, empty caption)',
    default: '0.1',
  },
  { name: 'flip', kind: 'flag', key: 'flip', help: 'random horizontal flips' },
  {
    name: 'image-size',
    kind: 'int',
    arg: 'S',
    key: 'imageSize',
    help: "resize images to S×S (default: the model's sample_size)",
  },
  {
    name: 'channels',
    kind: 'int',
    arg: 'C',
    key: 'channels',
    help: "1 or 3 (default: the model's in_channels)",
  },
  {
    name: 'save-every',
    kind: 'int',
    key: 'saveEvery',
    help: 'checkpoint every N steps (0: only at the end)',
    default: '500',
  },
  {
    name: 'sample-every',
    kind: 'int',
    key: 'sampleEvery',
    help: 'sample grid every N steps (0: never)',
    default: '1000',
  },
  {
    name: 'sample-n',
    kind: 'int',
    key: 'sampleCount',
    help: 'images per sample grid',
    default: '16',
  },
  {
    name: 'sample-steps',
    kind: 'int',
    key: 'sampleSteps',
    help: 'sampler steps of the grids',
    default: '25',
  },
  {
    name: 'sample-sampler',
    kind: 'string',
    arg: 'NAME',
    key: 'sampler',
    help: 'sampler of the grids',
    default: 'ddim',
  },
  {
    name: 'log-every',
    kind: 'int',
    key: 'logEvery',
    help: 'metrics line every N steps',
    default: '50',
  },
];

const RUN_KEYS: readonly Key[] = [
  'saveEvery',
  'sampleEvery',
  'sampleCount',
  'sampleSteps',
  'sampler',
  'logEvery',
];

export const trainSpec: CommandSpec = {
  name: 'train',
  summary: 'Train a diffusion model (DDPM, Algorithm 1) with checkpoints that resume exactly.',
  usage:
    'sumi train --data <mnist|fashion-mnist|emoji|folder> (--preset <name> | --config <file>) --out <dir> [options]',
  options: [
    {
      name: 'preset',
      kind: 'string',
      arg: 'NAME',
      help: 'model and training defaults from presets/<NAME>.json',
    },
    {
      name: 'config',
      kind: 'string',
      arg: 'FILE',
      help: 'model and training defaults from a JSON file or folder',
    },
    {
      name: 'out',
      kind: 'string',
      arg: 'DIR',
      help: 'output: checkpoint/, metrics.jsonl, samples/',
    },
    { name: 'resume', kind: 'flag', help: 'continue the checkpoint in --out up to --steps' },
    {
      name: 'stop-at',
      kind: 'int',
      arg: 'K',
      help: "stop (with a checkpoint) after step K, keeping --steps' schedule",
    },
    { name: 'backend', kind: 'string', arg: 'B', help: BACKEND_HELP, default: 'cpu' },
    {
      name: 'prediction-type',
      kind: 'string',
      arg: 'P',
      help: 'what the model predicts: epsilon|eps, sample|x0, v|v_prediction',
      default: 'epsilon',
    },
    {
      name: 'schedule',
      kind: 'string',
      arg: 'S',
      help: 'beta schedule: linear, scaled_linear, cosine, sigmoid',
      default: 'linear',
    },
    {
      name: 'variance',
      kind: 'string',
      arg: 'V',
      help:
        "p_θ's variance: fixed_small (β̃_t), fixed_large (β_t), or learned_range (Σ_θ between " +
        'them, trained with L_simple + λ L_vlb; the model gets 2× the output channels). ' +
        "Default: the preset's, else fixed_small",
    },
    {
      name: 'train-timesteps',
      kind: 'int',
      arg: 'T',
      help: 'diffusion steps T of the training schedule',
      default: '1000',
    },
    ...KEYED,
    { name: 'quiet', kind: 'flag', help: 'no progress output' },
  ],
  notes: [
    'Precedence: built-in defaults < the preset/config\'s "train" section < options. With --resume\n' +
      'the settings come from the checkpoint; options that would change them are refused (except\n' +
      '--steps and the reporting options). Randomness depends only on (--seed, step), so N steps in\n' +
      'one go and N/2 then --resume give bit-identical weights on the same backend.',
    'Exit codes: 0 done, 1 error, 2 usage, 3 the loss became NaN/Inf (the last good checkpoint is\n' +
      'kept), 130 interrupted (Ctrl-C saves a checkpoint first).',
  ],
};

/** The TrainConfig / RunSettings values and scheduler settings the options set. */
function optionValues(args: Args): {
  train: Partial<Record<Key, unknown>>;
  scheduler: Record<string, unknown>;
} {
  const train: Partial<Record<Key, unknown>> = {};
  for (const o of KEYED) {
    if (!args.has(o.name)) continue;
    const v =
      o.kind === 'flag'
        ? args.flag(o.name)
        : o.kind === 'string'
          ? args.str(o.name)
          : args.num(o.name);
    train[o.key] = o.zeroIsNull === true && v === 0 ? null : v;
  }
  const scheduler: Record<string, unknown> = {};
  const pt = args.str('prediction-type');
  if (pt !== undefined) scheduler.prediction_type = parsePredictionType(pt);
  const bs = args.str('schedule');
  if (bs !== undefined) scheduler.beta_schedule = parseBetaSchedule(bs);
  const vt = args.str('variance');
  if (vt !== undefined) scheduler.variance_type = parseVarianceType(vt);
  const tt = args.num('train-timesteps');
  if (tt !== undefined) scheduler.num_train_timesteps = tt;
  return { train, scheduler };
}

function split(values: Partial<Record<Key, unknown>>): {
  config: Partial<TrainConfig>;
  run: Partial<RunSettings>;
} {
  const config: Record<string, unknown> = {};
  const run: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(values)) {
    if (!TRAIN_KEYS.includes(k as Key)) continue;
    ((RUN_KEYS as readonly string[]).includes(k) ? run : config)[k] = v;
  }
  return { config: config, run: run };
}

function loadData(spec: string, size: number | undefined, channels: 1 | 3 | undefined): Dataset {
  const ds = loadDataset(spec, { size, channels });
  if (ds instanceof ImageFileDataset) ds.preload(); // unreadable images fail now, not mid-run
  return ds;
}

/** The arguments that retrain from scratch: these minus run-control options, with --steps N. */
export function recordedArgs(argv: readonly string[], steps: number): string[] {
  const drop = new Set(['--resume', '--verbose', '--quiet', '--no-resume']);
  const dropWithValue = new Set(['--stop-at', '--backend', '--steps']);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = a.split('=')[0]!;
    if (drop.has(name)) continue;
    if (dropWithValue.has(name)) {
      if (!a.includes('=')) i++;
      continue;
    }
    out.push(a);
  }
  return [...out, '--steps', String(steps)];
}

async function train(args: Args, argv: readonly string[]): Promise<number> {
  const out = args.str('out');
  if (out === undefined) throw new UsageError('--out <dir> is required');
  const stopAt = args.num('stop-at');
  const sampler = args.str('sample-sampler');
  if (sampler !== undefined) resolveSchedulerName(sampler);
  const backend = await selectBackend(args.str('backend'));
  const given = optionValues(args);
  const { config: cfgFlags, run: runFlags } = split(given.train);
  const existing = await findCheckpoint(out);
  let trainer: Trainer;
  let run: RunSettings;
  let trainArgs: string[];
  const notes: string[] = [];

  if (existing !== null && args.flag('resume') !== true) {
    const st = await readTrainerState(existing);
    throw new UsageError(
      `${out} already holds a checkpoint (step ${st.step}); pass --resume to continue it or choose another --out`,
    );
  }
  if (existing !== null) {
    if (args.has('preset') || args.has('config')) {
      throw new UsageError(
        '--resume takes the model and settings from the checkpoint; drop --preset/--config',
      );
    }
    const state = await readTrainerState(existing);
    const stored = state.config;
    const wanted: Record<string, unknown> = { ...cfgFlags };
    delete wanted.steps;
    const problems = configDifferences(stored as unknown as Record<string, unknown>, wanted);
    for (const [k, v] of Object.entries(given.scheduler)) {
      if (JSON.stringify(stored.scheduler[k]) !== JSON.stringify(v)) {
        problems.push(
          `${k}: checkpoint has ${JSON.stringify(stored.scheduler[k])}, asked for ${JSON.stringify(v)}`,
        );
      }
    }
    if (problems.length > 0) {
      throw new UsageError(
        `--resume continues under the checkpoint's settings; these differ: ${problems.join('; ')}`,
      );
    }
    const steps = cfgFlags.steps ?? stored.steps;
    if (
      steps !== stored.steps &&
      stored.lrSchedule !== 'constant' &&
      stored.lrSchedule !== 'constant_with_warmup'
    ) {
      notes.push(
        `note: --steps changed from ${stored.steps} to ${steps}; the ${stored.lrSchedule} learning-rate schedule now spans ${steps} steps`,
      );
    }
    const config: TrainConfig = { ...stored, steps };
    const ds = loadData(config.data, config.imageSize, config.channels);
    if (ds.name !== state.data.name || ds.length !== state.data.length) {
      throw new CliError(
        `the checkpoint was trained on ${state.data.name} (${state.data.length} images); ${config.data} now gives ${ds.name} (${ds.length} images)`,
      );
    }
    trainer = new Trainer(config, ds);
    await trainer.loadCheckpoint(existing, state);
    run = { ...defaultRunSettings, ...state.run, ...runFlags };
    trainArgs =
      state.trainArgs !== undefined
        ? recordedArgs(state.trainArgs, steps)
        : recordedArgs(argv, steps);
    notes.push(`resuming ${existing} at step ${state.step} of ${steps}`);
  } else {
    if (args.flag('resume') === true) notes.push(`no checkpoint in ${out}; starting from step 0`);
    const preset = args.str('preset');
    const file = args.str('config');
    if (preset !== undefined && file !== undefined)
      throw new UsageError('give --preset or --config, not both');
    if (preset === undefined && file === undefined) {
      const names = presetNames();
      throw new UsageError(
        `--preset <name> or --config <file> is required${names.length > 0 ? ` (presets: ${names.join(', ')})` : ''}`,
      );
    }
    const source = preset !== undefined ? loadPreset(preset) : loadConfigSource(file!);
    const fromFile = split(source.train);
    const data = cfgFlags.data ?? fromFile.config.data;
    if (data === undefined) throw new UsageError('--data is required');
    const input: TrainConfigInput = {
      model: source.model,
      scheduler: { ...source.scheduler, ...given.scheduler },
      train: { ...fromFile.config, ...cfgFlags, data },
    };
    const shape = datasetShapeFor(input);
    const ds = loadData(data, shape.size, shape.channels);
    trainer = new Trainer(resolveTrainConfig(input, ds), ds);
    run = { ...defaultRunSettings, ...fromFile.run, ...runFlags };
    trainArgs = recordedArgs(argv, trainer.config.steps);
  }

  const cfg = trainer.config;
  if (stopAt !== undefined && (stopAt < 1 || stopAt > cfg.steps)) {
    throw new UsageError(`--stop-at must be in 1..${cfg.steps}`);
  }
  const quiet = args.flag('quiet') === true;
  const progress = new ProgressReporter({ every: run.logEvery });
  const say = (line: string): void => {
    if (!quiet) progress.message(line);
  };
  for (const n of notes) say(n);
  if (trainer.step >= (stopAt ?? cfg.steps)) {
    console.log(`${out}: already at step ${trainer.step} of ${stopAt ?? cfg.steps}; nothing to do`);
    return EXIT.ok;
  }
  say(
    `training ${trainer.numParameters().toLocaleString('en-US')} parameters on ${trainer.dataset.name} ` +
      `(${trainer.dataset.length} images, ${cfg.channels}x${cfg.imageSize}x${cfg.imageSize}) ` +
      `on ${backend.name}: batch ${cfg.batchSize}, lr ${cfg.lr}, ${String(cfg.scheduler.prediction_type)} prediction` +
      (trainer.varianceType === 'learned_range' ? ', learned variance (L_hybrid)' : ''),
  );

  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = (): void => {
    interrupts++;
    if (interrupts > 1) process.exit(EXIT.interrupted);
    say('interrupted: saving a checkpoint after this step (Ctrl-C again to quit now)');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  const t0 = performance.now();
  try {
    const result = await runTraining(trainer, {
      outDir: out,
      settings: run,
      stopAt,
      signal: controller.signal,
      trainArgs,
      onProgress: quiet ? undefined : (p) => progress.update(p, stopAt ?? cfg.steps),
      onCheckpoint: (c) => say(`checkpoint: step ${c.step} -> ${c.dir} (${c.seconds.toFixed(2)}s)`),
      onSample: (s) => say(`samples: step ${s.step} -> ${s.path}`),
    });
    progress.finish();
    const secs = (performance.now() - t0) / 1000;
    const loss = result.lastLoss === null ? '' : `, last loss ${result.lastLoss.toFixed(4)}`;
    console.log(
      `${result.reason === 'aborted' ? 'interrupted' : 'trained'} to step ${result.step}/${cfg.steps} in ${formatDuration(secs)}${loss}; ` +
        `checkpoint ${result.checkpoint ?? '(none)'}`,
    );
    if (result.reason === 'done')
      console.log(`sample it: sumi sample --model ${out} --out samples.png`);
    return result.reason === 'aborted' ? EXIT.interrupted : EXIT.ok;
  } finally {
    progress.finish();
    process.off('SIGINT', onSigint);
    trainer.dispose();
  }
}

export const trainCommand = defineCommand(trainSpec, (args) => train(args, args.parsed.argv));
