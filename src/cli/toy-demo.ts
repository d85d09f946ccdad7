/**
 * The demo that runs while no trained image model is shipped: DDPM on a 2-D mixture of Gaussians. A small MLP
 * denoiser is trained with Algorithm 1 (ε-prediction, linear β, AdamW) on the CPU backend, then
 * DDIM draws points from it; the picture shows the data beside the samples. Every piece is the
 * library's own (schedule, addNoise, trainingLoss, the DDIM scheduler, the sampling loop, PNG).
 */
import { encodePng, type RawImage } from '../data/image/index.js';
import {
  addNoise,
  createScheduler,
  defaultScheduleConfig,
  makeSchedule,
  sample,
  trainingLoss,
} from '../diffusion/index.js';
import {
  concat,
  cos,
  cpuBackend,
  gather,
  mul,
  Generator,
  noGrad,
  rand,
  randn,
  reshape,
  sin,
  type Tensor,
  tensor,
  tidy,
} from '../engine/index.js';
import {
  AdamW,
  cosineWithWarmupLr,
  Linear,
  Module,
  ModuleList,
  manualSeed,
  SiLU,
} from '../nn/index.js';

const T = defaultScheduleConfig.numTrainTimesteps;
const FREQS = 8;
/** Fourier features of the position: frequencies 2^k · π, k < X_FREQS (sharp modes need them). */
const X_FREQS = 3;

/**
 * n points from a two-dimensional mixture: eight Gaussians (σ = 0.05) evenly spaced on a circle
 * of radius 0.8, the classic toy target of generative models.
 */
export function ringOfGaussians(n: number, seed: number): Tensor {
  const g = new Generator(seed);
  const u = rand([n], { generator: g, backend: cpuBackend() }).dataSync();
  const z = randn([n, 2], { generator: g, backend: cpuBackend() }).dataSync();
  const pts = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const angle = (Math.floor(u[i]! * 8) * Math.PI) / 4;
    pts[2 * i] = 0.8 * Math.cos(angle) + 0.05 * z[2 * i]!;
    pts[2 * i + 1] = 0.8 * Math.sin(angle) + 0.05 * z[2 * i + 1]!;
  }
  return tensor(pts, [n, 2], { backend: cpuBackend() });
}

/**
 * ε̂(x_t, t): an MLP on [x, sin(x·g_j), cos(x·g_j), sin(t·f_k), cos(t·f_k)] with g_j = 2^j · π
 * and f_k = 2^k · π / T.
 */
export class ToyDenoiser extends Module {
  readonly layers: ModuleList<Linear>;
  readonly act = new SiLU();
  readonly xFreqs = tensor(
    Float32Array.from({ length: X_FREQS }, (_, k) => 2 ** k * Math.PI),
    [1, 1, X_FREQS],
  );
  constructor(width = 128) {
    super();
    const dims = [2 + 4 * X_FREQS + 2 * FREQS, width, width, width, 2];
    this.layers = this.child(
      'layers',
      new ModuleList(dims.slice(1).map((d, i) => new Linear(dims[i]!, d))),
    );
  }
  forward(x: Tensor, timesteps: readonly number[]): Tensor {
    const f = new Float32Array(timesteps.length * FREQS);
    timesteps.forEach((t, b) => {
      for (let k = 0; k < FREQS; k++) f[b * FREQS + k] = (t * 2 ** k * Math.PI) / T;
    });
    const phase = tensor(f, [timesteps.length, FREQS], { backend: x.backend });
    const xf = mul(reshape(x, [-1, 2, 1]), this.xFreqs);
    const xPhase = reshape(xf, [-1, 2 * X_FREQS]);
    let h = concat([x, sin(xPhase), cos(xPhase), sin(phase), cos(phase)], 1);
    this.layers.items.forEach((l, i) => {
      h = l.forward(h);
      if (i < this.layers.length - 1) h = this.act.forward(h);
    });
    return h;
  }
}

export interface ToyDemoOptions {
  steps: number;
  batch: number;
  samples: number;
  samplerSteps: number;
  seed: number;
  onProgress?: (step: number, loss: number) => void;
}

export interface ToyDemoResult {
  png: Uint8Array;
  finalLoss: number;
  /** Mean distance from each sample to its nearest data point, and the same for N(0, I) noise. */
  sampleDistance: number;
  noiseDistance: number;
}

