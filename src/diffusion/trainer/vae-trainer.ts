/**
 * Training the autoencoder of latent diffusion (Rombach et al. 2022, §3): an AutoencoderKL
 * (KL-regularised) or a VQModel (vector-quantised), with the diffusion trainer's machinery:
 * counter-based random streams, the DataLoader, AdamW with a warmup + decay schedule, atomic
 * checkpoints that resume bit for bit.
 *
 * Step s:  x = batch s of the DataLoader over the training split;
 *          KL: q(z|x) = encode(x), z = μ + σ ε with ε from stream (seed, 'noise', s), x̂ = decode(z),
 *              L = rec(x̂, x) + w_kl KL(q ‖ N(0, I));
 *          VQ: z_e = encode(x), e = nearest codebook rows, x̂ = decode(z_e + sg[e − z_e]),
 *              L = rec(x̂, x) + mean((sg[z_e] − e)²) + β mean((z_e − sg[e])²) (the first term
 *              dropped with an EMA codebook, which follows its assignments instead);
 *          from step `discStart` on: L += w_d · (−mean(D(x̂))), and after the autoencoder's update
 *          the patch discriminator D takes an AdamW step on its hinge loss;
 *          backward; clip the autoencoder's gradient norm; AdamW at lr(s).
 * (autoencoder-losses.ts has the formulas.)
 *
 * Streams: 'init' (the autoencoder's weights; step 1: the discriminator's), 'data' (the loader),
 * 'holdout' (the held-out split), 'noise' (posterior samples), 'augment' (dead-code restarts),
 * 'eval' (the posterior samples of the scaling factor: batch k of the first K, stream step k).
 *
 * The scaling factor written into `vae/config.json` at every checkpoint is 1/std of the latents of
 * the first `scalingBatches` training batches under the current weights (posterior samples for
 * KL, the unquantized latents after quant_conv for VQ), as Stable Diffusion's 0.18215 was found.
 */
import { join } from 'node:path';

import {
  add,
  concat,
  cpuBackend,
  Generator,
  mul,
  noGrad,
  permute,
  reshape,
  type Tensor,
  tidy,
} from '../../engine/index.js';
import {
  AdamW,
  disposeAll,
  loadModule,
  loadTensors,
  type LrSchedule,
  serializeSafetensors,
  tensorsToWrite,
} from '../../nn/index.js';
import {
  AutoencoderKL,
  CodebookEma,
  configToJson,
  PatchDiscriminator,
  VQModel,
  WEIGHTS_NAME,
} from '../../nn/models/index.js';
import { type Dataset, DataLoader, subsetDataset } from '../../data/index.js';
import {
  hingeDiscriminatorLoss,
  hingeGeneratorLoss,
  klLoss,
  reconstructionLoss,
  straightThrough,
  vqLoss,
} from '../autoencoder-losses.js';
import type { CheckpointFile } from './checkpoint.js';
import {
  closingFiles,
  createOptimizer,
  finiteWeights,
  loadOptimizerState,
  modelFolderFiles,
  optimizerStateBytes,
  readStateFile,
  runInfo,
  runState,
  type SplitDataState,
  splitDataState,
  stateHead,
} from './checkpoint-parts.js';
import { checkImageShape, TrainConfigError } from './config.js';
import type { LoadedVae } from '../latent/vae-fs.js';
import { type LoopCheckpointMeta, TrainerCounters } from './run-loop.js';
import { streamSeed, streamUniforms } from './streams.js';
import { clipGradients, NonFiniteError, updateIfFinite } from '../train-step.js';
import {
  AUTOENCODER_CLASS,
  CODEBOOK_EMA_FILE,
  defaultVaeTrainConfig,
  DISCRIMINATOR_FILE,
  DISCRIMINATOR_OPTIMIZER_FILE,
  VAE_DIR,
  type VaeRunSettings,
  type VaeTrainConfig,
} from './vae-config.js';
import {
  type Autoencoder,
  evaluateReconstruction,
  type ImageQualityMeasure,
  type ReconstructionScores,
  codebookStats,
} from './vae-eval.js';

