/**
 * A corpus of short sentences for text diffusion (Diffusion-LM, Li et al. 2022) and the language
 * model that judges its samples: the sentences, a word-level vocabulary learned from them, and
 * every sentence as a fixed-length row of token ids
 *
 *   <|startoftext|> w_1 … w_n <|endoftext|> <|pad|> … <|pad|>     (length L, n ≤ L − 2)
 *
 * split into training and held-out sentences. Browser-safe: reading files is text-corpus-fs.ts.
 *
 * Pipeline: texts → sentences (split after . ! ?, white space collapsed) → words (the tokenizer's
 * pre-tokenizer: NFKC, lowercase, words and single punctuation marks) → sentences of minWords to
 * L − 2 words, each kept once → the maxVocabSize − 4 most frequent words → sentences whose every
 * word is in the vocabulary (no <|unk|> in the data) → a held-out fraction chosen by a seeded
 * Fisher–Yates shuffle.
 */
import { cpuBackend, rand } from '../engine/index.js';
import { preTokenize, SPECIAL_TOKENS, TokenizerError, WordLevelTokenizer } from './tokenizer.js';

/** A corpus with no usable sentence, or options that leave none. */
export class EmptyCorpusError extends TokenizerError {
  override name = 'EmptyCorpusError';
}

export interface TextCorpusOptions {
  /** L: tokens per row, start and end included (default 16). */
  seqLength?: number;
  /** Shortest sentence kept, in words (default 3). */
  minWords?: number;
  /** Ids at most, special tokens included (default 5000). */
  maxVocabSize?: number;
  /** Fraction of the sentences held out (default 0.05). */
  heldOutFraction?: number;
  /** Seed of the held-out choice (default 0). */
  seed?: number;
}

export const DEFAULT_TEXT_CORPUS_OPTIONS: Required<TextCorpusOptions> = {
  seqLength: 16,
  minWords: 3,
  maxVocabSize: 5000,
  heldOutFraction: 0.05,
  seed: 0,
};

export interface TextCorpus {
  name: string;
  tokenizer: WordLevelTokenizer;
  /** L */
  seqLength: number;
  /** Training sentences, each its words joined by single spaces (what `decode` gives back). */
  train: string[];
  heldOut: string[];
  /** Token ids of the training sentences, row-major [train.length, L]. */
  trainIds: Int32Array;
  heldOutIds: Int32Array;
}

/**
 * The entries of a fortune file (strfile's format: entries separated by lines holding only '%'),
 * without attribution lines (those starting with "--", after optional white space).
 */
export function splitFortunes(text: string): string[] {
  return text
    .replace(/\r\n?/g, '\n')
    .split(/\n%[ \t]*(?:\n|$)/)
    .map((entry) =>
      entry
        .split('\n')
        .filter((line) => !/^\s*--/.test(line))
        .join('\n')
        .trim(),
    )
    .filter((entry) => entry !== '');
}

/**
 * The sentences of texts as word lists (split after . ! ? followed by white space, then
 * pre-tokenized), minWords to maxWords words each, each distinct sentence once, in order of first
 * appearance.
 */
export function corpusSentences(
  texts: Iterable<string>,
  opts: { minWords: number; maxWords: number },
): string[][] {
  const seen = new Set<string>();
  const out: string[][] = [];
  for (const text of texts) {
    const flat = text.split(/\s+/).join(' ').trim();
    for (const s of flat.split(/(?<=[.!?])\s+/)) {
      const words = preTokenize(s);
      if (words.length < opts.minWords || words.length > opts.maxWords) continue;
      const key = words.join(' ');
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(words);
    }
  }
  return out;
}

