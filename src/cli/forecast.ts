/**
 * `sumi forecast`: sample paths of a TimeGrad forecaster past the end of a series (or, with
 * --evaluate, over its test part against the baselines), a fan chart and a CSV of quantiles.
 */
import { writeFile } from 'node:fs/promises';
import { extname } from 'node:path';

import { encodePng } from '../data/image/index.js';
import { seriesLength, type TimeSeries } from '../data/series.js';
import { forecastSamples, timestampAt } from '../diffusion/forecast.js';
import { DEFAULT_SPLIT, ForecastError, loadForecaster } from '../diffusion/forecast-trainer.js';
import { createSampler } from '../diffusion/generate.js';
import { fanChartImage, fanChartSvg, type FanChartData } from '../eval/fan-chart.js';
import { evaluateForecaster } from '../eval/forecast-eval.js';
import { sortedQuantile } from '../eval/metrics/forecast.js';
import { type Args, CliError, type CommandSpec, UsageError } from './args.js';
import {
  BACKEND_OPTION,
  defineCommand,
  EXIT,
  modelOption,
  samplerOption,
  seedOption,
  selectBackend,
} from './common.js';
import { seriesFromArgs, SERIES_OPTIONS } from './train-forecast.js';

/** The quantile levels of the CSV and the chart. */
export const FORECAST_QUANTILES = [0.05, 0.25, 0.5, 0.75, 0.95] as const;

export const forecastSpec: CommandSpec = {
  name: 'forecast',
  summary: 'Forecast a series with a TimeGrad model: sample paths, a fan chart, quantiles.',
  usage:
    'sumi forecast --model <dir> [--data <csv|dataset>] --samples 100 --out forecast.png [--csv q.csv] [--evaluate]',
  notes: [
    'Without --data the series the model was trained on is read again. The forecast starts after ' +
      'the last row; with --evaluate the model forecasts each window of the test part (the last ' +
      '20% of the rows) and is scored against the truth beside the seasonal naive forecast and a ' +
      'Gaussian-output MLP: CRPS (energy form, exact for the samples), MASE and the coverage of the ' +
      '50% and 90% intervals. The chart then shows the last test window with the truth.',
    '--out ending in .svg writes a labelled SVG chart, .png an image of the same chart without text.',
  ],
  options: [
    modelOption("a 'sumi train --task forecast' folder"),
    ...SERIES_OPTIONS,
    { name: 'samples', kind: 'int', arg: 'N', help: 'sample paths', default: '100' },
    samplerOption('ddpm'),
    {
      name: 'steps',
      kind: 'int',
      arg: 'N',
      help: "sampler steps per forecast row (default: the model's diffusion steps, 100)",
    },
    {
      name: 'clip-sample',
      kind: 'number',
      arg: 'R',
      help: "clip each step's x̂_0 to [−R, R] in the model's scaled units (diffusers' clip_sample; ddpm, ddim); default: no clipping",
    },
    seedOption('seed of the sample paths'),
    { name: 'out', kind: 'string', arg: 'FILE', help: 'the fan chart, .png or .svg' },
    {
      name: 'csv',
      kind: 'string',
      arg: 'FILE',
      help: 'the quantiles (default: --out with .csv)',
    },
    { name: 'evaluate', kind: 'flag', help: 'score the test part against the baselines' },
    { name: 'metrics', kind: 'string', arg: 'FILE', help: 'with --evaluate: the scores as JSON' },
    {
      name: 'baseline-steps',
      kind: 'int',
      arg: 'N',
      help: 'with --evaluate: training steps of the Gaussian MLP baseline',
      default: '1500',
    },
    BACKEND_OPTION,
  ],
};

const fmt = (v: number): string => (Number.isInteger(v) ? String(v) : v.toPrecision(6));

/** Quantiles of each horizon row of target d over the sample paths. */
function quantilesOf(paths: readonly Float64Array[], H: number, D: number, d: number): number[][] {
  return Array.from({ length: H }, (_, h) => {
    const col = Float64Array.from(paths, (p) => p[h * D + d]!).sort();
    return FORECAST_QUANTILES.map((q) => sortedQuantile(col, q));
  });
}

