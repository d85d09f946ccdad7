/**
 * Data-parallel training on the CPU: a worker thread holds a replica of the denoiser and computes
 * the gradient of one micro-batch while the main thread computes another.
 *
 * The trainer always splits a batch into `microBatches` parts and accumulates their gradients in
 * part order (g = g₀ + g₁ + …, each part's loss weighted by its share of the batch), whether the
 * parts run here one after the other or on replicas at the same time: each part's arithmetic is
 * the same on either thread (single-threaded kernels, or helper-thread splits that never change
 * an element), so a run gives the same weights bit for bit with or without replicas.
 *
 * Per step the main thread writes the parameters into shared memory, posts each replica its part
 * (x₀, ε, t and the encoded condition), and reads the replica's gradients back from shared memory.
 * A condition source with trained modules (a text encoder τ_θ) stays on the main thread: the
 * replica gets τ_θ(y) as a value and returns ∂L/∂τ_θ(y), through which the main thread runs the
 * encoder's backward.
 */
import { availableParallelism } from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

import { noGrad, tensor, tidy, type Tensor } from '../../engine/index.js';
import { createModel, type Denoiser } from '../../nn/models/index.js';
import type { Conditioning } from '../../nn/models/denoiser.js';
import type { PredictionType } from '../forward.js';
import { createScheduler } from '../samplers/index.js';
import { makeSchedule } from '../schedule.js';
import { microBatchLoss } from '../train-step.js';
import type { ModelVarType } from '../vlb.js';

/** What a replica needs to build its model and loss. */
export interface ReplicaSpec {
  model: Record<string, unknown>;
  scheduler: Record<string, unknown>;
  predictionType: PredictionType;
  varianceType: ModelVarType;
  snrGamma: number | null;
  /** Parameter names and sizes, in the order of the shared buffers. */
  params: { name: string; shape: number[] }[];
}

/** One micro-batch: float32 x₀ and ε [n, C, H, W], timesteps, the condition, loss weight. */
export interface ReplicaJob {
  shape: number[];
  x0: Float32Array;
  noise: Float32Array;
  timesteps: number[];
  classLabels: Int32Array | null;
  /** τ_θ(y) [n, L, D] for cross-attention, and its token mask [n, L] (int32, 1 = attended). */
  encoder: {
    hiddenStates: Float32Array;
    shape: number[];
    attentionMask: Int32Array | null;
    /** Return ∂L/∂τ_θ(y) (the encoder is trained). */
    wantGrad: boolean;
  } | null;
  /** An image [n, C', H, W] joined to x_t on the channels (SR3's, an inpainting model's). */
  concatImage: { data: Float32Array; shape: number[] } | null;
  /** The part's share of the batch: its loss is scaled by this before backward. */
  weight: number;
}

interface Shared {
  params: Float32Array;
  grads: Float32Array;
}

/** Rows [lo, hi) of each of `parts` micro-batches of a batch of B. */
export function microBatchRanges(batch: number, parts: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < parts; i++) {
    const lo = Math.floor((i * batch) / parts);
    const hi = Math.floor(((i + 1) * batch) / parts);
    if (hi > lo) out.push([lo, hi]);
  }
  return out;
}

/** Replicas to start: one per core beyond the first, at most parts − 1; none with one thread. */
export function replicaCount(parts: number): number {
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process
    ?.env;
  const requested = Number(env?.['SUMI_CPU_THREADS'] ?? availableParallelism());
  const threads = Math.min(8, Math.max(1, Math.floor(requested) || 1));
  return Math.max(0, Math.min(parts - 1, threads - 1));
}

/** The main thread's handle on one replica. */
export class Replica {
  readonly #worker: Worker;
  readonly #shared: Shared;
  readonly #sizes: number[];
  #pending: { resolve: (loss: number) => void; reject: (e: Error) => void } | null = null;
  /** Which parameters got a gradient in the last job (the others stay without one). */
  #hasGrad: boolean[] = [];
  #encoderGrad: Float32Array | null = null;
  #failed: Error | null = null;

  private constructor(worker: Worker, shared: Shared, sizes: number[]) {
    this.#worker = worker;
    this.#shared = shared;
    this.#sizes = sizes;
    worker.on('message', (m: ReplicaReply) => {
      const p = this.#pending;
      this.#pending = null;
      this.#worker.unref();
      if (m.error !== undefined) p?.reject(new Error(`training replica: ${m.error}`));
      else {
        this.#hasGrad = m.hasGrad!;
        this.#encoderGrad = m.encoderGrad ?? null;
        p?.resolve(m.loss!);
      }
    });
    worker.on('error', (e: Error) => {
      this.#failed = e;
      this.#pending?.reject(new Error(`training replica: ${e.message}`));
      this.#pending = null;
    });
    worker.unref();
  }

