export * from './attention.js';
export * from './dense.js';
export * from './flash.js';
export * from './problem.js';
export * from './spec.js';
export * from './state.js';
export * from './merge-gpu.js';
export * from './gpu-chunks.js';
