/**
 * `sumi train --task forecast`: trains a TimeGrad forecaster on a series (a CSV file or a named
 * real dataset), with checkpoints that resume, and writes the forecaster folder.
 */
import { loadSeries, namedSeriesNames, NAMED_SERIES } from '../data/series-fs.js';
import { SeriesError, seasonLength, splitByTime, type TimeSeries } from '../data/series.js';
import {
  ForecastError,
  type ForecastTrainConfig,
  trainForecaster,
} from '../diffusion/forecast-trainer.js';
import { type Args, CliError, type CommandSpec, UsageError } from './args.js';
import { BACKEND_OPTION, defineCommand, EXIT, formatDuration, selectBackend } from './common.js';
import { recordedCommand, trainOptions } from './train-options.js';

/** The options that read a series, shared with `sumi forecast`. */
export const SERIES_OPTIONS: CommandSpec['options'] = [
  {
    name: 'data',
    kind: 'string',
    arg: 'D',
    help: `a CSV file (a timestamp column and target columns) or a dataset: ${namedSeriesNames.join(', ')}`,
  },
  {
    name: 'target',
    kind: 'string',
    arg: 'COLS',
    help: 'the target column(s), comma-separated (default for a dataset: its main column)',
  },
  {
    name: 'timestamp',
    kind: 'string',
    arg: 'COL',
    help: 'the timestamp column (default: the first column)',
  },
  {
    name: 'fill',
    kind: 'string',
    arg: 'HOW',
    choices: ['none', 'forward'],
    help: 'missing values: none (refuse, naming the row and column) or forward (repeat the previous value)',
    default: 'none',
  },
];

/** The defaults of the options shared with the other training commands (train-options.ts). */
const DEFAULTS = { steps: 1000, batchSize: 32, lr: 1e-3, seed: 0, saveEvery: 100 } as const;

export const trainForecastSpec: CommandSpec = {
  name: 'train',
  summary: 'Train a TimeGrad forecaster (--task forecast) on a time series.',
  usage:
    'sumi train --task forecast --data <csv|dataset> [--target COL[,COL]] --context 96 --horizon 24 --out <dir>',
  notes: [
    'The series is split by time: the last 20% of the rows is the test part, the 10% before it ' +
      'validation; the model trains on windows of the rest. A run resumes from <out>/checkpoint ' +
      'when one of the same options is there.',
    `Datasets (npm vega-datasets): ${namedSeriesNames.map((n) => `${n}: ${NAMED_SERIES[n]!.about}`).join('; ')}.`,
  ],
  options: [
    { name: 'task', kind: 'string', arg: 'T', help: 'forecast' },
    ...SERIES_OPTIONS,
    {
      name: 'context',
      kind: 'int',
      arg: 'C',
      help: 'rows the model reads before a forecast',
      default: '96',
    },
    { name: 'horizon', kind: 'int', arg: 'H', help: 'rows forecast', default: '24' },
    {
      name: 'lags',
      kind: 'string',
      arg: 'L',
      help: 'lags of the inputs, comma-separated (default 1, m, 2m with m the season: 24 hourly, 7 daily, 12 monthly)',
    },
    {
      name: 'scaling',
      kind: 'string',
      arg: 'S',
      choices: ['mean', 'standard'],
      help: "each window's scale: mean (mean |x| over the context, TimeGrad's) or standard (mean and deviation)",
      default: 'mean',
    },
    ...trainOptions(['steps', 'batch', 'lr', 'seed', 'save-every'], DEFAULTS, {
      steps: 'optimizer steps',
      batch: 'windows per step',
      lr: 'learning rate (AdamW)',
      'save-every': 'steps between checkpoints',
    }),
    {
      name: 'rows',
      kind: 'int',
      arg: 'N',
      help: 'window rows per step that the denoiser scores (0: all)',
      default: '512',
    },
    { name: 'layers', kind: 'int', arg: 'N', help: 'GRU layers', default: '2' },
    { name: 'hidden', kind: 'int', arg: 'N', help: 'GRU width', default: '40' },
    {
      name: 'residual-layers',
      kind: 'int',
      arg: 'N',
      help: 'residual blocks of ε_θ',
      default: '8',
    },
    { name: 'residual-channels', kind: 'int', arg: 'N', help: 'channels of ε_θ', default: '8' },
    {
      name: 'cond-channels',
      kind: 'int',
      arg: 'N',
      help: 'channels of the RNN state per target given to ε_θ (the paper: 1)',
      default: '1',
    },
    { name: 'out', kind: 'string', arg: 'DIR', help: 'the forecaster folder to write' },
    BACKEND_OPTION,
  ],
};

