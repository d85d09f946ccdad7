/**
 * The playground's lab worker: the forward process q(x_t | x_0) of a picked, drawn or uploaded
 * image on a model's schedule, and live training of a small U-Net on MNIST digits with
 * `denoiserTrainStep`, posting each step's loss and a sample grid every few steps. A training
 * loop yields after every step, which is when 'stop' and 'forward' messages arrive. When a run
 * stops, its model is posted as the files of a pipeline folder (what `savePipeline` writes: unet/,
 * scheduler/, model_index.json, sumi.json), which the page samples from and downloads.
 */
import {
  addNoise,
  AdamW,
  cpuBackend,
  createModel,
  createSampler,
  createScheduler,
  denoiserTrainStep,
  DIFFUSERS_VERSION,
  downsampleBox,
  generateAsync,
  Generator,
  gridFromValues,
  initDefaultBackend,
  makeSchedule,
  type ModelInfo,
  type NoiseSchedule,
  pipelineIndex,
  rand,
  randn,
  serializeModule,
  tensor,
  type Tensor,
  tidy,
  type UNet2DModel,
  unconditional,
} from '../src/index.js';
import {
  DIGITS,
  frameOf,
  type LabReply,
  type LabRequest,
  type TrainSettings,
  type WorkerScope,
} from './protocol.js';

const scope = self as unknown as WorkerScope<LabRequest, LabReply>;

function post(reply: LabReply, transfer: Transferable[] = []): void {
  scope.postMessage(reply, transfer);
}

/** The training schedule (β, ᾱ) of a scheduler config, as the Trainer builds it. */
function scheduleOf(config: Record<string, unknown>): NoiseSchedule {
  return makeSchedule(Float64Array.from(createScheduler('DDPMScheduler', config).betas));
}

/** x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε with ε ~ N(0, I) from `seed` (DDPM eq. 4), on the CPU. */
function forward(req: Extract<LabRequest, { type: 'forward' }>): void {
  const schedule = scheduleOf(req.scheduler);
  const T = schedule.numTrainTimesteps;
  const t = Math.min(T - 1, Math.max(0, Math.round(req.t)));
  const backend = cpuBackend();
  const values = tidy(() => {
    const x0 = tensor(req.image, [1, req.channels, req.side, req.side], { backend });
    const eps = randn(x0.shape, { seed: req.seed, backend });
    return Float32Array.from(addNoise(schedule, x0, eps, [t]).dataSync());
  });
  const shape = [1, req.channels, req.side, req.side];
  const frame = frameOf(gridFromValues(values, shape, { padding: 0 }));
  post({ type: 'forward', t, frame, alphasCumprod: Float64Array.from(schedule.alphasCumprod) }, [
    frame.data.buffer,
  ]);
}

