/**
 * Philox-4x32-10 counter-based RNG (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy
 * as 1, 2, 3", SC 2011; reference implementation: Random123). Every backend must produce the same
 * numbers for the same (seed, offset); the WGSL port mirrors this file, so all block arithmetic is
 * plain 32-bit (Math.imul, shifts, xor) with no BigInt.
 *
 * Block function, 10 rounds on counter words (x0, x1, x2, x3) with key words (k0, k1):
 *   M0 = 0xD2511F53, M1 = 0xCD9E8D57 (multipliers); W0 = 0x9E3779B9, W1 = 0xBB67AE85 (key bumps)
 *   round:  (hi0, lo0) = M0 * x0,  (hi1, lo1) = M1 * x2           (32x32 -> 64-bit products)
 *           (x0, x1, x2, x3) <- (hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0)
 *   between rounds:  k0 <- (k0 + W0) mod 2^32,  k1 <- (k1 + W1) mod 2^32
 *
 * Stream definition (the GPU port follows this exactly):
 *   - seed: integer in [0, 2^53).  key = [seed mod 2^32, floor(seed / 2^32)].
 *   - offset: integer in [0, 2^53), counted in blocks.  Element i of a draw uses block
 *     j = offset + floor(i / 4), counter = [j mod 2^32, floor(j / 2^32), 0, 0], and output word
 *     w = i mod 4 of that block.  A draw of n numbers consumes blocksFor(n) = ceil(n / 4) blocks;
 *     the next independent draw starts at offset + blocksFor(n).  The last block used must satisfy
 *     j < 2^53.
 *   - uniform from a u32 word x:  u = (x + 0.5) * 2^-32, computed in f64, so u is in
 *     [2^-33, 1 - 2^-33].  It is then stored, rounded by the typed array.  Float32 rounds u to 1.0
 *     when x >= 0xFFFFFF80 (odds 2^-25), so a Float32 result is clamped to 1 - 2^-24, the largest
 *     f32 below 1; the output is therefore always in the open interval (0, 1).
 *   - normal (Box-Muller, f64): words (w0, w1) and (w2, w3) of a block are pairs.  For a pair
 *     (a, b):  u1 = uniform(a), u2 = uniform(b) (f64, unclamped),  r = sqrt(-2 ln u1),
 *     z_even = r cos(2 pi u2),  z_odd = r sin(2 pi u2).  Element i takes z_(i mod 4) of block j.
 *     Since u1 >= 2^-33, |z| <= sqrt(66 ln 2) ~= 6.77; the result is stored rounded by the array.
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;
const TWO_POW_32 = 4294967296;
const INV_TWO_POW_32 = 1 / TWO_POW_32; // 2^-32, exact
const F32_BELOW_ONE = 1 - 2 ** -24; // largest f32 < 1

/**
 * High 32 bits of the 64-bit product a * b (a, b read as u32). Split into 16-bit halves,
 *   a = aH 2^16 + aL,  b = bH 2^16 + bL,
 *   a b = hh 2^32 + (lh + hl) 2^16 + ll   with ll = aL bL, lh = aL bH, hl = aH bL, hh = aH bH,
 * each partial product < 2^32 (exact in u32). The carry into bit 32 comes from
 *   mid = (ll >> 16) + (lh & 0xFFFF) + (hl & 0xFFFF)  (< 3 * 2^16),
 *   hi  = hh + (lh >> 16) + (hl >> 16) + (mid >> 16)  (< 2^32, no wrap).
 */