function meanNearest(a: Float32Array, b: Float32Array): number {
  let total = 0;
  for (let i = 0; i < a.length; i += 2) {
    let best = Infinity;
    for (let j = 0; j < b.length; j += 2) {
      const d = (a[i]! - b[j]!) ** 2 + (a[i + 1]! - b[j + 1]!) ** 2;
      if (d < best) best = d;
    }
    total += Math.sqrt(best);
  }
  return total / (a.length / 2);
}

/** Two 256×256 panels, data | samples, as dark dots on white. */
function plot(data: Float32Array, samples: Float32Array): RawImage {
  const S = 256;
  const W = 2 * S + 8;
  const img = new Uint8Array(W * S * 3).fill(255);
  const dot = (pts: Float32Array, x0: number, rgb: readonly number[]): void => {
    for (let i = 0; i < pts.length; i += 2) {
      const px = Math.round(x0 + ((pts[i]! + 1.1) / 2.2) * (S - 1));
      const py = Math.round(((1.1 - pts[i + 1]!) / 2.2) * (S - 1));
      for (let dy = 0; dy < 2; dy++) {
        for (let dx = 0; dx < 2; dx++) {
          const x = px + dx;
          const y = py + dy;
          if (x < x0 || x >= x0 + S || y < 0 || y >= S) continue;
          img.set(rgb, (y * W + x) * 3);
        }
      }
    }
  };
  for (let y = 0; y < S; y++)
    for (let x = S; x < S + 8; x++) img.set([200, 200, 200], (y * W + x) * 3);
  dot(data, 0, [90, 90, 90]);
  dot(samples, S + 8, [20, 30, 90]);
  return { width: W, height: S, channels: 3, data: img };
}

/** Trains the toy denoiser and samples it; pure computation, no I/O. */
export function runToyDemo(o: ToyDemoOptions): ToyDemoResult {
  manualSeed(o.seed);
  const schedule = makeSchedule(defaultScheduleConfig);
  const model = new ToyDenoiser();
  const opt = new AdamW(model, { lr: 2e-3, weightDecay: 0 });
  const data = ringOfGaussians(8192, o.seed + 1);
  const stream = new Generator(o.seed + 2);
  let finalLoss = NaN;
  for (let step = 0; step < o.steps; step++) {
    opt.lr = cosineWithWarmupLr(step, { lr: 2e-3, warmupSteps: 50, trainingSteps: o.steps });
    finalLoss = tidy(() => {
      // Algorithm 1: x0 ~ data, t ~ U{0..T−1}, ε ~ N(0, I), loss = ‖ε − ε̂(x_t, t)‖².
      const pick = rand([o.batch], { generator: stream }).dataSync();
      const tu = rand([o.batch], { generator: stream }).dataSync();
      const rows = Int32Array.from(pick, (v) => Math.floor(v * 8192));
      const timesteps = Array.from(tu, (v) => Math.min(T - 1, Math.floor(v * T)));
      const x0 = gather(data, 0, tensor(rows, [o.batch]));
      const noise = randn([o.batch, 2], { generator: stream });
      const xt = addNoise(schedule, x0, noise, timesteps);
      const out = model.forward(xt, timesteps);
      const loss = trainingLoss(schedule, { x0, noise, timesteps, modelOutput: out });
      model.zeroGrad();
      loss.backward();
      opt.step();
      return loss.itemSync();
    });
    if (step % 50 === 0 || step === o.steps - 1) o.onProgress?.(step, finalLoss);
  }
  const scheduler = createScheduler('DDIMScheduler', { clip_sample: false });
  const xT = randn([o.samples, 2], { seed: o.seed + 3 });
  const out = noGrad(() =>
    sample(scheduler, (x, t) => model.forward(x, new Array<number>(o.samples).fill(t)), xT, {
      numInferenceSteps: o.samplerSteps,
    }),
  );
  const pts = out.dataSync() as Float32Array;
  const ref = data.dataSync().subarray(0, 2 * 2000) as Float32Array;
  const noisePts = xT.dataSync() as Float32Array;
  return {
    png: encodePng(plot(ref, pts)),
    finalLoss,
    sampleDistance: meanNearest(pts, ref),
    noiseDistance: meanNearest(noisePts, ref),
  };
}
