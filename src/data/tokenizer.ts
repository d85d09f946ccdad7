/**
 * A word-level tokenizer built from training captions, saved in Hugging Face `tokenizers` format
 * (a `tokenizer/` folder that `transformers.PreTrainedTokenizerFast.from_pretrained` loads).
 *
 * Pipeline, for each text:
 *   1. special tokens written literally in the raw text ("<|endoftext|>") become their ids (HF's
 *      added tokens with normalized: false);
 *   2. normalize: Unicode NFKC, then lowercase;
 *   3. pre-tokenize: words are maximal runs of letters, combining marks, digits and the
 *      apostrophe ([\p{L}\p{M}\p{N}']+); every other character that is not white space is a token
 *      of its own ("t-shirt" → t, -, shirt; "it's" stays one word); white space separates;
 *   4. each word maps to its id, or to <|unk|>;
 *   5. <|startoftext|> words… <|endoftext|>, truncated to maxLength keeping the end token, then
 *      <|pad|> up to maxLength (attention mask 0 there).
 *
 * Ids: <|pad|> 0, <|unk|> 1, <|startoftext|> 2, <|endoftext|> 3, then the words by descending
 * count, ties in code-unit order. <|endoftext|> is not 2 on purpose: transformers'
 * CLIPTextModel takes a config with eos_token_id == 2 for a pre-2023 CLIP checkpoint and pools at
 * the largest token id instead of at the first end token.
 */
import { type Backend, tensor, type Tensor } from '../engine/index.js';
import { parseJsonObject } from '../nn/json-object.js';

export const PAD_TOKEN = '<|pad|>';
export const UNK_TOKEN = '<|unk|>';
export const BOS_TOKEN = '<|startoftext|>';
export const EOS_TOKEN = '<|endoftext|>';
/** The special tokens in id order (ids 0..3 of a tokenizer built here). */
export const SPECIAL_TOKENS = [PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN] as const;

/** Anything wrong with a tokenizer, its files or its input: the message says what. */
export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

/** The longest sequence a tokenizer pads to (text encoders take a few hundred tokens). */
export const MAX_SEQUENCE_LENGTH = 65536;

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

/** The pre-tokenizer's pattern (Oniguruma and JavaScript `u` regexes read it the same way). */
export const WORD_PATTERN = "[\\p{L}\\p{M}\\p{N}']+|[^\\p{L}\\p{M}\\p{N}'\\s]";
const WORD_RE = new RegExp(WORD_PATTERN, 'gu');
const SPECIAL_RE = new RegExp(SPECIAL_TOKENS.map((t) => t.replace(/[|]/g, '\\|')).join('|'), 'g');

export interface BuildTokenizerOptions {
  /** Words seen fewer times than this are left out (they encode as <|unk|>); default 1. */
  minFrequency?: number;
  /** At most this many ids, special tokens included (the most frequent words are kept). */
  maxVocabSize?: number;
  /**
   * The longest sequence, start and end tokens included (transformers' model_max_length; the
   * text encoder's max_position_embeddings must be at least this). Default: the longest training
   * caption's length.
   */
  modelMaxLength?: number;
}

export interface EncodeOptions {
  /** Sequence length L (default modelMaxLength); at least 2. */
  maxLength?: number;
}

/** A batch of encoded texts, row-major [B, L]. */
export interface EncodedBatch {
  /** Token ids [B·L]. */
  inputIds: Int32Array;
  /** 1 for <|startoftext|>, words and <|endoftext|>; 0 for padding. [B·L] */
  attentionMask: Int32Array;
  batchSize: number;
  /** L */
  length: number;
}

/** Step 2 of the pipeline: NFKC, then lowercase. */
export function normalizeText(text: string): string {
  return text.normalize('NFKC').toLowerCase();
}

/** Steps 2 and 3 on text without special tokens: the words. */
export function preTokenize(text: string): string[] {
  return normalizeText(text).match(WORD_RE) ?? [];
}

