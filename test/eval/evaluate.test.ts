/**
 * Model evaluation on tiny random models (8×8 MNIST): the reference set is the classifier's own
 * held-out split, cached and read back bit for bit; conditions per model kind; sampling is
 * reproducible and on the 8-bit grid; a sample folder scores exactly like the samples it holds;
 * bad inputs are refused; bits/dim; the sweep and its chart.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { encodePng, loadDataset } from '../../src/data/index.js';
import {
  classConditioning,
  type ConditionSource,
  createSampler,
  holdoutSplit,
  loadClassifier,
  type LoadedPipeline,
  loadPipeline,
  type ModelInfo,
  predictionTypeOf,
  unconditional,
} from '../../src/diffusion/index.js';
import { SamplingReplicas } from '../../src/diffusion/sampling-replicas.js';
import { cpuBackend, setDefaultBackend, tensor } from '../../src/engine/index.js';
import {
  batchSeed,
  checkEnoughSamples,
  classLabels,
  isSingleClass,
  mixLabels,
  modelNll,
  planConditions,
  type SampleRequest,
  sampleBatches,
  scoreSamples,
  spreadIndices,
} from '../../src/eval/evaluate.js';
import {
  classifierTrainingData,
  defaultCacheDir,
  type EvalClassifier,
  evalClassifier,
  EvalInputError,
  FeatureCollector,
  loadReference,
  type Reference,
  referenceFloor,
  referenceOfClass,
  classifyFeatures,
  datasetFeatures,
  referenceSplit,
  sampleFloor,
  spreadPrecisionRecall,
  spreadRows,
} from '../../src/eval/reference.js';
import {
  quantizeToByte,
  readSampleFolder,
  readSampleImages,
  SampleFolderWriter,
  writeSampleFolder,
} from '../../src/eval/sample-folder.js';
import { runSweep, sweepSvg } from '../../src/eval/sweep.js';
import { writeTinyClassifier, writeTinyModel } from '../../src/eval/test-models.js';

let dir = '';
let c: EvalClassifier;
let p: LoadedPipeline;
let ref: Reference;

before(async () => {
  setDefaultBackend(cpuBackend());
  dir = await mkdtemp(join(tmpdir(), 'sumi-eval-'));
  c = await evalClassifier(await loadClassifier(await writeTinyClassifier(join(dir, 'cls'))));
  p = await loadPipeline(await writeTinyModel(join(dir, 'model')));
  ref = await loadReference(c, 'mnist', { cacheDir: join(dir, 'cache') });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function request(
  values: SampleRequest['values'],
  extra: Partial<SampleRequest> = {},
): SampleRequest {
  return {
    model: p.model,
    condition: p.condition,
    scheduler: createSampler('ddim', p.schedulerConfig),
    predictionType: predictionTypeOf(p.schedulerConfig),
    values,
    numInferenceSteps: 3,
    seed: 4,
    batchSize: 8,
    ...extra,
  };
}

/** The samples of `req`, in order; `afterBatch` runs after each batch is taken. */
async function sampleValues(
  req: SampleRequest,
  afterBatch?: () => Promise<unknown>,
): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  await sampleBatches(req, async (b) => {
    parts.push(Float32Array.from(b.values));
    await afterBatch?.();
  });
  const out = new Float32Array(parts.reduce((s, a) => s + a.length, 0));
  let at = 0;
  for (const a of parts) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

