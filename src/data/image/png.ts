/**
 * PNG decoding and encoding through `fast-png` (pure JavaScript, so it runs in browsers too).
 * Hand-written here, because fast-png trusts the file: the chunk walk below, which checks the
 * layout and the header before fast-png sees the bytes (fast-png allocates the size IHDR claims
 * before reading any data, and reads past the end of a truncated file), and the conversion of its
 * result to a `RawImage`.
 *
 * File layout (PNG specification, W3C 3rd edition): an 8-byte signature, then chunks of
 * [length u32 BE][type, 4 ASCII letters][data][CRC-32 of type + data]. IHDR comes first; PLTE
 * (palette) and tRNS (transparency) are used; IDAT chunks concatenate into one zlib stream; IEND
 * ends the file. Other ancillary chunks (lower-case first letter) are dropped before decoding, so
 * a malformed text or colour-profile chunk cannot fail a readable image; an unknown critical chunk
 * is an error. fast-png checks the CRC of every chunk it is given.
 *
 * Decoding accepts gray (1, 2, 4, 8, 16 bits), gray+alpha (8, 16), RGB (8, 16), RGBA (8, 16),
 * palette (1, 2, 4, 8 bits), every filter, and Adam7 at 8 and 16 bits (fast-png cannot
 * de-interlace packed samples, so Adam7 below 8 bits is refused). The result: gray below 8 bits
 * is scaled to 8 bits, palette images become RGB (RGBA when tRNS is present), a tRNS colour key
 * on gray/RGB adds an alpha channel, 16-bit stays 16-bit.
 *
 * Encoding writes gray, gray+alpha, RGB and RGBA at 8 or 16 bits, optionally Adam7-interlaced.
 */
import { type DecodedPng, decode, encode, hasPngSignature } from 'fast-png';

import { bitDepthOf, type Channels, checkImage, ImageDecodeError, type RawImage } from './image.js';

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

/**
 * Deflate turns n compressed bytes into at most about 1032 n bytes (a 258-byte match coded in two
 * bits), so image data that needs more than this cannot be in the file, whatever IHDR says.
 */
const MAX_INFLATE_RATIO = 1032;

export function isPng(bytes: Uint8Array): boolean {
  return hasPngSignature(bytes);
}

interface Header {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlace: number;
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

type Fail = (msg: string) => ImageDecodeError;

interface Layout {
  header: Header;
  /** The file rebuilt from the chunks fast-png needs, in canonical order. */
  file: Uint8Array;
  /** The tRNS colour key of a gray or RGB image, one 16-bit sample per channel. */
  colourKey: number[] | null;
}

// ---- decoding ------------------------------------------------------------------------------------

/**
 * Decodes a PNG file. `name` (a file name) starts every error message, which says what is wrong:
 * bad signature, truncated chunk, CRC mismatch, unsupported colour type or bit depth, corrupt
 * image data. Errors are `ImageDecodeError`s.
 */
export function decodePng(bytes: Uint8Array, name = 'PNG image'): RawImage {
  const fail: Fail = (msg) => new ImageDecodeError(`${name}: ${msg}`);
  if (!isPng(bytes)) throw fail('not a PNG file (bad signature)');
  const { header, file, colourKey } = readLayout(bytes, fail);
  let png: DecodedPng;
  try {
    png = decode(file, { checkCrc: true });
  } catch (e) {
    const msg = errorText(e);
    // A filter byte read past the end of the inflated stream.
    if (msg.endsWith('filter: undefined')) throw fail('image data too short for the image size');
    throw fail(`corrupt image data (${msg})`);
  }
  return toRawImage(png, header, colourKey, fail);
}

/** An error's message, with its cause's (fast-png wraps zlib errors). */
function errorText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause instanceof Error ? ` ${e.cause.message}` : '';
  return `${e.message.replace(/:$/, '')}${cause === '' ? '' : ':'}${cause}`;
}

