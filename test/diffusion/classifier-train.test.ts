/**
 * The classifier trainer: config resolution, the held-out split, augmentation, the loss, exact
 * resume (N steps in one go == k steps, a checkpoint, a fresh trainer, N − k steps), and the
 * folder guidance loads.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { type Dataset, subsetDataset } from '../../src/data/index.js';
import {
  affineImages,
  type ClassifierTrainConfig,
  ClassifierTrainer,
  classifierScheduleMismatch,
  createScheduler,
  crossEntropy,
  exportClassifier,
  findCheckpoint,
  holdoutSplit,
  loadClassifier,
  readClassifierTrainerState,
  resolveClassifierConfig,
  runClassifierTraining,
  translateImages,
} from '../../src/diffusion/index.js';
import { tensor } from '../../src/engine/index.js';
import { assertClose } from '../engine/testing.js';
import { trainFixture } from './train-setup.js';

const fx = trainFixture('sumi-classifier-');

const TINY = {
  block_out_channels: [8, 16],
  down_block_types: ['DownBlock2D', 'AttnDownBlock2D'],
  layers_per_block: 1,
  norm_num_groups: 4,
  attention_head_dim: 8,
};

/** The first 20 images of each digit. */
let small: Dataset;
function digits(): Dataset {
  if (small === undefined) {
    const picked: number[] = [];
    const seen = new Array<number>(10).fill(0);
    for (let i = 0; i < fx.mnist8.length && picked.length < 200; i++) {
      const y = fx.mnist8.get(i).label!;
      if (seen[y]! < 20) {
        seen[y]!++;
        picked.push(i);
      }
    }
    small = subsetDataset(fx.mnist8, picked);
  }
  return small;
}

function config(train: Partial<ClassifierTrainConfig> = {}): ClassifierTrainConfig {
  return resolveClassifierConfig(
    {
      model: { ...TINY, dropout: 0.1 },
      scheduler: { num_train_timesteps: 200 },
      train: {
        data: 'mnist',
        steps: 6,
        batchSize: 8,
        lr: 3e-3,
        warmupSteps: 2,
        shift: 1,
        rotate: 10,
        zoom: 0.1,
        flip: true,
        labelSmoothing: 0.1,
        holdout: 0.1,
        ...train,
      },
    },
    digits(),
  );
}

async function bytes(out: string, files: string[]): Promise<Buffer[]> {
  const ckpt = await findCheckpoint(out);
  assert.ok(ckpt !== null, `a checkpoint in ${out}`);
  return Promise.all(files.map((f) => readFile(join(ckpt, f))));
}

async function run(out: string, cfg: ClassifierTrainConfig, stopAt?: number): Promise<void> {
  const trainer = new ClassifierTrainer(cfg, digits());
  try {
    await runClassifierTraining(trainer, { outDir: out, stopAt, settings: { saveEvery: 0 } });
  } finally {
    trainer.dispose();
  }
}

void describe('classifier config', () => {
  void test('fills in the data, the schedule and the evaluation timesteps', () => {
    const c = config();
    assert.equal(c.numClasses, 10);
    assert.equal(c.imageSize, 8);
    assert.equal(c.model._class_name, 'EncoderClassifierModel');
    assert.equal(c.model.num_classes, 10);
    assert.equal(c.model.time_conditioned, true);
    assert.equal(c.model.num_train_timesteps, 200);
    assert.deepEqual(c.evalTimesteps, [0, 50, 100, 150]);
    assert.equal(c.scheduler?._class_name, 'DDPMScheduler');
    const clean = config({ noiseAware: false });
    assert.equal(clean.scheduler, null);
    assert.equal(clean.model.time_conditioned, false);
    assert.deepEqual(clean.evalTimesteps, [0]);
  });

  void test('rejects what it cannot train, naming every problem', () => {
    const unlabelled: Dataset = { ...digits(), numClasses: undefined };
    assert.throws(
      () => resolveClassifierConfig({ train: { data: 'x' } }, unlabelled),
      /has no class labels/,
    );
    assert.throws(
      () => config({ holdout: 1, labelSmoothing: -1 }),
      /'labelSmoothing' must be a number in \[0, 1\), got -1; 'holdout' must be a number in \[0, 1\), got 1/,
    );
    assert.throws(
      () => config({ rotate: -5, zoom: 1 }),
      /'rotate' must be a number in \[0, 180\], got -5; 'zoom' must be a number in \[0, 1\), got 1/,
    );
    assert.throws(
      () => config({ rotate: NaN }),
      /'rotate' must be a number in \[0, 180\], got NaN/,
    );
    assert.throws(() => config({ evalTimesteps: [0, 200] }), /an integer in 0\.\.199/);
    assert.throws(
      () => config({ noiseAware: false, evalTimesteps: [0, 10] }),
      /0 for a clean classifier/,
    );
  });
});

