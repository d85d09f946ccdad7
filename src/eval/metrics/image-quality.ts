/**
 * Full-reference image quality of a reconstruction x̂ against the image x (one channel plane at a
 * time, H×W, values with a known range L, e.g. 2 for [−1, 1]):
 *
 *   PSNR = 10 log10(L² / MSE)
 *   SSIM = mean over windows of (2 μ_x μ_y + C1)(2 σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2))
 *
 * with Wang et al. (2004, "Image Quality Assessment: From Error Visibility to Structural
 * Similarity", §III-C) settings: an 11×11 Gaussian window of σ = 1.5 normalized to sum 1, over
 * every position where it fits inside the image, C1 = (0.01 L)², C2 = (0.03 L)², and biased
 * (weighted) variances.
 */

/** PSNR in dB of `a` against `b` for values of range `range` (Infinity when equal). */
export function psnr(a: ArrayLike<number>, b: ArrayLike<number>, range: number): number {
  if (a.length !== b.length || a.length === 0) {
    throw new Error(`psnr: ${a.length} values against ${b.length}`);
  }
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  return 10 * Math.log10((range * range) / (se / a.length));
}

/** The SSIM window's side: smaller planes have no SSIM. */
export const SSIM_WINDOW = 11;
const WINDOW = SSIM_WINDOW;
const SIGMA = 1.5;

/** The 1-D Gaussian taps of the window (the 2-D window is their outer product), summing to 1. */
function gaussianTaps(): Float64Array {
  const g = new Float64Array(WINDOW);
  const c = (WINDOW - 1) / 2;
  let sum = 0;
  for (let i = 0; i < WINDOW; i++) sum += g[i] = Math.exp(-((i - c) ** 2) / (2 * SIGMA * SIGMA));
  return g.map((v) => v / sum);
}

/** Mean SSIM of plane `a` against plane `b` (both h×w, h and w ≥ 11) for values of range `range`. */
export function ssim(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  h: number,
  w: number,
  range: number,
): number {
  if (a.length !== h * w || b.length !== h * w) {
    throw new Error(`ssim: planes of ${a.length} and ${b.length} values for ${h}x${w}`);
  }
  if (h < WINDOW || w < WINDOW) {
    throw new Error(`ssim: a ${w}x${h} plane is smaller than the ${WINDOW}x${WINDOW} window`);
  }
  const g = gaussianTaps();
  const c1 = (0.01 * range) ** 2;
  const c2 = (0.03 * range) ** 2;
  let total = 0;
  let count = 0;
  for (let y = 0; y + WINDOW <= h; y++) {
    for (let x = 0; x + WINDOW <= w; x++) {
      let ma = 0;
      let mb = 0;
      let saa = 0;
      let sbb = 0;
      let sab = 0;
      for (let i = 0; i < WINDOW; i++) {
        for (let j = 0; j < WINDOW; j++) {
          const k = g[i]! * g[j]!;
          const p = (y + i) * w + x + j;
          const u = a[p]!;
          const v = b[p]!;
          ma += k * u;
          mb += k * v;
          saa += k * u * u;
          sbb += k * v * v;
          sab += k * u * v;
        }
      }
      const va = saa - ma * ma;
      const vb = sbb - mb * mb;
      const cov = sab - ma * mb;
      total += ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
      count++;
    }
  }
  return total / count;
}

/**
 * PSNR (range 2) and SSIM averaged over the channels of one image: planes (C, H, W) in [−1, 1];
 * `ssim` null when the image is smaller than the SSIM window. The measure of an autoencoder's
 * reconstructions (`evaluateReconstruction`, `sumi reconstruct`, `sumi eval recon`, the
 * autoencoder trainer's held-out scores).
 */
export function imageQuality(
  original: Float32Array,
  reconstruction: Float32Array,
  [c, h, w]: readonly [number, number, number],
): { psnr: number; ssim: number | null } {
  const p = psnr(reconstruction, original, 2);
  if (h < WINDOW || w < WINDOW) return { psnr: p, ssim: null };
  let s = 0;
  for (let k = 0; k < c; k++) {
    const plane = (a: Float32Array): Float32Array => a.subarray(k * h * w, (k + 1) * h * w);
    s += ssim(plane(reconstruction), plane(original), h, w, 2);
  }
  return { psnr: p, ssim: s / c };
}