function mulhi(a: number, b: number): number {
  const aL = a & 0xffff;
  const aH = a >>> 16;
  const bL = b & 0xffff;
  const bH = b >>> 16;
  const ll = aL * bL;
  const lh = aL * bH;
  const hl = aH * bL;
  const hh = aH * bH;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (hh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** One Philox-4x32-10 block: 4 counter words, 2 key words (all u32) -> 4 u32 words. Writes into out (length>=4) at outOffset. */
export function philox4x32(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array,
  outOffset = 0,
): void {
  let x0 = c0 >>> 0;
  let x1 = c1 >>> 0;
  let x2 = c2 >>> 0;
  let x3 = c3 >>> 0;
  let key0 = k0 >>> 0;
  let key1 = k1 >>> 0;
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      key0 = (key0 + W0) >>> 0;
      key1 = (key1 + W1) >>> 0;
    }
    const hi0 = mulhi(M0, x0);
    const lo0 = Math.imul(M0, x0) >>> 0;
    const hi1 = mulhi(M1, x2);
    const lo1 = Math.imul(M1, x2) >>> 0;
    x0 = (hi1 ^ x1 ^ key0) >>> 0;
    x1 = lo1;
    x2 = (hi0 ^ x3 ^ key1) >>> 0;
    x3 = lo0;
  }
  out[outOffset] = x0;
  out[outOffset + 1] = x1;
  out[outOffset + 2] = x2;
  out[outOffset + 3] = x3;
}

/** How many Philox blocks (counter increments) a draw of n numbers consumes: ceil(n / 4). */
export function blocksFor(n: number): number {
  checkIndex('n', n);
  return Math.ceil(n / 4);
}

function checkIndex(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(
      `philox: ${name} must be a non-negative integer below 2^53, got ${String(value)}`,
    );
  }
}

/** Validates (seed, offset, n) and returns the block count of the draw. */
function checkDraw(seed: number, offset: number, n: number): number {
  checkIndex('seed', seed);
  checkIndex('offset', offset);
  const blocks = blocksFor(n);
  if (blocks > 0 && !Number.isSafeInteger(offset + (blocks - 1))) {
    throw new Error(
      `philox: offset ${offset} + ${blocks} blocks runs past the last counter 2^53 - 1`,
    );
  }
  return blocks;
}

/** Runs block `offset + b` of stream `seed` into `words`. */
function streamBlock(seed: number, offset: number, b: number, words: Uint32Array): void {
  const j = offset + b; // exact: checked against 2^53 by checkDraw
  philox4x32(
    j % TWO_POW_32,
    Math.floor(j / TWO_POW_32),
    0,
    0,
    seed % TWO_POW_32,
    Math.floor(seed / TWO_POW_32),
    words,
  );
}

/** Fills `out` with uniform numbers in the open interval (0, 1) from the stream (seed, offset). */
export function fillUniform(out: Float32Array | Float64Array, seed: number, offset: number): void {
  const n = out.length;
  const blocks = checkDraw(seed, offset, n);
  const top = out instanceof Float32Array ? F32_BELOW_ONE : 1; // f64 u is already < 1
  const words = new Uint32Array(4);
  for (let b = 0; b < blocks; b++) {
    streamBlock(seed, offset, b, words);
    const base = 4 * b;
    const count = Math.min(4, n - base);
    for (let w = 0; w < count; w++) {
      // u = (x + 0.5) 2^-32; min() only bites for Float32 (see header).
      out[base + w] = Math.min((words[w]! + 0.5) * INV_TWO_POW_32, top);
    }
  }
}

/** Fills `out` with standard normal numbers (Box-Muller) from the stream (seed, offset). */
export function fillNormal(out: Float32Array | Float64Array, seed: number, offset: number): void {
  const n = out.length;
  const blocks = checkDraw(seed, offset, n);
  const words = new Uint32Array(4);
  const z = new Float64Array(4);
  for (let b = 0; b < blocks; b++) {
    streamBlock(seed, offset, b, words);
    for (let p = 0; p < 4; p += 2) {
      const u1 = (words[p]! + 0.5) * INV_TWO_POW_32;
      const u2 = (words[p + 1]! + 0.5) * INV_TWO_POW_32;
      const r = Math.sqrt(-2 * Math.log(u1)); // r = sqrt(-2 ln u1)
      const theta = 2 * Math.PI * u2; // theta = 2 pi u2
      z[p] = r * Math.cos(theta);
      z[p + 1] = r * Math.sin(theta);
    }
    const base = 4 * b;
    const count = Math.min(4, n - base);
    for (let w = 0; w < count; w++) out[base + w] = z[w]!;
  }
}