void describe('the reference set', () => {
  void test("is the classifier's held-out split, from sumi.json or trainer_state.json", async () => {
    assert.deepEqual(
      { ...c.training, source: '' },
      { data: 'mnist', holdout: 0.05, seed: 3, source: '' },
    );
    const { dataset, split } = referenceSplit('mnist', c);
    assert.equal(split.kind, 'holdout');
    assert.deepEqual(split.indices, holdoutSplit(dataset, 0.05, 3).heldOut);
    assert.equal(split.indices.length, 501, 'round(0.05 n_c) of each digit');
    assert.equal(split.seenByClassifier, false);
    // A checkpoint's trainer_state.json wins over sumi.json.
    const root = join(dir, 'cls');
    await writeFile(
      join(root, 'trainer_state.json'),
      JSON.stringify({
        format: 'sumi-classifier-trainer-state',
        version: 1,
        config: { data: 'mnist', holdout: 0.1, seed: 7 },
      }),
    );
    try {
      const t = await classifierTrainingData({ info: c.info, root });
      assert.deepEqual([t?.data, t?.holdout, t?.seed], ['mnist', 0.1, 7]);
    } finally {
      await rm(join(root, 'trainer_state.json'));
    }
    const all = referenceSplit('mnist', { ...c, training: { ...c.training!, holdout: 0 } });
    assert.equal(all.split.kind, 'all');
    assert.equal(all.split.seenByClassifier, true);
    assert.match(all.split.description, /trained on them/);
  });

  void test('features are cached and read back bit for bit; --no-cache writes nothing', async () => {
    assert.equal(ref.cache.source, 'computed');
    assert.ok(ref.cache.path !== null && existsSync(ref.cache.path), 'the cache file exists');
    const again = await loadReference(c, 'mnist', { cacheDir: join(dir, 'cache') });
    assert.equal(again.cache.source, 'cache');
    assert.deepEqual(again.classes.features, ref.classes.features);
    assert.deepEqual(again.stats, ref.stats);
    assert.deepEqual(again.classes.predicted, ref.classes.predicted);
    const fresh = await loadReference(c, 'mnist', { cacheDir: null });
    assert.deepEqual(fresh.classes.features.data, ref.classes.features.data);
    assert.equal(fresh.cache.path, null);
  });

  void test('the floor splits every class in halves', () => {
    const f = referenceFloor(ref);
    assert.ok(f !== null && f.distance >= 0 && f.distance < 0.05, `floor ${f?.distance}`);
    assert.equal(f.nA + f.nB, 501);
    assert.ok(Math.abs(f.nA - f.nB) <= 10, 'at most one image more per class in A');
    // Half A scored against half B: real digits cover each other's manifold.
    assert.deepEqual([f.k, f.prRows], [3, Math.min(f.nA, f.nB)]);
    assert.ok(f.precision > 0.75 && f.precision < 1, `precision ${f.precision}`);
    assert.ok(f.recall > 0.75 && f.recall < 1, `recall ${f.recall}`);
  });

  void test('precision and recall on equally many rows spread over each set', () => {
    const f = ref.classes.features;
    // A set against itself: every point lies in its own k-NN ball.
    const self = spreadPrecisionRecall(f, f);
    assert.deepEqual(self, { precision: 1, recall: 1, k: 3, rows: 501 });
    assert.deepEqual([...spreadRows(10, 4)], [0, 2, 5, 7]);
    const capped = spreadPrecisionRecall(f, f, { maxRows: 100, k: 5 });
    assert.deepEqual([capped.rows, capped.k, capped.precision], [100, 5, 1]);
  });

  void test('with a test split, the floor is n images the classifier held out of the train split', async () => {
    const cf: EvalClassifier = {
      ...c,
      training: { data: 'mnist-full', holdout: 0.01, seed: 2, source: '' },
    };
    const { split, floorImages } = referenceSplit('mnist-full', cf);
    assert.deepEqual([split.kind, split.indices.length], ['test', 10000]);
    assert.ok(floorImages !== null, 'held-out training images for the floor');
    assert.equal(floorImages.dataset.name, 'mnist-full/train');
    assert.deepEqual(floorImages.indices, holdoutSplit(floorImages.dataset, 0.01, 2).heldOut);
    const counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
    const heldOut = counts.reduce((a, n) => a + Math.round(0.01 * n), 0);
    assert.equal(floorImages.indices.length, heldOut, 'round(0.01 n_c) of each digit');
    const opts = { cacheDir: join(dir, 'cache') };
    const r = await loadReference(cf, 'mnist-full', opts);
    const f = await sampleFloor(cf, r, 200, opts);
    assert.ok(f !== null && f.kind === 'held-out', `floor ${f?.kind}`);
    assert.deepEqual([f.nA, f.nB], [200, 10000]);
    assert.ok(f.distance > 0 && f.distance < 0.2, `floor ${f.distance}`);
    const again = await sampleFloor(cf, r, 200, opts);
    assert.equal(again!.distance, f.distance, 'the same images (from the cache)');
    assert.equal(again!.precision, f.precision, 'the same features (from the cache)');
    const uncached = await sampleFloor(cf, r, 200, { cacheDir: null });
    assert.deepEqual(
      [uncached!.distance, uncached!.precision, uncached!.recall],
      [f.distance, f.precision, f.recall],
    );
    // Its precision and recall: those 200 real images scored exactly as 200 samples are.
    const picked = Array.from(spreadRows(floorImages.indices.length, 200), (i) => {
      return floorImages.indices[i]!;
    });
    const asSamples = scoreSamples(
      classifyFeatures(cf, datasetFeatures(cf, floorImages.dataset, picked)),
      r,
      null,
      10,
      { kidSubsets: 2 },
    );
    assert.equal(asSamples.fd, f.distance);
    assert.deepEqual(
      [f.precision, f.recall, f.k, f.prRows],
      [asSamples.precision, asSamples.recall, 3, 200],
    );
    assert.ok(
      f.precision > 0.75 && f.recall > 0.75,
      `precision ${f.precision}, recall ${f.recall}`,
    );
    const more = await sampleFloor(cf, r, 5000, opts);
    assert.equal(more!.nA, heldOut, 'at most every held-out image');
    assert.ok(more!.distance < f.distance, 'FD falls with more real images');
    // One class: the held-out images of that class only.
    const three = referenceOfClass(r, 3, cf.numFeatures);
    assert.ok(
      three.floorImages!.indices.every((i) => three.floorImages!.dataset.get(i).label === 3),
      'only threes',
    );
    assert.equal(three.floorImages!.indices.length, Math.round(0.01 * 6131));
    // Without held-out images the floor halves the reference set.
    const halves = await sampleFloor(c, ref, 200, opts);
    assert.equal(halves!.kind, 'halves');
    assert.equal(halves!.distance, referenceFloor(ref)!.distance);
  });

  void test('the cache folder: $SUMI_CACHE, else $XDG_CACHE_HOME/sumi, else ~/.cache/sumi', () => {
    assert.equal(defaultCacheDir({ SUMI_CACHE: '/c' }), '/c/stats');
    assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/x' }), '/x/sumi/stats');
    assert.match(defaultCacheDir({}), /\.cache\/sumi\/stats$/);
  });

  void test('a dataset of another image size than the classifier is refused', () => {
    assert.throws(
      () => referenceSplit('fashion-mnist', c),
      (e: unknown) =>
        e instanceof EvalInputError &&
        /takes 1x8x8 images; fashion-mnist has 1x28x28/.test(e.message),
    );
  });
});

