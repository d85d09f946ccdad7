/**
 * Class statistics of generated samples from a classifier's predicted labels: how evenly the
 * classes are covered (the histogram and its entropy) and, for a class-conditional model, how
 * often a sample shows the class it was asked for.
 */

export interface ClassDistribution {
  /** counts[c]: samples predicted as class c. */
  counts: Float64Array;
  /** p_c = counts[c] / n. */
  frequencies: Float64Array;
  n: number;
  /** H = −Σ_c p_c ln p_c (with 0 ln 0 = 0), in nats. */
  entropyNats: number;
  /** H / ln 2. */
  entropyBits: number;
  /** H / ln K: 1 for a uniform histogram, 0 for a single class; NaN when K = 1. */
  normalizedEntropy: number;
}

export interface ConditionalAccuracy {
  /** p̂ = correct / n: the fraction whose predicted class equals the requested one. */
  accuracy: number;
  /** Binomial standard error √(p̂ (1 − p̂) / n). */
  standardError: number;
  correct: number;
  n: number;
  /** Accuracy among the samples requested as class c (NaN where none was requested). */
  perClass: Float64Array;
  /** Samples requested as class c. */
  perClassCount: Float64Array;
}

function checkLabels(labels: ArrayLike<number>, numClasses: number, what: string): void {
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new Error(`${what}: numClasses must be a positive integer, got ${numClasses}`);
  }
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i]!;
    if (!Number.isInteger(c) || c < 0 || c >= numClasses) {
      throw new Error(`${what}: label ${c} at ${i} is outside [0, ${numClasses - 1}]`);
    }
  }
}

/** Histogram of predicted labels (integers in [0, numClasses)) and its entropy. */
export function classDistribution(
  predicted: ArrayLike<number>,
  numClasses: number,
): ClassDistribution {
  checkLabels(predicted, numClasses, 'classDistribution');
  const n = predicted.length;
  if (n === 0) throw new Error('classDistribution: no labels');
  const counts = new Float64Array(numClasses);
  for (let i = 0; i < n; i++) counts[predicted[i]!]! += 1;
  const frequencies = counts.map((c) => c / n);
  let entropyNats = 0;
  for (const p of frequencies) if (p > 0) entropyNats -= p * Math.log(p);
  return {
    counts,
    frequencies,
    n,
    entropyNats,
    entropyBits: entropyNats / Math.LN2,
    normalizedEntropy: numClasses > 1 ? entropyNats / Math.log(numClasses) : NaN,
  };
}

/** Conditional accuracy of predicted labels against the requested ones, overall and per class. */
export function conditionalAccuracy(
  predicted: ArrayLike<number>,
  requested: ArrayLike<number>,
  numClasses: number,
): ConditionalAccuracy {
  checkLabels(predicted, numClasses, 'conditionalAccuracy');
  checkLabels(requested, numClasses, 'conditionalAccuracy');
  const n = predicted.length;
  if (requested.length !== n) {
    throw new Error(`conditionalAccuracy: ${n} predictions for ${requested.length} requests`);
  }
  if (n === 0) throw new Error('conditionalAccuracy: no labels');
  const hits = new Float64Array(numClasses);
  const perClassCount = new Float64Array(numClasses);
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const want = requested[i]!;
    perClassCount[want]! += 1;
    if (predicted[i] === want) {
      hits[want]! += 1;
      correct++;
    }
  }
  const accuracy = correct / n;
  return {
    accuracy,
    standardError: Math.sqrt((accuracy * (1 - accuracy)) / n),
    correct,
    n,
    perClass: hits.map((h, c) => (perClassCount[c]! > 0 ? h / perClassCount[c]! : NaN)),
    perClassCount,
  };
}
