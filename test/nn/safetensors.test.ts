import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  parseSafetensors,
  SafetensorsError,
  serializeSafetensors,
  type TensorToWrite,
} from '../../src/nn/safetensors.js';
import { readSafetensors, writeSafetensors } from '../../src/nn/safetensors-fs.js';

const here = dirname(fileURLToPath(import.meta.url));
// /work/main/src/nn -> /work/shared/fixtures/diffusers
const FIXTURES = resolve(here, '../../../shared/fixtures/diffusers');

const enc = new TextEncoder();

/** Builds a file image from a header string and a data buffer (length prefix = header bytes). */
function rawFile(header: string | Uint8Array, data: Uint8Array | number = 0, length?: bigint) {
  const h = typeof header === 'string' ? enc.encode(header) : header;
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}

/** The header JSON text and the byte buffer of a serialized file. */
function split(bytes: Uint8Array): { header: string; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return {
    header: new TextDecoder().decode(bytes.subarray(8, 8 + n)),
    data: bytes.subarray(8 + n),
  };
}

function halfBits(bytes: Uint8Array): number[] {
  const { data } = split(bytes);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return Array.from({ length: data.length / 2 }, (_, i) => dv.getUint16(2 * i, true));
}

function u16le(values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => dv.setUint16(2 * i, v, true));
  return out;
}

function entryJson(dtype: string, shape: number[], begin: number, end: number): string {
  return JSON.stringify({ dtype, shape, data_offsets: [begin, end] });
}

