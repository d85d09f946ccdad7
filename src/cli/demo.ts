/**
 * `sumi demo`: samples the small MNIST model shipped in models/mnist-small/ into a PNG grid;
 * `--train` first retrains it from scratch with the command recorded in its sumi.json.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { ModelInfo } from '../diffusion/index.js';
import type { Args, CommandSpec } from './args.js';
import { BACKEND_HELP, defineCommand, EXIT, REPO_ROOT } from './common.js';
import { sampleCommand } from './sample.js';
import { runToyDemo } from './toy-demo.js';
import { trainCommand } from './train.js';

export const DEMO_MODEL_DIR = join(REPO_ROOT, 'models', 'mnist-small');
/** Used by --train when the shipped model records no command. */
export const DEFAULT_DEMO_TRAIN_ARGS = ['--data', 'mnist', '--preset', 'mnist-small'];
/**
 * 16 images with 20 DDIM steps: about a minute on two CPU cores today (one forward pass of
 * mnist-small at batch 64 takes ~11 s there, see docs/training.md); --n 64 --steps 50 for more.
 */
const DEMO_STEPS = 20;
const DEMO_IMAGES = 16;

export const demoSpec: CommandSpec = {
  name: 'demo',
  summary:
    'Sample digits from the small MNIST model in models/mnist-small/ (or retrain it with --train).',
  usage: 'sumi demo [--out demo.png] [--sampler ddim] [--steps 20] [--n 16] [--seed 0] [--train]',
  options: [
    { name: 'out', kind: 'string', arg: 'FILE', help: 'PNG grid to write', default: 'demo.png' },
    {
      name: 'sampler',
      kind: 'string',
      arg: 'S',
      help: 'sampler (see sumi sample --help)',
      default: 'ddim',
    },
    { name: 'steps', kind: 'int', help: 'sampler steps', default: '20' },
    { name: 'n', kind: 'int', help: 'number of images', default: '16' },
    { name: 'seed', kind: 'int', arg: 'S', help: 'seed of the noise', default: '0' },
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
    { name: 'backend', kind: 'string', arg: 'B', help: BACKEND_HELP, default: 'cpu' },
    {
      name: 'toy-steps',
      kind: 'int',
      help: 'training steps of the 2-D demo run when the model folder is missing',
      default: '3000',
    },
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

/**
 * Without the shipped model: DDPM on a 2-D mixture of eight Gaussians, trained here in about a
 * minute on two CPU cores, sampled with DDIM; the PNG shows the data beside the samples.
 */
async function toyDemo(args: Args): Promise<number> {
  const out = args.str('out') ?? 'demo.png';
  console.error(
    'sumi demo: no trained image model is shipped in models/mnist-small yet, so this demo trains\n' +
      'a small DDPM on a 2-D mixture of eight Gaussians (about a minute on 2 CPU cores) and\n' +
      `samples it with DDIM; ${out} shows the data (left) beside 2,000 samples (right).`,
  );
  const steps = args.num('toy-steps') ?? 3000;
  const r = runToyDemo({
    steps,
    batch: 256,
    samples: 2000,
    samplerSteps: args.num('steps') ?? 50,
    seed: args.num('seed') ?? 0,
    onProgress: (step, loss) => {
      if (step % 500 === 0) console.error(`  step ${step}/${steps}  loss ${loss.toFixed(4)}`);
    },
  });
  await writeFile(out, r.png);
  console.log(
    `wrote ${out}: mean distance from a sample to the nearest data point ${r.sampleDistance.toFixed(3)} ` +
      `(for unit Gaussian noise ${r.noiseDistance.toFixed(3)})`,
  );
  return EXIT.ok;
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
    return toyDemo(args);
  }
  return sampleCommand.run([
    '--model',
    sampleFrom,
    '--out',
    args.str('out') ?? 'demo.png',
    '--sampler',
    args.str('sampler') ?? 'ddim',
    '--steps',
    String(args.num('steps') ?? DEMO_STEPS),
    '--n',
    String(args.num('n') ?? DEMO_IMAGES),
    '--seed',
    String(args.num('seed') ?? 0),
    ...common,
  ]);
}

export const demoCommand = defineCommand(demoSpec, demo);
