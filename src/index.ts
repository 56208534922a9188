export * from './errors.js';
export * from './f16.js';
export * from './tensor.js';
export * from './runtime/device.js';
export { GpuContext } from './runtime/webgpu.js';
export * from './attention/index.js';
export * from './io/npy.js';
export { referenceAttention, naiveHalfAttention } from './reference/attention.js';
