/**
 * transformers' CLIPTextModel (Radford et al. 2021): the text encoder τ_θ whose last hidden state
 * is the cross-attention context of a text-to-image U-Net. Parameter names and config.json are
 * transformers', so a `text_encoder/` folder Sumi writes loads with
 * `CLIPTextModel.from_pretrained` and the reverse.
 *
 *   h⁰ = E_tok[ids] + E_pos[0..L)
 *   hˡ⁺¹ = h' + MLP(LN₂(h')),  h' = hˡ + Attn(LN₁(hˡ))          (pre-LN, CLIPEncoderLayer)
 *   Attn(x) = W_o · softmax(q kᵀ / √d + M) v, per head; M is 0 where query i may see key j
 *             (j ≤ i, key j not padding) and the dtype's lowest finite value elsewhere
 *   MLP(x) = fc2(act(fc1(x))),  quick_gelu(x) = x·σ(1.702x)
 *   last_hidden_state = LN_final(hᴺ); pooled = last_hidden_state at the first eos_token_id
 */
import {
  add,
  argmax,
  arange,
  cast,
  eq,
  gather,
  gelu,
  matmulT,
  mul,
  reshape,
  sigmoid,
  slice,
  softmax,
  sub,
  tensor,
  type Tensor,
  transpose,
} from '../../engine/index.js';
import { normal } from '../init.js';
import { Dropout, Embedding, LayerNorm, Linear } from '../layers.js';
import { Module, ModuleList } from '../module.js';
import { BuildContext, type ModelInitOptions } from './common.js';
import {
  ConfigError,
  type ConfigSchema,
  type ConfigValue,
  int,
  nullable,
  oneOf,
  positive,
  probability,
  resolveConfig,
  type Rule,
} from './config.js';

export const CLIP_TEXT_ACTIVATIONS = ['quick_gelu', 'gelu'] as const;
export type CLIPTextActivation = (typeof CLIP_TEXT_ACTIVATIONS)[number];

/** transformers' CLIPTextConfig: the keys of config.json and their meaning. */
export interface CLIPTextConfig {
  architectures: readonly string[];
  model_type: 'clip_text_model';
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  /** Used by CLIPTextModelWithProjection only; kept for the config's sake. */
  projection_dim: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  hidden_act: CLIPTextActivation;
  layer_norm_eps: number;
  /** Dropout on the attention probabilities while training. */
  attention_dropout: number;
  /** Read by no CLIP text layer in transformers either. */
  dropout: number;
  /** Read only by transformers' initialisation of other CLIP parts. */
  initializer_range: number;
  /** Scales every initial standard deviation. */
  initializer_factor: number;
  pad_token_id: number | null;
  bos_token_id: number | null;
  /** The pooled output is taken at the first position holding this id. */
  eos_token_id: number;
}

/** transformers' defaults (openai/clip-vit-base-patch32's text model). */
export const CLIP_TEXT_DEFAULTS: CLIPTextConfig = {
  architectures: ['CLIPTextModel'],
  model_type: 'clip_text_model',
  vocab_size: 49408,
  hidden_size: 512,
  intermediate_size: 2048,
  projection_dim: 512,
  num_hidden_layers: 12,
  num_attention_heads: 8,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  attention_dropout: 0,
  dropout: 0,
  initializer_range: 0.02,
  initializer_factor: 1,
  pad_token_id: 1,
  bos_token_id: 49406,
  eos_token_id: 49407,
};

const architectures: Rule = (v) =>
  Array.isArray(v) && v.length === 1 && v[0] === 'CLIPTextModel'
    ? null
    : `expected ["CLIPTextModel"], got ${JSON.stringify(v)}`;