/** CSV rows of one forecast: timestamp, target, mean, the quantiles (and the truth when known). */
function csvRows(
  s: TimeSeries,
  origin: number,
  paths: readonly Float64Array[],
  H: number,
  withTruth: boolean,
): string[] {
  const D = s.targets.length;
  const rows: string[] = [];
  for (let d = 0; d < D; d++) {
    const qs = quantilesOf(paths, H, D, d);
    for (let h = 0; h < H; h++) {
      const p = origin + h;
      const meanV = paths.reduce((a, x) => a + x[h * D + d]!, 0) / paths.length;
      const cells = [
        new Date(timestampAt(s, p)).toISOString(),
        s.targets[d]!,
        fmt(meanV),
        ...qs[h]!.map(fmt),
      ];
      if (withTruth) cells.push(fmt(s.values[p * D + d]!));
      rows.push(cells.join(','));
    }
  }
  return rows;
}

function chartData(
  s: TimeSeries,
  origin: number,
  paths: readonly Float64Array[],
  H: number,
  withTruth: boolean,
): FanChartData {
  const D = s.targets.length;
  const back = Math.min(origin, 3 * H);
  const historyX = Array.from({ length: back }, (_, i) => i - back);
  const history = historyX.map((x) => s.values[(origin + x) * D]!);
  const qs = quantilesOf(paths, H, D, 0);
  const futureX = Array.from({ length: H }, (_, h) => h);
  const q = (k: number): number[] => qs.map((r) => r[k]!);
  // The last history point joins the fan to the history line.
  const last = history[history.length - 1]!;
  return {
    historyX,
    history,
    futureX: [-1, ...futureX],
    q05: [last, ...q(0)],
    q25: [last, ...q(1)],
    q50: [last, ...q(2)],
    q75: [last, ...q(3)],
    q95: [last, ...q(4)],
    ...(withTruth ? { truth: [last, ...futureX.map((h) => s.values[(origin + h) * D]!)] } : {}),
  };
}

