// A strict reader and writer for the safetensors format (https://github.com/huggingface/safetensors).
//
// Layout of a file:
//
//   [ 8 bytes ]  N, an unsigned little-endian 64-bit integer: the byte length of the header
//   [ N bytes ]  UTF-8 JSON header. It MUST begin with '{' and MAY be padded at the end with
//                spaces (0x20); writers pad it so the byte buffer starts 8-byte aligned.
//   [ rest    ]  the byte buffer: every tensor's data, little-endian, row-major ('C' order)
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}, where
// the offsets are relative to the start of the byte buffer (not the file) and `end` is one past
// the last byte. The one special key "__metadata__" holds a free-form string -> string map.
//
// The reader follows the spec and the reference (Rust) implementation, and rejects whatever they
// reject: headers over 100 MB, duplicate JSON keys, a byte length that disagrees with
// shape x dtype, and a byte buffer that is not covered exactly once by the tensors: no overlaps,
// no holes, no trailing bytes (the spec: "The byte buffer needs to be entirely indexed, and cannot
// contain holes. This prevents the creation of polyglot files."). It is stricter in a few places
// where the reference is merely lenient: unknown fields inside a tensor entry, a null
// "__metadata__" and BOOL bytes other than 0/1 are errors here.
//
// This module is a pure data layer: it decodes into plain typed arrays and knows nothing of the
// tensor engine or of files (reading and writing files: safetensors-fs.ts).

import { asIndex, describeJson, JsonParser, type JsonValue } from './strict-json.js';

export type SafetensorsDType =
  'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** decoded values */
  data: Float32Array | Float64Array | Int32Array;
}