export class WordLevelTokenizer {
  /** Token of each id. */
  readonly vocab: readonly string[];
  readonly modelMaxLength: number;
  readonly padTokenId: number;
  readonly unkTokenId: number;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly #ids: Map<string, number>;

  /** `vocab` holds each token once and every special token; ids are positions. */
  constructor(vocab: readonly string[], modelMaxLength: number) {
    const ids = new Map<string, number>();
    vocab.forEach((t, id) => {
      if (ids.has(t))
        throw new TokenizerError(`tokenizer: token ${JSON.stringify(t)} appears twice`);
      ids.set(t, id);
    });
    const idOf = (t: string): number => {
      const id = ids.get(t);
      if (id === undefined) throw new TokenizerError(`tokenizer: the vocabulary has no ${t}`);
      return id;
    };
    if (!isSequenceLength(modelMaxLength)) {
      throw new TokenizerError(
        `tokenizer: modelMaxLength must be an integer >= 2 (at most ${MAX_SEQUENCE_LENGTH}), got ${String(modelMaxLength)}`,
      );
    }
    this.vocab = Object.freeze([...vocab]);
    this.#ids = ids;
    this.modelMaxLength = modelMaxLength;
    this.padTokenId = idOf(PAD_TOKEN);
    this.unkTokenId = idOf(UNK_TOKEN);
    this.bosTokenId = idOf(BOS_TOKEN);
    this.eosTokenId = idOf(EOS_TOKEN);
  }

  /**
   * The vocabulary of `texts`: special tokens at ids 0..3, then every word seen at least
   * minFrequency times, by descending count, ties in code-unit order.
   */
  static fromTexts(texts: Iterable<string>, opts: BuildTokenizerOptions = {}): WordLevelTokenizer {
    const minFrequency = opts.minFrequency ?? 1;
    if (!Number.isInteger(minFrequency) || minFrequency < 1) {
      throw new TokenizerError(
        `tokenizer: minFrequency must be an integer >= 1, got ${minFrequency}`,
      );
    }
    const counts = new Map<string, number>();
    let longest = 0;
    for (const text of texts) {
      let n = 0;
      for (const piece of splitSpecial(text)) {
        if (typeof piece !== 'string') {
          n++;
          continue;
        }
        for (const w of preTokenize(piece)) {
          counts.set(w, (counts.get(w) ?? 0) + 1);
          n++;
        }
      }
      longest = Math.max(longest, n);
    }
    let words = [...counts]
      .filter(([, c]) => c >= minFrequency)
      .sort(([a, ca], [b, cb]) => cb - ca || (a < b ? -1 : a > b ? 1 : 0))
      .map(([w]) => w);
    if (opts.maxVocabSize !== undefined) {
      const room = opts.maxVocabSize - SPECIAL_TOKENS.length;
      if (!Number.isInteger(room) || room < 0) {
        throw new TokenizerError(
          `tokenizer: maxVocabSize must be an integer >= ${SPECIAL_TOKENS.length}, got ${opts.maxVocabSize}`,
        );
      }
      words = words.slice(0, room);
    }
    return new WordLevelTokenizer(
      [...SPECIAL_TOKENS, ...words],
      opts.modelMaxLength ?? longest + 2,
    );
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  /** The id of a token (a word or a special token), or <|unk|>'s. */
  tokenToId(token: string): number {
    return this.#ids.get(token) ?? this.unkTokenId;
  }

  /** The tokens of a text, without start and end: words and special tokens. */
  tokenize(text: string): string[] {
    return splitSpecial(text).flatMap((p) => (typeof p === 'string' ? preTokenize(p) : [p.token]));
  }

  /** Ids of one text: <|startoftext|> words… <|endoftext|>, truncated to maxLength, no padding. */
  encodeOne(text: string, maxLength = this.modelMaxLength): number[] {
    checkLength(maxLength);
    const words = this.tokenize(text).slice(0, maxLength - 2);
    return [this.bosTokenId, ...words.map((w) => this.tokenToId(w)), this.eosTokenId];
  }

  /** Texts as a padded [B, L] batch; "" encodes to <|startoftext|> <|endoftext|> <|pad|>…. */
  encode(texts: readonly string[], opts: EncodeOptions = {}): EncodedBatch {
    const length = opts.maxLength ?? this.modelMaxLength;
    checkLength(length);
    const inputIds = new Int32Array(texts.length * length).fill(this.padTokenId);
    const attentionMask = new Int32Array(texts.length * length);
    texts.forEach((text, b) => {
      const ids = this.encodeOne(text, length);
      inputIds.set(ids, b * length);
      attentionMask.fill(1, b * length, b * length + ids.length);
    });
    return { inputIds, attentionMask, batchSize: texts.length, length };
  }

  /** Tokens joined by spaces; special tokens left out unless asked for. */
  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    const skip = opts.skipSpecialTokens ?? true;
    const special = new Set(SPECIAL_TOKENS.map((t) => this.#ids.get(t)));
    const out: string[] = [];
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k]!;
      if (skip && special.has(id)) continue;
      const t = this.vocab[id];
      if (t === undefined)
        throw new TokenizerError(`tokenizer: id ${id} is not in [0, ${this.vocabSize})`);
      out.push(t);
    }
    return out.join(' ');
  }

