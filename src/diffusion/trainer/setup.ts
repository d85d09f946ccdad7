/**
 * Setting up a training run from what was asked for: a fresh run from a config source (a preset
 * or a config file) with settings on top, or the resumption of the checkpoint in the output
 * folder. A resumption continues under the checkpoint's settings; the request may repeat them
 * (the same command with resume added, as a job scheduler reruns it), and only the settings it
 * gives that differ from the checkpoint's are refused, each named with both values. The total
 * step count and the reporting settings may change.
 */
import { join } from 'node:path';

import {
  type Dataset,
  ImageFileDataset,
  loadDataset,
  loadTokenizer,
  type WordLevelTokenizer,
} from '../../data/index.js';
import { disposeAll, freezeParameters } from '../../nn/index.js';
import { type AnyDiffusersModel, type Denoiser, WEIGHTS_NAME } from '../../nn/models/index.js';
import { loadPipeline } from '../pipeline.js';
import { findCheckpoint } from './checkpoint.js';
import type { EncodeProgress } from '../latent/cache.js';
import { LATENT_CACHE_FILE, openLatentCache } from '../latent/cache-fs.js';
import { TOKENIZER_DIR } from '../text-source.js';
import { type LoadedVae, loadVae, LATENT_VAE_DIR } from '../latent/vae-fs.js';
import {
  defaultRunSettings,
  type RunSettings,
  type TrainConfig,
  TrainConfigError,
  type TrainConfigSource,
} from './config.js';
import {
  baseConditionDropout,
  checkDreamBoothBase,
  CLASS_IMAGES_FILE,
  ClassImageDataset,
  classImagesKey,
  DreamBoothInputError,
  hasClassImages,
  loadInstanceImages,
  openClassImages,
  sha256File,
  textEncoderWeightsPath,
  unknownWords,
} from './dreambooth.js';
import {
  checkInitConfig,
  checkResumedInit,
  configDifferences,
  disposeInit,
  initConfigInput,
  InitInputError,
  initVae,
  loadInitModel,
} from './init.js';
import { resumedSettings, type SettingDifference, TrainRequestError } from './resume.js';
import {
  type BaseWeights,
  datasetShapeFor,
  type LoraBase,
  type LatentSource,
  readTrainerState,
  resolveTrainConfig,
  Trainer,
  type TrainConfigInput,
  type TrainerState,
} from './trainer.js';

/** The settings that describe how a run reports and saves (free to change on resume). */
export const RUN_SETTING_KEYS: readonly (keyof RunSettings)[] = [
  'saveEvery',
  'sampleEvery',
  'sampleCount',
  'sampleSteps',
  'sampler',
  'logEvery',
];

export interface TrainRequest {
  outDir: string;
  /** Continue the checkpoint in `outDir` when there is one (else start from step 0). */
  resume: boolean;
  /** The config file or preset, and how messages name it ("preset mnist-small"). */
  source: { label: string; config: TrainConfigSource } | null;
  /** Settings given on top of the source (TrainConfig and RunSettings keys, checked). */
  train: Partial<TrainConfig & RunSettings>;
  /** diffusers scheduler config keys given on top of the source's. */
  scheduler: Readonly<Record<string, unknown>>;
  /**
   * Latent diffusion: the autoencoder folder (AutoencoderKL or VQModel). A resumed latent run
   * loads the copy in its checkpoint; a folder given then must hold the same weights.
   */
  vae?: string;
  /** Where the latent cache is (default `<outDir>/latents.safetensors`; see cache-fs.ts). */
  latentCache?: string;
  /**
   * A new run starts from this pipeline folder's weights and model config (init.ts); `source`
   * may then be null. A resumed run needs none, and one given then must hold the same weights.
   */
  init?: string;
  /** Messages about the latent cache (found, stale, encoding), one line each. */
  onMessage?: (line: string) => void;
  /** Progress of encoding the images into latents. */
  onEncodeProgress?: (p: EncodeProgress) => void;
  /** Progress of sampling a DreamBooth run's class images. */
  onClassImageProgress?: (p: { done: number; total: number }) => void;
}