void describe('safetensors round trip', () => {
  void it('round-trips several dtypes and shapes, including scalar and zero-size tensors', () => {
    const tensors: TensorToWrite[] = [
      { name: 'w', shape: [2, 3], data: new Float32Array([1, -2.5, 3e-8, 1e30, -0, 7]) },
      { name: 'scalar', shape: [], data: new Float32Array([42.5]) },
      { name: 'empty', shape: [0, 5], data: new Float32Array(0) },
      {
        name: 'f64',
        shape: [4],
        data: new Float64Array([Math.PI, -1e-300, 1e300, 0.1]),
        dtype: 'F64',
      },
      { name: 'idx', shape: [2, 2], data: new Int32Array([-2147483648, 2147483647, 0, -1]) },
      { name: 'half', shape: [3], data: new Float32Array([1, -0.5, 65504]), dtype: 'F16' },
      { name: 'as64', shape: [1], data: new Float32Array([0.1]), dtype: 'F64' },
      { name: 'empty_i', shape: [3, 0], data: new Int32Array(0) },
    ];
    const bytes = serializeSafetensors(tensors);
    const file = parseSafetensors(bytes);
    assert.deepEqual([...file.tensors.keys()].sort(), tensors.map((t) => t.name).sort());
    for (const t of tensors) {
      const e = file.tensors.get(t.name)!;
      assert.equal(e.name, t.name);
      assert.deepEqual(e.shape, [...t.shape]);
      assert.equal(e.dtype, t.dtype ?? (t.data instanceof Int32Array ? 'I32' : 'F32'));
    }
    assert.deepEqual(file.tensors.get('w')!.data, tensors[0]!.data);
    assert.ok(Object.is(file.tensors.get('w')!.data[4], -0), '−0 keeps its sign');
    assert.deepEqual(file.tensors.get('scalar')!.data, new Float32Array([42.5]));
    assert.deepEqual(file.tensors.get('empty')!.data, new Float32Array(0));
    assert.deepEqual(file.tensors.get('f64')!.data, tensors[3]!.data);
    assert.deepEqual(file.tensors.get('idx')!.data, tensors[4]!.data);
    assert.deepEqual(file.tensors.get('half')!.data, new Float32Array([1, -0.5, 65504]));
    assert.deepEqual(file.tensors.get('as64')!.data, new Float64Array([Math.fround(0.1)]));
    assert.deepEqual(file.tensors.get('empty_i')!.data, new Int32Array(0));
    assert.deepEqual(file.metadata, {});
  });

  void it('defaults Float64Array to F64 (no rounding) unless a dtype is given', () => {
    const file = parseSafetensors(
      serializeSafetensors([
        { name: 'x', shape: [1], data: new Float64Array([0.1]) },
        { name: 'y', shape: [1], data: new Float64Array([0.1]), dtype: 'F32' },
      ]),
    );
    assert.equal(file.tensors.get('x')!.dtype, 'F64');
    assert.deepEqual(file.tensors.get('x')!.data, new Float64Array([0.1]));
    assert.equal(file.tensors.get('y')!.dtype, 'F32');
    assert.deepEqual(file.tensors.get('y')!.data, new Float32Array([0.1]));
  });

  void it('writes a deterministic header: sorted keys, data in the given order, 8-byte padding', () => {
    const tensors: TensorToWrite[] = [
      { name: 'b', shape: [1], data: new Float32Array([2]) },
      { name: 'a', shape: [3], data: new Int32Array([1, 2, 3]) },
      { name: 'c', shape: [1], data: new Float64Array([3]), dtype: 'F64' },
    ];
    const meta = { z: '1', a: '2' };
    const bytes = serializeSafetensors(tensors, meta);
    assert.deepEqual(serializeSafetensors(tensors, { a: '2', z: '1' }), bytes);
    const { header, data } = split(bytes);
    assert.equal((8 + header.length) % 8, 0);
    assert.equal(
      header.trimEnd(),
      '{"__metadata__":{"a":"2","z":"1"},' +
        '"a":{"dtype":"I32","shape":[3],"data_offsets":[4,16]},' +
        '"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
        '"c":{"dtype":"F64","shape":[1],"data_offsets":[16,24]}}',
    );
    assert.match(header, /^[^ ]* *$/);
    assert.equal(data.length, 24);
    // 'b' (first given) sits at offset 0.
    assert.equal(new DataView(data.buffer, data.byteOffset).getFloat32(0, true), 2);
  });

  void it('matches the reference implementation byte for byte', () => {
    // Vectors from huggingface/safetensors' tensor.rs tests.
    const data = new Float32Array([0, 1, 2, 3, 4, 5]);
    const out = serializeSafetensors([{ name: 'attn.0', shape: [1, 2, 3], data }]);
    const header = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    assert.equal(header.length, 64);
    assert.deepEqual(out, rawFile(header, new Uint8Array(data.buffer)));

    const aligned = serializeSafetensors([{ name: 'attn0', shape: [1, 1, 2, 3], data }]);
    const header2 = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ';
    assert.deepEqual(aligned, rawFile(header2, new Uint8Array(data.buffer)));

    assert.deepEqual(serializeSafetensors([]), rawFile('{}      '));
    assert.deepEqual(
      serializeSafetensors([], { framework: 'pt' }),
      rawFile('{"__metadata__":{"framework":"pt"}}     '),
    );
  });

  void it('round-trips metadata, including unusual keys', () => {
    const meta = { format: 'pt', 'ünï©ødé 🎨': 'ok\n"quoted"', __proto__x: '', empty: '' };
    const withProto: Record<string, string> = { ...meta };
    Object.defineProperty(withProto, '__proto__', { value: 'p', enumerable: true });
    const bytes = serializeSafetensors(
      [{ name: 'x', shape: [1], data: new Float32Array([1]) }],
      withProto,
    );
    const file = parseSafetensors(bytes);
    assert.deepEqual(Object.keys(file.metadata).sort(), Object.keys(withProto).sort());
    for (const [k, v] of Object.entries(withProto)) assert.equal(file.metadata[k], v);
    assert.equal(Object.getPrototypeOf(file.metadata), Object.prototype);
  });

  void it('copies data out: no aliasing of the input, unaligned offsets, Buffer input', () => {
    // A 1-byte U8 tensor first puts the F32 tensor at buffer offset 1 (unaligned).
    const header =
      `{"u":${entryJson('U8', [1], 0, 1)},"f":${entryJson('F32', [2], 1, 9)},` +
      `"i":${entryJson('I16', [2], 9, 13)}}`;
    const data = new Uint8Array(13);
    const dv = new DataView(data.buffer);
    data[0] = 200;
    dv.setFloat32(1, 1.5, true);
    dv.setFloat32(5, -3, true);
    dv.setInt16(9, -300, true);
    dv.setInt16(11, 300, true);
    const file = rawFile(header, data);
    // Put the file at an odd byteOffset inside a bigger Buffer.
    const big = Buffer.alloc(file.length + 3, 0xee);
    big.set(file, 1);
    const bytes = big.subarray(1, 1 + file.length);
    const parsed = parseSafetensors(bytes);
    const f = parsed.tensors.get('f')!.data;
    assert.deepEqual(f, new Float32Array([1.5, -3]));
    assert.deepEqual(parsed.tensors.get('u')!.data, new Int32Array([200]));
    assert.deepEqual(parsed.tensors.get('i')!.data, new Int32Array([-300, 300]));
    assert.notEqual(f.buffer, big.buffer);
    bytes.fill(0);
    assert.deepEqual(f, new Float32Array([1.5, -3]));
  });

  void it('decodes I64, I32, I16, I8, U8 and BOOL to Int32Array', () => {
    const data = new Uint8Array(8 * 3 + 4 + 2 + 1 + 1 + 2);
    const dv = new DataView(data.buffer);
    dv.setBigInt64(0, -2147483648n, true);
    dv.setBigInt64(8, 2147483647n, true);
    dv.setBigInt64(16, -5n, true);
    dv.setInt32(24, -7, true);
    dv.setInt16(28, -32768, true);
    dv.setInt8(30, -128);
    dv.setUint8(31, 255);
    data.set([1, 0], 32);
    const header = JSON.stringify({
      i64: { dtype: 'I64', shape: [3], data_offsets: [0, 24] },
      i32: { dtype: 'I32', shape: [1], data_offsets: [24, 28] },
      i16: { dtype: 'I16', shape: [1], data_offsets: [28, 30] },
      i8: { dtype: 'I8', shape: [1], data_offsets: [30, 31] },
      u8: { dtype: 'U8', shape: [1], data_offsets: [31, 32] },
      b: { dtype: 'BOOL', shape: [2], data_offsets: [32, 34] },
    });
    const t = parseSafetensors(rawFile(header, data)).tensors;
    assert.deepEqual(t.get('i64')!.data, new Int32Array([-2147483648, 2147483647, -5]));
    assert.deepEqual(t.get('i32')!.data, new Int32Array([-7]));
    assert.deepEqual(t.get('i16')!.data, new Int32Array([-32768]));
    assert.deepEqual(t.get('i8')!.data, new Int32Array([-128]));
    assert.deepEqual(t.get('u8')!.data, new Int32Array([255]));
    assert.deepEqual(t.get('b')!.data, new Int32Array([1, 0]));
  });

  void it('accepts valid variants: padding, whitespace, any header order, zero-size tensors', () => {
    const data = new Uint8Array(new Float32Array([1, 2, 3]).buffer);
    const header =
      ` {\n\t"z" : ${entryJson('F32', [0], 12, 12)}, "b":${entryJson('F32', [2], 4, 12)},` +
      `"e0":${entryJson('F16', [0, 3], 0, 0)},"a":${entryJson('F32', [1], 0, 4)},` +
      `"__metadata__":{}}` +
      '    ';
    // The spec says the header MUST begin with '{'; leading whitespace is not allowed.
    assert.throws(() => parseSafetensors(rawFile(header, data)), /must be a JSON object/);
    const file = parseSafetensors(rawFile(header.trimStart(), data));
    assert.deepEqual([...file.tensors.keys()], ['z', 'b', 'e0', 'a']);
    assert.deepEqual(file.tensors.get('b')!.data, new Float32Array([2, 3]));
    assert.deepEqual(file.tensors.get('a')!.data, new Float32Array([1]));
    assert.equal(file.tensors.get('z')!.data.length, 0);
    assert.deepEqual(parseSafetensors(rawFile('{}')).tensors.size, 0);
  });
});

