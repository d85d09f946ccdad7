/**
 * Diffusion-LM (Li et al. 2022): Gaussian diffusion in the space of learned word vectors, trained
 * end to end with the embedding, rounded back to words.
 *
 * Training (§4.1, the end-to-end objective L_e2e-simple), for words w [B, L]:
 *   x_0 = EMB(w) + σ₀ ε₀,  σ₀ = √(1 − ᾱ₀)             q_φ(x_0 | w) = N(EMB(w), σ₀² I)
 *   x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε                     t ~ U{0..T−1}
 *   L = ‖f_θ(x_t, t) − x_0‖²                          x_0-prediction (§4.2)
 *     + ‖√ᾱ_{T−1} x_0‖²                                the prior term KL(q(x_T | x_0) ‖ N(0, I)) up to constants
 *     − log p_θ(w | x_0)                                the rounding term L_round, p(w|x) ∝ exp(−‖x − E_w‖²)
 *   (each a mean over the positions, and the squared norms also over the d coordinates.)
 *
 * Sampling: any sampler of the registry with prediction_type 'sample'; the clamping trick (§4.2)
 * replaces each x̂_0 by the nearest word vectors before the step; infilling (§7.2) also sets x̂_0
 * at the fixed positions to their words' vectors, so every step's posterior is conditioned on them.
 *
 * The noise schedule is the paper's sqrt schedule ᾱ(s) = 1 − √(s + 10⁻⁴), s = t/T, as betas.
 */
import {
  add,
  arange,
  div,
  Generator,
  gather,
  logSoftmax,
  maximum,
  mean,
  mul,
  noGrad,
  randn,
  reshape,
  sub,
  sum,
  type Tensor,
  tensor,
  tidy,
  where,
} from '../engine/index.js';
import {
  type DiffusionLMModel,
  embeddingsAt,
  nearestEmbedding,
  roundingLogits,
} from '../nn/models/diffusion-lm.js';
import { addNoise } from './forward.js';
import type { Scheduler } from './samplers/index.js';
import { sample, type StepInfo } from './samplers/sample.js';
import { betasForAlphaBar, makeSchedule, type NoiseSchedule } from './schedule.js';

/** T of Diffusion-LM's schedule. */
export const DIFFUSION_LM_TIMESTEPS = 2000;

/** β_t of the sqrt schedule: ᾱ(s) = 1 − √(s + 10⁻⁴) at s = t/T. */
export function sqrtScheduleBetas(T = DIFFUSION_LM_TIMESTEPS): Float64Array {
  return betasForAlphaBar(T, (s) => 1 - Math.sqrt(s + 1e-4));
}

/**
 * The scheduler_config.json of a Diffusion-LM model: the sqrt schedule as trained_betas,
 * x_0-prediction, no clipping of x̂_0 (word vectors are not in [−1, 1]).
 */
export function textSchedulerConfig(T = DIFFUSION_LM_TIMESTEPS): Record<string, unknown> {
  return {
    _class_name: 'DDPMScheduler',
    num_train_timesteps: T,
    trained_betas: Array.from(sqrtScheduleBetas(T)),
    prediction_type: 'sample',
    clip_sample: false,
    variance_type: 'fixed_small',
    timestep_spacing: 'leading',
  };
}

/** The schedule of a Diffusion-LM model. */
export function textSchedule(T = DIFFUSION_LM_TIMESTEPS): NoiseSchedule {
  return makeSchedule(sqrtScheduleBetas(T));
}

/**
 * L_round: −(1/N) Σ_i log p(w_i | x_i), p(w | x) = softmax_w(2 x·E_w − ‖E_w‖²), over the N = B·L
 * positions of x [B, L, d] and ids [B, L].
 */
export function roundingLoss(x: Tensor, embeddings: Tensor, ids: Tensor): Tensor {
  return tokenNll(roundingLogits(x, embeddings), ids);
}

/**
 * −Σ_i w_i log softmax(logits_i)[ids_i] / Σ_i w_i over the N positions of logits [..., V] and
 * int32 ids [...], w = 1 unless `weights` [...] is given (the mean cross-entropy; the
 * log-probabilities are picked by a gather, not a one-hot product).
 */
export function tokenNll(logits: Tensor, ids: Tensor, weights: Tensor | null = null): Tensor {
  const V = logits.shape[logits.rank - 1]!;
  const N = ids.size;
  if (logits.size !== N * V) {
    throw new Error(
      `tokenNll: logits [${logits.shape.join(', ')}] do not match ids [${ids.shape.join(', ')}]`,
    );
  }
  const flat = add(
    reshape(ids, [N]),
    arange(0, N * V, V, { dtype: 'int32', backend: ids.backend }),
  );
  const picked = gather(reshape(logSoftmax(logits, -1), [N * V]), 0, flat);
  if (weights === null) return mul(sum(picked), -1 / N);
  const w = reshape(weights, [N]);
  return div(mul(sum(mul(picked, w)), -1), maximum(sum(w), 1e-12));
}

