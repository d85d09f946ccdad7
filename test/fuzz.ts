/**
 * Shared pieces of the property-based fuzz tests (`*-fuzz.test.ts`, fast-check): how many cases
 * each property runs, the check that a parser either returns or fails cleanly, and byte-level
 * mutations.
 *
 * Cases per property: 500 (CI), or SUMI_FUZZ_RUNS (`npm run fuzz` sets 10,000). A failing case is
 * printed with fast-check's seed and path; SUMI_FUZZ_SEED replays a seed.
 */
import fc from 'fast-check';
import { test } from 'node:test';

export const FUZZ_RUNS = Number(process.env.SUMI_FUZZ_RUNS ?? 500);
const SEED =
  process.env.SUMI_FUZZ_SEED === undefined ? undefined : Number(process.env.SUMI_FUZZ_SEED);

/**
 * External memory (array buffers) a single case may add. Every input here is at most a few
 * kilobytes, so a parser that allocates what a header claims shows up as a jump far past this.
 */
const MAX_CASE_BYTES = 32 * 2 ** 20;

/**
 * A node:test test that checks `property` on FUZZ_RUNS cases of `arbitrary`. With SUMI_FUZZ_RUNS
 * set, it also prints "fuzz <name>: <cases> cases in <seconds> s" for scripts/fuzz.mjs.
 */
export function fuzzTest<T>(
  name: string,
  arbitrary: fc.Arbitrary<T>,
  property: (value: T) => void,
  runs = FUZZ_RUNS,
): void {
  void test(`${name} (fuzz)`, () => {
    const start = performance.now();
    let cases = 0;
    fc.assert(
      fc.property(arbitrary, (value) => {
        cases++;
        const before = process.memoryUsage().arrayBuffers;
        property(value);
        const grown = process.memoryUsage().arrayBuffers - before;
        if (grown > MAX_CASE_BYTES) {
          throw new Error(`one case allocated ${(grown / 2 ** 20).toFixed(0)} MiB`);
        }
      }),
      { numRuns: runs, seed: SEED },
    );
    if (process.env.SUMI_FUZZ_RUNS !== undefined) {
      const seconds = ((performance.now() - start) / 1000).toFixed(1);
      console.log(`fuzz ${name}: ${cases} cases in ${seconds} s`);
    }
  });
}

type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * Runs `parse`: its result, or null when it threw an `errorClass` whose message starts with
 * `prefix` (the input's name; a string, or a pattern for where it follows a class name) and says
 * something after it. Any other exception (a TypeError or RangeError from inside a parser, an
 * error without the input's name) fails the case.
 */
export function parsedOrRejected<T>(
  parse: () => T,
  errorClass: ErrorClass,
  prefix: string | RegExp,
): T | null {
  try {
    return parse();
  } catch (e) {
    if (!(e instanceof errorClass)) {
      const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      throw new Error(`expected a ${errorClass.name}, got ${what}`, { cause: e });
    }
    const named =
      typeof prefix === 'string'
        ? e.message.startsWith(prefix) && e.message.trim().length > prefix.length + 2
        : new RegExp(`^(?:${prefix.source}).{3}`).test(e.message);
    if (!named)
      throw new Error(`the message does not name the input and the problem: ${e.message}`);
    return null;
  }
}

/** One byte-level edit; positions are taken modulo the length of the bytes edited. */
export type ByteEdit =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'u32'; at: number; value: number };

export const byteEdit: fc.Arbitrary<ByteEdit> = fc.oneof(
  fc.record({
    kind: fc.constant('flip' as const),
    at: fc.nat(),
    bit: fc.integer({ min: 0, max: 7 }),
  }),
  fc.record({
    kind: fc.constant('set' as const),
    at: fc.nat(),
    value: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  fc.record({
    kind: fc.constant('delete' as const),
    at: fc.nat(),
    count: fc.integer({ min: 1, max: 16 }),
  }),
  fc.record({
    kind: fc.constant('u32' as const),
    at: fc.nat(),
    value: fc.oneof(fc.nat(), fc.constantFrom(0, 0x7fffffff, 0x80000000, 0xffffffff)),
  }),
);

export const byteEdits = fc.array(byteEdit, { minLength: 1, maxLength: 4 });

/** `bytes` with the edits applied in order (a copy). */
export function applyEdits(bytes: Uint8Array, edits: readonly ByteEdit[]): Uint8Array {
  let b = bytes.slice();
  for (const e of edits) {
    const at = b.length === 0 ? 0 : e.at % b.length;
    switch (e.kind) {
      case 'flip':
        if (b.length > 0) b[at]! ^= 1 << e.bit;
        break;
      case 'set':
        if (b.length > 0) b[at] = e.value;
        break;
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'insert':
        b = Uint8Array.from([...b.subarray(0, at), ...e.bytes, ...b.subarray(at)]);
        break;
      case 'delete':
        b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + e.count)]);
        break;
      case 'u32':
        if (b.length >= 4) new DataView(b.buffer).setUint32(Math.min(at, b.length - 4), e.value);
        break;
    }
  }
  return b;
}

/**
 * Deeply nested JSON, which JSON.stringify (and fast-check's reporting) cannot write: generated
 * as a short marker string that `jsonText` expands.
 */
export const deepJson = fc
  .tuple(
    // Node's JSON.stringify runs out of stack a few thousand levels down.
    fc.oneof(
      { weight: 7, arbitrary: fc.integer({ min: 1, max: 64 }) },
      { weight: 1, arbitrary: fc.constant(6000) },
    ),
    fc.constantFrom('[', '{"a":'),
  )
  .map(([depth, open]) => `\u0000deep:${open}:${depth}`);

/** JSON.stringify, with every `deepJson` marker replaced by its nesting. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value).replace(
    /"\\u0000deep:(\[|\{\\"a\\":):(\d+)"/g,
    (_, open: string, n: string) => {
      const o = open.replace(/\\"/g, '"');
      const close = o === '[' ? ']' : '}';
      return `${o.repeat(Number(n))}0${close.repeat(Number(n))}`;
    },
  );
}
