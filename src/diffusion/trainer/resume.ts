/**
 * Continuing the checkpoint in a run's output folder, one way for every trainer. It is continued
 * only when resuming is asked for; the run continues under the checkpoint's config, of which only
 * the step count may change (the schedule then spans the new count), every other setting given
 * must be the checkpoint's (those that differ are refused together, a TrainRequestError naming
 * each), and the reporting settings given override the checkpoint's. The diffusion trainer's
 * requests (setup.ts) compare more: config sources and the nested model, scheduler and text
 * encoder configs.
 */
import { findCheckpoint } from './checkpoint.js';

/** A setting the request gives that differs from the checkpoint's. */
export interface SettingDifference {
  /** A config key ('lr'), or a key of its model, scheduler or text encoder config. */
  key: string;
  /** Where the given value comes from: the request's own settings, or its config source. */
  from: 'setting' | 'source';
  checkpoint: unknown;
  given: unknown;
}

export type TrainRequestProblem = 'checkpoint-exists' | 'no-source' | 'no-data' | 'differs';

/** A request that cannot be run as asked (a usage mistake rather than a failure). */
export class TrainRequestError extends Error {
  override name = 'TrainRequestError';
  constructor(
    readonly problem: TrainRequestProblem,
    message: string,
    /** For 'differs': every setting that differs. */
    readonly differences: readonly SettingDifference[] = [],
    /** For 'checkpoint-exists': the checkpoint's step. */
    readonly checkpointStep: number | null = null,
  ) {
    super(message);
  }
}

/** The checkpoint in `outDir` and its state, or null when there is none. */
export interface Resumable<St> {
  dir: string;
  state: St;
}

/**
 * The checkpoint to continue in `outDir` (null when there is none), its state read by `read`.
 * A checkpoint there without `resume` is a TrainRequestError ('checkpoint-exists').
 */
export async function findResumable<St>(
  outDir: string,
  resume: boolean,
  read: (dir: string) => Promise<St>,
): Promise<Resumable<St> | null> {
  const dir = await findCheckpoint(outDir);
  if (dir === null) return null;
  if (!resume) {
    throw new TrainRequestError(
      'checkpoint-exists',
      `${outDir} already holds a checkpoint; resume it or choose another output folder`,
    );
  }
  return { dir, state: await read(dir) };
}

/** The config keys given that differ from the checkpoint's (the step count apart). */
export function settingDifferences(stored: object, given: object): SettingDifference[] {
  const have = stored as Record<string, unknown>;
  const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
  return Object.entries(given as Record<string, unknown>)
    .filter(([k, v]) => k !== 'steps' && v !== undefined && !same(have[k], v))
    .map(([key, v]) => ({ key, from: 'setting', checkpoint: have[key], given: v }));
}

/** What a resumed run continues under. */
export interface ResumedSettings<C, R> {
  /** The checkpoint's config with the step count asked for. */
  config: C;
  /** Run settings: the defaults, under the checkpoint's, under the ones given. */
  run: R;
  /** Set when the step count changes. */
  stepsChanged: { from: number; to: number } | null;
}

/**
 * The settings a resumed run continues under (see the module comment): `given.config` holds the
 * config keys asked for, `given.steps` the step count (absent: the checkpoint's). Config keys
 * that differ from the checkpoint's are refused together: a TrainRequestError ('differs')
 * naming each.
 */
export function resumedSettings<C extends { steps: number }, R extends object>(
  state: { config: C; run?: Partial<R> },
  given: { config: object; steps?: number; run: Partial<R>; defaultRun: R },
): ResumedSettings<C, R> {
  const stored = state.config;
  const differences = settingDifferences(stored, given.config);
  if (differences.length > 0) {
    throw new TrainRequestError(
      'differs',
      `a resumed run continues under the checkpoint's settings; these differ: ` +
        differences
          .map(
            (d) =>
              `${d.key}: checkpoint ${JSON.stringify(d.checkpoint)}, given ${JSON.stringify(d.given)}`,
          )
          .join('; '),
      differences,
    );
  }
  const steps = given.steps ?? stored.steps;
  return {
    config: { ...stored, steps },
    run: { ...given.defaultRun, ...state.run, ...given.run },
    stepsChanged: steps !== stored.steps ? { from: stored.steps, to: steps } : null,
  };
}
