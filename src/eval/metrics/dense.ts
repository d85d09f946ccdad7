/** Loops over dense row-major matrices (Float64Array) that eigh and the Fréchet distance share. */

/**
 * out[j] += Σ_k c[k] · m[k·stride + j] for k < c.length and j < out.length: the combination of
 * rows of m (stride apart) with coefficients c, added to out. Four rows of m go through each pass
 * (summed as (r0 + r1) + (r2 + r3)), which keeps the reads in cache and fixes the order of sums.
 */
export function addRowCombination(
  out: Float64Array,
  c: Float64Array,
  m: Float64Array,
  stride: number,
): void {
  const rows = c.length;
  const width = out.length;
  let k = 0;
  for (; k + 3 < rows; k += 4) {
    const f0 = c[k]!;
    const f1 = c[k + 1]!;
    const f2 = c[k + 2]!;
    const f3 = c[k + 3]!;
    const r0 = k * stride;
    const r1 = r0 + stride;
    const r2 = r1 + stride;
    const r3 = r2 + stride;
    for (let j = 0; j < width; j++) {
      out[j] = out[j]! + (f0 * m[r0 + j]! + f1 * m[r1 + j]! + (f2 * m[r2 + j]! + f3 * m[r3 + j]!));
    }
  }
  for (; k < rows; k++) {
    const f = c[k]!;
    const r = k * stride;
    for (let j = 0; j < width; j++) out[j] = out[j]! + f * m[r + j]!;
  }
}