export const CLIP_TEXT_SCHEMA: ConfigSchema<CLIPTextConfig> = {
  className: 'CLIPTextModel',
  defaults: CLIP_TEXT_DEFAULTS,
  rules: {
    architectures,
    model_type: oneOf(['clip_text_model'], ['clip', 'clip_vision_model']),
    vocab_size: int(1),
    hidden_size: int(1),
    intermediate_size: int(1),
    projection_dim: int(1),
    num_hidden_layers: int(1),
    num_attention_heads: int(1),
    max_position_embeddings: int(1),
    hidden_act: oneOf(CLIP_TEXT_ACTIVATIONS, ['gelu_new', 'gelu_pytorch_tanh', 'relu', 'silu']),
    layer_norm_eps: positive,
    attention_dropout: probability,
    dropout: probability,
    initializer_range: positive,
    initializer_factor: positive,
    pad_token_id: nullable(int(0)),
    bos_token_id: nullable(int(0)),
    eos_token_id: int(0),
  },
  check: (c) => {
    const problems: string[] = [];
    if (c.hidden_size % c.num_attention_heads !== 0) {
      problems.push(
        `hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`,
      );
    }
    for (const key of ['pad_token_id', 'bos_token_id', 'eos_token_id'] as const) {
      const id = c[key];
      if (id !== null && id >= c.vocab_size) {
        problems.push(`${key}: ${id} is not below vocab_size ${c.vocab_size}`);
      }
    }
    return problems;
  },
};

/** Keys transformers writes about where a file came from; read and not kept. */
const PROVENANCE_KEYS = ['transformers_version', 'torch_dtype', 'dtype'];

export type CLIPTextModelInput = Partial<CLIPTextConfig> & {
  transformers_version?: string;
  torch_dtype?: string | null;
  dtype?: string | null;
  [meta: `_${string}`]: unknown;
};

/**
 * Fills in transformers' defaults and checks a CLIPTextConfig (a parsed config.json or a partial
 * config written in code); every unknown key and bad value is named in one ConfigError.
 */
export function resolveCLIPTextConfig(raw: unknown, source = 'config'): CLIPTextConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`CLIPTextModel ${source}: expected a JSON object`);
  }
  const rest = Object.fromEntries(
    Object.entries(raw).filter(([k]) => !PROVENANCE_KEYS.includes(k)),
  );
  return resolveConfig(CLIP_TEXT_SCHEMA, rest, source).config;
}

/**
 * The config.json text transformers would write: keys sorted, two-space indent, a final newline
 * (PretrainedConfig.to_json_string); `torch_dtype` names the stored weights' dtype.
 */
export function clipTextConfigJson(config: CLIPTextConfig, torchDtype = 'float32'): string {
  const out: Record<string, ConfigValue> = { ...config, torch_dtype: torchDtype };
  const sorted: Record<string, ConfigValue> = {};
  for (const k of Object.keys(out).sort()) sorted[k] = out[k]!;
  return `${JSON.stringify(sorted, null, 2)}\n`;
}

/** A Linear with N(0, std²) weights and zero bias (transformers' CLIP initialisation). */
function normalLinear(inF: number, outF: number, std: number, ctx: BuildContext): Linear {
  const lin = new Linear(inF, outF, ctx.init);
  const w = normal([outF, inF], std, ctx.init.generator);
  lin.weight.setData(w);
  w.dispose();
  const b = tensor(new Float32Array(outF), [outF]);
  lin.bias!.setData(b);
  b.dispose();
  return lin;
}

class CLIPTextEmbeddings extends Module {
  readonly tokenEmbedding: Embedding;
  readonly positionEmbedding: Embedding;
  constructor(c: CLIPTextConfig, ctx: BuildContext) {
    super();
    const std = 0.02 * c.initializer_factor;
    const table = (n: number): Embedding => {
      const e = new Embedding(n, c.hidden_size, ctx.init);
      const w = normal([n, c.hidden_size], std, ctx.init.generator);
      e.weight.setData(w);
      w.dispose();
      return e;
    };
    this.tokenEmbedding = this.child('token_embedding', table(c.vocab_size));
    this.positionEmbedding = this.child('position_embedding', table(c.max_position_embeddings));
  }

  /** ids [B, L] → E_tok[ids] + E_pos[0..L) [B, L, D] */
  forward(ids: Tensor): Tensor {
    const l = ids.shape[1]!;
    const pos = this.positionEmbedding.weight;
    return add(this.tokenEmbedding.forward(ids), slice(pos, [0, 0], [l, pos.shape[1]!]));
  }
}