/**
 * Splits an (unlabelled) dataset into training and held-out indices (each ascending):
 * round(fraction · n), at least one when fraction > 0 and n > 1, chosen uniformly by a
 * Fisher–Yates shuffle from stream (seed, 'holdout').
 */
export function imageHoldoutSplit(
  length: number,
  fraction: number,
  seed: number,
): { train: number[]; heldOut: number[] } {
  const all = Array.from({ length }, (_, i) => i);
  if (fraction === 0 || length < 2) return { train: all, heldOut: [] };
  const take = Math.min(length - 1, Math.max(1, Math.round(fraction * length)));
  const uniforms = streamUniforms(length, seed, 'holdout');
  const idx = [...all];
  for (let i = length - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor(uniforms[i]! * (i + 1)));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  const held = new Set(idx.slice(0, take));
  return { train: all.filter((i) => !held.has(i)), heldOut: all.filter((i) => held.has(i)) };
}

export interface VaeStepStats {
  /** Steps completed. */
  step: number;
  /** The autoencoder's total loss. */
  loss: number;
  /** The reconstruction term (unweighted by the regularisers). */
  rec: number;
  /** KL kind: KL(q ‖ N(0, I)) before its weight. */
  kl: number | null;
  /** VQ kind: the codebook + commitment loss. */
  vq: number | null;
  /** With the discriminator on: the generator's and the discriminator's hinge losses. */
  gLoss: number | null;
  dLoss: number | null;
  /** VQ kind: share of the codebook used over the last `usageWindow` batches, and perplexity. */
  codebookUsage: number | null;
  perplexity: number | null;
  gradNorm: number | null;
  lr: number;
  epoch: number;
}

/** The held-out scores of the weights of one step. */
export interface VaeHeldOut extends ReconstructionScores {
  step: number;
}

/** `sumi.json` of an autoencoder checkpoint. */
export interface VaeInfo {
  format: 'sumi-autoencoder';
  version: 1;
  kind: VaeTrainConfig['kind'];
  className: 'AutoencoderKL' | 'VQModel';
  imageSize: number;
  channels: number;
  latentChannels: number;
  latentSize: number;
  downsampleFactor: number;
  /** 1/std of the training latents (also `scaling_factor` in vae/config.json). */
  scalingFactor: number;
  data: string;
  step: number;
  parameters: number;
  heldOut: (VaeHeldOut & { fraction: number }) | null;
  seconds?: number;
  command?: string;
  trainArgs?: string[];
}

/** What `trainer_state.json` of an autoencoder checkpoint holds. */
export interface VaeTrainerState {
  format: 'sumi-vae-trainer-state';
  version: 1;
  step: number;
  config: VaeTrainConfig;
  rng: { generator: 'philox4x32-10'; seed: number; nextStep: number };
  data: SplitDataState;
  heldOut: VaeHeldOut | null;
  scalingFactor: number;
  elapsedSeconds: number;
  backend: string;
  run?: VaeRunSettings;
  trainArgs?: string[];
  command?: string;
}

export type VaeCheckpointMeta = Partial<LoopCheckpointMeta<VaeRunSettings>>;

export interface VaeTrainerOptions {
  /** PSNR and SSIM of held-out reconstructions (from the eval layer); without it only errors. */
  measure?: ImageQualityMeasure;
}

const EVAL_BATCH = 64;
const CODEBOOK_PARAM = 'quantize.embedding.weight';

