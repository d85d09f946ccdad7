import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { featureMatrix } from '../../../src/eval/metrics/features.js';
import {
  featureStats,
  frechetDistance,
  frechetDistanceOfFeatures,
} from '../../../src/eval/metrics/frechet.js';
import { gaussianSample, hashNormal, type SampleSpec, sumOf } from './test-data.js';
import { assertRelClose } from '../../engine/testing.js';

interface FrechetRef {
  distance: number;
  meanTerm: number;
  traceSqrtProduct: number;
  cov00: number;
  cov01: number;
}
const ref = JSON.parse(
  readFileSync(new URL('../../../test/fixtures/metrics/metrics_ref.json', import.meta.url), 'utf8'),
) as {
  frechet: {
    x: SampleSpec & { sum: number };
    y: SampleSpec & { sum: number };
    full: FrechetRef;
    singular: FrechetRef & { rows: number };
  };
};

void describe('Fréchet distance vs numpy (eigh-based reference)', () => {
  const x = gaussianSample(ref.frechet.x);
  const y = gaussianSample(ref.frechet.y);

  void it('the inputs are bit-identical to the reference script', () => {
    assert.equal(sumOf(x), ref.frechet.x.sum, 'Σ x');
    assert.equal(sumOf(y), ref.frechet.y.sum, 'Σ y');
  });

  void it('FD of two correlated 20-dim Gaussian samples', () => {
    const stats = featureStats(x);
    assertRelClose(stats.cov[0]!, ref.frechet.full.cov00, 1e-13, 'Σ[0, 0] (unbiased)');
    assertRelClose(stats.cov[1]!, ref.frechet.full.cov01, 1e-13, 'Σ[0, 1]');
    const r = frechetDistanceOfFeatures(x, y);
    assertRelClose(r.distance, ref.frechet.full.distance, 1e-11, 'FD');
    assertRelClose(r.meanTerm, ref.frechet.full.meanTerm, 1e-12, '‖μ₁ − μ₂‖²');
    assertRelClose(r.traceSqrtProduct, ref.frechet.full.traceSqrtProduct, 1e-11, 'tr √(…)');
    assert.equal(r.clamped.sigma1.count, 0, 'a full-rank Σ₁ has no negative eigenvalue');
  });

  void it('FD with a singular Σ₁ (12 samples in 20 dims): rounding negatives clamped and reported', () => {
    const n = ref.frechet.singular.rows;
    const x12 = featureMatrix(x.data.slice(0, n * x.cols), n, x.cols);
    const r = frechetDistanceOfFeatures(x12, y);
    // Σ₁ has rank 11, so 9 eigenvalues of the product are zero up to rounding δ ≈ 1e-15, and
    // each enters the trace as √δ ≈ 3e-8 on either side: agreement is to ~√ε, not ε.
    assertRelClose(r.distance, ref.frechet.singular.distance, 1e-6, 'FD');
    assertRelClose(r.traceSqrtProduct, ref.frechet.singular.traceSqrtProduct, 1e-6, 'tr √(…)');
    const { sigma1, product } = r.clamped;
    assert.ok(sigma1.relative < 1e-13 && product.relative < 1e-13, 'only rounding-sized negatives');
    assert.ok(sigma1.mostNegative <= 0 && product.mostNegative <= 0, 'reported as ≤ 0');
    console.log(
      `  singular Σ₁: ${sigma1.count} eigenvalues clamped (most negative ${sigma1.mostNegative.toExponential(2)}), ` +
        `${product.count} of the product (${product.mostNegative.toExponential(2)})`,
    );
  });
});