export interface SafetensorsFile {
  /** In header order. */
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

export type WritableDType = 'F32' | 'F16' | 'F64';

export interface TensorToWrite {
  name: string;
  shape: readonly number[];
  data: Float32Array | Float64Array | Int32Array;
  /** Default: the array's own type (F32, F64 or I32). */
  dtype?: WritableDType | 'I32';
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** Bytes per element of each dtype. */
const ITEM_SIZE: Record<SafetensorsDType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

function isDType(s: string): s is SafetensorsDType {
  return Object.hasOwn(ITEM_SIZE, s);
}

/** The reference implementation's limit on the header, to refuse absurd JSON before parsing. */
const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';
const ENTRY_FIELDS = ['dtype', 'shape', 'data_offsets'] as const;

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reverses the bytes of each `itemSize`-byte item in place (little <-> big endian). */
function swapBytes(bytes: Uint8Array, itemSize: number): void {
  for (let i = 0; i + itemSize <= bytes.length; i += itemSize) {
    for (let a = i, b = i + itemSize - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}
// ---------------------------------------------------------------------------------------------
// Element conversions

/** Exact IEEE binary16 -> number. Every half value (subnormals included) is exact in float32. */
function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // zero (signed) and subnormals
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (0x400 + mantissa) * 2 ** (exponent - 25);
}

let halfTable: Float32Array | undefined;
/** All 65536 half values, built on first use (256 KiB). */
function getHalfTable(): Float32Array {
  if (halfTable === undefined) {
    halfTable = new Float32Array(0x10000);
    for (let h = 0; h < 0x10000; h++) halfTable[h] = halfToNumber(h);
  }
  return halfTable;
}

/** Rounds a non-negative number to an integer, ties to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const r = x - f; // exact for the magnitudes used here (< 2^12)
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * number -> IEEE binary16 bits, rounding to nearest, ties to even, in one step from the double
 * (so Float64Array input is not double-rounded through float32). Magnitudes that round past
 * 65504 become infinity (the first such is 65520, the midpoint to 2^16); NaN becomes 0x7e00.
 */
function numberToHalfBits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) {
    // Subnormal range: units of 2^-24. Rounding up to 1024 yields 0x0400, the smallest normal.
    return sign | roundHalfEven(a * 2 ** 24);
  }
  // Normal: a = m * 2^(e-10) with m in [1024, 2048). Math.log2 may be off by one near powers of
  // two, so correct it exactly.
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  const m = roundHalfEven(a * 2 ** (10 - e));
  // m = 2048 (rounded up to the next power of two) carries into the exponent by itself.
  return sign | (((e + 15) << 10) + (m - 0x400));
}

// ---------------------------------------------------------------------------------------------
// Reading

interface RawEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * A cache file of the project: safetensors whose metadata holds `format`, `version` and a JSON
 * `header`. Returns the parsed file and header; any way the bytes are not such a file (not
 * safetensors, another format or version, a header that is not JSON) is `corrupt(why)`.
 */
export function parseVersionedSafetensors<H>(
  bytes: Uint8Array,
  source: string,
  o: { format: string; version: number; corrupt: (why: string) => never },
): { file: SafetensorsFile; header: H } {
  let file: SafetensorsFile;
  try {
    file = parseSafetensors(bytes, source);
  } catch (e) {
    return o.corrupt(e instanceof Error ? e.message.replace(`${source}: `, '') : String(e));
  }
  const meta = file.metadata;
  if (meta.format !== o.format) return o.corrupt(`format ${JSON.stringify(meta.format)}`);
  if (meta.version !== String(o.version)) {
    return o.corrupt(
      `version ${JSON.stringify(meta.version)}; this Sumi reads version ${o.version}`,
    );
  }
  try {
    return { file, header: JSON.parse(meta.header ?? '') as H };
  } catch {
    return o.corrupt('its header is not JSON');
  }
}

/**
 * The bytes of a cache file of the project (see parseVersionedSafetensors): `tensors` with
 * `format`, `version` and the JSON of `header` as metadata.
 */
export function serializeVersionedSafetensors(
  tensors: readonly TensorToWrite[],
  o: { format: string; version: number; header: unknown },
): Uint8Array {
  return serializeSafetensors(tensors, {
    format: o.format,
    version: String(o.version),
    header: JSON.stringify(o.header),
  });
}

/**
 * The F32 tensor `name` of a cache file, of the `shape` its header records; a missing tensor or
 * another dtype or shape is `corrupt(why)`.
 */
export function versionedTensorF32(
  file: SafetensorsFile,
  name: string,
  shape: readonly number[],
  corrupt: (why: string) => never,
): Float32Array {
  const t = file.tensors.get(name);
  if (t === undefined) return corrupt(`no tensor '${name}'`);
  if (t.dtype !== 'F32' || JSON.stringify(t.shape) !== JSON.stringify(shape)) {
    return corrupt(
      `'${name}' is ${t.dtype} [${t.shape.join(', ')}], the header says F32 [${String(shape)}]`,
    );
  }
  return t.data as Float32Array;
}

/**
 * What makes a cache file stale, gathered from its header and the one wanted (compared as JSON):
 * `value` names both values, `whole` only says `message` (for values too long to print).
 */
export class HeaderDiff {
  readonly reasons: string[] = [];
  value(what: string, cached: unknown, now: unknown): void {
    const [a, b] = [JSON.stringify(cached), JSON.stringify(now)];
    if (a !== b) this.reasons.push(`${what}: cache ${a}, now ${b}`);
  }
  whole(message: string, cached: unknown, now: unknown): void {
    if (JSON.stringify(cached) !== JSON.stringify(now)) this.reasons.push(message);
  }
}

/** Parses and validates a whole file. `source` names the file in error messages. */
export function parseSafetensors(
  bytes: Uint8Array,
  source = '<safetensors bytes>',
): SafetensorsFile {
  const fail = (message: string): never => {
    throw new SafetensorsError(`${source}: ${message}`);
  };
  const tensorFail = (name: string, message: string): never =>
    fail(`tensor ${JSON.stringify(name)}: ${message}`);

  // --- the 8-byte header length
  if (bytes.length < 8) {
    fail(`file is ${bytes.length} bytes, expected at least 8 (the u64 header length prefix)`);
  }
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    fail(`header length ${headerLength} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const n = Number(headerLength);
  if (n > bytes.length - 8) {
    fail(`header length ${n} bytes is larger than the ${bytes.length - 8} bytes after the prefix`);
  }

  // --- the JSON header
  let text = '';
  try {
    text = utf8.decode(bytes.subarray(8, 8 + n));
  } catch {
    fail(`header (${n} bytes) is not valid UTF-8`);
  }
  if (!text.startsWith('{')) {
    const found = text.length === 0 ? 'an empty header' : JSON.stringify(text.slice(0, 16));
    fail(`header must be a JSON object starting with '{' (0x7B), found ${found}`);
  }
  const root = new JsonParser(text, fail).parseDocument();
  if (!(root instanceof Map))
    return fail(`header must be a JSON object, found ${describeJson(root)}`);

  // --- entries
  const metadata: Record<string, string> = {};
  const entries: RawEntry[] = [];
  for (const [name, value] of root) {
    if (name === METADATA_KEY) {
      if (!(value instanceof Map)) {
        fail(
          `"${METADATA_KEY}" must be an object of string to string, found ${describeJson(value)}`,
        );
      } else {
        for (const [key, v] of value) {
          if (typeof v !== 'string') {
            fail(
              `"${METADATA_KEY}" key ${JSON.stringify(key)}: value must be a string, ` +
                `found ${describeJson(v)}`,
            );
          }
          // defineProperty: a key like "__proto__" must become an own property, not a prototype.
          Object.defineProperty(metadata, key, {
            value: v,
            enumerable: true,
            writable: true,
            configurable: true,
          });
        }
      }
      continue;
    }
    entries.push(parseEntry(name, value, tensorFail));
  }

  // --- the byte buffer: each tensor's size, then exact coverage
  const buffer = bytes.subarray(8 + n);
  for (const e of entries) {
    // BigInt: a product of safe integers can exceed 2^53.
    const elements = e.shape.reduce((p, d) => p * BigInt(d), 1n);
    const expected = elements * BigInt(ITEM_SIZE[e.dtype]);
    if (expected !== BigInt(e.end - e.begin)) {
      tensorFail(
        e.name,
        `shape [${e.shape.join(', ')}] x ${e.dtype} (${ITEM_SIZE[e.dtype]} bytes) needs ` +
          `${expected} bytes, but data_offsets [${e.begin}, ${e.end}] span ${e.end - e.begin}`,
      );
    }
    if (e.end > buffer.length) {
      tensorFail(
        e.name,
        `data_offsets [${e.begin}, ${e.end}] extend beyond the ${buffer.length}-byte data buffer`,
      );
    }
  }
  // Sorted by (begin, end) the tensors must tile [0, buffer.length) exactly, like the reference
  // does. Zero-size tensors occupy no bytes but must still sit at a tile boundary.
  const byOffset = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: RawEntry | undefined;
  for (const e of byOffset) {
    if (e.begin < cursor && previous !== undefined) {
      fail(
        `tensors ${JSON.stringify(previous.name)} [${previous.begin}, ${previous.end}] and ` +
          `${JSON.stringify(e.name)} [${e.begin}, ${e.end}] overlap in the data buffer`,
      );
    }
    if (e.begin > cursor) {
      fail(
        `bytes [${cursor}, ${e.begin}) of the data buffer are not covered by any tensor ` +
          `(a hole before tensor ${JSON.stringify(e.name)}); the spec forbids holes`,
      );
    }
    cursor = e.end;
    previous = e;
  }
  if (cursor !== buffer.length) {
    fail(
      `bytes [${cursor}, ${buffer.length}) at the end of the data buffer are not covered by any ` +
        `tensor; the spec forbids unused bytes`,
    );
  }

  // --- decode
  const tensors = new Map<string, SafetensorsEntry>();
  for (const e of entries) {
    tensors.set(e.name, {
      name: e.name,
      dtype: e.dtype,
      shape: e.shape,
      data: decode(e, buffer, tensorFail),
    });
  }
  return { tensors, metadata };
}

function parseEntry(
  name: string,
  value: JsonValue,
  tensorFail: (name: string, message: string) => never,
): RawEntry {
  if (!(value instanceof Map)) {
    return tensorFail(
      name,
      `expected an object {dtype, shape, data_offsets}, found ${describeJson(value)}`,
    );
  }
  for (const key of value.keys()) {
    if (!(ENTRY_FIELDS as readonly string[]).includes(key)) {
      tensorFail(
        name,
        `unexpected field ${JSON.stringify(key)} (allowed: ${ENTRY_FIELDS.join(', ')})`,
      );
    }
  }
  for (const key of ENTRY_FIELDS) {
    if (!value.has(key)) tensorFail(name, `missing field "${key}"`);
  }

  const dtype = value.get('dtype');
  if (typeof dtype !== 'string') {
    return tensorFail(name, `"dtype" must be a string, found ${describeJson(dtype)}`);
  }
  if (!isDType(dtype)) {
    return tensorFail(
      name,
      `unknown dtype ${JSON.stringify(dtype)}, expected one of ${Object.keys(ITEM_SIZE).join(', ')}`,
    );
  }

  const shapeValue = value.get('shape');
  if (!Array.isArray(shapeValue)) {
    return tensorFail(name, `"shape" must be an array, found ${describeJson(shapeValue)}`);
  }
  const shape = shapeValue.map((d, i) => {
    const dim = asIndex(d);
    if (dim === undefined) {
      return tensorFail(
        name,
        `shape[${i}] must be a non-negative integer, found ${describeJson(d)}`,
      );
    }
    return dim;
  });

  const offsets = value.get('data_offsets');
  const begin = Array.isArray(offsets) ? asIndex(offsets[0]) : undefined;
  const end = Array.isArray(offsets) ? asIndex(offsets[1]) : undefined;
  if (!Array.isArray(offsets) || offsets.length !== 2 || begin === undefined || end === undefined) {
    return tensorFail(
      name,
      `"data_offsets" must be [begin, end], two non-negative integers, found ${describeJson(offsets)}`,
    );
  }
  if (begin > end) {
    return tensorFail(name, `data_offsets begin ${begin} is greater than end ${end}`);
  }
  return { name, dtype, shape, begin, end };
}

/** Copies a tensor's bytes out of the file and decodes them. Never aliases `buffer`. */
function decode(
  e: RawEntry,
  buffer: Uint8Array,
  tensorFail: (name: string, message: string) => never,
): Float32Array | Float64Array | Int32Array {
  // Copy into a fresh ArrayBuffer at offset 0, so typed views over it are aligned no matter where
  // the tensor sat in the file. (Not `buffer.slice()`: on a Node Buffer that is a view.)
  const copy = new Uint8Array(e.end - e.begin);
  copy.set(buffer.subarray(e.begin, e.end));
  const size = ITEM_SIZE[e.dtype];
  if (!LITTLE_ENDIAN_HOST && size > 1) swapBytes(copy, size);
  const raw = copy.buffer;
  switch (e.dtype) {
    case 'F64':
      return new Float64Array(raw);
    case 'F32':
      return new Float32Array(raw);
    case 'F16': {
      const table = getHalfTable();
      const halves = new Uint16Array(raw);
      const out = new Float32Array(halves.length);
      for (let i = 0; i < halves.length; i++) out[i] = table[halves[i]!]!;
      return out;
    }
    case 'BF16': {
      // bfloat16 is the top half of a float32: shifting the bits up is an exact conversion.
      const halves = new Uint16Array(raw);
      const out = new Float32Array(halves.length);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < halves.length; i++) bits[i] = halves[i]! << 16;
      return out;
    }
    case 'I64': {
      // Each value as (low, high) int32 words; it fits in int32 iff high is low's sign extension.
      const words = new Int32Array(raw);
      const out = new Int32Array(words.length / 2);
      for (let i = 0; i < out.length; i++) {
        const low = words[2 * i]!;
        if (words[2 * i + 1] !== low >> 31) {
          const value = new DataView(raw).getBigInt64(8 * i, LITTLE_ENDIAN_HOST);
          tensorFail(e.name, `I64 value ${value} at index ${i} is outside the int32 range`);
        }
        out[i] = low;
      }
      return out;
    }
    case 'I32':
      return new Int32Array(raw);
    case 'I16':
      return new Int32Array(new Int16Array(raw));
    case 'I8':
      return new Int32Array(new Int8Array(raw));
    case 'U8':
      return new Int32Array(copy);
    case 'BOOL': {
      const i = copy.findIndex((b) => b > 1);
      if (i >= 0) tensorFail(e.name, `BOOL byte ${copy[i]} at index ${i} is not 0 or 1`);
      return new Int32Array(copy);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

/** Lone UTF-16 surrogates cannot be encoded as UTF-8 (the `u` flag matches only unpaired ones). */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Little-endian bytes of a typed array (a view when possible, a swapped copy on BE hosts). */
function leBytes(a: Float32Array | Float64Array | Int32Array | Uint16Array): Uint8Array {
  const view = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN_HOST) return view;
  const copy = view.slice();
  swapBytes(copy, a.BYTES_PER_ELEMENT);
  return copy;
}

interface PlannedTensor {
  name: string;
  dtype: WritableDType | 'I32';
  shape: number[];
  begin: number;
  end: number;
  data: Float32Array | Float64Array | Int32Array;
}

function encodeData(t: PlannedTensor): Uint8Array {
  switch (t.dtype) {
    case 'F32':
      // Float64Array -> Float32Array rounds to nearest, ties to even (ECMAScript ToFloat32).
      return leBytes(t.data instanceof Float32Array ? t.data : new Float32Array(t.data));
    case 'F64':
      return leBytes(t.data instanceof Float64Array ? t.data : new Float64Array(t.data));
    case 'I32':
      return leBytes(t.data);
    case 'F16': {
      const halves = new Uint16Array(t.data.length);
      for (let i = 0; i < halves.length; i++) halves[i] = numberToHalfBits(t.data[i]!);
      return leBytes(halves);
    }
  }
}

/**
 * Serializes tensors into a safetensors file image.
 *
 * The output is deterministic: the header lists "__metadata__" first (omitted when empty), then
 * the tensors sorted by name, each entry's fields in the order dtype, shape, data_offsets, with
 * metadata keys sorted too. The data is laid out in the order given. As in the reference
 * implementation, the header is padded with spaces to a multiple of 8 bytes so that the byte
 * buffer starts 8-byte aligned.
 */
export function serializeSafetensors(
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): Uint8Array {
  const fail = (message: string): never => {
    throw new SafetensorsError(`serializeSafetensors: ${message}`);
  };
  const checkText = (what: string, s: unknown): string => {
    if (typeof s !== 'string') return fail(`${what} must be a string, found ${typeof s}`);
    if (LONE_SURROGATE.test(s)) fail(`${what} ${JSON.stringify(s)} contains a lone surrogate`);
    return s;
  };

  // --- validate and lay out
  const planned: PlannedTensor[] = [];
  const seen = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    const name = checkText('tensor name', t.name);
    const label = `tensor ${JSON.stringify(name)}`;
    if (name === METADATA_KEY) fail(`${label}: the name is reserved for the metadata`);
    if (seen.has(name)) fail(`${label}: duplicate tensor name`);
    seen.add(name);

    const isFloat = t.data instanceof Float32Array || t.data instanceof Float64Array;
    if (!isFloat && !(t.data instanceof Int32Array)) {
      fail(`${label}: data must be a Float32Array, Float64Array or Int32Array`);
    }
    const dtype = t.dtype ?? (t.data instanceof Float64Array ? 'F64' : isFloat ? 'F32' : 'I32');
    if (dtype === 'I32' ? isFloat : !isFloat || !['F32', 'F16', 'F64'].includes(dtype)) {
      fail(
        `${label}: cannot write ${t.data.constructor.name} as dtype ${String(dtype)} ` +
          '(float arrays write as F32, F16 or F64; Int32Array writes as I32)',
      );
    }

    if (!Array.isArray(t.shape)) fail(`${label}: shape must be an array`);
    const shape = [...t.shape];
    shape.forEach((d, i) => {
      if (!Number.isSafeInteger(d) || d < 0) {
        fail(`${label}: shape[${i}] must be a non-negative integer, found ${d}`);
      }
    });
    const elements = shape.reduce((p, d) => p * BigInt(d), 1n);
    if (elements !== BigInt(t.data.length)) {
      fail(
        `${label}: shape [${shape.join(', ')}] has ${elements} elements but data has ` +
          `${t.data.length}`,
      );
    }
    const byteLength = t.data.length * ITEM_SIZE[dtype];
    planned.push({ name, dtype, shape, begin: offset, end: offset + byteLength, data: t.data });
    offset += byteLength;
  }

  const metaEntries = Object.entries(metadata ?? {}).map(([k, v]) => {
    checkText('metadata key', k);
    checkText(`metadata value for key ${JSON.stringify(k)}`, v);
    return [k, v] as const;
  });

  // --- header JSON (JSON.stringify of a string gives a valid JSON string literal)
  const byKey = <T>(key: (x: T) => string) => {
    return (a: T, b: T): number => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
  };
  const parts: string[] = [];
  if (metaEntries.length > 0) {
    const fields = [...metaEntries]
      .sort(byKey(([k]) => k))
      .map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    parts.push(`"${METADATA_KEY}":{${fields.join(',')}}`);
  }
  for (const t of [...planned].sort(byKey((p) => p.name))) {
    parts.push(
      `${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],` +
        `"data_offsets":[${t.begin},${t.end}]}`,
    );
  }
  const header = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padding = (8 - (header.length % 8)) % 8;
  const headerLength = header.length + padding;

  // --- assemble
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(header, 8);
  out.fill(0x20, 8 + header.length, 8 + headerLength);
  const base = 8 + headerLength;
  for (const t of planned) out.set(encodeData(t), base + t.begin);
  return out;
}
