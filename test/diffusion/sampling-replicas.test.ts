/**
 * Sampling replicas: a model call split between this thread and a replica in a worker thread
 * gives the same output bit for bit, so the images are identical with and without one, for an
 * unconditional model, a class-conditional one under classifier-free guidance (its cond and
 * uncond halves on the two threads) and a text-conditional one (embeddings and token mask
 * carried); models a replica cannot compute (LoRA attached, float64, one thread) get none and
 * sample as before; the worker is stopped after a run, an abort and an error, and leaves no
 * thread that keeps Node alive.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, describe, test } from 'node:test';

import {
  classConditioning,
  createSampler,
  encodeConditions,
  generate,
  generateBatches,
  SamplingReplicas,
  unconditional,
} from '../../src/diffusion/index.js';
import {
  cpuBackend,
  Generator,
  noGrad,
  randn,
  setDefaultBackend,
  Tensor,
  tensor,
  tidy,
} from '../../src/engine/index.js';
import { injectLora } from '../../src/nn/lora.js';
import { createModel, type Denoiser } from '../../src/nn/models/index.js';
import { TINY_TEXT_UNET, tinyUNet } from './train-setup.js';

setDefaultBackend(cpuBackend());
process.env.SUMI_CPU_THREADS = '2';

const started: SamplingReplicas[] = [];
after(async () => {
  for (const r of started) await r.close();
});

/** A replica of the model, once it is ready to take half of each call. */
async function replicaOf(model: Denoiser): Promise<SamplingReplicas> {
  const r = SamplingReplicas.start(model);
  assert.ok(r !== null, 'a replica starts');
  started.push(r);
  assert.equal(await r.ready(), 2, 'the replica is ready');
  return r;
}

function bits(x: Float32Array | Float64Array | Int32Array): Uint32Array {
  return new Uint32Array(Float32Array.from(x).buffer);
}

/** The images of 5 DPM-Solver++ steps, with or without the replica. */
function images(
  model: Denoiser,
  replicas: SamplingReplicas | null,
  extra: Partial<Parameters<typeof generate>[2]> = {},
): Uint32Array {
  const x = generate(model, createSampler('dpmpp-2m', { num_train_timesteps: 100 }), {
    n: 6,
    seed: 5,
    numInferenceSteps: 5,
    replicas,
    ...extra,
  });
  const out = bits(x.dataSync());
  x.dispose();
  return out;
}

