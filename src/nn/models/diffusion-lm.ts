/**
 * The denoiser of Diffusion-LM (Li et al. 2022): a transformer over a sequence of continuous word
 * vectors that predicts x_0 from x_t, with the word embedding it diffuses in and rounds back from.
 *
 *   EMB(w) = E[w]                                   E: [V, d] (learned end to end, §4.1)
 *   h⁰ = up(x_t) + E_pos[0..L) + temb(t)            up(x) = W₂ tanh(W₁ x + b₁) + b₂  (d → D)
 *   hˡ⁺¹ = h' + FF(LN₂(h')),  h' = hˡ + Attn(LN₁(hˡ))          (pre-LN, bidirectional)
 *   x̂_0 = down(LN(hᴺ))                              down(h) = W₄ tanh(W₃ h + b₃) + b₄ (D → d)
 *   temb(t) = linear_2(silu(linear_1(sinusoid(t))))  (diffusers' Timesteps + TimestepEmbedding)
 *
 * Rounding (§4.2): p(w | x) = softmax_w(−‖x − E_w‖²) = softmax_w(2 x·E_w − ‖E_w‖²) (‖x‖² is the
 * same for every w), so the most likely word is the nearest embedding.
 */
import {
  add,
  argmax,
  cast,
  gather,
  gelu,
  matmulT,
  mul,
  reshape,
  slice,
  sub,
  sum,
  tanh,
  type Tensor,
} from '../../engine/index.js';
import { Attention } from '../attention.js';
import { Dropout, Embedding, LayerNorm, Linear } from '../layers.js';
import { Module, ModuleList } from '../module.js';
import { BuildContext, type ModelInitOptions } from './common.js';
import {
  type ConfigSchema,
  configToJson,
  int,
  positive,
  probability,
  resolveConfig,
} from './config.js';
import { type TimestepInput, TimestepEmbedding, Timesteps, timestepsTensor } from './embeddings.js';

export interface DiffusionLMConfig {
  /** V: words, special tokens included. */
  vocab_size: number;
  /** d: the diffused word vectors (the paper's E2E model uses 16). */
  embedding_dim: number;
  /** D: the transformer's width. */
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  /** L at most. */
  max_position_embeddings: number;
  layer_norm_eps: number;
  dropout: number;
}

export const DIFFUSION_LM_DEFAULTS: DiffusionLMConfig = {
  vocab_size: 5000,
  embedding_dim: 16,
  hidden_size: 128,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  intermediate_size: 512,
  max_position_embeddings: 16,
  layer_norm_eps: 1e-5,
  dropout: 0,
};

export const DIFFUSION_LM_CLASS = 'DiffusionLMTransformer';

export const DIFFUSION_LM_SCHEMA: ConfigSchema<DiffusionLMConfig> = {
  className: DIFFUSION_LM_CLASS,
  defaults: DIFFUSION_LM_DEFAULTS,
  rules: {
    vocab_size: int(2),
    embedding_dim: int(1),
    hidden_size: int(1),
    num_hidden_layers: int(1),
    num_attention_heads: int(1),
    intermediate_size: int(1),
    max_position_embeddings: int(1),
    layer_norm_eps: positive,
    dropout: probability,
  },
  check: (c) =>
    c.hidden_size % c.num_attention_heads === 0
      ? []
      : [
          `hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`,
        ],
};

/** Fills in the defaults and checks a config; every bad key is named in one ConfigError. */
export function resolveDiffusionLMConfig(raw: unknown, source = 'config'): DiffusionLMConfig {
  return resolveConfig(DIFFUSION_LM_SCHEMA, raw, source).config;
}

/** x ↦ W₂ tanh(W₁ x + b₁) + b₂ */
class TanhMLP extends Module {
  readonly layers: ModuleList<Linear>;
  constructor(inF: number, hidden: number, outF: number, ctx: BuildContext) {
    super();
    this.layers = this.child(
      'layers',
      new ModuleList([new Linear(inF, hidden, ctx.init), new Linear(hidden, outF, ctx.init)]),
    );
  }
  forward(x: Tensor): Tensor {
    const [a, b] = this.layers.items as [Linear, Linear];
    return b.forward(tanh(a.forward(x)));
  }
}

class DiffusionLMLayer extends Module {
  readonly norm1: LayerNorm;
  readonly attn1: Attention;
  readonly norm2: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly dropout: Dropout;
  constructor(c: DiffusionLMConfig, ctx: BuildContext) {
    super();
    const D = c.hidden_size;
    this.norm1 = this.child('norm1', new LayerNorm(D, c.layer_norm_eps));
    this.attn1 = this.child(
      'attn1',
      new Attention(D, {
        ...ctx.init,
        heads: c.num_attention_heads,
        dimHead: D / c.num_attention_heads,
        bias: true,
      }),
    );
    this.norm2 = this.child('norm2', new LayerNorm(D, c.layer_norm_eps));
    this.fc1 = this.child('fc1', new Linear(D, c.intermediate_size, ctx.init));
    this.fc2 = this.child('fc2', new Linear(c.intermediate_size, D, ctx.init));
    this.dropout = this.child('dropout', ctx.dropout(c.dropout));
  }
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const h = add(x, this.dropout.forward(this.attn1.forward(this.norm1.forward(x), null, mask)));
    const ff = this.fc2.forward(gelu(this.fc1.forward(this.norm2.forward(h))));
    return add(h, this.dropout.forward(ff));
  }
}

