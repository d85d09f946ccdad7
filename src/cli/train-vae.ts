/**
 * `sumi train-vae`: trains the autoencoder of latent diffusion, an AutoencoderKL (`--kind kl`) or
 * a VQModel (`--kind vq`), with checkpoints that resume bit for bit, held-out PSNR / SSIM, and
 * the latent scaling factor measured at every checkpoint. `<out>/checkpoint/vae/` is a diffusers
 * folder that `sumi train --vae`, `sumi reconstruct` and diffusers' `from_pretrained` load.
 */
import { statSync } from 'node:fs';

import type { Dataset } from '../data/index.js';
import {
  AUTOENCODER_KINDS,
  type AutoencoderKind,
  autoencoderKindOf,
  checkSameImages,
  defaultVaeRunSettings,
  defaultVaeTrainConfig,
  loadVae,
  parseConfigSource,
  readVaeTrainerState,
  resolveVaeConfig,
  runVaeTraining,
  type VaeConfigInput,
  type VaeHeldOut,
  type VaeRunSettings,
  type VaeTrainConfig,
  VaeTrainer,
  type VaeTrainerState,
  VAE_DIR,
  VAE_TRAIN_SCHEMA,
} from '../diffusion/index.js';
import { imageQuality } from '../eval/index.js';
import { type Args, type CommandSpec, UsageError } from './args.js';
import { defineCommand, message, selectBackend } from './common.js';
import { loadConfigSource, loadPreset } from './presets.js';
import {
  asUsage,
  channelsOption,
  IMAGE_OPTIONS,
  type KeyedOption,
  keyedValues,
  loadData,
  readJsonOption,
  RESUME_NOTE,
  RUN_CONTROL_OPTIONS,
  splitRunValues,
  trainOptions,
} from './train-options.js';
import { planRun, runTrainCommand } from './train-command.js';

type Key = keyof VaeTrainConfig | keyof VaeRunSettings;

const DEFAULTS = { ...defaultVaeTrainConfig, ...defaultVaeRunSettings };

const KEYED: readonly KeyedOption<Key>[] = [
  ...trainOptions<Key>(
    [
      'steps',
      'batch',
      'lr',
      'lr-schedule',
      'warmup',
      'min-lr',
      'weight-decay',
      'grad-clip',
      'flip',
    ],
    DEFAULTS,
  ),
  {
    name: 'l1-weight',
    kind: 'number',
    arg: 'W',
    key: 'l1Weight',
    help: 'weight of the mean absolute reconstruction error',
    default: '1',
  },
  {
    name: 'mse-weight',
    kind: 'number',
    arg: 'W',
    key: 'mseWeight',
    help: 'weight of the mean squared reconstruction error',
    default: '1',
  },
  {
    name: 'kl-weight',
    kind: 'number',
    arg: 'W',
    key: 'klWeight',
    help: 'kl: weight of KL(q(z|x) ‖ N(0, I)), summed over the latent, averaged over the batch',
    default: '1e-6',
  },
  {
    name: 'vq-beta',
    kind: 'number',
    arg: 'β',
    key: 'vqBeta',
    help: 'vq: weight of the commitment term',
    default: '0.25',
  },
  {
    name: 'ema-codebook',
    kind: 'number',
    arg: 'DECAY',
    key: 'emaCodebook',
    zeroIsNull: true,
    help: 'vq: the codebook follows an EMA of its assigned latents (decay, e.g. 0.99; 0: gradient)',
  },
  {
    name: 'dead-code',
    kind: 'number',
    arg: 'N',
    key: 'deadCodeThreshold',
    zeroIsNull: true,
    help: 'vq with --ema-codebook: move entries whose EMA count falls below N onto batch latents',
  },
  {
    name: 'usage-window',
    kind: 'int',
    arg: 'N',
    key: 'usageWindow',
    help: 'vq: codebook usage and perplexity over the last N batches',
    default: '100',
  },
  {
    name: 'disc-start',
    kind: 'int',
    arg: 'N',
    key: 'discStart',
    help: 'train a patch discriminator (hinge loss) from step N on (default: none)',
  },
  {
    name: 'disc-weight',
    kind: 'number',
    arg: 'W',
    key: 'discWeight',
    help: "weight of the discriminator's loss for the autoencoder",
    default: '0.1',
  },
  {
    name: 'disc-lr',
    kind: 'number',
    arg: 'LR',
    key: 'discLr',
    help: "the discriminator's learning rate (AdamW, β = (0.5, 0.9))",
    default: '2e-4',
  },
  {
    name: 'holdout',
    kind: 'number',
    arg: 'F',
    key: 'holdout',
    help: 'keep a fraction F of the images out of training for PSNR / SSIM',
    default: '0.05',
  },
  {
    name: 'eval-images',
    kind: 'int',
    arg: 'N',
    key: 'evalImages',
    help: 'held-out images measured at most (0: all)',
    default: '0',
  },
  {
    name: 'scaling-batches',
    kind: 'int',
    arg: 'K',
    key: 'scalingBatches',
    help: 'the scaling factor is 1/std of the latents of the first K training batches',
    default: '8',
  },
  ...trainOptions<Key>(['seed', 'save-every', 'eval-every', 'log-every'], DEFAULTS, {
    'eval-every': 'held-out PSNR / SSIM every N steps (0: only at the end)',
  }),
];

