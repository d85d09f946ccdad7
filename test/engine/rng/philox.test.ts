import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { blocksFor, fillNormal, fillUniform, philox4x32 } from '../../../src/engine/rng/philox.js';

const TWO_POW_32 = 2 ** 32;

function block(c: readonly number[], k: readonly number[]): number[] {
  const out = new Uint32Array(4);
  philox4x32(c[0]!, c[1]!, c[2]!, c[3]!, k[0]!, k[1]!, out);
  return [...out];
}

/** Philox-4x32-10 in BigInt, written from the paper: key bumped before rounds 2..10. */
function philoxRef(c: readonly number[], k: readonly number[]): number[] {
  const mask = 0xffffffffn;
  let [x0, x1, x2, x3] = c.map(BigInt) as [bigint, bigint, bigint, bigint];
  let [k0, k1] = k.map(BigInt) as [bigint, bigint];
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + 0x9e3779b9n) & mask;
      k1 = (k1 + 0xbb67ae85n) & mask;
    }
    const p0 = 0xd2511f53n * x0; // full 64-bit products
    const p1 = 0xcd9e8d57n * x2;
    [x0, x1, x2, x3] = [(p1 >> 32n) ^ x1 ^ k0, p1 & mask, (p0 >> 32n) ^ x3 ^ k1, p0 & mask];
  }
  return [x0, x1, x2, x3].map(Number);
}

/** xorshift32: deterministic test inputs. */
function makeRand(state: number): () => number {
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
}

function uniform(seed: number, offset: number, n: number): Float64Array {
  const out = new Float64Array(n);
  fillUniform(out, seed, offset);
  return out;
}

function normal(seed: number, offset: number, n: number): Float64Array {
  const out = new Float64Array(n);
  fillNormal(out, seed, offset);
  return out;
}

/** The words of block j of stream `seed`, per the stream definition in philox.ts. */
function streamWords(seed: number, j: number): number[] {
  return block(
    [j % TWO_POW_32, Math.floor(j / TWO_POW_32), 0, 0],
    [seed % TWO_POW_32, Math.floor(seed / TWO_POW_32)],
  );
}

