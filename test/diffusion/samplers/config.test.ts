import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { camelToSnake, snakeToCamel } from '../../../src/diffusion/samplers/config.js';
import { DPMSolverMultistepScheduler } from '../../../src/diffusion/samplers/dpm-solver.js';
import { EulerAncestralDiscreteScheduler } from '../../../src/diffusion/samplers/euler-ancestral.js';
import {
  createScheduler,
  schedulerOptionsFromConfig,
} from '../../../src/diffusion/samplers/registry.js';

const here = dirname(fileURLToPath(import.meta.url));
const SCHEDULERS = resolve(here, '../../..', '../shared/fixtures/diffusers/schedulers');

function fixtureConfigs(): { name: string; cls: string; config: Record<string, unknown> }[] {
  let files: string[];
  try {
    files = readdirSync(SCHEDULERS).filter((f) => f.endsWith('.json') && f !== 'index.json');
  } catch {
    return [];
  }
  return files.map((f) => {
    const j = JSON.parse(readFileSync(join(SCHEDULERS, f), 'utf8')) as {
      scheduler_class: string;
      config: Record<string, unknown>;
    };
    return { name: f, cls: j.scheduler_class, config: j.config };
  });
}

const sorted = (o: Record<string, unknown>): string =>
  JSON.stringify(Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b))));

void describe('diffusers scheduler configs', () => {
  void it('converts names both ways', () => {
    assert.equal(snakeToCamel('rescale_betas_zero_snr'), 'rescaleBetasZeroSnr');
    assert.equal(snakeToCamel('predict_x0'), 'predictX0');
    assert.equal(camelToSnake('predictX0'), 'predict_x0');
    assert.equal(camelToSnake('lambdaMinClipped'), 'lambda_min_clipped');
  });

  const configs = fixtureConfigs();
  void it('reads every fixture config and writes it back unchanged', () => {
    assert.ok(configs.length > 0, 'no scheduler fixture configs found (../shared/fixtures)');
    for (const { name, cls, config } of configs) {
      const s = createScheduler(cls, config);
      assert.equal(s.className, cls);
      const written = s.toDiffusersConfig();
      const expected = Object.fromEntries(
        Object.entries(config).filter(([k]) => k !== '_diffusers_version'),
      );
      assert.equal(sorted(written), sorted(expected), name);
    }
  });

  void it("maps values: '-inf' strings, camelCase keys, enum options", () => {
    const s = createScheduler('DPMSolverMultistepScheduler', {
      lambda_min_clipped: '-inf',
      solverOrder: 3,
      prediction_type: 'v_prediction',
    });
    assert.ok(s instanceof DPMSolverMultistepScheduler, `created a ${s.constructor.name}`);
    assert.equal(s.config['lambdaMinClipped'], -Infinity);
    assert.equal(s.config['solverOrder'], 3);
    assert.equal(s.toDiffusersConfig()['lambda_min_clipped'], '-inf');
    const clipped = createScheduler('dpmpp-2m', { lambda_min_clipped: -5.1 });
    assert.equal(clipped.config['lambdaMinClipped'], -5.1);
  });

  void it('names every unsupported non-default key in one error', () => {
    assert.throws(
      () => createScheduler('euler', { use_beta_sigmas: true, interpolation_type: 'log_linear' }),
      (e: Error) =>
        /use_beta_sigmas/.test(e.message) &&
        /interpolation_type/.test(e.message) &&
        /EulerDiscreteScheduler/.test(e.message),
    );
    assert.throws(
      () => createScheduler('ddim', { frobnicate: 3 }),
      /'frobnicate' is not a DDIMScheduler option/,
    );
    assert.throws(
      () => createScheduler('ddim', { clip_sample: 'yes' }),
      /'clip_sample' must be a boolean/,
    );
    assert.throws(
      () => createScheduler('ddim', { prediction_type: 'flow' }),
      /prediction_type 'flow'/,
    );
  });

  void it("accepts unsupported keys at their default, and ignores other classes' keys", () => {
    // a Stable Diffusion PNDM config loaded into Euler, as `EulerDiscreteScheduler.from_config`
    const sd = {
      _class_name: 'PNDMScheduler',
      beta_schedule: 'scaled_linear',
      beta_start: 0.00085,
      beta_end: 0.012,
      skip_prk_steps: true,
      set_alpha_to_one: false,
      clip_sample: false,
      use_beta_sigmas: false,
      some_future_flag: null,
    };
    const r = schedulerOptionsFromConfig('euler', sd);
    assert.equal(r.className, 'EulerDiscreteScheduler');
    assert.deepEqual(r.ignored.sort(), [
      '_class_name',
      'clip_sample',
      'set_alpha_to_one',
      'skip_prk_steps',
      'some_future_flag',
    ]);
    assert.equal(r.options['betaSchedule'], 'scaled_linear');
  });

  void it('knows the CLI names', () => {
    assert.ok(
      createScheduler('euler-a') instanceof EulerAncestralDiscreteScheduler,
      "'euler-a' names Euler ancestral",
    );
    const sde = createScheduler('dpmpp-2m-sde', { algorithm_type: 'dpmsolver++' });
    assert.equal(sde.config['algorithmType'], 'sde-dpmsolver++');
    for (const n of ['ddpm', 'ddim', 'euler', 'heun', 'dpmpp-2m', 'lms', 'pndm', 'unipc']) {
      assert.ok(createScheduler(n).className.endsWith('Scheduler'), n);
    }
    assert.throws(() => createScheduler('k-lms'), /unknown scheduler 'k-lms'/);
  });
});
