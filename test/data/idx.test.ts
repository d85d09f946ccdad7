import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';

import { parseIdx, readIdx } from '../../src/data/idx.js';

/** An IDX file: magic, dims, then big-endian elements written by `put`. */
function idx(
  type: number,
  shape: number[],
  size: number,
  put: (dv: DataView, at: number, i: number) => void,
): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  const bytes = new Uint8Array(4 + 4 * shape.length + count * size);
  const dv = new DataView(bytes.buffer);
  bytes[2] = type;
  bytes[3] = shape.length;
  shape.forEach((d, k) => dv.setUint32(4 + 4 * k, d));
  for (let i = 0; i < count; i++) put(dv, 4 + 4 * shape.length + i * size, i);
  return bytes;
}

const dir = mkdtempSync(join(tmpdir(), 'sumi-idx-'));
after(() => rmSync(dir, { recursive: true, force: true }));

void describe('IDX', () => {
  void test('parses every element type, big-endian, row-major', () => {
    const u8 = parseIdx(idx(0x08, [2, 3, 2], 1, (dv, at, i) => dv.setUint8(at, i * 20)));
    assert.deepEqual(u8.shape, [2, 3, 2]);
    assert.equal(u8.type, 'uint8');
    assert.deepEqual([...u8.data], [0, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200, 220]);
    const i8 = parseIdx(idx(0x09, [3], 1, (dv, at, i) => dv.setInt8(at, -i)));
    assert.deepEqual([...i8.data], [0, -1, -2]);
    const i16 = parseIdx(idx(0x0b, [2], 2, (dv, at, i) => dv.setInt16(at, -300 * (i + 1))));
    assert.deepEqual([...i16.data], [-300, -600]);
    const i32 = parseIdx(idx(0x0c, [2], 4, (dv, at, i) => dv.setInt32(at, 70000 * (i - 1))));
    assert.deepEqual([...i32.data], [-70000, 0]);
    const f32 = parseIdx(idx(0x0d, [1, 2], 4, (dv, at, i) => dv.setFloat32(at, i + 0.5)));
    assert.deepEqual([...f32.data], [0.5, 1.5]);
    const f64 = parseIdx(idx(0x0e, [2], 8, (dv, at, i) => dv.setFloat64(at, Math.PI * i)));
    assert.deepEqual([...f64.data], [0, Math.PI]);
  });

  void test('rejects bad magic, types, dimensions and sizes, naming the file', () => {
    const good = idx(0x08, [2, 2], 1, () => {});
    const bad = (edit: (b: Uint8Array) => Uint8Array): Uint8Array => edit(good.slice());
    const cases: [Uint8Array, RegExp][] = [
      [good.subarray(0, 3), /too short for an IDX header/],
      [bad((b) => ((b[1] = 1), b)), /bad magic number: first two bytes must be 0, got 0, 1/],
      [bad((b) => ((b[2] = 0x0a), b)), /unknown element type 0x0a/],
      [bad((b) => ((b[3] = 0), b)), /number of dimensions is 0/],
      [good.subarray(0, 9), /truncated header: 2 dimensions need 12 bytes, file has 9/],
      [
        good.subarray(0, 15),
        /size mismatch: header says 2x2 uint8 \(16 bytes\), file has 15 bytes/,
      ],
      [Uint8Array.from([...good, 0]), /size mismatch.*file has 17 bytes/],
    ];
    for (const [bytes, message] of cases) {
      assert.throws(
        () => parseIdx(bytes, 'labels.idx'),
        (e: Error) => e.message.startsWith('labels.idx: ') && message.test(e.message),
        String(message),
      );
    }
  });

  void test('readIdx reads plain and gzipped files', () => {
    const bytes = idx(0x08, [3], 1, (dv, at, i) => dv.setUint8(at, 7 * i));
    writeFileSync(join(dir, 'a.idx'), bytes);
    writeFileSync(join(dir, 'a.idx.gz'), gzipSync(bytes));
    assert.deepEqual([...readIdx(join(dir, 'a.idx')).data], [0, 7, 14]);
    assert.deepEqual([...readIdx(join(dir, 'a.idx.gz')).data], [0, 7, 14]);
    writeFileSync(join(dir, 'bad.gz'), Uint8Array.from([0x1f, 0x8b, 1, 2, 3]));
    assert.throws(() => readIdx(join(dir, 'bad.gz')), /bad\.gz: corrupt gzip data/);
  });
});