void describe('safetensors F16 / BF16', () => {
  void it('decodes known F16 values exactly', () => {
    const bits = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x7c00, 0xfc00, 0x7e00, 0x8000];
    const expected = [
      1,
      -2,
      65504,
      2 ** -24, // smallest subnormal, 5.960464477539063e-8
      1023 * 2 ** -24, // largest subnormal
      2 ** -14, // smallest normal
      Infinity,
      -Infinity,
      NaN,
      -0,
    ];
    const header = `{"h":${entryJson('F16', [bits.length], 0, bits.length * 2)}}`;
    const e = parseSafetensors(rawFile(header, u16le(bits))).tensors.get('h')!;
    assert.ok(e.data instanceof Float32Array, `F16 read into a ${e.data.constructor.name}`);
    assert.deepEqual(Array.from(e.data), expected);
    assert.equal(e.data[3], 5.960464477539063e-8);
  });

  void it('decodes known BF16 values exactly', () => {
    const bits = [0x3f80, 0xc000, 0x477f, 0x4780, 0x7f7f, 0x0001, 0x7f80, 0xff80, 0x7fc0, 0x8000];
    const expected = [
      1,
      -2,
      65280, // the largest bf16 below 65504 (65504 itself is not representable)
      65536,
      3.3895313892515355e38, // largest finite bf16
      2 ** -133, // smallest subnormal
      Infinity,
      -Infinity,
      NaN,
      -0,
    ];
    const header = `{"b":${entryJson('BF16', [bits.length], 0, bits.length * 2)}}`;
    const e = parseSafetensors(rawFile(header, u16le(bits))).tensors.get('b')!;
    assert.ok(e.data instanceof Float32Array, `BF16 read into a ${e.data.constructor.name}`);
    assert.deepEqual(Array.from(e.data), expected);
  });

  void it('writes F16 with round-to-nearest-even and overflow to infinity', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [65519.99, 0x7bff], // below the midpoint to 2^16
      [65520, 0x7c00], // the midpoint rounds to even: 2^16, which overflows
      [1e6, 0x7c00],
      [-1e6, 0xfc00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [NaN, 0x7e00],
      [-0, 0x8000],
      [0, 0x0000],
      [1 + 2 ** -11, 0x3c00], // tie between 0x3c00 and 0x3c01 -> even
      [1 + 3 * 2 ** -11, 0x3c02], // tie between 0x3c01 and 0x3c02 -> even
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // half of it: tie -> even (zero)
      [3 * 2 ** -25, 0x0002], // 1.5 units: tie -> even (2)
      [1023.5 * 2 ** -24, 0x0400], // rounds from the largest subnormal up into the normals
      [2 ** -14, 0x0400],
      [0.1, 0x2e66],
      [1 / 3, 0x3555],
      [2047.9, 0x6800], // carries into the next exponent: 2048
    ];
    const bytes = serializeSafetensors([
      {
        name: 'x',
        shape: [cases.length],
        data: new Float32Array(cases.map(([v]) => v)),
        dtype: 'F16',
      },
    ]);
    const got = halfBits(bytes);
    cases.forEach(([v, want], i) => {
      assert.equal(got[i]!.toString(16), want.toString(16), `F16 of ${v}`);
    });
  });

  void it('rounds Float64Array input to F16 in one step (no double rounding through float32)', () => {
    // 1 + 2^-11 + 2^-40 is just above a tie; through float32 it would become the tie itself
    // and round down to 1.0.
    const v = 1 + 2 ** -11 + 2 ** -40;
    assert.equal(Math.fround(v), 1 + 2 ** -11);
    const bytes = serializeSafetensors([
      { name: 'x', shape: [1], data: new Float64Array([v]), dtype: 'F16' },
    ]);
    assert.deepEqual(halfBits(bytes), [0x3c01]);
  });

  void it('round-trips every finite F16 value through F32 -> F16', () => {
    const all = new Uint16Array(0x10000).map((_, i) => i);
    const header = `{"all":${entryJson('F16', [0x10000], 0, 0x20000)}}`;
    const decoded = parseSafetensors(rawFile(header, new Uint8Array(all.buffer))).tensors.get(
      'all',
    )!.data;
    const back = halfBits(
      serializeSafetensors([{ name: 'all', shape: [0x10000], data: decoded, dtype: 'F16' }]),
    );
    for (let h = 0; h < 0x10000; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) assert.equal(back[h], 0x7e00);
      else if (back[h] !== h)
        assert.fail(`0x${h.toString(16)} came back as 0x${back[h]!.toString(16)}`);
    }
  });
});

