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