void describe('conditions', () => {
  /** A 10-class model with a null class. */
  const info: ModelInfo = {
    format: 'sumi-model',
    version: 1,
    imageSize: 8,
    channels: 1,
    numClasses: 10,
    nullClassId: 10,
  };
  const cls = { condition: classConditioning({ numClasses: 10, nullClassId: 10 }), info };

  void test('class models cycle through the classes or take one; text needs class prompts', () => {
    const plan = planConditions(cls, { n: 12 });
    assert.deepEqual(plan.values, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    assert.deepEqual(plan.requested, plan.values);
    assert.deepEqual(planConditions(cls, { n: 3, cls: '7' }).values, [7, 7, 7]);
    assert.throws(() => planConditions(cls, { n: 3, cls: '10' }), EvalInputError);
    assert.throws(
      () => planConditions(cls, { n: 3, evalClasses: 5 }),
      /5 classes, the model's requests 10/,
    );
    const text = { condition: { ...unconditional(), kind: 'text' } as ConditionSource, info: null };
    assert.throws(() => planConditions(text, { n: 2 }), /--prompts-from-classes/);
    const prompts = planConditions(text, { n: 2, promptsFromClasses: true, dataset: 'mnist' });
    assert.deepEqual(prompts.values, ['a handwritten zero', 'a handwritten one']);
    assert.deepEqual(prompts.requested, [0, 1]);
    const none = { condition: unconditional(), info: null };
    assert.throws(() => planConditions(none, { n: 2, cls: '3' }), /--guide-classifier/);
    const guided = planConditions(none, { n: 3, guide: { numClasses: 4 } });
    assert.deepEqual(
      [guided.values, guided.guideLabels],
      [
        [null, null, null],
        [0, 1, 2],
      ],
    );
  });

  void test("--class reference: the classes in the reference set's proportions, interleaved", () => {
    // The MNIST test split's digits.
    const counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];
    const total = 10000;
    const labels = mixLabels(1000, counts);
    const seen = new Array<number>(10).fill(0);
    let worst = 0;
    labels.forEach((y, i) => {
      seen[y]!++;
      for (let c = 0; c < 10; c++) {
        worst = Math.max(worst, Math.abs(seen[c]! - ((i + 1) * counts[c]!) / total));
      }
    });
    assert.deepEqual(seen, [98, 114, 103, 101, 98, 89, 96, 103, 97, 101]);
    assert.ok(worst < 1, `every prefix within one image of its share: ${worst}`);
    // Equal counts: the classes in turn; a class with no image is never drawn.
    assert.deepEqual(mixLabels(12, new Array<number>(10).fill(7)), classLabels('all', 12, 10));
    assert.deepEqual(mixLabels(6, [1, 0, 2]), [2, 0, 2, 2, 0, 2]);
    assert.throws(() => mixLabels(3, [0, 0]), EvalInputError);
    const plan = planConditions(cls, { n: 1000, cls: 'reference', referenceCounts: counts });
    assert.deepEqual(plan.values, labels);
    assert.match(
      plan.description,
      /proportions \(98, 114, 103, 101, 98, 89, 96, 103, 97, 101 images\)/,
    );
    assert.throws(
      () => planConditions(cls, { n: 3, cls: 'reference', referenceCounts: null }),
      /--class reference: the reference set has no class labels/,
    );
    assert.throws(
      () => planConditions(cls, { n: 3, cls: 'reference', referenceCounts: [1, 2] }),
      /the reference set has 2 classes, the model 10/,
    );
    assert.equal(isSingleClass('reference'), false);
    assert.equal(isSingleClass('all'), false);
    assert.equal(isSingleClass('3'), true);
  });
});

