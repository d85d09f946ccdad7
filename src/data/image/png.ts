/**
 * PNG decoder and encoder, written from the PNG specification (W3C, 2nd/3rd edition). zlib
 * streams go through node:zlib; chunks, CRCs, scanline filters and Adam7 interlacing are here.
 *
 * File layout: an 8-byte signature, then chunks of [length u32 BE][type, 4 ASCII letters][data]
 * [CRC-32 of type + data]. IHDR comes first; PLTE (palette) and tRNS (transparency) are read;
 * IDAT chunks concatenate into one zlib stream; IEND ends the file. Other ancillary chunks (lower
 * case first letter) are skipped; an unknown critical chunk is an error.
 *
 * The decoder accepts every standard format: gray (1, 2, 4, 8, 16 bits), gray+alpha (8, 16), RGB
 * (8, 16), RGBA (8, 16), palette (1, 2, 4, 8 bits), all five filter types, and Adam7. It returns a
 * `RawImage`: gray below 8 bits is scaled to 8 bits, palette images become RGB (RGBA when tRNS is
 * present), a tRNS colour key on gray/RGB adds an alpha channel, 16-bit stays 16-bit.
 *
 * The encoder writes gray, gray+alpha, RGB and RGBA at 8 or 16 bits, with a chosen or adaptive
 * filter per row and optional Adam7 interlacing.
 */
import { deflateSync, inflateSync } from 'node:zlib';

import { crc32 } from './crc32.js';
import { bitDepthOf, checkImage, type Channels, type RawImage } from './image.js';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Samples per pixel for each PNG colour type. */
const SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** Allowed bit depths for each colour type. */
const DEPTHS: Record<number, readonly number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};

/** Adam7 passes: [x start, y start, x step, y step]. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

/** Refuse images whose decoded size would exceed this many samples (1 GiB of 8-bit data). */
const MAX_SAMPLES = 2 ** 30;

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

interface Header {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlace: number;
}

interface Pass {
  x0: number;
  y0: number;
  dx: number;
  dy: number;
  w: number;
  h: number;
}

function passes(width: number, height: number, interlace: boolean): Pass[] {
  if (!interlace) return [{ x0: 0, y0: 0, dx: 1, dy: 1, w: width, h: height }];
  return ADAM7.map(([x0, y0, dx, dy]) => ({
    x0,
    y0,
    dx,
    dy,
    w: Math.max(0, Math.ceil((width - x0) / dx)),
    h: Math.max(0, Math.ceil((height - y0) / dy)),
  })).filter((p) => p.w > 0 && p.h > 0);
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0');
}

// ---- decoding ------------------------------------------------------------------------------------

/**
 * Decodes a PNG file. `name` (a file name) starts every error message, which says what is wrong:
 * bad signature, truncated chunk, CRC mismatch, unsupported colour type or bit depth, corrupt
 * image data.
 */
