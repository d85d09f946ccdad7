import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  bool,
  ConfigError,
  type ConfigSchema,
  configToJson,
  int,
  listOf,
  nullable,
  oneOf,
  oneOrList,
  only,
  perBlock,
  resolveConfig,
} from '../../../src/nn/models/config.js';

interface Toy {
  width: number;
  kind: 'a' | 'b';
  flag: boolean;
  extra: null;
  sizes: readonly number[];
  heads: number | readonly number[];
  maybe: number | null;
}

const schema: ConfigSchema<Toy> = {
  className: 'Toy',
  defaults: { width: 4, kind: 'a', flag: false, extra: null, sizes: [1, 2], heads: 8, maybe: null },
  rules: {
    width: int(1),
    kind: oneOf(['a', 'b'], ['c']),
    flag: bool,
    extra: only(null),
    sizes: listOf(int(1)),
    heads: oneOrList(int(1)),
    maybe: nullable(int(0)),
  },
  check: (c) => (c.sizes.length > 3 ? ['sizes: too many'] : []),
};

void describe('resolveConfig', () => {
  void it('fills in defaults and keeps metadata apart', () => {
    const { config, meta } = resolveConfig(schema, {
      _class_name: 'Toy',
      _diffusers_version: '0.1',
      width: 7,
    });
    assert.deepEqual(config, { ...schema.defaults, width: 7 });
    assert.deepEqual(meta, { _class_name: 'Toy', _diffusers_version: '0.1' });
  });

  void it('names every unknown key and every bad value in one error', () => {
    assert.throws(
      () => resolveConfig(schema, { width: 0, kind: 'c', extra: 3, bogus: 1, other: 2 }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        const m = e.message;
        for (const s of [
          'bogus: unknown key',
          'other: unknown key',
          'width: expected an integer >= 1, got 0',
          'kind: "c" is not supported (supported: "a", "b")',
          'extra: only null is supported, got 3',
        ]) {
          assert.ok(m.includes(s), `${m} lacks ${s}`);
        }
        return true;
      },
    );
  });

  void it('rejects another class and runs the cross-key check', () => {
    assert.throws(() => resolveConfig(schema, { _class_name: 'Other' }), /_class_name: "Other"/);
    assert.throws(() => resolveConfig(schema, { sizes: [1, 2, 3, 4] }), /sizes: too many/);
    assert.throws(() => resolveConfig(schema, [1]), /expected a JSON object/);
  });

  void it('accepts a value or a list where diffusers does', () => {
    assert.equal(resolveConfig(schema, { heads: [1, 2] }).config.heads.toString(), '1,2');
    assert.throws(() => resolveConfig(schema, { heads: [1, 0] }), /heads: item 1/);
    assert.deepEqual(perBlock(3, 2), [3, 3]);
    assert.deepEqual(perBlock([1, 2], 2), [1, 2]);
  });
});

void describe('configToJson', () => {
  void it('writes _class_name and _diffusers_version first and sorts the keys', () => {
    const text = configToJson('Toy', { width: 2, alpha: [1, 2] });
    const keys = Object.keys(JSON.parse(text) as object);
    assert.deepEqual(keys, ['_class_name', '_diffusers_version', 'alpha', 'width']);
    assert.ok(text.endsWith('\n'), "text.endsWith('\\n')");
  });
});
