/**
 * Text conditioning for a training run and from a pipeline folder: the tokenizer is a word-level
 * vocabulary built from the dataset's captions, the text encoder a small CLIPTextModel sized to
 * it; a folder's `tokenizer/` and `text_encoder/` are checked against each other and against the
 * denoiser. The condition source itself: text-source.ts.
 */
import { join } from 'node:path';

import { type Backend, Generator } from '../engine/index.js';
import {
  type CaptionSource,
  captionsFor,
  type Dataset,
  loadTokenizer,
  WordLevelTokenizer,
} from '../data/index.js';
import {
  CLIPTextModel,
  clipTextConfigJson,
  loadCLIPTextModel,
  resolveCLIPTextConfig,
} from '../nn/models/index.js';
import type { ConditionSource } from './conditioning.js';
import { checkedTextConditioning, SMALL_TEXT_ENCODER, textConditioning } from './text-source.js';

export interface TextConditioningSetup {
  dataset: Dataset;
  /** CLIPTextConfig keys over SMALL_TEXT_ENCODER (vocabulary and special ids are filled in). */
  encoderConfig: Readonly<Record<string, unknown>>;
  /** Tokens per prompt, start and end tokens included. */
  maxTokens: number;
  /**
   * The vocabulary of a run that continues a model (`--init`): its folder's tokenizer instead of
   * one built from the captions (words it lacks are encoded as the unknown token).
   */
  tokenizer?: WordLevelTokenizer;
}

interface ResolvedText {
  tokenizer: WordLevelTokenizer;
  captions: CaptionSource;
  /** The resolved CLIPTextConfig as config.json's object. */
  encoderConfig: Record<string, unknown>;
  hiddenSize: number;
}

/**
 * The tokenizer of the dataset's captions (or the one given) and the encoder config that fits it: vocab_size, the
 * special token ids and max_position_embeddings ≥ maxTokens.
 */
export function resolveTextEncoderConfig(setup: TextConditioningSetup): ResolvedText {
  const captions = captionsFor(setup.dataset);
  const tokenizer =
    setup.tokenizer ??
    WordLevelTokenizer.fromTexts(captions.all(), { modelMaxLength: setup.maxTokens });
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
  return checkedTextConditioning({
    tokenizer,
    encoder,
    crossAttentionDim: opts.crossAttentionDim,
    hasNull: opts.hasNull,
    encoderConfig: join(opts.encoderDir, 'config.json'),
    tokenizerDir: opts.tokenizerDir,
  });
}