void describe('philox4x32 block', () => {
  // Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter[4] key[2] -> output[4].
  const kat: [number[], number[], number[]][] = [
    [
      [0, 0, 0, 0],
      [0, 0],
      [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
    ],
    [
      [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
      [0xffffffff, 0xffffffff],
      [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
    ],
    [
      [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
      [0xa4093822, 0x299f31d0],
      [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
    ],
  ];

  void test('matches the Random123 known-answer vectors', () => {
    for (const [c, k, want] of kat) {
      assert.deepEqual(block(c, k), want);
      assert.deepEqual(philoxRef(c, k), want); // the BigInt reference is itself anchored
    }
  });

  void test('writes at outOffset and leaves the rest of out alone', () => {
    const out = new Uint32Array(7).fill(7);
    philox4x32(0, 0, 0, 0, 0, 0, out, 2);
    assert.deepEqual([...out], [7, 7, ...kat[0]![2], 7]);
  });

  void test('32-bit mulhi path agrees with a BigInt reference on random and edge inputs', () => {
    // Each block does 20 mulhi's on words fed back from earlier rounds, so any mulhi carry error
    // shows up in the output. Edge words hit the 16-bit split boundaries.
    const edges = [
      0, 1, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffff0000, 0xfffffffe, 0xffffffff,
    ];
    const rand = makeRand(0x9e3779b9);
    const inputs: number[][] = [];
    for (const e of edges) inputs.push([e, e, e, e, e, e], [e, 0, ~e >>> 0, 1, e, ~e >>> 0]);
    for (let i = 0; i < 5000; i++) inputs.push(Array.from({ length: 6 }, rand));
    for (const v of inputs) {
      const c = v.slice(0, 4);
      const k = v.slice(4);
      assert.deepEqual(block(c, k), philoxRef(c, k), `counter ${c.join(',')} key ${k.join(',')}`);
    }
  });
});

void describe('blocksFor', () => {
  void test('is ceil(n / 4)', () => {
    assert.deepEqual([0, 1, 3, 4, 5, 8, 9].map(blocksFor), [0, 1, 1, 1, 2, 2, 3]);
  });
  void test('rejects bad n', () => {
    assert.throws(() => blocksFor(-1), /n .*-1/);
    assert.throws(() => blocksFor(2.5), /n .*2\.5/);
  });
});

void describe('stream', () => {
  void test('follows the stream definition word for word (uniform)', () => {
    // Seed >= 2^32 uses key word 1; the offset crosses the 2^32 counter boundary.
    const seed = 2 ** 32 + 12345;
    const offset = 2 ** 32 - 2;
    const got = uniform(seed, offset, 14);
    for (let i = 0; i < got.length; i++) {
      const x = streamWords(seed, offset + Math.floor(i / 4))[i % 4]!;
      assert.equal(got[i], (x + 0.5) * 2 ** -32, `element ${i}`);
    }
  });

  void test('follows the stream definition word for word (normal)', () => {
    const seed = 987654321;
    const offset = 77;
    const got = normal(seed, offset, 11);
    for (let i = 0; i < got.length; i++) {
      const w = streamWords(seed, offset + Math.floor(i / 4));
      const p = i % 4 < 2 ? 0 : 2; // pairs (w0, w1) and (w2, w3)
      const r = Math.sqrt(-2 * Math.log((w[p]! + 0.5) * 2 ** -32));
      const theta = 2 * Math.PI * ((w[p + 1]! + 0.5) * 2 ** -32);
      assert.equal(got[i], i % 2 === 0 ? r * Math.cos(theta) : r * Math.sin(theta), `element ${i}`);
    }
  });

  for (const [name, draw] of [
    ['uniform', uniform],
    ['normal', normal],
  ] as const) {
    void test(`${name}: offset arithmetic`, () => {
      const full = draw(42, 0, 12);
      // 12 at offset 0 == first 4, then 8 at offset 1.
      assert.deepEqual(full, Float64Array.from([...full.subarray(0, 4), ...draw(42, 1, 8)]));
      // Any prefix of a draw is the shorter draw.
      assert.deepEqual(draw(42, 0, 5), full.subarray(0, 5));
      // A draw of 6 uses blocksFor(6) = 2 blocks; the next draw starts at offset + 2 and skips
      // the 2 unused words of the last block.
      const long = draw(7, 3, 12);
      assert.deepEqual(draw(7, 3, 6), long.subarray(0, 6));
      assert.deepEqual(draw(7, 3 + blocksFor(6), 4), long.subarray(8, 12));
    });

    void test(`${name}: deterministic, and seeds / offsets give different numbers`, () => {
      const a = draw(1, 0, 64);
      assert.deepEqual(draw(1, 0, 64), a);
      for (const other of [draw(2, 0, 64), draw(1 + 2 ** 32, 0, 64), draw(1, 16, 64)]) {
        const same = a.filter((v, i) => v === other[i]).length;
        assert.equal(same, 0);
      }
    });

    void test(`${name}: f32 output is the f64 output rounded to f32`, () => {
      const f64 = draw(3, 100, 4099);
      const f32 = new Float32Array(4099);
      (name === 'uniform' ? fillUniform : fillNormal)(f32, 3, 100);
      // Uniform f32 is also clamped below 1 (see "uniform f32 never rounds up to 1").
      const top = name === 'uniform' ? 1 - 2 ** -24 : Infinity;
      for (let i = 0; i < f32.length; i++) {
        assert.equal(f32[i]!, Math.min(Math.fround(f64[i]!), top), `element ${i}`);
      }
    });

    void test(`${name}: rejects a bad seed or offset, naming it`, () => {
      const out = new Float64Array(5);
      const fill = name === 'uniform' ? fillUniform : fillNormal;
      for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53]) {
        assert.throws(() => fill(out, bad, 0), new RegExp(`seed .*${String(bad)}`));
        assert.throws(() => fill(out, 0, bad), new RegExp(`offset .*${String(bad)}`));
      }
      // 5 numbers need blocks offset and offset + 1; the last counter is 2^53 - 1.
      const last = Number.MAX_SAFE_INTEGER;
      assert.throws(() => fill(out, 0, last), /offset 9007199254740991/);
      assert.doesNotThrow(() => fill(out, 0, last - 1));
      assert.doesNotThrow(() => fill(new Float64Array(4), last, last));
    });
  }

  void test('uniform is in (0, 1) with mean 1/2, variance 1/12 (1e5 samples, 5 sigma)', () => {
    const n = 100_000;
    const u = uniform(2024, 5, n);
    let sum = 0;
    let sq = 0;
    for (const v of u) {
      assert.ok(v > 0 && v < 1, String(v));
      sum += v;
      sq += (v - 0.5) ** 2;
    }
    // sd(mean) = sqrt(1/12 / n); sd of mean((u-1/2)^2) = sqrt((1/80 - 1/144) / n).
    assert.ok(Math.abs(sum / n - 0.5) < 5 * Math.sqrt(1 / 12 / n), `mean ${sum / n}`);
    assert.ok(Math.abs(sq / n - 1 / 12) < 5 * Math.sqrt((1 / 80 - 1 / 144) / n), `var ${sq / n}`);
  });

  void test('uniform f32 never rounds up to 1', () => {
    // Seed 0, block 11031643, word 3 is 0xffffffcc: (x + 0.5) 2^-32 = 1 - 51.5 * 2^-32, which
    // f32 rounds to 1.0; the stream clamps it to 1 - 2^-24.
    assert.equal(streamWords(0, 11031643)[3], 0xffffffcc);
    const f32 = new Float32Array(4);
    fillUniform(f32, 0, 11031643);
    assert.equal(f32[3], 1 - 2 ** -24);
    assert.equal(uniform(0, 11031643, 4)[3], (0xffffffcc + 0.5) * 2 ** -32);
  });

  void test('normal has mean 0, variance 1 (1e5 samples, 5 sigma) and finite tails', () => {
    const n = 100_000;
    const z = normal(99, 0, n);
    let sum = 0;
    let sq = 0;
    let beyond2 = 0;
    for (const v of z) {
      assert.ok(Number.isFinite(v) && Math.abs(v) < 6.8, String(v));
      sum += v;
      sq += v * v;
      if (Math.abs(v) > 2) beyond2++;
    }
    // sd(mean) = 1/sqrt(n); sd(mean of z^2) = sqrt(2/n); P(|z| > 2) = 0.0455.
    assert.ok(Math.abs(sum / n) < 5 / Math.sqrt(n), `mean ${sum / n}`);
    assert.ok(Math.abs(sq / n - 1) < 5 * Math.sqrt(2 / n), `var ${sq / n}`);
    const p = 0.0455003;
    assert.ok(Math.abs(beyond2 / n - p) < 5 * Math.sqrt((p * (1 - p)) / n), `tail ${beyond2 / n}`);
  });
});
