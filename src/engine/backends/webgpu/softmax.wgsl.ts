/**
 * WGSL ports of softmaxKernel and softmaxBackwardKernel in backends/cpu/fused.ts: one workgroup
 * per row (three passes over the row, which stays in cache: max, Σ e^{z − max}, write), or one
 * thread per row when rows are short. exp is m_exp (math.wgsl.ts), so results are within a few
 * ulps of the f64 reference.
 */
import type { SoftmaxSpec } from '../../backend.js';
import { declareBuffers, kernel, type LaunchContext, mainWgsl, WG } from './kernel.js';
import { mathWgsl } from './math.wgsl.js';
import type { GpuBuf } from './pool.js';
import { subgroupArgs, workgroupReduceWgsl } from './reduce.wgsl.js';
import { grid1d, type Kernel } from './runtime.js';
import { paramFields } from './params.js';

/** Rows up to this long get one thread each. */
const SHORT_ROW = 32;

const PARAMS = paramFields({ rows: 'u32', cols: 'u32', scale: 'f32' });

export function softmaxKernel(subgroups: boolean, short: boolean): Kernel {
  const key = `softmax/${short ? 'short' : subgroups ? 'sg' : 'wg'}`;
  const sg = subgroupArgs(subgroups);
  const rowBody = short
    ? `  let r = (wg.y * nwg.x + wg.x) * ${WG}u + li;
  if (r >= p_rows()) { return; }
  let base = r * p_cols();
  var m = -m_inf();
  for (var j = 0u; j < p_cols(); j++) {
    let z = p_scale() * x[base + j];
    m = select(select(max(m, z), z, m_isnan(z)), m, m_isnan(m));
  }
  var s = 0.0;
  for (var j = 0u; j < p_cols(); j++) { s += m_exp(p_scale() * x[base + j] - m); }
  for (var j = 0u; j < p_cols(); j++) { y[base + j] = m_exp(p_scale() * x[base + j] - m) / s; }`
    : `  let r = wg.y * nwg.x + wg.x;
  if (r >= p_rows()) { return; }
  let base = r * p_cols();
  var m = -m_inf();
  for (var j = li; j < p_cols(); j += ${WG}u) {
    let z = p_scale() * x[base + j];
    m = select(select(max(m, z), z, m_isnan(z)), m, m_isnan(m));
  }
  m = wg_max(m, li, ${sg.sg});
  var s = 0.0;
  for (var j = li; j < p_cols(); j += ${WG}u) { s += m_exp(p_scale() * x[base + j] - m); }
  s = wg_sum(s, li, ${sg.sg});
  for (var j = li; j < p_cols(); j += ${WG}u) { y[base + j] = m_exp(p_scale() * x[base + j] - m) / s; }`;
  return kernel(key, () => ({
    enable: subgroups && !short ? ['subgroups'] : [],
    buffers: declareBuffers('f32', ['x'], ['y']),
    params: PARAMS,
    body: `${mathWgsl(['m_exp', 'm_isnan', 'm_inf', 'm_nan'])}
${short ? '' : workgroupReduceWgsl(subgroups)}
${mainWgsl(short ? '' : sg.args)}
${rowBody}
}`,
  }));
}

export function softmaxBackwardKernel(subgroups: boolean, short: boolean): Kernel {
  const key = `softmax-bwd/${short ? 'short' : subgroups ? 'sg' : 'wg'}`;
  const sg = subgroupArgs(subgroups);
  const rowBody = short
    ? `  let r = (wg.y * nwg.x + wg.x) * ${WG}u + li;
  if (r >= p_rows()) { return; }
  let base = r * p_cols();
  var dot = 0.0;
  for (var j = 0u; j < p_cols(); j++) { dot += dy[base + j] * y[base + j]; }`
    : `  let r = wg.y * nwg.x + wg.x;
  if (r >= p_rows()) { return; }
  let base = r * p_cols();
  var dot = 0.0;
  for (var j = li; j < p_cols(); j += ${WG}u) { dot += dy[base + j] * y[base + j]; }
  dot = wg_sum(dot, li, ${sg.sg});`;
  const first = short ? '0u' : 'li';
  const step = short ? '1u' : `${WG}u`;
  return kernel(key, () => ({
    enable: subgroups && !short ? ['subgroups'] : [],
    buffers: declareBuffers('f32', ['y', 'dy'], ['dx']),
    params: PARAMS,
    body: `${short ? '' : mathWgsl(['m_isnan', 'm_nan']) + '\n' + workgroupReduceWgsl(subgroups)}
${mainWgsl(short ? '' : sg.args)}
${rowBody}
  for (var j = ${first}; j < p_cols(); j += ${step}) {
    dx[base + j] = p_scale() * y[base + j] * (dy[base + j] - dot);
  }
}`,
  }));
}

function grid(spec: SoftmaxSpec): { short: boolean; groups: [number, number, number] } {
  const short = spec.cols <= SHORT_ROW;
  return { short, groups: grid1d(short ? Math.ceil(spec.rows / WG) : spec.rows) };
}

export function launchSoftmax(ctx: LaunchContext, x: GpuBuf, y: GpuBuf, spec: SoftmaxSpec): void {
  if (spec.rows * spec.cols === 0) return;
  const { short, groups } = grid(spec);
  ctx.runtime.dispatch(softmaxKernel(ctx.subgroups, short), [x, y], { ...spec }, groups);
}

export function launchSoftmaxBackward(
  ctx: LaunchContext,
  y: GpuBuf,
  dy: GpuBuf,
  dx: GpuBuf,
  spec: SoftmaxSpec,
): void {
  if (spec.rows * spec.cols === 0) return;
  const { short, groups } = grid(spec);
  ctx.runtime.dispatch(
    softmaxBackwardKernel(ctx.subgroups, short),
    [y, dy, dx],
    { ...spec },
    groups,
  );
}
