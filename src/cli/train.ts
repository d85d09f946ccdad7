/**
 * `sumi train`: trains a UNet2DModel on a dataset, with checkpoints that resume bit for bit; with
 * --lora-rank and --base, LoRA adapters on a frozen base model; with --init, from a model's weights.
 */
import { copyFile, mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';

import { DEFAULT_LORA_TARGETS, LORA_WEIGHTS_NAME } from '../nn/index.js';
import {
  CONTROL_KINDS,
  type ControlKind,
  CONTROLNET_DIR,
  checkTrainValues,
  DEFAULT_INPAINT_SETTINGS,
  defaultRunSettings,
  defaultTrainConfig,
  parseBetaSchedule,
  parsePredictionType,
  parseVarianceType,
  type RunSettings,
  runTraining,
  type SettingDifference,
  setUpTraining,
  type TrainConfig,
  TrainConfigError,
  type TrainConfigSource,
  TrainRequestError,
  type TrainSetup,
  resolveModelDir,
  resolveSchedulerName,
  type Trainer,
} from '../diffusion/index.js';
import { WEIGHTS_NAME, writeTextAtomic } from '../nn/models/index.js';
import { type Args, type CommandSpec, UsageError } from './args.js';
import {
  BACKEND_OPTION,
  defineCommand,
  EXIT,
  formatDuration,
  selectBackend,
  withTasks,
} from './common.js';
import { loadConfigSource, loadPreset, presetNames } from './presets.js';
import { Progress, ProgressReporter } from './progress.js';
import { trainForecastCommand } from './train-forecast.js';
import { trainTextCommand } from './train-text.js';
import { stepsChangedNote } from './train-command.js';
import { DREAMBOOTH_OPTIONS, dreamboothInputError, dreamboothOptions } from './train-dreambooth.js';
import { INIT_NOTE, INIT_OPTION, initInputError, initOption } from './train-init.js';
import {
  interruptOnSigint,
  type KeyedOption,
  keyedValue,
  QUIET_OPTION,
  recordedArgs,
  recordedCommand,
  RESUME_OPTION,
  STOP_AT_OPTION,
  trainOptions,
} from './train-options.js';

type Key = keyof TrainConfig | keyof RunSettings;

const DEFAULTS = { ...defaultTrainConfig, ...defaultRunSettings };

/** Options that set a TrainConfig / RunSettings key directly (0 means "off" for the nullable ones). */
const KEYED: readonly KeyedOption<Key>[] = [
  {
    name: 'data',
    kind: 'string',
    arg: 'D',
    key: 'data',
    help: 'mnist, mnist-full, fashion-mnist, emoji, or a folder of PNG/JPEG images',
  },
  ...trainOptions<Key>(
    [
      'steps',
      'batch',
      'lr',
      'seed',
      'lr-schedule',
      'warmup',
      'min-lr',
      'weight-decay',
      'grad-clip',
    ],
    DEFAULTS,
  ),
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
    name: 'micro-batches',
    kind: 'int',
    arg: 'M',
    key: 'microBatches',
    help:
      'split each batch into M parts whose gradients add up in order; on the CPU they run on ' +
      'M cores at once (replicas in worker threads), with the same weights as on one',
    default: '2 on the CPU, 1 on a GPU',
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
  ...trainOptions<Key>(['flip'], DEFAULTS),
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
  ...trainOptions<Key>(['save-every'], DEFAULTS),
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
  ...trainOptions<Key>(['log-every'], DEFAULTS),
];

export const trainSpec: CommandSpec = {
  name: 'train',
  summary: 'Train a diffusion model (DDPM, Algorithm 1) with checkpoints that resume exactly.',
  usage:
    'sumi train --data <mnist|mnist-full|fashion-mnist|emoji|folder> (--preset <name> | --config <file> | --init <dir>) --out <dir> [options]',
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
    INIT_OPTION,
    {
      name: 'out',
      kind: 'string',
      arg: 'DIR',
      help: 'output: checkpoint/, metrics.jsonl, samples/',
    },
    RESUME_OPTION,
    STOP_AT_OPTION,
    BACKEND_OPTION,
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
      name: 'rescale-zero-snr',
      kind: 'flag',
      help:
        'rescale β to zero terminal SNR (Lin et al. 2024; diffusers rescale_betas_zero_snr): ᾱ_T = 0, ' +
        'so x_T is pure noise as at sampling; needs --prediction-type v or sample',
    },
    {
      name: 'train-timesteps',
      kind: 'int',
      arg: 'T',
      help: 'diffusion steps T of the training schedule',
      default: '1000',
    },
    {
      name: 'task',
      kind: 'string',
      arg: 'T',
      choices: ['generate', 'upscale', 'inpaint'],
      help:
        'generate (images from noise), upscale (SR3: the image from its low resolution, ' +
        'bicubic-upsampled and joined to x_t; sample with sumi edit upscale), or inpaint (the ' +
        'image from its masked copy and a random rectangle or brush mask, joined to x_t; sample ' +
        'with sumi edit inpaint)',
      default: 'generate',
    },
    {
      name: 'factor',
      kind: 'int',
      arg: 'F',
      help: 'upscale: the low resolution is the mean of each F×F block (2 or 4)',
      default: '2',
    },
    {
      name: 'noise-aug',
      kind: 'number',
      arg: 'σ',
      help:
        'upscale: the low-resolution condition is √(1 − σ²)·bicubic + σ·ε in training and ' +
        'sampling (Gaussian conditioning augmentation; 0: none)',
      default: '0',
    },
    ...KEYED,
    {
      name: 'base',
      kind: 'string',
      arg: 'DIR',
      help: "the model a LoRA, ControlNet or DreamBooth run adapts; its config is the run's model config",
    },
    {
      name: 'controlnet',
      kind: 'flag',
      help: 'train a ControlNet on --base (its encoder copied, the base frozen), conditioned on --control',
    },
    {
      name: 'control',
      kind: 'string',
      arg: 'KIND',
      choices: CONTROL_KINDS,
      help:
        "ControlNet: the condition image computed from each image ('edges': its Sobel edge map; " +
        "'canny': its Canny edge map, 1 px wide; 'mask': its foreground mask); kept in the run's config",
      default: 'edges',
    },
    {
      name: 'control-channels',
      kind: 'string',
      arg: 'LIST',
      help:
        "ControlNet: the condition embedding's block widths; each after the first halves the " +
        'size, so the condition image is the sample size × 2^(blocks − 1)',
      default: '16',
    },
    {
      name: 'lora-rank',
      kind: 'int',
      arg: 'R',
      help: 'train LoRA adapters of rank R on --base instead of every weight',
    },
    { name: 'lora-alpha', kind: 'number', arg: 'A', help: 'LoRA α (scale α/R)', default: 'R' },
    {
      name: 'lora-targets',
      kind: 'string',
      arg: 'NAMES',
      help: 'comma-separated module names to adapt (a path or its last components)',
      default: DEFAULT_LORA_TARGETS.join(','),
    },
    ...DREAMBOOTH_OPTIONS,
    {
      name: 'vae',
      kind: 'string',
      arg: 'DIR',
      help:
        'latent diffusion: train the denoiser on the latents of this autoencoder (a diffusers ' +
        "AutoencoderKL or VQModel folder with scaling_factor, as 'sumi train-vae' writes); the " +
        "U-Net's in_channels must be its latent channels",
    },
    {
      name: 'latent-cache',
      kind: 'string',
      arg: 'FILE',
      help:
        'latent runs: where the encoded images are kept (a stale cache there is refused, not ' +
        'overwritten)',
      default: '<out>/latents.safetensors',
    },
    QUIET_OPTION,
  ],
  notes: [
    'Precedence: built-in defaults < the preset/config\'s "train" section < options. With --resume\n' +
      'the settings come from the checkpoint: the training command can be rerun as it was with\n' +
      '--resume added; options (or a preset/config) that would change a setting are refused, each\n' +
      'named with both values (except --steps and the reporting options). Randomness depends only\n' +
      'on (--seed, step), so N steps in one go and N/2 then --resume give bit-identical weights on\n' +
      'the same backend.',
    'LoRA: --lora-rank R --base DIR trains only adapters on the attention projections (or\n' +
      "--lora-targets) of the base model's denoiser: no gradients and no optimizer state for its\n" +
      'weights; the micro-batches run on this thread, as the worker replicas carry no adapters.\n' +
      "Each checkpoint also writes --out/pytorch_lora_weights.safetensors (diffusers' LoRA file)\n" +
      'and --out/lora_config.json. See docs/adapters.md.',
    'ControlNet: --controlnet --base DIR --control edges|canny|mask trains a ControlNet copied from\n' +
      "the base model's encoder on those condition images of the data (Sobel or Canny edge maps,\n" +
      'foreground masks), the base frozen; each checkpoint also writes --out/controlnet/\n' +
      "(diffusers' ControlNet folder: config.json and the EMA weights when the run keeps an EMA).\n" +
      'See docs/adapters.md.',
    'DreamBooth: --dreambooth --base DIR --instance-data DIR --instance-prompt "a sks digit"\n' +
      '--class-prompt "a digit" fine-tunes a text-to-image model on a few images of a subject: each\n' +
      'step trains on B instance images with the instance prompt and B class images, sampled from\n' +
      'the base with the class prompt first and kept in --out/class_images.safetensors, with\n' +
      'L = L_instance + λ L_prior. Every denoiser weight trains, or LoRA adapters with --lora-rank;\n' +
      'the text encoder stays frozen; --batch defaults to 4 instance images. See docs/adapters.md.',
    'Latent diffusion: --vae DIR encodes the images once into a latent cache (posterior mean and\n' +
      'log-variance of an AutoencoderKL, or the unquantized latents of a VQModel; re-encoded when\n' +
      'the data or the vae changed) and trains the U-Net on scaling_factor · (z − shift_factor),\n' +
      'z drawn afresh every step. The checkpoint is a pipeline folder with vae/; sumi sample decodes\n' +
      'through it. See docs/latent.md.',
    INIT_NOTE,
    'Exit codes: 0 done, 1 error, 2 usage, 3 the loss became NaN/Inf (the last good checkpoint is\n' +
      'kept), 130 interrupted (Ctrl-C saves a checkpoint first).',
  ],
};

