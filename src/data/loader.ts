/**
 * Batches for training: a stream of steps 0, 1, 2, ... where step s is batch s % stepsPerEpoch of
 * epoch floor(s / stepsPerEpoch). Everything random is drawn from the engine's Philox stream
 * (`rand`) at positions fixed by (seed, epoch), so the batch at a step depends only on
 * (dataset, options, step): a run resumed at step k sees exactly the batches an uninterrupted run
 * sees from k on.
 *
 * Per epoch e, with n samples and B = ceil(n / 4) Philox blocks (one uniform per sample):
 *   blocks [2eB, 2eB + B)        uniforms for the shuffle (Fisher-Yates, from the top:
 *                                swap i with floor(u_i * (i + 1)), i = n-1 .. 1)
 *   blocks [2eB + B, 2eB + 2B)   uniforms for the flips (position p is mirrored when u_p < 1/2)
 *
 * Batches hold images scaled from the dataset's [0, 1] to [-1, 1], as [B, C, H, W] tensors, and,
 * for labelled datasets, class indices as an int32 tensor [B].
 */
import {
  type Backend,
  cpuBackend,
  defaultBackend,
  type FloatDType,
  rand,
  type Tensor,
  tensor,
} from '../engine/index.js';
import type { Dataset } from './dataset.js';

export interface DataLoaderOptions {
  batchSize: number;
  /** Seed of the shuffle and flips (integer in [0, 2^53); default 0). */
  seed?: number;
  /** Reshuffle every epoch (default true); false keeps dataset order. */
  shuffle?: boolean;
  /** Drop the last, smaller batch of an epoch (default true: every batch is full). */
  dropLast?: boolean;
  /** Mirror each image left-right with probability 1/2 (default false). */
  flip?: boolean;
  /** Backend of the batch tensors (default: the default backend). */
  backend?: Backend;
  /** dtype of the image tensor (default float32). */
  dtype?: FloatDType;
}

export interface Batch {
  /** Images [B, C, H, W] in [-1, 1]. */
  x: Tensor;
  /** Class indices [B], int32, when the dataset has labels. */
  labels?: Tensor;
  /** Dataset index of each image. */
  indices: number[];
  /** Whether each image was mirrored. */
  flipped: boolean[];
  step: number;
  epoch: number;
}

export class DataLoader {
  readonly dataset: Dataset;
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly flip: boolean;
  readonly stepsPerEpoch: number;
  readonly #backend: Backend | undefined;
  readonly #dtype: FloatDType;
  #epochCache: { epoch: number; order: Int32Array; flips: Uint8Array } | null = null;

  constructor(dataset: Dataset, opts: DataLoaderOptions) {
    const { batchSize } = opts;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new Error(`DataLoader: batchSize must be a positive integer, got ${batchSize}`);
    }
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.seed = opts.seed ?? 0;
    if (!Number.isSafeInteger(this.seed) || this.seed < 0) {
      throw new Error(`DataLoader: seed must be an integer in [0, 2^53), got ${this.seed}`);
    }
    this.shuffle = opts.shuffle ?? true;
    this.dropLast = opts.dropLast ?? true;
    this.flip = opts.flip ?? false;
    this.#backend = opts.backend;
    this.#dtype = opts.dtype ?? 'float32';
    const n = dataset.length;
    this.stepsPerEpoch = this.dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
    if (this.stepsPerEpoch === 0) {
      throw new Error(
        `DataLoader: ${dataset.name} has ${n} samples, fewer than one batch of ${batchSize}` +
          (n > 0 ? ' (use dropLast: false or a smaller batch)' : ''),
      );
    }
  }

  /** Dataset indices in the order epoch `epoch` visits them, and which are mirrored. */
  epochOrder(epoch: number): { order: Int32Array; flips: Uint8Array } {
    if (!Number.isSafeInteger(epoch) || epoch < 0)
      throw new Error(`DataLoader: bad epoch ${epoch}`);
    if (this.#epochCache?.epoch === epoch) return this.#epochCache;
    const n = this.dataset.length;
    const blocks = Math.ceil(n / 4);
    const order = Int32Array.from({ length: n }, (_, i) => i);
    if (this.shuffle) {
      const u = this.#uniforms(n, 2 * epoch * blocks);
      for (let i = n - 1; i > 0; i--) {
        const j = Math.min(i, Math.floor(u[i]! * (i + 1)));
        const t = order[i]!;
        order[i] = order[j]!;
        order[j] = t;
      }
    }
    const flips = new Uint8Array(n);
    if (this.flip) {
      const u = this.#uniforms(n, (2 * epoch + 1) * blocks);
      for (let p = 0; p < n; p++) flips[p] = u[p]! < 0.5 ? 1 : 0;
    }
    this.#epochCache = { epoch, order, flips };
    return this.#epochCache;
  }

  #uniforms(n: number, offset: number): Float64Array {
    const t = rand([n], { seed: this.seed, offset, dtype: 'float64', backend: cpuBackend() });
    const u = t.dataSync() as Float64Array;
    t.dispose();
    return u;
  }

  /** The batch at a step of the stream. */
  batchAt(step: number): Batch {
    if (!Number.isSafeInteger(step) || step < 0) throw new Error(`DataLoader: bad step ${step}`);
    const epoch = Math.floor(step / this.stepsPerEpoch);
    const { order, flips } = this.epochOrder(epoch);
    const start = (step % this.stepsPerEpoch) * this.batchSize;
    const end = Math.min(order.length, start + this.batchSize);
    const ds = this.dataset;
    const { channels: c, height: h, width: w } = ds;
    const size = c * h * w;
    const b = end - start;
    const x = new Float32Array(b * size);
    const labels = ds.numClasses === undefined ? null : new Int32Array(b);
    const indices: number[] = [];
    const flipped: boolean[] = [];
    for (let k = 0; k < b; k++) {
      const idx = order[start + k]!;
      const mirror = flips[start + k] === 1;
      const sample = ds.get(idx);
      if (sample.image.length !== size) {
        throw new Error(
          `${ds.name}: sample ${idx} has ${sample.image.length} values, expected ${c}x${h}x${w}`,
        );
      }
      const img = sample.image;
      const base = k * size;
      for (let row = 0; row < c * h; row++) {
        const s = row * w;
        const d = base + row * w;
        if (mirror) for (let col = 0; col < w; col++) x[d + col] = img[s + w - 1 - col]! * 2 - 1;
        else for (let col = 0; col < w; col++) x[d + col] = img[s + col]! * 2 - 1;
      }
      if (labels !== null) {
        const label = sample.label;
        if (label === undefined) throw new Error(`${ds.name}: sample ${idx} has no label`);
        labels[k] = label;
      }
      indices.push(idx);
      flipped.push(mirror);
    }
    const backend = this.#backend ?? defaultBackend();
    const batch: Batch = {
      x: tensor(x, [b, c, h, w], { backend, dtype: this.#dtype }),
      indices,
      flipped,
      step,
      epoch,
    };
    if (labels !== null) batch.labels = tensor(labels, [b], { backend, dtype: 'int32' });
    return batch;
  }

  /** Batches from step `from` on: `count` of them (default: without end). */
  *batches(from = 0, count = Infinity): Generator<Batch, void, undefined> {
    for (let s = from; s < from + count; s++) yield this.batchAt(s);
  }
}
