/**
 * `sumi demo`: samples the small MNIST model shipped in models/mnist-small/ into a PNG grid;
 * `--train` first retrains it from scratch with the command recorded in its sumi.json.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { ModelInfo } from '../diffusion/index.js';
import { type Args, CliError, type CommandSpec } from './args.js';
import { BACKEND_OPTION, defineCommand, EXIT, REPO_ROOT, SEED_OPTION } from './common.js';
import { sampleCommand } from './sample.js';
import { trainCommand } from './train.js';

export const DEMO_MODEL_DIR = join(REPO_ROOT, 'models', 'mnist-small');
/**
 * Used by --train when the model folder records no command: the preset's train.json holds the
 * settings the shipped model was trained with.
 */
export const DEFAULT_DEMO_TRAIN_ARGS = ['--data', 'mnist', '--preset', 'mnist-small'];
/**
 * 64 images with 20 DPM-Solver++ (2M) steps: about 11 s on two CPU cores (docs/perf.md),
 * drawn at twice the size so that the 28×28 digits are easy to see.
 */
const DEMO_SAMPLER = 'dpmpp-2m';
const DEMO_STEPS = 20;
const DEMO_IMAGES = 64;
const DEMO_SCALE = 2;

export const demoSpec: CommandSpec = {
  name: 'demo',
  summary:
    'Sample digits from the small MNIST model in models/mnist-small/ (or retrain it with --train).',
  usage:
    'sumi demo [--out demo.png] [--sampler dpmpp-2m] [--steps 20] [--n 64] [--seed 0] [--train]',
  options: [
    { name: 'out', kind: 'string', arg: 'FILE', help: 'PNG grid to write', default: 'demo.png' },
    {
      name: 'sampler',
      kind: 'string',
      arg: 'S',
      help: 'sampler (see sumi sample --help)',
      default: DEMO_SAMPLER,
    },
    { name: 'steps', kind: 'int', help: 'sampler steps', default: String(DEMO_STEPS) },
    { name: 'n', kind: 'int', help: 'number of images', default: String(DEMO_IMAGES) },
    {
      name: 'scale',
      kind: 'int',
      help: 'draw each pixel as an N×N block in the grid',
      default: String(DEMO_SCALE),
    },
    SEED_OPTION,
    {
      name: 'model',
      kind: 'string',
      arg: 'DIR',
      help: 'model folder',
      default: 'models/mnist-small',
    },
    {
      name: 'train',
      kind: 'flag',
      help: 'retrain the model from scratch first, with its recorded command',
    },
    {
      name: 'train-out',
      kind: 'string',
      arg: 'DIR',
      help: 'where --train writes its run (resumed if interrupted)',
      default: 'out/mnist-small',
    },
    BACKEND_OPTION,
  ],
  notes: [
    '--train runs `sumi train <recorded arguments> --out <train-out> --resume`, then samples from it.',
  ],
};

function recordedTrainArgs(dir: string): string[] {
  const path = join(dir, 'sumi.json');
  if (!existsSync(path)) return DEFAULT_DEMO_TRAIN_ARGS;
  const info = JSON.parse(readFileSync(path, 'utf8')) as Partial<ModelInfo>;
  return Array.isArray(info.trainArgs) ? info.trainArgs : DEFAULT_DEMO_TRAIN_ARGS;
}

/** args minus --out (and its value). */
function withoutOut(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--out') i++;
    else if (!args[i]!.startsWith('--out=')) out.push(args[i]!);
  }
  return out;
}

async function demo(args: Args): Promise<number> {
  const modelDir = args.str('model') ?? DEMO_MODEL_DIR;
  const backend = args.str('backend');
  const common = backend !== undefined ? ['--backend', backend] : [];
  let sampleFrom = modelDir;
  if (args.flag('train') === true) {
    const trainOut = args.str('train-out') ?? join('out', 'mnist-small');
    const trainArgs = [
      ...withoutOut(recordedTrainArgs(modelDir)),
      '--out',
      trainOut,
      '--resume',
      ...common,
    ];
    console.error(`sumi demo: sumi train ${trainArgs.join(' ')}`);
    const code = await trainCommand.run(trainArgs);
    if (code !== EXIT.ok) return code;
    sampleFrom = trainOut;
  } else if (!existsSync(modelDir)) {
    throw new CliError(
      `model folder '${modelDir}' does not exist (sumi demo --train trains it into ${args.str('train-out') ?? join('out', 'mnist-small')})`,
    );
  }
  return sampleCommand.run([
    '--model',
    sampleFrom,
    '--out',
    args.str('out') ?? 'demo.png',
    '--sampler',
    args.str('sampler') ?? DEMO_SAMPLER,
    '--steps',
    String(args.num('steps') ?? DEMO_STEPS),
    '--n',
    String(args.num('n') ?? DEMO_IMAGES),
    '--seed',
    String(args.num('seed') ?? 0),
    '--scale',
    String(args.num('scale') ?? DEMO_SCALE),
    ...common,
  ]);
}

export const demoCommand = defineCommand(demoSpec, demo);
