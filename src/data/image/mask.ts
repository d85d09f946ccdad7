/**
 * Foreground masks of planar images (values in [0, 1], c × h × w): the condition images of a
 * mask ControlNet.
 *
 * The background colour b is the per-channel median of the image's border pixels (its outer
 * ring of 2(h + w) − 4 pixels; the mean of the two middle values when there is an even number),
 * so an object drawn on a plain backdrop that it does not fill to the edges finds that backdrop:
 * black for MNIST, white for emoji on white. A pixel is foreground where it differs from b by
 * more than the threshold in some channel, max_k |v_k − b_k| > threshold. With the default of
 * 0.5 (half a black-to-white step, where an antialiased boundary lies) an MNIST digit's mask is
 * its silhouette, the pixels with grey level above 0.5; colours within 0.5 of the background in
 * every channel (a pale tint on white) count as background.
 */

/** The default foreground threshold on max_k |v_k − b_k|. */
export const MASK_THRESHOLD = 0.5;

function checkPlanes(what: string, n: number, c: number, h: number, w: number): void {
  if ([c, h, w].some((v) => !Number.isInteger(v) || v < 1)) {
    throw new Error(`${what}: the image shape must be positive integers, got ${c}x${h}x${w}`);
  }
  if (n !== c * h * w) throw new Error(`${what}: ${n} values for a ${c}x${h}x${w} image`);
}

/** The background colour [c]: the per-channel median of the border pixels. */
export function backgroundColour(
  planes: ArrayLike<number>,
  c: number,
  h: number,
  w: number,
): Float32Array {
  checkPlanes('backgroundColour', planes.length, c, h, w);
  const ring: number[] = [];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (y === 0 || y === h - 1 || x === 0 || x === w - 1) ring.push(y * w + x);
    }
  }
  const out = new Float32Array(c);
  const values = new Float64Array(ring.length);
  for (let k = 0; k < c; k++) {
    for (let j = 0; j < ring.length; j++) values[j] = planes[k * h * w + ring[j]!]!;
    values.sort();
    const mid = values.length >> 1;
    out[k] = values.length % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
  }
  return out;
}

/** The foreground mask [h, w] (1 on the foreground, else 0) of an image given as planes [c, h, w]. */
export function foregroundMask(
  planes: ArrayLike<number>,
  c: number,
  h: number,
  w: number,
  threshold = MASK_THRESHOLD,
): Float32Array {
  checkPlanes('foregroundMask', planes.length, c, h, w);
  if (!Number.isFinite(threshold) || threshold < 0) {
    throw new Error(`foregroundMask: threshold must be a finite number ≥ 0, got ${threshold}`);
  }
  const bg = backgroundColour(planes, c, h, w);
  const out = new Float32Array(h * w);
  for (let i = 0; i < h * w; i++) {
    for (let k = 0; k < c; k++) {
      if (Math.abs(planes[k * h * w + i]! - bg[k]!) > threshold) {
        out[i] = 1;
        break;
      }
    }
  }
  return out;
}