class CLIPAttention extends Module {
  readonly heads: number;
  readonly headDim: number;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly qProj: Linear;
  readonly outProj: Linear;
  readonly dropout: Dropout;
  constructor(c: CLIPTextConfig, ctx: BuildContext) {
    super();
    const d = c.hidden_size;
    this.heads = c.num_attention_heads;
    this.headDim = d / this.heads;
    const f = c.initializer_factor;
    const inStd = d ** -0.5 * (2 * c.num_hidden_layers) ** -0.5 * f;
    this.kProj = this.child('k_proj', normalLinear(d, d, inStd, ctx));
    this.vProj = this.child('v_proj', normalLinear(d, d, inStd, ctx));
    this.qProj = this.child('q_proj', normalLinear(d, d, inStd, ctx));
    this.outProj = this.child('out_proj', normalLinear(d, d, d ** -0.5 * f, ctx));
    this.dropout = this.child('dropout', ctx.dropout(c.attention_dropout));
  }

  /** [B, L, H·d] → [B, H, L, d] */
  #heads(x: Tensor): Tensor {
    const [b, l] = x.shape as [number, number];
    return transpose(reshape(x, [b, l, this.heads, this.headDim]), 1, 2);
  }

  /** x [B, L, D]; mask [B, 1, L, L] added to the scores. */
  forward(x: Tensor, mask: Tensor): Tensor {
    const [b, l, d] = x.shape as [number, number, number];
    const q = this.#heads(this.qProj.forward(x));
    const k = this.#heads(this.kProj.forward(x));
    const v = this.#heads(this.vProj.forward(x));
    const scores = add(mul(matmulT(q, k, false, true), this.headDim ** -0.5), mask);
    const probs = this.dropout.forward(softmax(scores, -1));
    const o = reshape(transpose(matmulT(probs, v, false, false), 1, 2), [b, l, d]);
    return this.outProj.forward(o);
  }
}

/** x·σ(1.702x), the sigmoid approximation of GELU that OpenAI's CLIP was trained with. */
export function quickGelu(x: Tensor): Tensor {
  return mul(x, sigmoid(mul(x, 1.702)));
}

class CLIPMLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly act: (x: Tensor) => Tensor;
  constructor(c: CLIPTextConfig, ctx: BuildContext) {
    super();
    const d = c.hidden_size;
    const f = c.initializer_factor;
    this.fc1 = this.child('fc1', normalLinear(d, c.intermediate_size, (2 * d) ** -0.5 * f, ctx));
    const inStd = d ** -0.5 * (2 * c.num_hidden_layers) ** -0.5 * f;
    this.fc2 = this.child('fc2', normalLinear(c.intermediate_size, d, inStd, ctx));
    this.act = c.hidden_act === 'quick_gelu' ? quickGelu : gelu;
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.act(this.fc1.forward(x)));
  }
}

class CLIPEncoderLayer extends Module {
  readonly selfAttn: CLIPAttention;
  readonly layerNorm1: LayerNorm;
  readonly mlp: CLIPMLP;
  readonly layerNorm2: LayerNorm;
  constructor(c: CLIPTextConfig, ctx: BuildContext) {
    super();
    this.selfAttn = this.child('self_attn', new CLIPAttention(c, ctx));
    this.layerNorm1 = this.child('layer_norm1', new LayerNorm(c.hidden_size, c.layer_norm_eps));
    this.mlp = this.child('mlp', new CLIPMLP(c, ctx));
    this.layerNorm2 = this.child('layer_norm2', new LayerNorm(c.hidden_size, c.layer_norm_eps));
  }
  forward(x: Tensor, mask: Tensor): Tensor {
    const h = add(x, this.selfAttn.forward(this.layerNorm1.forward(x), mask));
    return add(h, this.mlp.forward(this.layerNorm2.forward(h)));
  }
}

class CLIPEncoder extends Module {
  readonly layers: ModuleList<CLIPEncoderLayer>;
  constructor(c: CLIPTextConfig, ctx: BuildContext) {
    super();
    this.layers = this.child(
      'layers',
      new ModuleList(
        Array.from({ length: c.num_hidden_layers }, () => new CLIPEncoderLayer(c, ctx)),
      ),
    );
  }
}

class CLIPTextTransformer extends Module {
  readonly embeddings: CLIPTextEmbeddings;
  readonly encoder: CLIPEncoder;
  readonly finalLayerNorm: LayerNorm;
  constructor(c: CLIPTextConfig, ctx: BuildContext) {
    super();
    this.embeddings = this.child('embeddings', new CLIPTextEmbeddings(c, ctx));
    this.encoder = this.child('encoder', new CLIPEncoder(c, ctx));
    this.finalLayerNorm = this.child(
      'final_layer_norm',
      new LayerNorm(c.hidden_size, c.layer_norm_eps),
    );
  }
}

