/**
 * Text conditioning: c = τ_θ(y), the last hidden states of a CLIP-style text encoder over the
 * prompt's tokens (Rombach et al. 2022, eq. 3), read by the denoiser's cross-attention together
 * with the tokens' attention mask. The tokenizer is a word-level vocabulary built from the
 * training captions; the null condition ∅ of classifier-free guidance is the empty prompt "".
 *
 * A pipeline folder holds them as `tokenizer/` (Hugging Face tokenizers' tokenizer.json) and
 * `text_encoder/` (transformers' CLIPTextModel: config.json + model.safetensors).
 */
import { join } from 'node:path';

import { type Backend, Generator } from '../engine/index.js';
import {
  type CaptionSource,
  captionsFor,
  type Dataset,
  encodedTensors,
  loadTokenizer,
  TOKENIZER_CONFIG_FILE,
  TOKENIZER_FILE,
  WordLevelTokenizer,
} from '../data/index.js';
import {
  CLIP_TEXT_WEIGHTS_NAME,
  CLIPTextModel,
  clipTextConfigJson,
  loadCLIPTextModel,
  resolveCLIPTextConfig,
} from '../nn/models/index.js';
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

export interface TextConditioningSetup {
  dataset: Dataset;
  /** CLIPTextConfig keys over SMALL_TEXT_ENCODER (vocabulary and special ids are filled in). */
  encoderConfig: Readonly<Record<string, unknown>>;
  /** Tokens per prompt, start and end tokens included. */
  maxTokens: number;
}

interface ResolvedText {
  tokenizer: WordLevelTokenizer;
  captions: CaptionSource;
  /** The resolved CLIPTextConfig as config.json's object. */
  encoderConfig: Record<string, unknown>;
  hiddenSize: number;
}

/**
 * The tokenizer of the dataset's captions and the encoder config that fits it: vocab_size, the
 * special token ids and max_position_embeddings ≥ maxTokens.
 */
export function resolveTextEncoderConfig(setup: TextConditioningSetup): ResolvedText {
  const captions = captionsFor(setup.dataset);
  const tokenizer = WordLevelTokenizer.fromTexts(captions.all(), {
    modelMaxLength: setup.maxTokens,
  });
  const given = { ...SMALL_TEXT_ENCODER, ...setup.encoderConfig };
  const maxPos = given.max_position_embeddings;
  const config = resolveCLIPTextConfig(
    {
      ...given,
      vocab_size: tokenizer.vocab.length,
      max_position_embeddings:
        typeof maxPos === 'number' ? Math.max(maxPos, setup.maxTokens) : setup.maxTokens,
      pad_token_id: tokenizer.padTokenId,
      bos_token_id: tokenizer.bosTokenId,
      eos_token_id: tokenizer.eosTokenId,
    },
    'text encoder config',
  );
  return {
    tokenizer,
    captions,
    encoderConfig: JSON.parse(clipTextConfigJson(config)) as Record<string, unknown>,
    hiddenSize: config.hidden_size,
  };
}

/** A freshly initialised text encoder (weights from `generator`) for a training run. */
export function createTextConditioning(
  setup: TextConditioningSetup,
  opts: { generator: Generator; hasNull: boolean },
): ConditionSource {
  const r = resolveTextEncoderConfig(setup);
  const encoder = new CLIPTextModel(r.encoderConfig, {
    generator: opts.generator,
  });
  return textConditioning({
    tokenizer: r.tokenizer,
    encoder,
    captions: r.captions,
    hasNull: opts.hasNull,
    maxTokens: setup.maxTokens,
  });
}

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
      { path: join(TOKENIZER_DIR, TOKENIZER_FILE), bytes: enc.encode(tokenizer.tokenizerJson()) },
      {
        path: join(TOKENIZER_DIR, TOKENIZER_CONFIG_FILE),
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

/**
 * The condition source of a pipeline folder's `tokenizer/` and `text_encoder/`, checked against
 * each other and against the denoiser's cross-attention width.
 */
export async function loadTextConditioning(opts: {
  encoderDir: string;
  tokenizerDir: string;
  crossAttentionDim: number;
  hasNull: boolean;
  backend?: Backend;
}): Promise<ConditionSource> {
  const tokenizer = await loadTokenizer(opts.tokenizerDir);
  const encoder = await loadCLIPTextModel(opts.encoderDir, { backend: opts.backend });
  const c = encoder.config;
  if (c.hidden_size !== opts.crossAttentionDim) {
    throw new ConditionError(
      `${join(opts.encoderDir, 'config.json')}: hidden_size ${c.hidden_size} does not match the ` +
        `denoiser's cross_attention_dim ${opts.crossAttentionDim}`,
    );
  }
  if (c.vocab_size !== tokenizer.vocab.length) {
    throw new ConditionError(
      `${join(opts.encoderDir, 'config.json')}: vocab_size ${c.vocab_size} does not match the ` +
        `tokenizer's ${tokenizer.vocab.length} tokens (${opts.tokenizerDir})`,
    );
  }
  if (c.max_position_embeddings < tokenizer.modelMaxLength) {
    throw new ConditionError(
      `${join(opts.encoderDir, 'config.json')}: max_position_embeddings ${c.max_position_embeddings} ` +
        `is below the tokenizer's model_max_length ${tokenizer.modelMaxLength}`,
    );
  }
  return textConditioning({ tokenizer, encoder, hasNull: opts.hasNull });
}
