/**
 * Sampling on two cores (the CPU backend in Node): each call of the denoiser is split in two
 * halves of its batch; this thread computes the first while a replica of the denoiser on a worker
 * thread computes the second, and the halves are joined again. Under classifier-free guidance the
 * batch is [x; x] under [c; ∅], so the halves are the conditional and the unconditional pass.
 *
 * The sampler sees the same model output bit for bit: every row of the CPU kernels is computed
 * the same way whatever the batch it is in (the gemm's blocking runs over the reduction axis K
 * for each output element in one order, never over the batch; group norm, attention and the
 * time embedding are per row), which `sampling-replicas.test.ts` checks image by image.
 *
 * The model call stays synchronous, as the samplers want it: the job is posted to the replica,
 * this thread computes its half, then blocks on a shared counter (Atomics.wait) until the replica
 * has answered through a MessagePort read with receiveMessageOnPort. The weights are copied once,
 * when the replica starts; it loads in the background, and until it says it is ready (a shared
 * flag) every call runs on this thread alone. A replica computes what this thread would only for a plain
 * UNet2DModel or UNet2DConditionModel in float32 on the CPU backend (unconditional, class labels,
 * text embeddings with their mask, a joined image); anything else (ControlNet, LoRA adapters,
 * WebGPU, float64) gets no replica and samples on one thread.
 */
import {
  concat,
  defaultBackend,
  noGrad,
  setCpuHelperThreads,
  slice,
  type Tensor,
  tensor,
  tidy,
} from '../engine/index.js';
import type { Conditioning, Denoiser, TimestepInput } from '../nn/models/index.js';
import {
  deviceConditioning,
  type HostConditioning,
  microBatchRanges,
  type NodePort,
  type NodeWorker,
  type ParameterLayout,
  parameterLayout,
  layoutSize,
  readParameters,
  replicaCount,
  replicaModel,
  replicaWorkerData,
  spawnReplicaWorker,
  workerThreads,
  writeParameters,
  hostConditioning,
} from './replica-threads.js';

const KIND = 'sumi-sampling-replica';
/** Control slots: the number of the last job the replica answered; its state (STATE_*). */
const DONE = 0;
const STATE = 1;
const STATE_LOADING = 0;
const STATE_READY = 1;
const STATE_FAILED = -1;
/** How long a model call waits for the replica before giving up on it. */
const REPLICA_TIMEOUT_MS = 600_000;
/** Denoiser classes a replica is built for (from their config alone). */
const PLAIN_DENOISERS = ['UNet2DModel', 'UNet2DConditionModel'];

/**
 * Images per batch from which `generateBatches` samples with a replica by default: below it the
 * half-batches are too small for the second core to pay for the copies.
 */
export const MIN_REPLICA_BATCH = 8;

interface SamplingJob {
  seq: number;
  x: Float32Array;
  shape: number[];
  t: number | number[];
  cond: HostConditioning;
}

type SamplingReply = { output: Float32Array; shape: number[] } | { error: string };

interface WorkerSide {
  config: Record<string, unknown>;
  layout: ParameterLayout;
  weights: Float32Array;
  control: SharedArrayBuffer;
  reply: NodePort;
}

/** Replicas running at present: the gemm helper threads are off while any does. */
let running = 0;

/** A denoiser whose calls are split between this thread and a replica (see the module comment). */
export class SamplingReplicas {
  readonly #denoiser: Denoiser;
  readonly #worker: NodeWorker;
  readonly #replies: NodePort;
  readonly #control: Int32Array;
  #seq = 0;
  #closed = false;

  private constructor(
    denoiser: Denoiser,
    worker: NodeWorker,
    replies: NodePort,
    control: Int32Array,
  ) {
    this.#denoiser = denoiser;
    this.#worker = worker;
    this.#replies = replies;
    this.#control = control;
  }

