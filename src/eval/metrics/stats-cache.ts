/**
 * On-disk cache of a real set's feature statistics (μ, Σ, and the raw features that KID and
 * precision/recall need), keyed by what they were computed from: the feature extractor's weights
 * hash, the dataset, the split and the number of samples.
 *
 * File layout (little-endian):
 *   bytes 0–7    magic "SUMIFST\n"
 *   bytes 8–11   u32 byte length L of the header
 *   bytes 12…    the header: UTF-8 JSON (StatsHeader), zero-padded to a multiple of 8 bytes
 *   then         the payload: the sections in header order, each at its `offset` from the
 *                payload start (multiples of 8): mean f64[dim], cov f64[dim·dim],
 *                features f32|f64[n·dim]
 * The header carries the key, the shapes and the SHA-256 of the payload, so a truncated, corrupted
 * or foreign file is detected and recomputed, never used.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { writeFileAtomic } from '../../nn/models/index.js';

import { type FeatureMatrix, featureMatrix } from './features.js';
import { type FeatureStats, featureStats } from './frechet.js';

/** What a real set's statistics were computed from. */
export interface StatsKey {
  /** Hash of the feature extractor's weights. */
  extractorHash: string;
  dataset: string;
  split: string;
  /** Number of real samples. */
  n: number;
}

/** A real set's statistics: the Gaussian fit and the features it came from. */
export interface RealStats {
  key: StatsKey;
  stats: FeatureStats;
  features: FeatureMatrix;
}

type SectionDtype = 'float32' | 'float64';

interface Section {
  name: 'mean' | 'cov' | 'features';
  dtype: SectionDtype;
  offset: number;
  length: number;
}

/** The JSON header of a cache file. */
export interface StatsHeader {
  format: typeof FORMAT;
  version: typeof VERSION;
  key: StatsKey;
  dim: number;
  sections: Section[];
  /** Bytes in the payload. */
  payloadBytes: number;
  /** SHA-256 of the payload, hex. */
  sha256: string;
}

const MAGIC = Buffer.from('SUMIFST\n', 'latin1');
const FORMAT = 'sumi-feature-stats';
const VERSION = 1;
const PREFIX = MAGIC.length + 4;

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

function littleEndian(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

function keyJson(key: StatsKey): string {
  return JSON.stringify([key.extractorHash, key.dataset, key.split, key.n]);
}

function checkKey(key: StatsKey): void {
  if (typeof key.extractorHash !== 'string' || key.extractorHash === '') {
    throw new Error('stats cache: the key needs the extractor weights hash');
  }
  if (!Number.isInteger(key.n) || key.n < 2) {
    throw new Error(`stats cache: the key's n must be an integer ≥ 2, got ${key.n}`);
  }
}

/** Keeps letters, digits, '.', '_' and '-' of a name for use in a file name. */
function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 40) || '_';
}

/** The cache file of a key in `dir`: `<dataset>-<split>-n<n>-<16 hex digits of the key's SHA-256>.stats`. */
export function statsCachePath(dir: string, key: StatsKey): string {
  checkKey(key);
  const digest = createHash('sha256').update(keyJson(key)).digest('hex').slice(0, 16);
  return join(dir, `${safeName(key.dataset)}-${safeName(key.split)}-n${key.n}-${digest}.stats`);
}

