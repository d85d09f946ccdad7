/**
 * The WebGPU runtime under the backend: compiled pipelines cached per device, one command
 * encoder and compute pass that many dispatches are recorded into, a parameter arena written
 * once per submission, readback, and error reporting. It knows kernels only as WGSL text plus a
 * binding list; what they compute lives in the *.wgsl.ts files.
 */
import { PARAM_SLOT_BYTES, type ParamLayout, type ParamValues } from './params.js';
import { BufferPool, type GpuBuf } from './pool.js';

/** A storage binding: read-only, read-write, or the backend's status word (atomic flags). */
export type BindingKind = 'read' | 'write';

/** A compiled-on-demand compute kernel. Storage bindings come first, then the parameters. */
export interface Kernel {
  /** Unique per specialization: the pipeline cache key. */
  readonly key: string;
  readonly code: string;
  readonly bindings: readonly BindingKind[];
  readonly params: ParamLayout;
}

/** Dispatches recorded before a submission is forced (parameter slots in the arena). */
export const BATCH_LIMIT = 512;
/** GPUBufferUsage / GPUMapMode values, so no globals are needed. */
const UNIFORM_COPY_DST = 0x40 | 0x08;
const MAP_READ_COPY_DST = 0x01 | 0x08;
const MAP_READ = 0x01;
/** Largest workgroup count per grid dimension that every WebGPU device accepts. */
export const MAX_GROUPS = 65535;

interface DeviceCache {
  pipelines: Map<string, GPUComputePipeline>;
  layouts: Map<string, { group: GPUBindGroupLayout; pipeline: GPUPipelineLayout }>;
}

/** Pipelines and layouts per device: a lost device drops its cache with it. */
const deviceCaches = new WeakMap<GPUDevice, DeviceCache>();

function cacheFor(device: GPUDevice): DeviceCache {
  let c = deviceCaches.get(device);
  if (c === undefined) {
    c = { pipelines: new Map(), layouts: new Map() };
    deviceCaches.set(device, c);
  }
  return c;
}

function debugLevel(): number {
  const env = typeof process === 'undefined' ? undefined : process.env.SUMI_DEBUG;
  return env === undefined ? 0 : Number(env) || 0;
}

/** Workgroup grid for `groups` workgroups in x (folded into y past 65535). */
export function grid1d(groups: number): [number, number, number] {
  if (groups <= MAX_GROUPS) return [Math.max(groups, 1), 1, 1];
  const y = Math.ceil(groups / MAX_GROUPS);
  return [Math.ceil(groups / y), y, 1];
}

export class Runtime {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly #cache: DeviceCache;
  readonly #debug = debugLevel();
  readonly #paramsGpu: GPUBuffer;
  readonly #arena = new ArrayBuffer(BATCH_LIMIT * PARAM_SLOT_BYTES);
  readonly #u32 = new Uint32Array(this.#arena);
  readonly #i32 = new Int32Array(this.#arena);
  readonly #f32 = new Float32Array(this.#arena);
  #slot = 0;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #flushQueued = false;
  readonly #bindGroups = new Map<string, GPUBindGroup>();
  /** The first error that makes results untrustworthy (device lost, out of memory, invalid use). */
  #fatal: Error | null = null;
  #lost: Promise<Error>;
  #lostFlag = false;
  /** Flags set by kernels (bit 0: an index was out of range); read back with every read. */
  readonly status: GpuBuf;
  submits = 0;
  dispatches = 0;