void describe('sampling', () => {
  void test('is reproducible, on the 8-bit grid, and each seed draws other noise', async () => {
    const values = Array.from({ length: 10 }, (_, i) => i % 10);
    const a = await sampleValues(request(values));
    const b = await sampleValues(request(values));
    assert.deepEqual(a, b);
    for (const v of a) {
      const k = (v + 1) * 127.5;
      assert.ok(Math.abs(k - Math.round(k)) < 1e-3 && k >= 0 && k <= 255, `${v} on the grid`);
    }
    const other = await sampleValues(request(values, { seed: 5 }));
    assert.notDeepEqual(other, a);
    assert.equal(batchSeed(4, 1), 4 * 2 ** 20 + 1);
    assert.throws(() => batchSeed(2 ** 40, 0), EvalInputError);
  });

  void test('the same samples when a replica computes half of each model call', async () => {
    // Every replica sampleBatches starts; after the first batch the run waits until it is ready,
    // so the later batches are split between the two threads.
    const start = SamplingReplicas.start.bind(SamplingReplicas);
    let replica: SamplingReplicas | null = null;
    let split = 0;
    SamplingReplicas.start = (denoiser) => {
      replica = start(denoiser);
      const r = replica;
      if (r !== null) {
        const denoise = r.denoise.bind(r);
        r.denoise = (x, t, cond) => {
          if (r.threads === 2) split++;
          return denoise(x, t, cond);
        };
      }
      return r;
    };
    try {
      const values = Array.from({ length: 24 }, (_, i) => i % 10);
      const run = (replicas: number): Promise<Float32Array> =>
        sampleValues(request(values, { replicas }), async () => replica?.ready());
      const one = await run(1);
      assert.equal(replica, null, 'replicas: 1 starts none');
      const two = await run(2);
      assert.ok(replica !== null, 'replicas: 2 starts one');
      assert.ok(split > 0, 'model calls were split between the threads');
      assert.deepEqual(two, one);
      await assert.rejects(run(3), /sampling threads must be 1 or 2, got 3/);
    } finally {
      SamplingReplicas.start = start;
    }
  });

  void test('classifier guidance changes the samples; a guide of another image size is refused', async () => {
    const guidePath = await writeTinyClassifier(join(dir, 'guide'), { noiseAwareT: 100 });
    const loaded = await loadClassifier(guidePath);
    const values = new Array<number>(4).fill(3);
    const labels = [0, 1, 2, 3];
    const plain = await sampleValues(
      request(values, { guide: { loaded, scale: 0 }, guideLabels: labels }),
    );
    const steered = await sampleValues(
      request(values, { guide: { loaded, scale: 3000 }, guideLabels: labels }),
    );
    assert.deepEqual(plain, await sampleValues(request(values)), 'scale 0 is no guidance');
    assert.notDeepEqual(steered, plain);
    const big = await loadClassifier(await writeTinyClassifier(join(dir, 'guide16'), { size: 16 }));
    await assert.rejects(
      sampleValues(request(values, { guide: { loaded: big, scale: 1 }, guideLabels: labels })),
      (e: unknown) => e instanceof EvalInputError && /classifier takes 1x16x16/.test(e.message),
    );
  });

  void test('a sample folder scores exactly as the samples did', async () => {
    const values = Array.from({ length: 20 }, (_, i) => i % 10);
    const direct = new FeatureCollector(c);
    const folder = join(dir, 'samples');
    const writer = await SampleFolderWriter.create(folder);
    await sampleBatches(request(values), async (b) => {
      direct.add(b.x);
      await writer.add(b.values, b.shape, values.slice(b.start, b.start + b.shape[0]));
    });
    const index = await writer.finish(4, { sampler: 'ddim' });
    assert.equal(index.count, 20);
    assert.deepEqual(index.samples[3], { file: '000003.png', label: 3 });
    const read = await readSampleFolder(folder, c.shape);
    assert.deepEqual(read.requested, values);
    const fromFiles = new FeatureCollector(c);
    const x = await readSampleImages(read, 0, 20);
    fromFiles.add(tensor(x, [20, 1, 8, 8]));
    const a = direct.finish();
    const b = fromFiles.finish();
    assert.deepEqual(b.features.data, a.features.data, 'the same features, bit for bit');
    assert.deepEqual(b.predicted, a.predicted);
  });

  void test('writeSampleFolder writes PNGs and labels.json with prompts and classes', async () => {
    const out = join(dir, 'written');
    const imgs = tensor(
      Float32Array.from({ length: 2 * 64 }, (_, i) => (i % 7) / 3 - 1),
      [2, 1, 8, 8],
    );
    await writeSampleFolder(out, imgs, ['a handwritten two', null], 9, { classes: [2, null] });
    const index = JSON.parse(await readFile(join(out, 'labels.json'), 'utf8')) as {
      seed: number;
      samples: unknown[];
    };
    assert.equal(index.seed, 9);
    assert.deepEqual(index.samples, [
      { file: '000000.png', label: 2, prompt: 'a handwritten two' },
      { file: '000001.png' },
    ]);
    const read = await readSampleFolder(out, [1, 8, 8]);
    assert.equal(read.requested, null, 'not every image has a class');
    assert.deepEqual(
      await readSampleImages(read, 0, 2),
      quantizeToByte(Float32Array.from(await imgs.data())),
    );
    await assert.rejects(writeSampleFolder(out, imgs, null, 0), /not empty/);
  });

  void test('bad folders: empty, another size or channel count, a missing listed file', async () => {
    const empty = join(dir, 'empty');
    await mkdir(empty);
    await assert.rejects(readSampleFolder(empty, [1, 8, 8]), /no PNG images/);
    const rgb = join(dir, 'rgb');
    await mkdir(rgb);
    const px = new Uint8Array(8 * 8 * 3);
    await writeFile(join(rgb, 'a.png'), encodePng({ width: 8, height: 8, channels: 3, data: px }));
    await assert.rejects(
      readSampleFolder(rgb, [1, 8, 8]),
      /a.png is a 3x8x8 image; the classifier takes 1x8x8/,
    );
    await assert.rejects(
      readSampleFolder(rgb, [3, 16, 16]),
      /3x8x8 image; the classifier takes 3x16x16/,
    );
    await writeFile(
      join(rgb, 'labels.json'),
      JSON.stringify({ format: 'sumi-samples', version: 1, samples: [{ file: 'b.png' }] }),
    );
    await assert.rejects(
      readSampleFolder(rgb, [3, 8, 8]),
      /lists b.png, which is not in the folder/,
    );
  });
});

