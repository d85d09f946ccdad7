/**
 * Test inputs shared with scripts/ref/metrics_ref.py: the same integer hash, Box-Muller and
 * 2^-8 grid, so the tests and numpy see bit-identical feature matrices (see that script's header).
 * Used by the tests only; not exported from the metrics index.
 */
import { type FeatureMatrix, featureMatrix } from '../../../src/eval/metrics/features.js';

/** mix32: xor-shift-multiply with 0x7feb352d and 0x846ca68b, as the Python script's mix32. */
export function mix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** u = (h + 1/2) / 2^32, h = mix32(mix32(stream) + i mod 2^32). */
export function hashUniform(stream: number, i: number): number {
  return (mix32((mix32(stream) + i) >>> 0) + 0.5) / 2 ** 32;
}

/** Box-Muller from uniforms 2i and 2i+1, rounded to a multiple of 2^-8. */
export function hashNormal(stream: number, i: number): number {
  const u1 = hashUniform(stream, 2 * i);
  const u2 = hashUniform(stream, 2 * i + 1);
  const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  return Math.floor(z * 256 + 0.5) / 256;
}

export interface SampleSpec {
  stream: number;
  rows: number;
  cols: number;
  scale: number;
  shift: number;
}

/** Z A + m (the script's gaussian_sample): Z standard, A = scale · standard / 4, m = shift · standard. */
export function gaussianSample(spec: SampleSpec): FeatureMatrix {
  const { stream, rows, cols, scale, shift } = spec;
  const a = Float64Array.from(
    { length: cols * cols },
    (_, i) => (hashNormal(stream + 1, i) * scale) / 4,
  );
  const m = Float64Array.from({ length: cols }, (_, i) => hashNormal(stream + 2, i) * shift);
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols; k++) {
      const z = hashNormal(stream, r * cols + k);
      for (let c = 0; c < cols; c++) out[r * cols + c] = out[r * cols + c]! + z * a[k * cols + c]!;
    }
    for (let c = 0; c < cols; c++) out[r * cols + c] = out[r * cols + c]! + m[c]!;
  }
  return featureMatrix(out, rows, cols);
}

/** Σ of all values (exact for these inputs, so it must match the fixture's sum bit for bit). */
export function sumOf(f: FeatureMatrix): number {
  let s = 0;
  for (const v of f.data) s += v;
  return s;
}
