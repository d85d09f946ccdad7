/**
 * Canny edges (Canny 1986, "A Computational Approach to Edge Detection") of planar grey images
 * (values in [0, 1], row-major h × w): thin edge maps, one pixel wide, for an edge ControlNet.
 *
 * 1. Smoothing: S = G_σ ∗ I, a separable Gaussian with weights ∝ exp(−j²/2σ²) for |j| ≤ ⌈3σ⌉
 *    (pixels outside the image repeat the border; σ = 0 leaves the image as it is).
 * 2. Gradients: the Sobel G_x, G_y of S divided by 4 (as in edges.ts, a unit step between two
 *    flat regions has |∇S| = 1 without smoothing; σ lowers that peak, to 0.62 at σ = 1).
 * 3. Non-maximum suppression: the gradient direction atan2(G_y, G_x) is quantised to the nearest
 *    of the 8 directions to a neighbour, (dx, dy); a pixel stays where |∇S| is at least that of
 *    the neighbour behind it, (x − dx, y − dy), and greater than that of the one ahead of it,
 *    (x + dx, y + dy) (neighbours outside the image count as 0). The asymmetry breaks ties: a
 *    symmetric step has two equal maxima, one on each side, and keeps the brighter one, so a step
 *    becomes a line on the first pixels of its bright side. Magnitudes within 1e-9 of each other
 *    count as equal (mirror-image sums round differently).
 * 4. Hysteresis: what survives with |∇S| > high is an edge, and so is every survivor with
 *    |∇S| > low joined to one of those by a chain of such survivors (8-connected).
 */

/** Options of cannyEdges (magnitudes in units of a black-to-white step, as in step 2). */
export interface CannyOptions {
  /** Standard deviation of the Gaussian smoothing, pixels (0: none). */
  sigma?: number;
  /** Weak edges: |∇S| above this, kept when joined to a strong one. */
  low?: number;
  /** Strong edges: |∇S| above this. */
  high?: number;
}

/**
 * Defaults for 28×28 digits: σ = 1 px (about half a 2–3 px stroke: it removes single-pixel
 * noise without merging the two sides of a stroke), and thresholds at 0.1 and 0.2 of a
 * black-to-white step (σ = 1 leaves such a step a peak of 0.62, a stroke's antialiased side
 * about 0.3–0.5).
 */
export const CANNY_DEFAULTS: Readonly<Required<CannyOptions>> = { sigma: 1, low: 0.1, high: 0.2 };

function checkSize(what: string, n: number, h: number, w: number): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) {
    throw new Error(`${what}: the image size must be positive integers, got ${h}x${w}`);
  }
  if (n !== h * w) throw new Error(`${what}: ${n} values for a ${h}x${w} image`);
}

/** G_σ ∗ I (step 1 of the file comment), in float64. */
export function gaussianBlur(
  image: ArrayLike<number>,
  h: number,
  w: number,
  sigma: number,
): Float64Array {
  checkSize('gaussianBlur', image.length, h, w);
  if (!Number.isFinite(sigma) || sigma < 0) {
    throw new Error(`gaussianBlur: sigma must be a finite number ≥ 0, got ${sigma}`);
  }
  const src = Float64Array.from(image);
  if (sigma === 0) return src;
  const r = Math.ceil(3 * sigma);
  const k = new Float64Array(2 * r + 1);
  let sum = 0;
  for (let j = -r; j <= r; j++) sum += k[j + r] = Math.exp(-(j * j) / (2 * sigma * sigma));
  for (let j = 0; j < k.length; j++) k[j] = k[j]! / sum;
  const clamp = (v: number, n: number): number => Math.min(n - 1, Math.max(0, v));
  const rows = new Float64Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let j = -r; j <= r; j++) s += k[j + r]! * src[y * w + clamp(x + j, w)]!;
      rows[y * w + x] = s;
    }
  }
  const out = new Float64Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let j = -r; j <= r; j++) s += k[j + r]! * rows[clamp(y + j, h) * w + x]!;
      out[y * w + x] = s;
    }
  }
  return out;
}

