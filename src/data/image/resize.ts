/**
 * Resampling and cropping of planar float images (channels, height, width).
 *
 * Resizing is separable, one axis at a time, and picks its filter per axis: shrinking averages
 * the source pixels each output pixel covers, weighted by the covered fraction (area / box
 * filter, like OpenCV's INTER_AREA and PIL's BOX), so no source pixel is skipped; enlarging
 * interpolates linearly between pixel centres (bilinear, half-pixel centres, edges clamped, like
 * PyTorch's align_corners=False). An unchanged axis is copied.
 */

/** Per output index: source indices and weights (summing to 1). */
interface AxisWeights {
  index: Int32Array; // [out * taps + t]
  weight: Float32Array;
  taps: number;
}

function axisWeights(inSize: number, outSize: number): AxisWeights {
  if (outSize < inSize) {
    // Area: output o covers source interval [o * s, (o + 1) * s).
    const s = inSize / outSize;
    const taps = Math.ceil(s) + 1;
    const index = new Int32Array(outSize * taps);
    const weight = new Float32Array(outSize * taps);
    for (let o = 0; o < outSize; o++) {
      const lo = o * s;
      const hi = (o + 1) * s;
      let t = 0;
      for (let i = Math.floor(lo); i < Math.min(inSize, Math.ceil(hi)); i++) {
        const cover = Math.min(hi, i + 1) - Math.max(lo, i);
        if (cover <= 0) continue;
        index[o * taps + t] = i;
        weight[o * taps + t] = cover / s;
        t++;
      }
    }
    return { index, weight, taps };
  }
  // Bilinear (or identity when the sizes match: the centre lands on a source pixel).
  const index = new Int32Array(outSize * 2);
  const weight = new Float32Array(outSize * 2);
  const s = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const x = Math.min(inSize - 1, Math.max(0, (o + 0.5) * s - 0.5));
    const i0 = Math.floor(x);
    const f = x - i0;
    index[2 * o] = i0;
    index[2 * o + 1] = Math.min(inSize - 1, i0 + 1);
    weight[2 * o] = 1 - f;
    weight[2 * o + 1] = f;
  }
  return { index, weight, taps: 2 };
}

/** A map of (channels, height, width) planes to (channels, outH, outW) planes. */
export type PlanesMap = (
  src: Float32Array,
  channels: number,
  height: number,
  width: number,
  outH: number,
  outW: number,
) => Float32Array;

/** Resizes (channels, height, width) planes to (channels, outH, outW). */
export const resizePlanes: PlanesMap = (src, channels, height, width, outH, outW) => {
  if (src.length !== channels * height * width) {
    throw new Error(
      `resizePlanes: ${channels}x${height}x${width} needs ${channels * height * width} values, got ${src.length}`,
    );
  }
  if (!(outH >= 1 && outW >= 1 && Number.isInteger(outH) && Number.isInteger(outW))) {
    throw new Error(`resizePlanes: bad output size ${outH}x${outW}`);
  }
  if (outH === height && outW === width) return src.slice();
  // Horizontal pass: (C, H, W) -> (C, H, outW).
  let mid = src;
  if (outW !== width) {
    const { index, weight, taps } = axisWeights(width, outW);
    mid = new Float32Array(channels * height * outW);
    for (let row = 0; row < channels * height; row++) {
      const s = row * width;
      const d = row * outW;
      for (let o = 0; o < outW; o++) {
        let acc = 0;
        for (let t = 0; t < taps; t++)
          acc += weight[o * taps + t]! * src[s + index[o * taps + t]!]!;
        mid[d + o] = acc;
      }
    }
  }
  if (outH === height) return mid;
  // Vertical pass: (C, H, outW) -> (C, outH, outW).
  const { index, weight, taps } = axisWeights(height, outH);
  const out = new Float32Array(channels * outH * outW);
  for (let c = 0; c < channels; c++) {
    const plane = c * height * outW;
    for (let o = 0; o < outH; o++) {
      const d = (c * outH + o) * outW;
      for (let t = 0; t < taps; t++) {
        const w = weight[o * taps + t]!;
        if (w === 0) continue;
        const s = plane + index[o * taps + t]! * outW;
        for (let x = 0; x < outW; x++) out[d + x] = out[d + x]! + w * mid[s + x]!;
      }
    }
  }
  return out;
};

/** The centred (outH, outW) window of (channels, height, width) planes. */
export const centerCropPlanes: PlanesMap = (src, channels, height, width, outH, outW) => {
  if (outH > height || outW > width) {
    throw new Error(`centerCropPlanes: cannot crop ${height}x${width} to ${outH}x${outW}`);
  }
  const top = Math.floor((height - outH) / 2);
  const left = Math.floor((width - outW) / 2);
  const out = new Float32Array(channels * outH * outW);
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < outH; y++) {
      const s = (c * height + top + y) * width + left;
      out.set(src.subarray(s, s + outW), (c * outH + y) * outW);
    }
  }
  return out;
};

/**
 * Scales so the image covers (outH, outW) with its aspect ratio kept (the limiting side fits
 * exactly), then takes the centred window: "resize, then center-crop".
 */
export const resizeCoverPlanes: PlanesMap = (src, channels, height, width, outH, outW) => {
  const scale = Math.max(outH / height, outW / width);
  const h = Math.max(outH, Math.round(height * scale));
  const w = Math.max(outW, Math.round(width * scale));
  const resized = resizePlanes(src, channels, height, width, h, w);
  return h === outH && w === outW ? resized : centerCropPlanes(resized, channels, h, w, outH, outW);
};

/** Mirrors (channels, height, width) planes left to right, in place. */
export function flipPlanesInPlace(
  planes: Float32Array,
  channels: number,
  height: number,
  width: number,
): Float32Array {
  for (let row = 0; row < channels * height; row++) {
    const s = row * width;
    for (let a = s, b = s + width - 1; a < b; a++, b--) {
      const t = planes[a]!;
      planes[a] = planes[b]!;
      planes[b] = t;
    }
  }
  return planes;
}
