/**
 * Feature matrices: `rows` samples of `cols` features each, row-major, as a feature extractor
 * (a classifier's penultimate layer) produces them. Every metric here reads them through this one
 * shape.
 */

export interface FeatureMatrix {
  readonly data: Float32Array | Float64Array;
  readonly rows: number;
  readonly cols: number;
}

/** Wraps row-major data as a rows×cols feature matrix, checking its size and values. */
export function featureMatrix(
  data: Float32Array | Float64Array,
  rows: number,
  cols: number,
): FeatureMatrix {
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(cols) || cols < 1) {
    throw new Error(`feature matrix: bad shape ${rows}×${cols}`);
  }
  if (data.length !== rows * cols) {
    throw new Error(`feature matrix: ${data.length} values for ${rows}×${cols}`);
  }
  checkFinite({ data, rows, cols }, 'feature matrix');
  return { data, rows, cols };
}

/** Throws if any value is NaN or infinite, naming the first one. */
export function checkFinite(x: FeatureMatrix, what: string): void {
  const { data, cols } = x;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) {
      throw new Error(
        `${what}: value ${data[i]} at row ${Math.floor(i / cols)}, column ${i % cols}`,
      );
    }
  }
}

/** Throws unless the two matrices have the same number of columns (and enough rows). */
export function checkPair(a: FeatureMatrix, b: FeatureMatrix, minRows: number, what: string): void {
  if (a.cols !== b.cols) {
    throw new Error(`${what}: feature sizes differ (${a.cols} and ${b.cols})`);
  }
  if (a.rows < minRows || b.rows < minRows) {
    throw new Error(
      `${what}: needs at least ${minRows} rows in each set, got ${a.rows} and ${b.rows}`,
    );
  }
}

/**
 * Squared Euclidean distance between row i of a and row j of b: Σ_c (a_ic − b_jc)², summed in
 * column order (the blocked loops of precision-recall.ts sum in the same order, so every path
 * gives the same bits for the same pair).
 */
export function squaredDistance(a: FeatureMatrix, i: number, b: FeatureMatrix, j: number): number {
  const d = a.cols;
  const ad = a.data;
  const bd = b.data;
  const ai = i * d;
  const bj = j * d;
  let s = 0;
  for (let c = 0; c < d; c++) {
    const u = ad[ai + c]! - bd[bj + c]!;
    s += u * u;
  }
  return s;
}
