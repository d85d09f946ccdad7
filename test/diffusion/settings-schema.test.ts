/**
 * The trainers' settings share one checker (trainer/schema.ts) over the model configs' rules: every
 * unknown key and bad value in one TrainConfigError, each naming the key, what it accepts and the
 * value found.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { checkTrainValues, TrainConfigError } from '../../src/diffusion/index.js';
import {
  checkSettings,
  checkValues,
  settingsProblems,
} from '../../src/diffusion/trainer/schema.js';
import { int, listOf, nullable, positive } from '../../src/nn/models/config.js';

const rules = { steps: int(1), clip: nullable(positive), ts: listOf(int(0)) };

void describe('settingsProblems', () => {
  void test('names every unknown key and bad value; undefined values are absent', () => {
    assert.deepEqual(settingsProblems(rules, { steps: 2, clip: null, ts: [0], x: undefined }), []);
    assert.deepEqual(
      settingsProblems(rules, { steps: 0, clip: NaN, ts: [0, -1], toString: 1, bogus: 2 }),
      [
        "'steps' must be an integer >= 1, got 0",
        "'clip' must be a positive number or null, got NaN",
        "'ts': item 1: expected an integer >= 0, got -1",
        "unknown key 'toString'",
        "unknown key 'bogus'",
      ],
    );
  });

  void test('checkValues and checkSettings throw one TrainConfigError after the source', () => {
    assert.throws(
      () => checkValues(rules, { steps: 0, bogus: 1 }, '--steps'),
      (e: unknown) =>
        e instanceof TrainConfigError &&
        e.message === "--steps: 'steps' must be an integer >= 1, got 0; unknown key 'bogus'",
    );
    const schema = {
      defaults: {},
      rules,
      check: (c: { steps: number }) => (c.steps > 5 ? ['steps > 5'] : []),
    };
    assert.throws(
      () => checkSettings(schema, { steps: 9, clip: null, ts: [0] }),
      (e: unknown) => e instanceof TrainConfigError && e.message === 'steps > 5',
    );
    // The checks across keys run once every key passes its rule.
    assert.throws(
      () => checkSettings(schema, { steps: 1.5, clip: null, ts: [0] }),
      (e: unknown) => e instanceof TrainConfigError && !/steps > 5/.test(e.message),
    );
  });

  void test('checkTrainValues reads the diffusion trainer schema', () => {
    assert.deepEqual(checkTrainValues({ lr: 1e-4, seed: 3 }, 'train'), { lr: 1e-4, seed: 3 });
    assert.throws(
      () => checkTrainValues({ lrSchedule: 'step' }, 'train'),
      /'lrSchedule' must be one of "constant", "constant_with_warmup", "cosine", "linear", got "step"/,
    );
  });
});
