/**
 * A new run from a model's weights (config.init, `sumi train --init`): before any update the
 * denoiser, its EMA and a text model's text encoder hold exactly the folder's weights (an f32 and
 * an f16 export, a run folder's EMA weights), the optimizer starts at step 0; a latent model
 * brings its vae; a resumption needs no --init, continues bit for bit and refuses other weights.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  InitInputError,
  loadPipeline,
  runTraining,
  savePipeline,
  setUpTraining,
  type Trainer,
  TrainRequestError,
  type TrainRequest,
} from '../../src/diffusion/index.js';
import { sha256Hex } from '../../src/diffusion/latent/vae-fs.js';
import { disposeAll, loadTensors, type Module } from '../../src/nn/index.js';
import { TINY_LATENT_UNET, writeImageFolder, writeTinyKlVae } from './latent-setup.js';
import {
  assertResumesExactly,
  TINY_TEXT_ENCODER,
  TINY_TEXT_UNET,
  TINY_UNET,
  trainBase,
  trainFixture,
} from './train-setup.js';

const fx = trainFixture('sumi-init-');
const at = (name: string): string => join(fx.dir, name);

let ready: Promise<void> | null = null;
/** A pixel run (with dropout) exported as f32 and f16, a text run, a latent run; made once. */
function fixtures(): Promise<void> {
  ready ??= (async () => {
    await trainBase(fx, at('pixel-run'), { ...TINY_UNET, dropout: 0.1 }, { emaDecay: 0.9 });
    for (const dtype of ['F32', 'F16'] as const) {
      const p = await loadPipeline(at('pixel-run'));
      await savePipeline(p, at(`pixel-${dtype}`), { dtype });
    }
    await trainBase(fx, at('text-run'), TINY_TEXT_UNET, {
      textCond: true,
      textEncoder: TINY_TEXT_ENCODER,
      emaDecay: 0.9,
    });
  })();
  return ready;
}

/** A run of 3 steps of batch 4 on 8×8 MNIST from `init`'s weights. */
function request(
  out: string,
  init: string | undefined,
  extra: Partial<TrainRequest> = {},
): TrainRequest {
  return {
    outDir: out,
    resume: false,
    source: null,
    train: { data: 'mnist', steps: 3, batchSize: 4, lr: 1e-3, warmupSteps: 1, microBatches: 1 },
    scheduler: {},
    ...(init !== undefined ? { init } : {}),
    ...extra,
  };
}

/** Asserts that every parameter of `module` (and of `ema`'s average) is the file's, exactly. */
async function assertHolds(
  module: Module,
  ema: Map<string, unknown> | null,
  file: string,
): Promise<void> {
  const want = await loadTensors(file);
  try {
    const own = module.namedParameters();
    assert.equal(own.length, want.size, `${file}: parameter count`);
    for (const [name, p] of own) {
      assert.equal(p.dtype, 'float32', `${name} is f32`);
      assert.deepEqual(p.dataSync(), want.get(name)!.dataSync(), `${name} = ${file}`);
    }
  } finally {
    disposeAll(want);
  }
  if (ema !== null) {
    const wantEma = await loadTensors(file);
    try {
      for (const [name, t] of ema as Map<string, { dataSync(): unknown }>) {
        assert.deepEqual(t.dataSync(), wantEma.get(name)!.dataSync(), `EMA ${name} = ${file}`);
      }
    } finally {
      disposeAll(wantEma);
    }
  }
}

async function setUp(req: TrainRequest): Promise<Trainer> {
  return (await setUpTraining(req)).trainer;
}

