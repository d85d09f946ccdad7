/**
 * Training on a text corpus: a Diffusion-LM (objective 'diffusion-lm', text-diffusion.ts) or the
 * autoregressive LM that judges its samples ('causal-lm', text-lm.ts), with the diffusion
 * trainer's machinery: counter-based random streams, AdamW with a warmup + decay schedule, an EMA
 * of the weights (the diffusion model), atomic checkpoints that resume bit for bit.
 *
 * Step s:  rows = batch s of the training rows: epoch e = ⌊s / S⌋ (S = ⌊N / B⌋ steps per epoch)
 *          is the permutation of stream (seed, 'data', e), read from position (s mod S)·B;
 *          diffusion-lm: t_b = ⌊u_b T⌋, u from stream (seed, 'timesteps', s); ε then ε₀ from
 *          stream (seed, 'noise', s); loss = L_e2e (text-diffusion.ts);
 *          causal-lm: loss = mean next-token NLL;
 *          backward; clip the global gradient norm; AdamW at lr(s); EMA.
 *
 * A checkpoint (and a model folder, its copy without optimizer and trainer state):
 *   model/config.json, model/model.safetensors   the model (EMA weights when averaged)
 *   tokenizer/                                    the corpus vocabulary (Hugging Face format)
 *   scheduler/scheduler_config.json               the sqrt schedule (diffusion-lm)
 *   sumi.json                                     what sampling needs and the held-out score
 *   model_raw.safetensors                         the un-averaged weights (with EMA)
 *   optimizer.safetensors, trainer_state.json     to resume
 */
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { Generator, noGrad, randn, type Tensor, tensor, tidy } from '../../engine/index.js';
import {
  type AdamW,
  disposeAll,
  EMA,
  loadModule,
  type LrSchedule,
  serializeSafetensors,
  tensorsToWrite,
} from '../../nn/index.js';
import { type CLIPTextModel, loadCLIPTextModel } from '../../nn/models/index.js';
import { DiffusionLMModel, resolveDiffusionLMConfig } from '../../nn/models/diffusion-lm.js';
import {
  loadTokenizer,
  shuffledIndices,
  type TextCorpus,
  type TextCorpusOptions,
  type WordLevelTokenizer,
} from '../../data/index.js';
import { textDiffusionLoss, textSchedule, textSchedulerConfig } from '../text-diffusion.js';
import { createTextLm, lmLoss, lmPerplexity } from '../text-lm.js';
import { TOKENIZER_DIR } from '../text-source.js';
import type { NoiseSchedule } from '../schedule.js';
import {
  type CheckpointFile,
  findCheckpoint,
  jsonBytes,
  SCHEDULER_CONFIG,
  SUMI_INFO,
} from './checkpoint.js';
import {
  closingFiles,
  createOptimizer,
  finiteWeights,
  loadOptimizerState,
  modelFolderFiles,
  readStateFile,
  runInfo,
  type RunRecord,
  runState,
  stateHead,
} from './checkpoint-parts.js';
import { type OptimizerConfig, TrainConfigError } from './config.js';
import { type LoopSettings, TrainerCounters } from './run-loop.js';
import { DropoutStreams, streamSeed, streamUniforms } from './streams.js';
import { clipGradients, updateIfFinite } from '../train-step.js';
import { isFile } from '../files.js';

export type TextObjective = 'diffusion-lm' | 'causal-lm';

/** A text run's config (AdamW's betas and eps are its defaults). */
export interface TextTrainConfig extends Omit<OptimizerConfig, 'adamBetas' | 'adamEps'> {
  objective: TextObjective;
  /** The corpus (`fortunes`, a file or a folder). */
  data: string;
  seqLength: number;
  minWords: number;
  maxVocabSize: number;
  heldOutFraction: number;
  /** Model config keys over the built-in small model (DiffusionLMTransformer or CLIPTextModel). */
  model: Record<string, unknown>;
  /** T of the diffusion schedule. */
  numTrainTimesteps: number;
  /** EMA decay of the saved weights (0: none). */
  emaDecay: number;
}