  /** Starts a replica of the model described by spec; resolves once it is ready. */
  static async start(spec: ReplicaSpec): Promise<Replica> {
    const total = spec.params.reduce((n, p) => n + p.shape.reduce((a, d) => a * d, 1), 0);
    const shared: Shared = {
      params: new Float32Array(new SharedArrayBuffer(total * 4)),
      grads: new Float32Array(new SharedArrayBuffer(total * 4)),
    };
    const self = import.meta.url;
    // Under tsx (TypeScript sources) the worker registers tsx's loader before importing.
    const loader = self.endsWith('.ts')
      ? `await (await import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})).register();`
      : '';
    const source = `${loader} await import(${JSON.stringify(self)});`;
    const worker = new Worker(source, {
      eval: true,
      workerData: { kind: 'sumi-replica', spec, shared },
      // An eval'd worker is CommonJS unless told; top-level await needs a module.
      ...({ type: 'module' } as object),
    });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', (m: { ready?: boolean; error?: string }) =>
        m.ready === true ? resolve() : reject(new Error(`training replica: ${m.error}`)),
      );
      worker.once('error', reject);
    });
    const sizes = spec.params.map((p) => p.shape.reduce((a, d) => a * d, 1));
    return new Replica(worker, shared, sizes);
  }

  /** Writes the current parameters where the replicas read them (shared by all replicas). */
  static writeParams(replicas: readonly Replica[], params: readonly Tensor[]): void {
    if (replicas.length === 0) return;
    const dst = replicas[0]!.#shared.params;
    let at = 0;
    for (const p of params) {
      const data = p.dataSync();
      dst.set(data, at);
      at += data.length;
    }
    for (const r of replicas.slice(1)) r.#shared.params.set(dst);
  }

  /** Posts a micro-batch; resolves with its weighted loss once the gradients are written. */
  run(job: ReplicaJob): Promise<number> {
    if (this.#failed !== null) return Promise.reject(this.#failed);
    if (this.#pending !== null) throw new Error('training replica: a job is already running');
    return new Promise<number>((resolve, reject) => {
      this.#pending = { resolve, reject };
      // Referenced while a job runs: the awaiting step keeps the process alive.
      this.#worker.ref();
      this.#worker.postMessage(job);
    });
  }

  /**
   * The replica's gradients as tensors in parameter order (after `run` resolved); null for a
   * parameter the micro-batch gave no gradient.
   */
  grads(shapes: readonly (readonly number[])[]): (Tensor | null)[] {
    let at = 0;
    return this.#sizes.map((n, i) => {
      const g = this.#hasGrad[i]
        ? tensor(this.#shared.grads.subarray(at, at + n), [...shapes[i]!])
        : null;
      at += n;
      return g;
    });
  }

  /** ∂L/∂τ_θ(y) of the last job [n, L, D] when it asked for it (after `run` resolved). */
  get encoderGrad(): Float32Array | null {
    return this.#encoderGrad;
  }

  async close(): Promise<void> {
    await this.#worker.terminate();
  }
}

interface ReplicaReply {
  loss?: number;
  hasGrad?: boolean[];
  encoderGrad?: Float32Array;
  error?: string;
}

/** The worker side: builds the replica and answers jobs until terminated. */
function serve(spec: ReplicaSpec, shared: Shared): void {
  const model = createModel(spec.model) as unknown as Denoiser & {
    namedParameters(): [string, Tensor][];
    train(mode?: boolean): unknown;
  };
  model.train(true);
  const named = new Map(model.namedParameters());
  const params = spec.params.map((p) => {
    const t = named.get(p.name);
    if (t === undefined) throw new Error(`the replica's model has no parameter ${p.name}`);
    return t;
  });
  const ddpm = createScheduler('DDPMScheduler', spec.scheduler);
  const schedule = makeSchedule(Float64Array.from(ddpm.betas));
  const opts = {
    predictionType: spec.predictionType,
    varianceType: spec.varianceType,
    snrGamma: spec.snrGamma,
  };
  const port = parentPort!;
  port.on('message', (job: ReplicaJob) => {
    try {
      let at = 0;
      noGrad(() => {
        for (const p of params) {
          const n = p.size;
          p.setData(tensor(shared.params.subarray(at, at + n), p.shape));
          at += n;
        }
      });
      for (const p of params) p.zeroGrad();
      let encoderGrad: Float32Array | undefined;
      const loss = tidy(() => {
        const x0 = tensor(job.x0, job.shape);
        const noise = tensor(job.noise, job.shape);
        const n = job.shape[0]!;
        const cond: Conditioning = {};
        if (job.classLabels !== null) cond.classLabels = tensor(job.classLabels, [n]);
        if (job.concatImage !== null) {
          cond.concatImage = tensor(job.concatImage.data, job.concatImage.shape);
        }
        const enc = job.encoder;
        if (enc !== null) {
          const states = tensor(enc.hiddenStates, enc.shape, { requiresGrad: enc.wantGrad });
          cond.encoderHiddenStates = states;
          if (enc.attentionMask !== null) {
            cond.encoderAttentionMask = tensor(enc.attentionMask, enc.shape.slice(0, 2), {
              dtype: 'int32',
            });
          }
        }
        const l = microBatchLoss(model, schedule, opts, {
          x0,
          noise,
          timesteps: job.timesteps,
          cond,
          weight: job.weight,
        });
        l.backward();
        const states = cond.encoderHiddenStates;
        if (states?.grad) {
          encoderGrad = Float32Array.from(states.grad.dataSync());
          states.zeroGrad(); // a leaf's gradient is kept past the scope
        }
        return l.dataSync()[0]!;
      });
      at = 0;
      const hasGrad = params.map((p) => p.grad !== null);
      for (const p of params) {
        if (p.grad !== null) shared.grads.set(p.grad.dataSync(), at);
        at += p.size;
      }
      const reply: ReplicaReply = { loss, hasGrad, ...(encoderGrad ? { encoderGrad } : {}) };
      port.postMessage(reply);
    } catch (e) {
      port.postMessage({ error: (e as Error).message });
    }
  });
  port.postMessage({ ready: true });
}

const data = workerData as { kind?: string; spec: ReplicaSpec; shared: Shared } | null;
if (!isMainThread && data?.kind === 'sumi-replica') {
  try {
    serve(data.spec, data.shared);
  } catch (e) {
    parentPort!.postMessage({ error: (e as Error).message });
  }
}
