/**
 * The playground's sampling worker: loads a model, samples with `generateAsync` and posts a grid
 * of x̂_0 after every step, so the page never waits on the model; inpaints an image under a mask
 * with `inpaintAsync` (the pipeline of `sumi edit inpaint`). Both yield between steps, which is
 * when a 'cancel' message arrives and aborts the run. A latent model's result and
 * every step's x̂_0 are decoded by its vae (`decode`) before they are posted: the page only ever
 * sees pixels.
 */
import {
  checkSamplingSettings,
  conditionedModel,
  type ConditionValue,
  createSampler,
  disposeConditioning,
  encodeConditions,
  encodePng,
  generateAsync,
  gridFromValues,
  ImageNoise,
  initDefaultBackend,
  inpaintAsync,
  keep,
  type PredictionType,
  stepX0,
  Tensor,
  tensor,
  where,
} from '../src/index.js';
import {
  type BrowserPipeline,
  loadBrowserPipeline,
  memoryFolder,
  urlFolder,
} from './load-model.js';
import {
  type BackendChoice,
  frameOf,
  type Frame,
  type Job,
  type ModelSummary,
  type Reply,
  type Request,
  type SampleSettings,
  type WorkerScope,
} from './protocol.js';

const scope = self as unknown as WorkerScope<Request, Reply>;

let pipeline: BrowserPipeline | null = null;
let running: AbortController | null = null;

function post(reply: Reply, transfer: Transferable[] = []): void {
  scope.postMessage(reply, transfer);
}

async function load(
  name: string,
  url: string,
  choice: BackendChoice,
  files: Record<string, Uint8Array> | undefined,
): Promise<void> {
  const t0 = performance.now();
  const gpu = (navigator as Navigator & { gpu?: unknown }).gpu !== undefined;
  const backend = await initDefaultBackend(choice === 'auto' ? (gpu ? 'webgpu' : 'cpu') : choice);
  if (pipeline !== null) {
    const modules = [
      pipeline.model,
      ...pipeline.condition.components.map((c) => c.module),
      ...(pipeline.vae !== null ? [pipeline.vae.vae] : []),
    ];
    for (const m of modules) for (const t of m.parameters()) t.dispose();
    pipeline = null;
  }
  const p = await loadBrowserPipeline(
    files !== undefined ? memoryFolder(url, files) : urlFolder(url),
  );
  pipeline = p;
  post({
    type: 'loaded',
    model: {
      name,
      conditioning: p.condition.kind,
      hasNull: p.condition.hasNull,
      classNames: p.info.classNames ?? [],
      ...imageOf(p),
      scheduler: p.schedulerConfig,
      parameters: p.model.parameters().reduce((a, t) => a + t.size, 0),
      backend: backend.name,
      loadMs: performance.now() - t0,
    },
  });
}

/** The images' size, and a latent model's latents: what the page shows. */
function imageOf(p: BrowserPipeline): Pick<ModelSummary, 'imageSize' | 'channels' | 'latent'> {
  if (p.vae === null) {
    return { imageSize: p.info.imageSize, channels: p.model.sampleShape[0], latent: null };
  }
  const [channels, imageSize] = p.vae.imageShape(p.model.sampleShape);
  return {
    imageSize,
    channels,
    latent: { shape: [...p.model.sampleShape], vaeClass: p.vae.spec.vaeClass },
  };
}

/** The condition of image i under the settings. */
function conditionValues(p: BrowserPipeline, s: SampleSettings): ConditionValue[] {
  return Array.from({ length: s.n }, (_, i): ConditionValue => {
    if (p.condition.kind === 'class') return s.classId < 0 ? i % 10 : s.classId;
    if (p.condition.kind === 'text') return s.prompt;
    return null;
  });
}

async function sample(s: SampleSettings): Promise<void> {
  const p = pipeline;
  if (p === null) throw new Error('no model is loaded');
  const guidance = p.condition.kind === 'none' ? 1 : s.guidance;
  checkSamplingSettings(s.sampler, { guidanceScale: guidance });
  const scheduler = createSampler(s.sampler, p.schedulerConfig);
  const backend = p.model.parameters()[0]!.backend;
  const { cond, uncond } = encodeConditions(
    p.condition,
    { values: conditionValues(p, s), guidanceScale: guidance },
    backend,
  );
  const nrow = Math.ceil(Math.sqrt(s.n));
  const vae = p.vae;
  const ac = new AbortController();
  running = ac;
  const start = performance.now();
  let t1 = start;
  try {
    const x0 = await generateAsync(p.model, scheduler, {
      n: s.n,
      seed: s.seed,
      numInferenceSteps: s.steps,
      cond,
      uncond,
      guidanceScale: guidance,
      signal: ac.signal,
      preview: true,
      ...(vae !== null ? { decode: (z: Tensor) => vae.decode(z) } : {}),
      onProgress: async (pr) => {
        const grid = gridFromValues(await pr.preview!.data(), pr.preview!.shape, { nrow });
        const frame = frameOf(grid);
        post({ type: 'progress', step: pr.step, total: pr.total, t: pr.t, frame }, [
          frame.data.buffer,
        ]);
        // The first step includes warming up (WebGPU compiles its pipelines); its x̂_0 is read.
        if (pr.step === 1) t1 = performance.now();
      },
    });
    const total = scheduler.timesteps.length;
    const end = performance.now();
    const ms = end - start;
    const msPerStep = total > 1 ? (end - t1) / (total - 1) : ms;
    try {
      const values = Float32Array.from(await x0.data());
      const grid = gridFromValues(values, x0.shape, { nrow });
      const png = encodePng(grid);
      const frame = frameOf(grid);
      const images = { values, shape: [...x0.shape] };
      post({ type: 'done', frame, png, ms, msPerStep, images }, [
        frame.data.buffer,
        png.buffer,
        values.buffer,
      ]);
    } finally {
      x0.dispose();
    }
  } finally {
    running = null;
    disposeConditioning(cond);
    if (uncond !== null) disposeConditioning(uncond);
  }
}