  constructor(device: GPUDevice) {
    this.device = device;
    this.#cache = cacheFor(device);
    this.pool = new BufferPool(device, (e) => this.fail(e));
    this.pool.onDestroy = () => this.#bindGroups.clear();
    this.pool.hasPendingWork = () => this.#encoder !== null;
    this.pool.flush = () => this.flush();
    this.#paramsGpu = device.createBuffer({
      size: BATCH_LIMIT * PARAM_SLOT_BYTES,
      usage: UNIFORM_COPY_DST,
    });
    this.status = this.pool.acquire(4, true);
    device.queue.writeBuffer(this.status.buffer, 0, new Uint32Array(1));
    this.#lost = device.lost.then((info) => {
      this.#lostFlag = true;
      const e = new Error(
        `webgpu: device lost (${info.reason}): ${info.message || 'no message'}; ` +
          'reinitialize the backend',
      );
      this.fail(e);
      return e;
    });
    device.addEventListener('uncapturederror', (ev) => {
      const err = ev.error;
      this.fail(new Error(`webgpu: ${err.constructor.name}: ${err.message}`));
    });
  }

  /** Records an error; every later call and read throws it. The first one wins. */
  fail(e: Error): void {
    this.#fatal ??= e;
  }

  /** Whether the device was lost (the backend must be recreated). */
  get lost(): boolean {
    return this.#lostFlag;
  }

  check(): void {
    if (this.#fatal !== null) throw this.#fatal;
  }

  #layout(bindings: readonly BindingKind[]) {
    const key = bindings.join(',');
    let l = this.#cache.layouts.get(key);
    if (l === undefined) {
      const entries: GPUBindGroupLayoutEntry[] = bindings.map((b, i) => ({
        binding: i,
        visibility: 4, // GPUShaderStage.COMPUTE
        buffer: { type: b === 'read' ? 'read-only-storage' : 'storage' },
      }));
      entries.push({
        binding: bindings.length,
        visibility: 4,
        buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: PARAM_SLOT_BYTES },
      });
      const group = this.device.createBindGroupLayout({ entries });
      const pipeline = this.device.createPipelineLayout({ bindGroupLayouts: [group] });
      l = { group, pipeline };
      this.#cache.layouts.set(key, l);
    }
    return l;
  }

  pipeline(k: Kernel): GPUComputePipeline {
    let p = this.#cache.pipelines.get(k.key);
    if (p === undefined) {
      const module = this.device.createShaderModule({ code: k.code, label: k.key });
      if (this.#debug >= 1) this.#reportCompile(module, k);
      p = this.device.createComputePipeline({
        label: k.key,
        layout: this.#layout(k.bindings).pipeline,
        compute: { module, entryPoint: 'main' },
      });
      this.#cache.pipelines.set(k.key, p);
    }
    return p;
  }

  #reportCompile(module: GPUShaderModule, k: Kernel): void {
    void module.getCompilationInfo().then((info) => {
      for (const m of info.messages) {
        console.error(
          `[sumi webgpu] ${k.key}: ${m.type} at ${m.lineNum}:${m.linePos}: ${m.message}`,
        );
      }
      if (this.#debug >= 3 || info.messages.some((m) => m.type === 'error')) {
        console.error(k.code);
      }
    });
  }

  #bindGroup(k: Kernel, bufs: readonly GpuBuf[]): GPUBindGroup {
    let key = k.bindings.join('');
    for (const b of bufs) key += `:${b.id}`;
    let bg = this.#bindGroups.get(key);
    if (bg === undefined) {
      if (this.#bindGroups.size >= 8192) this.#bindGroups.clear();
      const entries: GPUBindGroupEntry[] = bufs.map((b, i) => ({
        binding: i,
        resource: { buffer: b.buffer },
      }));
      entries.push({
        binding: bufs.length,
        resource: { buffer: this.#paramsGpu, offset: 0, size: PARAM_SLOT_BYTES },
      });
      bg = this.device.createBindGroup({ layout: this.#layout(k.bindings).group, entries });
      this.#bindGroups.set(key, bg);
    }
    return bg;
  }

  #encoderNow(): GPUCommandEncoder {
    this.#encoder ??= this.device.createCommandEncoder();
    return this.#encoder;
  }

  /** Records one dispatch of k over `groups` workgroups. Submits when the batch is full. */
  dispatch(
    k: Kernel,
    bufs: readonly GpuBuf[],
    params: ParamValues,
    groups: readonly [number, number, number],
  ): void {
    this.check();
    if (bufs.length !== k.bindings.length) {
      throw new Error(`webgpu: ${k.key} takes ${k.bindings.length} buffers, got ${bufs.length}`);
    }
    if (groups[0] > MAX_GROUPS || groups[1] > MAX_GROUPS || groups[2] > MAX_GROUPS) {
      throw new Error(`webgpu: ${k.key}: grid ${groups.join('×')} exceeds ${MAX_GROUPS} groups`);
    }
    if (this.#slot === BATCH_LIMIT) this.flush();
    const pipeline = this.pipeline(k);
    const slot = this.#slot++;
    k.params.pack(params, this.#u32, this.#i32, this.#f32, (slot * PARAM_SLOT_BYTES) / 4);
    const bg = this.#bindGroup(k, bufs);
    this.#pass ??= this.#encoderNow().beginComputePass();
    this.#pass.setPipeline(pipeline);
    this.#pass.setBindGroup(0, bg, [slot * PARAM_SLOT_BYTES]);
    this.#pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
    this.dispatches++;
    if (this.#debug >= 2) console.error(`[sumi webgpu] dispatch ${k.key} ${groups.join('×')}`);
    this.#queueFlush();
  }

  /** Submits once the current synchronous run of calls is over (so the GPU starts early). */
  #queueFlush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      if (this.#fatal === null) this.flush();
    });
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (this.#encoder === null) {
      this.pool.submitted(); // nothing recorded: every freed buffer is already safe
      return;
    }
    this.#pass?.end();
    this.#pass = null;
    if (this.#slot > 0) {
      // Queue order: this write lands after earlier submissions and before this one.
      this.device.queue.writeBuffer(
        this.#paramsGpu,
        0,
        this.#arena,
        0,
        this.#slot * PARAM_SLOT_BYTES,
      );
    }
    this.device.queue.submit([this.#encoder.finish()]);
    this.#encoder = null;
    this.#slot = 0;
    this.submits++;
    this.pool.submitted();
  }

  /** Copies `bytes` of buf to the host after all recorded work; also checks the status flags. */
  async read(buf: GpuBuf, bytes: number): Promise<ArrayBuffer> {
    this.check();
    const statusAt = Math.ceil(bytes / 8) * 8;
    const staging = this.device.createBuffer({ size: statusAt + 8, usage: MAP_READ_COPY_DST });
    this.#pass?.end();
    this.#pass = null;
    const enc = this.#encoderNow();
    if (bytes > 0) enc.copyBufferToBuffer(buf.buffer, 0, staging, 0, bytes);
    enc.copyBufferToBuffer(this.status.buffer, 0, staging, statusAt, 4);
    this.flush();
    try {
      const lost = this.#lost.then((e) => Promise.reject(e));
      await Promise.race([staging.mapAsync(MAP_READ), lost]);
      this.check();
      const mapped = staging.getMappedRange();
      const out = mapped.slice(0, bytes);
      const flags = new Uint32Array(mapped, statusAt, 1)[0]!;
      staging.unmap();
      if (flags !== 0) {
        this.device.queue.writeBuffer(this.status.buffer, 0, new Uint32Array(1));
        throw new Error(
          'webgpu: gather/scatterAdd met an index out of range (since the previous read); ' +
            'the affected outputs hold 0',
        );
      }
      return out;
    } finally {
      staging.destroy();
    }
  }

  /** Resolves when the GPU has finished everything submitted so far (submits pending work). */
  async sync(): Promise<void> {
    this.check();
    this.flush();
    await Promise.race([
      this.device.queue.onSubmittedWorkDone(),
      this.#lost.then((e) => Promise.reject(e)),
    ]);
    this.check();
  }
}
