/**
 * Fuzzing the tokenizer files (tokenizer.json, tokenizer_config.json) and the text encoder's
 * input: a changed key, value or byte gives a TokenizerError naming the file, never another
 * exception or an allocation of a size the file claims; any text encodes to a well-formed batch.
 */
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import fc from 'fast-check';

import {
  EOS_TOKEN,
  parseTokenizer,
  SPECIAL_TOKENS,
  TokenizerError,
  WordLevelTokenizer,
} from '../../src/data/tokenizer.js';
import { applyEdits, byteEdits, deepJson, fuzzTest, jsonText, parsedOrRejected } from '../fuzz.js';

const DIR = 'fuzz';
const NAMED = /fuzz\/tokenizer(?:_config)?\.json: /;

const captions = fc.array(
  fc.oneof(
    fc.string({ maxLength: 30 }),
    fc.constantFrom('a handwritten seven', 'grey t-shirt', "it's a cat", `x ${EOS_TOKEN} y`),
  ),
  { minLength: 1, maxLength: 6 },
);

const tokenizerOf = (texts: string[]): WordLevelTokenizer => WordLevelTokenizer.fromTexts(texts);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Every path to a value inside `v` (keys and indices), the root excluded. */
function pathsOf(v: Json): (string | number)[][] {
  const out: (string | number)[][] = [];
  const stack: [Json, (string | number)[]][] = [[v, []]];
  while (stack.length > 0) {
    const [x, p] = stack.pop()!;
    if (x === null || typeof x !== 'object') continue;
    const keys: (string | number)[] = Array.isArray(x) ? x.map((_, i) => i) : Object.keys(x);
    for (const k of keys) {
      const child = (x as Record<string | number, Json>)[k]!;
      out.push([...p, k]);
      stack.push([child, [...p, k]]);
    }
  }
  return out;
}

/** Sets (or, with `value` undefined, deletes) the value at `path`. */
function setAt(root: Json, path: readonly (string | number)[], value: Json | undefined): void {
  let x = root as Record<string | number, Json>;
  for (const k of path.slice(0, -1)) x = x[k] as Record<string | number, Json>;
  const last = path[path.length - 1]!;
  if (value === undefined) {
    if (Array.isArray(x)) x.splice(last as number, 1);
    else delete x[last];
  } else {
    Object.defineProperty(x, last, { value, enumerable: true, writable: true, configurable: true });
  }
}

const odd: fc.Arbitrary<Json> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
  fc.constantFrom<Json>(
    -1,
    0,
    1,
    2,
    3,
    2.5,
    1e300,
    2 ** 31,
    '',
    '<|unk|>',
    '<|pad|>',
    null,
    [],
    {},
  ),
  deepJson,
);

/** Which file, which value (by index into its paths, or a new key), and what it becomes. */
const docEdit = fc.record({
  config: fc.boolean(),
  path: fc.nat(),
  newKey: fc.option(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('__proto__', 'vocab')), {
    freq: 4,
  }),
  value: fc.option(odd, { freq: 8 }), // null: delete
});

type DocEdit = typeof docEdit extends fc.Arbitrary<infer T> ? T : never;

function edited(tok: WordLevelTokenizer, edits: readonly DocEdit[]): readonly [string, string] {
  const doc = JSON.parse(tok.tokenizerJson()) as Json;
  const cfg = JSON.parse(tok.tokenizerConfigJson()) as Json;
  for (const e of edits) {
    const root = e.config ? cfg : doc;
    const paths = pathsOf(root);
    const path = paths[e.path % paths.length]!;
    const target = e.newKey === null ? path : [...path.slice(0, -1), e.newKey];
    const parent = target
      .slice(0, -1)
      .reduce<Json>((x, k) => (x as Record<string | number, Json>)[k]!, root);
    if (parent === null || typeof parent !== 'object') continue;
    // A JSON array has no named keys (and setting an array's `length` is not an edit of a file).
    if (Array.isArray(parent) && e.newKey !== null) continue;
    setAt(root, target, e.value ?? undefined);
  }
  return [jsonText(doc), jsonText(cfg)] as const;
}

/** A parsed tokenizer must encode text, at its own length, into ids it has. */
function checkUsable(tok: WordLevelTokenizer): void {
  const { inputIds, attentionMask, length } = tok.encode(['a grey cat', '']);
  assert.equal(length, tok.modelMaxLength);
  assert.equal(inputIds.length, 2 * length);
  assert.equal(attentionMask.length, 2 * length);
  for (const id of inputIds) {
    assert.ok(id >= 0 && id < tok.vocabSize, `id ${id} is in the vocabulary`);
  }
}