export function decodePng(bytes: Uint8Array, name = 'PNG image'): RawImage {
  const fail = (msg: string): Error => new Error(`${name}: ${msg}`);
  if (!isPng(bytes)) throw fail('not a PNG file (bad signature)');

  let header: Header | null = null;
  let palette: Uint8Array | null = null;
  let trns: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  let ended = false;
  let pos = 8;
  while (pos < bytes.length && !ended) {
    if (pos + 8 > bytes.length) {
      throw fail(`truncated chunk header at byte ${pos} (${bytes.length - pos} bytes left)`);
    }
    const length = u32(bytes, pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    if (!/^[A-Za-z]{4}$/.test(type)) throw fail(`invalid chunk type at byte ${pos}`);
    if (length > 0x7fffffff) throw fail(`chunk '${type}' at byte ${pos} has bad length ${length}`);
    if (pos + 12 + length > bytes.length) {
      throw fail(
        `truncated chunk '${type}' at byte ${pos}: needs ${length + 12} bytes, ` +
          `${bytes.length - pos} left`,
      );
    }
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    const stored = u32(bytes, pos + 8 + length);
    const computed = crc32(bytes.subarray(pos + 4, pos + 8 + length));
    if (stored !== computed) {
      throw fail(
        `CRC mismatch in chunk '${type}' at byte ${pos} (stored ${hex(stored)}, ` +
          `computed ${hex(computed)})`,
      );
    }
    if (header === null && type !== 'IHDR') throw fail(`first chunk is '${type}', expected IHDR`);
    switch (type) {
      case 'IHDR':
        if (header !== null) throw fail('more than one IHDR chunk');
        header = parseHeader(data, fail);
        break;
      case 'PLTE':
        if (length === 0 || length % 3 !== 0 || length > 768) {
          throw fail(`PLTE chunk has ${length} bytes, expected 3 to 768 in steps of 3`);
        }
        palette = data;
        break;
      case 'tRNS':
        trns = data;
        break;
      case 'IDAT':
        idat.push(data);
        break;
      case 'IEND':
        ended = true;
        break;
      default:
        // Bit 5 of the first byte clear (upper case) marks a critical chunk we must understand.
        if ((bytes[pos + 4]! & 0x20) === 0) throw fail(`unknown critical chunk '${type}'`);
    }
    pos += 12 + length;
  }
  if (header === null) throw fail('no IHDR chunk');
  if (!ended) throw fail('no IEND chunk (file truncated?)');
  if (idat.length === 0) throw fail('no IDAT chunk');
  if (header.colorType === 3 && palette === null) throw fail('palette image without PLTE chunk');

  let raw: Uint8Array;
  try {
    raw = inflateSync(idat.length === 1 ? idat[0]! : Buffer.concat(idat));
  } catch (e) {
    throw fail(`corrupt image data (zlib: ${e instanceof Error ? e.message : String(e)})`);
  }
  const samples = unpackSamples(raw, header, fail);
  return expand(samples, header, palette, trns, fail);
}

function parseHeader(d: Uint8Array, fail: (m: string) => Error): Header {
  if (d.length !== 13) throw fail(`IHDR chunk has ${d.length} bytes, expected 13`);
  const h: Header = {
    width: u32(d, 0),
    height: u32(d, 4),
    depth: d[8]!,
    colorType: d[9]!,
    interlace: d[12]!,
  };
  if (h.width === 0 || h.height === 0 || h.width > 0x7fffffff || h.height > 0x7fffffff) {
    throw fail(`bad image size ${h.width}x${h.height}`);
  }
  const allowed = DEPTHS[h.colorType];
  if (allowed === undefined) {
    throw fail(`unsupported color type ${h.colorType} (PNG defines 0, 2, 3, 4 and 6)`);
  }
  if (!allowed.includes(h.depth)) {
    throw fail(`unsupported bit depth ${h.depth} for color type ${h.colorType}`);
  }
  if (d[10] !== 0) throw fail(`unsupported compression method ${d[10]}`);
  if (d[11] !== 0) throw fail(`unsupported filter method ${d[11]}`);
  if (h.interlace > 1) throw fail(`unsupported interlace method ${h.interlace}`);
  if (h.width * h.height * SAMPLES[h.colorType]! > MAX_SAMPLES) {
    throw fail(`image too large (${h.width}x${h.height})`);
  }
  return h;
}

/** Reverses the scanline filters of `rows` rows of `rowBytes` bytes each, in place. */
function unfilter(
  raw: Uint8Array,
  start: number,
  rowBytes: number,
  rows: number,
  bpp: number,
  fail: (m: string) => Error,
): void {
  let prev = -1;
  for (let y = 0; y < rows; y++) {
    const f = raw[start + y * (rowBytes + 1)]!;
    const cur = start + y * (rowBytes + 1) + 1;
    switch (f) {
      case 0:
        break;
      case 1: // Sub: add the byte one pixel to the left
        for (let i = bpp; i < rowBytes; i++) raw[cur + i] = raw[cur + i]! + raw[cur + i - bpp]!;
        break;
      case 2: // Up: add the byte above
        if (prev >= 0)
          for (let i = 0; i < rowBytes; i++) raw[cur + i] = raw[cur + i]! + raw[prev + i]!;
        break;
      case 3: // Average: add floor((left + up) / 2)
        for (let i = 0; i < rowBytes; i++) {
          const left = i >= bpp ? raw[cur + i - bpp]! : 0;
          const up = prev >= 0 ? raw[prev + i]! : 0;
          raw[cur + i] = raw[cur + i]! + ((left + up) >> 1);
        }
        break;
      case 4: // Paeth: add whichever of left, up, up-left is closest to left + up - upLeft
        for (let i = 0; i < rowBytes; i++) {
          const a = i >= bpp ? raw[cur + i - bpp]! : 0;
          const b = prev >= 0 ? raw[prev + i]! : 0;
          const c = i >= bpp && prev >= 0 ? raw[prev + i - bpp]! : 0;
          raw[cur + i] = raw[cur + i]! + paeth(a, b, c);
        }
        break;
      default:
        throw fail(`unknown filter type ${f} on row ${y}`);
    }
    prev = cur;
  }
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

/** Unfilters and de-interlaces the inflated stream into raw samples, one per array element. */
function unpackSamples(
  raw: Uint8Array,
  h: Header,
  fail: (m: string) => Error,
): Uint8Array | Uint16Array {
  const spp = SAMPLES[h.colorType]!;
  const bitsPerPixel = spp * h.depth;
  const bpp = Math.max(1, bitsPerPixel >> 3);
  const ps = passes(h.width, h.height, h.interlace === 1);
  let needed = 0;
  for (const p of ps) needed += p.h * (1 + Math.ceil((p.w * bitsPerPixel) / 8));
  if (raw.length < needed) {
    throw fail(`image data too short: ${raw.length} bytes after inflate, expected ${needed}`);
  }
  const out =
    h.depth === 16
      ? new Uint16Array(h.width * h.height * spp)
      : new Uint8Array(h.width * h.height * spp);
  const mask = (1 << h.depth) - 1;
  let start = 0;
  for (const p of ps) {
    const rowBytes = Math.ceil((p.w * bitsPerPixel) / 8);
    unfilter(raw, start, rowBytes, p.h, bpp, fail);
    for (let y = 0; y < p.h; y++) {
      const row = start + y * (rowBytes + 1) + 1;
      const outRow = (p.y0 + y * p.dy) * h.width;
      for (let x = 0; x < p.w; x++) {
        const o = (outRow + p.x0 + x * p.dx) * spp;
        for (let s = 0; s < spp; s++) {
          const k = x * spp + s; // sample index within the row
          if (h.depth === 8) out[o + s] = raw[row + k]!;
          else if (h.depth === 16) out[o + s] = (raw[row + 2 * k]! << 8) | raw[row + 2 * k + 1]!;
          else {
            const bit = k * h.depth; // samples pack MSB first
            out[o + s] = (raw[row + (bit >> 3)]! >> (8 - h.depth - (bit & 7))) & mask;
          }
        }
      }
    }
    start += p.h * (rowBytes + 1);
  }
  return out;
}

/** Turns raw samples into a RawImage: palette lookup, low-depth scaling, tRNS to alpha. */
function expand(
  samples: Uint8Array | Uint16Array,
  h: Header,
  palette: Uint8Array | null,
  trns: Uint8Array | null,
  fail: (m: string) => Error,
): RawImage {
  const { width, height, colorType, depth } = h;
  const n = width * height;
  if (colorType === 3) {
    const entries = palette!.length / 3;
    const alpha = trns !== null;
    if (alpha && trns.length > entries) {
      throw fail(`tRNS chunk has ${trns.length} entries, palette has ${entries}`);
    }
    const channels: Channels = alpha ? 4 : 3;
    const data = new Uint8Array(n * channels);
    for (let p = 0; p < n; p++) {
      const i = samples[p]!;
      if (i >= entries) throw fail(`pixel ${p} uses palette index ${i}, palette has ${entries}`);
      const o = p * channels;
      data[o] = palette![3 * i]!;
      data[o + 1] = palette![3 * i + 1]!;
      data[o + 2] = palette![3 * i + 2]!;
      if (alpha) data[o + 3] = i < trns.length ? trns[i]! : 255;
    }
    return { width, height, channels, data };
  }
  const data = samples;
  if (depth < 8) {
    const scale = 255 / ((1 << depth) - 1); // 1-bit: 0, 255; 2-bit: 0, 85, 170, 255
    for (let i = 0; i < data.length; i++) data[i] = data[i]! * scale;
  }
  const spp = SAMPLES[colorType]! as Channels;
  if (trns === null || (colorType !== 0 && colorType !== 2))
    return { width, height, channels: spp, data };

  // A tRNS colour key: pixels equal to it become transparent, all others opaque.
  const keyLen = colorType === 0 ? 1 : 3;
  if (trns.length !== 2 * keyLen) {
    throw fail(
      `tRNS chunk has ${trns.length} bytes, expected ${2 * keyLen} for color type ${colorType}`,
    );
  }
  const key = Array.from({ length: keyLen }, (_, s) => {
    const v = (trns[2 * s]! << 8) | trns[2 * s + 1]!;
    return depth < 8 ? Math.round(v * (255 / ((1 << depth) - 1))) : v;
  });
  const channels = (spp + 1) as Channels;
  const opaque = depth === 16 ? 65535 : 255;
  const withAlpha = depth === 16 ? new Uint16Array(n * channels) : new Uint8Array(n * channels);
  for (let p = 0; p < n; p++) {
    let match = true;
    for (let s = 0; s < keyLen; s++) {
      const v = data[p * keyLen + s]!;
      withAlpha[p * channels + s] = v;
      if (v !== key[s]) match = false;
    }
    withAlpha[p * channels + keyLen] = match ? 0 : opaque;
  }
  return { width, height, channels, data: withAlpha };
}

// ---- encoding ------------------------------------------------------------------------------------

export type PngFilter = 'none' | 'sub' | 'up' | 'average' | 'paeth';
const FILTERS: readonly PngFilter[] = ['none', 'sub', 'up', 'average', 'paeth'];

export interface PngEncodeOptions {
  /** One filter for every row, or 'adaptive' (default): per row, the filter whose output has the
   * smallest sum of absolute values (read as signed bytes), the heuristic the spec suggests. */
  filter?: PngFilter | 'adaptive';
  /** Adam7 interlacing (default false). */
  interlace?: boolean;
  /** zlib level 0..9 (default 6). */
  level?: number;
}

const COLOR_TYPE: Record<Channels, number> = { 1: 0, 2: 4, 3: 2, 4: 6 };

/** Encodes an 8- or 16-bit gray, gray+alpha, RGB or RGBA image as a PNG file. */
export function encodePng(img: RawImage, opts: PngEncodeOptions = {}): Uint8Array {
  const { width, height, channels, data } = checkImage(img, 'encodePng');
  const depth = bitDepthOf(img);
  const bpp = (channels * depth) / 8;
  const interlace = opts.interlace ?? false;
  const choice = opts.filter ?? 'adaptive';
  if (choice !== 'adaptive' && !FILTERS.includes(choice)) {
    throw new Error(`encodePng: unknown filter '${String(choice)}'`);
  }

  const ps = passes(width, height, interlace);
  let total = 0;
  for (const p of ps) total += p.h * (1 + p.w * bpp);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of ps) {
    const rowBytes = p.w * bpp;
    let prev = new Uint8Array(rowBytes); // the row above the first is all zeros
    let cur = new Uint8Array(rowBytes);
    for (let y = 0; y < p.h; y++) {
      // Gather the pass row as big-endian bytes.
      const srcRow = (p.y0 + y * p.dy) * width;
      for (let x = 0; x < p.w; x++) {
        const s = (srcRow + p.x0 + x * p.dx) * channels;
        for (let c = 0; c < channels; c++) {
          const v = data[s + c]!;
          if (depth === 8) cur[x * channels + c] = v;
          else {
            cur[2 * (x * channels + c)] = v >> 8;
            cur[2 * (x * channels + c) + 1] = v & 0xff;
          }
        }
      }
      at = writeFiltered(out, at, cur, prev, bpp, choice);
      [prev, cur] = [cur, prev];
    }
  }
  const idat = deflateSync(out, { level: opts.level ?? 6 });

  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr[8] = depth;
  ihdr[9] = COLOR_TYPE[channels];
  ihdr[12] = interlace ? 1 : 0;
  return concatBytes([
    Uint8Array.from(SIGNATURE),
    makeChunk('IHDR', ihdr),
    makeChunk('IDAT', idat),
    makeChunk('IEND', new Uint8Array(0)),
  ]);
}

/** Writes the filter byte and the filtered row at `at`; returns the next position. */
function writeFiltered(
  out: Uint8Array,
  at: number,
  cur: Uint8Array,
  prev: Uint8Array,
  bpp: number,
  choice: PngFilter | 'adaptive',
): number {
  const n = cur.length;
  let best = choice === 'adaptive' ? 0 : FILTERS.indexOf(choice);
  if (choice === 'adaptive') {
    let bestCost = Infinity;
    for (let f = 0; f < 5; f++) {
      let cost = 0;
      for (let i = 0; i < n && cost < bestCost; i++) {
        const v = filterByte(f, cur, prev, i, bpp);
        cost += v < 128 ? v : 256 - v;
      }
      if (cost < bestCost) [best, bestCost] = [f, cost];
    }
  }
  out[at] = best;
  for (let i = 0; i < n; i++) out[at + 1 + i] = filterByte(best, cur, prev, i, bpp);
  return at + 1 + n;
}

function filterByte(f: number, cur: Uint8Array, prev: Uint8Array, i: number, bpp: number): number {
  const x = cur[i]!;
  const a = i >= bpp ? cur[i - bpp]! : 0;
  const b = prev[i]!;
  switch (f) {
    case 0:
      return x;
    case 1:
      return (x - a) & 0xff;
    case 2:
      return (x - b) & 0xff;
    case 3:
      return (x - ((a + b) >> 1)) & 0xff;
    default:
      return (x - paeth(a, b, i >= bpp ? prev[i - bpp]! : 0)) & 0xff;
  }
}

/** One chunk: length, type, data, CRC-32 of type and data. */
export function makeChunk(type: string, data: Uint8Array): Uint8Array {
  if (!/^[A-Za-z]{4}$/.test(type)) throw new Error(`makeChunk: bad chunk type '${type}'`);
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
