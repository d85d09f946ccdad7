/**
 * Replicas of a denoiser on worker threads (Node only; the CPU backend): what the trainer's
 * data-parallel micro-batches (trainer/replica.ts) and sampling's split batches
 * (sampling-replicas.ts) share. A replica is a fresh model built from the denoiser's config whose
 * parameters are bound, by name, to values copied from shared memory; a part of the batch goes to
 * it with its condition as plain arrays (`HostConditioning`).
 *
 * Node's modules come through `process.getBuiltinModule`, so that importing this file is harmless
 * in a browser (there are simply no replicas).
 */
import { type Tensor, tensor } from '../engine/index.js';
// create.js, not the models' index: that one brings the file loaders (node:fs) along.
import { createModel } from '../nn/models/create.js';
import type { Conditioning, Denoiser } from '../nn/models/denoiser.js';

/** The part of node:worker_threads the replicas use. */
interface WorkerThreads {
  Worker: new (source: string, options: object) => NodeWorker;
  isMainThread: boolean;
  parentPort: NodePort | null;
  workerData: unknown;
  receiveMessageOnPort(port: NodePort): { message: unknown } | undefined;
  MessageChannel: new () => { port1: NodePort; port2: NodePort };
}

export interface NodeWorker {
  postMessage(message: unknown, transfer?: readonly ArrayBuffer[]): void;
  on(event: 'message', listener: (m: never) => void): void;
  on(event: 'error', listener: (e: Error) => void): void;
  once(event: 'message', listener: (m: never) => void): void;
  once(event: 'error', listener: (e: Error) => void): void;
  ref(): void;
  unref(): void;
  terminate(): Promise<number>;
}

export interface NodePort {
  postMessage(message: unknown, transfer?: readonly ArrayBuffer[]): void;
  on(event: 'message', listener: (m: never) => void): void;
  unref(): void;
  close(): void;
}

interface NodeProcess {
  env: Record<string, string | undefined>;
  versions?: { node?: string };
  getBuiltinModule?: (name: string) => unknown;
}

function nodeModule<T>(name: string): T | null {
  const p = (globalThis as { process?: NodeProcess }).process;
  if (!p?.versions?.node || p.getBuiltinModule === undefined) return null;
  return p.getBuiltinModule(name) as T;
}