void describe('safetensors malformed files', () => {
  const f32Entry = (name: string, begin: number, end: number, shape = [(end - begin) / 4]) =>
    `${JSON.stringify(name)}:${entryJson('F32', shape, begin, end)}`;

  const withLength = (length: bigint, header = '{}') => rawFile(header, 0, length);
  const i64Data = new Uint8Array(16);
  new DataView(i64Data.buffer).setBigInt64(8, 2147483648n, true);

  const cases: [string, Uint8Array, RegExp][] = [
    ['file shorter than 8 bytes', new Uint8Array(5), /file is 5 bytes, expected at least 8/],
    [
      'absurd header length',
      withLength(200_000_000n),
      /header length 200000000 bytes exceeds the 100000000-byte limit/,
    ],
    [
      'huge u64 header length',
      withLength(0xffffffffffffffffn),
      /header length 18446744073709551615 bytes exceeds/,
    ],
    [
      'header longer than the file',
      withLength(1000n),
      /header length 1000 bytes is larger than the 2 bytes after the prefix/,
    ],
    [
      'empty header',
      rawFile(''),
      /must be a JSON object starting with '\{'.*found an empty header/,
    ],
    [
      'header not UTF-8',
      rawFile(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])),
      /header \(7 bytes\) is not valid UTF-8/,
    ],
    ['header with a BOM', rawFile('\ufeff{}'), /must be a JSON object starting with '\{'/],
    ['header not JSON', rawFile('{"a":'), /header is not valid JSON: unexpected end of input/],
    [
      'header padded with NULs',
      rawFile('{}\0\0\0\0\0\0'),
      /not valid JSON: unexpected data after the JSON value at character 2/,
    ],
    [
      'header not an object',
      rawFile('[1,2]'),
      /must be a JSON object starting with '\{' \(0x7B\), found "\[1,2\]"/,
    ],
    [
      'duplicate tensor key',
      rawFile(`{${f32Entry('a', 0, 4)},${f32Entry('a', 4, 8)}}`, 8),
      /header JSON has duplicate key "a" at character \d+/,
    ],
    [
      'duplicate key through an escape',
      rawFile(`{${f32Entry('a', 0, 4)},"\\u0061":${entryJson('F32', [1], 0, 4)}}`, 4),
      /duplicate key "a"/,
    ],
    [
      'duplicate field inside an entry',
      rawFile('{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}', 4),
      /duplicate key "dtype"/,
    ],
    ['duplicate metadata key', rawFile('{"__metadata__":{"k":"1","k":"2"}}'), /duplicate key "k"/],
    ['lone surrogate escape', rawFile('{"\\ud800":1}'), /not valid JSON: lone surrogate/],
    [
      'entry not an object',
      rawFile('{"a":[1,2]}'),
      /tensor "a": expected an object \{dtype, shape, data_offsets\}, found \[1, 2\]/,
    ],
    [
      'entry missing dtype',
      rawFile('{"a":{"shape":[1],"data_offsets":[0,4]}}', 4),
      /tensor "a": missing field "dtype"/,
    ],
    [
      'entry missing data_offsets',
      rawFile('{"a":{"dtype":"F32","shape":[1]}}', 4),
      /tensor "a": missing field "data_offsets"/,
    ],
    [
      'unknown field in entry',
      rawFile('{"a":{"dtype":"F32","shape":[1],"offsets":[0,4],"data_offsets":[0,4]}}', 4),
      /tensor "a": unexpected field "offsets" \(allowed: dtype, shape, data_offsets\)/,
    ],
    [
      'dtype not a string',
      rawFile('{"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}}', 4),
      /tensor "a": "dtype" must be a string, found 32/,
    ],
    [
      'unknown dtype',
      rawFile(`{"a":${entryJson('F8_E4M3', [4], 0, 4)}}`, 4),
      /tensor "a": unknown dtype "F8_E4M3", expected one of F64, F32, F16, BF16, I64/,
    ],
    [
      'shape not an array',
      rawFile('{"a":{"dtype":"F32","shape":4,"data_offsets":[0,16]}}', 16),
      /tensor "a": "shape" must be an array, found 4/,
    ],
    [
      'negative shape dim',
      rawFile(`{"a":${entryJson('F32', [2, -2], 0, 16)}}`, 16),
      /tensor "a": shape\[1\] must be a non-negative integer, found -2/,
    ],
    [
      'non-integer shape dim',
      rawFile('{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', 8),
      /tensor "a": shape\[0\] must be a non-negative integer, found 2\.0/,
    ],
    [
      'data_offsets with one number',
      rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}}', 4),
      /tensor "a": "data_offsets" must be \[begin, end\], two non-negative integers, found \[4\]/,
    ],
    [
      'negative data_offsets',
      rawFile(`{"a":${entryJson('F32', [1], -4, 0)}}`, 4),
      /tensor "a": "data_offsets" must be .* found \[-4, 0\]/,
    ],
    [
      'data_offsets beyond 2^53',
      rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,9007199254740993]}}', 4),
      /tensor "a": "data_offsets" must be .* found \[0, 9007199254740993\]/,
    ],
    [
      'data_offsets begin > end',
      rawFile(`{"a":${entryJson('F32', [1], 8, 4)}}`, 8),
      /tensor "a": data_offsets begin 8 is greater than end 4/,
    ],
    [
      'byte length does not match shape x dtype',
      rawFile(`{"a":${entryJson('F32', [2, 3], 0, 20)}}`, 20),
      /tensor "a": shape \[2, 3\] x F32 \(4 bytes\) needs 24 bytes, but data_offsets \[0, 20\] span 20/,
    ],
    [
      'offsets beyond the buffer',
      rawFile(`{${f32Entry('a', 0, 32)}}`, 16),
      /tensor "a": data_offsets \[0, 32\] extend beyond the 16-byte data buffer/,
    ],
    [
      'overlapping tensors',
      rawFile(`{${f32Entry('b', 8, 24)},${f32Entry('a', 0, 16)}}`, 24),
      /tensors "a" \[0, 16\] and "b" \[8, 24\] overlap in the data buffer/,
    ],
    [
      'two tensors sharing bytes',
      rawFile(`{${f32Entry('a', 0, 8)},${f32Entry('b', 0, 8)}}`, 8),
      /tensors "a" \[0, 8\] and "b" \[0, 8\] overlap/,
    ],
    [
      'hole between tensors',
      rawFile(`{${f32Entry('a', 0, 8)},${f32Entry('b', 16, 24)}}`, 24),
      /bytes \[8, 16\) of the data buffer are not covered by any tensor \(a hole before tensor "b"\)/,
    ],
    [
      'unused bytes at the end',
      rawFile(`{${f32Entry('a', 0, 8)}}`, 12),
      /bytes \[8, 12\) at the end of the data buffer are not covered by any tensor/,
    ],
    [
      'metadata not an object',
      rawFile('{"__metadata__":["x"]}'),
      /"__metadata__" must be an object of string to string, found \["x"\]/,
    ],
    [
      'metadata null',
      rawFile('{"__metadata__":null}'),
      /"__metadata__" must be an object .*found null/,
    ],
    [
      'metadata value not a string',
      rawFile('{"__metadata__":{"format":"pt","epoch":3}}'),
      /"__metadata__" key "epoch": value must be a string, found 3/,
    ],
    [
      'I64 value outside int32',
      rawFile(`{"steps":${entryJson('I64', [2], 0, 16)}}`, i64Data),
      /tensor "steps": I64 value 2147483648 at index 1 is outside the int32 range/,
    ],
    [
      'BOOL byte not 0/1',
      rawFile(`{"mask":${entryJson('BOOL', [2], 0, 2)}}`, new Uint8Array([1, 2])),
      /tensor "mask": BOOL byte 2 at index 1 is not 0 or 1/,
    ],
  ];

  for (const [what, bytes, pattern] of cases) {
    void it(`rejects: ${what}`, () => {
      assert.throws(
        () => parseSafetensors(bytes, 'bad.safetensors'),
        (err: unknown) => {
          assert.ok(err instanceof SafetensorsError, `not a SafetensorsError: ${String(err)}`);
          assert.match(err.message, /^bad\.safetensors: /);
          assert.match(err.message, pattern);
          return true;
        },
      );
    });
  }

  void it('names the path in errors from readSafetensors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sumi-st-'));
    try {
      const path = join(dir, 'broken.safetensors');
      await writeFile(path, new Uint8Array(3));
      await assert.rejects(readSafetensors(path), (err: unknown) => {
        assert.ok(err instanceof SafetensorsError, String(err));
        assert.ok(err.message.startsWith(`${path}: file is 3 bytes`), err.message);
        return true;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

void describe('safetensors writer validation', () => {
  const f = (name: string, shape: number[], n: number): TensorToWrite => ({
    name,
    shape,
    data: new Float32Array(n),
  });
  const cases: [string, TensorToWrite[], RegExp][] = [
    ['duplicate names', [f('a', [1], 1), f('a', [1], 1)], /tensor "a": duplicate tensor name/],
    [
      'shape / data length mismatch',
      [f('w', [2, 3], 5)],
      /tensor "w": shape \[2, 3\] has 6 elements but data has 5/,
    ],
    ['negative dim', [f('w', [-1], 1)], /tensor "w": shape\[0\] must be a non-negative integer/],
    ['fractional dim', [f('w', [1.5], 1)], /tensor "w": shape\[0\] must be a non-negative integer/],
    ['reserved name', [f('__metadata__', [1], 1)], /reserved for the metadata/],
    [
      'Int32Array as F32',
      [{ name: 'i', shape: [1], data: new Int32Array(1), dtype: 'F32' }],
      /tensor "i": cannot write Int32Array as dtype F32/,
    ],
    [
      'Float32Array as I32',
      [{ name: 'x', shape: [1], data: new Float32Array(1), dtype: 'I32' }],
      /tensor "x": cannot write Float32Array as dtype I32/,
    ],
    ['lone surrogate name', [f('\ud800', [1], 1)], /lone surrogate/],
  ];
  for (const [what, tensors, pattern] of cases) {
    void it(`rejects: ${what}`, () => {
      assert.throws(() => serializeSafetensors(tensors), SafetensorsError);
      assert.throws(() => serializeSafetensors(tensors), pattern);
    });
  }

  void it('rejects non-string metadata values', () => {
    const meta = { epoch: 3 } as unknown as Record<string, string>;
    assert.throws(
      () => serializeSafetensors([], meta),
      /metadata value for key "epoch" must be a string, found number/,
    );
  });
});

void describe('safetensors atomic write', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const tempDir = async () => {
    const d = await mkdtemp(join(tmpdir(), 'sumi-st-'));
    dirs.push(d);
    return d;
  };

  void it('writes the file, readable back, with no temporary files left', async () => {
    const dir = await tempDir();
    const path = join(dir, 'model.safetensors');
    const tensors: TensorToWrite[] = [
      { name: 'w', shape: [2], data: new Float32Array([1, 2]) },
      { name: 'steps', shape: [3], data: new Int32Array([1, 2, 3]) },
    ];
    await writeSafetensors(path, tensors, { format: 'pt' });
    assert.deepEqual(await readdir(dir), ['model.safetensors']);
    assert.deepEqual(
      new Uint8Array(await readFile(path)),
      serializeSafetensors(tensors, { format: 'pt' }),
    );
    const file = await readSafetensors(path);
    assert.deepEqual(file.metadata, { format: 'pt' });
    assert.deepEqual(file.tensors.get('steps')!.data, new Int32Array([1, 2, 3]));

    // Overwriting replaces the content.
    await writeSafetensors(path, [{ name: 'w', shape: [1], data: new Float32Array([9]) }]);
    assert.deepEqual((await readSafetensors(path)).tensors.get('w')!.data, new Float32Array([9]));
    assert.deepEqual(await readdir(dir), ['model.safetensors']);
  });

  void it('leaves the target intact and no temporary files when a tensor is invalid', async () => {
    const dir = await tempDir();
    const path = join(dir, 'model.safetensors');
    await writeSafetensors(path, [{ name: 'w', shape: [1], data: new Float32Array([1]) }]);
    const before = await readFile(path);
    await assert.rejects(
      writeSafetensors(path, [
        { name: 'good', shape: [1], data: new Float32Array([2]) },
        { name: 'bad', shape: [3], data: new Float32Array(2) },
      ]),
      /tensor "bad": shape \[3\] has 3 elements but data has 2/,
    );
    assert.deepEqual(await readFile(path), before);
    assert.deepEqual(await readdir(dir), ['model.safetensors']);
  });

  void it('removes the temporary file when the final rename fails', async () => {
    const dir = await tempDir();
    // A non-empty directory at the target path: rename(file, dir) fails on every platform.
    const path = join(dir, 'occupied');
    await mkdir(path);
    await writeFile(join(path, 'keep'), 'x');
    await assert.rejects(
      writeSafetensors(path, [{ name: 'w', shape: [1], data: new Float32Array([1]) }]),
      (err: unknown) => err instanceof Error && 'code' in err,
    );
    assert.deepEqual(await readdir(dir), ['occupied']);
    assert.deepEqual(await readdir(path), ['keep']);
  });

  void it('fails cleanly when the directory does not exist', async () => {
    const dir = await tempDir();
    await assert.rejects(writeSafetensors(join(dir, 'missing', 'm.safetensors'), []), /ENOENT/);
    assert.deepEqual(await readdir(dir), []);
  });
});

void describe('safetensors real diffusers files', () => {
  void it('reads the diffusers UNet2D checkpoint', async () => {
    const file = await readSafetensors(
      join(FIXTURES, 'unet2d/diffusion_pytorch_model.safetensors'),
    );
    const w = file.tensors.get('conv_in.weight');
    assert.ok(w, 'conv_in.weight is present');
    assert.equal(w.dtype, 'F32');
    assert.deepEqual(w.shape, [32, 3, 3, 3]);
    assert.ok(w.data instanceof Float32Array, `F32 read into a ${w.data.constructor.name}`);
    assert.equal(w.data.length, 32 * 3 * 3 * 3);
    assert.ok(w.data.every(Number.isFinite), 'every weight finite');
    assert.ok(
      w.data.some((v) => v !== 0),
      'some weight non-zero',
    );
    assert.equal(file.metadata.format, 'pt');
    assert.ok(file.tensors.size > 100, `${file.tensors.size} tensors`);

    // Re-serializing what we read and parsing it again preserves every tensor.
    const again = parseSafetensors(
      serializeSafetensors(
        [...file.tensors.values()].map((e) => ({ name: e.name, shape: e.shape, data: e.data })),
        file.metadata,
      ),
    );
    assert.deepEqual(again.tensors, file.tensors);
  });

  void it('reads a scheduler table as F64', async () => {
    const file = await readSafetensors(join(FIXTURES, 'schedulers/ddpm_linear_eps.safetensors'));
    const a = file.tensors.get('alphas_cumprod');
    assert.ok(a, 'alphas_cumprod is present');
    assert.equal(a.dtype, 'F64');
    assert.deepEqual(a.shape, [1000]);
    assert.ok(a.data instanceof Float64Array, `F64 read into a ${a.data.constructor.name}`);
    // A cumulative product of alphas in (0, 1): strictly decreasing, within (0, 1).
    assert.ok(a.data[0]! < 1 && a.data[0]! > 0.99, `ᾱ_0 = ${a.data[0]}`);
    for (let i = 1; i < a.data.length; i++)
      assert.ok(
        a.data[i]! < a.data[i - 1]! && a.data[i]! > 0,
        `ᾱ at ${i}: ${a.data[i]} after ${a.data[i - 1]}`,
      );
    const steps = file.tensors.get('native/n10/timesteps');
    assert.ok(steps, 'native/n10/timesteps is present');
    assert.equal(steps.dtype, 'I64');
    assert.ok(steps.data instanceof Int32Array, `I64 read into a ${steps.data.constructor.name}`);
  });
});
