/**
 * Edge maps of planar grey images (values in [0, 1], row-major h × w): the condition images of
 * an edge ControlNet, and the edge agreement of a sample with the edges it was given.
 *
 * Sobel (Sobel & Feldman 1968): G_x = K ∗ I, G_y = Kᵀ ∗ I with K = [1 0 −1; 2 0 −2; 1 0 −1]
 * (pixels outside the image repeat the border), |∇I| = √(G_x² + G_y²) / 4, so that a unit step
 * between two flat regions has magnitude 1 on both sides of it. A pixel is an edge where
 * |∇I| > threshold.
 */

/** |∇I| (Sobel, normalised as in the file comment) of a grey image. */
export function sobelMagnitude(image: ArrayLike<number>, h: number, w: number): Float32Array {
  if (image.length !== h * w) {
    throw new Error(`sobelMagnitude: ${image.length} values for a ${h}x${w} image`);
  }
  const at = (y: number, x: number): number =>
    image[Math.min(h - 1, Math.max(0, y)) * w + Math.min(w - 1, Math.max(0, x))]!;
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const gx =
        at(y - 1, x + 1) +
        2 * at(y, x + 1) +
        at(y + 1, x + 1) -
        at(y - 1, x - 1) -
        2 * at(y, x - 1) -
        at(y + 1, x - 1);
      const gy =
        at(y + 1, x - 1) +
        2 * at(y + 1, x) +
        at(y + 1, x + 1) -
        at(y - 1, x - 1) -
        2 * at(y - 1, x) -
        at(y - 1, x + 1);
      out[y * w + x] = Math.sqrt(gx * gx + gy * gy) / 4;
    }
  }
  return out;
}

/** The default edge threshold on |∇I| (a quarter of a black-to-white step). */
export const EDGE_THRESHOLD = 0.25;

/** The binary edge map (1 where |∇I| > threshold, else 0) of a grey image. */
export function sobelEdges(
  image: ArrayLike<number>,
  h: number,
  w: number,
  threshold = EDGE_THRESHOLD,
): Float32Array {
  const m = sobelMagnitude(image, h, w);
  for (let i = 0; i < m.length; i++) m[i] = m[i]! > threshold ? 1 : 0;
  return m;
}

/** Edge agreement of a predicted edge map with a reference one, at a pixel tolerance. */
export interface EdgeAgreement {
  /** Predicted edge pixels within `tolerance` (Chebyshev distance) of a reference edge pixel. */
  precision: number;
  /** Reference edge pixels within `tolerance` of a predicted edge pixel. */
  recall: number;
  /** 2PR / (P + R) (0 when both are 0). */
  f1: number;
}

/** 1 where an edge pixel lies within Chebyshev distance r, else 0. */
function dilate(edges: ArrayLike<number>, h: number, w: number, r: number): Uint8Array {
  const out = new Uint8Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (edges[y * w + x]! <= 0.5) continue;
      for (let dy = -r; dy <= r; dy++) {
        for (let dx = -r; dx <= r; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy >= 0 && yy < h && xx >= 0 && xx < w) out[yy * w + xx] = 1;
        }
      }
    }
  }
  return out;
}

/**
 * Precision, recall and F1 of binary edge maps (values > 0.5 are edges) with a tolerance of
 * `tolerance` pixels, as boundary F-measures are scored (Martin et al. 2004). A map with no
 * edges has precision (or recall) 1 when the other has none either, else 0.
 */
export function edgeAgreement(
  predicted: ArrayLike<number>,
  reference: ArrayLike<number>,
  h: number,
  w: number,
  tolerance = 1,
): EdgeAgreement {
  if (predicted.length !== h * w || reference.length !== h * w) {
    throw new Error(
      `edgeAgreement: maps of ${predicted.length} and ${reference.length} values for ${h}x${w}`,
    );
  }
  const nearRef = dilate(reference, h, w, tolerance);
  const nearPred = dilate(predicted, h, w, tolerance);
  let pred = 0;
  let predHit = 0;
  let ref = 0;
  let refHit = 0;
  for (let i = 0; i < h * w; i++) {
    if (predicted[i]! > 0.5) {
      pred++;
      predHit += nearRef[i]!;
    }
    if (reference[i]! > 0.5) {
      ref++;
      refHit += nearPred[i]!;
    }
  }
  const precision = pred === 0 ? (ref === 0 ? 1 : 0) : predHit / pred;
  const recall = ref === 0 ? (pred === 0 ? 1 : 0) : refHit / ref;
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { precision, recall, f1 };
}