/** Comma-separated names, or undefined. */
export function listOption(args: Args, name: string): string[] | undefined {
  const v = args.str(name);
  if (v === undefined) return undefined;
  const parts = v.split(',').map((p) => p.trim());
  if (parts.some((p) => p === '')) throw new UsageError(`--${name}: an empty name in '${v}'`);
  return parts;
}

/** The series of --data/--target/--timestamp/--fill; its problems are usage errors. */
export async function seriesFromArgs(
  args: Args,
  fallback: { data?: string; targets?: string[]; timestamp?: string | null; fill?: string } = {},
): Promise<TimeSeries> {
  const data = args.str('data') ?? fallback.data;
  if (data === undefined) throw new UsageError('--data is required (a CSV file or a dataset name)');
  const targets = listOption(args, 'target') ?? fallback.targets;
  try {
    return await loadSeries(data, {
      targets,
      timestamp: args.str('timestamp') ?? fallback.timestamp ?? undefined,
      fill: (args.str('fill') ?? fallback.fill ?? 'none') as 'none' | 'forward',
    });
  } catch (e) {
    if (e instanceof SeriesError) throw new CliError(e.message, EXIT.usage);
    throw e;
  }
}

function positive(args: Args, name: string, fallback: number, min = 1): number {
  const v = args.num(name) ?? fallback;
  if (!(v >= min)) throw new UsageError(`--${name} must be at least ${min}, got ${v}`);
  return v;
}

async function trainForecast(args: Args): Promise<number> {
  const out = args.required('out');
  await selectBackend(args.str('backend'));
  const s = await seriesFromArgs(args);
  const m = seasonLength(s.freq);
  const lags = (listOption(args, 'lags') ?? [1, m, 2 * m].map(String)).map((l) => {
    const n = Number(l);
    if (!Number.isInteger(n) || n < 1)
      throw new UsageError(`--lags: '${l}' is not a positive integer`);
    return n;
  });
  const config: ForecastTrainConfig = {
    data: args.required('data'),
    targets: s.targets,
    timestamp: args.str('timestamp') ?? null,
    fill: (args.str('fill') ?? 'none') as 'none' | 'forward',
    context: positive(args, 'context', 96),
    horizon: positive(args, 'horizon', 24),
    lags: [...new Set(lags)].sort((a, b) => a - b),
    scaling: (args.str('scaling') ?? 'mean') as 'mean' | 'standard',
    steps: positive(args, 'steps', DEFAULTS.steps),
    batchSize: positive(args, 'batch', DEFAULTS.batchSize),
    lr: args.num('lr') ?? DEFAULTS.lr,
    seed: positive(args, 'seed', DEFAULTS.seed, 0),
    saveEvery: positive(args, 'save-every', DEFAULTS.saveEvery),
    maxRows: positive(args, 'rows', 512, 0) || null,
    model: {
      num_layers: positive(args, 'layers', 2),
      hidden_size: positive(args, 'hidden', 40),
      residual_layers: positive(args, 'residual-layers', 8),
      residual_channels: positive(args, 'residual-channels', 8),
      cond_channels: positive(args, 'cond-channels', 1),
    },
  };
  try {
    // Checked before anything is printed or written (trainForecaster checks it again).
    splitByTime(s, { context: config.context, horizon: config.horizon, lags: config.lags });
  } catch (e) {
    if (e instanceof SeriesError) throw new CliError(e.message, EXIT.usage);
    throw e;
  }
  const started = performance.now();
  console.error(
    `sumi train: ${s.name} (${s.targets.join(', ')}; ${s.timestamps.length} ${s.freq} rows), context ${config.context}, horizon ${config.horizon}, lags ${config.lags.join(',')}`,
  );
  try {
    const r = await trainForecaster(s, config, out, {
      command: recordedCommand('train', args.parsed.argv),
      onStep: ({ step, loss }) => {
        if (step % 50 === 0 || step === config.steps) {
          const t = (performance.now() - started) / 1000;
          console.error(
            `step ${step}/${config.steps}  loss ${loss.toFixed(4)}  ${formatDuration(t)}`,
          );
        }
      },
      onSave: ({ step, validationLoss }) =>
        console.error(`checkpoint at step ${step}: validation loss ${validationLoss.toFixed(4)}`),
    });
    console.log(
      `${out}: TimeGrad forecaster, ${r.step} steps, train loss ${r.trainLoss.toFixed(4)}, validation loss ${r.validationLoss.toFixed(4)}`,
    );
  } catch (e) {
    if (e instanceof SeriesError || e instanceof ForecastError) {
      throw new CliError(e.message, EXIT.usage);
    }
    throw e;
  }
  return EXIT.ok;
}

/** `sumi train --task forecast`. */
export const trainForecastCommand = defineCommand(trainForecastSpec, trainForecast);
