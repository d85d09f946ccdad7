/** Matrix products with batch broadcasting, and linear layers. */
import type { MatmulSpec } from '../backend.js';
import { broadcastShapes, fmtShape, type Shape, shapesEqual, sizeOf } from '../shape.js';
import { composite, record, Tensor } from '../tensor.js';
import { add } from './elementwise.js';
import { expand, reshape } from './movement.js';
import { sumTo } from './reduce.js';

/**
 * op(a) · op(b) over the last two axes, where op transposes when the flag is set; leading axes
 * broadcast. Both inputs must have rank ≥ 2.
 */
export function matmulT(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor {
  if (a.rank < 2 || b.rank < 2) {
    throw new Error(
      `matmul: inputs need rank >= 2, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`,
    );
  }
  if (a.dtype !== b.dtype || a.backend !== b.backend) {
    throw new Error(`matmul: ${a.dtype} on ${a.backend.name} with ${b.dtype} on ${b.backend.name}`);
  }
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const [m, k] = transA ? [ac, ar] : [ar, ac];
  const [k2, n] = transB ? [bc, br] : [br, bc];
  if (k !== k2) {
    throw new Error(
      `matmul: inner dimensions differ: ${fmtShape(a.shape)}${transA ? 'ᵀ' : ''} · ${fmtShape(b.shape)}${transB ? 'ᵀ' : ''}`,
    );
  }
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const batchShape = broadcastShapes(aBatch, bBatch, 'matmul batch');
  const batch = sizeOf(batchShape);
  // A batch that covers the broadcast batch is read in place; a single matrix is read with stride 0.
  const operand = (t: Tensor, tb: Shape): [Tensor, number] => {
    const mat = t.shape[t.rank - 2]! * t.shape[t.rank - 1]!;
    if (sizeOf(tb) === 1) return [t, 0];
    if (shapesEqual(tb, batchShape)) return [t, mat];
    return [expand(t, [...batchShape, ...t.shape.slice(-2)]), mat];
  };
  const [ea, aStride] = operand(a, aBatch);
  const [eb, bStride] = operand(b, bBatch);
  const spec: MatmulSpec = {
    batch,
    m,
    n,
    k,
    transA,
    transB,
    aBatchStride: aStride,
    bBatchStride: bStride,
  };
  const out = new Tensor(a.backend.matmul(ea.storage, eb.storage, spec), [...batchShape, m, n]);
  if (ea !== a) ea.dispose();
  if (eb !== b) eb.dispose();
  // VJPs of C = op(A)·op(B) for each transpose case (derivations in docs/engine.md).
  return record(out, 'matmul', [a, b], (g, needs) => {
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (needs[0]) {
      if (!transA) ga = transB ? matmulT(g, b, false, false) : matmulT(g, b, false, true);
      else ga = transB ? matmulT(b, g, true, true) : matmulT(b, g, false, true);
      ga = sumTo(ga, a.shape);
    }
    if (needs[1]) {
      if (!transB) gb = transA ? matmulT(a, g, false, false) : matmulT(a, g, true, false);
      else gb = transA ? matmulT(g, a, true, true) : matmulT(g, a, true, false);
      gb = sumTo(gb, b.shape);
    }
    return [ga, gb];
  });
}

/** NumPy matmul for rank ≥ 2 operands; a 1-D operand is treated as a row/column vector. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank >= 2 && b.rank >= 2) return matmulT(a, b, false, false);
  return composite(() => {
    if (a.rank === 1 && b.rank === 1) return reshape(matmul(reshape(a, [1, a.size]), b), []);
    if (a.rank === 1) {
      const outShape = [...b.shape.slice(0, -2), b.shape[b.rank - 1]!];
      return reshape(matmul(reshape(a, [1, a.size]), b), outShape);
    }
    return reshape(matmul(a, reshape(b, [b.size, 1])), a.shape.slice(0, -1));
  });
}

/** y = x Wᵀ + b, with weight [out, in] as in PyTorch; x is [..., in]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const inF = weight.shape[1]!;
  if (x.shape[x.rank - 1] !== inF) {
    throw new Error(
      `linear: input ${fmtShape(x.shape)} does not end in ${inF} (weight ${fmtShape(weight.shape)})`,
    );
  }
  return composite(() => {
    const x2 = x.rank === 2 ? x : reshape(x, [-1, inF]);
    let y = matmulT(x2, weight, false, true);
    if (bias) y = add(y, bias);
    return x.rank === 2 ? y : reshape(y, [...x.shape.slice(0, -1), weight.shape[0]!]);
  });
}
