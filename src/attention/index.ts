export * from './attention.js';
export * from './dense.js';
export * from './flash.js';
export * from './problem.js';
export * from './spec.js';
export * from './state.js';