void describe('scores', () => {
  void test('real images score near the floor, noise far from it; too few samples is refused', () => {
    const ds = loadDataset('mnist', { size: 8 });
    const reference = new Set(ref.split.indices);
    const others = spreadIndices(ds.length, 600)
      .filter((i) => !reference.has(i))
      .slice(0, 400);
    const score = (images: Float32Array, n: number): ReturnType<typeof scoreSamples> => {
      const col = new FeatureCollector(c);
      col.add(tensor(images, [n, 1, 8, 8]));
      return scoreSamples(col.finish(), ref, null, 10, { kidSubsets: 10, kidSubsetSize: 100 });
    };
    const real = new Float32Array(400 * 64);
    others.forEach((i, r) =>
      real.set(
        ds.get(i).image.map((v) => v * 2 - 1),
        r * 64,
      ),
    );
    const noise = Float32Array.from({ length: 400 * 64 }, (_, i) => ((i * 7919) % 255) / 127.5 - 1);
    const a = score(real, 400);
    const b = score(noise, 400);
    assert.ok(a.fd < 5 * referenceFloor(ref)!.distance + 0.01, `real FD ${a.fd}`);
    assert.ok(b.fd > 20 * a.fd, `noise FD ${b.fd} vs real ${a.fd}`);
    assert.ok(a.precision > b.precision, 'real images are inside the real manifold more often');
    assert.ok(Math.abs(a.kid.value) < b.kid.value, 'KID');
    assert.equal(a.prRows, 400);
    assert.equal(a.conditional, null);
    assert.throws(
      () => checkEnoughSamples(16, 16),
      /16 samples for 16 features: .* FD is undefined/,
    );
  });
});