/** Walks the chunks, checks the layout and the header, and keeps the chunks the image needs. */
function readLayout(bytes: Uint8Array, fail: Fail): Layout {
  let header: Header | null = null;
  let ihdr: Uint8Array | null = null;
  let plte: Uint8Array | null = null;
  let trns: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  let idatBytes = 0;
  let iend: Uint8Array | null = null;
  let pos = 8;
  while (pos < bytes.length && iend === null) {
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
    const chunk = bytes.subarray(pos, pos + 12 + length); // length, type, data and CRC
    if (header === null && type !== 'IHDR') throw fail(`first chunk is '${type}', expected IHDR`);
    switch (type) {
      case 'IHDR':
        if (header !== null) throw fail('more than one IHDR chunk');
        header = parseHeader(chunk.subarray(8, 8 + length), fail);
        ihdr = chunk;
        break;
      case 'PLTE':
        if (plte !== null) throw fail('more than one PLTE chunk');
        if (length === 0 || length % 3 !== 0 || length > 768) {
          throw fail(`PLTE chunk has ${length} bytes, expected 3 to 768 in steps of 3`);
        }
        plte = chunk;
        break;
      case 'tRNS':
        if (trns !== null) throw fail('more than one tRNS chunk');
        trns = chunk;
        break;
      case 'IDAT':
        idat.push(chunk);
        idatBytes += length;
        break;
      case 'IEND':
        iend = chunk;
        break;
      default:
        // Bit 5 of the first byte clear (upper case) marks a critical chunk we must understand.
        if ((bytes[pos + 4]! & 0x20) === 0) throw fail(`unknown critical chunk '${type}'`);
    }
    pos += 12 + length;
  }
  if (header === null || ihdr === null) throw fail('no IHDR chunk');
  if (iend === null) throw fail('no IEND chunk (file truncated?)');
  if (idat.length === 0) throw fail('no IDAT chunk');
  const { width, height, colorType } = header;
  if (colorType === 3 && plte === null) throw fail('palette image without PLTE chunk');
  if (colorType === 4 || colorType === 6) trns = null; // the spec forbids it there; ignored
  if (trns !== null && colorType === 3) {
    const entries = (plte!.length - 12) / 3;
    if (trns.length - 12 > entries) {
      throw fail(`tRNS chunk has ${trns.length - 12} entries, palette has ${entries}`);
    }
  }
  let colourKey: number[] | null = null;
  if (trns !== null && colorType !== 3) {
    // Applied here rather than by fast-png, which refuses keys with more samples than pixels.
    const expected = colorType === 0 ? 2 : 6;
    if (trns.length - 12 !== expected) {
      throw fail(
        `tRNS chunk has ${trns.length - 12} bytes, expected ${expected} for color type ${colorType}`,
      );
    }
    const key = trns.subarray(8, 8 + expected);
    colourKey = Array.from(
      { length: expected / 2 },
      (_, c) => (key[2 * c]! << 8) | key[2 * c + 1]!,
    );
    trns = null;
  }
  const needed = inflatedSize(header);
  if (needed > MAX_INFLATE_RATIO * idatBytes + 1024) {
    throw fail(
      `image data too short: ${idatBytes} compressed bytes cannot hold the ${needed} bytes ` +
        `a ${width}x${height} image needs`,
    );
  }
  const parts = [ihdr, plte, trns, ...idat, iend].filter((c) => c !== null);
  const file = new Uint8Array(8 + parts.reduce((n, c) => n + c.length, 0));
  file.set(bytes.subarray(0, 8));
  let at = 8;
  for (const c of parts) {
    file.set(c, at);
    at += c.length;
  }
  return { header, file, colourKey };
}

function parseHeader(d: Uint8Array, fail: Fail): Header {
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
  if (h.interlace === 1 && h.depth < 8) {
    throw fail(`Adam7-interlaced images below 8 bits per sample are not supported`);
  }
  if (h.width * h.height * SAMPLES[h.colorType]! > MAX_SAMPLES) {
    throw fail(`image too large (${h.width}x${h.height})`);
  }
  return h;
}

/** Bytes of the inflated stream: per (pass) row a filter byte and the packed samples. */
function inflatedSize(h: Header): number {
  const bitsPerPixel = SAMPLES[h.colorType]! * h.depth;
  const rowBytes = (w: number): number => 1 + Math.ceil((w * bitsPerPixel) / 8);
  if (h.interlace === 0) return h.height * rowBytes(h.width);
  let n = 0;
  for (const [x0, y0, dx, dy] of ADAM7) {
    const w = Math.ceil((h.width - x0) / dx);
    const rows = Math.ceil((h.height - y0) / dy);
    if (w > 0 && rows > 0) n += rows * rowBytes(w);
  }
  return n;
}

