// The tests' tiny Hugging Face models: the one builder lives beside the fuzzer that mutates them.
export * from '../src/fuzz/tiny-hf-model.js';
