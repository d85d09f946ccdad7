import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { crc32 as zlibCrc32, deflateSync } from 'node:zlib';

import { type Channels, ImageDecodeError, type RawImage } from '../../../src/data/image/image.js';
import { decodePng, encodePng } from '../../../src/data/image/png.js';

/** xorshift32: deterministic test data. */
function makeRand(state: number): () => number {
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
}

/** Half noise, half smooth gradients, so every filter gets exercised on both. */
function testImage(
  w: number,
  h: number,
  channels: Channels,
  depth: 8 | 16,
  seed: number,
): RawImage {
  const rand = makeRand(seed);
  const max = depth === 16 ? 65535 : 255;
  const data = depth === 16 ? new Uint16Array(w * h * channels) : new Uint8Array(w * h * channels);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < channels; c++) {
        const i = (y * w + x) * channels + c;
        data[i] =
          y % 2 === 0 ? rand() % (max + 1) : ((x * 37 + y * 11 + c * 50) * (max / 255)) % (max + 1);
      }
    }
  }
  return { width: w, height: h, channels, data };
}

/** A chunk built independently of png.ts: length, type, data, zlib's CRC-32. */
function chunk(type: string, data: ArrayLike<number>): number[] {
  const body = Buffer.from([...Buffer.from(type, 'latin1'), ...Array.from(data)]);
  const be = (n: number): number[] => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  return [...be(data.length), ...body, ...be(zlibCrc32(body))];
}

const SIG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function ihdr(w: number, h: number, depth: number, colorType: number, interlace = 0): number[] {
  const be = (n: number): number[] => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  return chunk('IHDR', [...be(w), ...be(h), depth, colorType, 0, 0, interlace]);
}

function png(...chunks: number[][]): Uint8Array {
  return Uint8Array.from([...SIG, ...chunks.flat()]);
}

const iend = (): number[] => chunk('IEND', []);

void describe('PNG round trip', () => {
  for (const channels of [1, 2, 3, 4] as const) {
    for (const depth of [8, 16] as const) {
      void test(`${channels} channels, ${depth}-bit: plain and Adam7`, () => {
        for (const [w, h] of [
          [1, 1],
          [13, 7],
          [9, 17],
        ] as const) {
          const img = testImage(w, h, channels, depth, w * 100 + channels * 10 + depth);
          for (const interlace of [false, true]) {
            const back = decodePng(encodePng(img, { interlace }));
            assert.deepEqual(back, img, `${w}x${h} interlace=${interlace}`);
          }
        }
      });
    }
  }

  void test('writes a well-formed file: signature, IHDR fields, CRCs, IEND', () => {
    const bytes = encodePng(testImage(5, 3, 3, 16, 1), { interlace: true });
    assert.deepEqual([...bytes.subarray(0, 8)], SIG);
    const dv = new DataView(bytes.buffer, bytes.byteOffset);
    const types: string[] = [];
    for (let pos = 8; pos < bytes.length;) {
      const len = dv.getUint32(pos);
      types.push(Buffer.from(bytes.subarray(pos + 4, pos + 8)).toString('latin1'));
      assert.equal(dv.getUint32(pos + 8 + len), zlibCrc32(bytes.subarray(pos + 4, pos + 8 + len)));
      pos += 12 + len;
    }
    assert.deepEqual(types, ['IHDR', 'IDAT', 'IEND']);
    assert.deepEqual([...bytes.subarray(16, 29)], [0, 0, 0, 5, 0, 0, 0, 3, 16, 2, 0, 0, 1]);
  });

  void test('rejects images that do not fit their fields', () => {
    const bad = { width: 2, height: 2, channels: 3 as const, data: new Uint8Array(11) };
    assert.throws(() => encodePng(bad), /needs 12 samples, data has 11/);
  });
});

