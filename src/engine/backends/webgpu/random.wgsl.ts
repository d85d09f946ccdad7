/**
 * WGSL port of fillUniform / fillNormal in rng/philox.ts: the Philox-4x32-10 stream, one thread
 * per block of four outputs. The u32 words are bit-identical to the CPU's. Uniforms are the
 * CPU's f64 value (x + 0.5)·2^-32 rounded to f32 exactly (integer round-to-nearest-even, then
 * ldexp) and clamped to the largest f32 below 1, as philox.ts does for Float32Array. Normals use
 * Box–Muller like the CPU, with an f32 evaluation that keeps a few ulps: ln u1 goes through
 * log1p(−(1 − u1)) when u1 > √½ (1 − u1 taken exactly from the word), and cos/sin(2π u2) are
 * reduced to a quarter turn from the integer word, so the argument carries no rounding from u2.
 */
import { kernel, mainWgsl, WG } from './kernel.js';
import { mathWgsl } from './math.wgsl.js';
import type { GpuBuf } from './pool.js';
import { grid1d, type Kernel, type Runtime } from './runtime.js';
import { paramFields } from './params.js';

const TWO_POW_32 = 4294967296;

const PHILOX = `
fn mulhi(a: u32, b: u32) -> u32 {
  let aL = a & 0xffffu;
  let aH = a >> 16u;
  let bL = b & 0xffffu;
  let bH = b >> 16u;
  let ll = aL * bL;
  let lh = aL * bH;
  let hl = aH * bL;
  let hh = aH * bH;
  let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
  return hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
}
fn philox(c: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
  var x = c;
  var key = k;
  for (var round = 0u; round < 10u; round++) {
    if (round > 0u) { key = key + vec2<u32>(0x9e3779b9u, 0xbb67ae85u); }
    let hi0 = mulhi(0xd2511f53u, x.x);
    let lo0 = 0xd2511f53u * x.x;
    let hi1 = mulhi(0xcd9e8d57u, x.z);
    let lo1 = 0xcd9e8d57u * x.z;
    x = vec4<u32>(hi1 ^ x.y ^ key.x, lo1, hi0 ^ x.w ^ key.y, lo0);
  }
  return x;
}
// (x + 0.5) 2^-32 = (2x + 1) 2^-33 rounded to f32: round 2x + 1 to 24 bits, ties to even.
fn unit(x: u32) -> f32 {
  if (x < 0x800000u) { return f32(2u * x + 1u) * 0x1p-33f; }
  let s = 33u - countLeadingZeros(x) - 24u;
  var q = x >> (s - 1u);
  let half = 1u << (s - 1u);
  let r = ((x & (half - 1u)) << 1u) | 1u;
  if (r > half || (r == half && (q & 1u) == 1u)) { q += 1u; }
  return ldexp(f32(q), i32(s) - 33);
}
fn uniform01(x: u32) -> f32 { return min(unit(x), 0x1.fffffep-1f); }
// ln((a + 0.5) 2^-32) with relative accuracy near u = 1, where 1 - u = (~a + 0.5) 2^-32 is exact.
fn log_unit(a: u32) -> f32 {
  if (a < 0xb504f334u) { return m_log(unit(a)); }
  return m_log1p_small(-unit(~a));
}
// (cos, sin)(2π (b + 0.5) 2^-32): quarter turns q from the top bits, the rest exact in f32.
fn cossin_turn(b: u32) -> vec2<f32> {
  let q = (b >> 30u) + ((b >> 29u) & 1u);
  let d = bitcast<i32>(b - (q << 30u));
  let x = f32(2 * d + 1) * 0x1p-33f * 6.28318530717958648;
  let c = m_cos_poly(x);
  let s = m_sin_poly(x);
  switch (q & 3u) {
    case 0u: { return vec2<f32>(c, s); }
    case 1u: { return vec2<f32>(-s, c); }
    case 2u: { return vec2<f32>(-c, -s); }
    default: { return vec2<f32>(s, -c); }
  }
}`;

export function randomKernel(kind: 'uniform' | 'normal'): Kernel {
  const body =
    kind === 'uniform'
      ? `  let v = vec4<f32>(uniform01(w.x), uniform01(w.y), uniform01(w.z), uniform01(w.w));`
      : `  let r0 = sqrt(-2.0 * log_unit(w.x));
  let r1 = sqrt(-2.0 * log_unit(w.z));
  let v = vec4<f32>(r0 * cossin_turn(w.y), r1 * cossin_turn(w.w));`;
  return kernel(`random/${kind}`, () => ({
    buffers: [{ name: 'out', type: 'f32', kind: 'write' }],
    params: paramFields({
      n: 'u32',
      blocks: 'u32',
      seed: { type: 'u32', count: 2 },
      offset: { type: 'u32', count: 2 },
    }),
    body: `${mathWgsl(['m_log', 'm_log1p_small', 'm_sin_poly', 'm_cos_poly'])}
${PHILOX}
${mainWgsl()}
  let b = (wg.y * nwg.x + wg.x) * ${WG}u + li;
  if (b >= p_blocks()) { return; }
  let lo = p_offset(0u) + b;
  let hi = p_offset(1u) + select(0u, 1u, lo < b);
  let w = philox(vec4<u32>(lo, hi, 0u, 0u), vec2<u32>(p_seed(0u), p_seed(1u)));
${body}
  let base = 4u * b;
  for (var k = 0u; k < 4u; k++) {
    if (base + k < p_n()) { out[base + k] = v[k]; }
  }
}`,
  }));
}

function checkIndex(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(
      `philox: ${name} must be a non-negative integer below 2^53, got ${String(value)}`,
    );
  }
}

/** Records a draw of n numbers of stream (seed, offset) into out; validates like philox.ts. */
export function launchRandom(
  rt: Runtime,
  kind: 'uniform' | 'normal',
  out: GpuBuf,
  n: number,
  seed: number,
  offset: number,
): void {
  checkIndex('seed', seed);
  checkIndex('offset', offset);
  checkIndex('n', n);
  const blocks = Math.ceil(n / 4);
  if (blocks > 0 && !Number.isSafeInteger(offset + (blocks - 1))) {
    throw new Error(
      `philox: offset ${offset} + ${blocks} blocks runs past the last counter 2^53 - 1`,
    );
  }
  if (n === 0) return;
  const split = (v: number): number[] => [v % TWO_POW_32, Math.floor(v / TWO_POW_32)];
  rt.dispatch(
    randomKernel(kind),
    [out],
    { n, blocks, seed: split(seed), offset: split(offset) },
    grid1d(Math.ceil(blocks / WG)),
  );
}
