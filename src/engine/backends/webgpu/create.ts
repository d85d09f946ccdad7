/** Making the backend: a device from the environment (or the caller), plus a subgroup probe. */
import { WebGpuBackend } from './backend.js';
import { acquireDevice, type DeviceRequest } from './gpu-device.js';
import { poolBudgetFromEnv } from './pool.js';

const PROBE = `enable subgroups;
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sgi: u32,
        @builtin(subgroup_size) sgs: u32) {
  let first = subgroupBroadcastFirst(li);
  let total = subgroupAdd(1u);
  let ok = sgi == li % sgs && first == li - sgi && 256u % sgs == 0u && total == sgs;
  out[li] = select(0u, 1u, ok);
}`;

/**
 * Whether subgroups are laid out as consecutive runs of local_invocation_index (true on every
 * driver seen so far, but WGSL does not promise it; the reductions rely on it).
 */
async function probeSubgroups(device: GPUDevice): Promise<boolean> {
  if (!device.features.has('subgroups')) return false;
  device.pushErrorScope('validation');
  const out = device.createBuffer({ size: 1024, usage: 0x80 | 0x04 });
  const staging = device.createBuffer({ size: 1024, usage: 0x01 | 0x08 });
  const pipeline = device.createComputePipeline({
    layout: 'auto',
    compute: { module: device.createShaderModule({ code: PROBE }), entryPoint: 'main' },
  });
  const bg = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: out } }],
  });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bg);
  pass.dispatchWorkgroups(1);
  pass.end();
  enc.copyBufferToBuffer(out, 0, staging, 0, 1024);
  device.queue.submit([enc.finish()]);
  const err = await device.popErrorScope();
  if (err !== null) {
    out.destroy();
    staging.destroy();
    return false;
  }
  await staging.mapAsync(0x01);
  const ok = new Uint32Array(staging.getMappedRange()).every((v) => v === 1);
  staging.unmap();
  out.destroy();
  staging.destroy();
  return ok;
}

function envSubgroups(): boolean {
  const v = typeof process === 'undefined' ? undefined : process.env.SUMI_WEBGPU_SUBGROUPS;
  return v !== '0';
}

/**
 * The backend over a device the caller made (browsers: from navigator.gpu), with the pool budget
 * of SUMI_WEBGPU_BUDGET_MB when set.
 */
export async function webGpuBackendForDevice(
  device: GPUDevice,
  adapterName = 'WebGPU device',
): Promise<WebGpuBackend> {
  const env = typeof process === 'undefined' ? undefined : process.env.SUMI_WEBGPU_BUDGET_MB;
  const poolBudget = poolBudgetFromEnv(env);
  const subgroups = envSubgroups() && (await probeSubgroups(device));
  return new WebGpuBackend(device, { subgroups, adapterName, poolBudget });
}

/** The backend on the default adapter, or null when this environment has no WebGPU adapter. */
export async function createWebGpuBackend(req: DeviceRequest = {}): Promise<WebGpuBackend | null> {
  const got = await acquireDevice({ subgroups: envSubgroups(), ...req });
  if (got === null) return null;
  return webGpuBackendForDevice(got.device, got.adapterName);
}