  /**
   * Starts a replica of `denoiser` on a worker thread (it loads in the background), or returns
   * null where none can compute what this thread would (see the module comment: another class, a
   * layer whose forward is replaced, as attached LoRA adapters do, float64, WebGPU), or where
   * there is no second core (SUMI_CPU_THREADS=1) or no worker threads. A replica that fails to
   * load (parameters its config does not build) leaves every call on this thread.
   */
  static start(denoiser: Denoiser): SamplingReplicas | null {
    const named = denoiser.namedParameters();
    const eligible =
      PLAIN_DENOISERS.includes(denoiser.className) &&
      // A layer's forward replaced on the instance (an attached LoRA network) is not in the config.
      denoiser.namedModules().every(([, m]) => !Object.hasOwn(m, 'forward')) &&
      named.every(([, t]) => t.dtype === 'float32' && t.backend.name === 'cpu') &&
      defaultBackend().name === 'cpu' &&
      replicaCount(2) > 0;
    const wt = workerThreads();
    if (!eligible || wt === null) return null;
    const layout = parameterLayout(named);
    const weights = new Float32Array(new SharedArrayBuffer(layoutSize(layout) * 4));
    writeParameters(
      weights,
      named.map(([, t]) => t),
    );
    const control = new Int32Array(new SharedArrayBuffer(8));
    const { port1, port2 } = new wt.MessageChannel();
    const side: WorkerSide = {
      config: JSON.parse(denoiser.configJson()) as Record<string, unknown>,
      layout,
      weights,
      control: control.buffer,
      reply: port2,
    };
    let worker: NodeWorker;
    try {
      worker = spawnReplicaWorker(import.meta.url, KIND, side, [port2]);
    } catch {
      port1.close();
      return null;
    }
    // A worker that cannot start (no module loader, say) is never used.
    worker.on('error', () => Atomics.store(control, STATE, STATE_FAILED));
    // Waited for synchronously (Atomics), never through the event loop: neither keeps Node alive.
    worker.unref();
    port1.unref();
    if (running++ === 0) setCpuHelperThreads(false);
    return new SamplingReplicas(denoiser, worker, port1, control);
  }

  /** Threads computing each model call at present: 2 once the replica is ready, else 1. */
  get threads(): number {
    return !this.#closed && Atomics.load(this.#control, STATE) === STATE_READY ? 2 : 1;
  }

  /**
   * Waits (at most `timeoutMs`) until the replica is ready or has failed; resolves to the threads
   * computing each call then (as `threads`).
   */
  async ready(timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#closed && Atomics.load(this.#control, STATE) === STATE_LOADING) {
      if (Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return this.threads;
  }

  /**
   * The denoiser's output for x_t [B, C, H, W] at t under c, rows [0, B/2) computed here and the
   * rest on the replica; the whole call here until the replica is ready, and for B < 2 or a
   * ControlNet condition.
   */
  denoise(sample: Tensor, timestep: TimestepInput, cond: Conditioning = {}): Tensor {
    const b = sample.shape[0]!;
    if (this.threads < 2 || b < 2 || (cond.controlnetCond ?? null) !== null) {
      return this.#denoiser.denoise(sample, timestep, cond);
    }
    const [[lo, h], [, hi]] = microBatchRanges(b, 2) as [[number, number], [number, number]];
    const steps = timestepRows(timestep, b);
    return tidy(() => {
      const x = slice(sample, [h], [hi]);
      const seq = ++this.#seq;
      const job: SamplingJob = {
        seq,
        x: x.dataSync() as Float32Array,
        shape: [...x.shape],
        t: typeof steps === 'number' ? steps : steps.slice(h, hi),
        cond: hostConditioning(conditioningRows(cond, h, hi)),
      };
      this.#worker.postMessage(job);
      const local = this.#denoiser.denoise(
        slice(sample, [lo], [h]),
        typeof steps === 'number' ? steps : steps.slice(lo, h),
        conditioningRows(cond, lo, h),
      );
      const reply = this.#await(seq);
      if ('error' in reply) throw new Error(`sampling replica: ${reply.error}`);
      return concat([local, tensor(reply.output, reply.shape)], 0);
    });
  }

