/** Convolution, pooling and nearest upsampling (NCHW). */
import type { Conv2dSpec } from '../backend.js';
import { fmtShape } from '../shape.js';
import { composite, record, Tensor } from '../tensor.js';
import { full } from './creation.js';
import { add } from './elementwise.js';
import { expand, reshape } from './movement.js';
import { mean, sum } from './reduce.js';

export interface Conv2dOptions {
  stride?: number | readonly [number, number];
  padding?: number | readonly [number, number];
  dilation?: number | readonly [number, number];
  groups?: number;
}

const pair = (v: number | readonly [number, number] | undefined, d: number): [number, number] =>
  v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : [v[0], v[1]];

export function conv2dSpec(
  xShape: readonly number[],
  wShape: readonly number[],
  opts: Conv2dOptions,
): Conv2dSpec {
  if (xShape.length !== 4 || wShape.length !== 4) {
    throw new Error(
      `conv2d: input ${fmtShape(xShape)} and weight ${fmtShape(wShape)} must both be 4-D (NCHW, OIHW)`,
    );
  }
  const [n, cIn, h, w] = xShape as [number, number, number, number];
  const [cOut, cInG, kh, kw] = wShape as [number, number, number, number];
  const groups = opts.groups ?? 1;
  const [strideH, strideW] = pair(opts.stride, 1);
  const [padH, padW] = pair(opts.padding, 0);
  const [dilationH, dilationW] = pair(opts.dilation, 1);
  if (cIn % groups !== 0 || cOut % groups !== 0 || cInG * groups !== cIn) {
    throw new Error(
      `conv2d: input has ${cIn} channels, weight ${fmtShape(wShape)} expects ${cInG} per group × ${groups} groups`,
    );
  }
  const hOut = Math.floor((h + 2 * padH - dilationH * (kh - 1) - 1) / strideH) + 1;
  const wOut = Math.floor((w + 2 * padW - dilationW * (kw - 1) - 1) / strideW) + 1;
  if (hOut <= 0 || wOut <= 0) {
    throw new Error(
      `conv2d: kernel ${kh}×${kw} does not fit input ${h}×${w} with padding ${padH},${padW}`,
    );
  }
  return {
    n,
    cIn,
    h,
    w,
    cOut,
    kh,
    kw,
    hOut,
    wOut,
    strideH,
    strideW,
    padH,
    padW,
    dilationH,
    dilationW,
    groups,
  };
}

/** 2-D cross-correlation as in PyTorch: x [N, C, H, W], weight [O, C/groups, kh, kw], bias [O]. */
export function conv2d(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  opts: Conv2dOptions = {},
): Tensor {
  const spec = conv2dSpec(x.shape, weight.shape, opts);
  if (x.dtype !== weight.dtype) throw new Error(`conv2d: input ${x.dtype}, weight ${weight.dtype}`);
  const outShape = [spec.n, spec.cOut, spec.hOut, spec.wOut];
  const grads = (g: Tensor, needs: readonly boolean[]): (Tensor | null)[] => [
    needs[0]
      ? new Tensor(x.backend.conv2dGradInput(g.storage, weight.storage, spec), x.shape)
      : null,
    needs[1]
      ? new Tensor(x.backend.conv2dGradWeight(x.storage, g.storage, spec), weight.shape)
      : null,
  ];
  const b = x.backend;
  if (bias && b.conv2dBias !== undefined && bias.dtype === x.dtype && bias.shape.length === 1) {
    // The bias added as the output is written; its gradient is Σ over n, h, w of dy.
    const out = new Tensor(b.conv2dBias(x.storage, weight.storage, bias.storage, spec), outShape);
    return record(out, 'conv2d', [x, weight, bias], (g, needs) => [
      ...grads(g, needs),
      needs[2] ? sum(g, [0, 2, 3]) : null,
    ]);
  }
  return composite(() => {
    const out = new Tensor(x.backend.conv2d(x.storage, weight.storage, spec), outShape);
    record(out, 'conv2d', [x, weight], grads);
    return bias ? add(out, reshape(bias, [1, spec.cOut, 1, 1])) : out;
  });
}

/**
 * Average pooling (count_include_pad, as PyTorch's default). Non-overlapping windows that tile
 * the input are a reshape and a mean; anything else is a depthwise convolution with 1/(k·k).
 */
export function avgPool2d(x: Tensor, kernel: number, stride = kernel, padding = 0): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  return composite(() => {
    if (stride === kernel && padding === 0 && h % kernel === 0 && w % kernel === 0) {
      const r = reshape(x, [n, c, h / kernel, kernel, w / kernel, kernel]);
      return mean(r, [3, 5]);
    }
    const wgt = full([c, 1, kernel, kernel], 1 / (kernel * kernel), {
      dtype: x.dtype,
      backend: x.backend,
    });
    return conv2d(x, wgt, null, { stride, padding, groups: c });
  });
}

/** Nearest-neighbour upsampling by an integer factor (each pixel repeated factor×factor). */
export function upsampleNearest2d(x: Tensor, factor = 2): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  return composite(() => {
    const r = reshape(x, [n, c, h, 1, w, 1]);
    const e = expand(r, [n, c, h, factor, w, factor]);
    return reshape(e, [n, c, h * factor, w * factor]);
  });
}