/** The scheduler config keys the options set, and the option of each. */
const SCHEDULER_OPTIONS: Readonly<Record<string, string>> = {
  prediction_type: 'prediction-type',
  beta_schedule: 'schedule',
  variance_type: 'variance',
  num_train_timesteps: 'train-timesteps',
  rescale_betas_zero_snr: 'rescale-zero-snr',
};

/** A library spelling error (an unknown schedule name, say) as a usage error. */
function spelled<T>(option: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof TrainConfigError) throw new UsageError(`--${option}: ${e.message}`);
    throw e;
  }
}

/**
 * The settings of --task inpaint (undefined for any other task: checkpoints from before the task
 * lack the key, and a resumed run compares what is given with what was saved).
 */
function inpaintOptions(args: Args): TrainConfig['inpaint'] | undefined {
  return args.str('task') === 'inpaint' ? DEFAULT_INPAINT_SETTINGS : undefined;
}

/** The SR3 settings of --task upscale, --factor and --noise-aug (undefined: not given). */
function upscaleOptions(args: Args): TrainConfig['upscale'] | undefined {
  const task = args.str('task');
  const upscaling = task === 'upscale';
  for (const o of ['factor', 'noise-aug']) {
    if (args.has(o) && !upscaling) throw new UsageError(`--${o} is a setting of --task upscale`);
  }
  if (task === undefined) return undefined;
  if (!upscaling) return null;
  const factor = args.num('factor') ?? 2;
  const noiseAugmentation = args.num('noise-aug') ?? 0;
  if (factor !== 2 && factor !== 4) throw new UsageError(`--factor must be 2 or 4, got ${factor}`);
  if (!(noiseAugmentation >= 0 && noiseAugmentation < 1)) {
    throw new UsageError(`--noise-aug must be in [0, 1), got ${noiseAugmentation}`);
  }
  return { factor, noiseAugmentation };
}

