import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { assertClose } from '../engine/testing.js';
import {
  constantWithWarmupLr,
  cosineWithWarmupLr,
  getLrSchedule,
  linearWithWarmupLr,
} from '../../src/nn/lr-schedule.js';

/** diffusers.optimization's lr_lambda functions, transcribed (LambdaLR multiplies by base lr). */
const ref = {
  constantWithWarmup: (step: number, warmup: number): number =>
    step < warmup ? step / Math.max(1, warmup) : 1,
  cosine: (step: number, warmup: number, total: number, cycles = 0.5): number => {
    if (step < warmup) return step / Math.max(1, warmup);
    const progress = (step - warmup) / Math.max(1, total - warmup);
    return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * cycles * 2 * progress)));
  },
  linear: (step: number, warmup: number, total: number): number =>
    step < warmup
      ? step / Math.max(1, warmup)
      : Math.max(0, (total - step) / Math.max(1, total - warmup)),
};

const steps = Array.from({ length: 130 }, (_, i) => i);

void describe('learning-rate schedules', () => {
  void it('constant with warmup: 0, γ/w, 2γ/w, … then γ', () => {
    const o = { lr: 2e-4, warmupSteps: 4 };
    assertClose(
      [0, 1, 2, 3, 4, 5, 100].map((s) => constantWithWarmupLr(s, o)),
      [0, 0.5e-4, 1e-4, 1.5e-4, 2e-4, 2e-4, 2e-4],
      { rtol: 1e-15 },
    );
    assert.equal(constantWithWarmupLr(0, { lr: 1 }), 1);
  });

  void it('cosine with warmup matches diffusers get_cosine_schedule_with_warmup', () => {
    const o = { lr: 1e-3, warmupSteps: 10, trainingSteps: 110 };
    for (const s of steps) {
      assert.equal(cosineWithWarmupLr(s, o), o.lr * ref.cosine(s, 10, 110), `step ${s}`);
    }
    assert.equal(cosineWithWarmupLr(10, o), 1e-3);
    assertClose(cosineWithWarmupLr(60, o), 0.5e-3, { rtol: 1e-12 });
    assertClose(cosineWithWarmupLr(110, o), 0, { atol: 1e-18 });
  });

  void it('cosine with numCycles and no warmup', () => {
    const o = { lr: 1, trainingSteps: 100, numCycles: 1.5 };
    for (const s of steps) assert.equal(cosineWithWarmupLr(s, o), ref.cosine(s, 0, 100, 1.5));
  });

  void it('cosine decays to the floor minLr', () => {
    const o = { lr: 1e-3, warmupSteps: 10, trainingSteps: 110, minLr: 1e-4 };
    assert.equal(cosineWithWarmupLr(5, o), 0.5e-3, 'warmup is not floored');
    assertClose(cosineWithWarmupLr(10, o), 1e-3, { rtol: 1e-15 });
    assertClose(cosineWithWarmupLr(60, o), 1e-4 + 0.9e-3 / 2, { rtol: 1e-12 });
    assertClose(cosineWithWarmupLr(110, o), 1e-4, { rtol: 1e-12 });
    for (let s = 10; s <= 110; s++)
      assert.ok(cosineWithWarmupLr(s, o) >= 1e-4 - 1e-18, `step ${s}: never below the floor`);
  });

  void it('linear with warmup', () => {
    const o = { lr: 3, warmupSteps: 5, trainingSteps: 25 };
    for (const s of steps) assert.equal(linearWithWarmupLr(s, o), 3 * ref.linear(s, 5, 25));
    assert.equal(linearWithWarmupLr(15, o), 1.5);
  });

  void it('getLrSchedule by diffusers name, pure in the step', () => {
    const o = { lr: 1, warmupSteps: 10, trainingSteps: 50 };
    const cos = getLrSchedule('cosine', o);
    assert.equal(cos(30), cos(30));
    assert.equal(cos(30), ref.cosine(30, 10, 50));
    assert.equal(getLrSchedule('constant', o)(0), 1);
    assert.equal(getLrSchedule('constant_with_warmup', o)(5), ref.constantWithWarmup(5, 10));
    assert.equal(getLrSchedule('linear', o)(30), ref.linear(30, 10, 50));
  });

  void it('rejects negative and fractional steps', () => {
    assert.throws(() => constantWithWarmupLr(-1, { lr: 1 }), /non-negative integer/);
    assert.throws(() => cosineWithWarmupLr(1.5, { lr: 1, trainingSteps: 3 }), /non-negative/);
  });
});
