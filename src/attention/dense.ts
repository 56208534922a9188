// Dense attention with materialised scores: the quadratic baseline (8x the tokens, 64x the score memory).
// On WebGPU every query head's [Nq, Nk] f32 score matrix is allocated before any is computed, so the peak
// memory is that of the whole score tensor, as in a plain implementation.
import { OutOfMemoryError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { Device } from '../runtime/device.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { denseAttentionCpu } from '../kernels/dense-cpu.js';
import { DENSE_TILE, densePvWgsl, denseScoresWgsl, denseSoftmaxWgsl } from '../kernels/dense-wgsl.js';
import { attentionParams } from '../kernels/wgsl-common.js';
import { attentionShape, type AttentionOptions } from '../spine/problem.js';
import { runInHeadChunks, type GpuInputs } from './gpu-chunks.js';
import type { AttentionState } from '../spine/state.js';

export async function denseAttentionGpu(gpu: GpuContext, x: GpuInputs): Promise<void> {
  const s = x.shape;
  const rowBytes = s.keys * 4;
  const headBytes = s.queries * rowBytes;
  if (headBytes > gpu.maxBindingBytes) {
    throw new OutOfMemoryError(
      `dense attention needs a ${headBytes}-byte score matrix per head, more than one binding (${gpu.maxBindingBytes}); use flash`,
      headBytes,
      gpu.maxBindingBytes,
    );
  }
  const scorePipe = await gpu.pipeline(`dense-scores-${s.headDim}-${x.dtype}`, () =>
    denseScoresWgsl(s.headDim, x.dtype),
  );
  const softPipe = await gpu.pipeline('dense-softmax', denseSoftmaxWgsl);
  const pvPipe = await gpu.pipeline(`dense-pv-${s.headDim}-${x.dtype}`, () => densePvWgsl(s.headDim, x.dtype));
  const scores: GPUBuffer[] = [];
  const uniforms: GPUBuffer[] = [];
  try {
    for (let h = 0; h < s.heads; h++) scores.push(await gpu.createBuffer(headBytes, `dense scores head ${h}`));
    const group = s.heads / s.kvHeads;
    await gpu.run('dense attention', (pass) => {
      for (let h = 0; h < s.heads; h++) {
        const params = gpu.uniform(
          attentionParams({ queries: s.queries, keys: s.keys, group, causal: s.causal, scale: s.scale, head: h }),
        );
        uniforms.push(params);
        pass.setPipeline(scorePipe);
        pass.setBindGroup(0, gpu.bind(scorePipe, [x.q, x.k, scores[h], params]));
        pass.dispatchWorkgroups(Math.ceil(s.keys / DENSE_TILE), Math.ceil(s.queries / DENSE_TILE));
        pass.setPipeline(softPipe);
        pass.setBindGroup(0, gpu.bind(softPipe, [scores[h], x.lse, params]));
        pass.dispatchWorkgroups(Math.min(s.queries, 65535), Math.ceil(s.queries / 65535));
        pass.setPipeline(pvPipe);
        pass.setBindGroup(0, gpu.bind(pvPipe, [scores[h], x.v, x.o, params]));
        pass.dispatchWorkgroups(Math.ceil(s.headDim / DENSE_TILE), Math.ceil(s.queries / DENSE_TILE));
      }
    });
    await gpu.idle();
  } finally {
    for (const b of scores) gpu.release(b);
    for (const u of uniforms) u.destroy();
  }
}

export async function denseAttention(
  device: Device,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
): Promise<AttentionState> {
  const s = attentionShape(q, k, v, opts);
  if (!device.gpu) return denseAttentionCpu(q, k, v, s);
  return runInHeadChunks(device.gpu, q, k, v, s, denseAttentionGpu);
}
