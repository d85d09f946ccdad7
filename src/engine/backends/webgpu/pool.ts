/**
 * Buffer pool with size classes. A buffer freed while commands that use it are recorded but not
 * yet submitted goes on a "dirty" list: later dispatches in the same command encoder may reuse it
 * (dispatches in one pass execute in order), but an upload through queue.writeBuffer may not,
 * because writeBuffer runs before any encoder that is not yet submitted. On submit the dirty
 * buffers become clean and anything may reuse them (queue order makes it safe).
 *
 * Memory pressure. The pool gives pooled memory back (`relieve`: submits the recorded work, then
 * destroys every pooled buffer) before it creates a buffer that would take the bytes it holds
 * past `budget`, and when creating a buffer throws; then it tries once more, and a second failure
 * throws one error naming the bytes asked for, in use and pooled. WebGPU may instead report
 * out-of-memory later, through the error scope, after commands have used the invalid buffer:
 * those commands cannot be retried, so the pool gives its pooled memory back and reports the same
 * error to the runtime, which fails every later call with it. That is how Dawn reports a storage
 * buffer it cannot allocate (createBuffer throws only for mappedAtCreation), so on a GPU the way
 * to keep a long run alive is a budget below the device's memory (SUMI_WEBGPU_BUDGET_MB, read by
 * `poolBudgetFromEnv`): the pool then gives pooled memory back before it asks for more.
 */

/** One pooled GPU buffer. `bytes` is its size class, the buffer's real size. */
export interface GpuBuf {
  readonly buffer: GPUBuffer;
  readonly id: number;
  readonly bytes: number;
}

export interface PoolStats {
  /** Buffers handed out and not released. */
  inUse: number;
  /** Released buffers waiting for reuse (clean and dirty). */
  pooled: number;
  bytesInUse: number;
  bytesPooled: number;
  /** Buffers created since the pool was made (a steady loop stops creating). */
  created: number;
}

/** GPUBufferUsage.STORAGE | COPY_SRC | COPY_DST (numbers, so no globals are needed). */
export const STORAGE_USAGE = 0x80 | 0x04 | 0x08;
const MIN_CLASS = 256;

/**
 * The pool budget in bytes from SUMI_WEBGPU_BUDGET_MB (megabytes of buffers in use plus pooled);
 * no budget (Infinity) when unset or empty.
 */
export function poolBudgetFromEnv(mb: string | undefined): number {
  if (mb === undefined || mb.trim() === '') return Infinity;
  const v = Number(mb);
  if (!(Number.isFinite(v) && v > 0)) {
    throw new Error(`SUMI_WEBGPU_BUDGET_MB must be a number of megabytes above 0, got '${mb}'`);
  }
  return v * 2 ** 20;
}

/** The size class of a request: 256 bytes, then steps of a quarter power of two (≤ 25% waste). */
export function sizeClass(bytes: number): number {
  if (bytes <= MIN_CLASS) return MIN_CLASS;
  const base = 2 ** Math.floor(Math.log2(bytes - 1));
  const step = base / 4;
  return Math.ceil(bytes / step) * step;
}

export class BufferPool {
  readonly #device: GPUDevice;
  readonly #onError: (e: Error) => void;
  readonly #clean = new Map<number, GpuBuf[]>();
  readonly #dirty = new Map<number, GpuBuf[]>();
  /** Buffers whose allocation was reported out of memory: destroyed on release, never reused. */
  readonly #failed = new Set<GpuBuf>();
  #nextId = 1;
  #inUse = 0;
  #bytesInUse = 0;
  #pooled = 0;
  #bytesPooled = 0;
  #created = 0;
  /** Called when buffers are destroyed (the runtime drops cached bind groups). */
  onDestroy: () => void = () => {};
  /** Whether commands are recorded but not submitted (else a released buffer is clean at once). */
  hasPendingWork: () => boolean = () => true;
  /** Submits the recorded commands (set by the runtime), so that dirty buffers become clean. */
  flush: () => void = () => {};
  /**
   * Bytes (in use + pooled) past which a new buffer is made only after giving pooled memory back.
   * WebGPU does not say how much memory a device has, so there is no limit unless one is set.
   */
  budget = Infinity;

  constructor(device: GPUDevice, onError: (e: Error) => void) {
    this.#device = device;
    this.#onError = onError;
  }