export interface CLIPTextOutput {
  /** [B, L, D]: the cross-attention context. */
  lastHiddenState: Tensor;
  /** [B, D]: the last hidden state at each row's first eos_token_id (position 0 if none). */
  pooledOutput: Tensor;
}

/** The lowest finite value of a float dtype: what transformers' masks add (torch.finfo.min). */
function lowest(dtype: string): number {
  return dtype === 'float64' ? -Number.MAX_VALUE : -3.4028234663852886e38;
}

export class CLIPTextModel extends Module {
  readonly config: Readonly<CLIPTextConfig>;
  readonly textModel: CLIPTextTransformer;

  constructor(config: CLIPTextModelInput = {}, opts: ModelInitOptions = {}) {
    super();
    this.config = Object.freeze(resolveCLIPTextConfig(config));
    this.textModel = this.child(
      'text_model',
      new CLIPTextTransformer(this.config, new BuildContext(opts)),
    );
  }

  /** The config.json text transformers would write for this model. */
  configJson(torchDtype = 'float32'): string {
    return clipTextConfigJson(this.config, torchDtype);
  }

  /**
   * Encodes token ids [B, L] (int32, L ≤ max_position_embeddings); `attentionMask` [B, L] (1 for
   * tokens, 0 for padding) hides padded keys on top of the causal mask.
   */
  forward(inputIds: Tensor, attentionMask?: Tensor | null): CLIPTextOutput {
    const c = this.config;
    if (inputIds.rank !== 2 || inputIds.dtype !== 'int32') {
      throw new Error(
        `CLIPTextModel: inputIds must be int32 [B, L], got ${inputIds.dtype} [${inputIds.shape.join(', ')}]`,
      );
    }
    const [b, l] = inputIds.shape as [number, number];
    if (l < 1 || l > c.max_position_embeddings) {
      throw new Error(
        `CLIPTextModel: sequence length ${l} is not in [1, max_position_embeddings = ${c.max_position_embeddings}]`,
      );
    }
    const mask = attentionMask ?? null;
    if (mask !== null && (mask.rank !== 2 || mask.shape[0] !== b || mask.shape[1] !== l)) {
      throw new Error(
        `CLIPTextModel: attentionMask [${mask.shape.join(', ')}] must match inputIds [${b}, ${l}]`,
      );
    }
    const tm = this.textModel;
    let h = tm.embeddings.forward(inputIds);
    const scoresMask = this.#mask(b, l, h, mask);
    for (const layer of tm.encoder.layers.items) h = layer.forward(h, scoresMask);
    const last = tm.finalLayerNorm.forward(h);
    return { lastHiddenState: last, pooledOutput: this.#pool(last, inputIds) };
  }

  /**
   * M [B or 1, 1, L, L]: 0 where query i may see key j (j ≤ i and key j is not padding), the
   * dtype's lowest value elsewhere (one value, not a sum of two, so it stays finite).
   */
  #mask(b: number, l: number, like: Tensor, attentionMask: Tensor | null): Tensor {
    const opts = { dtype: like.dtype, backend: like.backend };
    const causal = new Float64Array(l * l);
    for (let i = 0; i < l; i++) causal.fill(1, i * l, i * l + i + 1);
    let allowed = tensor(causal, [1, 1, l, l], opts);
    if (attentionMask !== null) {
      const keys = reshape(cast(attentionMask, like.dtype), [b, 1, 1, l]);
      allowed = mul(allowed, keys);
    }
    return mul(sub(1, allowed), lowest(like.dtype));
  }

  /** transformers' pooling: eos_token_id 2 marks a pre-2023 config, pooled at the largest id. */
  #pool(last: Tensor, ids: Tensor): Tensor {
    const [b, l, d] = last.shape as [number, number, number];
    const eos = this.config.eos_token_id;
    const pos = eos === 2 ? argmax(ids, 1) : argmax(eq(ids, eos), 1);
    const rows = add(pos, arange(0, b * l, l, { dtype: 'int32', backend: ids.backend }));
    return gather(reshape(last, [b * l, d]), 0, rows);
  }
}

/** transformers' weights file name (SAFE_WEIGHTS_NAME). */
export const CLIP_TEXT_WEIGHTS_NAME = 'model.safetensors';