void describe('classifier data', () => {
  void test('the held-out split is deterministic, disjoint and covers every class', () => {
    const ds = digits();
    const a = holdoutSplit(ds, 0.1, 3);
    assert.deepEqual(holdoutSplit(ds, 0.1, 3), a);
    assert.notDeepEqual(holdoutSplit(ds, 0.1, 4).heldOut, a.heldOut);
    assert.equal(a.heldOut.length, 20);
    assert.equal(a.train.length + a.heldOut.length, ds.length);
    assert.ok(
      a.heldOut.every((i) => !a.train.includes(i)),
      'no image is both trained on and held out',
    );
    const classes = new Set(a.heldOut.map((i) => ds.get(i).label));
    assert.equal(classes.size, 10, 'every class is held out');
    assert.deepEqual(holdoutSplit(ds, 0, 3).heldOut, []);
  });

  void test('translations move the image and repeat its edges', () => {
    const x = Float32Array.from({ length: 9 }, (_, i) => i); // 3×3: rows 0 1 2 / 3 4 5 / 6 7 8
    assert.deepEqual(
      Array.from(translateImages(x, [1, 1, 3, 3], [1, 0])),
      [0, 1, 2, 0, 1, 2, 3, 4, 5],
    );
    assert.deepEqual(
      Array.from(translateImages(x, [1, 1, 3, 3], [0, -1])),
      [1, 2, 2, 4, 5, 5, 7, 8, 8],
    );
  });

  void test('rotations and scalings: the identity map, a quarter turn, a zoom', () => {
    const x = Float32Array.from({ length: 9 }, (_, i) => i);
    const shape = [1, 1, 3, 3] as const;
    const id = { dy: 1, dx: -1, theta: 0, zoom: 1 };
    assert.deepEqual(
      Array.from(affineImages(x, shape, [id])),
      Array.from(translateImages(x, shape, [1, -1])),
    );
    // A quarter turn counter-clockwise on screen (rows down): the top row becomes the left column.
    const turned = affineImages(x, shape, [{ dy: 0, dx: 0, theta: Math.PI / 2, zoom: 1 }]);
    assertClose(turned, [2, 5, 8, 1, 4, 7, 0, 3, 6], { atol: 1e-12 });
    // ×2 about the centre: the corners read halfway to the centre.
    const zoomed = affineImages(x, shape, [{ dy: 0, dx: 0, theta: 0, zoom: 2 }]);
    assertClose(zoomed, [2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6], { atol: 1e-12 });
    // The shift comes after the turn: turn about the centre, then move one row down.
    const turnedThenShifted = affineImages(x, shape, [
      { dy: 1, dx: 0, theta: Math.PI / 2, zoom: 1 },
    ]);
    assertClose(turnedThenShifted, translateImages(turned, shape, [1, 0]), { atol: 1e-12 });
  });

  void test('rotations turn about the centre between pixels of an even-sized image', () => {
    // 4×4: the centre is (1.5, 1.5), so a half turn maps pixel (i, j) onto (3 − i, 3 − j).
    const x = Float32Array.from({ length: 16 }, (_, i) => i * i);
    const half = affineImages(x, [1, 1, 4, 4], [{ dy: 0, dx: 0, theta: Math.PI, zoom: 1 }]);
    assertClose(half, [...x].reverse(), { atol: 1e-9 });
    // A 45° turn reads between pixels: the corner (0, 0) of the output comes from row
    // 1.5 − 1.5√2 ≈ −0.62, column 1.5, above the image: the edge row repeats, and the column
    // falls halfway between x[0][1] and x[0][2]. Both channels move together.
    const two = Float32Array.from({ length: 32 }, (_, i) => (i < 16 ? x[i]! : -x[i - 16]!));
    const turned = affineImages(two, [1, 2, 4, 4], [{ dy: 0, dx: 0, theta: Math.PI / 4, zoom: 1 }]);
    assertClose([turned[0]!, turned[16]!], [(1 + 4) / 2, -(1 + 4) / 2], { atol: 1e-9 });
  });

  void test('cross-entropy with label smoothing', () => {
    const logits = tensor(Float64Array.from([1, 2, 0.5, -1, 0, 3]), [2, 3], {
      dtype: 'float64',
    });
    const labels = tensor(Int32Array.from([1, 2]), [2], { dtype: 'int32' });
    const lam = 0.2;
    let want = 0;
    const rows: [number[], number][] = [
      [[1, 2, 0.5], 1],
      [[-1, 0, 3], 2],
    ];
    for (const [row, y] of rows) {
      const lse = Math.log(row.reduce((s, v) => s + Math.exp(v), 0));
      row.forEach((v, k) => {
        const q = (k === y ? 1 - lam : 0) + lam / 3;
        want -= (q * (v - lse)) / 2;
      });
    }
    assertClose(crossEntropy(logits, labels, lam), [want], { rtol: 1e-14 });
  });
});

