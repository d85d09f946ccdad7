/**
 * Metrics of text samples (Diffusion-LM, Li et al. 2022, §6): fluency as the perplexity of the
 * samples under an autoregressive LM trained on the same corpus (beside that LM's perplexity of
 * held-out sentences), diversity as distinct-n (Li et al. 2016: distinct n-grams / all n-grams,
 * over all samples together), and memorisation as the fraction of samples that are exact copies
 * of a training sentence.
 */
import type { WordLevelTokenizer } from '../../data/tokenizer.js';
import type { CLIPTextModel } from '../../nn/models/clip-text.js';
import { lmPerplexity } from '../../diffusion/text-lm.js';

/** distinct-n: |distinct n-grams| / |n-grams| over the word lists (0 when there is none). */
export function distinctN(samples: readonly (readonly string[])[], n: number): number {
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`distinct-n: n must be an integer >= 1, got ${n}`);
  const seen = new Set<string>();
  let total = 0;
  for (const words of samples) {
    for (let i = 0; i + n <= words.length; i++) {
      seen.add(words.slice(i, i + n).join('\u0000'));
      total++;
    }
  }
  return total === 0 ? 0 : seen.size / total;
}

/** The fraction of samples equal to one of `train` (both as words joined by single spaces). */
export function exactCopyFraction(samples: readonly string[], train: ReadonlySet<string>): number {
  if (samples.length === 0) return 0;
  return samples.filter((s) => train.has(s)).length / samples.length;
}

/** The perplexity under `lm` of sentences (words joined by spaces), as rows <bos> words <eos>. */
export function sentencePerplexity(
  lm: CLIPTextModel,
  tokenizer: WordLevelTokenizer,
  sentences: readonly string[],
  seqLength: number,
): number {
  const { inputIds } = tokenizer.encode(sentences, { maxLength: seqLength });
  return lmPerplexity(lm, inputIds, seqLength).perplexity;
}

export interface TextSampleMetrics {
  samples: number;
  /** Under the LM: the samples, and the held-out sentences. */
  samplePerplexity: number | null;
  heldOutPerplexity: number | null;
  distinct1: number;
  distinct2: number;
  exactCopies: number;
  /** Samples with no word (all padding). */
  empty: number;
  meanWords: number;
}

/**
 * The metrics of `samples` (words joined by spaces): copies against `train`, and with an LM
 * (whose tokenizer must be the one the samples were decoded with) the two perplexities.
 */
export function textSampleMetrics(
  samples: readonly string[],
  opts: {
    train: ReadonlySet<string>;
    heldOut?: readonly string[];
    lm?: { model: CLIPTextModel; tokenizer: WordLevelTokenizer; seqLength: number };
  },
): TextSampleMetrics {
  const words = samples.map((s) => (s === '' ? [] : s.split(' ')));
  const lm = opts.lm;
  return {
    samples: samples.length,
    samplePerplexity:
      lm === undefined ? null : sentencePerplexity(lm.model, lm.tokenizer, samples, lm.seqLength),
    heldOutPerplexity:
      lm === undefined || opts.heldOut === undefined || opts.heldOut.length === 0
        ? null
        : sentencePerplexity(lm.model, lm.tokenizer, opts.heldOut, lm.seqLength),
    distinct1: distinctN(words, 1),
    distinct2: distinctN(words, 2),
    exactCopies: exactCopyFraction(samples, opts.train),
    empty: words.filter((w) => w.length === 0).length,
    meanWords: words.reduce((a, w) => a + w.length, 0) / Math.max(1, words.length),
  };
}
