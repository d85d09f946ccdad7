/**
 * Fuzzing the safetensors reader: headers whose length, offsets, dtypes, shapes, keys or bytes lie
 * give a SafetensorsError naming the file, never another exception or an allocation of the size
 * a header claims; what it accepts is a file whose tensors tile the byte buffer exactly.
 */
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import fc from 'fast-check';

import {
  parseSafetensors,
  SafetensorsError,
  serializeSafetensors,
  type TensorToWrite,
} from '../../src/nn/safetensors.js';
import { applyEdits, byteEdits, FUZZ_RUNS, fuzzTest, parsedOrRejected } from '../fuzz.js';

const SOURCE = 'fuzz/model.safetensors';
const DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'];
const ITEM: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4 };
Object.assign(ITEM, { I16: 2, I8: 1, U8: 1, BOOL: 1 });

const parse = (bytes: Uint8Array) =>
  parsedOrRejected(() => parseSafetensors(bytes, SOURCE), SafetensorsError, `${SOURCE}: `);

/** What an accepted file must satisfy: each tensor's values fill its shape. */
function checkAccepted(file: NonNullable<ReturnType<typeof parse>>): void {
  for (const [name, t] of file.tensors) {
    assert.equal(t.name, name);
    assert.equal(
      t.data.length,
      t.shape.reduce((p, d) => p * d, 1),
      `${name}: values fill [${t.shape.join(', ')}]`,
    );
  }
  for (const v of Object.values(file.metadata)) assert.equal(typeof v, 'string');
}

/** A file: the 8-byte little-endian header length, the header bytes, the data. */
function fileOf(headerBytes: Uint8Array, data: Uint8Array, claimed?: bigint): Uint8Array {
  const out = new Uint8Array(8 + headerBytes.length + data.length);
  new DataView(out.buffer).setBigUint64(0, claimed ?? BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.length);
  return out;
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

// ---- well-formed files ---------------------------------------------------------------------------

const tensorName = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.constantFrom('__proto__', 'constructor', 'a.b.weight', ''),
);

const tensorToWrite: fc.Arbitrary<TensorToWrite> = fc
  .record({
    shape: fc.array(fc.nat(4), { maxLength: 3 }),
    dtype: fc.constantFrom('F32', 'F16', 'F64', 'I32'),
    seed: fc.nat(),
  })
  .map(({ shape, dtype, seed }) => {
    const n = shape.reduce((p, d) => p * d, 1);
    // Multiples of 1/8 up to 125 in size: exact in every float dtype, F16 included.
    const values = Array.from({ length: n }, (_, i) => ((seed + i * 7919) % 2001) - 1000);
    const data =
      dtype === 'I32' ? Int32Array.from(values) : Float64Array.from(values, (v) => v / 8);
    return { name: '', shape, data, dtype };
  });

const wellFormed = fc
  .tuple(
    fc
      .uniqueArray(tensorName, { maxLength: 5 })
      .map((names) => names.filter((n) => n !== '__metadata__')),
    fc.array(tensorToWrite, { minLength: 5, maxLength: 5 }),
    fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3 }),
  )
  .map(([names, tensors, metadata]) => ({
    tensors: names.map((name, i) => ({ ...tensors[i]!, name })),
    metadata,
  }));

// ---- headers written by hand -------------------------------------------------------------------

/** JSON text of a value, with numbers that JSON.stringify cannot write (huge, -0, 1e400...). */
const jsonNumberText = fc.oneof(
  fc.nat(64).map(String),
  fc.constantFrom(
    '-1',
    '1.0',
    '1e3',
    '1e400',
    '-0',
    '9007199254740993',
    '18446744073709551616',
    '0.5',
  ),
);
const jsonJunk = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
  jsonNumberText,
  fc.constantFrom('"F32"', 'null', '[]', '{}', '[1,2,3]', '"x"'),
);

/** Tensors of random dtypes and shapes laid end to end: valid unless their offsets are moved. */
const tiled = fc
  .array(
    fc.record({ dtype: fc.constantFrom(...DTYPES), shape: fc.array(fc.nat(3), { maxLength: 2 }) }),
    { minLength: 1, maxLength: 4 },
  )
  .map((ts) => {
    let at = 0;
    return ts.map((t, i) => {
      const bytes = t.shape.reduce((p, d) => p * d, 1) * ITEM[t.dtype]!;
      const entry = { name: `t${i}`, ...t, begin: at, end: at + bytes };
      at += bytes;
      return entry;
    });
  });