/** The options that choose the model and the data (compared on --resume). */
const MODEL_OPTIONS = ['kind', 'preset', 'config', 'init', 'image-size', 'channels', 'disc-layers'];

export const trainVaeSpec: CommandSpec = {
  name: 'train-vae',
  summary: 'Train the autoencoder of latent diffusion (AutoencoderKL or VQModel).',
  usage:
    'sumi train-vae --kind kl|vq --data <dataset> --out <dir> [--preset P | --config F] [options]',
  options: [
    {
      name: 'kind',
      kind: 'string',
      arg: 'K',
      choices: AUTOENCODER_KINDS,
      help: "kl (AutoencoderKL) or vq (VQModel); default: the config's class, else kl",
    },
    {
      name: 'data',
      kind: 'string',
      arg: 'D',
      help: 'mnist, mnist-full, fashion-mnist, emoji, or a folder of PNG/JPEG images',
    },
    ...IMAGE_OPTIONS,
    {
      name: 'preset',
      kind: 'string',
      arg: 'NAME',
      help: 'the autoencoder config (and train.json defaults) of presets/NAME (vae-emoji, vq-emoji)',
    },
    {
      name: 'config',
      kind: 'string',
      arg: 'FILE',
      help: 'an AutoencoderKL / VQModel config.json, or a folder like a preset',
    },
    {
      name: 'init',
      kind: 'string',
      arg: 'DIR',
      help: 'fine-tune the autoencoder of DIR (a vae folder, a pipeline, a train-vae output): its config and weights, a fresh optimizer',
    },
    {
      name: 'out',
      kind: 'string',
      arg: 'DIR',
      help: 'output: checkpoint/ (vae/, optimizer, sumi.json, ...), metrics.jsonl',
    },
    ...KEYED,
    {
      name: 'disc-layers',
      kind: 'int',
      arg: 'N',
      help: 'stride-2 layers of the patch discriminator (default 2)',
    },
    ...RUN_CONTROL_OPTIONS,
  ],
  notes: [
    'The checkpoint holds vae/ (config.json with the measured scaling_factor, weights: a\n' +
      "diffusers folder), the optimizer's state (and the discriminator's), sumi.json (held-out\n" +
      'PSNR / SSIM, the command) and trainer_state.json.',
    RESUME_NOTE,
  ],
};

/**
 * The model config and train defaults of --preset, --config or --init (empty without any); with
 * --init, the folder it names.
 */
