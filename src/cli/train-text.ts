/**
 * `sumi train --task text`: trains a Diffusion-LM on a text corpus (`--data fortunes`, a text
 * file or a folder), or with `--lm` the small autoregressive LM that `sumi sample --task text
 * --lm` scores samples with; checkpoints resume bit for bit.
 */
import { existsSync, readdirSync } from 'node:fs';

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
import { type Args, CliError, type CommandSpec, shellQuote, UsageError } from './args.js';
import { defineCommand, EXIT, formatDuration, selectBackend } from './common.js';
import { ProgressReporter } from './progress.js';
import { recordedArgs } from './train.js';
import {
  interruptOnSigint,
  type KeyedOption,
  keyedValues,
  readJsonOption,
  RUN_CONTROL_OPTIONS,
  splitRunValues,
  trainOption,
  withoutOptions,
} from './train-options.js';

type Key = keyof TextTrainConfig | keyof TextRunSettings;

const KEYED: readonly KeyedOption<Key>[] = [
  trainOption<Key>('steps', '3000'),
  trainOption<Key>('batch', '64'),
  trainOption<Key>('lr', '1e-3'),
  trainOption<Key>('lr-schedule', 'cosine'),
  trainOption<Key>('warmup', '100'),
  trainOption<Key>('weight-decay', '0'),
  trainOption<Key>('grad-clip', '1'),
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
  trainOption<Key>('seed', '0'),
  trainOption<Key>('save-every', '500'),
  trainOption<Key>('eval-every', '0'),
  trainOption<Key>('log-every', '50'),
];

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
    {
      name: 'export',
      kind: 'string',
      arg: 'DIR',
      help: 'when done, write a sample-ready copy to DIR',
    },
    ...RUN_CONTROL_OPTIONS,
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
  const out = keyedValues(KEYED, args);
  if (args.has('lm')) out.objective = args.flag('lm') === true ? 'causal-lm' : 'diffusion-lm';
  const cfg = args.str('config');
  if (cfg !== undefined) out.model = readJsonOption(cfg, '--config');
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
  const { config: flags, run: runFlags } = splitRunValues(given);
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
    trainArgs = recordedArgs(withoutOptions(argv, ['--export']), config.steps);
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
  const interrupt = interruptOnSigint(say);
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
        signal: interrupt.signal,
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
    interrupt.dispose();
    trainer.dispose();
  }
}

export const trainTextCommand = defineCommand(trainTextSpec, (args) =>
  trainText(args, args.parsed.argv),
);
