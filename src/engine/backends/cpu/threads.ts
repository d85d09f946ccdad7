/**
 * Helper threads for the SIMD gemm (Node only). Every thread instantiates the same shared-memory
 * module over one shared WebAssembly.Memory; a job is a range of C's column panels, handed over
 * through a small Int32Array control block per worker (Atomics.wait/notify, no messages). The
 * split never changes an element's arithmetic, so results do not depend on the thread count.
 *
 * Workers start in the background; until one has said it is ready the calling thread does all the
 * work. `SUMI_CPU_THREADS` sets the thread count (1: no workers); the default is the number of
 * cores, at most 8.
 */
import { GEMM_WASM_SHARED } from './wasm/gemm-wasm.js';

/** Control block slots (Int32). */
const SEQ = 0; // job number, bumped by the caller; −1 asks the worker to exit
const DONE = 1; // last job number finished by the worker
const READY = 2; // 1 once the worker has instantiated the module
const ARGS = 3; // ap, bp, cp, mp, jStart, jEnd, k, ldc, accumulate, table, bStride
const KERNEL = 14; // 0: gemm, 1: gemm_rows (B rows through a table), 2: gemm_arows (A rows)
const SLOTS = 16;
const TIMEOUT_MS = 60_000;

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { memory, module, control, index } = workerData;
const kernels = new WebAssembly.Instance(module, { env: { memory } }).exports;
const fns = [kernels.gemm, kernels.gemm_rows, kernels.gemm_arows];
const ctl = new Int32Array(control, index * ${SLOTS * 4}, ${SLOTS});
Atomics.store(ctl, ${READY}, 1);
let seen = 0;
for (;;) {
  Atomics.wait(ctl, ${SEQ}, seen);
  seen = Atomics.load(ctl, ${SEQ});
  if (seen < 0) break;
  const a = ${ARGS};
  fns[ctl[${KERNEL}]](ctl[a], ctl[a + 1], ctl[a + 2], ctl[a + 3], ctl[a + 4], ctl[a + 5], ctl[a + 6], ctl[a + 7], ctl[a + 8], ctl[a + 9], ctl[a + 10]);
  Atomics.store(ctl, ${DONE}, seen);
  Atomics.notify(ctl, ${DONE});
}
`;

type KernelFn = (...args: number[]) => void;

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

export function decodeBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export class GemmThreads {
  readonly memory: WebAssembly.Memory;
  readonly module: WebAssembly.Module;
  readonly #controls: Int32Array[] = [];
  #seq = 0;

  private constructor(workers: number, workerModule: NodeWorkerModule) {
    this.memory = new WebAssembly.Memory({ initial: 16, maximum: 65536, shared: true });
    this.module = new WebAssembly.Module(decodeBase64(GEMM_WASM_SHARED));
    const control = new SharedArrayBuffer(workers * SLOTS * 4);
    for (let index = 0; index < workers; index++) {
      const ctl = new Int32Array(control, index * SLOTS * 4, SLOTS);
      this.#controls.push(ctl);
      const worker = new workerModule.Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { memory: this.memory, module: this.module, control, index },
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

  /** Helper threads for this process, or null (not Node, one core, or SUMI_CPU_THREADS=1). */
  static create(): GemmThreads | null {
    const proc = nodeProcess();
    if (!proc?.getBuiltinModule) return null;
    const os = proc.getBuiltinModule('node:os') as { availableParallelism(): number };
    const wt = proc.getBuiltinModule('node:worker_threads') as NodeWorkerModule;
    if (!wt.isMainThread) return null;
    const requested = Number(proc.env['SUMI_CPU_THREADS'] ?? os.availableParallelism());
    const threads = Math.min(8, Math.max(1, Math.floor(requested) || 1));
    if (threads < 2) return null;
    try {
      return new GemmThreads(threads - 1, wt);
    } catch {
      return null;
    }
  }

  /**
   * Runs kernel `id` (0: gemm, 1: gemm_rows, 2: gemm_arows) over column panels [0, np), split across the ready
   * workers and this thread. `args` are the kernel's arguments with jStart, jEnd left as 0.
   */
  run(id: 0 | 1 | 2, kernel: KernelFn, args: readonly number[], np: number): void {
    const ready = this.#controls.filter((c) => Atomics.load(c, READY) === 1);
    const parts = Math.min(ready.length + 1, np);
    const at = (lo: number, hi: number): number[] => {
      const a = args.slice();
      a[4] = lo;
      a[5] = hi;
      return a;
    };
    if (parts < 2) {
      kernel(...at(0, np));
      return;
    }
    const seq = ++this.#seq;
    const bound = (i: number): number => Math.floor((np * i) / parts);
    for (let w = 1; w < parts; w++) {
      const ctl = ready[w - 1]!;
      ctl.set(at(bound(w), bound(w + 1)), ARGS);
      ctl[KERNEL] = id;
      Atomics.store(ctl, SEQ, seq);
      Atomics.notify(ctl, SEQ);
    }
    kernel(...at(0, bound(1)));
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
