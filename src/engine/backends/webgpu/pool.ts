/**
 * Buffer pool with size classes. A buffer freed while commands that use it are recorded but not
 * yet submitted goes on a "dirty" list: later dispatches in the same command encoder may reuse it
 * (dispatches in one pass execute in order), but an upload through queue.writeBuffer may not,
 * because writeBuffer runs before any encoder that is not yet submitted. On submit the dirty
 * buffers become clean and anything may reuse them (queue order makes it safe).
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
    const buf = b ?? this.#create(cls);
    this.#inUse++;
    this.#bytesInUse += cls;
    return buf;
  }

  #create(cls: number): GpuBuf {
    const limit = this.#device.limits.maxStorageBufferBindingSize;
    if (cls > limit) {
      throw new Error(
        `webgpu: a buffer of ${cls} bytes exceeds this device's maxStorageBufferBindingSize ` +
          `(${limit} bytes); use smaller tensors or the cpu backend`,
      );
    }
    this.#device.pushErrorScope('out-of-memory');
    const buffer = this.#device.createBuffer({ size: cls, usage: STORAGE_USAGE });
    const inUse = this.#bytesInUse;
    const pooled = this.#bytesPooled;
    void this.#device.popErrorScope().then(
      (err) => {
        if (err !== null) {
          this.#onError(
            new Error(
              `webgpu: out of memory allocating ${cls} bytes (${inUse} bytes in use, ` +
                `${pooled} pooled): ${err.message}`,
            ),
          );
        }
      },
      () => {},
    );
    this.#created++;
    return { buffer, id: this.#nextId++, bytes: cls };
  }

  /** Returns a buffer; it is dirty until the next submit. */
  release(b: GpuBuf): void {
    this.#inUse--;
    this.#bytesInUse -= b.bytes;
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
