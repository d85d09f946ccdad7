/**
 * The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS"):
 *
 *   bytes 0-1  zero
 *   byte 2     element type: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64
 *   byte 3     number of dimensions d (>= 1)
 *   then       d dimension sizes, u32 big-endian
 *   then       the elements, row-major, big-endian
 *
 * The parser checks all of it, including that the file holds exactly the elements the header
 * announces. gzipped files (.gz, as distributed) are inflated first.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export type IdxType = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

export interface IdxArray {
  type: IdxType;
  shape: number[];
  data: Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
}

const TYPES: Record<number, [IdxType, number]> = {
  0x08: ['uint8', 1],
  0x09: ['int8', 1],
  0x0b: ['int16', 2],
  0x0c: ['int32', 4],
  0x0d: ['float32', 4],
  0x0e: ['float64', 8],
};

/** Parses an IDX file's bytes; `name` starts every error message. */
export function parseIdx(bytes: Uint8Array, name = 'IDX file'): IdxArray {
  const fail = (msg: string): Error => new Error(`${name}: ${msg}`);
  if (bytes.length < 4) throw fail(`too short for an IDX header (${bytes.length} bytes)`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw fail(`bad magic number: first two bytes must be 0, got ${bytes[0]}, ${bytes[1]}`);
  }
  const t = TYPES[bytes[2]!];
  if (t === undefined)
    throw fail(`unknown element type 0x${bytes[2]!.toString(16).padStart(2, '0')}`);
  const [type, size] = t;
  const rank = bytes[3]!;
  if (rank === 0) throw fail('number of dimensions is 0');
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) {
    throw fail(
      `truncated header: ${rank} dimensions need ${headerBytes} bytes, file has ${bytes.length}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape = Array.from({ length: rank }, (_, k) => view.getUint32(4 + 4 * k));
  const count = shape.reduce((a, b) => a * b, 1);
  const expected = headerBytes + count * size;
  if (bytes.length !== expected) {
    throw fail(
      `size mismatch: header says ${shape.join('x')} ${type} (${expected} bytes), file has ${bytes.length} bytes`,
    );
  }
  return { type, shape, data: readElements(type, bytes, view, headerBytes, count, size) };
}

/** The `count` elements from byte `start` on, each `size` bytes, big-endian (as DataView reads). */
function readElements(
  type: IdxType,
  bytes: Uint8Array,
  view: DataView,
  start: number,
  count: number,
  size: number,
): IdxArray['data'] {
  const n = { length: count };
  const at = (i: number): number => start + size * i;
  switch (type) {
    case 'uint8':
      return bytes.slice(start);
    case 'int8':
      return new Int8Array(bytes.slice(start).buffer);
    case 'int16':
      return Int16Array.from(n, (_, i) => view.getInt16(at(i)));
    case 'int32':
      return Int32Array.from(n, (_, i) => view.getInt32(at(i)));
    case 'float32':
      return Float32Array.from(n, (_, i) => view.getFloat32(at(i)));
    case 'float64':
      return Float64Array.from(n, (_, i) => view.getFloat64(at(i)));
    default:
      return type satisfies never;
  }
}

/** Reads and parses an IDX file, gunzipping it when it starts with the gzip magic 1F 8B. */
export function readIdx(path: string): IdxArray {
  let bytes: Uint8Array = readFileSync(path);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new Error(`${path}: corrupt gzip data (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  return parseIdx(bytes, path);
}