  /** The tokenizer.json text (Hugging Face `tokenizers` format). */
  tokenizerJson(): string {
    const doc = {
      version: '1.0',
      truncation: truncationJson(this.modelMaxLength),
      padding: paddingJson(this),
      ...pipelineJson(this),
      decoder: null,
      model: {
        type: 'WordLevel',
        vocab: Object.fromEntries(this.vocab.map((t, id) => [t, id])),
        unk_token: UNK_TOKEN,
      },
    };
    return `${JSON.stringify(doc, null, 2)}\n`;
  }

  /** The tokenizer_config.json text (transformers' side). */
  tokenizerConfigJson(): string {
    const decoder: Record<string, unknown> = {};
    for (const t of SPECIAL_TOKENS) decoder[String(this.tokenToId(t))] = addedToken(t);
    const doc = {
      added_tokens_decoder: decoder,
      bos_token: BOS_TOKEN,
      clean_up_tokenization_spaces: false,
      eos_token: EOS_TOKEN,
      model_input_names: ['input_ids', 'attention_mask'],
      model_max_length: this.modelMaxLength,
      pad_token: PAD_TOKEN,
      tokenizer_class: 'PreTrainedTokenizerFast',
      unk_token: UNK_TOKEN,
    };
    return `${JSON.stringify(doc, null, 2)}\n`;
  }
}