export interface TrainSetup {
  trainer: Trainer;
  run: RunSettings;
  /** The checkpoint continued and its state; null for a run from step 0. */
  resumed: { dir: string; state: TrainerState } | null;
  /** Set when a resumption changes the total step count. */
  stepsChanged: { from: number; to: number } | null;
}

/** The dataset, with every image of a folder read now (an unreadable one fails here). */
export function loadTrainingData(spec: string, size?: number, channels?: 1 | 3): Dataset {
  const ds = loadDataset(spec, { size, channels });
  if (ds instanceof ImageFileDataset) ds.preload();
  return ds;
}

/**
 * Refuses a dataset that is not the one the checkpoint was trained on (its name or size
 * changed: another folder, images added or removed).
 */
export function checkSameImages(
  recorded: { name: string; length: number },
  data: string,
  dataset: Dataset,
): void {
  if (dataset.name !== recorded.name || dataset.length !== recorded.length) {
    throw new Error(
      `the checkpoint was trained on ${recorded.name} (${recorded.length} images); ` +
        `${data} now gives ${dataset.name} (${dataset.length} images)`,
    );
  }
}

/** The latents of a run's images under `vae`: its cache, read or encoded now. */
async function openLatentSource(
  req: TrainRequest,
  vae: LoadedVae,
  ds: Dataset,
  config: TrainConfig,
): Promise<LatentSource> {
  const cache = await openLatentCache({
    path: req.latentCache ?? join(req.outDir, LATENT_CACHE_FILE),
    explicit: req.latentCache !== undefined,
    vae,
    dataset: ds,
    flip: config.flip,
    onMessage: req.onMessage,
    onProgress: req.onEncodeProgress,
  });
  return { vae, cache };
}

/**
 * The base of a LoRA or ControlNet run: its denoiser, loaded (EMA weights when the folder has
 * them) and checked against the run's resolved model config, and the weights file with its
 * sha256; undefined for a run that trains every weight.
 */
export async function loadLoraBase(config: TrainConfig): Promise<LoraBase | undefined> {
  const lora = config.lora ?? config.controlnet ?? config.dreambooth;
  if (!lora) return undefined;
  if (config.textCond && !config.dreambooth) {
    throw new TrainConfigError(
      `${config.lora ? 'LoRA' : 'ControlNet'} training of text-conditioned models is not supported (the base text encoder and tokenizer would have to replace the data's)`,
    );
  }
  const base = await loadPipeline(lora.base);
  const model = base.model as AnyDiffusersModel & Denoiser;
  const have = JSON.parse(model.configJson()) as Record<string, unknown>;
  const differ = configDifferences(
    { label: 'base', config: have },
    { label: 'run', config: config.model },
  );
  if (differ.length > 0) {
    throw new TrainConfigError(
      `the base model ${lora.base} does not fit this run: ${differ.join('; ')}`,
    );
  }
  const dir = base.weights === 'ema' ? base.layout.emaDir! : base.layout.unetDir;
  const path = join(dir, WEIGHTS_NAME);
  const weights = { path, sha256: await sha256File(path) };
  if (!config.dreambooth) return { model, weights };
  // DreamBooth: the base's tokenizer and text encoder read the prompts, and stay as they are.
  if (base.condition.kind !== 'text') {
    disposeAll(model.stateDict());
    throw new DreamBoothInputError(
      `the base ${lora.base} has a text encoder but its denoiser has no cross-attention`,
    );
  }
  for (const c of base.condition.components) freezeParameters(c.module);
  const te = textEncoderWeightsPath(base);
  return {
    model,
    weights,
    condition: base.condition,
    conditionDropout: await baseConditionDropout(base),
    textEncoderWeights: { path: te, sha256: await sha256File(te) },
  };
}

/**
 * The class images of a DreamBooth run (undefined without a class prompt or with λ = 0): the run
 * folder's cache when it fits, else sampled from the base now (dreambooth.ts).
 */