void describe('PNG decode of files from other encoders', () => {
  void test('a palette image made by hand: 2-bit indices, tRNS, split IDAT, ancillary chunk', () => {
    // 5x3, palette of 4: red, green, blue, white; tRNS makes entry 0 half transparent and entry 1
    // transparent (entries past the tRNS list stay opaque). Rows pack four 2-bit indices per byte,
    // MSB first; each row starts with a filter byte (row 1 uses Sub, which for 2-bit pixels works
    // on whole bytes: bpp = 1).
    const rows = [
      [0, 0b00011011, 0b00000000], // indices 0 1 2 3 | 0 (padding bits zero)
      [1, 0b11111111, 0b11000000 - 0b11111111 + 256], // Sub: 3 3 3 3 | 3, second byte minus first
      [0, 0b10100101, 0b01000000], // 2 2 1 1 | 1
    ];
    const z = deflateSync(Buffer.from(rows.flat()));
    const file = png(
      ihdr(5, 3, 2, 3),
      chunk('tEXt', [...Buffer.from('Comment\0made by hand')]),
      chunk('PLTE', [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]),
      chunk('tRNS', [128, 0]),
      chunk('IDAT', z.subarray(0, 4)),
      chunk('IDAT', z.subarray(4)),
      iend(),
    );
    const img = decodePng(file);
    const R = [255, 0, 0, 128];
    const G = [0, 255, 0, 0];
    const B = [0, 0, 255, 255];
    const W = [255, 255, 255, 255];
    assert.equal(img.channels, 4);
    assert.deepEqual([...img.data], [R, G, B, W, R, W, W, W, W, W, B, B, G, G, G].flat());
  });

  void test('every scanline filter (None, Sub, Up, Average, Paeth) at 8 and 16 bits', () => {
    // Rows filtered here from the specification's definitions (PNG spec, 9.2), each filter on
    // every row in turn, so each meets both a zero and a real row above.
    const paeth = (a: number, b: number, c: number): number => {
      const p = a + b - c;
      const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
      return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    };
    for (const depth of [8, 16] as const) {
      const img = testImage(7, 10, 3, depth, 40 + depth);
      const bpp = 3 * (depth / 8);
      const rowBytes = 7 * bpp;
      const raw = Array.from({ length: 10 }, (_, y) =>
        Array.from(img.data.subarray(y * 21, (y + 1) * 21)).flatMap((v) =>
          depth === 8 ? [v] : [v >> 8, v & 255],
        ),
      );
      const stream: number[] = [];
      raw.forEach((row, y) => {
        const f = y % 5;
        const up = y > 0 ? raw[y - 1]! : new Array<number>(rowBytes).fill(0);
        stream.push(f);
        for (let i = 0; i < rowBytes; i++) {
          const a = i >= bpp ? row[i - bpp]! : 0;
          const c = i >= bpp ? up[i - bpp]! : 0;
          const pred = [0, a, up[i]!, (a + up[i]!) >> 1, paeth(a, up[i]!, c)][f]!;
          stream.push((row[i]! - pred) & 255);
        }
      });
      const file = png(
        ihdr(7, 10, depth, 2),
        chunk('IDAT', [...deflateSync(Buffer.from(stream))]),
        iend(),
      );
      assert.deepEqual(decodePng(file), img, `${depth}-bit`);
    }
  });

  void test('low bit depths: 1-bit and 4-bit gray scale to 8 bits', () => {
    const one = png(
      ihdr(10, 1, 1, 0),
      chunk('IDAT', [...deflateSync(Buffer.from([0, 0b10110000, 0b01000000]))]),
      iend(),
    );
    assert.deepEqual([...decodePng(one).data], [255, 0, 255, 255, 0, 0, 0, 0, 0, 255]);
    const four = png(
      ihdr(3, 1, 4, 0),
      chunk('IDAT', [...deflateSync(Buffer.from([0, 0x0f, 0x70]))]),
      iend(),
    );
    assert.deepEqual([...decodePng(four).data], [0, 255, 119]);
  });

  void test('a tRNS colour key on 16-bit RGB adds an alpha channel', () => {
    const px = [0x1234, 0x5678, 0x9abc, 0, 0, 0];
    const row = [0, ...px.flatMap((v) => [v >> 8, v & 255])];
    const file = png(
      ihdr(2, 1, 16, 2),
      chunk('tRNS', [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc]),
      chunk('IDAT', [...deflateSync(Buffer.from(row))]),
      iend(),
    );
    const img = decodePng(file);
    assert.equal(img.channels, 4);
    assert.ok(img.data instanceof Uint16Array, `16-bit data in a ${img.data.constructor.name}`);
    assert.deepEqual([...img.data], [0x1234, 0x5678, 0x9abc, 0, 0, 0, 0, 65535]);
  });

  void test('Adam7 made by hand from the pass pattern of the specification', () => {
    // Which pass each pixel of an 8x8 tile belongs to (PNG spec, 8.2).
    const pattern = [
      [1, 6, 4, 6, 2, 6, 4, 6],
      [7, 7, 7, 7, 7, 7, 7, 7],
      [5, 6, 5, 6, 5, 6, 5, 6],
      [7, 7, 7, 7, 7, 7, 7, 7],
      [3, 6, 4, 6, 3, 6, 4, 6],
      [7, 7, 7, 7, 7, 7, 7, 7],
      [5, 6, 5, 6, 5, 6, 5, 6],
      [7, 7, 7, 7, 7, 7, 7, 7],
    ];
    const w = 11;
    const h = 9;
    const value = (x: number, y: number): number => (x * 23 + y * 7) & 255;
    const stream: number[] = [];
    for (let pass = 1; pass <= 7; pass++) {
      for (let y = 0; y < h; y++) {
        const row: number[] = [];
        for (let x = 0; x < w; x++) if (pattern[y % 8]![x % 8] === pass) row.push(value(x, y));
        if (row.length > 0) stream.push(0, ...row); // filter type 0
      }
    }
    const file = png(
      ihdr(w, h, 8, 0, 1),
      chunk('IDAT', [...deflateSync(Buffer.from(stream))]),
      iend(),
    );
    const img = decodePng(file);
    assert.deepEqual(
      [...img.data],
      Array.from({ length: w * h }, (_, i) => value(i % w, Math.floor(i / w))),
    );
  });

  void test('emoji PNGs (RGBA, gray+alpha, palette): decoded pixels match known hashes', () => {
    // Hashes checked against the package's sprite sheet (a separately encoded PNG holding the
    // same pixels): all 1,911 emoji matched it exactly.
    const root = dirname(
      createRequire(import.meta.url).resolve('emoji-datasource-google/package.json'),
    );
    const cases = [
      ['1f600.png', 4, 'e86a5242b4e40b9df2d31a4f948254e47ac89fc1e1fbcef3abf1ff4da00574b5'],
      ['1f411.png', 2, '202da57eb14486efcfca143e12961a201513a56cb850651985f3361a6ca6178a'],
      ['1f311.png', 4, '28f0dbdf4167a411c651cccdc662f5eaf18ff9fdf0bef938b74f62dd87398f25'],
    ] as const;
    for (const [file, channels, hash] of cases) {
      const img = decodePng(readFileSync(join(root, 'img', 'google', '64', file)), file);
      assert.equal(img.width, 64);
      assert.equal(img.height, 64);
      assert.equal(img.channels, channels, file);
      assert.equal(createHash('sha256').update(img.data).digest('hex'), hash, file);
    }
  });
});