export const defaultTextTrainConfig: TextTrainConfig = {
  objective: 'diffusion-lm',
  data: 'fortunes',
  seqLength: 16,
  minWords: 3,
  maxVocabSize: 5000,
  heldOutFraction: 0.05,
  model: {},
  numTrainTimesteps: 2000,
  steps: 3000,
  batchSize: 64,
  lr: 1e-3,
  lrSchedule: 'cosine',
  warmupSteps: 100,
  minLr: 0,
  weightDecay: 0,
  maxGradNorm: 1,
  emaDecay: 0.999,
  seed: 0,
};

/** Settings of a run that may change on resume. */
export type TextRunSettings = Required<LoopSettings>;

export const defaultTextRunSettings: TextRunSettings = {
  saveEvery: 500,
  logEvery: 50,
  evalEvery: 0,
};

/** The corpus options of a config. */
export function textCorpusOptions(c: TextTrainConfig): Required<TextCorpusOptions> {
  return {
    seqLength: c.seqLength,
    minWords: c.minWords,
    maxVocabSize: c.maxVocabSize,
    heldOutFraction: c.heldOutFraction,
    seed: c.seed,
  };
}

/** Checks a config; every bad key in one TrainConfigError. */
export function checkTextTrainConfig(c: TextTrainConfig): TextTrainConfig {
  const problems: string[] = [];
  const intAtLeast = (k: keyof TextTrainConfig, min: number): void => {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      problems.push(`${k} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    }
  };
  if (c.objective !== 'diffusion-lm' && c.objective !== 'causal-lm') {
    problems.push(
      `objective must be diffusion-lm or causal-lm, got ${JSON.stringify(c.objective)}`,
    );
  }
  intAtLeast('seqLength', 3);
  intAtLeast('minWords', 1);
  intAtLeast('maxVocabSize', 5);
  intAtLeast('numTrainTimesteps', 2);
  intAtLeast('steps', 1);
  intAtLeast('batchSize', 1);
  intAtLeast('warmupSteps', 0);
  intAtLeast('seed', 0);
  if (!(c.lr > 0)) problems.push(`lr must be > 0, got ${c.lr}`);
  if (!(c.minLr >= 0)) problems.push(`minLr must be >= 0, got ${c.minLr}`);
  if (!(c.weightDecay >= 0)) problems.push(`weightDecay must be >= 0, got ${c.weightDecay}`);
  if (c.maxGradNorm !== null && !(c.maxGradNorm > 0)) {
    problems.push(`maxGradNorm must be > 0 or null, got ${c.maxGradNorm}`);
  }
  if (!(c.emaDecay >= 0 && c.emaDecay < 1))
    problems.push(`emaDecay must be in [0, 1), got ${c.emaDecay}`);
  if (!(c.heldOutFraction >= 0 && c.heldOutFraction < 1)) {
    problems.push(`heldOutFraction must be in [0, 1), got ${c.heldOutFraction}`);
  }
  if (problems.length > 0) throw new TrainConfigError(`text training: ${problems.join('; ')}`);
  return c;
}

export const TEXT_MODEL_DIR = 'model';
export const TEXT_WEIGHTS_NAME = 'model.safetensors';
/** The un-averaged weights of a checkpoint with EMA. */
export const RAW_WEIGHTS_FILE = 'model_raw.safetensors';

/** `sumi.json` of a text model folder. */
export interface TextModelInfo {
  format: 'sumi-text-model';
  version: 1;
  objective: TextObjective;
  data: string;
  seqLength: number;
  /** How the corpus was built (the held-out split and copies are measured against it). */
  corpus: Required<TextCorpusOptions>;
  vocabSize: number;
  trainSentences: number;
  heldOutSentences: number;
  step: number;
  parameters: number;
  weights: 'ema' | 'model';
  heldOut: TextHeldOut | null;
  seconds?: number;
  command?: string;
}

/** The held-out score: mean loss terms (diffusion-lm) or perplexity (causal-lm). */
export interface TextHeldOut {
  step: number;
  sentences: number;
  loss: number;
  perplexity?: number;
  mse?: number;
  rounding?: number;
}

export interface TextTrainerState {
  format: 'sumi-text-trainer-state';
  version: 1;
  step: number;
  config: TextTrainConfig;
  rng: { generator: 'philox4x32-10'; seed: number; nextStep: number };
  data: { name: string; trainSentences: number; heldOutSentences: number; stepsPerEpoch: number };
  ema: { optimizationStep: number } | null;
  heldOut: TextHeldOut | null;
  elapsedSeconds: number;
  run?: TextRunSettings;
  trainArgs?: string[];
  command?: string;
}

export type TextCheckpointMeta = RunRecord<TextRunSettings>;

export interface TextStepStats {
  step: number;
  loss: number;
  gradNorm: number | null;
  lr: number;
  epoch: number;
}

type TextModel = DiffusionLMModel | CLIPTextModel;

export class TextTrainer extends TrainerCounters<TextHeldOut> {
  readonly config: TextTrainConfig;
  readonly corpus: TextCorpus;
  readonly model: TextModel;
  readonly optimizer: AdamW;
  readonly ema: EMA | null;
  readonly schedule: NoiseSchedule | null;
  readonly stepsPerEpoch: number;
  /** The learning rate of each step. */
  readonly lrAt: LrSchedule;
  #epoch = -1;
  #order: number[] = [];
  readonly #dropouts: DropoutStreams;

  constructor(config: TextTrainConfig, corpus: TextCorpus) {
    super();
    this.config = checkTextTrainConfig(config);
    this.corpus = corpus;
    const n = corpus.train.length;
    if (n < config.batchSize) {
      throw new TrainConfigError(
        `${corpus.name}: ${n} training sentences, fewer than the batch size ${config.batchSize}`,
      );
    }
    this.stepsPerEpoch = Math.floor(n / config.batchSize);
    const s = config.seed;
    const init = {
      generator: new Generator(streamSeed(s, 'init')),
      dropoutSeed: streamSeed(s, 'dropout') % 2 ** 32,
    };
    const V = corpus.tokenizer.vocabSize;
    const L = corpus.seqLength;
    if (config.objective === 'diffusion-lm') {
      const mc = resolveDiffusionLMConfig(
        { ...config.model, vocab_size: V, max_position_embeddings: L },
        'model config',
      );
      this.model = new DiffusionLMModel(mc, init);
      this.schedule = textSchedule(config.numTrainTimesteps);
    } else {
      this.model = createTextLm(V, L, config.model, init);
      this.schedule = null;
    }
    this.#dropouts = new DropoutStreams([this.model]);
    ({ optimizer: this.optimizer, lr: this.lrAt } = createOptimizer(this.model, config));
    this.ema =
      config.emaDecay > 0 ? new EMA(this.model, { decay: config.emaDecay, warmup: 'none' }) : null;
  }

  get tokenizer(): WordLevelTokenizer {
    return this.corpus.tokenizer;
  }

  /** The training rows of step s: [B, L] ids. */
  #batch(step: number): { ids: Tensor; epoch: number } {
    const B = this.config.batchSize;
    const L = this.corpus.seqLength;
    const epoch = Math.floor(step / this.stepsPerEpoch);
    if (epoch !== this.#epoch) {
      this.#order = shuffledIndices(
        this.corpus.train.length,
        streamSeed(this.config.seed, 'data', epoch),
      );
      this.#epoch = epoch;
    }
    const at = (step % this.stepsPerEpoch) * B;
    const rows = new Int32Array(B * L);
    for (let b = 0; b < B; b++) {
      const r = this.#order[at + b]!;
      rows.set(this.corpus.trainIds.subarray(r * L, (r + 1) * L), b * L);
    }
    const backend = this.model.parameters()[0]!.backend;
    return { ids: tensor(rows, [B, L], { dtype: 'int32', backend }), epoch };
  }

  /** The loss of rows `ids` with the random draws of stream key `key` (purpose, step). */
  #loss(ids: Tensor, purpose: 'noise' | 'eval', step: number): Tensor {
    if (this.model instanceof DiffusionLMModel) {
      const [B, L] = ids.shape as [number, number];
      const d = this.model.config.embedding_dim;
      const T = this.schedule!.numTrainTimesteps;
      const p = this.model.parameters()[0]!;
      const u = streamUniforms(
        B,
        this.config.seed,
        purpose === 'noise' ? 'timesteps' : 'eval',
        step,
      );
      const ts = Array.from(u, (v) => Math.min(T - 1, Math.floor(v * T)));
      const g = new Generator(streamSeed(this.config.seed, purpose, step));
      const opts = {
        generator: g,
        dtype: p.dtype === 'float64' ? 'float64' : 'float32',
        backend: p.backend,
      } as const;
      const noise = randn([B, L, d], opts);
      const noise0 = randn([B, L, d], opts);
      return textDiffusionLoss(this.model, this.schedule!, ids, ts, noise, noise0).loss;
    }
    return lmLoss(this.model, ids);
  }

  /** Runs optimizer step `this.step` and advances. Throws NonFiniteError before a bad update. */
  async trainStep(): Promise<TextStepStats> {
    const s = this.step;
    const cfg = this.config;
    this.#dropouts.seek(s);
    const lr = this.lrAt(s);
    this.optimizer.lr = lr;
    const { ids, epoch } = this.#batch(s);
    let out: { loss: Tensor; gradNorm: Tensor | null };
    try {
      out = tidy(() => {
        const loss = this.#loss(ids, 'noise', s);
        loss.backward();
        const gradNorm = clipGradients(this.model, cfg.maxGradNorm);
        return { loss: loss.detach(), gradNorm };
      });
    } finally {
      ids.dispose();
    }
    const loss = (await out.loss.data())[0]!;
    const gradNorm = out.gradNorm === null ? null : (await out.gradNorm.data())[0]!;
    out.loss.dispose();
    out.gradNorm?.dispose();
    updateIfFinite(this.optimizer, s, { 'the loss': loss, 'the gradient norm': gradNorm }, () =>
      this.model.zeroGrad(),
    );
    this.ema?.step(this.model);
    this.step = s + 1;
    return { step: this.step, loss, gradNorm, lr, epoch };
  }

  /** Runs fn with the EMA weights in the model (when averaged), then puts the raw ones back. */
  withAveraged<T>(fn: () => T): T {
    if (this.ema === null) return fn();
    this.ema.store(this.model);
    this.ema.copyTo(this.model);
    try {
      return fn();
    } finally {
      this.ema.restore(this.model);
    }
  }

  /**
   * The held-out score of the (averaged) weights: the mean loss with the fixed draws of stream
   * (seed, 'eval', batch), and for the LM its perplexity. Null without held-out sentences.
   */
  evaluateHeldOut(): TextHeldOut | null {
    const n = this.corpus.heldOut.length;
    if (n === 0) return null;
    const L = this.corpus.seqLength;
    const backend = this.model.parameters()[0]!.backend;
    const r = this.withAveraged(() => {
      this.model.eval();
      try {
        const B = 256;
        let total = 0;
        for (let start = 0, k = 0; start < n; start += B, k++) {
          const b = Math.min(B, n - start);
          const ids = this.corpus.heldOutIds.subarray(start * L, (start + b) * L);
          total +=
            b *
            noGrad(() =>
              tidy(() =>
                this.#loss(tensor(ids, [b, L], { dtype: 'int32', backend }), 'eval', k).itemSync(),
              ),
            );
        }
        const loss = total / n;
        if (this.model instanceof DiffusionLMModel) return { loss };
        const ppl = lmPerplexity(this.model, this.corpus.heldOutIds, L);
        return { loss, perplexity: ppl.perplexity };
      } finally {
        this.model.train();
      }
    });
    this.heldOut = { step: this.step, sentences: n, ...r };
    return this.heldOut;
  }

  info(meta: TextCheckpointMeta = {}): TextModelInfo {
    const c = this.config;
    return {
      format: 'sumi-text-model',
      version: 1,
      objective: c.objective,
      data: c.data,
      seqLength: this.corpus.seqLength,
      corpus: textCorpusOptions(c),
      vocabSize: this.tokenizer.vocabSize,
      trainSentences: this.corpus.train.length,
      heldOutSentences: this.corpus.heldOut.length,
      step: this.step,
      parameters: this.model.numParameters(),
      weights: this.ema !== null ? 'ema' : 'model',
      heldOut: this.heldOut,
      // The command alone: a text model's sumi.json has never listed its arguments apart.
      ...runInfo({ ...meta, trainArgs: undefined }),
    };
  }

  state(meta: TextCheckpointMeta = {}): TextTrainerState {
    return {
      ...stateHead('sumi-text-trainer-state', this),
      data: {
        name: this.corpus.name,
        trainSentences: this.corpus.train.length,
        heldOutSentences: this.corpus.heldOut.length,
        stepsPerEpoch: this.stepsPerEpoch,
      },
      ema: this.ema === null ? null : { optimizationStep: this.ema.optimizationStep },
      heldOut: this.heldOut,
      elapsedSeconds: meta.elapsedSeconds ?? this.elapsedBefore,
      ...runState(meta),
    };
  }

  /** The files of a checkpoint (see the module comment); trainer_state.json last. */
  async checkpointFiles(meta: TextCheckpointMeta = {}): Promise<CheckpointFile[]> {
    const raw = await finiteWeights(this.model.namedParameters(), this.step);
    const saved =
      this.ema === null
        ? raw
        : await this.withAveraged(() => tensorsToWrite(this.model.namedParameters(), 'F32'));
    const enc = new TextEncoder();
    const files: CheckpointFile[] = [
      ...modelFolderFiles(TEXT_MODEL_DIR, this.model.configJson(), TEXT_WEIGHTS_NAME, saved),
      {
        path: join(TOKENIZER_DIR, 'tokenizer.json'),
        bytes: enc.encode(this.tokenizer.tokenizerJson()),
      },
      {
        path: join(TOKENIZER_DIR, 'tokenizer_config.json'),
        bytes: enc.encode(this.tokenizer.tokenizerConfigJson()),
      },
    ];
    if (this.schedule !== null) {
      files.push({
        path: SCHEDULER_CONFIG,
        bytes: jsonBytes(textSchedulerConfig(this.config.numTrainTimesteps)),
      });
    }
    if (this.ema !== null) {
      files.push({ path: RAW_WEIGHTS_FILE, bytes: serializeSafetensors(raw, { format: 'pt' }) });
    }
    files.push(...(await closingFiles(this.optimizer, this.info(meta), this.state(meta))));
    return files;
  }

  /** Loads weights, EMA, optimizer state, step and the held-out score from a checkpoint. */
  async loadCheckpoint(dir: string, state: TextTrainerState): Promise<void> {
    const averaged = join(dir, TEXT_MODEL_DIR, TEXT_WEIGHTS_NAME);
    if (this.ema !== null) {
      // The EMA starts from the saved average, the model from the raw weights.
      await loadModule(this.model, averaged);
      this.ema.dispose();
      (this as { ema: EMA }).ema = new EMA(this.model, {
        decay: this.config.emaDecay,
        warmup: 'none',
      });
      this.ema.optimizationStep = state.ema?.optimizationStep ?? state.step;
      await loadModule(this.model, join(dir, RAW_WEIGHTS_FILE));
    } else {
      await loadModule(this.model, averaged);
    }
    await loadOptimizerState(this.optimizer, dir);
    this.resumeCounters(state);
  }

  dispose(): void {
    this.optimizer.dispose();
    this.ema?.dispose();
    disposeAll(this.model.stateDict());
  }
}

/** Reads and checks `trainer_state.json` of a text checkpoint. */
export async function readTextTrainerState(dir: string): Promise<TextTrainerState> {
  const st = (await readStateFile(dir, {
    format: 'sumi-text-trainer-state',
    what: 'Sumi text trainer state',
  })) as unknown as TextTrainerState;
  return { ...st, config: { ...defaultTextTrainConfig, ...st.config } };
}

/** A trained text model: the model, its tokenizer, and what sumi.json says. */
export interface TextModelFolder {
  dir: string;
  info: TextModelInfo;
  tokenizer: WordLevelTokenizer;
  model: TextModel;
  /** The scheduler config (diffusion-lm). */
  schedulerConfig: Record<string, unknown> | null;
}

/**
 * Loads a text model folder: a training output directory (its last checkpoint), a checkpoint, or
 * an exported copy. Every missing or foreign file is an error naming it.
 */
export async function loadTextModel(dir: string): Promise<TextModelFolder> {
  let root = dir;
  if (!(await isFile(join(dir, SUMI_INFO)))) {
    const ck = await findCheckpoint(dir);
    if (ck === null) {
      throw new TrainConfigError(
        `${dir}: not a text model folder (no ${SUMI_INFO}, no checkpoint/)`,
      );
    }
    root = ck;
  }
  const infoPath = join(root, SUMI_INFO);
  const info = JSON.parse(await readFile(infoPath, 'utf8')) as Partial<TextModelInfo>;
  if (info.format !== 'sumi-text-model' || info.version !== 1) {
    throw new TrainConfigError(
      `${infoPath}: not a Sumi text model (format sumi-text-model, version 1)`,
    );
  }
  const tokenizer = await loadTokenizer(join(root, TOKENIZER_DIR));
  const modelDir = join(root, TEXT_MODEL_DIR);
  let model: TextModel;
  let schedulerConfig: Record<string, unknown> | null = null;
  if (info.objective === 'diffusion-lm') {
    const raw = JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8')) as unknown;
    const m = new DiffusionLMModel(resolveDiffusionLMConfig(raw, join(modelDir, 'config.json')), {
      generator: new Generator(0),
    });
    await loadModule(m, join(modelDir, TEXT_WEIGHTS_NAME));
    model = m.eval();
    schedulerConfig = JSON.parse(await readFile(join(root, SCHEDULER_CONFIG), 'utf8')) as Record<
      string,
      unknown
    >;
  } else {
    model = await loadCLIPTextModel(modelDir);
  }
  if (model.config.vocab_size !== tokenizer.vocabSize) {
    throw new TrainConfigError(
      `${root}: the model's vocab_size ${model.config.vocab_size} differs from the tokenizer's ${tokenizer.vocabSize}`,
    );
  }
  // Folders written before sumi.json recorded the corpus options used the defaults.
  const corpus = info.corpus ?? {
    ...textCorpusOptions(defaultTextTrainConfig),
    seqLength: info.seqLength ?? defaultTextTrainConfig.seqLength,
  };
  return {
    dir: root,
    info: { ...(info as TextModelInfo), corpus },
    tokenizer,
    model,
    schedulerConfig,
  };
}

/** Copies the sampling files of a checkpoint (no optimizer, no trainer state) to `dest`. */
export async function exportTextModel(checkpoint: string, dest: string): Promise<void> {
  const files = [
    join(TEXT_MODEL_DIR, 'config.json'),
    join(TEXT_MODEL_DIR, TEXT_WEIGHTS_NAME),
    join(TOKENIZER_DIR, 'tokenizer.json'),
    join(TOKENIZER_DIR, 'tokenizer_config.json'),
    SUMI_INFO,
  ];
  if (await isFile(join(checkpoint, SCHEDULER_CONFIG))) files.push(SCHEDULER_CONFIG);
  for (const f of files) {
    await mkdir(join(dest, f, '..'), { recursive: true });
    await copyFile(join(checkpoint, f), join(dest, f));
  }
}