void describe('a run from --init weights', () => {
  for (const dtype of ['F32', 'F16'] as const) {
    void test(`starts with the ${dtype} export's weights, its EMA equal, at step 0`, async () => {
      await fixtures();
      const dir = at(`pixel-${dtype}`);
      const t = await setUp(request(at(`from-${dtype}`), dir));
      try {
        const file = join(dir, 'unet', 'diffusion_pytorch_model.safetensors');
        assert.equal(t.step, 0);
        assert.ok(t.ema !== null, 'the run keeps an EMA');
        assert.equal(t.ema.optimizationStep, 0);
        const sd = t.ema.stateDict();
        try {
          await assertHolds(t.model, sd, file);
        } finally {
          disposeAll(sd);
        }
        assert.deepEqual(t.config.init, {
          dir,
          weights: [{ path: file, sha256: sha256Hex(await readFile(file)) }],
        });
        assert.equal(t.config.model.dropout, 0.1, "the folder's model config");
        assert.equal(t.config.scheduler.num_train_timesteps, 100, "the folder's scheduler");
        assert.equal(t.lrAt(0), 0, 'the warmup starts again');
      } finally {
        t.dispose();
      }
    });
  }

  void test("a text model's text encoder and tokenizer come from the folder too", async () => {
    await fixtures();
    const t = await setUp(request(at('from-text'), at('text-run')));
    try {
      const ckpt = join(at('text-run'), 'checkpoint');
      await assertHolds(
        t.model,
        null,
        join(ckpt, 'unet_ema', 'diffusion_pytorch_model.safetensors'),
      );
      const te = t.condition.components[0]!;
      await assertHolds(te.module, null, join(ckpt, 'text_encoder_ema', 'model.safetensors'));
      assert.deepEqual(
        t.config.init!.weights.map((w) => w.path),
        [
          join(ckpt, 'unet_ema', 'diffusion_pytorch_model.safetensors'),
          join(ckpt, 'text_encoder_ema', 'model.safetensors'),
        ],
      );
      const tokenizer = t.condition.files().find((f) => f.path.endsWith('tokenizer.json'))!;
      assert.ok(
        Buffer.from(tokenizer.bytes).equals(
          await readFile(join(ckpt, 'tokenizer', 'tokenizer.json')),
        ),
        "the folder's vocabulary",
      );
      const stats = await t.trainStep();
      assert.ok(Number.isFinite(stats.loss), 'a step trains on the captions');
    } finally {
      t.dispose();
    }
  });

  void test('a latent model brings its vae; another --vae is refused', async () => {
    await fixtures();
    const images = await writeImageFolder(at('images'));
    const vae = await writeTinyKlVae(at('vae'));
    const latentReq: TrainRequest = {
      outDir: at('latent-run'),
      resume: false,
      source: {
        label: 'tiny',
        config: { model: TINY_LATENT_UNET, scheduler: { num_train_timesteps: 100 }, train: {} },
      },
      train: { data: images, steps: 2, batchSize: 4, microBatches: 1 },
      scheduler: {},
      vae,
    };
    const base = await setUp(latentReq);
    await runTraining(base, {
      outDir: latentReq.outDir,
      settings: { saveEvery: 0, sampleEvery: 0 },
    });
    base.dispose();
    const req = {
      ...request(at('from-latent'), at('latent-run')),
      train: { data: images, steps: 2, batchSize: 4 },
    };
    const t = await setUp(req);
    try {
      const ckpt = join(at('latent-run'), 'checkpoint');
      assert.equal(t.config.latent!.vae, join(ckpt, 'vae'));
      assert.equal(
        t.config.latent!.vaeSha256,
        sha256Hex(await readFile(join(vae, 'diffusion_pytorch_model.safetensors'))),
      );
      assert.ok(t.latent !== null, 'a latent run');
      await assertHolds(
        t.model,
        null,
        join(ckpt, 'unet_ema', 'diffusion_pytorch_model.safetensors'),
      );
    } finally {
      t.dispose();
    }
    const same = await setUp({ ...req, outDir: at('from-latent-vae'), vae });
    assert.equal(same.config.latent!.vae, vae);
    same.dispose();
    const other = await writeTinyKlVae(at('vae-b'), { seed: 9 });
    await assert.rejects(setUp({ ...req, outDir: at('from-latent-b'), vae: other }), (e) => {
      assert.ok(e instanceof InitInputError, String(e));
      assert.match(e.message, /--vae .*vae-b is not .*'s vae: weights sha256/);
      return true;
    });
  });

  for (const [name, other] of [
    ['text-run', 'pixel-F32'],
    ['pixel-F32', 'pixel-F16'],
  ] as const) {
    void test(`resumes a run from ${name} bit for bit without --init, and refuses other weights`, async () => {
      await fixtures();
      const dir = at(name);
      const text = name === 'text-run';
      await assertResumesExactly(
        (out, extra = {}) => request(out, extra.resume === true ? undefined : dir, extra),
        at(`whole-${name}`),
        at(`parts-${name}`),
        2,
        [
          'unet/diffusion_pytorch_model.safetensors',
          'unet_ema/diffusion_pytorch_model.safetensors',
          'optimizer.safetensors',
          ...(text
            ? [
                'text_encoder/model.safetensors',
                'text_encoder_ema/model.safetensors',
                'tokenizer/tokenizer.json',
              ]
            : []),
        ],
      );
      const again = await setUp(request(at(`parts-${name}`), dir, { resume: true }));
      assert.equal(again.step, 3, 'the same --init is accepted');
      again.dispose();
      await assert.rejects(
        setUp(request(at(`parts-${name}`), at(other), { resume: true })),
        (e) => {
          assert.ok(e instanceof TrainRequestError, String(e));
          assert.equal(e.problem, 'differs');
          assert.match(e.message, new RegExp(`started from .*${name}.*holds other weights`));
          return true;
        },
      );
    });
  }
});
