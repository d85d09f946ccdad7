import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { eigh } from '../../../src/eval/metrics/eigh.js';
import { hashNormal } from './test-data.js';
import { maxAbs } from '../../engine/testing.js';

/** Random n×n orthogonal matrix: a product of n Householder reflectors of hash-normal vectors. */
function randomOrthogonal(n: number, stream: number): Float64Array {
  const q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  for (let r = 0; r < n; r++) {
    const v = Float64Array.from({ length: n }, (_, i) => hashNormal(stream, r * n + i) + 1e-3);
    const vv = v.reduce((a, x) => a + x * x, 0);
    // q ← (I − 2 v vᵀ / vᵀv) q
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += v[i]! * q[i * n + j]!;
      const f = (2 * s) / vv;
      for (let i = 0; i < n; i++) q[i * n + j] = q[i * n + j]! - f * v[i]!;
    }
  }
  return q;
}

/** Q diag(λ) Qᵀ. */
function withSpectrum(lambda: readonly number[], stream: number): Float64Array {
  const n = lambda.length;
  const q = randomOrthogonal(n, stream);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += q[i * n + k]! * lambda[k]! * q[j * n + k]!;
      a[i * n + j] = s;
    }
  }
  // Exactly symmetric, as a covariance would be.
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) a[i * n + j] = a[j * n + i]!;
  return a;
}

/** max |V Λ Vᵀ − A| and max |Vᵀ V − I|. */
function residuals(
  a: Float64Array,
  n: number,
): { recon: number; orth: number; values: Float64Array } {
  const { values, vectors } = eigh(a, n);
  const v = vectors!;
  let recon = 0;
  let orth = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let r = 0;
      let o = 0;
      for (let k = 0; k < n; k++) {
        r += v[i * n + k]! * values[k]! * v[j * n + k]!;
        o += v[k * n + i]! * v[k * n + j]!;
      }
      recon = Math.max(recon, Math.abs(r - 0.5 * (a[i * n + j]! + a[j * n + i]!)));
      orth = Math.max(orth, Math.abs(o - (i === j ? 1 : 0)));
    }
  }
  return { recon, orth, values };
}

