// Probes subgroup-matrix primitives on the device: S = Q K^T (K loaded column-major) and O = P V.
import { acquireDevice, float32ToHalf } from '../dist/src/index.js';
const dev = await acquireDevice('webgpu');
const gpu = dev.gpu;
const D = 64,
  BC = 32;
const rnd = (n) => Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 97) / 97 - 0.5);
const Q = rnd(16 * D),
  K = rnd(BC * D).map((x, i) => x * ((i % 3) - 1)),
  P = rnd(16 * BC),
  V = rnd(BC * D).reverse();
const code = `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
requires subgroup_id;
@group(0) @binding(0) var<storage, read> qg: array<f16>;
@group(0) @binding(1) var<storage, read> kg: array<f16>;
@group(0) @binding(2) var<storage, read> pg: array<f16>;
@group(0) @binding(3) var<storage, read> vg: array<f16>;
@group(0) @binding(4) var<storage, read_write> s_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> o_out: array<f32>;
const D: u32 = ${D}u;
const BC: u32 = ${BC}u;
var<workgroup> qw: array<f16, ${16 * D}>;
var<workgroup> kw: array<f16, ${BC * D}>;
var<workgroup> pw: array<f16, ${16 * BC}>;
var<workgroup> vw: array<f16, ${BC * D}>;
var<workgroup> sw: array<f32, ${16 * BC}>;
var<workgroup> ow: array<f32, ${16 * D}>;
@compute @workgroup_size(32)
fn main(@builtin(local_invocation_index) lid: u32) {
  for (var e = lid; e < 16u * D; e += 32u) { qw[e] = qg[e]; }
  for (var e = lid; e < BC * D; e += 32u) { kw[e] = kg[e]; vw[e] = vg[e]; }
  for (var e = lid; e < 16u * BC; e += 32u) { pw[e] = pg[e]; }
  workgroupBarrier();
  for (var n = 0u; n < BC / 16u; n++) {
    var s = subgroup_matrix_result<f32, 16, 16>();
    for (var b = 0u; b < D / 16u; b++) {
      let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&qw, b * 16u, false, D);
      let kt = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kw, n * 16u * D + b * 16u, true, D);
      s = subgroupMatrixMultiplyAccumulate(a, kt, s);
    }
    subgroupMatrixStore(&sw, n * 16u, s, false, BC);
  }
  for (var b = 0u; b < D / 16u; b++) {
    var o = subgroup_matrix_result<f32, 16, 16>();
    for (var kb = 0u; kb < BC / 16u; kb++) {
      let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&pw, kb * 16u, false, BC);
      let vv = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&vw, kb * 16u * D + b * 16u, false, D);
      o = subgroupMatrixMultiplyAccumulate(a, vv, o);
    }
    subgroupMatrixStore(&ow, b * 16u, o, false, D);
  }
  workgroupBarrier();
  for (var e = lid; e < 16u * BC; e += 32u) { s_out[e] = sw[e]; }
  for (var e = lid; e < 16u * D; e += 32u) { o_out[e] = ow[e]; }
}`;
const pipe = await gpu.pipeline('probe', () => code);
const bufs = [];
for (const a of [Q, K, P, V]) bufs.push(await gpu.upload(float32ToHalf(a), 'in'));
const sb = await gpu.upload(new Float32Array(16 * BC).fill(NaN), 's'),
  ob = await gpu.upload(new Float32Array(16 * D).fill(NaN), 'o');
await gpu.run('probe', (p) => {
  p.setPipeline(pipe);
  p.setBindGroup(0, gpu.bind(pipe, [...bufs, sb, ob]));
  p.dispatchWorkgroups(1);
});
const S = new Float32Array(await gpu.read(sb, 16 * BC * 4)),
  O = new Float32Array(await gpu.read(ob, 16 * D * 4));
const _h = (a) => Float32Array.from(float32ToHalf(a), (x) => x); // not used
let es = 0,
  eo = 0,
  _esT = 0;
for (let i = 0; i < 16; i++)
  for (let j = 0; j < BC; j++) {
    let dot = 0;
    for (let d = 0; d < D; d++) dot += Q[i * D + d] * K[j * D + d];
    es = Math.max(es, Math.abs(dot - S[i * BC + j]));
  }
for (let i = 0; i < 16; i++)
  for (let d = 0; d < D; d++) {
    let acc = 0;
    for (let j = 0; j < BC; j++) acc += P[i * BC + j] * V[j * D + d];
    eo = Math.max(eo, Math.abs(acc - O[i * D + d]));
  }
console.log('S err', es, 'O err', eo, 'S[0..4]', [...S.slice(0, 4)], 'O[0..4]', [...O.slice(0, 4)]);