function tiledHeader(
  entries: readonly { name: string; dtype: string; shape: number[]; begin: number; end: number }[],
) {
  const parts = entries.map(
    (e) =>
      `"${e.name}":{"dtype":"${e.dtype}","shape":[${e.shape.join(',')}],"data_offsets":[${e.begin},${e.end}]}`,
  );
  return `{${parts.join(',')}}`;
}

/** A key: a repeat of another, the metadata key, or a string with odd escapes. */
const keyText = fc.oneof(
  fc.string({ maxLength: 8 }).map((s) => JSON.stringify(s)),
  fc.constantFrom('"t0"', '"__metadata__"', '"\\ud800"', '"\\u0000"', '"a\\"b"', '"\\x"'),
);

const metadataText = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }))
      .map((m) => JSON.stringify(m)),
  },
  { weight: 1, arbitrary: jsonJunk },
);

/** One fault put into one entry of a valid header (or none). */
const fault = fc.option(
  fc.oneof(
    fc.record({ field: fc.constantFrom('dtype', 'shape', 'data_offsets'), text: jsonJunk }),
    fc.record({
      field: fc.constant('shape'),
      text: fc.array(jsonNumberText, { maxLength: 3 }).map((s) => `[${s.join(',')}]`),
    }),
    fc.record({
      field: fc.constant('data_offsets'),
      text: fc.tuple(jsonNumberText, jsonNumberText).map(([a, b]) => `[${a},${b}]`),
    }),
    fc.record({ field: fc.constant('key'), text: keyText }),
    fc.record({
      field: fc.constantFrom('extra', 'missing'),
      text: fc.constantFrom('dtype', 'shape', 'data_offsets', 'offsets', '__metadata__'),
    }),
  ),
  { freq: 3 },
);

/** Headers of tensors that tile the buffer, with a fault in some entries and the metadata. */
const crafted = fc
  .record({
    entries: tiled,
    faults: fc.array(fault, { minLength: 4, maxLength: 4 }),
    metadata: fc.option(metadataText, { freq: 2 }),
    slack: fc.oneof(fc.constant(0), fc.integer({ min: -3, max: 3 })),
    padding: fc.constantFrom('', ' ', '    ', '\n', '\t\r '),
  })
  .map(({ entries, faults, metadata, slack, padding }) => {
    const parts = entries.map((e, i) => {
      const f = faults[i];
      const fields = new Map<string, string>([
        ['dtype', `"${e.dtype}"`],
        ['shape', `[${e.shape.join(',')}]`],
        ['data_offsets', `[${e.begin},${e.end}]`],
      ]);
      let key = `"${e.name}"`;
      if (f?.field === 'key') key = f.text;
      else if (f?.field === 'extra')
        fields.set(f.text === 'offsets' ? 'offsets' : `${f.text}_`, '0');
      else if (f?.field === 'missing') fields.delete(f.text);
      else if (f !== null && f !== undefined) fields.set(f.field, f.text);
      const body = [...fields].map(([k, v]) => `"${k}":${v}`).join(',');
      return `${key}:{${body}}`;
    });
    if (metadata !== null) parts.unshift(`"__metadata__":${metadata}`);
    const total = entries[entries.length - 1]!.end;
    return {
      header: `{${parts.join(',')}}${padding}`,
      data: new Uint8Array(Math.max(0, total + slack)),
    };
  });

