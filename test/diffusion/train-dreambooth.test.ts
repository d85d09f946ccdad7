/**
 * DreamBooth runs on a tiny text-to-image base: the step's loss is the instance images' loss plus
 * λ times the class images' (each computed here on its own), the class images are sampled once
 * into the run folder and read back, sampled again when the base changes, and refused when the
 * file is corrupt; full fine-tuning and LoRA both resume bit for bit, the text encoder stays as
 * it was, and what the run writes loads for sampling; bad bases and instance folders are refused
 * before anything is written.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { loadConfigSource } from '../../src/cli/presets.js';
import { encodePng } from '../../src/data/index.js';
import {
  CLASS_IMAGES_FILE,
  DreamBoothInputError,
  findCheckpoint,
  loadPipeline,
  parseClassImages,
  readTrainerState,
  resolveModelDir,
  sampleClassImages,
  setUpTraining,
  streamSeed,
  type TrainConfig,
  type TrainRequest,
} from '../../src/diffusion/index.js';
import { microBatchLoss, trainingTimesteps } from '../../src/diffusion/train-step.js';
import { noGrad, randn, slice, type Tensor, tidy } from '../../src/engine/index.js';
import { LORA_WEIGHTS_NAME, loraNetworkFromFile, readSafetensors } from '../../src/nn/index.js';
import {
  assertResumesExactly,
  TINY_TEXT_ENCODER,
  TINY_TEXT_UNET,
  TINY_UNET,
  trainBase,
  trainFixture,
} from './train-setup.js';

const fx = trainFixture('sumi-dreambooth-');
const INSTANCE = 'a sks digit';
const CLASS = 'a handwritten digit';

/** A text-to-image base folder: a 2-step text-conditioned run on 8×8 MNIST from `seed`. */
async function makeBase(out: string, seed = 0): Promise<string> {
  if (!existsSync(out)) {
    await trainBase(fx, out, TINY_TEXT_UNET, {
      textCond: true,
      textEncoder: TINY_TEXT_ENCODER,
      seed,
    });
  }
  return out;
}

/** n 8×8 gray PNGs (MNIST digits) in `dir`. */
async function writeInstances(dir: string, n = 3, size = 8, channels: 1 | 3 = 1): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const img = fx.mnist8.get(i).image;
    const data = new Uint8Array(size * size * channels);
    for (let p = 0; p < size * size; p++) {
      for (let c = 0; c < channels; c++) data[p * channels + c] = Math.round(255 * (img[p] ?? 0));
    }
    await writeFile(
      join(dir, `${i}.png`),
      encodePng({ width: size, height: size, channels, data }),
    );
  }
  return dir;
}

type DreamBooth = NonNullable<TrainConfig['dreambooth']>;

async function request(
  out: string,
  base: string,
  instances: string,
  opts: { dreambooth?: Partial<DreamBooth>; train?: Partial<TrainConfig> } = {},
  extra: Partial<TrainRequest> = {},
): Promise<TrainRequest> {
  const root = (await resolveModelDir(base)).root;
  return {
    outDir: out,
    resume: false,
    source: { label: 'base', config: loadConfigSource(root) },
    train: {
      data: instances,
      steps: 4,
      batchSize: 2,
      lr: 5e-3,
      warmupSteps: 0,
      emaDecay: null,
      textCond: true,
      dreambooth: {
        base,
        instancePrompt: INSTANCE,
        classPrompt: CLASS,
        priorLossWeight: 1,
        numClassImages: 4,
        prior: { sampler: 'ddim', steps: 2, guidance: 1 },
        ...opts.dreambooth,
      },
      ...opts.train,
    },
    scheduler: {},
    ...extra,
  };
}

const sameBytes = async (a: string, b: string): Promise<boolean> =>
  (await readFile(a)).equals(await readFile(b));