async function classImagesOf(
  req: TrainRequest,
  config: TrainConfig,
  base: LoraBase | undefined,
): Promise<LoraBase['classImages']> {
  const d = config.dreambooth;
  if (!d || !hasClassImages(d) || base === undefined) return undefined;
  const path = join(req.outDir, CLASS_IMAGES_FILE);
  const key = classImagesKey(
    { ...config, dreambooth: d },
    { unetSha256: base.weights.sha256, textEncoderSha256: base.textEncoderWeights!.sha256 },
  );
  const data = await openClassImages({
    path,
    key,
    base: { model: base.model, condition: base.condition! },
    onMessage: req.onMessage,
    onProgress: req.onClassImageProgress,
  });
  return { dataset: new ClassImageDataset(data, path), sha256: data.header.dataSha256 };
}

/** Notes on a DreamBooth run's prompts: words its base's tokenizer does not know. */
async function promptNotes(req: TrainRequest, config: TrainConfig): Promise<void> {
  const d = config.dreambooth;
  if (!d || req.onMessage === undefined) return;
  for (const [what, prompt] of [
    ['instance', d.instancePrompt],
    ['class', d.classPrompt],
  ] as const) {
    if (prompt === null) continue;
    const unknown = await unknownWords(d.base, prompt);
    if (unknown.length > 0) {
      req.onMessage(
        `${what} prompt '${prompt}': ${unknown.map((w) => `'${w}'`).join(', ')} not in the base's ` +
          'vocabulary: encoded as <|unk|>',
      );
    }
  }
}

/**
 * A resumed LoRA run's base, refused when its weights file is not the one the checkpoint's
 * adapters were trained on (a checkpoint that records none is taken as it is).
 */
async function loadResumedLoraBase(state: TrainerState): Promise<LoraBase | undefined> {
  const base = await loadLoraBase(state.config);
  const was: BaseWeights | undefined = state.baseWeights;
  if (base !== undefined && was !== undefined && was.sha256 !== base.weights.sha256) {
    disposeAll(base.model.stateDict());
    const c = state.config;
    throw new TrainConfigError(
      `the checkpoint's ${c.dreambooth && !c.lora ? 'weights' : 'adapters'} were trained on ${was.path} (sha256 ${was.sha256}); ` +
        `the base ${(c.lora ?? c.controlnet ?? c.dreambooth)!.base} now loads ${base.weights.path} (sha256 ` +
        `${base.weights.sha256}): resuming would continue on other weights`,
    );
  }
  return base;
}

/**
 * The autoencoder of a resumed latent run: the copy in its checkpoint (vae/), which must hold the
 * weights the run started with; a `--vae` folder given again must hold them too. Null for a pixel
 * run (which refuses a vae).
 */
async function resumedVae(
  checkpoint: string,
  stored: TrainConfig,
  given: string | undefined,
): Promise<LoadedVae | null> {
  const latent = stored.latent ?? null;
  if (latent === null) {
    if (given !== undefined) {
      throw new TrainRequestError(
        'differs',
        'the checkpoint is a pixel model; --vae would make a latent one',
        [{ key: 'latent', from: 'setting', checkpoint: null, given }],
      );
    }
    return null;
  }
  const vae = await loadVae(join(checkpoint, LATENT_VAE_DIR));
  if (vae.sha256 !== latent.vaeSha256) {
    throw new TrainConfigError(
      `${join(checkpoint, LATENT_VAE_DIR)}: weights sha256 ${vae.sha256}, the run started with ${latent.vaeSha256}`,
    );
  }
  if (given !== undefined) {
    const other = await loadVae(given);
    disposeAll(other.vae.stateDict());
    if (other.sha256 !== latent.vaeSha256) {
      throw new TrainRequestError(
        'differs',
        `the checkpoint trains on the latents of ${latent.vae} (weights sha256 ${latent.vaeSha256}); ` +
          `${given} holds other weights (sha256 ${other.sha256})`,
        [{ key: 'latent.vae', from: 'setting', checkpoint: latent.vae, given }],
      );
    }
  }
  return vae;
}

