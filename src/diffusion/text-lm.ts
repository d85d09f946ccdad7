/**
 * The small autoregressive language model that judges text samples: transformers' CLIPTextModel
 * (a causal, pre-LN transformer) with its output tied to the token embedding,
 *
 *   p(w_{i+1} | w_{≤i}) = softmax(h_i · E_tokᵀ),   h = last_hidden_state of w_{≤i}
 *
 * trained by next-token cross-entropy over the words and <|endoftext|> of each padded row
 * <|startoftext|> w_1 … w_n <|endoftext|> <|pad|>…; perplexity = exp(mean NLL per predicted token).
 */
import {
  cast,
  matmulT,
  ne,
  noGrad,
  slice,
  sum,
  type Tensor,
  tensor,
  tidy,
} from '../engine/index.js';
import { type CLIPTextConfig, CLIPTextModel } from '../nn/models/clip-text.js';
import type { ModelInitOptions } from '../nn/models/common.js';
import { tokenNll } from './text-diffusion.js';

/** The LM's CLIPTextConfig for a vocabulary and sequence length (special ids as the tokenizer's). */
export function textLmConfig(
  vocabSize: number,
  seqLength: number,
  overrides: Partial<CLIPTextConfig> = {},
): Partial<CLIPTextConfig> {
  return {
    vocab_size: vocabSize,
    hidden_size: 128,
    intermediate_size: 512,
    projection_dim: 128,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    max_position_embeddings: seqLength,
    hidden_act: 'gelu',
    pad_token_id: 0,
    bos_token_id: 2,
    eos_token_id: 3,
    ...overrides,
  };
}

export function createTextLm(
  vocabSize: number,
  seqLength: number,
  overrides: Partial<CLIPTextConfig> = {},
  opts: ModelInitOptions = {},
): CLIPTextModel {
  return new CLIPTextModel(textLmConfig(vocabSize, seqLength, overrides), opts);
}

/**
 * The mean NLL per predicted token of ids [B, L] and how many tokens it covers: targets are
 * ids[:, 1:], weighted 0 where they are <|pad|> (the pad id is the model's pad_token_id).
 */
export function lmNll(lm: CLIPTextModel, ids: Tensor): { meanNll: Tensor; count: Tensor } {
  const [B, L] = ids.shape as [number, number];
  const pad = lm.config.pad_token_id ?? 0;
  const inputs = slice(ids, [0, 0], [B, L - 1]);
  const targets = slice(ids, [0, 1], [B, L]);
  const mask = cast(ne(inputs, pad), 'int32');
  const h = lm.forward(inputs, mask).lastHiddenState;
  const logits = matmulT(h, lm.textModel.embeddings.tokenEmbedding.weight, false, true);
  const weights = cast(ne(targets, pad), h.dtype === 'float64' ? 'float64' : 'float32');
  return { meanNll: tokenNll(logits, targets, weights), count: sum(weights) };
}

/** The training loss: the mean NLL per predicted token of a batch. */
export function lmLoss(lm: CLIPTextModel, ids: Tensor): Tensor {
  return lmNll(lm, ids).meanNll;
}

/**
 * Perplexity exp(Σ NLL / Σ tokens) of rows of ids [N·L] under the LM, in batches; also the
 * per-row NLL sums and token counts.
 */
export function lmPerplexity(
  lm: CLIPTextModel,
  ids: Int32Array,
  L: number,
  batchSize = 256,
): { perplexity: number; nll: number; tokens: number } {
  const N = ids.length / L;
  let nll = 0;
  let tokens = 0;
  const backend = lm.textModel.embeddings.tokenEmbedding.weight.backend;
  for (let start = 0; start < N; start += batchSize) {
    const b = Math.min(batchSize, N - start);
    const [n, c] = noGrad(() =>
      tidy(() => {
        const t = tensor(ids.subarray(start * L, (start + b) * L), [b, L], {
          dtype: 'int32',
          backend,
        });
        const r = lmNll(lm, t);
        const count = r.count.itemSync();
        return [r.meanNll.itemSync() * count, count];
      }),
    );
    nll += n;
    tokens += c;
  }
  return { perplexity: Math.exp(nll / tokens), nll, tokens };
}