const NORMALIZER = { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Lowercase' }] };

/** Inverted Split with Removed: matches are the pieces, the white space between is dropped. */
const PRE_TOKENIZER = {
  type: 'Split',
  pattern: { Regex: WORD_PATTERN },
  behavior: 'Removed',
  invert: true,
};

function addedToken(content: string): Record<string, unknown> {
  return {
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  };
}

function truncationJson(maxLength: number): Record<string, unknown> {
  return { direction: 'Right', max_length: maxLength, strategy: 'LongestFirst', stride: 0 };
}

function paddingJson(tok: WordLevelTokenizer): Record<string, unknown> {
  return {
    strategy: { Fixed: tok.modelMaxLength },
    direction: 'Right',
    pad_to_multiple_of: null,
    pad_id: tok.padTokenId,
    pad_type_id: 0,
    pad_token: PAD_TOKEN,
  };
}

/**
 * The parts of tokenizer.json that define the text → ids pipeline: written by `saveTokenizer`,
 * and required as they are by `loadTokenizer`, since they are the only pipeline Sumi runs.
 */
function pipelineJson(tok: WordLevelTokenizer): Record<string, unknown> {
  const special = (id: string) => ({ SpecialToken: { id, type_id: 0 } });
  const seq = (id: 'A' | 'B') => ({ Sequence: { id, type_id: 0 } });
  const entry = (t: string) => ({ id: t, ids: [tok.tokenToId(t)], tokens: [t] });
  return {
    added_tokens: SPECIAL_TOKENS.map((t) => ({ id: tok.tokenToId(t), ...addedToken(t) })).sort(
      (a, b) => a.id - b.id,
    ),
    normalizer: NORMALIZER,
    pre_tokenizer: PRE_TOKENIZER,
    post_processor: {
      type: 'TemplateProcessing',
      single: [special(BOS_TOKEN), seq('A'), special(EOS_TOKEN)],
      pair: [special(BOS_TOKEN), seq('A'), special(EOS_TOKEN), seq('B'), special(EOS_TOKEN)],
      special_tokens: { [BOS_TOKEN]: entry(BOS_TOKEN), [EOS_TOKEN]: entry(EOS_TOKEN) },
    },
  };
}

function isSequenceLength(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 2 && n <= MAX_SEQUENCE_LENGTH;
}

function checkLength(maxLength: number): void {
  if (!isSequenceLength(maxLength)) {
    throw new TokenizerError(
      `tokenizer: maxLength must be an integer >= 2 (room for start and end; at most ${MAX_SEQUENCE_LENGTH}), got ${String(maxLength)}`,
    );
  }
}

/** The raw text cut at literal special tokens: text pieces and {token} markers. */
function splitSpecial(text: string): (string | { token: string })[] {
  const out: (string | { token: string })[] = [];
  let at = 0;
  for (const m of text.matchAll(SPECIAL_RE)) {
    if (m.index > at) out.push(text.slice(at, m.index));
    out.push({ token: m[0] });
    at = m.index + m[0].length;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

/** Token ids and mask as int32 tensors [B, L] for a text encoder. */
export function encodedTensors(
  enc: EncodedBatch,
  backend?: Backend,
): { inputIds: Tensor; attentionMask: Tensor } {
  const shape = [enc.batchSize, enc.length];
  return {
    inputIds: tensor(enc.inputIds, shape, { dtype: 'int32', backend }),
    attentionMask: tensor(enc.attentionMask, shape, { dtype: 'int32', backend }),
  };
}

// ---- tokenizer.json ----------------------------------------------------------------------------

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? 'nothing' : s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Structural equality of JSON values (object key order ignored). */
function jsonEqual(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) &&
      Array.isArray(b) &&
      a.length === b.length &&
      a.every((x, i) => jsonEqual(x, b[i]))
    );
  }
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return (
      ka.length === Object.keys(b).length &&
      ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]))
    );
  }
  return a === b;
}

/**
 * The text of tokenizer.json or tokenizer_config.json (at `path`, which errors name) as an object;
 * a TokenizerError when it is not JSON, not an object, or nested too deep.
 */
export function parseTokenizerFile(text: string, path: string): Record<string, unknown> {
  return parseJsonObject(text, path, TokenizerError);
}

/** A special token as tokenizer_config.json gives it: a string or {content: ...}. */
function tokenContent(v: unknown): unknown {
  return isObject(v) ? v.content : v;
}

/** `dir/name` as messages show it (`name` alone in the current folder). */
function inDir(dir: string, name: string): string {
  return dir === '.' || dir === '' ? name : `${dir.replace(/\/+$/, '')}/${name}`;
}

/**
 * A tokenizer from the texts of tokenizer.json and tokenizer_config.json (of folder `dir`, which
 * error messages name). Anything Sumi would not reproduce exactly (another model type or
 * normalizer, a duplicate or missing id, ...) is a TokenizerError naming the file and key.
 */
