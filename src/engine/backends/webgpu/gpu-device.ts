/**
 * Getting a GPUDevice: `navigator.gpu` in browsers, the `webgpu` npm package (Dawn) in Node,
 * loaded with `await import` only when asked for. The device gets the adapter's largest buffer
 * limits and the `subgroups` feature when offered.
 */

export interface DeviceRequest {
  /** Ask for subgroups when the adapter offers them (default true). */
  subgroups?: boolean;
  /** Ask for timestamp queries when offered (benchmarks; default false). */
  timestamps?: boolean;
  powerPreference?: GPUPowerPreference;
}

export interface AcquiredDevice {
  device: GPUDevice;
  /** "vendor architecture description" of the adapter. */
  adapterName: string;
  features: ReadonlySet<string>;
}

/** Dawn's GPU object stays referenced so the instance lives as long as the process. */
let nodeGpu: GPU | null = null;

/**
 * The package of Dawn's Node bindings. Imported through a variable marked for bundlers to leave
 * alone: the import runs in Node only, and a browser bundle must not try to include Dawn.
 */
const DAWN_PACKAGE = 'webgpu';

async function gpuEntry(): Promise<GPU | null> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu !== undefined) return nav.gpu;
  if (typeof process === 'undefined' || process.versions?.node === undefined) return null;
  if (nodeGpu === null) {
    let mod: { create: (options: string[]) => GPU };
    try {
      mod = (await import(/* @vite-ignore */ /* webpackIgnore: true */ DAWN_PACKAGE)) as typeof mod;
    } catch {
      return null;
    }
    nodeGpu = mod.create([]);
  }
  return nodeGpu;
}

/** The adapter, or null when this environment has no WebGPU adapter at all. */
export async function requestAdapter(
  powerPreference: GPUPowerPreference = 'high-performance',
): Promise<GPUAdapter | null> {
  const gpu = await gpuEntry();
  if (gpu === null) return null;
  try {
    return await gpu.requestAdapter({ powerPreference });
  } catch {
    return null;
  }
}

export function describeAdapter(adapter: GPUAdapter): string {
  const i = adapter.info;
  return [i.vendor, i.architecture, i.description].filter((s) => s !== '').join(' ') || 'unknown';
}

/** A device on the default adapter, or null when there is no adapter. */
export async function acquireDevice(req: DeviceRequest = {}): Promise<AcquiredDevice | null> {
  const adapter = await requestAdapter(req.powerPreference);
  if (adapter === null) return null;
  const wanted: GPUFeatureName[] = [];
  if (req.subgroups !== false && adapter.features.has('subgroups')) wanted.push('subgroups');
  if (req.timestamps === true && adapter.features.has('timestamp-query')) {
    wanted.push('timestamp-query');
  }
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: wanted,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  });
  return { device, adapterName: describeAdapter(adapter), features: new Set(wanted) };
}