void describe('Fréchet distance: analytic cases', () => {
  void it('FD(X, X) = 0', () => {
    const x = gaussianSample({ stream: 9, rows: 80, cols: 30, scale: 1, shift: 1 });
    const r = frechetDistanceOfFeatures(x, x);
    const stats = featureStats(x);
    let trace = 0;
    for (let i = 0; i < 30; i++) trace += stats.cov[i * 30 + i]!;
    assert.equal(r.meanTerm, 0, 'equal means');
    assert.ok(Math.abs(r.distance) < 1e-12 * trace, `FD(X, X) = ${r.distance}, tr Σ = ${trace}`);
  });

  void it('isotropic Gaussians: FD = ‖μ₁ − μ₂‖² + d (σ₁ − σ₂)²', () => {
    const d = 17;
    const eye = (s2: number) =>
      Float64Array.from({ length: d * d }, (_, i) => (i % (d + 1) === 0 ? s2 : 0));
    const mu1 = Float64Array.from({ length: d }, (_, i) => hashNormal(1, i));
    const mu2 = Float64Array.from({ length: d }, (_, i) => hashNormal(2, i));
    const [s1, s2] = [0.7, 1.9];
    const r = frechetDistance(
      { dim: d, mean: mu1, cov: eye(s1 * s1) },
      { dim: d, mean: mu2, cov: eye(s2 * s2) },
    );
    let m = 0;
    for (let i = 0; i < d; i++) m += (mu1[i]! - mu2[i]!) ** 2;
    assertRelClose(r.distance, m + d * (s1 - s2) ** 2, 1e-14, 'FD');
    assertRelClose(r.traceSqrtProduct, d * s1 * s2, 1e-14, 'tr √(σ₁² σ₂² I)');
  });

  void it('2×2 non-commuting covariances: tr √(Σ₁^½ Σ₂ Σ₁^½) = √(tr Σ₁Σ₂ + 2 √(det Σ₁ det Σ₂))', () => {
    const a = Float64Array.from([2, 0.8, 0.8, 1]);
    const b = Float64Array.from([0.5, -0.3, -0.3, 3]);
    const zero = new Float64Array(2);
    const r = frechetDistance({ dim: 2, mean: zero, cov: a }, { dim: 2, mean: zero, cov: b });
    const trAB = a[0]! * b[0]! + a[1]! * b[2]! + a[2]! * b[1]! + a[3]! * b[3]!;
    const det = (m: Float64Array) => m[0]! * m[3]! - m[1]! * m[2]!;
    const want = Math.sqrt(trAB + 2 * Math.sqrt(det(a) * det(b)));
    assertRelClose(r.traceSqrtProduct, want, 1e-14, 'tr √(…)');
    assertRelClose(r.distance, 3 + 3.5 - 2 * want, 1e-14, 'FD');
  });

  void it('two-pass statistics survive a large common offset; float32 input reads the same', () => {
    const base = gaussianSample({ stream: 21, rows: 40, cols: 6, scale: 1, shift: 0 });
    const shifted = featureMatrix(
      base.data.map((v) => v + 1e6),
      40,
      6,
    );
    const s0 = featureStats(base);
    const s1 = featureStats(shifted);
    for (let i = 0; i < 36; i++)
      assertRelClose(s1.cov[i]!, s0.cov[i]!, 1e-9, `Σ[${i}] with offset 1e6`);
    for (let i = 0; i < 6; i++)
      assertRelClose(s1.mean[i]! - 1e6, s0.mean[i]!, 1e-9, `μ[${i}] with offset 1e6`);
    const f32 = featureMatrix(Float32Array.from(base.data), 40, 6);
    const f64 = featureMatrix(Float64Array.from(f32.data), 40, 6);
    assert.deepEqual(featureStats(f32), featureStats(f64), 'float32 rows are widened exactly');
  });

  void it('rejects a covariance that is not positive semi-definite, and bad shapes', () => {
    const zero = new Float64Array(2);
    const good = { dim: 2, mean: zero, cov: Float64Array.from([1, 0, 0, 1]) };
    const bad = { dim: 2, mean: zero, cov: Float64Array.from([1, 0, 0, -0.5]) };
    assert.throws(() => frechetDistance(bad, good), /not positive semi-definite/);
    assert.throws(() => frechetDistance(good, bad), /not positive semi-definite/);
    assert.throws(
      () => frechetDistance(good, { dim: 3, mean: new Float64Array(3), cov: new Float64Array(9) }),
      /dims differ/,
    );
    assert.throws(() => featureStats(featureMatrix(new Float64Array(3), 1, 3)), /at least 2 rows/);
  });

  void it('dim 256 (timed)', () => {
    const d = 256;
    const x = gaussianSample({ stream: 31, rows: 300, cols: d, scale: 1, shift: 1 });
    const y = gaussianSample({ stream: 41, rows: 300, cols: d, scale: 1.25, shift: 1 });
    const sx = featureStats(x);
    const sy = featureStats(y);
    const t0 = performance.now();
    const r = frechetDistance(sx, sy);
    const ms = performance.now() - t0;
    assert.ok(Number.isFinite(r.distance) && r.distance > 0, `FD = ${r.distance}`);
    console.log(`  FD at dim ${d}: ${ms.toFixed(0)} ms (FD ${r.distance.toFixed(4)})`);
  });
});
