// Shader sizes checked before compiling (runtime/wgsl-sizes.ts): WGSL's layout rules against hand-computed
// sizes, the workgroup bytes of real kernels against what lavapipe compiles, and refusals as UnsupportedError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UnsupportedError } from '../src/errors.js';
import { ccaAttendWgsl, ccaPoolWgsl } from '../src/kernels/cca-wgsl.js';
import { flashPortableTile, flashPortableWgsl } from '../src/kernels/flash-wgsl.js';
import { sparseGatherWgsl } from '../src/kernels/sparse-gather-wgsl.js';
import { checkShaderSizes, MAX_ARRAY_COUNT, wgslLayout, workgroupBytes } from '../src/runtime/wgsl-sizes.js';

test('WGSL layouts: scalars, vectors (vec3 aligned as vec4), arrays by stride, nested arrays', () => {
  assert.deepEqual(wgslLayout('f32'), { size: 4, align: 4 });
  assert.deepEqual(wgslLayout('f16'), { size: 2, align: 2 });
  assert.deepEqual(wgslLayout('atomic<u32>'), { size: 4, align: 4 });
  assert.deepEqual(wgslLayout('vec4<f32>'), { size: 16, align: 16 });
  assert.deepEqual(wgslLayout('vec2u'), { size: 8, align: 8 });
  assert.deepEqual(wgslLayout('vec3<f32>'), { size: 12, align: 16 });
  assert.deepEqual(wgslLayout('array<vec3<f32>, 10>'), { size: 160, align: 16 });
  assert.deepEqual(wgslLayout('array<f16, 7>'), { size: 14, align: 2 });
  assert.deepEqual(wgslLayout('array<array<f32, 4>, 3u>'), { size: 48, align: 4 });
  assert.equal(wgslLayout('MyStruct'), undefined);
  assert.equal(wgslLayout('array<f32>'), undefined, 'runtime-sized');
});

test('workgroup bytes count workgroup variables only, not buffers, private or function variables', () => {
  const code = `
@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;
var<workgroup> ks: array<f32, 256>;
var<workgroup> hist: array<atomic<u32>, 16>;
var<workgroup> flag: u32;
var<private> seen: u32;
fn main() { var acc: array<f32, 64>; for (var i: u32 = 0u; i < 4u; i++) {} }`;
  assert.equal(workgroupBytes(code), 1024 + 64 + 4);
  checkShaderSizes('ok', code, 1092);
  assert.throws(() => checkShaderSizes('wg', code, 1091), UnsupportedError);
  const big = `fn main() { var acc: array<f32, ${MAX_ARRAY_COUNT + 1}>; }`;
  assert.throws(() => checkShaderSizes('big', big, 1 << 30), /array of 65536 elements \(acc\), more than WGSL's 65535/);
  assert.throws(() => checkShaderSizes('nested', 'var<private> x: array<array<f32, 70000>, 2>;', 1 << 30), /70000/);
});

test("real kernels: what lavapipe compiles passes, a head dim beyond it is refused with the kernel's name", () => {
  const lavapipe = 32768;
  for (const d of [37, 64, 128]) {
    const flash = flashPortableWgsl(d, 'f32');
    // The portable flash kernel's two staged tiles are at least its workgroup memory.
    assert.ok(workgroupBytes(flash) >= 2 * flashPortableTile(d) * d * 4, `flash D ${d}`);
    for (const code of [flash, ccaPoolWgsl(d, 'f16'), ccaAttendWgsl(d, 'f32'), sparseGatherWgsl(d, 4, 'f32')])
      checkShaderSizes(`D ${d}`, code, lavapipe);
  }
  assert.throws(() => checkShaderSizes('cca-attend-4100-f32', ccaAttendWgsl(4100, 'f32'), lavapipe), /cca-attend-4100/);
  assert.throws(() => checkShaderSizes('gather', sparseGatherWgsl(4100, 1, 'f32'), lavapipe), UnsupportedError);
});