void describe('eigh', () => {
  const spectra: [string, number[]][] = [
    ['one value', [3.5]],
    ['two distinct', [-1, 2]],
    ['distinct', Array.from({ length: 24 }, (_, i) => hashNormal(7, i) * 3)],
    ['repeated', [2, 2, 2, 5, 5, -1, 0.5, 0.5, 0.5, 0.5, 7]],
    ['zeros (rank 3 of 12)', [0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 9]],
    ['all equal', new Array<number>(9).fill(-2.25)],
    ['all zero', new Array<number>(6).fill(0)],
    ['wide range', [1e-10, 1e-6, 1e-3, 1, 1e3, 1e6, 1e8]],
    ['clusters', Array.from({ length: 40 }, (_, i) => Math.floor(i / 8) + 1e-9 * i)],
  ];
  for (const [name, lambda] of spectra) {
    void it(`reconstructs A = V Λ Vᵀ to 1e-12 relative: ${name} (n = ${lambda.length})`, () => {
      const n = lambda.length;
      const a = withSpectrum(lambda, 11 + n);
      const scale = Math.max(1, maxAbs(a));
      const { recon, orth, values } = residuals(a, n);
      assert.ok(recon <= 1e-12 * scale, `‖VΛVᵀ − A‖ = ${recon} (scale ${scale})`);
      assert.ok(orth <= 1e-12, `‖VᵀV − I‖ = ${orth}`);
      const sorted = [...lambda].sort((p, q) => p - q);
      for (let i = 0; i < n; i++) {
        assert.ok(
          Math.abs(values[i]! - sorted[i]!) <= 1e-12 * scale,
          `λ_${i} = ${values[i]} vs ${sorted[i]}`,
        );
      }
      const only = eigh(a, n, { vectors: false });
      assert.equal(only.vectors, null, 'no vectors unless asked');
      for (let i = 0; i < n; i++) {
        assert.ok(
          Math.abs(only.values[i]! - values[i]!) <= 1e-12 * scale,
          `values-only λ_${i} = ${only.values[i]} vs ${values[i]}`,
        );
      }
    });
  }

  void it('random symmetric matrices of several sizes, and ascending order', () => {
    for (const n of [2, 3, 5, 16, 61]) {
      const a = new Float64Array(n * n);
      for (let i = 0; i < n; i++) {
        for (let j = i; j < n; j++) {
          a[i * n + j] = hashNormal(100 + n, i * n + j);
          a[j * n + i] = a[i * n + j]!;
        }
      }
      const { recon, orth, values } = residuals(a, n);
      const scale = Math.max(1, maxAbs(a));
      assert.ok(recon <= 1e-12 * scale, `n=${n}: ‖VΛVᵀ − A‖ = ${recon}`);
      assert.ok(orth <= 1e-12, `n=${n}: ‖VᵀV − I‖ = ${orth}`);
      for (let i = 1; i < n; i++)
        assert.ok(values[i - 1]! <= values[i]!, `n=${n}: ascending at ${i}`);
      let trace = 0;
      for (let i = 0; i < n; i++) trace += a[i * n + i]!;
      const sum = values.reduce((p, q) => p + q, 0);
      assert.ok(Math.abs(sum - trace) < 1e-12 * n * scale, `n=${n}: Σλ = ${sum}, tr A = ${trace}`);
    }
  });

  void it("Wilkinson's W21+ (pairs of eigenvalues equal to 14 digits)", () => {
    const n = 21;
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      a[i * n + i] = Math.abs(10 - i);
      if (i + 1 < n) {
        a[i * n + i + 1] = 1;
        a[(i + 1) * n + i] = 1;
      }
    }
    const { recon, orth, values } = residuals(a, n);
    assert.ok(recon <= 1e-13 * 11, `‖VΛVᵀ − A‖ = ${recon}`);
    assert.ok(orth <= 1e-13, `‖VᵀV − I‖ = ${orth}`);
    // The largest pair of W21+: 10.746194182903322 and 10.746194182903393.
    assert.ok(Math.abs(values[20]! - 10.746194182903393) < 1e-12, `λ_max = ${values[20]}`);
    assert.ok(Math.abs(values[19]! - 10.746194182903322) < 1e-12, `λ_19 = ${values[19]}`);
  });

  void it('already diagonal and block-diagonal matrices, and n = 0', () => {
    const diag = Float64Array.from([3, 0, 0, 0, -1, 0, 0, 0, 2]);
    assert.deepEqual(Array.from(eigh(diag, 3).values), [-1, 2, 3], 'diagonal');
    // Two 2×2 blocks: eigenvalues 1 ± 1 and 5 ± 2.
    const blocks = Float64Array.from([1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 5, 2, 0, 0, 2, 5]);
    const { recon, values } = residuals(blocks, 4);
    assert.ok(recon < 1e-14, `block-diagonal reconstruction ${recon}`);
    const want = [0, 2, 3, 7];
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(values[i]! - want[i]!) < 1e-14, `λ_${i}`);
    const empty = eigh(new Float64Array(0), 0);
    assert.equal(empty.values.length, 0, 'n = 0 has no eigenvalues');
  });

  void it('decomposes the symmetric part of a non-symmetric input; rejects bad input', () => {
    const a = Float64Array.from([2, 1, 3, 4]);
    const sym = Float64Array.from([2, 2, 2, 4]);
    assert.deepEqual(eigh(a, 2).values, eigh(sym, 2).values, '(A + Aᵀ)/2');
    assert.throws(() => eigh(Float64Array.from([1, NaN, NaN, 1]), 2), /not finite/);
    assert.throws(() => eigh(new Float64Array(5), 2), /expected 4 entries/);
  });

  void it('n = 256 (timed)', () => {
    const n = 256;
    const a = withSpectrum(
      Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 0 : hashNormal(3, i) ** 2)),
      5,
    );
    const t0 = performance.now();
    const { recon, orth } = residuals(a, n);
    const ms = performance.now() - t0;
    assert.ok(recon <= 1e-12 * Math.max(1, maxAbs(a)), `‖VΛVᵀ − A‖ = ${recon}`);
    assert.ok(orth <= 1e-12, `‖VᵀV − I‖ = ${orth}`);
    console.log(`  eigh n=${n} with vectors and checks: ${ms.toFixed(0)} ms`);
  });
});