  /** Blocks until the replica has answered job `seq`, and takes its reply. */
  #await(seq: number): SamplingReply {
    const deadline = Date.now() + REPLICA_TIMEOUT_MS;
    while (Atomics.load(this.#control, DONE) !== seq) {
      if (Date.now() > deadline) {
        throw new Error(`sampling replica: no answer in ${REPLICA_TIMEOUT_MS / 1000} s`);
      }
      Atomics.wait(this.#control, DONE, seq - 1, 1000);
    }
    const got = workerThreads()!.receiveMessageOnPort(this.#replies);
    if (got === undefined) throw new Error('sampling replica: answered without a reply');
    return got.message as SamplingReply;
  }

  /** Stops the replica (calls after it run on this thread alone). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (--running === 0) setCpuHelperThreads(true);
    this.#replies.close();
    await this.#worker.terminate();
  }
}

/**
 * Threads that `generateBatches` samples with when not told (`replicas`): 2 for batches of at
 * least MIN_REPLICA_BATCH images on the CPU backend, else 1 (a GPU backend computes a batch at
 * once). Whether a replica really starts is `SamplingReplicas.start`'s call.
 */
export function defaultSamplingThreads(imagesPerBatch: number): 1 | 2 {
  return defaultBackend().name === 'cpu' && imagesPerBatch >= MIN_REPLICA_BATCH ? 2 : 1;
}

/** The timestep as a number, or one per row of a batch of b. */
function timestepRows(t: TimestepInput, b: number): number | number[] {
  if (typeof t === 'number') return t;
  const values = Array.from(Array.isArray(t) ? (t as readonly number[]) : (t as Tensor).dataSync());
  if (values.length === 1) return values[0]!;
  if (values.length !== b) throw new Error(`${values.length} timesteps for a batch of ${b}`);
  return values;
}

/** Rows [lo, hi) of every tensor of a conditioning. */
function conditioningRows(cond: Conditioning, lo: number, hi: number): Conditioning {
  const out: Conditioning = {};
  for (const key of Object.keys(cond) as (keyof Conditioning)[]) {
    const t = cond[key];
    if (t !== null && t !== undefined) out[key] = slice(t, [lo], [hi]);
  }
  return out;
}

/** The worker side: builds the replica and answers model calls until terminated. */
function serve(side: WorkerSide, port: NodePort): void {
  const { model, params } = replicaModel(side.config, side.layout);
  const all = model.namedParameters();
  if (all.length !== params.length || params.some((p, i) => p !== all[i]![1])) {
    throw new Error('the model has parameters its config does not build (adapters?)');
  }
  for (const [i, p] of params.entries()) {
    if (p.shape.join() !== side.layout[i]!.shape.join()) {
      throw new Error(
        `parameter ${side.layout[i]!.name}: shape [${p.shape.join(', ')}] in the replica`,
      );
    }
  }
  model.train(false);
  noGrad(() => readParameters(side.weights, params));
  const control = new Int32Array(side.control);
  port.on('message', (job: SamplingJob) => {
    let reply: SamplingReply;
    try {
      reply = noGrad(() =>
        tidy(() => {
          const n = job.shape[0]!;
          const out = model.denoise(
            tensor(job.x, job.shape),
            job.t,
            deviceConditioning(job.cond, n),
          );
          return { output: Float32Array.from(out.dataSync()), shape: [...out.shape] };
        }),
      );
    } catch (e) {
      reply = { error: e instanceof Error ? e.message : String(e) };
    }
    side.reply.postMessage(reply, 'output' in reply ? [reply.output.buffer as ArrayBuffer] : []);
    Atomics.store(control, DONE, job.seq);
    Atomics.notify(control, DONE);
  });
  Atomics.store(control, STATE, STATE_READY);
}

const replica = replicaWorkerData<WorkerSide>(KIND);
if (replica !== null) {
  try {
    serve(replica.data, replica.port);
  } catch {
    // The main thread goes on alone.
    Atomics.store(new Int32Array(replica.data.control), STATE, STATE_FAILED);
  }
}