void describe('sampling replicas', () => {
  void test('unconditional: the same images bit for bit, and the same output per call', async () => {
    const model = tinyUNet(3).eval();
    const r = await replicaOf(model);
    const one = images(model, null);
    const two = images(model, r);
    assert.deepEqual(two, one);
    noGrad(() =>
      tidy(() => {
        const x = randn([7, 1, 8, 8], { seed: 2 });
        const t = [5, 17, 30, 44, 61, 80, 99];
        assert.deepEqual(
          bits(r.denoise(x, t).dataSync() as Float32Array),
          bits(model.denoise(x, t).dataSync() as Float32Array),
        );
      }),
    );
  });

  void test('class-conditional under classifier-free guidance: the same images', async () => {
    const model = tinyUNet(4, { num_class_embeds: 11 }).eval();
    const r = await replicaOf(model);
    const source = classConditioning({ numClasses: 10, nullClassId: 10 });
    const conds = encodeConditions(
      source,
      { values: [0, 1, 2, 3, 4, 5], guidanceScale: 3 },
      cpuBackend(),
    );
    const guided = { cond: conds.cond, uncond: conds.uncond, guidanceScale: 3 };
    const one = images(model, null, guided);
    const two = images(model, r, guided);
    assert.deepEqual(two, one);
    const unguided = images(model, null, { cond: conds.cond });
    assert.notDeepEqual(unguided, one, 'guidance changes the images');
  });

  void test('text-conditional: embeddings and token mask reach the replica', async () => {
    const model = createModel(
      {
        ...TINY_TEXT_UNET,
        sample_size: 8,
        in_channels: 1,
        out_channels: 1,
        cross_attention_dim: 8,
      },
      { generator: new Generator(6) },
    ) as unknown as Denoiser;
    model.eval();
    const r = await replicaOf(model);
    noGrad(() =>
      tidy(() => {
        const x = randn([6, 1, 8, 8], { seed: 3 });
        const states = randn([6, 4, 8], { seed: 4 });
        const mask = tensor(
          Int32Array.from({ length: 24 }, (_, i) => (i % 4 < 2 + (i >> 3) ? 1 : 0)),
          [6, 4],
          { dtype: 'int32' },
        );
        const cond = { encoderHiddenStates: states, encoderAttentionMask: mask };
        assert.deepEqual(
          bits(r.denoise(x, 40, cond).dataSync() as Float32Array),
          bits(model.denoise(x, 40, cond).dataSync() as Float32Array),
        );
      }),
    );
  });

  void test('no replica for LoRA, float64 or one thread', async () => {
    const lora = tinyUNet(3).eval();
    injectLora(lora, { rank: 2, targets: ['to_q', 'conv1'] });
    assert.equal(SamplingReplicas.start(lora), null);
    const f64 = tinyUNet(3).eval();
    await f64.to({ dtype: 'float64' });
    assert.equal(SamplingReplicas.start(f64), null);
    process.env.SUMI_CPU_THREADS = '1';
    try {
      assert.equal(SamplingReplicas.start(tinyUNet(3)), null);
    } finally {
      process.env.SUMI_CPU_THREADS = '2';
    }
  });

  void test('generateBatches: replicas 1 and 2 give the same images; bad counts refused', async () => {
    const model = tinyUNet(3).eval();
    const run = async (replicas: number): Promise<Uint32Array[]> => {
      const out: Uint32Array[] = [];
      await generateBatches(model, createSampler('euler-a', { num_train_timesteps: 100 }), {
        seed: 9,
        numInferenceSteps: 4,
        batchSize: 8,
        replicas,
        condition: unconditional(),
        request: { values: Array.from({ length: 10 }, () => null) },
        onBatch: (x) => {
          out.push(bits(x.dataSync()));
        },
      });
      return out;
    };
    const before = Tensor.liveCount();
    assert.deepEqual(await run(2), await run(1));
    assert.equal(Tensor.liveCount(), before, 'no tensor left behind');
    await assert.rejects(run(3), /must be 1 or 2, got 3/);
  });
});

/** Runs a script in a fresh Node; the test fails if it does not exit by itself in time. */
function nodeScript(source: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', source], {
    cwd: process.cwd(),
    encoding: 'utf8',
    timeout: 240_000,
    env: { ...process.env, SUMI_CPU_THREADS: '2' },
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

void test('the worker stops after a run, an abort and an error: Node exits by itself', () => {
  const src = new URL('../../src/', import.meta.url).href;
  const r = nodeScript(`
    import { createModel } from '${src}nn/models/index.js';
    import { SamplingReplicas, generateBatches, createSampler, unconditional } from '${src}diffusion/index.js';
    import { Generator } from '${src}engine/index.js';
    const model = createModel({ _class_name: 'UNet2DModel', sample_size: 8, in_channels: 1,
      out_channels: 1, block_out_channels: [8, 16], layers_per_block: 1, norm_num_groups: 4,
      down_block_types: ['DownBlock2D', 'DownBlock2D'], up_block_types: ['UpBlock2D', 'UpBlock2D'] },
      { generator: new Generator(1) });
    model.eval();
    const opts = (extra) => ({ seed: 1, numInferenceSteps: 3, batchSize: 8, replicas: 2,
      condition: unconditional(), request: { values: Array(8).fill(null) }, onBatch: () => {}, ...extra });
    const sampler = () => createSampler('ddim', { num_train_timesteps: 100 });
    await generateBatches(model, sampler(), opts({}));
    const ac = new AbortController();
    await generateBatches(model, sampler(), opts({ signal: ac.signal,
      onProgress: (p) => { if (p.step === 1) ac.abort(); } })).catch((e) => console.log('aborted', e.name));
    await generateBatches(model, sampler(), opts({ onProgress: () => { throw new Error('boom'); } }))
      .catch((e) => console.log('failed', e.message));
    const r = SamplingReplicas.start(model);
    console.log('threads', await r.ready());
    console.log('done');
  `);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /aborted AbortError/);
  assert.match(r.out, /failed boom/);
  assert.match(r.out, /threads 2/);
  assert.match(r.out, /done/);
});