/** Samples below 8 bits, packed MSB first with each row starting on a byte, one per element. */
function unpackSamples(packed: Uint8Array, h: Header, fail: Fail): Uint8Array {
  const { width, height, depth } = h;
  const rowBytes = Math.ceil((width * depth) / 8);
  if (packed.length !== rowBytes * height) throw fail('corrupt image data (wrong decoded size)');
  const out = new Uint8Array(width * height);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      out[y * width + x] = (packed[y * rowBytes + (bit >> 3)]! >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

/** fast-png's result as a RawImage: palette lookup, low-depth scaling, tRNS to alpha. */
function toRawImage(
  png: DecodedPng,
  h: Header,
  colourKey: readonly number[] | null,
  fail: Fail,
): RawImage {
  const { width, height, colorType, depth } = h;
  const n = width * height;
  const spp = SAMPLES[colorType]! as Channels;
  const samples =
    depth < 8 && png.data instanceof Uint8Array ? unpackSamples(png.data, h, fail) : png.data;
  const wantType = depth === 16 ? Uint16Array : Uint8Array;
  if (!(samples instanceof wantType) || samples.length !== n * spp) {
    throw fail('corrupt image data (wrong decoded size)');
  }

  if (colorType === 3) {
    const palette = png.palette ?? [];
    const alpha = palette[0]?.length === 4;
    const channels: Channels = alpha ? 4 : 3;
    const data = new Uint8Array(n * channels);
    for (let p = 0; p < n; p++) {
      const i = samples[p]!;
      const colour = palette[i];
      if (colour === undefined) {
        throw fail(`pixel ${p} uses palette index ${i}, palette has ${palette.length}`);
      }
      for (let c = 0; c < channels; c++) data[p * channels + c] = colour[c]!;
    }
    return { width, height, channels, data };
  }
  if (depth < 8) {
    const scale = 255 / ((1 << depth) - 1); // 1-bit: 0, 255; 2-bit: 0, 85, 170, 255
    for (let i = 0; i < samples.length; i++) samples[i] = samples[i]! * scale;
  }
  if (colourKey === null) {
    return { width, height, channels: spp, data: samples };
  }

  // A tRNS colour key: pixels equal to it become transparent, all others opaque.
  const keyLen = colorType === 0 ? 1 : 3;
  const target = colourKey.map((v) => (depth < 8 ? Math.round(v * (255 / ((1 << depth) - 1))) : v));
  const channels = (spp + 1) as Channels;
  const opaque = depth === 16 ? 65535 : 255;
  const withAlpha = depth === 16 ? new Uint16Array(n * channels) : new Uint8Array(n * channels);
  for (let p = 0; p < n; p++) {
    let match = true;
    for (let s = 0; s < keyLen; s++) {
      const v = samples[p * keyLen + s]!;
      withAlpha[p * channels + s] = v;
      if (v !== target[s]) match = false;
    }
    withAlpha[p * channels + keyLen] = match ? 0 : opaque;
  }
  return { width, height, channels, data: withAlpha };
}

// ---- encoding ------------------------------------------------------------------------------------

export interface PngEncodeOptions {
  /** Adam7 interlacing (default false). */
  interlace?: boolean;
  /** zlib level 0..9 (default 6). */
  level?: number;
}

type ZlibLevel = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9;

/** Encodes an 8- or 16-bit gray, gray+alpha, RGB or RGBA image as a PNG file. */
export function encodePng(img: RawImage, opts: PngEncodeOptions = {}): Uint8Array {
  const { width, height, channels, data } = checkImage(img, 'encodePng');
  const level = opts.level ?? 6;
  if (!Number.isInteger(level) || level < 0 || level > 9) {
    throw new Error(`encodePng: level must be an integer from 0 to 9, got ${level}`);
  }
  return encode(
    { width, height, channels, data, depth: bitDepthOf(img) },
    { interlace: opts.interlace === true ? 'Adam7' : 'null', zlib: { level: level as ZlibLevel } },
  );
}