/** An 8-bit frame of one image [1, C, H, W] in [−1, 1]. */
async function imageFrame(x: Tensor): Promise<Frame> {
  return frameOf(gridFromValues(await x.data(), x.shape, { padding: 0 }));
}

/**
 * Inpaints the page's image under its mask with `inpaintAsync` (mask blending, RePaint
 * resampling; a latent model blends its latents and pastes the kept pixels back), the noise of
 * image 0 of the seed as `sumi edit inpaint` draws it. After every model call it posts x̂_0 with
 * the kept pixels pasted (a pixel model's), then the result.
 */
async function inpaintImage(req: Extract<Request, { type: 'inpaint' }>): Promise<void> {
  const p = pipeline;
  if (p === null) throw new Error('no model is loaded');
  if (p.info.inpaint !== undefined || p.info.upscale !== undefined) {
    throw new Error(
      `${p.info.inpaint !== undefined ? 'an inpainting' : 'an upscaling'} model takes its own ` +
        'inputs; the playground inpaints with a generative model by mask blending',
    );
  }
  const s = req.settings;
  const guidance = p.condition.kind === 'none' ? 1 : s.guidance;
  checkSamplingSettings(s.sampler, { guidanceScale: guidance });
  const scheduler = createSampler(s.sampler, p.schedulerConfig);
  const { imageSize: side, channels } = imageOf(p);
  if (req.image.length !== channels * side * side || req.mask.length !== side * side) {
    throw new Error(
      `the image has ${req.image.length} values and the mask ${req.mask.length}; ` +
        `${channels}×${side}×${side} images and ${side}×${side} masks were expected`,
    );
  }
  const w = p.model.parameters()[0]!;
  const on = { backend: w.backend, dtype: w.dtype };
  const values = conditionValues(p, { ...s, n: 1 });
  const { model, dispose } = conditionedModel(p.model, p.condition, values, guidance);
  const image = tensor(req.image, [1, channels, side, side], on);
  const mask = tensor(req.mask, [1, 1, side, side], on);
  const noise = new ImageNoise(s.seed, 0, 1, p.model.sampleShape, {
    backend: w.backend,
    dtype: w.dtype === 'float64' ? 'float64' : 'float32',
  });
  const predictionType = scheduler.config.predictionType as PredictionType;
  const ac = new AbortController();
  running = ac;
  let preview: Tensor | null = null;
  const start = performance.now();
  let t1 = start;
  let calls = 0;
  try {
    const x = await inpaintAsync(model, scheduler, image, {
      mask,
      numInferenceSteps: s.steps,
      noise: () => noise.next(),
      guidanceScale: guidance,
      resample: req.inpaint.resample,
      jumpLength: req.inpaint.jumpLength,
      knownNoise: req.inpaint.knownNoise,
      vae: p.vae,
      signal: ac.signal,
      // x̂_0 of the step, kept pixels pasted: a picture of where the run is (pixels only).
      ...(p.vae === null
        ? {
            onStep: (info) => {
              preview?.dispose();
              preview = keep(where(mask, stepX0(scheduler, predictionType, info), image));
            },
          }
        : {}),
      onProgress: async (pr) => {
        const shown = preview;
        preview = null;
        try {
          const frame = shown !== null ? await imageFrame(shown) : null;
          post(
            { type: 'inpaint-progress', step: pr.step, total: pr.total, t: pr.t, frame },
            frame !== null ? [frame.data.buffer] : [],
          );
        } finally {
          shown?.dispose();
        }
        calls = pr.total;
        if (pr.step === 1) t1 = performance.now();
      },
    });
    try {
      const end = performance.now();
      const ms = end - start;
      // The first step includes warming up, as in sample().
      const msPerStep = calls > 1 ? (end - t1) / (calls - 1) : ms;
      const frame = await imageFrame(x);
      post({ type: 'inpaint-done', frame, ms, msPerStep }, [frame.data.buffer]);
    } finally {
      x.dispose();
    }
  } finally {
    running = null;
    // Set in onStep (a closure), which the compiler does not follow here.
    (preview as unknown as Tensor | null)?.dispose();
    dispose();
    image.dispose();
    mask.dispose();
  }
}

scope.onmessage = (e) => {
  const req = e.data;
  if (req.type === 'cancel') {
    running?.abort();
    return;
  }
  const kind: Job = req.type;
  const job =
    req.type === 'load'
      ? load(req.model, req.url, req.backend, req.files)
      : req.type === 'sample'
        ? sample(req.settings)
        : inpaintImage(req);
  job
    .catch((err: unknown) => {
      if (err instanceof Error && err.name === 'AbortError') post({ type: 'cancelled', job: kind });
      else {
        const message = err instanceof Error ? err.message : String(err);
        post({ type: 'error', message, job: kind });
      }
    })
    .finally(() => post({ type: 'idle', liveTensors: Tensor.liveCount() }));
};