export function parseTokenizer(
  tokenizerJson: string,
  configJson: string,
  dir = '.',
): WordLevelTokenizer {
  const path = inDir(dir, TOKENIZER_FILE);
  const doc = parseTokenizerFile(tokenizerJson, path);
  const model = doc.model;
  if (!isObject(model))
    throw new TokenizerError(`${path}: model: expected an object, found ${show(model)}`);
  if (model.type !== 'WordLevel') {
    throw new TokenizerError(
      `${path}: model.type: expected "WordLevel", found ${show(model.type)} (Sumi reads word-level tokenizers only)`,
    );
  }
  if (!isObject(model.vocab)) {
    throw new TokenizerError(`${path}: model.vocab: expected an object of token → id`);
  }
  for (const t of SPECIAL_TOKENS) {
    if (!Object.hasOwn(model.vocab, t)) throw new TokenizerError(`${path}: model.vocab: no ${t}`);
  }
  const entries = Object.entries(model.vocab);
  const vocab = new Array<string | undefined>(entries.length);
  for (const [token, id] of entries) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= entries.length) {
      throw new TokenizerError(
        `${path}: model.vocab[${show(token)}]: expected an id in [0, ${entries.length}), found ${show(id)}`,
      );
    }
    if (vocab[id] !== undefined) {
      throw new TokenizerError(
        `${path}: model.vocab: id ${id} is given to both ${show(vocab[id])} and ${show(token)}`,
      );
    }
    vocab[id] = token;
  }
  if (model.unk_token !== UNK_TOKEN) {
    throw new TokenizerError(
      `${path}: model.unk_token: expected ${show(UNK_TOKEN)}, found ${show(model.unk_token)}`,
    );
  }

  const configPath = inDir(dir, TOKENIZER_CONFIG_FILE);
  const config = parseTokenizerFile(configJson, configPath);
  if (config.tokenizer_class !== 'PreTrainedTokenizerFast') {
    throw new TokenizerError(
      `${configPath}: tokenizer_class: expected "PreTrainedTokenizerFast", found ${show(config.tokenizer_class)}`,
    );
  }
  const maxLength = config.model_max_length;
  if (!isSequenceLength(maxLength)) {
    throw new TokenizerError(
      `${configPath}: model_max_length: expected an integer >= 2 (at most ${MAX_SEQUENCE_LENGTH}), found ${show(maxLength)}`,
    );
  }
  const roles: [string, string][] = [
    ['bos_token', BOS_TOKEN],
    ['eos_token', EOS_TOKEN],
    ['unk_token', UNK_TOKEN],
    ['pad_token', PAD_TOKEN],
  ];
  for (const [key, token] of roles) {
    const found = tokenContent(config[key]);
    if (found !== token) {
      throw new TokenizerError(
        `${configPath}: ${key}: expected ${show(token)}, found ${show(found)}`,
      );
    }
  }

  const tok = new WordLevelTokenizer(vocab as string[], maxLength);
  for (const [key, expected] of Object.entries(pipelineJson(tok))) {
    if (!jsonEqual(doc[key], expected)) {
      throw new TokenizerError(
        `${path}: ${key}: Sumi implements only ${show(expected)}, found ${show(doc[key])}`,
      );
    }
  }
  const trunc = doc.truncation;
  if (trunc !== null && trunc !== undefined) {
    const expected = truncationJson(maxLength);
    if (!jsonEqual(trunc, expected)) {
      throw new TokenizerError(
        `${path}: truncation: expected null or ${show(expected)}, found ${show(trunc)}`,
      );
    }
  }
  const pad = doc.padding;
  if (pad !== null && pad !== undefined) {
    if (
      !isObject(pad) ||
      pad.pad_id !== tok.padTokenId ||
      pad.pad_token !== PAD_TOKEN ||
      pad.direction !== 'Right'
    ) {
      throw new TokenizerError(
        `${path}: padding: expected null or right padding with ${PAD_TOKEN} (id ${tok.padTokenId}), found ${show(pad)}`,
      );
    }
  }
  return tok;
}