/** The size and channels of a DreamBooth run's instance images: the base's. */
function instanceShape(shape: { size?: number; channels?: 1 | 3 }): {
  size: number;
  channels: 1 | 3;
} {
  if (shape.size === undefined || shape.channels === undefined) {
    throw new DreamBoothInputError(
      "the base's config gives no sample_size or in_channels of 1 or 3: DreamBooth trains on images of the base's shape",
    );
  }
  return { size: shape.size, channels: shape.channels };
}

/**
 * The trainer of a config with its base (a DreamBooth run's with its class images; `recorded`:
 * the sha256 of those a resumed checkpoint trained on, which they must still be), or with the
 * tokenizer of the model a text run continues (config.init).
 */
async function trainerOn(
  req: TrainRequest,
  config: TrainConfig,
  ds: Dataset,
  base: LoraBase | undefined,
  latent: LatentSource | undefined,
  extra: { recorded?: TrainerState['classImages']; tokenizer?: WordLevelTokenizer } = {},
): Promise<Trainer> {
  const { recorded, tokenizer } = extra;
  try {
    const classImages = await classImagesOf(req, config, base);
    if (recorded !== undefined && classImages?.sha256 !== recorded.sha256) {
      throw new TrainConfigError(
        `the checkpoint trained on class images of sha256 ${recorded.sha256}; ` +
          `${join(req.outDir, CLASS_IMAGES_FILE)} now holds ${classImages?.sha256 ?? 'none'}: ` +
          'resuming would train on other images',
      );
    }
    return new Trainer(
      config,
      ds,
      base && { ...base, classImages },
      latent,
      tokenizer !== undefined ? { tokenizer } : {},
    );
  } catch (e) {
    if (base !== undefined) disposeAll(base.model.stateDict());
    throw e;
  }
}

const isRunKey = (k: string): boolean => (RUN_SETTING_KEYS as readonly string[]).includes(k);

/** TrainConfig keys and RunSettings keys of a settings object, apart. */
export function splitSettings(values: Readonly<Partial<TrainConfig & RunSettings>>): {
  config: Partial<TrainConfig>;
  run: Partial<RunSettings>;
} {
  const config: Record<string, unknown> = {};
  const run: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(values)) {
    if (v !== undefined) (isRunKey(k) ? run : config)[k] = v;
  }
  return { config, run };
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Keys compared as whole resolved configs (see `resumeDifferences`), not as given. */
const RESOLVED_KEYS = new Set(['model', 'scheduler', 'textEncoder']);

/**
 * The settings of a request that differ from a checkpoint's config. Each TrainConfig key the
 * request (or its source) gives is compared as given, except the step count; the scheduler keys
 * given as settings likewise. With a source, `fresh` (the source and settings resolved as a new
 * run would be, on the same data) adds its model, scheduler and text encoder configs, key by key.
 */
export function resumeDifferences(
  stored: TrainConfig,
  req: Pick<TrainRequest, 'source' | 'train' | 'scheduler'>,
  fresh: TrainConfig | null = null,
): SettingDifference[] {
  const out: SettingDifference[] = [];
  const given = splitSettings(req.train).config;
  const fromSource = splitSettings(req.source?.config.train ?? {}).config;
  const storedRecord = stored as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries({ ...fromSource, ...given })) {
    if (k === 'steps' || RESOLVED_KEYS.has(k)) continue;
    if (!same(storedRecord[k], v)) {
      out.push({
        key: k,
        from: k in given ? 'setting' : 'source',
        checkpoint: storedRecord[k],
        given: v,
      });
    }
  }
  if (fresh === null) {
    for (const [k, v] of Object.entries(req.scheduler)) {
      if (!same(stored.scheduler[k], v)) {
        out.push({
          key: `scheduler.${k}`,
          from: 'setting',
          checkpoint: stored.scheduler[k],
          given: v,
        });
      }
    }
    return out;
  }
  const nested = [
    ['model', stored.model, fresh.model],
    ['scheduler', stored.scheduler, fresh.scheduler],
    ['textEncoder', stored.textEncoder ?? {}, fresh.textEncoder ?? {}],
  ] as const;
  for (const [name, a, b] of nested) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      if (k === '_diffusers_version' || same(a[k], b[k])) continue;
      const setting = name === 'scheduler' && Object.hasOwn(req.scheduler, k);
      out.push({
        key: `${name}.${k}`,
        from: setting ? 'setting' : 'source',
        checkpoint: a[k],
        given: b[k],
      });
    }
  }
  return out;
}

