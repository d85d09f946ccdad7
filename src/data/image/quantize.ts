/**
 * Colour quantization for the GIF encoder: a palette of at most 256 colours for a set of frames,
 * and the mapping of pixels to palette indices.
 *
 * - 'median-cut' (Heckbert, "Color image quantization for frame buffer display", SIGGRAPH 1982):
 *   when the frames use at most 256 distinct colours the palette is exactly those colours (so the
 *   GIF is lossless); otherwise colours are counted in a 5-5-5 bit histogram, the box whose
 *   widest channel range times population is largest is split at its population median along
 *   that channel until there are 256 boxes, and each box contributes the population-weighted mean
 *   of the colours in it.
 * - 'fixed': 256 gray levels when every frame is gray, else a 6x6x6 colour cube plus 40 grays.
 *
 * Pixels map to the nearest palette colour (squared RGB distance, first on ties).
 */

/** Packed 0xRRGGBB colours. */
export type Palette = Uint32Array;

export type QuantizeMethod = 'median-cut' | 'fixed';

/** The palette for pixels given as packed 0xRRGGBB values (one array per frame). */
export function makePalette(
  frames: readonly Uint32Array[],
  method: QuantizeMethod,
  allGray: boolean,
): Palette {
  if (method === 'fixed') return fixedPalette(allGray);
  const distinct = new Set<number>();
  for (const f of frames) {
    for (let i = 0; i < f.length && distinct.size <= 256; i++) distinct.add(f[i]!);
    if (distinct.size > 256) break;
  }
  if (distinct.size <= 256) return Uint32Array.from([...distinct].sort((a, b) => a - b));
  return medianCut(frames, 256);
}

function fixedPalette(gray: boolean): Palette {
  if (gray) return Uint32Array.from({ length: 256 }, (_, v) => (v << 16) | (v << 8) | v);
  const out: number[] = [];
  for (let r = 0; r < 6; r++) {
    for (let g = 0; g < 6; g++) for (let b = 0; b < 6; b++) out.push(pack(r * 51, g * 51, b * 51));
  }
  // 40 grays strictly between the cube's gray levels (multiples of 51).
  for (let i = 1; out.length < 256; i++) {
    const v = Math.round((i * 255) / 41);
    if (v % 51 !== 0) out.push(pack(v, v, v));
  }
  return Uint32Array.from(out);
}

function pack(r: number, g: number, b: number): number {
  return (r << 16) | (g << 8) | b;
}

interface Box {
  bins: number[];
  count: number;
}

function medianCut(frames: readonly Uint32Array[], size: number): Palette {
  // Histogram on 5 bits per channel, with exact colour sums for the box means.
  const count = new Float64Array(32768);
  const sums = new Float64Array(3 * 32768);
  for (const f of frames) {
    for (let i = 0; i < f.length; i++) {
      const c = f[i]!;
      const r = c >>> 16;
      const g = (c >>> 8) & 0xff;
      const b = c & 0xff;
      const bin = ((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3);
      count[bin]!++;
      sums[3 * bin]! += r;
      sums[3 * bin + 1]! += g;
      sums[3 * bin + 2]! += b;
    }
  }
  const used: number[] = [];
  let total = 0;
  for (let bin = 0; bin < 32768; bin++) {
    if (count[bin]! > 0) {
      used.push(bin);
      total += count[bin]!;
    }
  }
  const boxes: Box[] = [{ bins: used, count: total }];
  const channel = (bin: number, ch: number): number => (bin >> (10 - 5 * ch)) & 31;
  while (boxes.length < size) {
    // Split next the box and channel with the largest range x population.
    let pick = -1;
    let pickScore = 0;
    let pickCh = 0;
    for (let k = 0; k < boxes.length; k++) {
      const box = boxes[k]!;
      if (box.bins.length < 2) continue;
      for (let ch = 0; ch < 3; ch++) {
        let lo = 31;
        let hi = 0;
        for (const bin of box.bins) {
          const v = channel(bin, ch);
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        const score = (hi - lo) * box.count;
        if (score > pickScore) {
          [pick, pickScore, pickCh] = [k, score, ch];
        }
      }
    }
    if (pick < 0) break; // every box is a single bin
    const box = boxes[pick]!;
    const sorted = [...box.bins].sort((a, b) => channel(a, pickCh) - channel(b, pickCh) || a - b);
    // Split where the running population first reaches half, keeping both halves non-empty.
    let acc = 0;
    let cut = 1;
    for (let i = 0; i < sorted.length - 1; i++) {
      acc += count[sorted[i]!]!;
      cut = i + 1;
      if (acc >= box.count / 2) break;
    }
    const left = sorted.slice(0, cut);
    const right = sorted.slice(cut);
    const weight = (bins: number[]): number => bins.reduce((s, bin) => s + count[bin]!, 0);
    boxes.splice(
      pick,
      1,
      { bins: left, count: weight(left) },
      { bins: right, count: weight(right) },
    );
  }
  return Uint32Array.from(
    boxes.map((box) => {
      let r = 0;
      let g = 0;
      let b = 0;
      for (const bin of box.bins) {
        r += sums[3 * bin]!;
        g += sums[3 * bin + 1]!;
        b += sums[3 * bin + 2]!;
      }
      return pack(Math.round(r / box.count), Math.round(g / box.count), Math.round(b / box.count));
    }),
  );
}

/** Palette indices for packed colours: nearest palette entry, memoized per distinct colour. */
export function mapToPalette(
  pixels: Uint32Array,
  palette: Palette,
  memo: Map<number, number>,
): Uint8Array {
  const out = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) {
    const c = pixels[i]!;
    let idx = memo.get(c);
    if (idx === undefined) {
      idx = nearest(c, palette);
      memo.set(c, idx);
    }
    out[i] = idx;
  }
  return out;
}

function nearest(c: number, palette: Palette): number {
  const r = c >>> 16;
  const g = (c >>> 8) & 0xff;
  const b = c & 0xff;
  let best = 0;
  let bestD = Infinity;
  for (let k = 0; k < palette.length; k++) {
    const p = palette[k]!;
    const dr = (p >>> 16) - r;
    const dg = ((p >>> 8) & 0xff) - g;
    const db = (p & 0xff) - b;
    const d = dr * dr + dg * dg + db * db;
    if (d < bestD) {
      bestD = d;
      best = k;
      if (d === 0) break;
    }
  }
  return best;
}