void describe('bits per dimension', () => {
  void test('the stratified estimate of a class model, conditioned on each image', async () => {
    const ds = loadDataset('mnist', { size: 8 });
    const indices = spreadIndices(ds.length, 6);
    const r = await modelNll({
      model: p.model,
      condition: p.condition,
      schedulerConfig: p.schedulerConfig,
      dataset: ds,
      indices,
      values: indices.map((i) => ds.get(i).label!),
      batchSize: 4,
      stride: 25,
      seed: 0,
    });
    assert.equal(r.n, 6);
    assert.equal(r.estimator, 'stratified');
    assert.equal(r.modelCallsPerImage, 1 + Math.ceil(99 / 25));
    assert.ok(Number.isFinite(r.bitsPerDim) && r.bitsPerDim > 0, `bpd ${r.bitsPerDim}`);
    assert.ok(Math.abs(r.prior + r.kl + r.decoder - r.bitsPerDim) < 1e-9, 'the terms add up');
    await assert.rejects(
      modelNll({
        model: p.model,
        condition: p.condition,
        schedulerConfig: p.schedulerConfig,
        dataset: ds,
        indices,
        values: indices.map(() => 'a prompt'),
        batchSize: 4,
        stride: 25,
        seed: 0,
      }),
      EvalInputError,
    );
  });
});

void describe('sweep', () => {
  void test('FD per (sampler, steps), the chart has one line per sampler and the floor', async () => {
    const values = Array.from({ length: 20 }, (_, i) => i % 10);
    const base = request(values);
    const seen: string[] = [];
    const points = await runSweep({
      samplers: ['ddim', 'euler'],
      steps: [2, 3],
      makeScheduler: (name) => createSampler(name, p.schedulerConfig),
      request: base,
      classifier: c,
      reference: ref,
      requested: values,
      onPoint: (q) => void seen.push(`${q.sampler}/${q.steps}`),
    });
    assert.deepEqual(seen, ['ddim/2', 'ddim/3', 'euler/2', 'euler/3']);
    assert.deepEqual(
      points.map((q) => q.modelCallsPerImage),
      [2, 3, 2, 3],
    );
    assert.ok(
      points.every((q) => q.fd > 0 && q.accuracy !== null),
      'FD and accuracy',
    );
    const again = await runSweep({
      samplers: ['ddim', 'euler'],
      steps: [2, 3],
      makeScheduler: () => {
        throw new Error('nothing is left to measure');
      },
      request: base,
      classifier: c,
      reference: ref,
      requested: values,
      done: points,
    });
    assert.equal(again.length, 4);
    const svg = sweepSvg({
      format: 'sumi-sweep',
      version: 1,
      settings: {
        model: 'm',
        weights: 'model',
        classifier: 'c',
        classifierHash: c.hash,
        reference: ref.split.description,
        n: 20,
        seed: 4,
        batchSize: 8,
        conditions: 'classes 0..9 in turn',
        guidance: 1,
        guideScale: null,
        karras: false,
      },
      floor: 0.001,
      points,
    });
    assert.equal(svg.match(/<polyline/g)?.length, 2);
    assert.match(svg, /stroke-dasharray/);
    assert.match(svg, />ddim</);
    assert.match(svg, /^<svg [^>]*>[\s\S]*<\/svg>\n$/);
  });
});
