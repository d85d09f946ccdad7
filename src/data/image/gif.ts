/**
 * Animated GIF encoder (GIF89a specification, CompuServe 1990), for denoising animations.
 *
 * Layout written: header "GIF89a"; logical screen descriptor with a global colour table (one
 * palette for all frames, see quantize.ts); the NETSCAPE2.0 application extension with the loop
 * count; then per frame a graphic control extension (delay, no transparency), an image descriptor
 * covering the whole screen, and the LZW-compressed indices in sub-blocks of at most 255 bytes;
 * finally the trailer 0x3B.
 *
 * LZW (variable code width, as GIF uses it): codes start at minCodeSize + 1 bits, the clear code
 * is 2^minCodeSize and end-of-information the one after it; the width grows by one bit when the
 * next free code reaches 2^width, up to 12 bits; when code 4095 has been assigned the encoder
 * emits a clear code and starts a fresh table. Codes are packed least significant bit first.
 */
import { bitDepthOf, checkImage, type RawImage } from './image.js';
import { makePalette, mapToPalette, type QuantizeMethod } from './quantize.js';

export interface GifOptions {
  /** Delay per frame in milliseconds (GIF stores hundredths of a second), one number for all
   * frames or one per frame. Default 100. */
  delayMs?: number | readonly number[];
  /** Times to play the animation; 0 (default) loops forever. */
  loop?: number;
  /** Palette: 'median-cut' (default; exact when there are at most 256 colours) or 'fixed'. */
  palette?: QuantizeMethod;
}

/**
 * Encodes frames (8-bit gray, gray+alpha, RGB or RGBA, all the same size; alpha is dropped) as an
 * animated GIF.
 */
export function encodeGif(frames: readonly RawImage[], opts: GifOptions = {}): Uint8Array {
  const first = frames[0];
  if (first === undefined) throw new Error('encodeGif: no frames');
  const { width, height } = first;
  if (width > 65535 || height > 65535) throw new Error(`encodeGif: ${width}x${height} too large`);
  const loop = opts.loop ?? 0;
  if (!Number.isInteger(loop) || loop < 0 || loop > 65535) {
    throw new Error(`encodeGif: loop must be an integer in 0..65535, got ${loop}`);
  }
  const delays = frames.map((_, i) => {
    const d = typeof opts.delayMs === 'number' ? opts.delayMs : (opts.delayMs?.[i] ?? 100);
    return Math.min(65535, Math.max(0, Math.round(d / 10)));
  });

  let allGray = true;
  const packed = frames.map((f, i) => {
    checkImage(f, `encodeGif frame ${i}`);
    if (f.width !== width || f.height !== height) {
      throw new Error(
        `encodeGif: frame ${i} is ${f.width}x${f.height}, frame 0 is ${width}x${height}`,
      );
    }
    if (bitDepthOf(f) !== 8) throw new Error(`encodeGif: frame ${i} is not 8-bit`);
    if (f.channels > 2) allGray = false;
    return packRgb(f);
  });
  const palette = makePalette(packed, opts.palette ?? 'median-cut', allGray);
  const tableBits = Math.max(1, Math.ceil(Math.log2(palette.length))); // table has 2^tableBits entries
  const minCodeSize = Math.max(2, tableBits);

  const out = new ByteWriter();
  out.ascii('GIF89a');
  out.u16(width);
  out.u16(height);
  out.byte(0x80 | ((tableBits - 1) << 4) | (tableBits - 1)); // global table, colour resolution, size
  out.byte(0); // background colour index
  out.byte(0); // pixel aspect ratio: not given
  for (let k = 0; k < 1 << tableBits; k++) {
    const c = palette[k] ?? 0;
    out.byte(c >>> 16);
    out.byte((c >>> 8) & 0xff);
    out.byte(c & 0xff);
  }
  // NETSCAPE2.0 application extension: sub-block [1, loop count u16].
  out.byte(0x21);
  out.byte(0xff);
  out.byte(11);
  out.ascii('NETSCAPE2.0');
  out.byte(3);
  out.byte(1);
  out.u16(loop);
  out.byte(0);

  const memo = new Map<number, number>();
  packed.forEach((pixels, i) => {
    // Graphic control extension: disposal 1 (leave in place), no transparency.
    out.byte(0x21);
    out.byte(0xf9);
    out.byte(4);
    out.byte(1 << 2);
    out.u16(delays[i]!);
    out.byte(0);
    out.byte(0);
    // Image descriptor: the whole screen, no local table, not interlaced.
    out.byte(0x2c);
    out.u16(0);
    out.u16(0);
    out.u16(width);
    out.u16(height);
    out.byte(0);
    out.byte(minCodeSize);
    const codes = lzwEncode(mapToPalette(pixels, palette, memo), minCodeSize);
    for (let at = 0; at < codes.length; at += 255) {
      const n = Math.min(255, codes.length - at);
      out.byte(n);
      out.bytes(codes.subarray(at, at + n));
    }
    out.byte(0); // block terminator
  });
  out.byte(0x3b);
  return out.finish();
}