export class VaeTrainer extends TrainerCounters<VaeHeldOut> {
  readonly config: VaeTrainConfig;
  readonly dataset: Dataset;
  readonly trainSet: Dataset;
  readonly heldOutSet: Dataset | null;
  readonly model: Autoencoder;
  readonly optimizer: AdamW;
  readonly discriminator: PatchDiscriminator | null;
  readonly discOptimizer: AdamW | null;
  readonly codebookEma: CodebookEma | null;
  readonly loader: DataLoader;
  /** The learning rate of each step. */
  readonly lrAt: LrSchedule;
  readonly #measure: ImageQualityMeasure | undefined;
  /** Codebook counts of the recent batches and their sum (VQ). */
  readonly #usage: Int32Array[] = [];
  readonly #usageSum: Float64Array;

  /** A fresh trainer (initial weights from stream (seed, 'init')) on the default backend. */
  constructor(config: VaeTrainConfig, dataset: Dataset, opts: VaeTrainerOptions = {}) {
    super();
    checkImageShape(dataset, config);
    this.config = config;
    this.dataset = dataset;
    this.#measure = opts.measure;
    const s = config.seed;
    const split = imageHoldoutSplit(dataset.length, config.holdout, s);
    this.trainSet = subsetDataset(dataset, split.train);
    this.heldOutSet = split.heldOut.length > 0 ? subsetDataset(dataset, split.heldOut) : null;
    const init = { generator: new Generator(streamSeed(s, 'init')) };
    this.model =
      config.kind === 'kl'
        ? new AutoencoderKL(config.model, init)
        : new VQModel(config.model, init);
    const ema = config.kind === 'vq' ? config.emaCodebook : null;
    const trained = this.model
      .namedParameters()
      .filter(([n]) => ema === null || n !== CODEBOOK_PARAM);
    ({ optimizer: this.optimizer, lr: this.lrAt } = createOptimizer(trained, config));
    this.codebookEma =
      ema !== null && this.model instanceof VQModel
        ? new CodebookEma(this.model.quantize, ema)
        : null;
    this.#usageSum = new Float64Array(
      this.model instanceof VQModel ? this.model.config.num_vq_embeddings : 0,
    );
    if (config.discStart !== null) {
      this.discriminator = new PatchDiscriminator(config.discriminator, {
        generator: new Generator(streamSeed(s, 'init', 1)),
      });
      this.discOptimizer = new AdamW(this.discriminator, {
        lr: config.discLr,
        betas: [0.5, 0.9],
        weightDecay: 0,
      });
    } else {
      this.discriminator = null;
      this.discOptimizer = null;
    }
    this.loader = new DataLoader(this.trainSet, {
      batchSize: config.batchSize,
      seed: streamSeed(s, 'data'),
      flip: config.flip,
    });
  }

  /** Runs optimizer step `this.step` and advances. Throws NonFiniteError before a bad update. */
  async trainStep(): Promise<VaeStepStats> {
    const s = this.step;
    const cfg = this.config;
    const model = this.model;
    const lr = this.lrAt(s);
    this.optimizer.lr = lr;
    const batch = this.loader.batchAt(s);
    batch.labels?.dispose();
    const x = batch.x;
    const D = this.discriminator;
    const adversarial = D !== null && cfg.discStart !== null && s >= cfg.discStart;
    const clip = cfg.maxGradNorm;
    await this.codebookEma?.start();
    let out: { scalars: Tensor; indices: Tensor | null; latents: Tensor | null };
    try {
      out = tidy(() => {
        let xhat: Tensor;
        let reg: Tensor;
        let indices: Tensor | null = null;
        let latents: Tensor | null = null;
        if (model instanceof AutoencoderKL) {
          const posterior = model.encode(x);
          const z = posterior.sample(new Generator(streamSeed(cfg.seed, 'noise', s)));
          xhat = model.decode(z);
          reg = klLoss(posterior);
        } else {
          const ze = model.encode(x);
          const [b, c, h, w] = ze.shape as [number, number, number, number];
          const flat = reshape(permute(ze, [0, 2, 3, 1]), [-1, c]);
          indices = model.quantize.nearest(flat);
          const e = model.quantize.lookup(indices, [b, h, w]);
          reg = vqLoss(ze, e, cfg.vqBeta, this.codebookEma === null);
          xhat = model.decoder.forward(model.postQuantConv.forward(straightThrough(ze, e)));
          if (this.codebookEma !== null) latents = flat.detach();
        }
        const rec = reconstructionLoss(xhat, x, { l1: cfg.l1Weight, mse: cfg.mseWeight });
        let loss = add(rec, model instanceof AutoencoderKL ? mul(reg, cfg.klWeight) : reg);
        let g: Tensor | null = null;
        if (adversarial) {
          g = hingeGeneratorLoss(D.forward(xhat));
          loss = add(loss, mul(g, cfg.discWeight));
        }
        loss.backward();
        const norm = clipGradients(this.optimizer.params, clip);
        let d: Tensor | null = null;
        if (adversarial) {
          D.zeroGrad();
          d = hingeDiscriminatorLoss(D.forward(x), D.forward(xhat.detach()));
          d.backward();
        }
        const parts = [loss, rec, reg, g, d, norm].filter((t): t is Tensor => t !== null);
        return { scalars: concat(parts.map((t) => reshape(t, [1]))), indices, latents };
      });
    } finally {
      x.dispose();
    }
    const read = Array.from(await out.scalars.data());
    out.scalars.dispose();
    const [loss, rec, reg] = read as [number, number, number];
    const gLoss = adversarial ? read[3]! : null;
    const dLoss = adversarial ? read[4]! : null;
    const gradNorm = clip === null ? null : read[read.length - 1]!;
    const measured = {
      'the loss': loss,
      'the gradient norm': gradNorm,
      "the discriminator's loss": dLoss,
    };
    updateIfFinite(this.optimizer, s, measured, () => {
      out.indices?.dispose();
      out.latents?.dispose();
      this.model.zeroGrad();
      D?.zeroGrad();
    });
    if (adversarial) {
      this.discOptimizer!.step();
      this.discOptimizer!.zeroGrad();
    }
    D?.zeroGrad();
    let usage: { usage: number; perplexity: number } | null = null;
    if (out.indices !== null) {
      const indices = (await out.indices.data()) as Int32Array;
      out.indices.dispose();
      if (this.codebookEma !== null && out.latents !== null) {
        const z = await out.latents.data();
        out.latents.dispose();
        const threshold = cfg.deadCodeThreshold;
        const uniforms =
          threshold === null
            ? undefined
            : streamUniforms(this.#usageSum.length, cfg.seed, 'augment', s);
        this.codebookEma.update(
          z,
          indices,
          uniforms === undefined ? undefined : { threshold: threshold!, uniforms },
        );
      }
      usage = this.#countUsage(indices);
    }
    this.step = s + 1;
    const vq = model instanceof VQModel;
    return {
      step: this.step,
      loss,
      rec,
      kl: vq ? null : reg,
      vq: vq ? reg : null,
      gLoss,
      dLoss,
      codebookUsage: usage?.usage ?? null,
      perplexity: usage?.perplexity ?? null,
      gradNorm,
      lr,
      epoch: batch.epoch,
    };
  }

  /** Adds a batch's codebook counts to the window of the last `usageWindow` batches. */
  #countUsage(indices: Int32Array): { usage: number; perplexity: number } {
    const counts = new Int32Array(this.#usageSum.length);
    for (const k of indices) counts[k]!++;
    this.#usage.push(counts);
    for (let k = 0; k < counts.length; k++) this.#usageSum[k]! += counts[k]!;
    if (this.#usage.length > this.config.usageWindow) {
      const old = this.#usage.shift()!;
      for (let k = 0; k < old.length; k++) this.#usageSum[k]! -= old[k]!;
    }
    return codebookStats(this.#usageSum);
  }

  /**
   * Reconstruction scores of the held-out images (null without a held-out split). Leaves the
   * training state as it was.
   */
  async evaluateHeldOut(): Promise<VaeHeldOut | null> {
    const set = this.heldOutSet;
    if (set === null) return null;
    const scores = await evaluateReconstruction(this.model, set, {
      batchSize: EVAL_BATCH,
      limit: this.config.evalImages > 0 ? this.config.evalImages : undefined,
      measure: this.#measure,
    });
    this.heldOut = { step: this.step, ...scores };
    return this.heldOut;
  }

  /**
   * 1/std of the latents of the first `scalingBatches` training batches (see the module
   * comment). Throws NonFiniteError when the latents are degenerate.
   */
  async latentScalingFactor(): Promise<number> {
    const cfg = this.config;
    const K = Math.min(cfg.scalingBatches, this.loader.stepsPerEpoch);
    const values: Float32Array[] = [];
    for (let k = 0; k < K; k++) {
      const batch = this.loader.batchAt(k);
      batch.labels?.dispose();
      const z = noGrad(() =>
        tidy(() => {
          const m = this.model;
          if (m instanceof VQModel) return m.encode(batch.x);
          return m.encode(batch.x).sample(new Generator(streamSeed(cfg.seed, 'eval', k)));
        }),
      );
      batch.x.dispose();
      values.push((await z.data()) as Float32Array);
      z.dispose();
    }
    let n = 0;
    let sum = 0;
    for (const v of values) {
      for (const x of v) sum += x;
      n += v.length;
    }
    const mean = sum / n;
    let ss = 0;
    for (const v of values) for (const x of v) ss += (x - mean) ** 2;
    const std = Math.sqrt(ss / Math.max(1, n - 1));
    if (!(std > 0) || !Number.isFinite(1 / std)) {
      throw new NonFiniteError(this.step - 1, 'the latent scaling factor (1/std)', 1 / std);
    }
    return 1 / std;
  }

  /** The vae/config.json text: the model's config with the measured scaling factor. */
  vaeConfigJson(scalingFactor: number): string {
    return configToJson(this.model.className, {
      ...this.model.config,
      scaling_factor: scalingFactor,
    });
  }

  /** What `sumi.json` says about the autoencoder. */
  info(scalingFactor: number, meta: VaeCheckpointMeta = {}): VaeInfo {
    const c = this.config;
    const f = 2 ** (this.model.config.block_out_channels.length - 1);
    return {
      format: 'sumi-autoencoder',
      version: 1,
      kind: c.kind,
      className: AUTOENCODER_CLASS[c.kind],
      imageSize: c.imageSize,
      channels: c.channels,
      latentChannels: this.model.config.latent_channels,
      latentSize: c.imageSize / f,
      downsampleFactor: f,
      scalingFactor,
      data: c.data,
      step: this.step,
      parameters: this.model.numParameters(),
      heldOut: this.heldOut === null ? null : { fraction: c.holdout, ...this.heldOut },
      ...runInfo(meta),
    };
  }

  state(scalingFactor: number, meta: VaeCheckpointMeta = {}): VaeTrainerState {
    return {
      ...stateHead('sumi-vae-trainer-state', this),
      data: splitDataState(this),
      heldOut: this.heldOut,
      scalingFactor,
      elapsedSeconds: meta.elapsedSeconds ?? this.elapsedBefore,
      backend: this.model.parameters()[0]!.backend.name,
      ...runState(meta),
    };
  }

  /**
   * The files of a checkpoint: vae/ (config.json with the scaling factor, weights), the
   * optimizer's state, the discriminator and its optimizer (when configured), the EMA codebook's
   * sums, sumi.json, trainer_state.json last. Throws NonFiniteError when any weight (the
   * discriminator's too) is NaN or infinite.
   */
  async checkpointFiles(meta: VaeCheckpointMeta = {}): Promise<CheckpointFile[]> {
    const weights = await finiteWeights(this.model.namedParameters(), this.step);
    const scalingFactor = await this.latentScalingFactor();
    const more: CheckpointFile[] = [];
    if (this.discriminator !== null) {
      const named = this.discriminator.namedParameters();
      const d = await finiteWeights(named, this.step, 'discriminator.');
      more.push(
        { path: DISCRIMINATOR_FILE, bytes: serializeSafetensors(d, { format: 'pt' }) },
        {
          path: DISCRIMINATOR_OPTIMIZER_FILE,
          bytes: await optimizerStateBytes(this.discOptimizer!),
        },
      );
    }
    if (this.codebookEma !== null) {
      await this.codebookEma.start();
      const sd = this.codebookEma.stateDict();
      const entries = await tensorsToWrite(sd, 'F64');
      disposeAll(sd);
      more.push({ path: CODEBOOK_EMA_FILE, bytes: serializeSafetensors(entries) });
    }
    return [
      ...modelFolderFiles(VAE_DIR, this.vaeConfigJson(scalingFactor), WEIGHTS_NAME, weights),
      ...(await closingFiles(
        this.optimizer,
        this.info(scalingFactor, meta),
        this.state(scalingFactor, meta),
        more,
      )),
    ];
  }

  /**
   * Starts a fine-tuning run from `v`'s weights (the folder `config.init` names; its sha256 must
   * match): before the first step only, and the autoencoder's config must be the folder's.
   */
  async loadInitialWeights(v: Pick<LoadedVae, 'dir' | 'vae' | 'sha256'>): Promise<void> {
    const init = this.config.init;
    if (init === null) throw new Error('loadInitialWeights: the config names no init folder');
    if (this.step !== 0) {
      throw new Error(`loadInitialWeights: the run is at step ${this.step}; only before step 1`);
    }
    if (v.sha256 !== init.sha256) {
      throw new TrainConfigError(
        `${v.dir}: the weights' sha256 is ${v.sha256}, the config records ${init.sha256}`,
      );
    }
    if (v.vae.className !== this.model.className) {
      throw new TrainConfigError(
        `${v.dir}: the folder's autoencoder (${v.vae.className}) is not the run's (${this.model.className})`,
      );
    }
    await this.model.loadStateDict(v.vae.stateDict(), { source: v.dir });
  }

  /** Loads weights, optimizer states, step and the last held-out scores from a checkpoint. */
  async loadCheckpoint(dir: string, state: VaeTrainerState): Promise<void> {
    await loadModule(this.model, join(dir, VAE_DIR, WEIGHTS_NAME));
    await loadOptimizerState(this.optimizer, dir);
    if (this.discriminator !== null) {
      await loadModule(this.discriminator, join(dir, DISCRIMINATOR_FILE));
      await loadOptimizerState(this.discOptimizer!, dir, DISCRIMINATOR_OPTIMIZER_FILE);
    }
    if (this.codebookEma !== null) {
      const path = join(dir, CODEBOOK_EMA_FILE);
      const sd = await loadTensors(path, { backend: cpuBackend(), dtype: 'float64' });
      try {
        this.codebookEma.loadStateDict(sd, path);
      } finally {
        disposeAll(sd);
      }
    }
    this.resumeCounters(state);
  }

  /** Frees parameters and optimizer states. */
  dispose(): void {
    this.optimizer.dispose();
    this.discOptimizer?.dispose();
    disposeAll(this.model.stateDict());
    if (this.discriminator !== null) disposeAll(this.discriminator.stateDict());
  }
}

/** Reads and checks `trainer_state.json` of an autoencoder checkpoint. */
export async function readVaeTrainerState(dir: string): Promise<VaeTrainerState> {
  const st = (await readStateFile(dir, {
    format: 'sumi-vae-trainer-state',
    what: 'Sumi autoencoder trainer state',
    named: ['sumi-trainer-state', 'sumi-classifier-trainer-state'],
  })) as unknown as VaeTrainerState;
  // Keys added since the checkpoint was written take their defaults.
  return {
    ...st,
    config: {
      ...defaultVaeTrainConfig,
      ...st.config,
      discriminator: { ...defaultVaeTrainConfig.discriminator, ...st.config.discriminator },
    },
  };
}