async function configSource(args: Args): Promise<{
  model: Record<string, unknown>;
  train: Record<string, unknown>;
  from: string | null;
}> {
  const preset = args.str('preset');
  const file = args.str('config');
  const init = args.str('init');
  const given = [preset, file, init].filter((v) => v !== undefined).length;
  if (given > 1) throw new UsageError('give one of --preset, --config and --init');
  if (init !== undefined) {
    const v = await loadVae(init);
    return {
      model: { ...v.config },
      train: { init: { vae: v.dir, sha256: v.sha256 } },
      from: `--init ${v.dir}`,
    };
  }
  if (preset === undefined && file === undefined) return { model: {}, train: {}, from: null };
  const from = preset !== undefined ? `preset ${preset}` : file!;
  // The model is named as not an autoencoder (of --kind) before its "train" keys are checked.
  const kind = args.str('kind') as AutoencoderKind | undefined;
  const checkModel = (model: Record<string, unknown>): void => {
    try {
      autoencoderKindOf(model, kind);
    } catch (e) {
      throw new UsageError(`${from}: ${message(e)}`);
    }
  };
  const rules = VAE_TRAIN_SCHEMA.rules;
  if (file !== undefined && !isDirectory(file)) {
    // A JSON file: an autoencoder config.json, or {"model": {...}, "train": {...}}.
    const json = readJsonOption(file, '--config');
    if (json.model === undefined) return { model: json, train: {}, from: file };
    const src = asUsage(() => parseConfigSource(json, file, rules, checkModel));
    return { model: { ...src.model }, train: { ...src.train }, from: file };
  }
  const src = asUsage(() =>
    preset !== undefined
      ? loadPreset(preset, rules, checkModel)
      : loadConfigSource(file!, rules, checkModel),
  );
  return { model: { ...src.model }, train: { ...src.train }, from };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function formatHeldOut(r: VaeHeldOut): string {
  const parts = [
    r.psnr !== null ? `PSNR ${r.psnr.toFixed(2)} ± ${r.psnrStderr!.toFixed(2)} dB` : null,
    r.ssim !== null ? `SSIM ${r.ssim.toFixed(4)}` : null,
    `L1 ${r.l1.toFixed(4)}`,
    r.codebookUsage !== null
      ? `codebook ${(100 * r.codebookUsage).toFixed(1)}% used, perplexity ${r.perplexity!.toFixed(1)}`
      : null,
  ].filter((p) => p !== null);
  return `held-out (${r.count} images, step ${r.step}): ${parts.join(', ')}`;
}

/** The config and dataset that --kind, --data, --preset/--config and the other options ask for. */
async function configFromOptions(
  args: Args,
  flags: Record<string, unknown>,
): Promise<{ config: VaeTrainConfig; data: Dataset }> {
  const data = args.str('data');
  if (data === undefined) throw new UsageError('--data is required');
  const channels = channelsOption(args);
  const src = await configSource(args);
  const train: Record<string, unknown> = { ...src.train, ...flags, data };
  const kind = args.str('kind');
  if (kind !== undefined) train.kind = kind;
  const layers = args.num('disc-layers');
  if (layers !== undefined) train.discriminator = { numLayers: layers };
  const dataset = loadData(data, args.num('image-size'), channels);
  const input = { model: src.model, train } as VaeConfigInput;
  const config = asUsage(() => {
    try {
      return resolveVaeConfig(input, dataset);
    } catch (e) {
      throw new UsageError(src.from !== null ? `${src.from}: ${message(e)}` : message(e));
    }
  });
  return { config, data: dataset };
}

async function trainVae(args: Args, argv: readonly string[]): Promise<number> {
  const out = args.str('out');
  if (out === undefined) throw new UsageError('--out <dir> is required');
  const { config: flags, run: runFlags } = splitRunValues(keyedValues(KEYED, args));
  const plan = await planRun<VaeTrainConfig, VaeRunSettings, VaeTrainerState, Dataset>({
    args,
    out,
    argv,
    readState: readVaeTrainerState,
    given: flags,
    run: runFlags,
    defaultRun: defaultVaeRunSettings,
    fresh: () => configFromOptions(args, flags),
    asked: () => (args.has('data') ? configFromOptions(args, flags) : null),
    modelOptions: MODEL_OPTIONS,
  });
  const { config, resumed } = plan;
  const dataset = plan.data ?? loadData(config.data, config.imageSize, config.channels);
  if (resumed !== null) checkSameImages(resumed.state.data, config.data, dataset);
  if (config.discStart !== null && config.discStart >= config.steps) {
    plan.notes.push(
      `note: --disc-start ${config.discStart} is not before step ${config.steps}; no discriminator steps`,
    );
  }

  const backend = await selectBackend(args.str('backend'));
  const trainer = asUsage(() => new VaeTrainer(config, dataset, { measure: imageQuality }));
  if (resumed === null && config.init !== null) {
    await trainer.loadInitialWeights(await loadVae(config.init.vae, { backend }));
    plan.notes.push(`fine-tuning the weights of ${config.init.vae}`);
  }
  const f = 2 ** ((config.model.block_out_channels as number[]).length - 1);
  const latent = `${config.model.latent_channels as number}x${config.imageSize / f}x${config.imageSize / f}`;
  const className = trainer.model.className;
  return runTrainCommand({
    args,
    out,
    command: 'train-vae',
    plan,
    trainer,
    describe: () =>
      `training ${className === 'AutoencoderKL' ? 'an' : 'a'} ${className} of ${trainer.model.numParameters().toLocaleString('en-US')} ` +
      `parameters on ${dataset.name} (${trainer.trainSet.length} images for training, ` +
      `${trainer.heldOutSet?.length ?? 0} held out, ${config.channels}x${config.imageSize}x${config.imageSize} -> ${latent}) ` +
      `on ${backend.name}: batch ${config.batchSize}, lr ${config.lr}`,
    train: (opts, say) =>
      runVaeTraining(trainer, { ...opts, onEval: (r) => say(formatHeldOut(r)) }),
    saved: (c) => `autoencoder ${c === null ? '(none)' : `${c}/${VAE_DIR}`}`,
  });
}

export const trainVaeCommand = defineCommand(trainVaeSpec, (args) =>
  trainVae(args, args.parsed.argv),
);