/** The TrainConfig / RunSettings values and scheduler settings the options set, checked. */
function optionValues(args: Args): {
  train: Partial<TrainConfig & RunSettings>;
  scheduler: Record<string, unknown>;
} {
  const train: Partial<Record<Key, unknown>> = {};
  for (const o of KEYED) {
    if (!args.has(o.name)) continue;
    const v = keyedValue(o, args);
    try {
      checkTrainValues({ [o.key]: v }, `--${o.name}`);
    } catch (e) {
      if (e instanceof TrainConfigError) throw new UsageError(e.message);
      throw e;
    }
    train[o.key] = v;
  }
  const sampler = args.str('sample-sampler');
  if (sampler !== undefined) {
    try {
      resolveSchedulerName(sampler);
    } catch (e) {
      throw new UsageError(`--sample-sampler: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const scheduler: Record<string, unknown> = {};
  const pt = args.str('prediction-type');
  if (pt !== undefined) {
    scheduler.prediction_type = spelled('prediction-type', () => parsePredictionType(pt));
  }
  const bs = args.str('schedule');
  if (bs !== undefined) scheduler.beta_schedule = spelled('schedule', () => parseBetaSchedule(bs));
  const vt = args.str('variance');
  if (vt !== undefined) scheduler.variance_type = spelled('variance', () => parseVarianceType(vt));
  const tt = args.num('train-timesteps');
  if (tt !== undefined) {
    if (tt < 2) throw new UsageError(`--train-timesteps must be at least 2, got ${tt}`);
    scheduler.num_train_timesteps = tt;
  }
  const zeroSnr = args.flag('rescale-zero-snr');
  if (zeroSnr !== undefined) scheduler.rescale_betas_zero_snr = zeroSnr;
  const upscale = upscaleOptions(args);
  if (upscale !== undefined) train.upscale = upscale;
  const inpaint = inpaintOptions(args);
  if (inpaint !== undefined) train.inpaint = inpaint;
  return { train: train as Partial<TrainConfig & RunSettings>, scheduler };
}

/** A setting that differs from the checkpoint's: the option (or source key) that gave it, both values. */
function differenceLine(d: SettingDifference, sourceLabel: string | null): string {
  if (d.key === 'init') {
    const was = d.checkpoint as { dir: string } | null;
    return was === null
      ? `--init: the checkpoint's run did not start from a model's weights`
      : `--init: the checkpoint's run started from ${was.dir}; ${(d.given as { dir: string }).dir} holds other weights`;
  }
  if (d.key === 'latent') return `--vae: the checkpoint is a pixel model, given ${String(d.given)}`;
  if (d.key === 'latent.vae') {
    return `--vae: the checkpoint trains on the latents of ${String(d.checkpoint)}; ${String(d.given)} holds other weights`;
  }
  const option =
    d.from === 'setting'
      ? d.key.startsWith('scheduler.')
        ? SCHEDULER_OPTIONS[d.key.slice('scheduler.'.length)]
        : KEYED.find((o) => o.key === d.key)?.name
      : undefined;
  const shown = (v: unknown): string => {
    const spec = KEYED.find((o) => o.key === d.key);
    return JSON.stringify(v === null && spec?.zeroIsNull === true ? 0 : v) ?? 'nothing';
  };
  const where =
    option !== undefined ? `--${option}` : `${d.key} (${sourceLabel ?? 'the given settings'})`;
  return `${where}: checkpoint ${shown(d.checkpoint)}, given ${shown(d.given)}`;
}

/** The LoRA settings of --lora-rank, --lora-alpha, --lora-targets and --base (null: none). */
function loraOptions(args: Args): TrainConfig['lora'] {
  const rank = args.num('lora-rank');
  const base = args.str('base');
  const alpha = args.num('lora-alpha');
  const targets = args.str('lora-targets');
  if (rank === undefined) {
    if (
      base !== undefined &&
      args.flag('controlnet') !== true &&
      args.flag('dreambooth') !== true
    ) {
      throw new UsageError('--base fine-tunes through LoRA adapters: give --lora-rank too');
    }
    if (alpha !== undefined || targets !== undefined) {
      throw new UsageError(
        `--${alpha !== undefined ? 'lora-alpha' : 'lora-targets'} needs --lora-rank`,
      );
    }
    return null;
  }
  if (base === undefined) throw new UsageError('--lora-rank needs --base <model dir>');
  if (rank < 1) throw new UsageError(`--lora-rank must be at least 1, got ${rank}`);
  if (alpha !== undefined && !(alpha > 0)) {
    throw new UsageError(`--lora-alpha must be positive, got ${alpha}`);
  }
  const names = (targets ?? DEFAULT_LORA_TARGETS.join(','))
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  if (names.length === 0) throw new UsageError('--lora-targets names no module');
  return { base, rank, alpha: alpha ?? rank, targets: names };
}

/** The ControlNet settings of --controlnet, --control, --control-channels and --base (null: none). */
function controlnetOptions(args: Args): TrainConfig['controlnet'] {
  const base = args.str('base');
  const control = args.str('control');
  const channels = args.str('control-channels');
  if (args.flag('controlnet') !== true) {
    if (control !== undefined || channels !== undefined) {
      throw new UsageError(
        `--${control !== undefined ? 'control' : 'control-channels'} needs --controlnet`,
      );
    }
    return null;
  }
  if (args.num('lora-rank') !== undefined) {
    throw new UsageError('--controlnet and --lora-rank train different things: give one');
  }
  if (base === undefined) throw new UsageError('--controlnet needs --base <model dir>');
  const widths = (channels ?? '16').split(',').map((s) => Number(s.trim()));
  if (widths.length === 0 || widths.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new UsageError(`--control-channels: '${channels}' is not a list of positive integers`);
  }
  return {
    base,
    control: (control ?? 'edges') as ControlKind,
    conditioningEmbeddingOutChannels: widths,
  };
}

/** The config source named by --preset or --config (null when neither is given). */
async function configSource(
  args: Args,
  lora: { base: string } | null | undefined,
): Promise<{ label: string; config: TrainConfigSource } | null> {
  const preset = args.str('preset');
  const file = args.str('config');
  if (preset !== undefined && file !== undefined) {
    throw new UsageError('give --preset or --config, not both');
  }
  if (lora && preset === undefined && file === undefined) {
    // The base model's own folder: its denoiser config, scheduler config and text encoder.
    const root = (await resolveModelDir(lora.base)).root;
    return { label: `base model ${lora.base}`, config: loadConfigSource(root) };
  }
  if (preset !== undefined) return { label: `preset ${preset}`, config: loadPreset(preset) };
  if (file !== undefined) return { label: file, config: loadConfigSource(file) };
  return null;
}

/** The library's reasons for refusing a request, in the options' words. */
function requestError(e: TrainRequestError, out: string, sourceLabel: string | null): UsageError {
  switch (e.problem) {
    case 'checkpoint-exists':
      return new UsageError(
        `${out} already holds a checkpoint (step ${e.checkpointStep}); pass --resume to continue it or choose another --out`,
      );
    case 'no-source': {
      const names = presetNames();
      return new UsageError(
        `--preset <name> or --config <file> is required${names.length > 0 ? ` (presets: ${names.join(', ')})` : ''}, or --init <dir> to start from a model`,
      );
    }
    case 'no-data':
      return new UsageError('--data is required');
    case 'differs':
      return new UsageError(
        `--resume continues under the checkpoint's settings; these differ: ` +
          e.differences.map((d) => differenceLine(d, sourceLabel)).join('; '),
      );
    default:
      return new UsageError(String(e.problem satisfies never));
  }
}

async function train(args: Args, argv: readonly string[]): Promise<number> {
  const out = args.str('out');
  if (out === undefined) throw new UsageError('--out <dir> is required');
  const stopAt = args.num('stop-at');
  const given = optionValues(args);
  const init = initOption(args);
  const lora = loraOptions(args);
  if (lora) given.train.lora = lora;
  const controlnet = controlnetOptions(args);
  if (controlnet) given.train.controlnet = controlnet;
  const dreambooth = dreamboothOptions(args);
  if (dreambooth) {
    given.train.dreambooth = dreambooth;
    given.train.data = args.str('instance-data')!;
    given.train.textCond = true;
  }
  const source = await configSource(args, lora ?? controlnet ?? dreambooth);
  const backend = await selectBackend(args.str('backend'));
  const resume = args.flag('resume') === true;
  const quietSetup = args.flag('quiet') === true;
  const vae = args.str('vae');
  const latentCache = args.str('latent-cache');
  if (latentCache !== undefined && vae === undefined && init === undefined && !resume) {
    throw new UsageError('--latent-cache is a setting of latent runs: give --vae DIR too');
  }
  const encoding = new Progress(quietSetup);
  let setup: TrainSetup;
  try {
    setup = await setUpTraining({
      outDir: out,
      resume,
      source,
      train: given.train,
      scheduler: given.scheduler,
      ...(vae !== undefined ? { vae } : {}),
      ...(latentCache !== undefined ? { latentCache } : {}),
      ...(init !== undefined ? { init } : {}),
      onMessage: (line) => {
        if (!quietSetup) console.error(line);
      },
      onClassImageProgress: (p) => {
        if (!quietSetup) console.error(`class images: ${p.done}/${p.total}`);
      },
      onEncodeProgress: (p) => {
        encoding.update('encoding images', p.done, p.total);
        if (p.done === p.total) encoding.clear();
      },
    });
  } catch (e) {
    if (e instanceof TrainRequestError) throw requestError(e, out, source?.label ?? null);
    throw initInputError(dreamboothInputError(e));
  }
  const { trainer, run, resumed } = setup;
  const notes: string[] = [];
  let trainArgs: string[];
  if (resumed !== null) {
    const note = stepsChangedNote(setup.stepsChanged, resumed.state.config.lrSchedule);
    if (note !== null) notes.push(note);
    const steps = trainer.config.steps;
    trainArgs = recordedArgs(resumed.state.trainArgs ?? argv, steps);
    notes.push(`resuming ${resumed.dir} at step ${resumed.state.step} of ${steps}`);
  } else {
    if (resume) notes.push(`no checkpoint in ${out}; starting from step 0`);
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
  if (cfg.init && trainer.step === 0) {
    say(`starting from the weights of ${cfg.init.dir} (and their EMA); the optimizer starts fresh`);
  }
  if (trainer.lora !== null) {
    const l = cfg.lora!;
    say(
      `LoRA rank ${l.rank} (α ${l.alpha}) on ${trainer.lora.adapters.size} layers of ${l.base}; ` +
        `its ${trainer.model.numParameters().toLocaleString('en-US')} parameters frozen; ` +
        `micro-batches on this thread (the worker replicas carry no adapters)`,
    );
  }
  if (cfg.dreambooth) {
    const d = cfg.dreambooth;
    say(
      `DreamBooth on ${d.base}: '${d.instancePrompt}' for the instance images` +
        (trainer.priorLoader !== null
          ? `, '${d.classPrompt}' for ${trainer.priorLoader.dataset.length} class images (λ ${d.priorLossWeight})`
          : ', no class images') +
        `; the text encoder frozen${trainer.lora === null ? ', every denoiser weight trained' : ''}`,
    );
  }
  if (trainer.controlnet !== null) {
    const c = cfg.controlnet!;
    say(
      `ControlNet on '${c.control}' condition images, copied from ${c.base}; its ` +
        `${trainer.model.numParameters().toLocaleString('en-US')} parameters frozen; ` +
        `micro-batches on this thread`,
    );
  }
  const latent = cfg.latent
    ? `, as ${cfg.latent.shape.join('x')} latents of ${cfg.latent.vae} (${cfg.latent.vaeClass}, scaling ${cfg.latent.scalingFactor})`
    : '';
  say(
    `training ${trainer.numParameters().toLocaleString('en-US')} parameters on ${trainer.dataset.name} ` +
      `(${trainer.dataset.length} images, ${cfg.channels}x${cfg.imageSize}x${cfg.imageSize}${latent}) ` +
      `on ${backend.name}: batch ${cfg.batchSize}, lr ${cfg.lr}, ${String(cfg.scheduler.prediction_type)} prediction` +
      (trainer.varianceType === 'learned_range' ? ', learned variance (L_hybrid)' : ''),
  );

  const command = recordedCommand('train', trainArgs);
  const interrupt = interruptOnSigint(say);
  let pending: Promise<void> = Promise.resolve();
  const t0 = performance.now();
  try {
    const result = await runTraining(trainer, {
      outDir: out,
      settings: run,
      stopAt,
      signal: interrupt.signal,
      trainArgs,
      command,
      onProgress: quiet ? undefined : (p) => progress.update(p, stopAt ?? cfg.steps),
      onCheckpoint: (c) => {
        say(`checkpoint: step ${c.step} -> ${c.dir} (${c.seconds.toFixed(2)}s)`);
        if (trainer.lora !== null) {
          const { dir, step } = c;
          pending = pending.then(() => exportLora(trainer, { dir, step }, out, command));
        }
        if (trainer.controlnet !== null) {
          const { dir } = c;
          pending = pending.then(() => exportControlNet(trainer, dir, out));
        }
      },
      onSample: (s) => say(`samples: step ${s.step} -> ${s.path}`),
    });
    await pending;
    progress.finish();
    const secs = (performance.now() - t0) / 1000;
    const loss = result.lastLoss === null ? '' : `, last loss ${result.lastLoss.toFixed(4)}`;
    console.log(
      `${result.reason === 'aborted' ? 'interrupted' : 'trained'} to step ${result.step}/${cfg.steps} in ${formatDuration(secs)}${loss}; ` +
        `checkpoint ${result.checkpoint ?? '(none)'}`,
    );
    if (result.reason === 'done' && trainer.controlnet !== null) {
      console.log(
        `sample it: sumi sample --model ${cfg.controlnet!.base} --controlnet ${join(out, CONTROLNET_DIR)} --control-image ${cfg.controlnet!.control}.png --out samples.png`,
      );
    } else if (result.reason === 'done' && trainer.lora !== null) {
      const prompt = cfg.dreambooth ? ` --prompt '${cfg.dreambooth.instancePrompt}'` : '';
      console.log(
        `sample it: sumi sample --model ${cfg.lora!.base} --lora ${join(out, LORA_WEIGHTS_NAME)}${prompt} --out samples.png`,
      );
    } else if (result.reason === 'done' && cfg.dreambooth) {
      console.log(
        `sample it: sumi sample --model ${out} --prompt '${cfg.dreambooth.instancePrompt}' --out samples.png`,
      );
    } else if (result.reason === 'done' && cfg.upscale) {
      console.log(
        `upscale with it: sumi edit upscale --model ${out} --image small.png --out big.png`,
      );
    } else if (result.reason === 'done' && cfg.inpaint) {
      console.log(
        `inpaint with it: sumi edit inpaint --model ${out} --image in.png --mask mask.png --out out.png`,
      );
    } else if (result.reason === 'done') {
      console.log(`sample it: sumi sample --model ${out} --out samples.png`);
    }
    return result.reason === 'aborted' ? EXIT.interrupted : EXIT.ok;
  } finally {
    progress.finish();
    interrupt.dispose();
    trainer.dispose();
  }
}

/** What `lora_config.json` beside a LoRA run's file records. */
export interface LoraRunInfo {
  format: 'sumi-lora';
  version: 1;
  /** The LoRA file beside it (diffusers' pytorch_lora_weights.safetensors). */
  file: string;
  /** The base model folder, the weights file it was trained against and that file's sha256. */
  base: string;
  baseWeights: string;
  baseSha256: string;
  rank: number;
  alpha: number;
  targets: string[];
  /** The adapted layers (module paths of the denoiser). */
  modules: string[];
  parameters: number;
  /** 'ema' when the file holds the adapters' EMA. */
  weights: 'ema' | 'model';
  step: number;
  data: string;
  command: string;
}

/**
 * Copies a checkpoint's LoRA file to the output folder and writes lora_config.json beside it
 * (each atomically: a temporary name, then a rename).
 */
async function exportLora(
  trainer: Trainer,
  checkpoint: { dir: string; step: number },
  out: string,
  command: string,
): Promise<void> {
  const l = trainer.config.lora!;
  const base = trainer.baseWeights!;
  const info: LoraRunInfo = {
    format: 'sumi-lora',
    version: 1,
    file: LORA_WEIGHTS_NAME,
    base: l.base,
    baseWeights: base.path,
    baseSha256: base.sha256,
    rank: l.rank,
    alpha: l.alpha,
    targets: l.targets,
    modules: [...trainer.lora!.adapters.keys()],
    parameters: trainer.lora!.numParameters(),
    weights: trainer.ema !== null ? 'ema' : 'model',
    step: checkpoint.step,
    data: trainer.config.data,
    command,
  };
  const tmp = `.tmp-${process.pid}`;
  const file = join(out, LORA_WEIGHTS_NAME);
  await copyFile(join(checkpoint.dir, LORA_WEIGHTS_NAME), file + tmp);
  await rename(file + tmp, file);
  await writeTextAtomic(join(out, 'lora_config.json'), `${JSON.stringify(info, null, 2)}\n`);
}

/**
 * Copies a checkpoint's ControlNet (its EMA weights when the run keeps an EMA) to --out/controlnet/
 * as diffusers' ControlNet folder, each file atomically (a temporary name, then a rename).
 */
async function exportControlNet(trainer: Trainer, checkpoint: string, out: string): Promise<void> {
  const from = join(checkpoint, trainer.ema !== null ? `${CONTROLNET_DIR}_ema` : CONTROLNET_DIR);
  const to = join(out, CONTROLNET_DIR);
  await mkdir(to, { recursive: true });
  const tmp = `.tmp-${process.pid}`;
  for (const f of ['config.json', WEIGHTS_NAME]) {
    await copyFile(join(from, f), join(to, f) + tmp);
    await rename(join(to, f) + tmp, join(to, f));
  }
}

/** `sumi train`; `--task` values with their own command (and options) are in the map. */
export const trainCommand = withTasks(
  defineCommand(trainSpec, (args) => train(args, args.parsed.argv)),
  { text: trainTextCommand, forecast: trainForecastCommand },
);