void describe('tokenizer files', () => {
  fuzzTest(
    'tokenizer: values of tokenizer.json or tokenizer_config.json changed, added or deleted',
    fc.tuple(captions, fc.array(docEdit, { minLength: 1, maxLength: 3 })),
    ([texts, edits]) => {
      const [doc, cfg] = edited(tokenizerOf(texts), edits);
      const tok = parsedOrRejected(() => parseTokenizer(doc, cfg, DIR), TokenizerError, NAMED);
      if (tok !== null) checkUsable(tok);
    },
  );

  const number = fc.oneof(
    fc.integer({ min: -3, max: 40 }),
    fc.double(),
    fc.constantFrom(2 ** 31, 2 ** 53, 1e300, 65536, 65537, -0),
  );
  fuzzTest(
    'tokenizer: the numbers in the files (ids, lengths) set to any number',
    fc.tuple(captions, fc.nat(), number, fc.constantFrom('vocab', 'max', 'pad', 'trunc')),
    ([texts, pick, value, where]) => {
      const tok = tokenizerOf(texts);
      const doc = JSON.parse(tok.tokenizerJson()) as Record<string, Record<string, Json>>;
      const cfg = JSON.parse(tok.tokenizerConfigJson()) as Record<string, Json>;
      if (where === 'vocab') {
        const vocab = doc.model!.vocab as Record<string, Json>;
        const keys = Object.keys(vocab);
        vocab[keys[pick % keys.length]!] = value;
      } else if (where === 'max') {
        // Consistently in both files, so that only the size itself can be refused.
        cfg.model_max_length = value;
        if (pick % 2 === 0) doc.truncation!.max_length = value;
        else doc.truncation = null as unknown as Record<string, Json>;
      } else if (where === 'pad') doc.padding!.pad_id = value;
      else doc.truncation!.max_length = value;
      const back = parsedOrRejected(
        () => parseTokenizer(JSON.stringify(doc), JSON.stringify(cfg), DIR),
        TokenizerError,
        NAMED,
      );
      if (back !== null) checkUsable(back);
    },
  );

  fuzzTest(
    'tokenizer: edited bytes of either file',
    fc.tuple(captions, fc.boolean(), byteEdits),
    ([texts, config, edits]) => {
      const tok = tokenizerOf(texts);
      const files = [tok.tokenizerJson(), tok.tokenizerConfigJson()];
      const k = config ? 1 : 0;
      files[k] = new TextDecoder().decode(applyEdits(new TextEncoder().encode(files[k]), edits));
      const back = parsedOrRejected(
        () => parseTokenizer(files[0]!, files[1]!, DIR),
        TokenizerError,
        NAMED,
      );
      if (back !== null) checkUsable(back);
    },
  );

  fuzzTest(
    'tokenizer: any text encodes to a well-formed batch',
    fc.tuple(
      captions,
      fc.array(
        fc
          .oneof(fc.string({ unit: 'binary', maxLength: 60 }), fc.constantFrom(...SPECIAL_TOKENS))
          .map(String),
        { maxLength: 4 },
      ),
      fc.integer({ min: 2, max: 40 }),
    ),
    ([texts, inputs, maxLength]) => {
      const tok = tokenizerOf(texts);
      const { inputIds, attentionMask, batchSize, length } = tok.encode(inputs, { maxLength });
      assert.equal(batchSize, inputs.length);
      assert.equal(length, maxLength);
      for (let b = 0; b < batchSize; b++) {
        const ids = inputIds.subarray(b * length, (b + 1) * length);
        const mask = attentionMask.subarray(b * length, (b + 1) * length);
        const n = mask.indexOf(0) === -1 ? length : mask.indexOf(0);
        assert.ok(
          mask.subarray(n).every((m) => m === 0),
          'padding only at the end',
        );
        assert.equal(ids[0], tok.bosTokenId);
        assert.equal(ids[n - 1], tok.eosTokenId);
        assert.ok(
          ids.subarray(n).every((id) => id === tok.padTokenId),
          'pad ids after the end',
        );
        assert.ok(
          ids.every((id) => id >= 0 && id < tok.vocabSize),
          'ids in the vocabulary',
        );
      }
    },
  );
});
