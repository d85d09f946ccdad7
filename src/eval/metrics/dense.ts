/** Loops over dense row-major matrices (Float64Array) that eigh and the feature metrics share. */

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

/**
 * out[o + q] = Σ_c x[a + c] · y[b_q + c] for the four rows of y at b0..b3 (width d), each summed
 * in column order: the four products share each read of row a, and every sum is the one a plain
 * loop over c gives.
 */
export function dots4(
  out: Float64Array,
  o: number,
  x: Float32Array | Float64Array,
  a: number,
  y: Float32Array | Float64Array,
  [b0, b1, b2, b3]: readonly [number, number, number, number],
  d: number,
): void {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  for (let c = 0; c < d; c++) {
    const v = x[a + c]!;
    s0 += v * y[b0 + c]!;
    s1 += v * y[b1 + c]!;
    s2 += v * y[b2 + c]!;
    s3 += v * y[b3 + c]!;
  }
  out[o] = s0;
  out[o + 1] = s1;
  out[o + 2] = s2;
  out[o + 3] = s3;
}

/** out[q] = Σ_c (x[a + c] − y[b_q + c])², the squared distances of row a to four rows: as dots4. */
export function squaredDistances4(
  out: Float64Array,
  x: Float32Array | Float64Array,
  a: number,
  y: Float32Array | Float64Array,
  [b0, b1, b2, b3]: readonly [number, number, number, number],
  d: number,
): void {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  for (let c = 0; c < d; c++) {
    const v = x[a + c]!;
    const u0 = v - y[b0 + c]!;
    const u1 = v - y[b1 + c]!;
    const u2 = v - y[b2 + c]!;
    const u3 = v - y[b3 + c]!;
    s0 += u0 * u0;
    s1 += u1 * u1;
    s2 += u2 * u2;
    s3 += u3 * u3;
  }
  out[0] = s0;
  out[1] = s1;
  out[2] = s2;
  out[3] = s3;
}
