// Fills a buffer with pseudo-random values of unit variance on the device (a PCG hash of the index and a
// seed, uniform on [-sqrt 3, sqrt 3)), so benchmarks at 128K need not generate gigabytes on the host.

export function fillRandomWgsl(f16: boolean): string {
  return /* wgsl */ `${f16 ? 'enable f16;' : ''}
struct FillParams { count: u32, seed: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<${f16 ? 'f16' : 'f32'}>;
@group(0) @binding(1) var<uniform> params: FillParams;

fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= params.count) { return; }
  let u = f32(pcg(i ^ pcg(params.seed)) >> 8u) / 16777216.0;
  out[i] = ${f16 ? 'f16' : 'f32'}((u * 2.0 - 1.0) * 1.7320508);
}
`;
}
