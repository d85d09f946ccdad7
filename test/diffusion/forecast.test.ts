import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { parseCsv, seriesFromTable, type TimeSeries } from '../../src/data/series.js';
import { tidy } from '../../src/engine/index.js';
import { TimeGradModel } from '../../src/nn/models/timegrad.js';
import { forecastLoss, forecastSamples, scaledWindow } from '../../src/diffusion/forecast.js';
import {
  type ForecastTrainConfig,
  forecastModelConfig,
  loadForecaster,
  scheduleOf,
  trainForecaster,
} from '../../src/diffusion/forecast-trainer.js';
import { TIMEGRAD_SCHEDULER_CONFIG } from '../../src/diffusion/forecast.js';
import { createScheduler } from '../../src/diffusion/samplers/index.js';

const root = mkdtempSync(join(tmpdir(), 'sumi-forecast-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** 120 days of a weekly cycle around 20 (two targets, the second doubled). */
function weekly(): TimeSeries {
  const rows = Array.from({ length: 120 }, (_, i) => {
    const day = new Date(Date.UTC(2021, 0, 1 + i)).toISOString().slice(0, 10);
    const v = 20 + 3 * Math.sin((2 * Math.PI * i) / 7) + 0.1 * (i % 3);
    return `${day},${v},${2 * v}`;
  });
  const t = parseCsv(`date,a,b\n${rows.join('\n')}\n`, 'weekly.csv');
  return seriesFromTable(t, { targets: ['a', 'b'] }, 'weekly.csv');
}

const CONFIG: ForecastTrainConfig = {
  data: 'weekly.csv',
  targets: ['a', 'b'],
  timestamp: null,
  fill: 'none',
  context: 8,
  horizon: 4,
  lags: [1, 7],
  scaling: 'mean',
  steps: 4,
  batchSize: 3,
  lr: 1e-2,
  seed: 3,
  saveEvery: 2,
  maxRows: 16,
  model: { num_layers: 1, hidden_size: 6, residual_layers: 2, residual_channels: 4 },
};

void describe('TimeGrad forecasting', () => {
  const s = weekly();

  void it('scales each window by its context and builds a finite loss with gradients', () => {
    const mc = forecastModelConfig(s, CONFIG);
    assert.deepEqual(mc.time_features, ['day_of_week', 'day_of_year']);
    const w = scaledWindow(s, mc, 20);
    // mean |x| over the 8 context rows [12, 20) of target a.
    let m = 0;
    for (let t = 12; t < 20; t++) m += s.values[t * 2]!;
    assert.ok(Math.abs(w.scale.scale[0]! - m / 8) < 1e-12, `scale ${w.scale.scale[0]}`);
    // Row 0 of the window is series row 20 − 8 − 7 = 5.
    assert.ok(Math.abs(w.values[0]! - s.values[10]! / w.scale.scale[0]!) < 1e-12, 'row 5, a');
    tidy(() => {
      const model = new TimeGradModel(mc);
      const loss = forecastLoss(model, scheduleOf(TIMEGRAD_SCHEDULER_CONFIG), s, [w, w], {
        seed: 1,
        maxRows: 10,
      });
      assert.ok(Number.isFinite(loss.itemSync()), 'finite loss');
      loss.backward();
      const noGrad = model.namedParameters().filter(([, p]) => p.grad === null);
      // The zero-initialised output layer passes no gradient down on the first step: only the
      // output layer's own parameters are guaranteed one.
      assert.ok(!noGrad.some(([n]) => n.startsWith('epsilon.output_projection')), 'output grads');
    });
  });

  void it('resumes from a checkpoint to the same weights as an uninterrupted run', async () => {
    const whole = join(root, 'whole');
    const parts = join(root, 'parts');
    await trainForecaster(s, CONFIG, whole);
    await trainForecaster(s, { ...CONFIG, steps: 2 }, parts);
    const resumed = await trainForecaster(s, CONFIG, parts);
    assert.equal(resumed.step, 4);
    const w = (dir: string): Buffer =>
      readFileSync(join(dir, 'diffusion_pytorch_model.safetensors'));
    assert.ok(w(whole).equals(w(parts)), 'same weights bytes');
    await assert.rejects(
      trainForecaster(s, { ...CONFIG, lr: 0.5 }, parts),
      /the checkpoint is of another run \(lr: 0.01 → 0.5\)/,
    );
  });

  void it('samples N paths per origin, in the series units, the same for the same seed', async () => {
    const f = await loadForecaster(join(root, 'whole'));
    assert.equal(f.info.data, 'weekly.csv');
    const scheduler = createScheduler('ddim', f.schedulerConfig);
    const opts = { numSamples: 5, numInferenceSteps: 4, seed: 11 };
    const a = forecastSamples(f.model, scheduler, s, [100, 120], opts);
    assert.deepEqual([a.length, a[0]!.length, a[1]![4]!.length], [2, 5, 4 * 2]);
    const b = forecastSamples(f.model, scheduler, s, [100, 120], opts);
    assert.deepEqual(a, b);
    assert.ok(
      a.flat().every((p) => p.every(Number.isFinite)),
      'finite paths',
    );
  });
});
