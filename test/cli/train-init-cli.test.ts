/**
 * `sumi train --init DIR`: a run from an exported model trains, records DIR and resumes without
 * --init; a missing folder, a folder that is no pipeline, weights that do not fit their config,
 * --init beside --lora-rank, a config whose model differs from DIR's, a --vae for a pixel model
 * and another --init on resume are each one line with exit 2, and nothing is written.
 */
import assert from 'node:assert/strict';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  assertInputError,
  cliFixture,
  type Result,
  sumiInProcess as sumi,
  TINY_CONFIG,
} from './run-sumi.js';

const fx = cliFixture('sumi-init-cli-');

const RUN = ['--steps', '2', '--batch', '4', '--save-every', '0', '--sample-every', '0'];

/** sumi train of mnist from `init` into `out`, quietly, with `extra` options. */
function fromInit(init: string, out: string, extra: string[] = []): Promise<Result> {
  return sumi([
    'train',
    '--data',
    'mnist',
    '--init',
    init,
    ...RUN,
    '--quiet',
    ...extra,
    '--out',
    out,
  ]);
}

let ready: Promise<void> | null = null;
/** tiny.json trained 2 steps and exported (f16), made once. */
function exported(): Promise<void> {
  ready ??= (async () => {
    let r = await sumi([
      'train',
      '--data',
      'mnist',
      '--config',
      fx.config,
      ...RUN,
      '--quiet',
      '--out',
      fx.file('run'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    r = await sumi([
      'export',
      '--model',
      fx.file('run'),
      '--out',
      fx.file('exp'),
      '--dtype',
      'f16',
    ]);
    assert.equal(r.code, 0, r.stderr);
  })();
  return ready;
}

void describe('sumi train --init', () => {
  void test('trains from an export, records it, and resumes without --init', async () => {
    await exported();
    const out = fx.file('more');
    let r = await sumi([
      'train',
      '--data',
      'mnist',
      '--init',
      fx.file('exp'),
      ...RUN,
      '--stop-at',
      '1',
      '--quiet',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const state = JSON.parse(
      await readFile(join(out, 'checkpoint', 'trainer_state.json'), 'utf8'),
    ) as {
      config: { init: { dir: string; weights: { sha256: string }[] } };
    };
    assert.equal(state.config.init.dir, fx.file('exp'));
    assert.equal(state.config.init.weights.length, 1);
    r = await sumi(['train', '--data', 'mnist', ...RUN, '--quiet', '--resume', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /trained to step 2\/2/);
    r = await sumi([
      'train',
      '--data',
      'mnist',
      '--init',
      fx.file('run'),
      ...RUN,
      '--quiet',
      '--resume',
      '--out',
      out,
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /--init: the checkpoint's run started from .*exp; .*run holds other weights/,
    );
  });

  void test('a missing folder, a folder that is no pipeline and misfitting weights are one line', async () => {
    await exported();
    assertInputError(
      await fromInit(fx.file('nowhere'), fx.file('o1')),
      /--init: model directory .*nowhere.* does not exist/,
      fx.file('o1'),
    );
    await mkdir(fx.file('empty'), { recursive: true });
    assertInputError(
      await fromInit(fx.file('empty'), fx.file('o2')),
      /--init: .*empty: not a model directory/,
      fx.file('o2'),
    );
    await cp(fx.file('exp'), fx.file('bad'), { recursive: true });
    const cfgPath = join(fx.file('bad'), 'unet', 'config.json');
    const cfg = JSON.parse(await readFile(cfgPath, 'utf8')) as Record<string, unknown>;
    await writeFile(cfgPath, JSON.stringify({ ...cfg, in_channels: 3 }));
    assertInputError(
      await fromInit(fx.file('bad'), fx.file('o3')),
      /bad\/unet\/diffusion_pytorch_model\.safetensors.*conv_in\.weight: expected \[8, 3, 3, 3\], found \[8, 1, 3, 3\]/,
      fx.file('o3'),
    );
  });

  void test('options and configs that do not fit are one line', async () => {
    await exported();
    const exp = fx.file('exp');
    assertInputError(
      await fromInit(exp, fx.file('o4'), ['--lora-rank', '2']),
      /--init starts a new run from a model's weights; --lora-rank adapts a --base model/,
      fx.file('o4'),
    );
    const other = fx.file('other.json');
    await writeFile(
      other,
      JSON.stringify({ ...TINY_CONFIG, model: { ...TINY_CONFIG.model, layers_per_block: 2 } }),
    );
    assertInputError(
      await fromInit(exp, fx.file('o5'), ['--config', other]),
      /--init: the model config is .*exp's \(--init\); these differ: model\.layers_per_block: .*other\.json 2, .*exp 1/,
      fx.file('o5'),
    );
    assertInputError(
      await fromInit(exp, fx.file('o6'), ['--prediction-type', 'v']),
      /scheduler\.prediction_type: given "v_prediction", .*exp "epsilon"/,
      fx.file('o6'),
    );
    assertInputError(
      await fromInit(exp, fx.file('o7'), ['--vae', fx.file('run')]),
      /--init: --vae .*run: .*exp is a pixel model/,
      fx.file('o7'),
    );
    assertInputError(
      await fromInit(exp, fx.file('o8'), ['--image-size', '16']),
      /sample_size: .*exp 8, run 16/,
      fx.file('o8'),
    );
    // The same config as DIR's gives only its train section.
    const r = await fromInit(exp, fx.file('o9'), ['--config', fx.config]);
    assert.equal(r.code, 0, r.stderr);
  });
});