function checkOptions(o: Required<TextCorpusOptions>): void {
  const bad = (key: string, want: string, v: number): never => {
    throw new TokenizerError(`text corpus: ${key} must be ${want}, got ${v}`);
  };
  if (!Number.isInteger(o.seqLength) || o.seqLength < 3)
    bad('seqLength', 'an integer >= 3', o.seqLength);
  if (!Number.isInteger(o.minWords) || o.minWords < 1)
    bad('minWords', 'an integer >= 1', o.minWords);
  if (o.minWords > o.seqLength - 2) {
    bad('minWords', `at most seqLength − 2 = ${o.seqLength - 2}`, o.minWords);
  }
  if (!Number.isInteger(o.maxVocabSize) || o.maxVocabSize <= SPECIAL_TOKENS.length) {
    bad('maxVocabSize', `an integer > ${SPECIAL_TOKENS.length}`, o.maxVocabSize);
  }
  if (!(o.heldOutFraction >= 0 && o.heldOutFraction < 1)) {
    bad('heldOutFraction', 'in [0, 1)', o.heldOutFraction);
  }
  if (!Number.isSafeInteger(o.seed) || o.seed < 0) bad('seed', 'an integer >= 0', o.seed);
}

/**
 * Builds the corpus of `texts` (see the module comment). Throws EmptyCorpusError naming `name`
 * when no sentence is left.
 */
export function buildTextCorpus(
  name: string,
  texts: Iterable<string>,
  options: TextCorpusOptions = {},
): TextCorpus {
  const o = { ...DEFAULT_TEXT_CORPUS_OPTIONS, ...options };
  checkOptions(o);
  const L = o.seqLength;
  const sentences = corpusSentences(texts, { minWords: o.minWords, maxWords: L - 2 });
  const empty = (why: string): EmptyCorpusError =>
    new EmptyCorpusError(
      `${name}: no sentences of ${o.minWords} to ${L - 2} words ${why} (an empty corpus)`,
    );
  if (sentences.length === 0) throw empty('in its text');
  const lines = sentences.map((w) => w.join(' '));
  const vocabTok = WordLevelTokenizer.fromTexts(lines, {
    maxVocabSize: o.maxVocabSize,
    modelMaxLength: L,
  });
  const kept = sentences.filter((w) =>
    w.every((x) => vocabTok.tokenToId(x) !== vocabTok.unkTokenId),
  );
  if (kept.length === 0) throw empty(`whose words are all among the ${o.maxVocabSize} kept`);
  // The vocabulary of the kept sentences only: no id is unused by the data.
  const keptLines = kept.map((w) => w.join(' '));
  const tokenizer = WordLevelTokenizer.fromTexts(keptLines, { modelMaxLength: L });
  const order = shuffledIndices(keptLines.length, o.seed);
  const nHeld =
    keptLines.length < 2
      ? 0
      : Math.min(keptLines.length - 1, Math.round(o.heldOutFraction * keptLines.length));
  const heldIdx = order.slice(0, nHeld).sort((a, b) => a - b);
  const trainIdx = order.slice(nHeld).sort((a, b) => a - b);
  const train = trainIdx.map((i) => keptLines[i]!);
  const heldOut = heldIdx.map((i) => keptLines[i]!);
  return {
    name,
    tokenizer,
    seqLength: L,
    train,
    heldOut,
    trainIds: tokenizer.encode(train, { maxLength: L }).inputIds,
    heldOutIds: tokenizer.encode(heldOut, { maxLength: L }).inputIds,
  };
}

/** 0..n−1 in the order of a Fisher–Yates shuffle driven by Philox uniforms of `seed`. */
export function shuffledIndices(n: number, seed: number): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  if (n < 2) return idx;
  const u = rand([n], { seed, dtype: 'float64', backend: cpuBackend() });
  const uniforms = u.dataSync();
  u.dispose();
  for (let i = n - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor(uniforms[i]! * (i + 1)));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx;
}

/**
 * The words of each row of ids [N, L]: the tokens between <|startoftext|> and the first
 * <|endoftext|> or <|pad|> (a row that does not start with <|startoftext|> is read from its first
 * token), joined by spaces.
 */
export function decodeRows(tok: WordLevelTokenizer, ids: ArrayLike<number>, L: number): string[] {
  const out: string[] = [];
  for (let r = 0; r * L < ids.length; r++) {
    const words: string[] = [];
    for (let k = 0; k < L; k++) {
      const id = ids[r * L + k]!;
      if (k === 0 && id === tok.bosTokenId) continue;
      if (id === tok.eosTokenId || id === tok.padTokenId) break;
      if (id === tok.bosTokenId) continue;
      words.push(tok.vocab[id] ?? tok.vocab[tok.unkTokenId]!);
    }
    out.push(words.join(' '));
  }
  return out;
}
