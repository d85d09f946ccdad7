/**
 * The playground's sampling worker: loads a model, samples with `generateAsync` and posts a grid
 * of x̂_0 after every step, so the page never waits on the model. `generateAsync` yields between
 * steps, which is when a 'cancel' message arrives and aborts the run. A latent model's result and
 * every step's x̂_0 are decoded by its vae (`decode`) before they are posted: the page only ever
 * sees pixels.
 */
import {
  checkSamplingSettings,
  type ConditionValue,
  createSampler,
  disposeConditioning,
  encodeConditions,
  encodePng,
  generateAsync,
  gridFromValues,
  initDefaultBackend,
  Tensor,
} from '../src/index.js';
import { type BrowserPipeline, loadBrowserPipeline } from './load-model.js';
import {
  type BackendChoice,
  frameOf,
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

async function load(name: string, url: string, choice: BackendChoice): Promise<void> {
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
  const p = await loadBrowserPipeline(url);
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
      const grid = gridFromValues(await x0.data(), x0.shape, { nrow });
      const png = encodePng(grid);
      const frame = frameOf(grid);
      post({ type: 'done', frame, png, ms, msPerStep }, [frame.data.buffer, png.buffer]);
    } finally {
      x0.dispose();
    }
  } finally {
    running = null;
    disposeConditioning(cond);
    if (uncond !== null) disposeConditioning(uncond);
  }
}

scope.onmessage = (e) => {
  const req = e.data;
  if (req.type === 'cancel') {
    running?.abort();
    return;
  }
  const job = req.type === 'load' ? load(req.model, req.url, req.backend) : sample(req.settings);
  job
    .catch((err: unknown) => {
      if (err instanceof Error && err.name === 'AbortError') post({ type: 'cancelled' });
      else post({ type: 'error', message: err instanceof Error ? err.message : String(err) });
    })
    .finally(() => post({ type: 'idle', liveTensors: Tensor.liveCount() }));
};