export class DiffusionLMModel extends Module {
  readonly config: Readonly<DiffusionLMConfig>;
  readonly wordEmbedding: Embedding;
  readonly inputUpProj: TanhMLP;
  readonly timeProj: Timesteps;
  readonly timeEmbedding: TimestepEmbedding;
  readonly positionEmbedding: Embedding;
  readonly layers: ModuleList<DiffusionLMLayer>;
  readonly normOut: LayerNorm;
  readonly outputDownProj: TanhMLP;
  readonly className = DIFFUSION_LM_CLASS;

  constructor(config: Partial<DiffusionLMConfig> = {}, opts: ModelInitOptions = {}) {
    super();
    const c = (this.config = Object.freeze(resolveDiffusionLMConfig(config)));
    const ctx = new BuildContext(opts);
    const D = c.hidden_size;
    this.wordEmbedding = this.child(
      'word_embedding',
      new Embedding(c.vocab_size, c.embedding_dim, ctx.init),
    );
    this.inputUpProj = this.child('input_up_proj', new TanhMLP(c.embedding_dim, D, D, ctx));
    this.timeProj = new Timesteps(D, true, 0);
    this.timeEmbedding = this.child(
      'time_embedding',
      new TimestepEmbedding(D, D, { actFn: 'silu', ctx }),
    );
    this.positionEmbedding = this.child(
      'position_embedding',
      new Embedding(c.max_position_embeddings, D, ctx.init),
    );
    this.layers = this.child(
      'layers',
      new ModuleList(
        Array.from({ length: c.num_hidden_layers }, () => new DiffusionLMLayer(c, ctx)),
      ),
    );
    this.normOut = this.child('norm_out', new LayerNorm(D, c.layer_norm_eps));
    this.outputDownProj = this.child('output_down_proj', new TanhMLP(D, D, c.embedding_dim, ctx));
  }

  /** The config.json text (`_class_name` DiffusionLMTransformer, keys sorted). */
  configJson(): string {
    return configToJson(DIFFUSION_LM_CLASS, this.config);
  }

  /** E [V, d] */
  get embeddings(): Tensor {
    return this.wordEmbedding.weight;
  }

  /** EMB(ids): int32 [B, L] → [B, L, d]. */
  embed(ids: Tensor): Tensor {
    return this.wordEmbedding.forward(ids);
  }

  /**
   * x̂_0 = f(x_t, t): x_t [B, L, d], t one timestep or one per row. `attentionBias` [B, 1, 1, L]
   * (0 for keys to attend to, a large negative value for keys to ignore) is optional.
   */
  forward(xt: Tensor, t: TimestepInput, attentionBias: Tensor | null = null): Tensor {
    const c = this.config;
    if (xt.rank !== 3 || xt.shape[2] !== c.embedding_dim) {
      throw new Error(
        `DiffusionLMModel: x_t must be [B, L, ${c.embedding_dim}], got [${xt.shape.join(', ')}]`,
      );
    }
    const [b, l] = xt.shape as [number, number, number];
    if (l > c.max_position_embeddings) {
      throw new Error(
        `DiffusionLMModel: sequence length ${l} exceeds max_position_embeddings ${c.max_position_embeddings}`,
      );
    }
    const ts = timestepsTensor(t, b, xt.backend);
    // The sinusoids are float32 (as diffusers'); the MLP runs in the model's dtype.
    const temb = this.timeEmbedding.forward(cast(this.timeProj.forward(ts), xt.dtype));
    const pos = this.positionEmbedding.weight;
    let h = add(this.inputUpProj.forward(xt), slice(pos, [0, 0], [l, c.hidden_size]));
    h = add(h, reshape(temb, [b, 1, c.hidden_size]));
    for (const layer of this.layers.items) h = layer.forward(h, attentionBias);
    return this.outputDownProj.forward(this.normOut.forward(h));
  }
}

/**
 * The rounding logits of x [..., d] against embeddings E [V, d]: 2 x·E_w − ‖E_w‖² [..., V], the
 * log-probabilities of p(w | x) ∝ exp(−‖x − E_w‖²) up to a constant per position.
 */
export function roundingLogits(x: Tensor, embeddings: Tensor): Tensor {
  const sq = reshape(sum(mul(embeddings, embeddings), -1), [embeddings.shape[0]!]);
  return sub(mul(matmulT(x, embeddings, false, true), 2), sq);
}

/** The nearest embedding's id at each position of x [..., d] (argmax of the rounding logits). */
export function nearestEmbedding(x: Tensor, embeddings: Tensor): Tensor {
  const logits = roundingLogits(x, embeddings);
  return argmax(logits, logits.rank - 1);
}

/** E[ids]: the clamping trick's snap of x̂_0 to word vectors. */
export function embeddingsAt(embeddings: Tensor, ids: Tensor): Tensor {
  return gather(embeddings, 0, ids);
}
