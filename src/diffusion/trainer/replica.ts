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
import { noGrad, tensor, tidy, type Tensor } from '../../engine/index.js';
import type { PredictionType } from '../forward.js';
import {
  deviceConditioning,
  type HostConditioning,
  layoutSize,
  type NodePort,
  type NodeWorker,
  type ParameterLayout,
  readParameters,
  replicaModel,
  replicaWorkerData,
  startReplicaWorker,
  writeParameters,
} from '../replica-threads.js';
import { createScheduler } from '../samplers/index.js';
import { makeSchedule } from '../schedule.js';
import { microBatchLoss } from '../train-step.js';
import type { ModelVarType } from '../vlb.js';

export { microBatchRanges, replicaCount } from '../replica-threads.js';

const KIND = 'sumi-replica';

/** What a replica needs to build its model and loss. */
export interface ReplicaSpec {
  model: Record<string, unknown>;
  scheduler: Record<string, unknown>;
  predictionType: PredictionType;
  varianceType: ModelVarType;
  snrGamma: number | null;
  /** Parameter names and sizes, in the order of the shared buffers. */
  params: ParameterLayout;
}

/** One micro-batch: float32 x₀ and ε [n, C, H, W], timesteps, the condition, loss weight. */
export interface ReplicaJob extends HostConditioning {
  shape: number[];
  x0: Float32Array;
  noise: Float32Array;
  timesteps: number[];
  encoder:
    | (NonNullable<HostConditioning['encoder']> & {
        /** Return ∂L/∂τ_θ(y) (the encoder is trained). */
        wantGrad: boolean;
      })
    | null;
  /** The part's share of the batch: its loss is scaled by this before backward. */
  weight: number;
}

interface Shared {
  params: Float32Array;
  grads: Float32Array;
}

/** The main thread's handle on one replica. */
export class Replica {
  readonly #worker: NodeWorker;
  readonly #shared: Shared;
  readonly #sizes: number[];
  #pending: { resolve: (loss: number) => void; reject: (e: Error) => void } | null = null;
  /** Which parameters got a gradient in the last job (the others stay without one). */
  #hasGrad: boolean[] = [];
  #encoderGrad: Float32Array | null = null;
  #failed: Error | null = null;

  private constructor(worker: NodeWorker, shared: Shared, sizes: number[]) {
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
    const total = layoutSize(spec.params);
    const shared: Shared = {
      params: new Float32Array(new SharedArrayBuffer(total * 4)),
      grads: new Float32Array(new SharedArrayBuffer(total * 4)),
    };
    const worker = await startReplicaWorker(
      import.meta.url,
      KIND,
      { spec, shared },
      'training replica',
    );
    const sizes = spec.params.map((p) => p.shape.reduce((a, d) => a * d, 1));
    return new Replica(worker, shared, sizes);
  }

  /** Writes the current parameters where the replicas read them (shared by all replicas). */
  static writeParams(replicas: readonly Replica[], params: readonly Tensor[]): void {
    if (replicas.length === 0) return;
    const dst = replicas[0]!.#shared.params;
    writeParameters(dst, params);
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
function serve(spec: ReplicaSpec, shared: Shared, port: NodePort): void {
  const { model, params } = replicaModel(spec.model, spec.params);
  model.train(true);
  const ddpm = createScheduler('DDPMScheduler', spec.scheduler);
  const schedule = makeSchedule(Float64Array.from(ddpm.betas));
  const opts = {
    predictionType: spec.predictionType,
    varianceType: spec.varianceType,
    snrGamma: spec.snrGamma,
  };
  port.on('message', (job: ReplicaJob) => {
    try {
      noGrad(() => readParameters(shared.params, params));
      for (const p of params) p.zeroGrad();
      let encoderGrad: Float32Array | undefined;
      const loss = tidy(() => {
        const x0 = tensor(job.x0, job.shape);
        const noise = tensor(job.noise, job.shape);
        const cond = deviceConditioning(job, job.shape[0]!, {
          encoderGrad: job.encoder?.wantGrad === true,
        });
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
      let at = 0;
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

const replica = replicaWorkerData<{ spec: ReplicaSpec; shared: Shared }>(KIND);
if (replica !== null) {
  try {
    serve(replica.data.spec, replica.data.shared, replica.port);
  } catch (e) {
    replica.port.postMessage({ error: (e as Error).message });
  }
}