void describe('DreamBooth', () => {
  void test('the loss is L_instance + λ L_prior, each term computed on its own half', async () => {
    const base = await makeBase(join(fx.dir, 'base'));
    const inst = await writeInstances(join(fx.dir, 'inst'));
    const lambda = 0.5;
    const req = await request(join(fx.dir, 'loss'), base, inst, {
      dreambooth: { priorLossWeight: lambda },
    });
    const { trainer } = await setUpTraining(req);
    try {
      const cfg = trainer.config;
      const b = cfg.batchSize;
      const T = trainer.schedule.numTrainTimesteps;
      const ts = trainingTimesteps(cfg.seed, 0, 2 * b, T);
      const opts = {
        predictionType: trainer.predictionType,
        varianceType: trainer.varianceType,
        snrGamma: null,
      };
      const half = (x0: Tensor, prompt: string, lo: number): number => {
        const loss = noGrad(() =>
          tidy(() => {
            const noise = randn([2 * b, 1, 8, 8], { seed: streamSeed(cfg.seed, 'noise', 0) });
            const cond = trainer.condition.encode([prompt, prompt], x0.backend);
            return microBatchLoss(trainer.model, trainer.schedule, opts, {
              x0,
              noise: slice(noise, [lo], [lo + b]),
              timesteps: ts.slice(lo, lo + b),
              cond,
              weight: 1,
            });
          }),
        );
        const v = loss.dataSync()[0]!;
        loss.dispose();
        return v;
      };
      const instBatch = trainer.loader.batchAt(0);
      const priorBatch = trainer.priorLoader!.batchAt(0);
      const lInst = half(instBatch.x, INSTANCE, 0);
      const lPrior = half(priorBatch.x, CLASS, b);
      instBatch.x.dispose();
      priorBatch.x.dispose();
      assert.ok(lInst > 0 && lPrior > 0 && Math.abs(lInst - lPrior) > 1e-4, `${lInst}, ${lPrior}`);
      const stats = await trainer.trainStep();
      const want = lInst + lambda * lPrior;
      assert.ok(
        Math.abs(stats.loss - want) <= 1e-6 * want,
        `step loss ${stats.loss}, L_inst + λ L_prior = ${want}`,
      );
      assert.equal(trainer.optimizer.params.length, trainer.model.parameters().length);
      // Previews alternate the instance and the class prompt.
      assert.deepEqual(trainer.previewValues(3), [INSTANCE, CLASS, INSTANCE]);
      const grid = trainer.previewImages(2, 2, 'ddim');
      assert.deepEqual(grid.shape, [2, 1, 8, 8]);
      grid.dispose();
    } finally {
      trainer.dispose();
    }
  });

  void test('λ = 0 or no class prompt: no class images, the loss of the instance images alone', async () => {
    const base = await makeBase(join(fx.dir, 'base'));
    const inst = await writeInstances(join(fx.dir, 'inst'));
    for (const [name, d] of [
      ['zero', { priorLossWeight: 0 }],
      ['none', { classPrompt: null }],
    ] as const) {
      const out = join(fx.dir, `noprior-${name}`);
      const { trainer } = await setUpTraining(await request(out, base, inst, { dreambooth: d }));
      try {
        assert.equal(trainer.priorLoader, null);
        assert.equal(existsSync(join(out, CLASS_IMAGES_FILE)), false, 'no class images sampled');
        const x = trainer.loader.batchAt(0);
        assert.equal(x.x.shape[0], 2);
        x.x.dispose();
        assert.ok(Number.isFinite((await trainer.trainStep()).loss), 'a finite loss');
      } finally {
        trainer.dispose();
      }
    }
  });

  void test('class images: sampled once, read back, sampled again when the base changes, a corrupt file refused', async () => {
    const base = join(fx.dir, 'base-cache');
    await cp(await makeBase(join(fx.dir, 'base')), base, { recursive: true });
    const inst = await writeInstances(join(fx.dir, 'inst'));
    const out = join(fx.dir, 'cache');
    const file = join(out, CLASS_IMAGES_FILE);
    const setup = async (): Promise<string[]> => {
      const messages: string[] = [];
      const req = await request(out, base, inst, {}, { onMessage: (l) => messages.push(l) });
      (await setUpTraining(req)).trainer.dispose();
      return messages;
    };
    const first = await setup();
    assert.ok(
      first.some((m) => m.startsWith('sampling 4 class images')),
      first.join('\n'),
    );
    const bytes = await readFile(file);
    const data = parseClassImages(bytes, file);
    assert.deepEqual(data.header.shape, [4, 1, 8, 8]);
    assert.equal(data.header.prompt, CLASS);
    assert.ok(
      data.images.every((v) => v >= 0 && v <= 1) && data.images.some((v) => v > 0),
      'pixels in [0, 1]',
    );
    // The same images from another batching: image k is image k of stream (seed, 'prior').
    const p = await loadPipeline(base);
    const again = await sampleClassImages(p, data.header, { batchSize: 3 });
    assert.ok(
      again.every((v, i) => v === data.images[i]),
      'the same images in batches of 3',
    );

    const mtime = (await stat(file)).mtimeMs;
    const second = await setup();
    assert.ok(
      second.some((m) => m === `class images ${file}: 4 of '${CLASS}'`),
      second.join('\n'),
    );
    assert.equal((await stat(file)).mtimeMs, mtime, 'read, not written again');

    // Another base in the same folder: one bit of its denoiser's weights.
    const weights = join(base, 'checkpoint', 'unet_ema', 'diffusion_pytorch_model.safetensors');
    const w = await readFile(weights);
    w[w.length - 4]! ^= 1;
    await writeFile(weights, w);
    const third = await setup();
    assert.ok(
      third.some((m) => m.includes('are stale (base denoiser sha256: cache')),
      third.join('\n'),
    );
    const now = parseClassImages(await readFile(file), file);
    assert.notEqual(now.header.base.unetSha256, data.header.base.unetSha256);

    // A changed pixel: the file no longer matches its header's sha256.
    const bad = await readFile(file);
    bad[bad.length - 1]! ^= 0x10;
    await writeFile(file, bad);
    await assert.rejects(setup(), /not a usable class-image cache \(its pixels do not match/);
  });

  void test('full fine-tune: resumes exactly, keeps the text encoder, loads as a pipeline', async () => {
    const base = await makeBase(join(fx.dir, 'base'));
    const inst = await writeInstances(join(fx.dir, 'inst'));
    const reqs = new Map<string, TrainRequest>();
    const make = async (out: string, extra: Partial<TrainRequest> = {}): Promise<TrainRequest> =>
      request(out, base, inst, {}, extra);
    // assertResumesExactly takes a synchronous request builder: build them first.
    for (const out of ['full-whole', 'full-parts'].map((n) => join(fx.dir, n))) {
      reqs.set(out, await make(out));
      reqs.set(`${out}+resume`, await make(out, { resume: true }));
    }
    await assertResumesExactly(
      (out, extra) => reqs.get(extra?.resume === true ? `${out}+resume` : out)!,
      join(fx.dir, 'full-whole'),
      join(fx.dir, 'full-parts'),
      2,
      [
        'unet/diffusion_pytorch_model.safetensors',
        'optimizer.safetensors',
        'text_encoder/model.safetensors',
      ],
    );
    const out = join(fx.dir, 'full-whole');
    const ckpt = (await findCheckpoint(out))!;
    const state = await readTrainerState(ckpt);
    assert.equal(state.step, 4);
    assert.equal(state.classImages?.count, 4);
    // The text encoder is the base's, bit for bit; the denoiser moved.
    const baseRoot = join(base, 'checkpoint');
    assert.ok(
      await sameBytes(
        join(ckpt, 'text_encoder', 'model.safetensors'),
        join(baseRoot, 'text_encoder_ema', 'model.safetensors'),
      ),
      'text encoder unchanged',
    );
    const before = await readSafetensors(
      join(baseRoot, 'unet_ema', 'diffusion_pytorch_model.safetensors'),
    );
    const after = await readSafetensors(join(ckpt, 'unet', 'diffusion_pytorch_model.safetensors'));
    const name = 'conv_in.weight';
    assert.ok(
      before.tensors.get(name)!.data.some((v, i) => v !== after.tensors.get(name)!.data[i]),
      'the denoiser trained',
    );
    const info = JSON.parse(await readFile(join(ckpt, 'sumi.json'), 'utf8')) as {
      conditioning: string;
      conditionDropout: number;
    };
    assert.equal(info.conditioning, 'text');
    assert.equal(info.conditionDropout, 0.1, "the base's null prompt stays usable");
    const p = await loadPipeline(out);
    assert.equal(p.condition.kind, 'text');
    assert.ok(p.condition.hasNull, 'guidance works');
  });

  void test('LoRA: only adapters train, resumes exactly, the file loads onto the base', async () => {
    const base = await makeBase(join(fx.dir, 'base'));
    const inst = await writeInstances(join(fx.dir, 'inst'));
    const lora = { base, rank: 2, alpha: 2, targets: ['to_q', 'to_k', 'to_v', 'to_out.0'] };
    const reqs = new Map<string, TrainRequest>();
    for (const out of ['lora-whole', 'lora-parts'].map((n) => join(fx.dir, n))) {
      reqs.set(out, await request(out, base, inst, { train: { lora } }));
      reqs.set(
        `${out}+resume`,
        await request(out, base, inst, { train: { lora } }, { resume: true }),
      );
    }
    await assertResumesExactly(
      (out, extra) => reqs.get(extra?.resume === true ? `${out}+resume` : out)!,
      join(fx.dir, 'lora-whole'),
      join(fx.dir, 'lora-parts'),
      2,
      ['unet_lora/adapter_model.safetensors', 'optimizer.safetensors', LORA_WEIGHTS_NAME],
    );
    const ckpt = (await findCheckpoint(join(fx.dir, 'lora-whole')))!;
    const file = await readSafetensors(join(ckpt, LORA_WEIGHTS_NAME));
    assert.ok(
      [...file.tensors.keys()].some((k) => k.includes('attn2.to_k.lora_B')),
      'adapters on the cross-attention',
    );
    const opt = await readSafetensors(join(ckpt, 'optimizer.safetensors'));
    assert.ok(
      [...opt.tensors.keys()].every((k) => k.includes('lora_')),
      'no base optimizer state',
    );
    const p = await loadPipeline(base);
    const net = (await loraNetworkFromFile(p.model, file, 'lora')).attach();
    assert.ok(net.adapters.size > 0, 'adapters attached');
  });

  void test('bad input: a base without a text encoder, missing or wrong instance images', async () => {
    const textBase = await makeBase(join(fx.dir, 'base'));
    const classBase = join(fx.dir, 'class-base');
    await trainBase(fx, classBase, TINY_UNET, { classCond: true });
    const plainBase = join(fx.dir, 'plain-base');
    await trainBase(fx, plainBase, TINY_UNET, {});
    const inst = await writeInstances(join(fx.dir, 'inst'));
    const empty = join(fx.dir, 'empty');
    await mkdir(empty, { recursive: true });
    const big = await writeInstances(join(fx.dir, 'big'), 2, 16);
    const rgb = await writeInstances(join(fx.dir, 'rgb'), 2, 8, 3);
    const cases: [string, string, string, RegExp][] = [
      ['class base', classBase, inst, /is class-conditional \(no tokenizer\/ and text_encoder\/\)/],
      ['plain base', plainBase, inst, /is unconditional \(no tokenizer\/ and text_encoder\/\)/],
      [
        'missing',
        textBase,
        join(fx.dir, 'nowhere'),
        /instance images: dataset folder .*nowhere' does not exist/,
      ],
      ['empty', textBase, empty, /instance images: '.*empty' has no PNG or JPEG images/],
      [
        'size',
        textBase,
        big,
        /instance images: .*0\.png is 16x16 gray; the base takes 8x8 gray images/,
      ],
      [
        'channels',
        textBase,
        rgb,
        /instance images: .*0\.png is 8x8 RGB; the base takes 8x8 gray images/,
      ],
    ];
    for (const [what, base, data, message] of cases) {
      const out = join(fx.dir, `bad-${what.replace(' ', '-')}`);
      await assert.rejects(
        async () => setUpTraining(await request(out, base, data)),
        (e: unknown) => e instanceof DreamBoothInputError && message.test(e.message),
        what,
      );
      assert.equal(existsSync(out), false, `${what}: nothing written`);
    }
  });
});