void describe('PNG decode errors', () => {
  const good = encodePng(testImage(6, 4, 3, 8, 3));
  const idatAt = 8 + 25; // after the signature and IHDR
  const name = 'pics/cat.png';

  /** Rewrites IHDR byte k (0-based in the chunk data) and fixes the CRC. */
  function withHeader(k: number, v: number): Uint8Array {
    const b = good.slice();
    b[16 + k] = v;
    new DataView(b.buffer).setUint32(29, zlibCrc32(b.subarray(12, 29)));
    return b;
  }

  const cases: [string, Uint8Array, RegExp][] = [
    [
      'bad signature',
      Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0, 1]),
      /not a PNG file \(bad signature\)/,
    ],
    ['empty file', new Uint8Array(0), /bad signature/],
    [
      'truncated in IDAT',
      good.subarray(0, idatAt + 20),
      /truncated chunk 'IDAT' at byte 33: needs \d+ bytes, 20 left/,
    ],
    ['truncated chunk header', good.subarray(0, idatAt + 5), /truncated chunk header at byte 33/],
    ['no IEND', good.subarray(0, good.length - 12), /no IEND chunk \(file truncated\?\)/],
    [
      'CRC mismatch',
      (() => {
        const b = good.slice();
        b[good.length - 13]! ^= 1; // the last byte of the IDAT chunk's CRC
        return b;
      })(),
      /corrupt image data \(CRC mismatch for chunk IDAT/,
    ],
    ['unsupported color type', withHeader(9, 5), /unsupported color type 5/],
    ['bad bit depth', withHeader(8, 4), /unsupported bit depth 4 for color type 2/],
    ['bad interlace', withHeader(12, 2), /unsupported interlace method 2/],
    ['zero width', withHeader(3, 0), /bad image size 0x4/],
    ['IDAT first', png(chunk('IDAT', [1]), iend()), /first chunk is 'IDAT', expected IHDR/],
    ['no IDAT', png(ihdr(1, 1, 8, 0), iend()), /no IDAT chunk/],
    [
      'palette without PLTE',
      png(ihdr(1, 1, 8, 3), chunk('IDAT', [...deflateSync(Buffer.from([0, 0]))]), iend()),
      /without PLTE/,
    ],
    [
      'unknown critical chunk',
      png(ihdr(1, 1, 8, 0), chunk('ABCD', []), iend()),
      /unknown critical chunk 'ABCD'/,
    ],
    [
      'corrupt zlib',
      png(ihdr(1, 1, 8, 0), chunk('IDAT', [1, 2, 3, 4]), iend()),
      /corrupt image data \(.*zlib/,
    ],
    [
      'short image data',
      png(ihdr(4, 4, 8, 0), chunk('IDAT', [...deflateSync(Buffer.from([0, 1, 2]))]), iend()),
      /image data too short for the image size/,
    ],
    [
      'unknown filter',
      png(ihdr(1, 2, 8, 0), chunk('IDAT', [...deflateSync(Buffer.from([0, 1, 7, 1]))]), iend()),
      /corrupt image data \(.*filter.*7\)/i,
    ],
    [
      'palette index out of range',
      png(
        ihdr(1, 1, 8, 3),
        chunk('PLTE', [1, 2, 3]),
        chunk('IDAT', [...deflateSync(Buffer.from([0, 4]))]),
        iend(),
      ),
      /palette index 4, palette has 1/,
    ],
    [
      'a size the image data cannot hold, refused before anything that size is allocated',
      png(ihdr(30000, 30000, 8, 0), chunk('IDAT', [...deflateSync(Buffer.alloc(1000))]), iend()),
      /image data too short: \d+ compressed bytes cannot hold the 900030000 bytes a 30000x30000/,
    ],
    [
      'Adam7 below 8 bits',
      png(ihdr(4, 4, 1, 0, 1), chunk('IDAT', [...deflateSync(Buffer.alloc(20))]), iend()),
      /Adam7-interlaced images below 8 bits per sample are not supported/,
    ],
    [
      'two PLTE chunks',
      png(ihdr(1, 1, 8, 3), chunk('PLTE', [1, 2, 3]), chunk('PLTE', [1, 2, 3]), iend()),
      /more than one PLTE chunk/,
    ],
  ];
  for (const [what, bytes, message] of cases) {
    void test(what, () => {
      assert.throws(
        () => decodePng(bytes, name),
        (e: Error) =>
          e instanceof ImageDecodeError &&
          e.message.startsWith(`${name}: `) &&
          message.test(e.message),
      );
    });
  }

  void test('a malformed ancillary chunk does not stop a readable image', () => {
    const idat = chunk('IDAT', [...deflateSync(Buffer.from([0, 9, 0, 200]))]);
    const text = chunk('tEXt', [1, 2, 3]); // no keyword separator
    const pHYs = chunk('pHYs', [0, 0]); // 9 bytes in the specification
    const badCrc = chunk('zTXt', [5, 6]);
    badCrc[badCrc.length - 1]! ^= 0xff;
    const img = decodePng(png(ihdr(1, 2, 8, 0), text, pHYs, badCrc, idat, iend()));
    assert.deepEqual([...img.data], [9, 200]);
  });

  void test('the good file decodes (the cases above differ from it only where stated)', () => {
    assert.deepEqual(decodePng(good), testImage(6, 4, 3, 8, 3));
  });
});