/** The three terms of the training loss (scalars) and their sum. */
export interface TextDiffusionLoss {
  loss: Tensor;
  mse: Tensor;
  prior: Tensor;
  rounding: Tensor;
}

/**
 * The end-to-end loss of a batch of ids [B, L] (see the module comment): `timesteps` one per row,
 * `noise` ε and `noise0` ε₀ [B, L, d].
 */
export function textDiffusionLoss(
  model: DiffusionLMModel,
  schedule: NoiseSchedule,
  ids: Tensor,
  timesteps: readonly number[],
  noise: Tensor,
  noise0: Tensor,
): TextDiffusionLoss {
  const T = schedule.numTrainTimesteps;
  const emb = model.embed(ids);
  const x0 = add(emb, mul(noise0, schedule.sqrtOneMinusAlphasCumprod[0]!));
  const xt = addNoise(schedule, x0, noise, timesteps);
  const pred = model.forward(xt, timesteps);
  const mse = mean(mul(sub(pred, x0), sub(pred, x0)));
  const meanT = mul(x0, schedule.sqrtAlphasCumprod[T - 1]!);
  const prior = mean(mul(meanT, meanT));
  const rounding = roundingLoss(x0, model.embeddings, ids);
  return { loss: add(add(mse, prior), rounding), mse, prior, rounding };
}

/** Words to keep fixed while sampling: ids [n, L] and a mask [n, L] (1 where the id is fixed). */
export interface TextInfill {
  ids: Int32Array;
  mask: Uint8Array;
}

export interface SampleTextOptions {
  n: number;
  /** L */
  seqLength: number;
  seed: number;
  numInferenceSteps: number;
  /** The clamping trick (default true). */
  clamp?: boolean;
  infill?: TextInfill;
  /** DDIM's η. */
  eta?: number;
  onStep?: (info: StepInfo) => void;
}

/**
 * The denoiser callback of sampling: x̂_0 = f(x_t, t), snapped to the nearest word vectors
 * (clamping), with the fixed positions of `infill` set to their words' vectors.
 */
export function textDenoiser(
  model: DiffusionLMModel,
  opts: { clamp: boolean; infill?: { ids: Tensor; mask: Tensor } },
): (x: Tensor, t: number) => Tensor {
  return (x, t) => {
    let x0 = model.forward(x, t);
    const E = model.embeddings;
    if (opts.clamp) x0 = embeddingsAt(E, nearestEmbedding(x0, E));
    if (opts.infill !== undefined) {
      x0 = where(opts.infill.mask, embeddingsAt(E, opts.infill.ids), x0);
    }
    return x0;
  };
}

/**
 * n sequences of L words: x_T ~ N(0, I) [n, L, d] from `seed`, the reverse process with
 * `scheduler` (prediction_type 'sample'), and x_0 rounded to the nearest word vectors. Returns
 * the ids [n·L]; the fixed positions of `infill` hold their ids.
 */
export function sampleTextIds(
  model: DiffusionLMModel,
  scheduler: Scheduler,
  opts: SampleTextOptions,
): Int32Array {
  const { n, seqLength: L } = opts;
  const d = model.config.embedding_dim;
  const E = model.embeddings;
  const backend = E.backend;
  const dtype = E.dtype === 'float64' ? 'float64' : 'float32';
  const generator = new Generator(opts.seed);
  const out = noGrad(() =>
    tidy(() => {
      const infill =
        opts.infill === undefined
          ? undefined
          : {
              ids: tensor(opts.infill.ids, [n, L], { dtype: 'int32', backend }),
              mask: reshape(tensor(Float32Array.from(opts.infill.mask), [n, L], { backend }), [
                n,
                L,
                1,
              ]),
            };
      const denoise = textDenoiser(model, { clamp: opts.clamp ?? true, infill });
      const xT = randn([n, L, d], { generator, dtype, backend });
      const x0 = sample(scheduler, denoise, xT, {
        numInferenceSteps: opts.numInferenceSteps,
        generator,
        stepOptions: opts.eta !== undefined ? { eta: opts.eta } : {},
        onStep: opts.onStep,
      });
      const ids = nearestEmbedding(x0, E);
      return infill === undefined ? ids : where(infill.mask.reshape([n, L]), infill.ids, ids);
    }),
  );
  const ids = Int32Array.from(out.dataSync());
  out.dispose();
  return ids;
}
