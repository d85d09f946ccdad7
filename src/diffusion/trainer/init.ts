/**
 * A new run from a model's weights (`sumi train --init DIR`, as diffusers' training scripts start
 * from `--pretrained_model_name_or_path`): DIR is a pipeline folder (`sumi export`'s, or a run
 * folder or checkpoint, whose EMA weights are taken when it has them), loaded as a LoRA or
 * DreamBooth base is (setup.ts `loadLoraBase`, pipeline.ts `loadPipeline`).
 *
 * The run's model config, scheduler config, conditioning (classes, or the tokenizer and text
 * encoder config) and a latent model's vae are DIR's; a config source (a preset or config file)
 * supplies its "train" section, and each key its model, scheduler or text encoder section gives
 * must be DIR's value. Every trained weight — the denoiser's and its text encoder's — starts as
 * DIR's, converted to the run's dtype, and so does its EMA; the optimizer, the step count and the
 * learning-rate schedule start from step 0. The run's config records DIR and the sha256 of every
 * weights file (config.init), so that a resumption needs nothing from DIR.
 */
import { join } from 'node:path';

import { loadTokenizer, type WordLevelTokenizer } from '../../data/index.js';
import { disposeAll } from '../../nn/index.js';
import { type AnyDiffusersModel, type Denoiser, WEIGHTS_NAME } from '../../nn/models/index.js';
import { type LoadedPipeline, loadPipeline } from '../pipeline.js';
import { type LoadedVae, loadVae } from '../latent/vae-fs.js';
import { TOKENIZER_DIR } from '../text-source.js';
import {
  type InitTrainConfig,
  type TrainConfig,
  TrainConfigError,
  type TrainConfigSource,
} from './config.js';
import { sha256File, textEncoderWeightsPath } from './dreambooth.js';
import { TrainRequestError } from './resume.js';
import type { TrainConfigInput } from './trainer.js';

/** An --init model that cannot start the run asked for: a usage error (`sumi train` exits 2). */
export class InitInputError extends TrainConfigError {
  override name = 'InitInputError';
}

/** The model an --init run starts from, loaded. */
export interface InitModel {
  /** The pipeline: its denoiser, condition source (text encoder), scheduler config and layout. */
  pipeline: LoadedPipeline & { model: AnyDiffusersModel & Denoiser };
  /** What the run's config records of it. */
  record: InitTrainConfig;
  /** The denoiser's config (config.json's object). */
  modelConfig: Record<string, unknown>;
  /** A text model's tokenizer and text encoder config (undefined: not a text model). */
  text?: { tokenizer: WordLevelTokenizer; encoderConfig: Record<string, unknown> };
}

/** A failure to read DIR (missing, not a pipeline, weights that do not fit) as an InitInputError. */
function asInputError(e: unknown): unknown {
  return e instanceof Error && !(e instanceof InitInputError) ? new InitInputError(e.message) : e;
}

/**
 * Loads DIR for a run to start from: its denoiser (EMA weights when it has them), condition
 * source, scheduler config and the sha256 of its weights files. Any problem is an InitInputError.
 */
export async function loadInitModel(dir: string): Promise<InitModel> {
  let loaded: LoadedPipeline;
  try {
    loaded = await loadPipeline(dir, { latent: true });
  } catch (e) {
    throw asInputError(e);
  }
  const pipeline = { ...loaded, model: loaded.model as AnyDiffusersModel & Denoiser };
  try {
    const model = pipeline.model;
    const l = pipeline.layout;
    const unetWeights = join(pipeline.weights === 'ema' ? l.emaDir! : l.unetDir, WEIGHTS_NAME);
    const files = [unetWeights];
    let text: InitModel['text'];
    if (pipeline.condition.kind === 'text') {
      files.push(textEncoderWeightsPath(pipeline));
      const encoder = pipeline.condition.components[0]!.module;
      text = {
        tokenizer: await loadTokenizer(l.tokenizerDir ?? join(l.root, TOKENIZER_DIR)),
        encoderConfig: JSON.parse(encoder.configJson()) as Record<string, unknown>,
      };
    }
    const weights = [];
    for (const path of files) weights.push({ path, sha256: await sha256File(path) });
    return {
      pipeline,
      record: { dir, weights },
      modelConfig: JSON.parse(model.configJson()) as Record<string, unknown>,
      ...(text !== undefined ? { text } : {}),
    };
  } catch (e) {
    disposeInit({ pipeline });
    throw asInputError(e);
  }
}

