/**
 * Fuzzing the image readers (PNG, JPEG, the format sniffer) and the GIF writer's input checks:
 * malformed files give an ImageDecodeError naming the file, never another exception or an
 * allocation of the size a header claims; well-formed files decode to consistent images.
 */
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { crc32, deflateSync } from 'node:zlib';

import fc from 'fast-check';
import { encode as encodeJpeg } from 'jpeg-js';

import {
  checkImage,
  decodeImage,
  decodeJpeg,
  decodePng,
  encodeGif,
  encodePng,
  ImageDecodeError,
  type RawImage,
} from '../../src/data/index.js';
import { applyEdits, byteEdits, FUZZ_RUNS, fuzzTest, parsedOrRejected } from '../fuzz.js';
import { decodeGif } from './gif-reader.js';

const NAME = 'fuzz/input.img';

/** A decoded image must be one whose fields agree, 8- or 16-bit. */
function checkDecoded(img: RawImage): void {
  checkImage(img, 'decoded');
  assert.ok(
    img.data instanceof Uint8Array || img.data instanceof Uint16Array,
    'samples are 8- or 16-bit',
  );
}

// ---- PNG ---------------------------------------------------------------------------------------

const be32 = (n: number): number[] => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];

/** A chunk with a correct CRC (zlib's), so edits inside it reach the decoder proper. */
function chunk(type: string, data: ArrayLike<number>): Uint8Array {
  const body = Uint8Array.from([...Buffer.from(type, 'latin1'), ...Array.from(data)]);
  return Uint8Array.from([...be32(data.length), ...body, ...be32(crc32(body))]);
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function pngOf(chunks: readonly Uint8Array[]): Uint8Array {
  return Uint8Array.from([...SIGNATURE, ...chunks.flatMap((c) => [...c])]);
}

interface PngChunk {
  type: string;
  data: Uint8Array;
}

/** The chunks of a well-formed file (the test's own walk, for editing them). */
function chunksOf(file: Uint8Array): PngChunk[] {
  const out: PngChunk[] = [];
  const dv = new DataView(file.buffer, file.byteOffset);
  for (let pos = 8; pos + 12 <= file.length;) {
    const len = dv.getUint32(pos);
    out.push({
      type: Buffer.from(file.subarray(pos + 4, pos + 8)).toString('latin1'),
      data: file.slice(pos + 8, pos + 8 + len),
    });
    pos += 12 + len;
  }
  return out;
}

const rawImage: fc.Arbitrary<RawImage> = fc
  .record({
    width: fc.integer({ min: 1, max: 12 }),
    height: fc.integer({ min: 1, max: 12 }),
    channels: fc.constantFrom<1 | 2 | 3 | 4>(1, 2, 3, 4),
    wide: fc.boolean(),
    seed: fc.nat(),
  })
  .map(({ width, height, channels, wide, seed }) => {
    const n = width * height * channels;
    let s = seed | 1;
    const next = (): number => ((s = (s * 1103515245 + 12345) >>> 0), s >>> 8);
    const data = wide
      ? Uint16Array.from({ length: n }, () => next() & 0xffff)
      : Uint8Array.from({ length: n }, () => next() & 0xff);
    return { width, height, channels, data };
  });

/** Palette and low-bit-depth files, which encodePng does not write. */
const packedPng: fc.Arbitrary<Uint8Array> = fc
  .record({
    width: fc.integer({ min: 1, max: 10 }),
    height: fc.integer({ min: 1, max: 10 }),
    colorType: fc.constantFrom(0, 3),
    depth: fc.constantFrom(1, 2, 4, 8),
    entries: fc.integer({ min: 1, max: 16 }),
    trns: fc.integer({ min: 0, max: 16 }),
    bytes: fc.uint8Array({ minLength: 200, maxLength: 200 }),
  })
  .map(({ width, height, colorType, depth, entries, trns, bytes }) => {
    const rowBytes = Math.ceil((width * depth) / 8);
    const rows: number[] = [];
    for (let y = 0; y < height; y++) {
      rows.push(bytes[y]! % 5); // filter type
      for (let i = 0; i < rowBytes; i++) rows.push(bytes[(y * rowBytes + i + 17) % 200]!);
    }
    const chunks = [chunk('IHDR', [...be32(width), ...be32(height), depth, colorType, 0, 0, 0])];
    if (colorType === 3) {
      chunks.push(chunk('PLTE', bytes.subarray(0, 3 * entries)));
      if (trns > 0) chunks.push(chunk('tRNS', bytes.subarray(50, 50 + Math.min(trns, entries))));
    } else if (trns > 0) {
      chunks.push(chunk('tRNS', [0, bytes[60]! & ((1 << depth) - 1)]));
    }
    chunks.push(chunk('IDAT', deflateSync(Uint8Array.from(rows))), chunk('IEND', []));
    return pngOf(chunks);
  });

const wellFormedPng = fc.oneof(
  fc
    .tuple(rawImage, fc.boolean())
    .map(([img, interlace]) => encodePng(img, { interlace, level: 1 })),
  packedPng,
);

/** Image sizes: small, large enough to matter when a reader believes them, and extremes. */
const side = fc.oneof(
  fc.nat(64),
  fc.integer({ min: 1, max: 2 ** 16 }),
  fc.constantFrom(0, 30000, 0x7fffffff, 0x80000000, 0xffffffff),
);

/** IHDR fields: mostly a valid colour type and depth, so the size is what gets tested. */
const header = fc
  .oneof(
    fc.constantFrom(
      [0, 1],
      [0, 2],
      [0, 4],
      [0, 8],
      [0, 16],
      [2, 8],
      [2, 16],
      [3, 1],
      [3, 8],
      [4, 8],
      [6, 16],
    ),
    fc.tuple(fc.nat(255), fc.nat(255)),
  )
  .chain(([colorType, depth]) =>
    fc.record({
      width: side,
      height: side,
      depth: fc.constant(depth),
      colorType: fc.constant(colorType),
      interlace: fc.constantFrom(0, 0, 1, 2),
    }),
  );

/** An edit of one chunk's data, or of IHDR's fields, with the CRC recomputed. */
const chunkEdit = fc.record({
  index: fc.nat(),
  edits: byteEdits,
  header: fc.option(header, { freq: 2 }),
});

type ChunkEdit = typeof chunkEdit extends fc.Arbitrary<infer T> ? T : never;

function editChunks(file: Uint8Array, e: ChunkEdit): Uint8Array {
  const chunks = chunksOf(file);
  const k = e.header !== null ? 0 : e.index % chunks.length; // IHDR is chunk 0
  const c = chunks[k]!;
  let data = applyEdits(c.data, e.edits);
  if (e.header !== null && c.type === 'IHDR') {
    const h = e.header;
    data = Uint8Array.from([
      ...be32(h.width),
      ...be32(h.height),
      h.depth,
      h.colorType,
      0,
      0,
      h.interlace,
    ]);
  }
  return pngOf(chunks.map((x, i) => chunk(x.type, i === k ? data : x.data)));
}

void describe('PNG reader', () => {
  fuzzTest(
    'png: encodePng output decodes to the same image',
    fc.tuple(rawImage, fc.boolean()),
    ([img, interlace]) => {
      assert.deepEqual(decodePng(encodePng(img, { interlace, level: 1 }), NAME), img);
    },
    Math.max(100, Math.round(FUZZ_RUNS / 5)), // a round trip, not malformed input
  );

  fuzzTest(
    'png: edited chunks (CRCs fixed) decode or fail cleanly',
    fc.tuple(wellFormedPng, chunkEdit),
    ([file, e]) => {
      const img = parsedOrRejected(
        () => decodePng(editChunks(file, e), NAME),
        ImageDecodeError,
        `${NAME}: `,
      );
      if (img !== null) checkDecoded(img);
    },
  );

  fuzzTest(
    'png: edited bytes decode or fail cleanly',
    fc.tuple(wellFormedPng, byteEdits),
    ([file, edits]) => {
      const img = parsedOrRejected(
        () => decodePng(applyEdits(file, edits), NAME),
        ImageDecodeError,
        `${NAME}: `,
      );
      if (img !== null) checkDecoded(img);
    },
  );

  fuzzTest(
    'png: random chunks after the signature fail cleanly',
    fc.array(
      fc.record({
        type: fc.constantFrom(
          'IHDR',
          'PLTE',
          'tRNS',
          'IDAT',
          'IEND',
          'tEXt',
          'iCCP',
          'ABCD',
          'a@#!',
        ),
        data: fc.uint8Array({ maxLength: 40 }),
      }),
      { maxLength: 6 },
    ),
    (chunks) => {
      const file = pngOf(chunks.map((c) => chunk(c.type, c.data)));
      const img = parsedOrRejected(() => decodePng(file, NAME), ImageDecodeError, `${NAME}: `);
      if (img !== null) checkDecoded(img);
    },
  );
});

// ---- JPEG and the sniffer ----------------------------------------------------------------------

/** A few baseline JPEGs of random content (jpeg-js's encoder), made once. */
const JPEG_SIZES: [number, number, number][] = [
  [16, 8, 90],
  [9, 13, 50],
  [1, 1, 75],
  [24, 24, 20],
];
const JPEGS = JPEG_SIZES.map(([w, h, q], k) => {
  let s = 7 + k;
  const rgba = Uint8Array.from(
    { length: w * h * 4 },
    () => ((s = (s * 69069 + 1) >>> 0), s >>> 24),
  );
  return Uint8Array.from(encodeJpeg({ width: w, height: h, data: rgba }, q).data);
});

/** Offsets of every marker segment's length field in a well-formed JPEG, up to the scan. */
function segmentStarts(file: Uint8Array): number[] {
  const out: number[] = [];
  for (let pos = 2; pos + 4 <= file.length && file[pos] === 0xff;) {
    out.push(pos);
    if (file[pos + 1] === 0xda) break;
    pos += 2 + ((file[pos + 2]! << 8) | file[pos + 3]!);
  }
  return out;
}

const jpegEdit = fc.record({
  base: fc.nat(JPEGS.length - 1),
  segment: fc.nat(),
  field: fc.integer({ min: 2, max: 9 }),
  value: fc.oneof(fc.nat(0xffff), fc.constantFrom(0, 1, 0xffff, 0x8000)),
  edits: fc.option(byteEdits),
});

void describe('JPEG reader', () => {
  fuzzTest('jpeg: a 16-bit field of a marker segment set to anything', jpegEdit, (e) => {
    const file = JPEGS[e.base]!.slice();
    const starts = segmentStarts(file);
    const at = starts[e.segment % starts.length]! + e.field;
    if (at + 1 < file.length) new DataView(file.buffer).setUint16(at, e.value);
    const bytes = e.edits === null ? file : applyEdits(file, e.edits);
    const img = parsedOrRejected(() => decodeJpeg(bytes, NAME), ImageDecodeError, `${NAME}: `);
    if (img !== null) checkDecoded(img);
  });

  fuzzTest(
    'jpeg: edited bytes decode or fail cleanly',
    fc.tuple(fc.nat(JPEGS.length - 1), byteEdits),
    ([k, edits]) => {
      const img = parsedOrRejected(
        () => decodeJpeg(applyEdits(JPEGS[k]!, edits), NAME),
        ImageDecodeError,
        `${NAME}: `,
      );
      if (img !== null) checkDecoded(img);
    },
  );

  fuzzTest(
    'sniffer: any bytes, with or without a PNG or JPEG signature',
    fc.tuple(
      fc.constantFrom([], SIGNATURE, [0xff, 0xd8, 0xff], [0xff, 0xd8]),
      fc.uint8Array({ maxLength: 300 }),
    ),
    ([head, tail]) => {
      const img = parsedOrRejected(
        () => decodeImage(Uint8Array.from([...head, ...tail]), NAME),
        ImageDecodeError,
        `${NAME}: `,
      );
      if (img !== null) checkDecoded(img);
    },
  );
});

// ---- GIF writer inputs -------------------------------------------------------------------------

const frameArb: fc.Arbitrary<RawImage> = fc
  .record({
    width: fc.oneof(fc.integer({ min: 1, max: 6 }), fc.constantFrom(0, -1, 1.5, NaN)),
    height: fc.integer({ min: 1, max: 6 }),
    channels: fc.constantFrom(1, 2, 3, 4, 4, 5),
    wide: fc.boolean(),
    extra: fc.integer({ min: -1, max: 1 }),
    colours: fc.integer({ min: 1, max: 300 }),
    seed: fc.nat(),
  })
  .map(({ width, height, channels, wide, extra, colours, seed }) => {
    const n = Math.max(
      0,
      (Number.isFinite(width) ? Math.abs(width) : 1) * height * channels + extra,
    );
    let s = seed | 1;
    const next = (): number => ((s = (s * 1103515245 + 12345) >>> 0), (s >>> 8) % colours);
    const data = wide
      ? Uint16Array.from({ length: n }, next)
      : Uint8Array.from({ length: n }, next);
    return { width, height, channels: channels as RawImage['channels'], data };
  });

const gifOptions = fc.record(
  {
    delayMs: fc.oneof(
      fc.integer({ min: -10, max: 1e7 }),
      fc.constant(NaN),
      fc.array(fc.oneof(fc.nat(5000), fc.constant(NaN)), { maxLength: 4 }),
    ),
    loop: fc.oneof(fc.nat(70000), fc.constantFrom(-1, 2.5)),
    palette: fc.constantFrom('adaptive', 'fixed', 'median-cut') as fc.Arbitrary<
      'adaptive' | 'fixed'
    >,
  },
  { requiredKeys: [] },
);

void describe('GIF writer', () => {
  fuzzTest(
    'gif: any frames and options give a readable GIF or an encodeGif error',
    fc.tuple(fc.array(frameArb, { maxLength: 3 }), gifOptions),
    ([frames, opts]) => {
      let bytes: Uint8Array;
      try {
        bytes = encodeGif(frames, opts);
      } catch (e) {
        assert.ok(e instanceof Error && e.constructor === Error, `a plain Error, got ${String(e)}`);
        assert.match(e.message, /^encodeGif/);
        return;
      }
      const gif = decodeGif(bytes);
      assert.equal(gif.frames.length, frames.length);
      assert.equal(gif.width, frames[0]!.width);
      if ((opts.palette ?? 'adaptive') === 'adaptive' && gif.palette.length <= 2 ** 8) {
        // Lossless when the frames hold at most 256 colours.
        const colours = new Set<string>();
        for (const f of frames) {
          for (let p = 0; p < f.width * f.height; p++) {
            const s = p * f.channels;
            colours.add(
              f.channels <= 2 ? `${f.data[s]}` : `${f.data[s]},${f.data[s + 1]},${f.data[s + 2]}`,
            );
          }
        }
        if (colours.size <= 256) {
          frames.forEach((f, i) => {
            gif.frames[i]!.pixels.forEach((px, p) => {
              const s = p * f.channels;
              const want =
                f.channels <= 2
                  ? [f.data[s]!, f.data[s]!, f.data[s]!]
                  : [...f.data.subarray(s, s + 3)];
              assert.deepEqual(px, want);
            });
          });
        }
      }
    },
  );
});
