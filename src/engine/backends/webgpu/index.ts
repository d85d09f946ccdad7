/**
 * The WebGPU backend. Load it with `await import` (nothing here runs at import time):
 * `createWebGpuBackend()` finds an adapter (navigator.gpu in browsers, the `webgpu` package in
 * Node) and returns the backend, or null when there is none; `webGpuBackendForDevice(device)`
 * wraps a GPUDevice the caller already has.
 */
/// <reference types="@webgpu/types" />
export { WebGpuBackend, WebGpuStorage, type WebGpuStats } from './backend.js';
export { acquireDevice, requestAdapter, type DeviceRequest } from './gpu-device.js';
export { createWebGpuBackend, webGpuBackendForDevice } from './create.js';
