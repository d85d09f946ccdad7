/**
 * Helper threads for the SIMD gemm (Node only). Every thread instantiates the same shared-memory
 * module over one shared WebAssembly.Memory; a job is a product whose column panels are cut in
 * chunks that every thread takes from a shared counter (Atomics.add) until none is left, handed
 * over through a small Int32Array control block per worker (Atomics.wait/notify, no messages). The
 * split never changes an element's arithmetic, so results do not depend on the thread count.
 *
 * Workers start in the background; until one has said it is ready the calling thread does all the
 * work. `SUMI_CPU_THREADS` sets the thread count (1: no workers); the default is the number of
 * cores, at most 8.
 */
import {
  type GemmKernel,
  gemmModuleBytes,
  kernelArgs,
  type KernelFn,
  type Product,
} from './wasm/kernel.js';

/** Control block slots (Int32). */
const SEQ = 0; // job number, bumped by the caller; −1 asks the worker to exit
const DONE = 1; // last job number finished by the worker
const READY = 2; // 1 once the worker has instantiated the module
const ARGS = 3; // the kernel's 12 arguments (kernelArgs in simd-gemm.ts)
const SLOTS = 16;
const TIMEOUT_MS = 60_000;

/** Job block slots (Int32, shared by every thread): the next chunk to take, the chunks, np. */
const NEXT = 0;
const CHUNKS = 1;
const NP = 2;
/** Chunks of column panels per thread of a product: the threads take them as they finish. */
const CHUNKS_PER_THREAD = 2;

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { memory, module, control, jobBuffer, index } = workerData;
const gemm = new WebAssembly.Instance(module, { env: { memory } }).exports.gemm;
const ctl = new Int32Array(control, index * ${SLOTS * 4}, ${SLOTS});
const job = new Int32Array(jobBuffer);
Atomics.store(ctl, ${READY}, 1);
let seen = 0;
for (;;) {
  Atomics.wait(ctl, ${SEQ}, seen);
  seen = Atomics.load(ctl, ${SEQ});
  if (seen < 0) break;
  const args = Array.from(ctl.subarray(${ARGS}, ${ARGS} + 12));
  const chunks = job[${CHUNKS}];
  const np = job[${NP}];
  for (;;) {
    const c = Atomics.add(job, ${NEXT}, 1);
    if (c >= chunks) break;
    args[6] = Math.floor((np * c) / chunks);
    args[7] = Math.floor((np * (c + 1)) / chunks);
    gemm(...args);
  }
  Atomics.store(ctl, ${DONE}, seen);
  Atomics.notify(ctl, ${DONE});
}
`;

interface NodeWorkerModule {
  Worker: new (
    source: string,
    options: { eval: true; workerData: unknown },
  ) => { unref(): void; on(event: 'error', listener: (e: unknown) => void): void };
  isMainThread: boolean;
}

interface NodeProcess {
  versions?: { node?: string };
  env: Record<string, string | undefined>;
  getBuiltinModule?: (name: string) => unknown;
}

export function nodeProcess(): NodeProcess | null {
  const p = (globalThis as { process?: NodeProcess }).process;
  return p?.versions?.node ? p : null;
}

export class GemmThreads {
  readonly memory: WebAssembly.Memory;
  readonly module: WebAssembly.Module;
  readonly #controls: Int32Array[] = [];
  readonly #job = new Int32Array(new SharedArrayBuffer(4 * 4));
  #seq = 0;

  private constructor(workers: number, workerModule: NodeWorkerModule, kernel: GemmKernel) {
    this.memory = new WebAssembly.Memory({ initial: 16, maximum: 65536, shared: true });
    // One compiled module for every thread: the workers run this thread's machine code.
    this.module = new WebAssembly.Module(gemmModuleBytes(kernel, true));
    const control = new SharedArrayBuffer(workers * SLOTS * 4);
    for (let index = 0; index < workers; index++) {
      const ctl = new Int32Array(control, index * SLOTS * 4, SLOTS);
      this.#controls.push(ctl);
      const worker = new workerModule.Worker(WORKER_SOURCE, {
        eval: true,
        workerData: {
          memory: this.memory,
          module: this.module,
          control,
          jobBuffer: this.#job.buffer,
          index,
        },
      });
      // A worker that fails to start stays not-ready and is simply never used.
      worker.on('error', () => Atomics.store(ctl, READY, 0));
      worker.unref();
    }
  }

  /** Number of helper workers started. */
  get size(): number {
    return this.#controls.length;
  }

  /** Number of helper workers ready to take work. */
  get readyCount(): number {
    return this.#controls.filter((c) => Atomics.load(c, READY) === 1).length;
  }

  /**
   * Helper threads for this process running the given build of the module, or null (not Node,
   * one core, or SUMI_CPU_THREADS=1).
   */
  static create(kernel: GemmKernel): GemmThreads | null {
    const proc = nodeProcess();
    if (!proc?.getBuiltinModule) return null;
    const os = proc.getBuiltinModule('node:os') as { availableParallelism(): number };
    const wt = proc.getBuiltinModule('node:worker_threads') as NodeWorkerModule;
    if (!wt.isMainThread) return null;
    const requested = Number(proc.env['SUMI_CPU_THREADS'] ?? os.availableParallelism());
    const threads = Math.min(8, Math.max(1, Math.floor(requested) || 1));
    if (threads < 2) return null;
    try {
      return new GemmThreads(threads - 1, wt, kernel);
    } catch {
      return null;
    }
  }

  /**
   * Runs one product, its column panels split in chunks that the ready workers and this thread
   * take in turn as each finishes one (so a thread the OS holds back does less of the work).
   */
  run(kernel: KernelFn, p: Product): void {
    const np = p.np;
    const ready = this.#controls.filter((c) => Atomics.load(c, READY) === 1);
    const parts = Math.min(ready.length + 1, np);
    if (parts < 2) {
      kernel(...kernelArgs(p, 0, np));
      return;
    }
    const seq = ++this.#seq;
    const chunks = Math.min(np, CHUNKS_PER_THREAD * parts);
    const job = this.#job;
    job[CHUNKS] = chunks;
    job[NP] = np;
    Atomics.store(job, NEXT, 0);
    const args = kernelArgs(p, 0, np);
    for (let w = 1; w < parts; w++) {
      const ctl = ready[w - 1]!;
      ctl.set(args, ARGS);
      Atomics.store(ctl, SEQ, seq);
      Atomics.notify(ctl, SEQ);
    }
    for (;;) {
      const c = Atomics.add(job, NEXT, 1);
      if (c >= chunks) break;
      args[6] = Math.floor((np * c) / chunks);
      args[7] = Math.floor((np * (c + 1)) / chunks);
      kernel(...args);
    }
    for (let w = 1; w < parts; w++) {
      const ctl = ready[w - 1]!;
      const start = Date.now();
      for (;;) {
        const done = Atomics.load(ctl, DONE);
        if (done === seq) break;
        Atomics.wait(ctl, DONE, done, 1000);
        if (Date.now() - start > TIMEOUT_MS) {
          throw new Error('cpu backend: a gemm worker thread stopped responding');
        }
      }
    }
  }
}
