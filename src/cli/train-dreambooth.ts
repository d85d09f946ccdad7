/**
 * The DreamBooth options of `sumi train` (--dreambooth --base --instance-data --instance-prompt
 * --class-prompt ...) and what they set: the run's `dreambooth` config, its data (the instance
 * folder) and text conditioning. Mistakes are one line with exit 2 (CliError), as is every
 * DreamBoothInputError the library raises (a base without a text encoder, instance images that
 * are missing or not the base's shape).
 */
import {
  DreamBoothInputError,
  MAX_GUIDANCE_SCALE,
  resolveSchedulerName,
  type TrainConfig,
} from '../diffusion/index.js';
import { type Args, CliError, type OptionSpec } from './args.js';
import { EXIT, SAMPLERS } from './common.js';

/** Class images sampled when --num-class-images is not given (diffusers' script samples 100). */
export const DEFAULT_CLASS_IMAGES = 100;

export const DREAMBOOTH_OPTIONS: readonly OptionSpec[] = [
  {
    name: 'dreambooth',
    kind: 'flag',
    help:
      'DreamBooth: fine-tune the text-to-image --base on --instance-data with --instance-prompt, ' +
      'keeping the class through images it samples from --class-prompt (full fine-tune, or LoRA ' +
      'with --lora-rank)',
  },
  {
    name: 'instance-data',
    kind: 'string',
    arg: 'DIR',
    help: "DreamBooth: the subject's images (PNG/JPEG of the base's size and channels)",
  },
  {
    name: 'instance-prompt',
    kind: 'string',
    arg: 'TEXT',
    help: 'DreamBooth: the prompt of the instance images, with a rare identifier ("a sks digit")',
  },
  {
    name: 'class-prompt',
    kind: 'string',
    arg: 'TEXT',
    help: 'DreamBooth: the prompt of the class ("a digit"); without it, no prior preservation',
  },
  {
    name: 'prior-loss-weight',
    kind: 'number',
    arg: 'λ',
    help: 'DreamBooth: L = L_instance + λ L_prior (0: no class images)',
    default: '1',
  },
  {
    name: 'num-class-images',
    kind: 'int',
    arg: 'N',
    help: 'DreamBooth: class images the base samples (cached in --out)',
    default: String(DEFAULT_CLASS_IMAGES),
  },
  {
    name: 'prior-sampler',
    kind: 'string',
    arg: 'S',
    help: `DreamBooth: the sampler of the class images (${SAMPLERS.join(', ')})`,
    default: 'dpmpp-2m',
  },
  {
    name: 'prior-steps',
    kind: 'int',
    arg: 'K',
    help: 'DreamBooth: sampler steps of the class images',
    default: '20',
  },
  {
    name: 'prior-guidance',
    kind: 'number',
    arg: 'W',
    help: 'DreamBooth: classifier-free guidance scale of the class images',
    default: '3',
  },
];

const DREAMBOOTH_ONLY = DREAMBOOTH_OPTIONS.map((o) => o.name).filter((n) => n !== 'dreambooth');

const usage = (message: string): CliError => new CliError(message, EXIT.usage);

/**
 * The DreamBooth config of the options (null without --dreambooth, where its other options are
 * refused), checked.
 */
export function dreamboothOptions(args: Args): NonNullable<TrainConfig['dreambooth']> | null {
  if (args.flag('dreambooth') !== true) {
    const stray = DREAMBOOTH_ONLY.find((n) => args.has(n));
    if (stray !== undefined) throw usage(`--${stray} is a setting of --dreambooth`);
    return null;
  }
  for (const other of ['controlnet', 'data', 'vae'] as const) {
    if (args.has(other)) {
      throw usage(
        other === 'data'
          ? '--dreambooth trains on --instance-data DIR; --data is not used'
          : `--dreambooth and --${other} do not go together`,
      );
    }
  }
  const base = args.str('base');
  if (base === undefined) throw usage('--dreambooth needs --base <text-to-image model dir>');
  if (args.str('instance-data') === undefined) {
    throw usage("--dreambooth needs --instance-data DIR (the subject's images)");
  }
  const instancePrompt = args.str('instance-prompt')?.trim();
  if (instancePrompt === undefined || instancePrompt === '') {
    throw usage(
      '--dreambooth needs --instance-prompt "..." (with a rare identifier: "a sks digit")',
    );
  }
  const classPrompt = args.str('class-prompt')?.trim();
  if (classPrompt === '') throw usage('--class-prompt is empty');
  const priorLossWeight = args.num('prior-loss-weight') ?? 1;
  if (!(priorLossWeight >= 0 && Number.isFinite(priorLossWeight))) {
    throw usage(`--prior-loss-weight must be a number >= 0, got ${priorLossWeight}`);
  }
  const numClassImages = args.num('num-class-images') ?? DEFAULT_CLASS_IMAGES;
  if (!(Number.isInteger(numClassImages) && numClassImages >= 1)) {
    throw usage(`--num-class-images must be at least 1, got ${numClassImages}`);
  }
  const sampler = args.str('prior-sampler') ?? 'dpmpp-2m';
  try {
    resolveSchedulerName(sampler);
  } catch {
    throw usage(`--prior-sampler: unknown sampler '${sampler}' (${SAMPLERS.join(', ')})`);
  }
  const steps = args.num('prior-steps') ?? 20;
  if (!(Number.isInteger(steps) && steps >= 1)) {
    throw usage(`--prior-steps must be at least 1, got ${steps}`);
  }
  const guidance = args.num('prior-guidance') ?? 3;
  if (!(guidance >= 0 && guidance <= MAX_GUIDANCE_SCALE)) {
    throw usage(`--prior-guidance must be from 0 to ${MAX_GUIDANCE_SCALE}, got ${guidance}`);
  }
  return {
    base,
    instancePrompt,
    classPrompt: classPrompt ?? null,
    priorLossWeight,
    numClassImages,
    prior: { sampler, steps, guidance },
  };
}

/** A DreamBooth input error of the library as the CLI's one-line exit 2; others unchanged. */
export function dreamboothInputError(e: unknown): unknown {
  return e instanceof DreamBoothInputError ? usage(e.message) : e;
}