void describe('classifier training', () => {
  const FILES = ['classifier/diffusion_pytorch_model.safetensors', 'optimizer.safetensors'];

  void test('resumes bit for bit (noise-aware, shifts, rotations, zooms, flips, dropout, held-out split)', async () => {
    const cfg = config();
    const straight = join(fx.dir, 'straight');
    const parts = join(fx.dir, 'parts');
    await run(straight, cfg);
    await run(parts, cfg, 3);
    const ckpt = (await findCheckpoint(parts))!;
    const state = await readClassifierTrainerState(ckpt);
    assert.equal(state.step, 3);
    assert.equal(state.heldOut?.step, 3, 'the held-out score of the stop is recorded');
    const trainer = new ClassifierTrainer(state.config, digits());
    try {
      await trainer.loadCheckpoint(ckpt, state);
      await runClassifierTraining(trainer, { outDir: parts, settings: { saveEvery: 0 } });
    } finally {
      trainer.dispose();
    }
    const [a, b] = [await bytes(straight, FILES), await bytes(parts, FILES)];
    FILES.forEach((f, i) => assert.ok(a[i]!.equals(b[i]!), `${f} identical`));
    const metrics = (await readFile(join(parts, 'metrics.jsonl'), 'utf8')).trim().split('\n');
    assert.ok(metrics.length > 0, 'metrics were written');

    // The rotations and scalings are applied: without them the same run ends elsewhere.
    const shiftsOnly = join(fx.dir, 'shifts-only');
    await run(shiftsOnly, config({ rotate: 0, zoom: 0 }));
    assert.ok(!(await bytes(shiftsOnly, FILES))[0]!.equals(a[0]!), 'different weights');
  });

  void test('a checkpoint written before rotate and zoom existed reads them as 0', async () => {
    const ckpt = join(fx.dir, 'older');
    await mkdir(ckpt, { recursive: true });
    const cfg: Record<string, unknown> = { ...config() };
    delete cfg.rotate;
    delete cfg.zoom;
    const state = { format: 'sumi-classifier-trainer-state', version: 1, step: 0, config: cfg };
    await writeFile(join(ckpt, 'trainer_state.json'), JSON.stringify(state));
    const read = await readClassifierTrainerState(ckpt);
    assert.equal(read.config.rotate, 0);
    assert.equal(read.config.zoom, 0);
    assert.equal(read.config.shift, 1, 'stored keys are kept');
  });

  void test('writes a folder guidance loads, with the held-out accuracy; exports it as f16', async () => {
    const out = join(fx.dir, 'clean');
    await run(out, config({ noiseAware: false, steps: 4 }));
    const loaded = await loadClassifier(out);
    assert.equal(loaded.classifier.config.time_conditioned, false);
    assert.equal(loaded.schedulerConfig, null);
    const info = loaded.info!;
    assert.equal(info.format, 'sumi-classifier');
    assert.equal(info.noiseAware, false);
    assert.equal(info.step, 4);
    assert.equal(info.heldOut?.count, 20);
    assert.deepEqual(
      info.heldOut?.scores.map((s) => s.t),
      [0],
    );
    const acc = info.heldOut?.scores[0]?.accuracy ?? -1;
    assert.ok(acc >= 0 && acc <= 1, `accuracy ${acc} is a fraction`);

    const noisy = join(fx.dir, 'noisy');
    await run(noisy, config({ steps: 2 }));
    const exported = join(fx.dir, 'exported');
    await exportClassifier(noisy, exported, { dtype: 'F16' });
    const back = await loadClassifier(exported);
    assert.equal(back.root, exported);
    assert.deepEqual(
      back.info?.heldOut?.scores.map((s) => s.t),
      [0, 50, 100, 150],
    );
    const model200 = createScheduler('ddpm', { num_train_timesteps: 200 }).alphasCumprod;
    assert.equal(classifierScheduleMismatch(back, model200), null);
    assert.match(
      classifierScheduleMismatch(back, createScheduler('ddpm').alphasCumprod) ?? '',
      /200-step schedule, the model has 1000 steps/,
    );
    await assert.rejects(loadClassifier(fx.dir), /not a classifier folder/);
  });
});
