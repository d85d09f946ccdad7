/**
 * Text conditioning: c = τ_θ(y), the last hidden states of a CLIP-style text encoder over the
 * prompt's tokens (Rombach et al. 2022, eq. 3), read by the denoiser's cross-attention together
 * with the tokens' attention mask. The null condition ∅ of classifier-free guidance is the empty
 * prompt "".
 *
 * A pipeline folder holds them as `tokenizer/` (Hugging Face tokenizers' tokenizer.json) and
 * `text_encoder/` (transformers' CLIPTextModel: config.json + model.safetensors). Building them
 * for a training run and loading them from a folder: text-conditioning.ts.
 */
import type { Backend } from '../engine/index.js';
import type { CaptionSource } from '../data/captions.js';
import {
  encodedTensors,
  TOKENIZER_CONFIG_FILE,
  TOKENIZER_FILE,
  type WordLevelTokenizer,
} from '../data/tokenizer.js';
import { CLIP_TEXT_WEIGHTS_NAME, type CLIPTextModel } from '../nn/models/clip-text.js';
import { type ConditionSource, ConditionError } from './conditioning.js';

export const TEXT_ENCODER_DIR = 'text_encoder';
export const TOKENIZER_DIR = 'tokenizer';

/**
 * The text encoder a run gets when its config names no other: 2 pre-LN transformer layers of
 * width 64 (4 heads, MLP 256), about 0.1M parameters besides the token embeddings.
 */
export const SMALL_TEXT_ENCODER: Readonly<Record<string, unknown>> = {
  hidden_size: 64,
  intermediate_size: 256,
  projection_dim: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
};

export interface TextConditioningOptions {
  tokenizer: WordLevelTokenizer;
  encoder: CLIPTextModel;
  /** The training captions (training only). */
  captions?: CaptionSource | null;
  /** Whether the empty prompt was trained as ∅ (condition dropout). */
  hasNull: boolean;
  /** Tokens per prompt (default the tokenizer's model_max_length). */
  maxTokens?: number;
}

/**
 * The condition source of a pipeline folder's tokenizer and text encoder, checked against each
 * other and against the denoiser's cross-attention width; `encoderConfig` (the encoder's
 * config.json) and `tokenizerDir` name them in the ConditionErrors.
 */
export function checkedTextConditioning(opts: {
  tokenizer: WordLevelTokenizer;
  encoder: CLIPTextModel;
  crossAttentionDim: number;
  hasNull: boolean;
  encoderConfig: string;
  tokenizerDir: string;
}): ConditionSource {
  const { tokenizer, encoder } = opts;
  const c = encoder.config;
  if (c.hidden_size !== opts.crossAttentionDim) {
    throw new ConditionError(
      `${opts.encoderConfig}: hidden_size ${c.hidden_size} does not match the ` +
        `denoiser's cross_attention_dim ${opts.crossAttentionDim}`,
    );
  }
  if (c.vocab_size !== tokenizer.vocab.length) {
    throw new ConditionError(
      `${opts.encoderConfig}: vocab_size ${c.vocab_size} does not match the ` +
        `tokenizer's ${tokenizer.vocab.length} tokens (${opts.tokenizerDir})`,
    );
  }
  if (c.max_position_embeddings < tokenizer.modelMaxLength) {
    throw new ConditionError(
      `${opts.encoderConfig}: max_position_embeddings ${c.max_position_embeddings} ` +
        `is below the tokenizer's model_max_length ${tokenizer.modelMaxLength}`,
    );
  }
  return textConditioning({ tokenizer, encoder, hasNull: opts.hasNull });
}

/** The condition source of a tokenizer and text encoder. */
export function textConditioning(opts: TextConditioningOptions): ConditionSource {
  const { tokenizer, encoder } = opts;
  const maxLength = opts.maxTokens ?? tokenizer.modelMaxLength;
  const captions = opts.captions ?? null;
  const enc = new TextEncoder();
  return {
    kind: 'text',
    components: [
      {
        name: TEXT_ENCODER_DIR,
        module: encoder,
        weightsName: CLIP_TEXT_WEIGHTS_NAME,
        libraryClass: ['transformers', 'CLIPTextModel'],
      },
    ],
    hasNull: opts.hasNull,
    files: () => [
      { path: `${TOKENIZER_DIR}/${TOKENIZER_FILE}`, bytes: enc.encode(tokenizer.tokenizerJson()) },
      {
        path: `${TOKENIZER_DIR}/${TOKENIZER_CONFIG_FILE}`,
        bytes: enc.encode(tokenizer.tokenizerConfigJson()),
      },
    ],
    encode(values, backend: Backend) {
      const texts = values.map((v) => {
        if (typeof v === 'number') {
          throw new ConditionError(
            `the model is text-conditioned: give a prompt, not the class id ${v}`,
          );
        }
        return v ?? '';
      });
      const ids = encodedTensors(tokenizer.encode(texts, { maxLength }), backend);
      const out = encoder.forward(ids.inputIds, ids.attentionMask);
      ids.inputIds.dispose();
      out.pooledOutput.dispose();
      return { encoderHiddenStates: out.lastHiddenState, encoderAttentionMask: ids.attentionMask };
    },
    trainingValue({ index }, u) {
      if (captions === null) throw new ConditionError('no training captions were given');
      const list = captions.candidates(index);
      return list[Math.min(list.length - 1, Math.floor(u * list.length))]!;
    },
  };
}
