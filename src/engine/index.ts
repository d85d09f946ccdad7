/** The Sumi tensor engine: tensors, ops with autograd, memory scopes, backends. */
export type { DType, FloatDType, TypedArray } from './dtype.js';
export { type Shape, fmtShape, fmtShapeOf, sizeOf } from './shape.js';
export type { Backend, Storage } from './backend.js';
export { Tensor, type TensorLike, type NestedArray, composite } from './tensor.js';
export { enableGrad, noGrad, isGradEnabled } from './autograd.js';
export { tidy, keep, ownScope, type Disposable } from './scope.js';
export {
  cpuBackend,
  defaultBackend,
  getBackend,
  initBackend,
  initDefaultBackend,
  registerBackend,
  setDefaultBackend,
} from './device.js';
export type { BackendName } from './device.js';
export { setCpuHelperThreads } from './backends/cpu/simd-gemm.js';
export * from './ops/index.js';