function describe(d: SettingDifference, sourceLabel: string | null): string {
  const where = d.from === 'source' && sourceLabel !== null ? ` (from ${sourceLabel})` : '';
  return `${d.key}${where}: checkpoint ${JSON.stringify(d.checkpoint)}, given ${JSON.stringify(d.given)}`;
}

/**
 * The trainer of a new run from `dir`'s weights (init.ts): its config resolved from DIR's model
 * and the request's settings and checked against DIR before anything is written (the latent
 * cache), then every trained weight and its EMA set to DIR's.
 */
async function initTrainer(
  req: TrainRequest,
  dir: string,
  train: Partial<TrainConfig> & { data: string },
): Promise<Trainer> {
  const init = await loadInitModel(dir);
  try {
    const input = initConfigInput(init, {
      dir,
      source: req.source,
      train,
      scheduler: req.scheduler,
    });
    const vae = await initVae(init, req.vae);
    const shape = datasetShapeFor(input, vae?.vae.spec);
    const ds = loadTrainingData(train.data, shape.size, shape.channels);
    let config: TrainConfig;
    try {
      config = resolveTrainConfig(
        input,
        ds,
        vae === null ? undefined : { ...vae.vae, dir: vae.dir },
      );
      checkInitConfig(config, {
        dir,
        source: req.source,
        scheduler: req.scheduler,
        modelConfig: init.modelConfig,
      });
    } catch (e) {
      if (vae !== null) disposeAll(vae.vae.vae.stateDict());
      throw e;
    }
    const latent = vae === null ? undefined : await openLatentSource(req, vae.vae, ds, config);
    const trainer = await trainerOn(req, config, ds, undefined, latent, {
      ...(init.text !== undefined ? { tokenizer: init.text.tokenizer } : {}),
    });
    try {
      await trainer.loadInitWeights(init.pipeline);
    } catch (e) {
      trainer.dispose();
      throw e instanceof TrainConfigError ? e : new InitInputError(String((e as Error).message));
    }
    return trainer;
  } finally {
    disposeInit(init);
  }
}

/**
 * The trainer and run settings of a request (see the module comment). Throws a
 * TrainRequestError for a request that cannot run as asked; loading errors pass through.
 */
