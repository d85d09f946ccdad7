/**
 * `sumi train --task text`: trains a Diffusion-LM on a text corpus (`--data fortunes`, a text
 * file or a folder), or with `--lm` the small autoregressive LM that `sumi sample --task text
 * --lm` scores samples with; checkpoints resume bit for bit.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';

import {
  EmptyCorpusError,
  loadTextCorpus,
  type TextCorpus,
  TokenizerError,
} from '../data/index.js';
import {
  configDifferences,
  defaultTextRunSettings,
  defaultTextTrainConfig,
  exportTextModel,
  findCheckpoint,
  readTextTrainerState,
  runTextTraining,
  textCorpusOptions,
  type TextRunSettings,
  type TextTrainConfig,
  TextTrainer,
  TrainConfigError,
} from '../diffusion/index.js';
import {
  type Args,
  CliError,
  type CommandSpec,
  type OptionSpec,
  shellQuote,
  UsageError,
} from './args.js';
import { BACKEND_HELP, defineCommand, EXIT, formatDuration, selectBackend } from './common.js';
import { ProgressReporter } from './progress.js';
import { recordedArgs } from './train.js';

type Key = keyof TextTrainConfig | keyof TextRunSettings;

const KEYED: readonly (OptionSpec & { key: Key; zeroIsNull?: boolean })[] = [
  { name: 'steps', kind: 'int', key: 'steps', help: 'total optimizer steps', default: '3000' },
  { name: 'batch', kind: 'int', arg: 'B', key: 'batchSize', help: 'batch size', default: '64' },
  {
    name: 'lr',
    kind: 'number',
    arg: 'LR',
    key: 'lr',
    help: 'peak learning rate (AdamW)',
    default: '1e-3',
  },
  {
    name: 'lr-schedule',
    kind: 'string',
    arg: 'NAME',
    key: 'lrSchedule',
    choices: ['cosine', 'constant', 'constant_with_warmup', 'linear'],
    help: 'learning-rate schedule',
    default: 'cosine',
  },
  { name: 'warmup', kind: 'int', key: 'warmupSteps', help: 'linear warmup steps', default: '100' },
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
    name: 'ema',
    kind: 'number',
    arg: 'D',
    key: 'emaDecay',
    help: 'EMA decay of the saved weights (0: none)',
    default: '0.999',
  },
  {
    name: 'seq-len',
    kind: 'int',
    arg: 'L',
    key: 'seqLength',
    help: 'tokens per sequence, start and end included (sentences of up to L − 2 words)',
    default: '16',
  },
  {
    name: 'min-words',
    kind: 'int',
    arg: 'N',
    key: 'minWords',
    help: 'shortest sentence kept',
    default: '3',
  },
  {
    name: 'vocab',
    kind: 'int',
    arg: 'V',
    key: 'maxVocabSize',
    help: 'vocabulary size at most (special tokens included)',
    default: '5000',
  },
  {
    name: 'holdout',
    kind: 'number',
    arg: 'F',
    key: 'heldOutFraction',
    help: 'fraction of the sentences held out',
    default: '0.05',
  },
  {
    name: 'timesteps',
    kind: 'int',
    arg: 'T',
    key: 'numTrainTimesteps',
    help: 'T of the sqrt noise schedule',
    default: '2000',
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
    name: 'save-every',
    kind: 'int',
    key: 'saveEvery',
    help: 'checkpoint every N steps (0: only at the end)',
    default: '500',
  },
  {
    name: 'eval-every',
    kind: 'int',
    key: 'evalEvery',
    help: 'held-out score every N steps (0: only at the end)',
    default: '0',
  },
  {
    name: 'log-every',
    kind: 'int',
    key: 'logEvery',
    help: 'metrics line every N steps',
    default: '50',
  },
];

const RUN_KEYS: readonly Key[] = ['saveEvery', 'evalEvery', 'logEvery'];

export const trainTextSpec: CommandSpec = {
  name: 'train',
  summary: 'Train a Diffusion-LM (or with --lm the scoring language model) on a text corpus.',
  usage: 'sumi train --task text --data <corpus> --out <dir> [--lm] [options]',
  options: [
    { name: 'task', kind: 'string', arg: 'T', help: 'text', choices: ['text'] },
    {
      name: 'data',
      kind: 'string',
      arg: 'D',
      help: "fortunes (Debian package 'fortunes'), a text file (fortune entries or one text a line) or a folder of them",
    },
    { name: 'out', kind: 'string', arg: 'DIR', help: 'output: checkpoint/, metrics.jsonl' },
    {
      name: 'lm',
      kind: 'flag',
      help: 'train the autoregressive LM (a causal CLIP text transformer, tied output) instead',
    },
    {
      name: 'config',
      kind: 'string',
      arg: 'FILE',
      help: 'model config keys (JSON) over the built-in small model',
    },
    ...KEYED,
    { name: 'resume', kind: 'flag', help: 'continue the checkpoint in --out up to --steps' },
    {
      name: 'stop-at',
      kind: 'int',
      arg: 'K',
      help: "stop (with a checkpoint) after step K, keeping --steps' schedule",
    },
    {
      name: 'export',
      kind: 'string',
      arg: 'DIR',
      help: 'when done, write a sample-ready copy to DIR',
    },
    { name: 'backend', kind: 'string', arg: 'B', help: BACKEND_HELP, default: 'cpu' },
    { name: 'quiet', kind: 'flag', help: 'no progress output' },
  ],
  notes: [
    'sumi sample --task text --model <out> reads <out>/checkpoint (or an --export folder):\n' +
      'model/ (config.json + model.safetensors), tokenizer/, scheduler/ and sumi.json.',
    'With --resume the settings come from the checkpoint; options that would change them are\n' +
      'refused (except --steps and the reporting options).',
  ],
};

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function optionValues(args: Args): Partial<Record<Key, unknown>> {
  const out: Partial<Record<Key, unknown>> = {};
  for (const o of KEYED) {
    if (!args.has(o.name)) continue;
    const v = o.kind === 'string' ? args.str(o.name) : args.num(o.name);
    out[o.key] = o.zeroIsNull === true && v === 0 ? null : v;
  }
  if (args.has('lm')) out.objective = args.flag('lm') === true ? 'causal-lm' : 'diffusion-lm';
  const cfg = args.str('config');
  if (cfg !== undefined) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(cfg, 'utf8'));
    } catch (e) {
      throw new UsageError(`--config ${cfg}: ${message(e)}`);
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      throw new UsageError(`--config ${cfg}: expected a JSON object`);
    }
    out.model = json;
  }
  return out;
}

async function loadCorpus(config: TextTrainConfig): Promise<TextCorpus> {
  try {
    return await loadTextCorpus(config.data, textCorpusOptions(config));
  } catch (e) {
    // Bad data is an input error: one line naming it, exit 2.
    if (e instanceof EmptyCorpusError || e instanceof TokenizerError) {
      throw new CliError(e.message, EXIT.usage);
    }
    throw e;
  }
}

async function trainText(args: Args, argv: readonly string[]): Promise<number> {
  const out = args.str('out');
  if (out === undefined) throw new UsageError('--out <dir> is required');
  const exportDir = args.str('export');
  if (exportDir !== undefined && existsSync(exportDir) && readdirSync(exportDir).length > 0) {
    throw new UsageError(`--export: ${exportDir} is not empty`);
  }
  const stopAt = args.num('stop-at');
  const given = optionValues(args);
  const flags: Record<string, unknown> = {};
  const runFlags: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(given)) {
    ((RUN_KEYS as readonly string[]).includes(k) ? runFlags : flags)[k] = v;
  }
  const existing = await findCheckpoint(out);
  if (existing !== null && args.flag('resume') !== true) {
    throw new UsageError(
      `${out} already holds a checkpoint; pass --resume to continue it or choose another --out`,
    );
  }
  const notes: string[] = [];
  let config: TextTrainConfig;
  let run: TextRunSettings;
  let trainArgs: string[];
  const state =
    existing === null
      ? null
      : await readTextTrainerState(existing).catch((e: unknown) => {
          throw new UsageError(message(e));
        });
  if (state !== null) {
    const wanted: Record<string, unknown> = { ...flags };
    delete wanted.steps;
    if (args.has('data')) wanted.data = args.str('data');
    const problems = configDifferences(state.config as unknown as Record<string, unknown>, wanted);
    if (problems.length > 0) {
      throw new UsageError(
        `--resume continues under the checkpoint's settings; these differ: ${problems.join('; ')}`,
      );
    }
    const steps = typeof flags.steps === 'number' ? flags.steps : state.config.steps;
    config = { ...state.config, steps };
    run = { ...defaultTextRunSettings, ...state.run, ...runFlags };
    trainArgs = recordedArgs(
      state.trainArgs ?? argv.filter((a) => !a.startsWith('--export')),
      steps,
    );
    notes.push(`resuming ${existing} at step ${state.step} of ${steps}`);
  } else {
    const data = args.str('data');
    if (data === undefined)
      throw new UsageError('--data is required (fortunes, a text file or a folder)');
    config = { ...defaultTextTrainConfig, ...(flags as Partial<TextTrainConfig>), data };
    run = { ...defaultTextRunSettings, ...(runFlags as Partial<TextRunSettings>) };
    trainArgs = recordedArgs(withoutExport(argv), config.steps);
  }
  if (stopAt !== undefined && (stopAt < 1 || stopAt > config.steps)) {
    throw new UsageError(`--stop-at must be in 1..${config.steps}`);
  }
  const corpus = await loadCorpus(config);
  if (
    state !== null &&
    (corpus.train.length !== state.data.trainSentences || corpus.name !== state.data.name)
  ) {
    throw new UsageError(
      `the checkpoint was trained on ${state.data.name} (${state.data.trainSentences} sentences); ${config.data} now gives ${corpus.train.length}`,
    );
  }
  const backend = await selectBackend(args.str('backend'));
  let trainer: TextTrainer;
  try {
    trainer = new TextTrainer(config, corpus);
  } catch (e) {
    if (e instanceof TrainConfigError || /config/.test(message(e)))
      throw new UsageError(message(e));
    throw e;
  }
  const quiet = args.flag('quiet') === true;
  const progress = new ProgressReporter({ every: run.logEvery });
  const say = (line: string): void => {
    if (!quiet) progress.message(line);
  };
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = (): void => {
    interrupts++;
    if (interrupts > 1) process.exit(EXIT.interrupted);
    say('interrupted: saving a checkpoint after this step (Ctrl-C again to quit now)');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    if (state !== null) await trainer.loadCheckpoint(existing!, state);
    for (const n of notes) say(n);
    const end = stopAt ?? config.steps;
    let checkpoint = existing;
    if (trainer.step >= end) {
      console.log(`${out}: already at step ${trainer.step} of ${end}; nothing to train`);
    } else {
      say(
        `training a ${config.objective === 'diffusion-lm' ? 'Diffusion-LM' : 'causal LM'} of ` +
          `${trainer.model.numParameters().toLocaleString('en-US')} parameters on ${corpus.name} ` +
          `(${corpus.train.length} sentences for training, ${corpus.heldOut.length} held out, ` +
          `${corpus.tokenizer.vocabSize} words, L = ${corpus.seqLength}) on ${backend.name}: ` +
          `batch ${config.batchSize}, lr ${config.lr}`,
      );
      const t0 = performance.now();
      const result = await runTextTraining(trainer, {
        outDir: out,
        settings: run,
        stopAt,
        signal: controller.signal,
        trainArgs,
        command: ['sumi', 'train', ...trainArgs].map(shellQuote).join(' '),
        onProgress: quiet ? undefined : (p) => progress.update({ ...p, emaDecay: null }, end),
        onEval: (r) =>
          say(
            `held-out (${r.sentences} sentences, step ${r.step}): loss ${r.loss.toFixed(4)}` +
              (r.perplexity !== undefined ? `, perplexity ${r.perplexity.toFixed(2)}` : ''),
          ),
        onCheckpoint: (c) =>
          say(`checkpoint: step ${c.step} -> ${c.dir} (${c.seconds.toFixed(2)}s)`),
      });
      progress.finish();
      checkpoint = result.checkpoint;
      console.log(
        `${result.reason === 'aborted' ? 'interrupted' : 'trained'} to step ${result.step}/${config.steps} ` +
          `in ${formatDuration((performance.now() - t0) / 1000)}; checkpoint ${result.checkpoint ?? '(none)'}`,
      );
      if (result.reason === 'aborted') return EXIT.interrupted;
    }
    if (exportDir !== undefined && checkpoint !== null) {
      await exportTextModel(checkpoint, exportDir);
      console.log(`${exportDir}: the text model of ${out}`);
    }
    return EXIT.ok;
  } finally {
    progress.finish();
    process.off('SIGINT', onSigint);
    trainer.dispose();
  }
}

/** argv without the export option (not part of how the model was trained). */
function withoutExport(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i]!.split('=')[0]!;
    if (name === '--export') {
      if (!argv[i]!.includes('=')) i++;
      continue;
    }
    out.push(argv[i]!);
  }
  return out;
}

export const trainTextCommand = defineCommand(trainTextSpec, (args) =>
  trainText(args, args.parsed.argv),
);