  /**
   * A buffer of at least `bytes`. `forUpload` buffers come only from the clean list, since the
   * caller will write them with queue.writeBuffer.
   */
  acquire(bytes: number, forUpload: boolean): GpuBuf {
    const cls = sizeClass(bytes);
    const b = (forUpload ? undefined : this.#dirty.get(cls)?.pop()) ?? this.#clean.get(cls)?.pop();
    if (b !== undefined) {
      this.#pooled--;
      this.#bytesPooled -= cls;
    }
    const buf = b ?? this.#create(bytes, cls);
    this.#inUse++;
    this.#bytesInUse += cls;
    return buf;
  }

  #create(asked: number, cls: number): GpuBuf {
    const limit = this.#device.limits.maxStorageBufferBindingSize;
    if (cls > limit) {
      throw new Error(
        `webgpu: a buffer of ${cls} bytes exceeds this device's maxStorageBufferBindingSize ` +
          `(${limit} bytes); use smaller tensors or the cpu backend`,
      );
    }
    if (this.#bytesInUse + this.#bytesPooled + cls > this.budget) this.relieve();
    // The record a late out-of-memory report marks; its buffer is set once one is made.
    const made: { buf?: GpuBuf } = {};
    const buffer = this.#allocate(asked, cls, made);
    made.buf = { buffer, id: this.#nextId++, bytes: cls };
    this.#created++;
    return made.buf;
  }

  /** createBuffer, retried once after giving pooled memory back when it throws. */
  #allocate(asked: number, cls: number, made: { buf?: GpuBuf }): GPUBuffer {
    try {
      return this.#createBuffer(asked, cls, made);
    } catch {
      const freed = this.relieve();
      try {
        return this.#createBuffer(asked, cls, made);
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        throw new Error(
          `${this.#oomMessage(asked, cls, this.#bytesInUse, this.#bytesPooled, freed)} (${why})`,
        );
      }
    }
  }

  /** One createBuffer in an out-of-memory error scope, which may report a failure later. */
  #createBuffer(asked: number, cls: number, made: { buf?: GpuBuf }): GPUBuffer {
    const inUse = this.#bytesInUse;
    const pooled = this.#bytesPooled;
    this.#device.pushErrorScope('out-of-memory');
    try {
      return this.#device.createBuffer({ size: cls, usage: STORAGE_USAGE });
    } finally {
      void this.#device.popErrorScope().then(
        (err) => {
          if (err !== null && made.buf !== undefined) {
            this.#lateOutOfMemory(made.buf, asked, inUse, pooled);
          }
        },
        () => {},
      );
    }
  }

  /**
   * The device reported, after the buffer was handed out, that it could not allocate it: the
   * buffer and the work recorded with it are invalid.
   */
  #lateOutOfMemory(buf: GpuBuf, asked: number, inUse: number, pooled: number): void {
    this.#failed.add(buf);
    this.#removePooled(buf);
    const before = this.#bytesPooled;
    this.trim();
    const freed = before - this.#bytesPooled;
    this.#onError(
      new Error(
        `${this.#oomMessage(asked, buf.bytes, inUse, pooled, freed)}; the results of the work ` +
          'recorded since the previous read are lost (SUMI_WEBGPU_BUDGET_MB below the ' +
          "device's memory makes the pool give memory back before it runs out)",
      ),
    );
  }

  #oomMessage(asked: number, cls: number, inUse: number, pooled: number, freed: number): string {
    return (
      `webgpu: out of memory allocating ${asked} bytes (a ${cls}-byte buffer) with ${inUse} ` +
      `bytes in use and ${pooled} pooled, after giving ${freed} pooled bytes back; free ` +
      'tensors, use a smaller batch, or the cpu backend'
    );
  }

  /** Takes a failed buffer off the pooled lists, if it is there, destroying it. */
  #removePooled(buf: GpuBuf): void {
    for (const map of [this.#clean, this.#dirty]) {
      const list = map.get(buf.bytes);
      const i = list?.indexOf(buf) ?? -1;
      if (list === undefined || i < 0) continue;
      list.splice(i, 1);
      this.#pooled--;
      this.#bytesPooled -= buf.bytes;
      this.#failed.delete(buf);
      buf.buffer.destroy();
      this.onDestroy();
    }
  }

  /**
   * Gives pooled memory back under pressure: submits the recorded work (so that buffers released
   * since become clean) and destroys every pooled buffer. Returns the bytes freed.
   */
  relieve(): number {
    if (this.#pooled === 0) return 0;
    const before = this.#bytesPooled;
    this.flush();
    this.trim();
    return before - this.#bytesPooled;
  }

  /** Returns a buffer; it is dirty until the next submit. */
  release(b: GpuBuf): void {
    this.#inUse--;
    this.#bytesInUse -= b.bytes;
    if (this.#failed.delete(b)) {
      b.buffer.destroy();
      this.onDestroy();
      return;
    }
    this.#pooled++;
    this.#bytesPooled += b.bytes;
    push(this.hasPendingWork() ? this.#dirty : this.#clean, b);
  }

  /** The pending encoder was submitted: dirty buffers are now safe for any use. */
  submitted(): void {
    for (const [cls, list] of this.#dirty) {
      for (const b of list) push(this.#clean, b);
      list.length = 0;
      this.#dirty.delete(cls);
    }
  }

  /** Destroys every clean pooled buffer (after an out-of-memory error, or on request). */
  trim(): number {
    let n = 0;
    for (const list of this.#clean.values()) {
      for (const b of list) {
        b.buffer.destroy();
        this.#pooled--;
        this.#bytesPooled -= b.bytes;
        n++;
      }
    }
    this.#clean.clear();
    if (n > 0) this.onDestroy();
    return n;
  }

  stats(): PoolStats {
    return {
      inUse: this.#inUse,
      pooled: this.#pooled,
      bytesInUse: this.#bytesInUse,
      bytesPooled: this.#bytesPooled,
      created: this.#created,
    };
  }
}

function push(map: Map<number, GpuBuf[]>, b: GpuBuf): void {
  const list = map.get(b.bytes);
  if (list === undefined) map.set(b.bytes, [b]);
  else list.push(b);
}