void describe('safetensors reader', () => {
  fuzzTest(
    'safetensors: serialized tensors read back',
    wellFormed,
    ({ tensors, metadata }) => {
      const file = parseSafetensors(serializeSafetensors(tensors, metadata), SOURCE);
      assert.deepEqual([...file.tensors.keys()].sort(), tensors.map((t) => t.name).sort());
      assert.deepEqual(Object.entries(file.metadata).sort(), Object.entries(metadata).sort());
      for (const t of tensors) {
        const back = file.tensors.get(t.name)!;
        assert.deepEqual(back.shape, t.shape);
        assert.deepEqual([...back.data], [...t.data]);
      }
    },
    Math.max(100, Math.round(FUZZ_RUNS / 5)),
  );

  fuzzTest(
    'safetensors: hand-written headers are read or refused cleanly',
    crafted,
    ({ header, data }) => {
      const file = parse(fileOf(text(header), data));
      if (file !== null) checkAccepted(file);
    },
  );

  fuzzTest(
    'safetensors: the header length prefix lies',
    fc.tuple(
      wellFormed,
      fc.oneof(
        fc.integer({ min: -16, max: 16 }).map(BigInt),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.constantFrom(2n ** 63n, 2n ** 64n - 1n, 100_000_001n),
      ),
      fc.boolean(),
    ),
    ([{ tensors, metadata }, lie, relative]) => {
      const good = serializeSafetensors(tensors, metadata);
      const length = new DataView(good.buffer).getBigUint64(0, true);
      const claimed = relative ? length + lie : lie;
      if (claimed === length || claimed < 0n || claimed >= 2n ** 64n) return;
      const bytes = good.slice();
      new DataView(bytes.buffer).setBigUint64(0, claimed, true);
      const file = parse(bytes);
      if (file !== null) checkAccepted(file);
    },
  );

  fuzzTest(
    'safetensors: offsets moved off the tiling are refused',
    fc.tuple(
      tiled,
      fc.nat(),
      fc.integer({ min: -9, max: 9 }).filter((d) => d !== 0),
      fc.boolean(),
    ),
    ([entries, pick, delta, moveEnd]) => {
      const total = entries.length === 0 ? 0 : entries[entries.length - 1]!.end;
      const ok = fileOf(text(tiledHeader(entries)), new Uint8Array(total));
      assert.ok(parse(ok) !== null, 'the tiled file is accepted');
      const moved = entries.map((e) => ({ ...e }));
      const e = moved[pick % moved.length]!;
      if (moveEnd) e.end += delta;
      else e.begin += delta;
      if (e.begin < 0 || e.end < 0) return;
      // Every move leaves a size mismatch, an overlap, a hole or bytes past the end.
      assert.equal(parse(fileOf(text(tiledHeader(moved)), new Uint8Array(total))), null);
    },
  );

  fuzzTest(
    'safetensors: a duplicate key or non-UTF-8 header byte is refused',
    fc.tuple(tiled, fc.nat(), fc.constantFrom(0x80, 0xc0, 0xff, 0xed, 0xf8), fc.boolean()),
    ([entries, at, byte, duplicate]) => {
      const total = entries[entries.length - 1]!.end;
      let header: Uint8Array;
      if (duplicate) {
        const twice = [...entries, entries[at % entries.length]!];
        header = text(tiledHeader(twice));
      } else {
        const good = text(tiledHeader(entries));
        const k = 1 + (at % (good.length - 1)); // after the opening brace
        header = Uint8Array.from([...good.subarray(0, k), byte, ...good.subarray(k)]);
      }
      assert.throws(
        () => parseSafetensors(fileOf(header, new Uint8Array(total)), SOURCE),
        (err: Error) =>
          err instanceof SafetensorsError &&
          (duplicate ? /duplicate key/ : /not valid UTF-8/).test(err.message),
      );
    },
  );

  fuzzTest(
    'safetensors: edited bytes of a valid file',
    fc.tuple(wellFormed, byteEdits),
    ([w, edits]) => {
      const file = parse(applyEdits(serializeSafetensors(w.tensors, w.metadata), edits));
      if (file !== null) checkAccepted(file);
    },
  );

  fuzzTest(
    'safetensors: deep nesting and huge arrays in the header',
    fc.tuple(fc.integer({ min: 1, max: 5000 }), fc.constantFrom('[', '{"a":'), fc.nat(3)),
    ([depth, open, where]) => {
      const close = open === '[' ? ']' : '}';
      const deep = `${open.repeat(depth)}0${close.repeat(depth)}`;
      const header = [
        `{"__metadata__":${deep}}`,
        `{"w":{"dtype":"F32","shape":${deep},"data_offsets":[0,0]}}`,
        `{"w":{"dtype":"F32","shape":[${'1,'.repeat(depth)}0],"data_offsets":[0,0]}}`,
        `{"w":${deep}}`,
      ][where]!;
      const file = parse(fileOf(text(header), new Uint8Array(0)));
      if (file !== null) checkAccepted(file);
    },
  );
});