async function forecastCmd(args: Args): Promise<number> {
  const dir = args.required('model');
  const out = args.required('out');
  const ext = extname(out).toLowerCase();
  if (ext !== '.png' && ext !== '.svg') {
    throw new UsageError(`--out ${out}: the chart is a .png or .svg file`);
  }
  const csv = args.str('csv') ?? `${out.slice(0, -ext.length)}.csv`;
  await selectBackend(args.str('backend'));
  let f;
  try {
    f = await loadForecaster(dir);
  } catch (e) {
    if (e instanceof ForecastError) throw new CliError(e.message, EXIT.usage);
    throw e;
  }
  const { model, schedulerConfig, info } = f;
  const c = model.config;
  const s = await seriesFromArgs(args, {
    data: info.data,
    targets: info.targets,
    timestamp: info.timestamp,
    fill: info.fill,
  });
  if (s.targets.length !== c.target_dim) {
    throw new CliError(
      `${s.name}: ${s.targets.length} target columns, the model forecasts ${c.target_dim}`,
      EXIT.usage,
    );
  }
  if (s.freq !== c.freq) {
    throw new CliError(
      `${s.name}: ${s.freq} rows, the model was trained on ${c.freq} rows`,
      EXIT.usage,
    );
  }
  const need = c.context_length + Math.max(...c.lags_seq);
  if (seriesLength(s) < need) {
    throw new CliError(
      `${s.name}: ${seriesLength(s)} rows; the model reads ${need} before a forecast (context ${c.context_length}, lags up to ${Math.max(...c.lags_seq)})`,
      EXIT.usage,
    );
  }
  const samples = args.num('samples') ?? 100;
  if (samples < 2) throw new UsageError(`--samples must be at least 2, got ${samples}`);
  const sampler = args.str('sampler') ?? 'ddpm';
  const clip = args.num('clip-sample');
  if (clip !== undefined && !(clip > 0))
    throw new UsageError(`--clip-sample must be positive, got ${clip}`);
  const samplerConfig =
    clip === undefined
      ? schedulerConfig
      : { ...schedulerConfig, clip_sample: true, clip_sample_range: clip };
  let scheduler;
  try {
    scheduler = createSampler(sampler, samplerConfig);
  } catch (e) {
    throw new UsageError(`--sampler ${sampler}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const steps = args.num('steps') ?? (schedulerConfig.num_train_timesteps as number);
  const seed = args.num('seed') ?? 0;
  const H = c.prediction_length;
  const evaluate = args.flag('evaluate') === true;
  let origin: number;
  let paths: Float64Array[];
  let csvText: string;
  const header = ['timestamp', 'target', 'mean', ...FORECAST_QUANTILES.map((q) => `q${q}`)];
  if (evaluate) {
    const split = info.split ?? DEFAULT_SPLIT;
    const ev = evaluateForecaster(model, scheduler, s, {
      numSamples: samples,
      numInferenceSteps: steps,
      seed,
      split,
      gaussian: { hidden: 64, steps: args.num('baseline-steps') ?? 1500, batchSize: 64, lr: 1e-3 },
      onProgress: (what) => console.error(what),
    });
    console.log(
      `${s.name} (${s.targets.join(', ')}): ${ev.origins.length} test windows of ${H} rows, ${samples} samples, sampler ${sampler} (${steps} steps)`,
    );
    console.log('method                   CRPS      CRPS/|y|  MASE    cov50   cov90');
    for (const sc of ev.scores) {
      const m = sc.metrics;
      console.log(
        `${sc.method.padEnd(24)} ${m.crps.toPrecision(4).padEnd(9)} ${m.crpsWeighted.toFixed(4).padEnd(9)} ${m.mase.toFixed(3).padEnd(7)} ${(100 * m.coverage50).toFixed(1).padEnd(7)} ${(100 * m.coverage90).toFixed(1)}`,
      );
    }
    const metricsPath = args.str('metrics');
    if (metricsPath !== undefined) {
      const body = {
        data: s.name,
        targets: s.targets,
        model: dir,
        samples,
        sampler,
        steps,
        clipSample: clip ?? null,
        seed,
        windows: ev.origins.length,
        horizon: H,
        season: ev.season,
        scores: ev.scores,
      };
      await writeFile(metricsPath, `${JSON.stringify(body, null, 2)}\n`);
    }
    origin = ev.origins[ev.origins.length - 1]!;
    paths = ev.paths[ev.paths.length - 1]!;
    csvText = [
      ['origin', ...header, 'truth'].join(','),
      ...ev.origins.flatMap((o, w) =>
        csvRows(s, o, ev.paths[w]!, H, true).map(
          (r) => `${new Date(timestampAt(s, o)).toISOString()},${r}`,
        ),
      ),
    ].join('\n');
  } else {
    origin = seriesLength(s);
    paths = forecastSamples(model, scheduler, s, [origin], {
      numSamples: samples,
      numInferenceSteps: steps,
      seed,
    })[0]!;
    csvText = [header.join(','), ...csvRows(s, origin, paths, H, false)].join('\n');
  }
  const data = chartData(s, origin, paths, H, evaluate);
  const title = `${s.name}: ${s.targets[0]}, ${evaluate ? 'last test window' : 'forecast'} from ${new Date(timestampAt(s, origin)).toISOString().slice(0, 10)} (${samples} paths)`;
  const chartOpts = {
    title,
    xLabel: `${s.freq} rows from the forecast origin`,
    yLabel: s.targets[0],
  };
  try {
    await writeFile(
      out,
      ext === '.svg' ? fanChartSvg(data, chartOpts) : encodePng(fanChartImage(data, chartOpts)),
    );
    await writeFile(csv, `${csvText}\n`);
  } catch (e) {
    throw new CliError(`cannot write: ${e instanceof Error ? e.message : String(e)}`);
  }
  console.log(`${out}: fan chart; ${csv}: quantiles of ${H} rows`);
  return EXIT.ok;
}

/** `sumi forecast`. */
export const forecastCommand = defineCommand(forecastSpec, forecastCmd);
