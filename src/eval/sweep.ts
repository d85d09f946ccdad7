/**
 * Sample quality against sampling cost: FD of n samples for every (sampler, number of steps), the
 * same seed and conditions for every point, against one reference set; as JSON and as a chart of
 * FD over steps (log scale), one line per sampler, with the floor (FD of real images against the
 * reference set, `sampleFloor`) dashed.
 */
import type { Scheduler } from '../diffusion/index.js';
import { classDistribution } from './metrics/index.js';
import {
  type AccuracyReport,
  accuracyReport,
  checkEnoughSamples,
  sampleBatches,
  type SampleRequest,
} from './evaluate.js';
import { featureStats, frechetDistance } from './metrics/index.js';
import { type EvalClassifier, FeatureCollector, type Reference } from './reference.js';
import { lineChartSvg } from './svg-chart.js';

export interface SweepPoint {
  sampler: string;
  steps: number;
  fd: number;
  /** Entropy of the predicted classes, bits. */
  entropyBits: number;
  /** Conditional accuracy (null for an unconditional run). */
  accuracy: number | null;
  accuracyStandardError: number | null;
  modelCallsPerImage: number;
  /** Seconds of sampling. */
  seconds: number;
}

/** What every point shares; a saved sweep continues only under the same settings. */
export interface SweepSettings {
  model: string;
  weights: string;
  classifier: string;
  classifierHash: string;
  reference: string;
  n: number;
  seed: number;
  batchSize: number;
  conditions: string;
  guidance: number;
  guideScale: number | null;
  karras: boolean;
}

export interface SweepResult {
  format: 'sumi-sweep';
  version: 1;
  settings: SweepSettings;
  /** FD between two halves of the reference set (null when undefined). */
  floor: number | null;
  points: SweepPoint[];
}

export interface SweepOptions {
  samplers: readonly string[];
  steps: readonly number[];
  /** The sampler of a name, over the model's training schedule. */
  makeScheduler: (name: string) => Scheduler;
  /** Everything of a sampling run but the sampler and the number of steps. */
  request: Omit<SampleRequest, 'scheduler' | 'numInferenceSteps'>;
  classifier: EvalClassifier;
  reference: Reference;
  /** The class each image should show (null: unconditional), and the number of classes. */
  requested: readonly number[] | null;
  /** Points measured before (skipped). */
  done?: readonly SweepPoint[];
  /** Called with every new point (to save progress). */
  onPoint?: (p: SweepPoint) => void | Promise<void>;
  onProgress?: (what: string, done: number, total: number) => void;
}

/** FD (and class statistics) of every (sampler, steps) not in `done`; returns all points. */
export async function runSweep(opts: SweepOptions): Promise<SweepPoint[]> {
  const k = opts.classifier.numClasses;
  const points = [...(opts.done ?? [])];
  checkEnoughSamples(opts.request.values.length, opts.classifier.numFeatures);
  for (const sampler of opts.samplers) {
    for (const steps of opts.steps) {
      if (points.some((p) => p.sampler === sampler && p.steps === steps)) continue;
      const collector = new FeatureCollector(opts.classifier);
      const info = await sampleBatches(
        { ...opts.request, scheduler: opts.makeScheduler(sampler), numInferenceSteps: steps },
        (b) => collector.add(b.x, 'the samples'),
        (done, total) => opts.onProgress?.(`${sampler} ${steps} steps`, done, total),
      );
      const gen = collector.finish();
      const fd = frechetDistance(featureStats(gen.features), opts.reference.stats).distance;
      const acc: AccuracyReport | null =
        opts.requested === null ? null : accuracyReport(gen.predicted, opts.requested, k);
      const point: SweepPoint = {
        sampler,
        steps,
        fd,
        entropyBits: classDistribution(gen.predicted, k).entropyBits,
        accuracy: acc?.accuracy ?? null,
        accuracyStandardError: acc?.standardError ?? null,
        modelCallsPerImage: info.modelCallsPerImage,
        seconds: info.seconds,
      };
      points.push(point);
      await opts.onPoint?.(point);
    }
  }
  return points;
}

/** Whether two sweeps were run under the same settings. */
export function sameSettings(a: SweepSettings, b: SweepSettings): boolean {
  const keys = Object.keys(a) as (keyof SweepSettings)[];
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}

/** The chart of a sweep: FD over steps (log x; log y when FD spans more than 10×). */
export function sweepSvg(r: SweepResult): string {
  const samplers = [...new Set(r.points.map((p) => p.sampler))];
  const series = samplers.map((s) => ({
    name: s,
    points: r.points
      .filter((p) => p.sampler === s)
      .sort((a, b) => a.steps - b.steps)
      .map((p) => ({ x: p.steps, y: p.fd })),
  }));
  const fds = r.points.map((p) => p.fd).filter((v) => v > 0);
  const logY = fds.length > 0 && Math.max(...fds) / Math.min(...fds) > 10;
  return lineChartSvg(series, {
    title: `FD of ${r.settings.n} samples against ${r.settings.reference.split(':')[0]}`,
    xLabel: 'sampler steps',
    yLabel: `Fréchet distance${logY ? ' (log scale)' : ''}`,
    logX: true,
    logY,
    xTicks: [...new Set(r.points.map((p) => p.steps))].sort((a, b) => a - b),
    lines: r.floor === null ? [] : [{ y: r.floor, label: `floor ${r.floor.toPrecision(3)}` }],
  });
}

/** One scale of a guidance trade-off: FD at classifier-free scale w (and classifier scale s). */
export interface GuidancePoint {
  guidance: number;
  /** Classifier guidance scale, or null without classifier guidance. */
  classifierScale: number | null;
  fd: number;
}

/**
 * The chart of a guidance trade-off: FD over w (one line), or with classifier guidance FD over s,
 * one line per w; the floor dashed.
 */
export function guidanceSvg(
  points: readonly GuidancePoint[],
  opts: { floor: number | null; n: number; model: string },
): string {
  const guided = points.some((p) => p.classifierScale !== null);
  const names = [...new Set(points.map((p) => (guided ? `w = ${p.guidance}` : 'classifier-free')))];
  const series = names.map((name) => ({
    name,
    points: points
      .filter((p) => !guided || `w = ${p.guidance}` === name)
      .map((p) => ({ x: guided ? p.classifierScale! : p.guidance, y: p.fd }))
      .sort((a, b) => a.x - b.x),
  }));
  return lineChartSvg(series, {
    title: `FD of ${opts.n} samples of ${opts.model} over the guidance scale`,
    xLabel: guided ? 'classifier guidance scale s' : 'classifier-free guidance scale w',
    yLabel: 'Fréchet distance',
    xTicks: [...new Set(series.flatMap((l) => l.points.map((p) => p.x)))].sort((a, b) => a - b),
    lines:
      opts.floor === null ? [] : [{ y: opts.floor, label: `floor ${opts.floor.toPrecision(3)}` }],
  });
}