/** The Sobel gradients (G_x, G_y) / 4 of an image (step 2), y pointing down, in float64. */
export function sobelGradients(
  image: ArrayLike<number>,
  h: number,
  w: number,
): { gx: Float64Array; gy: Float64Array } {
  checkSize('sobelGradients', image.length, h, w);
  const at = (y: number, x: number): number =>
    image[Math.min(h - 1, Math.max(0, y)) * w + Math.min(w - 1, Math.max(0, x))]!;
  const gx = new Float64Array(h * w);
  const gy = new Float64Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const a = at(y - 1, x - 1);
      const b = at(y - 1, x);
      const c = at(y - 1, x + 1);
      const d = at(y, x - 1);
      const f = at(y, x + 1);
      const g = at(y + 1, x - 1);
      const i = at(y + 1, x);
      const j = at(y + 1, x + 1);
      gx[y * w + x] = (c + 2 * f + j - a - 2 * d - g) / 4;
      gy[y * w + x] = (g + 2 * i + j - a - 2 * b - c) / 4;
    }
  }
  return { gx, gy };
}

// The 8 directions to a neighbour, counter-clockwise from +x in the image's (x right, y down).
const DIRS: readonly (readonly [number, number])[] = [
  [1, 0],
  [1, 1],
  [0, 1],
  [-1, 1],
  [-1, 0],
  [-1, -1],
  [0, -1],
  [1, -1],
];

const TIE = 1e-9;

/** |∇| where it is a maximum along the quantised gradient direction, else 0 (step 3). */
export function nonMaximumSuppression(
  gx: ArrayLike<number>,
  gy: ArrayLike<number>,
  h: number,
  w: number,
): Float64Array {
  checkSize('nonMaximumSuppression', gx.length, h, w);
  checkSize('nonMaximumSuppression', gy.length, h, w);
  const m = new Float64Array(h * w);
  for (let i = 0; i < h * w; i++) m[i] = Math.hypot(gx[i]!, gy[i]!);
  const at = (y: number, x: number): number =>
    y >= 0 && y < h && x >= 0 && x < w ? m[y * w + x]! : 0;
  const out = new Float64Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = m[y * w + x]!;
      if (v === 0) continue;
      const sector =
        (Math.round(Math.atan2(gy[y * w + x]!, gx[y * w + x]!) / (Math.PI / 4)) + 8) % 8;
      const [dx, dy] = DIRS[sector]!;
      if (v >= at(y - dy, x - dx) - TIE && v > at(y + dy, x + dx) + TIE) out[y * w + x] = v;
    }
  }
  return out;
}

/**
 * Double threshold with hysteresis (step 4) of a thinned magnitude map: 1 for pixels above
 * `high` and those above `low` 8-connected to them through pixels above `low`, else 0.
 */
export function hysteresis(
  magnitude: ArrayLike<number>,
  h: number,
  w: number,
  low: number,
  high: number,
): Float32Array {
  checkSize('hysteresis', magnitude.length, h, w);
  if (!(Number.isFinite(low) && Number.isFinite(high) && low >= 0 && low <= high)) {
    throw new Error(
      `hysteresis: thresholds must satisfy 0 ≤ low ≤ high, got low ${low}, high ${high}`,
    );
  }
  const out = new Float32Array(h * w);
  const stack: number[] = [];
  for (let i = 0; i < h * w; i++) {
    if (magnitude[i]! > high) {
      out[i] = 1;
      stack.push(i);
    }
  }
  while (stack.length > 0) {
    const i = stack.pop()!;
    const y = Math.floor(i / w);
    const x = i - y * w;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const yy = y + dy;
        const xx = x + dx;
        if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
        const j = yy * w + xx;
        if (out[j] === 0 && magnitude[j]! > low) {
          out[j] = 1;
          stack.push(j);
        }
      }
    }
  }
  return out;
}

/** The Canny edge map (1 on edges, else 0) of a grey image, with CANNY_DEFAULTS for what is not given. */
export function cannyEdges(
  image: ArrayLike<number>,
  h: number,
  w: number,
  options: CannyOptions = {},
): Float32Array {
  const sigma = options.sigma ?? CANNY_DEFAULTS.sigma;
  const low = options.low ?? CANNY_DEFAULTS.low;
  const high = options.high ?? CANNY_DEFAULTS.high;
  checkSize('cannyEdges', image.length, h, w);
  if (!Number.isFinite(sigma) || sigma < 0) {
    throw new Error(`cannyEdges: sigma must be a finite number ≥ 0, got ${sigma}`);
  }
  if (!(Number.isFinite(low) && Number.isFinite(high) && low >= 0 && low <= high)) {
    throw new Error(
      `cannyEdges: thresholds must satisfy 0 ≤ low ≤ high, got low ${low}, high ${high}`,
    );
  }
  const { gx, gy } = sobelGradients(gaussianBlur(image, h, w, sigma), h, w);
  return hysteresis(nonMaximumSuppression(gx, gy, h, w), h, w, low, high);
}
