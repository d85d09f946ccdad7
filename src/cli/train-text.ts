/**
 * `sumi train --task text`: trains a Diffusion-LM on a text corpus (`--data fortunes`, a text
 * file or a folder), or with `--lm` the small autoregressive LM that `sumi sample --task text
 * --lm` scores samples with; checkpoints resume bit for bit.
 */

import {
  EmptyCorpusError,
  loadTextCorpus,
  type TextCorpus,
  TokenizerError,
} from '../data/index.js';
import {
  defaultTextRunSettings,
  defaultTextTrainConfig,
  exportTextModel,
  readTextTrainerState,
  runTextTraining,
  textCorpusOptions,
  type TextRunSettings,
  type TextTrainConfig,
  TextTrainer,
  type TextTrainerState,
  TrainConfigError,
} from '../diffusion/index.js';
import { type Args, CliError, type CommandSpec, UsageError } from './args.js';
import { defineCommand, EXIT, message, selectBackend, taskCommandSpec } from './common.js';
import {
  exportFolder,
  type KeyedOption,
  keyedValues,
  readJsonOption,
  RUN_CONTROL_OPTIONS,
  splitRunValues,
  trainOptions,
  withoutOptions,
} from './train-options.js';
import { planRun, runTrainCommand } from './train-command.js';

type Key = keyof TextTrainConfig | keyof TextRunSettings;

const DEFAULTS = { ...defaultTextTrainConfig, ...defaultTextRunSettings };

const KEYED: readonly KeyedOption<Key>[] = [
  ...trainOptions<Key>(
    ['steps', 'batch', 'lr', 'lr-schedule', 'warmup', 'weight-decay', 'grad-clip'],
    DEFAULTS,
  ),
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
  ...trainOptions<Key>(['seed', 'save-every', 'eval-every', 'log-every'], DEFAULTS),
];

export const trainTextSpec: CommandSpec = taskCommandSpec('text', {
  name: 'train',
  summary: 'Train a Diffusion-LM (or with --lm the scoring language model) on a text corpus.',
  usage: 'sumi train --task text --data <corpus> --out <dir> [--lm] [options]',
  options: [
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
});

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
  const exportDir = exportFolder(args);
  const { config: flags, run: runFlags } = splitRunValues(optionValues(args));
  const data = args.str('data');
  const plan = await planRun<TextTrainConfig, TextRunSettings, TextTrainerState, null>({
    args,
    out,
    argv: withoutOptions(argv, ['--export']),
    readState: readTextTrainerState,
    given: flags,
    run: runFlags,
    defaultRun: defaultTextRunSettings,
    fresh: () => {
      if (data === undefined) {
        throw new UsageError('--data is required (fortunes, a text file or a folder)');
      }
      return {
        config: { ...defaultTextTrainConfig, ...(flags as Partial<TextTrainConfig>), data },
        data: null,
      };
    },
    // The settings given, as given: the corpus options resolve nothing.
    asked: () => ({ config: data !== undefined ? { ...flags, data } : flags, data: null }),
  });
  const { config, resumed } = plan;
  const corpus = await loadCorpus(config);
  const state = resumed?.state;
  if (
    state !== undefined &&
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
  return runTrainCommand({
    args,
    out,
    command: 'train',
    plan,
    trainer,
    describe: () =>
      `training a ${config.objective === 'diffusion-lm' ? 'Diffusion-LM' : 'causal LM'} of ` +
      `${trainer.model.numParameters().toLocaleString('en-US')} parameters on ${corpus.name} ` +
      `(${corpus.train.length} sentences for training, ${corpus.heldOut.length} held out, ` +
      `${corpus.tokenizer.vocabSize} words, L = ${corpus.seqLength}) on ${backend.name}: ` +
      `batch ${config.batchSize}, lr ${config.lr}`,
    train: (opts, say) =>
      runTextTraining(trainer, {
        ...opts,
        onEval: (r) =>
          say(
            `held-out (${r.sentences} sentences, step ${r.step}): loss ${r.loss.toFixed(4)}` +
              (r.perplexity !== undefined ? `, perplexity ${r.perplexity.toFixed(2)}` : ''),
          ),
      }),
    after:
      exportDir === undefined
        ? undefined
        : async (checkpoint) => {
            if (checkpoint === null) return;
            await exportTextModel(checkpoint, exportDir);
            console.log(`${exportDir}: the text model of ${out}`);
          },
  });
}

export const trainTextCommand = defineCommand(trainTextSpec, (args) =>
  trainText(args, args.parsed.argv),
);
