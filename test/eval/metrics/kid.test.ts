import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { Generator } from '../../../src/engine/index.js';
import { featureMatrix } from '../../../src/eval/metrics/features.js';
import {
  kernelInceptionDistance,
  kidFromSubsets,
  polynomialMmd2,
  sampleWithoutReplacement,
} from '../../../src/eval/metrics/kid.js';
import { gaussianSample, type SampleSpec, sumOf } from './test-data.js';
import { assertRelClose } from '../../engine/testing.js';

const ref = JSON.parse(
  readFileSync(new URL('../../../test/fixtures/metrics/metrics_ref.json', import.meta.url), 'utf8'),
) as {
  kid: {
    x: SampleSpec & { sum: number };
    y: SampleSpec & { sum: number };
    subsets: { x: number[]; y: number[] }[];
    values: number[];
    mean: number;
    std: number;
    allRows: number;
  };
};

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

void describe('KID vs a direct numpy unbiased MMD²', () => {
  const x = gaussianSample(ref.kid.x);
  const y = gaussianSample(ref.kid.y);

  void it('the inputs are bit-identical to the reference script', () => {
    assert.equal(sumOf(x), ref.kid.x.sum, 'Σ x');
    assert.equal(sumOf(y), ref.kid.y.sum, 'Σ y');
  });

  void it('MMD² per fixed subset, their mean and (population) std', () => {
    const r = kidFromSubsets(x, y, ref.kid.subsets);
    ref.kid.values.forEach((v, i) => assertRelClose(r.values[i]!, v, 1e-12, `subset ${i}`));
    assertRelClose(r.kid, ref.kid.mean, 1e-12, 'mean');
    assertRelClose(r.std, ref.kid.std, 1e-11, 'std');
    assert.equal(r.subsetSize, 20, 'subset size');
    assertRelClose(
      polynomialMmd2(x, y, { x: range(x.rows), y: range(y.rows) }),
      ref.kid.allRows,
      1e-12,
      'all rows (40 vs 50)',
    );
  });
});

void describe('KID: analytic and behavioural checks', () => {
  const x = gaussianSample({ stream: 70, rows: 120, cols: 12, scale: 1, shift: 0.5 });
  const y = gaussianSample({ stream: 80, rows: 120, cols: 12, scale: 1.5, shift: 0.5 });

  void it('identical sets: MMD²_u(X, X) = (2/n)(mean off-diagonal k − mean diagonal k), ~0', () => {
    const n = x.rows;
    const d = x.cols;
    let diag = 0;
    let off = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let g = 0;
        for (let c = 0; c < d; c++) g += x.data[i * d + c]! * x.data[j * d + c]!;
        const k = (g / d + 1) ** 3;
        if (i === j) diag += k;
        else off += k;
      }
    }
    const want = (2 / n) * (off / (n * (n - 1)) - diag / n);
    const all = polynomialMmd2(x, x, { x: range(n), y: range(n) });
    assertRelClose(all, want, 1e-12, 'MMD²_u(X, X)');
    assert.ok(Math.abs(all) < (2 / n) * (diag / n), `|MMD²_u(X, X)| = ${all} is O(1/n)`);
  });

  void it('two samples of one distribution: KID ≈ 0 against KID of different distributions', () => {
    const both = gaussianSample({ stream: 70, rows: 400, cols: 12, scale: 1, shift: 0.5 });
    const half = (h: number) =>
      featureMatrix(both.data.slice(h * 200 * 12, (h + 1) * 200 * 12), 200, 12);
    const same = kernelInceptionDistance(half(0), half(1), {
      subsets: 20,
      subsetSize: 100,
      seed: 1,
    });
    const diff = kernelInceptionDistance(half(0), y, { subsets: 20, subsetSize: 100, seed: 1 });
    assert.ok(
      Math.abs(same.kid) < 0.05 * diff.kid,
      `KID(X, X') = ${same.kid} ± ${same.std} against KID(X, Y) = ${diff.kid}`,
    );
    console.log(
      `  KID(X, X') = ${same.kid.toExponential(3)}, KID(X, Y) = ${diff.kid.toExponential(3)}`,
    );
  });

  void it('deterministic given the seed; the subset size is capped at the smaller set', () => {
    const a = kernelInceptionDistance(x, y, { subsets: 5, subsetSize: 30, seed: 7 });
    const b = kernelInceptionDistance(x, y, {
      subsets: 5,
      subsetSize: 30,
      generator: new Generator(7),
    });
    const c = kernelInceptionDistance(x, y, { subsets: 5, subsetSize: 30, seed: 8 });
    assert.deepEqual(a.values, b.values, 'same seed, same subsets');
    assert.notDeepEqual(a.values, c.values, 'another seed, other subsets');
    const capped = kernelInceptionDistance(x, featureMatrix(y.data.slice(0, 50 * 12), 50, 12), {
      subsets: 2,
    });
    assert.equal(capped.subsetSize, 50, 'min(1000, 120, 50)');
  });

  void it('float32 features give the float64 answer of the same values', () => {
    const x32 = featureMatrix(Float32Array.from(x.data), x.rows, x.cols);
    const x64 = featureMatrix(Float64Array.from(x32.data), x.rows, x.cols);
    const a = kernelInceptionDistance(x32, y, { subsets: 3, subsetSize: 40 });
    const b = kernelInceptionDistance(x64, y, { subsets: 3, subsetSize: 40 });
    assert.deepEqual(a.values, b.values, 'widened exactly');
  });

  void it('sampleWithoutReplacement: distinct indices, every index equally likely', () => {
    const gen = new Generator(3);
    const counts = new Array<number>(10).fill(0);
    const draws = 2000;
    for (let i = 0; i < draws; i++) {
      const s = sampleWithoutReplacement(10, 3, gen);
      assert.equal(new Set(s).size, 3, 'distinct');
      for (const j of s) counts[j]!++;
    }
    // Each index is drawn with probability 3/10: 600 expected, sd ≈ 20.5.
    for (const c of counts) assert.ok(Math.abs(c - 600) < 100, `count ${c} of 600 expected`);
    assert.throws(() => sampleWithoutReplacement(3, 4, gen), /without replacement/);
  });

  void it('rejects mismatched feature sizes and tiny subsets', () => {
    const z = featureMatrix(new Float64Array(40), 10, 4);
    assert.throws(() => kernelInceptionDistance(x, z), /feature sizes differ/);
    assert.throws(() => kernelInceptionDistance(x, y, { subsetSize: 1 }), /subsetSize/);
  });
});