/** Pixels as 0xRRGGBB (gray repeated into all three channels; alpha ignored). */
function packRgb(img: RawImage): Uint32Array {
  const { channels, data } = img;
  const n = img.width * img.height;
  const out = new Uint32Array(n);
  for (let p = 0; p < n; p++) {
    const s = p * channels;
    if (channels <= 2) {
      const v = data[s]!;
      out[p] = (v << 16) | (v << 8) | v;
    } else out[p] = ((data[s]! << 16) | (data[s + 1]! << 8) | data[s + 2]!) >>> 0;
  }
  return out;
}

/** GIF-flavoured LZW of palette indices (each < 2^minCodeSize); returns the packed code bytes. */
export function lzwEncode(indices: Uint8Array, minCodeSize: number): Uint8Array {
  const clear = 1 << minCodeSize;
  const end = clear + 1;
  const bits = new BitWriter();
  let width = minCodeSize + 1;
  let next = end + 1;
  // Table of strings seen: key (prefix code << 8 | next index) -> code.
  let table = new Map<number, number>();
  bits.write(clear, width);
  if (indices.length === 0) {
    bits.write(end, width);
    return bits.finish();
  }
  let prefix = indices[0]!;
  for (let i = 1; i < indices.length; i++) {
    const k = indices[i]!;
    const key = (prefix << 8) | k;
    const code = table.get(key);
    if (code !== undefined) {
      prefix = code;
      continue;
    }
    bits.write(prefix, width);
    if (next === 4096) {
      bits.write(clear, width);
      table = new Map();
      next = end + 1;
      width = minCodeSize + 1;
    } else {
      if (next >= 1 << width) width++;
      table.set(key, next++);
    }
    prefix = k;
  }
  bits.write(prefix, width);
  bits.write(end, width);
  return bits.finish();
}

class BitWriter {
  #bytes: number[] = [];
  #acc = 0;
  #n = 0;

  write(code: number, width: number): void {
    this.#acc |= code << this.#n;
    this.#n += width;
    while (this.#n >= 8) {
      this.#bytes.push(this.#acc & 0xff);
      this.#acc >>>= 8;
      this.#n -= 8;
    }
  }

  finish(): Uint8Array {
    if (this.#n > 0) this.#bytes.push(this.#acc & 0xff);
    return Uint8Array.from(this.#bytes);
  }
}

class ByteWriter {
  #chunks: Uint8Array[] = [];
  #cur: number[] = [];

  byte(b: number): void {
    this.#cur.push(b & 0xff);
  }

  u16(v: number): void {
    this.byte(v & 0xff);
    this.byte(v >> 8);
  }

  ascii(s: string): void {
    for (let i = 0; i < s.length; i++) this.byte(s.charCodeAt(i));
  }

  bytes(b: Uint8Array): void {
    this.#chunks.push(Uint8Array.from(this.#cur), b);
    this.#cur = [];
  }

  finish(): Uint8Array {
    this.#chunks.push(Uint8Array.from(this.#cur));
    this.#cur = [];
    let n = 0;
    for (const c of this.#chunks) n += c.length;
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of this.#chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}