function bytesOf(a: Float32Array | Float64Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Serializes real-set statistics to the cache format (see the file header). */
export function encodeStats(entry: RealStats): Buffer {
  if (!littleEndian()) throw new Error('stats cache: the format is little-endian only');
  checkKey(entry.key);
  const { stats, features } = entry;
  const dim = stats.dim;
  if (features.cols !== dim || features.rows !== entry.key.n || stats.n !== entry.key.n) {
    throw new Error(
      `stats cache: features ${features.rows}×${features.cols} and stats (n ${stats.n}, dim ${dim}) ` +
        `do not match the key's n ${entry.key.n}`,
    );
  }
  const arrays: [Section['name'], Float32Array | Float64Array][] = [
    ['mean', stats.mean],
    ['cov', stats.cov],
    ['features', features.data],
  ];
  const sections: Section[] = [];
  let offset = 0;
  for (const [name, a] of arrays) {
    sections.push({
      name,
      dtype: a instanceof Float32Array ? 'float32' : 'float64',
      offset,
      length: a.length,
    });
    offset = align8(offset + a.byteLength);
  }
  const payload = Buffer.alloc(offset);
  for (let i = 0; i < arrays.length; i++) bytesOf(arrays[i]![1]).copy(payload, sections[i]!.offset);
  const header: StatsHeader = {
    format: FORMAT,
    version: VERSION,
    key: { ...entry.key },
    dim,
    sections,
    payloadBytes: payload.length,
    sha256: createHash('sha256').update(payload).digest('hex'),
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const head = Buffer.alloc(align8(PREFIX + json.length));
  MAGIC.copy(head, 0);
  head.writeUInt32LE(json.length, MAGIC.length);
  json.copy(head, PREFIX);
  return Buffer.concat([head, payload]);
}

/** A decoded cache file, or why it cannot be used. */
export type DecodeResult = { ok: true; entry: RealStats } | { ok: false; reason: string };

function sameKey(a: StatsKey, b: StatsKey): boolean {
  return keyJson(a) === keyJson(b);
}

function readSection(payload: Buffer, s: Section): Float32Array | Float64Array {
  const width = s.dtype === 'float32' ? 4 : 8;
  const start = payload.byteOffset + s.offset;
  // slice copies into a fresh, aligned ArrayBuffer.
  const buf = payload.buffer.slice(start, start + s.length * width);
  return s.dtype === 'float32' ? new Float32Array(buf) : new Float64Array(buf);
}

/**
 * Parses and checks a cache file against the key it is expected to hold: magic, header, format
 * version, key, shapes, sizes and checksum. Never throws on bad content; says what is wrong.
 */
export function decodeStats(bytes: Buffer, expected: StatsKey): DecodeResult {
  if (!littleEndian()) throw new Error('stats cache: the format is little-endian only');
  try {
    return decodeChecked(bytes, expected);
  } catch (e) {
    // A header of the wrong shape (e.g. a section that is not an object).
    return { ok: false, reason: `malformed header (${(e as Error).message})` };
  }
}

function decodeChecked(bytes: Buffer, expected: StatsKey): DecodeResult {
  const fail = (reason: string): DecodeResult => ({ ok: false, reason });
  if (bytes.length < PREFIX || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    return fail('not a stats cache file (bad magic)');
  }
  const jsonLength = bytes.readUInt32LE(MAGIC.length);
  const payloadStart = align8(PREFIX + jsonLength);
  if (payloadStart > bytes.length) return fail('truncated header');
  let header: StatsHeader;
  try {
    header = JSON.parse(
      bytes.subarray(PREFIX, PREFIX + jsonLength).toString('utf8'),
    ) as StatsHeader;
  } catch (e) {
    return fail(`unreadable header (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null) return fail('the header is not an object');
  if (header.format !== FORMAT || header.version !== VERSION) {
    return fail(
      `format ${String(header.format)} v${String(header.version)}, expected ${FORMAT} v${VERSION}`,
    );
  }
  if (typeof header.key !== 'object' || header.key === null || !sameKey(header.key, expected)) {
    return fail(
      `key mismatch: the file holds ${JSON.stringify(header.key)}, wanted ${JSON.stringify(expected)}`,
    );
  }
  const payload = bytes.subarray(payloadStart);
  if (payload.length !== header.payloadBytes) {
    return fail(`payload is ${payload.length} bytes, the header says ${header.payloadBytes}`);
  }
  const digest = createHash('sha256').update(payload).digest('hex');
  if (digest !== header.sha256) return fail('checksum mismatch (the file is corrupted)');
  const dim = header.dim;
  const n = expected.n;
  if (!Number.isInteger(dim) || dim < 1) return fail(`bad dim ${String(dim)}`);
  if (!Array.isArray(header.sections)) return fail('the header lists no sections');
  const want = { mean: dim, cov: dim * dim, features: n * dim };
  const found = new Map<string, Float32Array | Float64Array>();
  for (const s of header.sections) {
    const width = s.dtype === 'float32' ? 4 : s.dtype === 'float64' ? 8 : 0;
    if (width === 0 || !(s.name in want) || s.length !== want[s.name]) {
      return fail(`bad section ${JSON.stringify(s)} for dim ${dim}, n ${n}`);
    }
    if (s.offset % 8 !== 0 || s.offset + s.length * width > payload.length) {
      return fail(`section ${s.name} lies outside the payload`);
    }
    if (s.name !== 'features' && s.dtype !== 'float64')
      return fail(`section ${s.name} is not float64`);
    if (found.has(s.name)) return fail(`section ${s.name} appears twice`);
    found.set(s.name, readSection(payload, s));
  }
  const mean = found.get('mean');
  const cov = found.get('cov');
  const data = found.get('features');
  if (!(mean instanceof Float64Array) || !(cov instanceof Float64Array) || data === undefined) {
    return fail('missing sections');
  }
  let features: FeatureMatrix;
  try {
    features = featureMatrix(data, n, dim);
  } catch (e) {
    return fail((e as Error).message);
  }
  return { ok: true, entry: { key: { ...expected }, stats: { dim, n, mean, cov }, features } };
}

/** Writes bytes atomically: a temporary file beside the target, fsynced, renamed over it. */
/** Writes an entry to its cache file in dir (created if needed); returns the path. */
export async function writeStatsCache(dir: string, entry: RealStats): Promise<string> {
  const path = statsCachePath(dir, entry.key);
  const bytes = encodeStats(entry);
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(path, bytes);
  return path;
}

/** The outcome of reading a key's cache file. */
export type CacheRead =
  | { status: 'hit'; entry: RealStats; path: string }
  | { status: 'missing'; path: string }
  | { status: 'invalid'; reason: string; path: string };

/** Reads the cache file of a key from dir, if present, and checks it. */
export async function readStatsCache(dir: string, key: StatsKey): Promise<CacheRead> {
  const path = statsCachePath(dir, key);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'missing', path };
    throw e;
  }
  const r = decodeStats(bytes, key);
  return r.ok
    ? { status: 'hit', entry: r.entry, path }
    : { status: 'invalid', reason: r.reason, path };
}

export interface LoadStatsOptions {
  /** Told (once) why an existing cache file was rejected before it is recomputed. */
  onInvalid?: (message: string) => void;
}

export interface LoadedStats {
  entry: RealStats;
  /** 'cache' when read from a valid file, 'computed' otherwise (and then written). */
  source: 'cache' | 'computed';
  path: string;
  /** Why an existing file was rejected, or null. */
  rejected: string | null;
}

/**
 * The real set's statistics for a key: read from dir when a valid file is there, otherwise
 * computed from the features `compute` returns (which must have key.n rows), then written.
 */
export async function loadOrComputeStats(
  dir: string,
  key: StatsKey,
  compute: () => FeatureMatrix | Promise<FeatureMatrix>,
  opts: LoadStatsOptions = {},
): Promise<LoadedStats> {
  const read = await readStatsCache(dir, key);
  if (read.status === 'hit')
    return { entry: read.entry, source: 'cache', path: read.path, rejected: null };
  let rejected: string | null = null;
  if (read.status === 'invalid') {
    rejected = `${read.path}: ${read.reason}; recomputing`;
    opts.onInvalid?.(rejected);
  }
  const features = await compute();
  if (features.rows !== key.n) {
    throw new Error(
      `stats cache: computed ${features.rows} feature rows for a key with n = ${key.n}`,
    );
  }
  const entry: RealStats = { key: { ...key }, stats: featureStats(features), features };
  const path = await writeStatsCache(dir, entry);
  return { entry, source: 'computed', path, rejected };
}