/** The live-training model: a 2-level UNet2DModel of 16 and 32 channels on 14×14 gray digits. */
const LIVE_UNET = {
  _class_name: 'UNet2DModel',
  sample_size: 14,
  in_channels: 1,
  out_channels: 1,
  block_out_channels: [16, 32],
  layers_per_block: 1,
  norm_num_groups: 8,
  down_block_types: ['DownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'UpBlock2D'],
  add_attention: false,
};
const SIDE = LIVE_UNET.sample_size;
const SCHEDULER = {
  num_train_timesteps: 1000,
  beta_schedule: 'linear',
  prediction_type: 'epsilon',
};

let stopRequested = false;
let training = false;

/** The digits as x_0 in [−1, 1] at SIDE × SIDE (2×2 box average of the 28×28 bytes). */
function digitsTensor(bytes: Uint8Array): Tensor {
  const px = DIGITS.side * DIGITS.side;
  const n = Math.floor(bytes.length / px);
  if (n === 0) throw new Error(`${DIGITS.url}: ${bytes.length} bytes, not one 28×28 image`);
  const values = Float32Array.from(bytes.subarray(0, n * px), (b) => (b / 255) * 2 - 1);
  return tidy(() =>
    downsampleBox(
      tensor(values, [n, 1, DIGITS.side, DIGITS.side], { backend: cpuBackend() }),
      DIGITS.side / SIDE,
    ),
  );
}

/** The page's settings, or one line naming the one out of range. */
function checkTrainSettings(s: TrainSettings): void {
  if (!Number.isInteger(s.batch) || s.batch < 1 || s.batch > 64) {
    throw new Error(`Batch must be a whole number from 1 to 64, got ${s.batch}`);
  }
  if (!(s.lr > 0 && s.lr < 1)) throw new Error(`Learning rate must be in (0, 1), got ${s.lr}`);
  if (!Number.isInteger(s.seed) || s.seed < 0) {
    throw new Error(`Seed must be a whole number ≥ 0, got ${s.seed}`);
  }
}

async function train(s: TrainSettings, digits: Uint8Array): Promise<void> {
  checkTrainSettings(s);
  const gpu = (navigator as Navigator & { gpu?: unknown }).gpu !== undefined;
  const backend = await initDefaultBackend(
    s.backend === 'auto' ? (gpu ? 'webgpu' : 'cpu') : s.backend,
  );
  const all = digitsTensor(digits);
  const data = all.dataSync() as Float32Array;
  const n = all.shape[0]!;
  all.dispose();
  const model = createModel(LIVE_UNET, { generator: new Generator(s.seed) }) as UNet2DModel;
  const optimizer = new AdamW(model, { lr: s.lr });
  const schedule = scheduleOf(SCHEDULER);
  const px = SIDE * SIDE;
  post({
    type: 'train-started',
    parameters: model.parameters().reduce((a, t) => a + t.size, 0),
    backend: backend.name,
    side: SIDE,
  });
  // A fixed shuffle of the digits from the seed; batch s takes the next s.batch of it.
  const order = Array.from({ length: n }, (_, i) => i);
  const keys = rand([n], { seed: s.seed, backend: cpuBackend() });
  const u = keys.dataSync();
  keys.dispose();
  order.sort((a, b) => u[a]! - u[b]!);
  let step = 0;
  try {
    while (!stopRequested) {
      const t0 = performance.now();
      const batch = new Float32Array(s.batch * px);
      for (let b = 0; b < s.batch; b++) {
        const k = order[(step * s.batch + b) % n]!;
        batch.set(data.subarray(k * px, (k + 1) * px), b * px);
      }
      const x0 = tensor(batch, [s.batch, 1, SIDE, SIDE], { backend });
      let loss: number;
      try {
        ({ loss } = await denoiserTrainStep(model, schedule, optimizer, x0, {
          step,
          seed: s.seed,
        }));
      } finally {
        x0.dispose();
      }
      step++;
      post({ type: 'train-step', step, loss, msPerStep: performance.now() - t0 });
      if (step % s.sampleEvery === 0) await samples(model, step, s.seed);
      // Let 'stop' and 'forward' messages in between steps.
      await new Promise((r) => setTimeout(r, 0));
    }
    if (step > 0) await postModel(model, step, s);
  } finally {
    optimizer.dispose();
    for (const p of model.parameters()) p.dispose();
    post({ type: 'train-stopped', step });
  }
}

/**
 * The model as the files of a pipeline folder, as `savePipeline` lays one out in Node (F32
 * weights, the scheduler config it trained on, a sumi.json of an unconditional 14×14 gray model),
 * posted to the page (the weights' bytes transferred).
 */
async function postModel(model: UNet2DModel, step: number, s: TrainSettings): Promise<void> {
  const json = (v: unknown): Uint8Array =>
    new TextEncoder().encode(`${JSON.stringify(v, null, 2)}\n`);
  const info: ModelInfo = {
    format: 'sumi-model',
    version: 1,
    imageSize: SIDE,
    channels: 1,
    conditioning: 'none',
    conditionDropout: 0,
    numClasses: null,
    nullClassId: null,
    data: `the playground's MNIST digits at ${SIDE}×${SIDE} (batch ${s.batch}, lr ${s.lr}, seed ${s.seed})`,
    step,
  };
  const files: Record<string, Uint8Array> = {
    'model_index.json': json(pipelineIndex(model, unconditional())),
    'sumi.json': json(info),
    'scheduler/scheduler_config.json': json({
      _class_name: 'DDPMScheduler',
      _diffusers_version: DIFFUSERS_VERSION,
      ...SCHEDULER,
    }),
    'unet/config.json': new TextEncoder().encode(model.configJson()),
    'unet/diffusion_pytorch_model.safetensors': await serializeModule(model, { dtype: 'F32' }),
  };
  post(
    { type: 'train-model', step, files },
    Object.values(files).map((b) => b.buffer as ArrayBuffer),
  );
}

/** 16 digits in 10 DDIM steps from the same noise every time (seed), so the grids compare. */
async function samples(model: UNet2DModel, step: number, seed: number): Promise<void> {
  model.eval();
  try {
    const x0 = await generateAsync(model, createSampler('ddim', SCHEDULER), {
      n: 16,
      seed,
      numInferenceSteps: 10,
    });
    const grid = gridFromValues(await x0.data(), x0.shape, { nrow: 4 });
    x0.dispose();
    const frame = frameOf(grid);
    post({ type: 'train-sample', step, frame }, [frame.data.buffer]);
  } finally {
    model.train(true);
  }
}

scope.onmessage = (e) => {
  const req = e.data;
  try {
    if (req.type === 'stop') {
      stopRequested = true;
    } else if (req.type === 'forward') {
      forward(req);
    } else if (!training) {
      training = true;
      stopRequested = false;
      train(req.settings, req.digits)
        .catch((err: unknown) => {
          post({ type: 'lab-error', message: err instanceof Error ? err.message : String(err) });
        })
        .finally(() => {
          training = false;
        });
    }
  } catch (err) {
    post({ type: 'lab-error', message: err instanceof Error ? err.message : String(err) });
  }
};