export async function setUpTraining(req: TrainRequest): Promise<TrainSetup> {
  const existing = await findCheckpoint(req.outDir);
  const settings = splitSettings(req.train);
  const fromSource = splitSettings(req.source?.config.train ?? {});
  if (existing !== null && !req.resume) {
    const st = await readTrainerState(existing);
    throw new TrainRequestError(
      'checkpoint-exists',
      `${req.outDir} already holds a checkpoint (step ${st.step}); resume it or choose another output folder`,
      [],
      st.step,
    );
  }
  if (existing === null) {
    if (req.source === null && req.init === undefined) {
      throw new TrainRequestError(
        'no-source',
        'a new run needs a model config (a preset or a config file)',
      );
    }
    const data = settings.config.data ?? fromSource.config.data;
    if (data === undefined) throw new TrainRequestError('no-data', 'a new run needs a dataset');
    if (req.init !== undefined) {
      return {
        trainer: await initTrainer(req, req.init, {
          ...fromSource.config,
          ...settings.config,
          data,
        }),
        run: { ...defaultRunSettings, ...fromSource.run, ...settings.run },
        resumed: null,
        stepsChanged: null,
      };
    }
    const source = req.source!;
    const input: TrainConfigInput = {
      model: source.config.model,
      scheduler: { ...source.config.scheduler, ...req.scheduler },
      train: { ...fromSource.config, ...settings.config, data },
    };
    const dreambooth = input.train.dreambooth;
    if (dreambooth) await checkDreamBoothBase(dreambooth.base);
    const vae = req.vae === undefined ? null : await loadVae(req.vae);
    const shape = datasetShapeFor(input, vae?.spec);
    const ds = dreambooth
      ? loadInstanceImages(data, instanceShape(shape))
      : loadTrainingData(data, shape.size, shape.channels);
    const config = resolveTrainConfig(
      input,
      ds,
      vae === null ? undefined : { ...vae, dir: req.vae! },
    );
    const latent = vae === null ? undefined : await openLatentSource(req, vae, ds, config);
    await promptNotes(req, config);
    return {
      trainer: await trainerOn(req, config, ds, await loadLoraBase(config), latent),
      run: { ...defaultRunSettings, ...fromSource.run, ...settings.run },
      resumed: null,
      stepsChanged: null,
    };
  }

  const state = await readTrainerState(existing);
  const stored = state.config;
  const label = req.source?.label ?? null;
  const refuse = (differences: SettingDifference[]): never => {
    throw new TrainRequestError(
      'differs',
      `a resumed run continues under the checkpoint's settings; these differ: ` +
        differences.map((d) => describe(d, label)).join('; '),
      differences,
    );
  };
  if (req.init !== undefined) {
    const given = await loadInitModel(req.init);
    disposeInit(given);
    checkResumedInit(stored, given.record);
  }
  const plain = resumeDifferences(stored, req);
  const vae = await resumedVae(existing, stored, req.vae);
  const ds = stored.dreambooth
    ? loadInstanceImages(stored.data, { size: stored.imageSize, channels: stored.channels })
    : loadTrainingData(stored.data, stored.imageSize, stored.channels);
  checkSameImages(state.data, stored.data, ds);
  let differences = plain;
  if (stored.init && req.source !== null) {
    // The model config was the --init model's: the source's model sections are checked as then.
    checkInitConfig(stored, { dir: stored.init.dir, source: req.source, scheduler: {} });
  } else if (req.source !== null) {
    let fresh: TrainConfig;
    try {
      fresh = resolveTrainConfig(
        {
          model: req.source.config.model,
          scheduler: { ...req.source.config.scheduler, ...req.scheduler },
          train: { ...fromSource.config, ...settings.config, data: stored.data },
        },
        ds,
        vae === null ? undefined : { ...vae, dir: stored.latent!.vae },
      );
    } catch (e) {
      // Settings that cannot even make a config: the plain differences say why, when there are.
      if (plain.length > 0) refuse(plain);
      throw e;
    }
    differences = resumeDifferences(stored, req, fresh);
  }
  if (differences.length > 0) refuse(differences);
  const resumed = resumedSettings(state, {
    config: {},
    steps: settings.config.steps ?? fromSource.config.steps,
    run: { ...fromSource.run, ...settings.run },
    defaultRun: defaultRunSettings,
  });
  const latent = vae === null ? undefined : await openLatentSource(req, vae, ds, stored);
  // A text run from --init reads with that model's tokenizer, which the checkpoint carries.
  const tokenizer =
    stored.init && stored.textCond ? await loadTokenizer(join(existing, TOKENIZER_DIR)) : undefined;
  const trainer = await trainerOn(
    req,
    resumed.config,
    ds,
    await loadResumedLoraBase(state),
    latent,
    {
      recorded: state.classImages,
      ...(tokenizer !== undefined ? { tokenizer } : {}),
    },
  );
  try {
    await trainer.loadCheckpoint(existing, state);
  } catch (e) {
    trainer.dispose();
    throw e;
  }
  return {
    trainer,
    run: resumed.run,
    resumed: { dir: existing, state },
    stepsChanged: resumed.stepsChanged,
  };
}