/** node:worker_threads, or null outside Node. */
export function workerThreads(): WorkerThreads | null {
  return nodeModule<WorkerThreads>('node:worker_threads');
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

/**
 * Replicas to start: one per core beyond the first (SUMI_CPU_THREADS, else the cores, at most 8),
 * at most parts − 1; none with one thread or outside Node.
 */
export function replicaCount(parts: number): number {
  const os = nodeModule<{ availableParallelism(): number }>('node:os');
  if (os === null || workerThreads() === null) return 0;
  const env = (globalThis as { process?: NodeProcess }).process?.env;
  const requested = Number(env?.['SUMI_CPU_THREADS'] ?? os.availableParallelism());
  const threads = Math.min(8, Math.max(1, Math.floor(requested) || 1));
  return Math.max(0, Math.min(parts - 1, threads - 1));
}

/**
 * A worker that imports `moduleUrl` (the module whose worker side serves `kind`) with `data` as
 * its workerData (and `transfer`'s ports moved to it). It says `{ ready: true }` once it can work.
 */
export function spawnReplicaWorker(
  moduleUrl: string,
  kind: string,
  data: object,
  transfer: readonly unknown[] = [],
): NodeWorker {
  const wt = workerThreads();
  if (wt === null) throw new Error('no worker threads here');
  // Under tsx (TypeScript sources) the worker registers tsx's loader before importing.
  const loader = moduleUrl.endsWith('.ts')
    ? `await (await import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})).register();`
    : '';
  return new wt.Worker(`${loader} await import(${JSON.stringify(moduleUrl)});`, {
    eval: true,
    workerData: { kind, ...data },
    transferList: transfer,
    // An eval'd worker is CommonJS unless told; top-level await needs a module.
    type: 'module',
  });
}

/**
 * `spawnReplicaWorker`, resolved once the worker is ready; `what` names the replica in errors
 * ('training replica').
 */
export async function startReplicaWorker(
  moduleUrl: string,
  kind: string,
  data: object,
  what: string,
): Promise<NodeWorker> {
  const worker = spawnReplicaWorker(moduleUrl, kind, data);
  try {
    await new Promise<void>((resolve, reject) => {
      worker.once('message', (m: { ready?: boolean; error?: string }) =>
        m.ready === true ? resolve() : reject(new Error(`${what}: ${m.error}`)),
      );
      worker.once('error', reject);
    });
  } catch (e) {
    await worker.terminate();
    throw e;
  }
  return worker;
}

/**
 * In a worker started by `startReplicaWorker` for `kind`: its data and the port to the main
 * thread; null on any other thread.
 */
export function replicaWorkerData<T>(kind: string): { data: T; port: NodePort } | null {
  const wt = workerThreads();
  if (wt === null || wt.isMainThread || wt.parentPort === null) return null;
  const data = wt.workerData as { kind?: string } | null;
  return data?.kind === kind ? { data: data as T, port: wt.parentPort } : null;
}

/** Parameter names and shapes, in the order of the shared buffer. */
export type ParameterLayout = { name: string; shape: number[] }[];

export function parameterLayout(named: readonly [string, Tensor][]): ParameterLayout {
  return named.map(([name, t]) => ({ name, shape: [...t.shape] }));
}

/** Floats of every parameter of a layout. */
export function layoutSize(layout: ParameterLayout): number {
  return layout.reduce((n, p) => n + p.shape.reduce((a, d) => a * d, 1), 0);
}

/** Copies the parameters' values one after the other into dst. */
export function writeParameters(dst: Float32Array, params: readonly Tensor[]): void {
  let at = 0;
  for (const p of params) {
    const data = p.dataSync();
    dst.set(data, at);
    at += data.length;
  }
}

type ReplicaModule = Denoiser & {
  namedParameters(): [string, Tensor][];
  train(mode?: boolean): unknown;
};

/**
 * A replica's model: built from the denoiser's config, its parameters (those of `layout`, in that
 * order) to be set from shared memory by `readParameters`.
 */
export function replicaModel(
  config: Record<string, unknown>,
  layout: ParameterLayout,
): { model: ReplicaModule; params: Tensor[] } {
  const model = createModel(config) as unknown as ReplicaModule;
  const named = new Map(model.namedParameters());
  const params = layout.map((p) => {
    const t = named.get(p.name);
    if (t === undefined) throw new Error(`the replica's model has no parameter ${p.name}`);
    return t;
  });
  return { model, params };
}

/** Sets each parameter from src (the layout of `writeParameters`). */
export function readParameters(src: Float32Array, params: readonly Tensor[]): void {
  let at = 0;
  for (const p of params) {
    const n = p.size;
    p.setData(tensor(src.subarray(at, at + n), p.shape));
    at += n;
  }
}

/** A part's condition as arrays, as a replica job carries it. */
export interface HostConditioning {
  classLabels: Int32Array | null;
  /** τ_θ(y) [n, L, D] for cross-attention, and its token mask [n, L] (int32, 1 = attended). */
  encoder: { hiddenStates: Float32Array; shape: number[]; attentionMask: Int32Array | null } | null;
  /** An image [n, C', H, W] joined to x_t on the channels (SR3's, an inpainting model's). */
  concatImage: { data: Float32Array; shape: number[] } | null;
}

/** The arrays of a (CPU, float32) conditioning; a ControlNet condition is not carried. */
export function hostConditioning(cond: Conditioning): HostConditioning {
  const states = cond.encoderHiddenStates ?? null;
  const image = cond.concatImage ?? null;
  return {
    classLabels: (cond.classLabels?.dataSync() as Int32Array | undefined) ?? null,
    encoder:
      states === null
        ? null
        : {
            hiddenStates: states.dataSync() as Float32Array,
            shape: [...states.shape],
            attentionMask:
              (cond.encoderAttentionMask?.dataSync() as Int32Array | undefined) ?? null,
          },
    concatImage:
      image === null ? null : { data: image.dataSync() as Float32Array, shape: [...image.shape] },
  };
}

/** The tensors of n rows' host conditioning, in the replica (τ_θ(y) as a leaf when asked). */
export function deviceConditioning(
  host: HostConditioning,
  n: number,
  opts: { encoderGrad?: boolean } = {},
): Conditioning {
  const cond: Conditioning = {};
  if (host.classLabels !== null) cond.classLabels = tensor(host.classLabels, [n]);
  if (host.concatImage !== null) {
    cond.concatImage = tensor(host.concatImage.data, host.concatImage.shape);
  }
  const enc = host.encoder;
  if (enc !== null) {
    cond.encoderHiddenStates = tensor(enc.hiddenStates, enc.shape, {
      requiresGrad: opts.encoderGrad === true,
    });
    if (enc.attentionMask !== null) {
      cond.encoderAttentionMask = tensor(enc.attentionMask, enc.shape.slice(0, 2), {
        dtype: 'int32',
      });
    }
  }
  return cond;
}