/** Frees the loaded weights of an --init model (its denoiser, text encoder and vae decoder). */
export function disposeInit(init: Pick<InitModel, 'pipeline'>): void {
  const p = init.pipeline;
  disposeAll((p.model as AnyDiffusersModel).stateDict());
  for (const c of p.condition.components) disposeAll(c.module.stateDict());
  if (p.vae !== null) disposeAll(p.vae.vae.stateDict());
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** `key: <a label> A, <b label> B` for each key where two configs differ (the version aside). */
export function configDifferences(
  a: { label: string; config: Readonly<Record<string, unknown>> },
  b: { label: string; config: Readonly<Record<string, unknown>> },
  keys: readonly string[] = [...new Set([...Object.keys(a.config), ...Object.keys(b.config)])],
): string[] {
  return [...keys]
    .sort()
    .filter((k) => k !== '_diffusers_version' && !same(a.config[k], b.config[k]))
    .map(
      (k) =>
        `${k}: ${a.label} ${JSON.stringify(a.config[k]) ?? 'nothing'}, ${b.label} ${JSON.stringify(b.config[k]) ?? 'nothing'}`,
    );
}

/** The settings of an --init request: the config source's and those given on top. */
export interface InitRequest {
  dir: string;
  source: { label: string; config: TrainConfigSource } | null;
  /** TrainConfig keys (the source's train section, then the settings). */
  train: Partial<TrainConfig> & { data: string };
  /** Scheduler keys given as settings (options). */
  scheduler: Readonly<Record<string, unknown>>;
}

/**
 * The config input of a run from `init`: DIR's model and scheduler configs and conditioning,
 * the request's train settings. A LoRA, ControlNet or DreamBooth setting, or a class or text
 * conditioning that is not DIR's, is refused.
 */
export function initConfigInput(init: InitModel, req: InitRequest): TrainConfigInput {
  const t = req.train;
  const adapter = (['lora', 'controlnet', 'dreambooth'] as const).find((k) => t[k]);
  if (adapter !== undefined) {
    throw new InitInputError(
      `--init starts a run from ${req.dir}'s weights; ${adapter} adapts a base model: give one`,
    );
  }
  const own = {
    classCond: typeof init.modelConfig.num_class_embeds === 'number',
    textCond: init.text !== undefined,
  };
  const differ = configDifferences(
    {
      label: 'given',
      config: { classCond: t.classCond ?? own.classCond, textCond: t.textCond ?? own.textCond },
    },
    { label: req.dir, config: own },
  );
  if (differ.length > 0) {
    throw new InitInputError(`the conditioning is ${req.dir}'s: ${differ.join('; ')}`);
  }
  return {
    model: init.modelConfig,
    scheduler: { ...init.pipeline.schedulerConfig },
    train: { ...t, ...own, textEncoder: init.text?.encoderConfig ?? null, init: init.record },
  };
}

/**
 * Refuses what a request says about the model that is not the run's (DIR's, resolved in
 * `config`): each key of the source's model, scheduler and text encoder sections, each scheduler
 * setting, and a run config whose model config is not DIR's (a sample size or class count of
 * other data). `dir` names DIR; one line, every difference in it.
 */
export function checkInitConfig(
  config: TrainConfig,
  req: Pick<InitRequest, 'source' | 'scheduler'> & {
    dir: string;
    modelConfig?: Record<string, unknown>;
  },
): void {
  const problems: string[] = [];
  const run = { label: req.dir, config: config.model };
  if (req.modelConfig !== undefined) {
    problems.push(
      ...configDifferences(
        { label: req.dir, config: req.modelConfig },
        { label: 'run', config: config.model },
      ),
    );
  }
  const src = req.source;
  if (src !== null) {
    const given = { label: src.label, config: src.config.model };
    problems.push(
      ...configDifferences(given, run, Object.keys(src.config.model)).map((d) => `model.${d}`),
    );
    const sched = { label: src.label, config: src.config.scheduler };
    const runSched = { label: req.dir, config: config.scheduler };
    problems.push(
      ...configDifferences(sched, runSched, schedulerKeys(src.config.scheduler)).map(
        (d) => `scheduler.${d}`,
      ),
    );
    const te = src.config.train.textEncoder;
    if (te !== undefined && te !== null) {
      problems.push(
        ...configDifferences(
          { label: src.label, config: te },
          { label: req.dir, config: config.textEncoder ?? {} },
          Object.keys(te),
        ).map((d) => `text_encoder.${d}`),
      );
    }
  }
  problems.push(
    ...configDifferences(
      { label: 'given', config: req.scheduler },
      { label: req.dir, config: config.scheduler },
      Object.keys(req.scheduler),
    ).map((d) => `scheduler.${d}`),
  );
  const maxPos = config.textEncoder?.max_position_embeddings;
  if (config.textCond && typeof maxPos === 'number' && config.maxTokens > maxPos) {
    problems.push(
      `maxTokens: given ${config.maxTokens}, ${req.dir}'s text encoder takes ${maxPos}`,
    );
  }
  if (problems.length > 0) {
    throw new InitInputError(
      `the model config is ${req.dir}'s (--init); these differ: ${problems.join('; ')}`,
    );
  }
}

/** The scheduler keys a source gives that describe the noise schedule (not the class name). */
function schedulerKeys(s: Readonly<Record<string, unknown>>): string[] {
  return Object.keys(s).filter((k) => k !== '_class_name');
}

/**
 * The vae of a latent --init model: DIR's vae/, or `given` (--vae) when it holds the same weights
 * and config; a vae given for a pixel model, or one that differs, is refused. Null: a pixel model.
 */
export async function initVae(
  init: InitModel,
  given: string | undefined,
): Promise<{ vae: LoadedVae; dir: string } | null> {
  const own = init.pipeline.layout.vaeDir;
  if (own === null) {
    if (given !== undefined) {
      throw new InitInputError(`--vae ${given}: ${init.record.dir} is a pixel model (no vae/)`);
    }
    return null;
  }
  const load = async (dir: string): Promise<LoadedVae> => {
    try {
      return await loadVae(dir);
    } catch (e) {
      throw asInputError(e);
    }
  };
  const vae = await load(own);
  if (given === undefined) return { vae, dir: own };
  const other = await load(given);
  const differ =
    other.sha256 !== vae.sha256
      ? `weights sha256 ${other.sha256}, ${own} has ${vae.sha256}`
      : !same(other.config, vae.config)
        ? `config ${configDifferences({ label: 'given', config: other.config }, { label: own, config: vae.config }).join('; ')}`
        : null;
  disposeAll((differ === null ? vae : other).vae.stateDict());
  if (differ !== null) {
    disposeAll(vae.vae.stateDict());
    throw new InitInputError(`--vae ${given} is not ${init.record.dir}'s vae: ${differ}`);
  }
  return { vae: other, dir: given };
}

/**
 * Refuses an --init given to a resumed run that is not the one it started from (by the sha256 of
 * its weights files, as a --vae given again is compared), or to a run that did not start from one.
 */
export function checkResumedInit(stored: TrainConfig, given: InitTrainConfig): void {
  const was = stored.init ?? null;
  const sha = (c: InitTrainConfig): string => c.weights.map((w) => w.sha256).join(', ');
  if (was !== null && sha(was) === sha(given)) return;
  throw new TrainRequestError(
    'differs',
    was === null
      ? `the checkpoint's run did not start from a model's weights; --init ${given.dir} would`
      : `the checkpoint's run started from ${was.dir} (weights sha256 ${sha(was)}); ` +
          `${given.dir} holds other weights (sha256 ${sha(given)})`,
    [{ key: 'init', from: 'setting', checkpoint: was, given }],
  );
}
