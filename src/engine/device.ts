/**
 * Backend registry and selection. The CPU backend is always there; others (webgpu) register
 * themselves when initialized. Nothing happens at import time.
 */
import type { Backend } from './backend.js';
import { CpuBackend } from './backends/cpu/index.js';

const registry = new Map<string, Backend>();
let current: Backend | null = null;

export function cpuBackend(): Backend {
  let b = registry.get('cpu');
  if (b === undefined) {
    b = new CpuBackend();
    registry.set('cpu', b);
  }
  return b;
}

export function registerBackend(b: Backend): void {
  registry.set(b.name, b);
}

export function getBackend(name?: string): Backend {
  if (name === undefined) return defaultBackend();
  if (name === 'cpu') return cpuBackend();
  const b = registry.get(name);
  if (b === undefined) {
    const known = ['cpu', ...[...registry.keys()].filter((k) => k !== 'cpu')].join(', ');
    throw new Error(`backend '${name}' is not initialized (available: ${known})`);
  }
  return b;
}

/** The backend new tensors go to when none is named. */
export function defaultBackend(): Backend {
  return current ?? cpuBackend();
}

export function setDefaultBackend(b: Backend | string): Backend {
  current = typeof b === 'string' ? getBackend(b) : b;
  return current;
}

let warnedNoAdapter = false;

/** Backend names `initBackend` knows. */
export type BackendName = 'cpu' | 'webgpu';

function envBackend(): BackendName | undefined {
  const v = typeof process === 'undefined' ? undefined : process.env.SUMI_BACKEND;
  if (v === undefined || v === '') return undefined;
  if (v !== 'cpu' && v !== 'webgpu') {
    throw new Error(`SUMI_BACKEND must be 'cpu' or 'webgpu', got '${v}'`);
  }
  return v;
}

/**
 * Initializes and registers a backend. 'webgpu' loads the WebGPU module (lazily) and throws when
 * no adapter exists. With no name: SUMI_BACKEND if set, else webgpu when an adapter exists, else
 * cpu with one line on stderr saying so. A webgpu backend whose device was lost is replaced.
 * Does not change the default backend.
 */
export async function initBackend(name?: BackendName): Promise<Backend> {
  const want = name ?? envBackend();
  if (want === 'cpu') return cpuBackend();
  const existing = registry.get('webgpu');
  const lost = existing !== undefined && 'lost' in existing && existing.lost === true;
  if (existing !== undefined && !lost) return existing;
  const { createWebGpuBackend } = await import('./backends/webgpu/index.js');
  const b = await createWebGpuBackend();
  if (b === null) {
    if (want === 'webgpu') {
      const why = name === undefined ? ' (SUMI_BACKEND=webgpu)' : '';
      throw new Error(`webgpu backend requested${why} but no WebGPU adapter was found`);
    }
    if (!warnedNoAdapter) console.warn('sumi: no WebGPU adapter found; using the cpu backend');
    warnedNoAdapter = true;
    return cpuBackend();
  }
  registerBackend(b);
  return b;
}

/** `initBackend(name)` and makes the result the default backend. */
export async function initDefaultBackend(name?: BackendName): Promise<Backend> {
  return setDefaultBackend(await initBackend(name));
}
