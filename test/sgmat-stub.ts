// Runs the subgroup-matrix kernels where there are no subgroup matrices (lavapipe in CI): rewrites a generated
// kernel's subgroup-matrix types and builtins, and its subgroup builtins, into plain WGSL that emulates them,
// so that the kernel's own logic (staging, masks, softmax, the V-tile flag, epilogues) runs unchanged.
// - Subgroups are runs of 32 invocations: sg = lid / 32, lane = lid % 32 (what the kernels assume of NVIDIA's).
// - A 16 x 16 matrix is spread over its subgroup's lanes by a layout of our choosing (the real one is opaque to
//   the kernels, which only load, store and multiply): lane L holds row L / 2 of a left matrix and columns
//   (L % 2) * 8 .. + 8 of that row of a result, so a multiply-accumulate is each lane's own 8 dot products of
//   length 16 (f16 products, f32 sums). A right matrix is kept as where it lies (array, offset, layout) and read
//   by the multiply: the kernels multiply it in the statement that loads it or the next, checked here.
// - subgroupShuffleXor(x, 1u) goes through workgroup memory between two barriers, so it must be called in
//   uniform control flow (the kernels call it there: it is a subgroup operation).
// - Every `for (var i = 0u; i < n; i++)` runs to n * sm_one, 1 read from the uniform (params.neg_inf_bits != 0):
//   loops the compiler cannot unroll. Unrolled, one kernel took lavapipe's LLVM 1.5 minutes to compile, rolled
//   12 seconds; the trip counts are the same.
// Checked against the float64 reference and the CPU twins on finite inputs (test/nan-tc.test.ts), and on the
// GPU machine against the real subgroup matrices.

const TYPES_WGSL = `
struct SmLeft { v: array<f16, 16> }              // row lane / 2
struct SmRight { off: u32, cm: bool, stride: u32 } // where it lies in the right matrices' array
struct SmResult { v: array<f32, 8> }             // row lane / 2, columns (lane % 2) * 8 .. + 8
var<private> sm_lid: u32;
var<private> sm_one: u32;
fn sm_at(off: u32, row: u32, col: u32, col_major: bool, stride: u32) -> u32 {
  return select(off + row * stride + col, off + col * stride + row, col_major);
}`;

function mmaWgsl(arr: string): string {
  return `fn sm_mma(a: SmLeft, b: SmRight, c: SmResult) -> SmResult {
  var out = c;
  let av = a.v;
  let c0 = (sm_lid % 2u) * 8u;
  for (var cc = 0u; cc < 8u * sm_one; cc++) {
    var s = out.v[cc];
    for (var k = 0u; k < 16u * sm_one; k++) { s += f32(av[k]) * f32(${arr}[sm_at(b.off, k, c0 + cc, b.cm, b.stride)]); }
    out.v[cc] = s;
  }
  return out;
}
fn sm_load_right_${arr}(off: u32, col_major: bool, stride: u32) -> SmRight { return SmRight(off, col_major, stride); }`;
}

// A strip (sgmat-tiles-wgsl.ts: &arr[s], a 16-row array of an array of arrays) gets functions of its own that take s.
const stripParam = (strip: boolean) => (strip ? 's: u32, ' : '');
const stripName = (arr: string, strip: boolean) => (strip ? `${arr}_s` : arr);
const stripElem = (arr: string, strip: boolean) => (strip ? `${arr}[s]` : arr);

function loadWgsl(kind: 'left' | 'result', base: string, strip = false): string {
  const arr = stripElem(base, strip);
  const body =
    kind === 'left'
      ? `var m: SmLeft;
  for (var k = 0u; k < 16u * sm_one; k++) { m.v[k] = f16(${arr}[sm_at(off, r, k, col_major, stride)]); }`
      : `var m: SmResult;
  for (var c = 0u; c < 8u * sm_one; c++) { m.v[c] = f32(${arr}[sm_at(off, r, c0 + c, col_major, stride)]); }`;
  const name = `sm_load_${kind}_${stripName(base, strip)}`;
  return `fn ${name}(${stripParam(strip)}off: u32, col_major: bool, stride: u32) -> ${kind === 'left' ? 'SmLeft' : 'SmResult'} {
  let r = (sm_lid % 32u) / 2u;
  let c0 = (sm_lid % 2u) * 8u;
  ${body}
  return m;
}`;
}

function storeWgsl(base: string, elem: string, strip = false): string {
  const arr = stripElem(base, strip);
  return `fn sm_store_${stripName(base, strip)}(${stripParam(strip)}off: u32, m: SmResult, col_major: bool, stride: u32) {
  let r = (sm_lid % 32u) / 2u;
  let c0 = (sm_lid % 2u) * 8u;
  for (var c = 0u; c < 8u * sm_one; c++) { ${arr}[sm_at(off, r, c0 + c, col_major, stride)] = ${elem}(m.v[c]); }
}`;
}

function xorWgsl(type: string): string {
  return `fn sm_xor1_${type}(x: ${type}) -> ${type} {
  workgroupBarrier();
  sm_xchg[sm_lid] = bitcast<u32>(x);
  workgroupBarrier();
  return bitcast<${type}>(sm_xchg[sm_lid ^ 1u]);
}`;
}

/** Workgroup memory a kernel declares, in bytes (f16, f32, u32 and atomic arrays; a stub adds its exchange). */
export function workgroupBytes(wgsl: string): number {
  let bytes = 0;
  for (const m of wgsl.matchAll(/var<workgroup>\s+\w+\s*:\s*array<(?:atomic<)?(\w+)>?,\s*(\d+)u?>/g))
    bytes += Number(m[2]) * (m[1] === 'f16' ? 2 : 4);
  for (const m of wgsl.matchAll(/var<workgroup>\s+\w+\s*:\s*array<array<(\w+),\s*(\d+)u?>,\s*(\d+)u?>/g))
    bytes += Number(m[2]) * Number(m[3]) * (m[1] === 'f16' ? 2 : 4);
  return bytes;
}

const fail = (why: string): never => {
  throw new Error(`sgmat stub: ${why}`);
};

/** The kernel with subgroup matrices and subgroup builtins emulated in plain WGSL (needs only shader-f16). */
export function emulateSubgroupMatrices(wgsl: string): string {
  let s = wgsl.replace(/\/\/[^\n]*/g, ''); // comments name the builtins too
  for (const line of ['enable chromium_experimental_subgroup_matrix;', 'requires subgroup_id;', 'enable subgroups;']) {
    if (!s.includes(line)) fail(`the kernel lacks "${line}"`);
    s = s.replace(line, '');
  }
  const threads = Number(/@workgroup_size\((\d+)\)/.exec(s)?.[1]);
  if (!(threads > 0)) fail('no @workgroup_size(N)');
  const params = /,\s*@builtin\(subgroup_id\) sg: u32,\s*@builtin\(subgroup_invocation_id\) lane: u32\) \{/;
  if (!s.includes('@builtin(local_invocation_index) lid: u32') || !params.test(s))
    fail('main must take lid, then sg and lane last');
  if (!s.includes('neg_inf_bits: u32')) fail('the uniform has no neg_inf_bits');
  const start = 'sm_lid = lid;\n  sm_one = min(params.neg_inf_bits, 1u);';
  s = s.replace(params, `) {\n  ${start}\n  let sg = lid / 32u;\n  let lane = lid % 32u;`);
  s = s
    .replaceAll('subgroup_matrix_left<f16, 16, 16>', 'SmLeft')
    .replaceAll('subgroup_matrix_right<f16, 16, 16>', 'SmRight')
    .replaceAll('subgroup_matrix_result<f32, 16, 16>', 'SmResult');
  const elemOf = (arr: string): string =>
    new RegExp(`var<workgroup>\\s+${arr}\\s*:\\s*array<(?:array<)?(f16|f32),`).exec(s)?.[1] ??
    fail(`workgroup array ${arr} is not f16 or f32`);
  const fns = new Map<string, string>();
  const rights = new Set<string>();
  const loads = /subgroupMatrixLoad<(SmLeft|SmRight|SmResult)>\(&(\w+)(?:\[(\w+)\])?,/g;
  s = s.replace(loads, (_m, type: string, arr: string, strip?: string) => {
    const kind = type === 'SmLeft' ? 'left' : type === 'SmRight' ? 'right' : 'result';
    elemOf(arr);
    if (kind === 'right') {
      if (strip) fail(`right matrix from a strip of ${arr}`);
      rights.add(arr);
    } else fns.set(`load ${kind} ${arr} ${!!strip}`, loadWgsl(kind, arr, !!strip));
    return strip ? `sm_load_${kind}_${arr}_s(${strip}, ` : `sm_load_${kind}_${arr}(`;
  });
  if (rights.size !== 1) fail(`right matrices come from ${rights.size} arrays, the stub reads one`);
  fns.set('mma', mmaWgsl([...rights][0]));
  // A right matrix is read when multiplied: loaded in the multiply, or by the statement before it.
  for (const m of s.matchAll(/let (\w+) = sm_load_right_\w+\([^;]*;([^;]*;)/g))
    if (!new RegExp(`^\\s*\\w+ = subgroupMatrixMultiplyAccumulate\\(\\w+, ${m[1]},`).test(m[2]))
      fail(`right matrix ${m[1]} is not multiplied in the next statement`);
  s = s.replace(/subgroupMatrixStore\(&(\w+)(?:\[(\w+)\])?,/g, (_m, arr: string, strip?: string) => {
    fns.set(`store ${arr} ${!!strip}`, storeWgsl(arr, elemOf(arr), !!strip));
    return strip ? `sm_store_${arr}_s(${strip}, ` : `sm_store_${arr}(`;
  });
  s = s.replaceAll('subgroupMatrixMultiplyAccumulate(', 'sm_mma(');
  s = s.replace(/subgroupShuffleXor\((\w+), 1u\)/g, (_m, x: string) => {
    // The shuffled values are declared `var x = <init>;`: a u32 literal or an f32 expression.
    const init = new RegExp(`var ${x} = ([^;]+);`).exec(s)?.[1] ?? fail(`cannot tell the type of ${x}`);
    const type = /^\d+u$/.test(init.trim()) ? 'u32' : 'f32';
    fns.set(`xor ${type}`, xorWgsl(type));
    return `sm_xor1_${type}(${x})`;
  });
  const left = /\bsubgroup\w*/.exec(s);
  if (left) fail(`cannot emulate ${left[0]}`);
  s = s.replace(/for \(var (\w+) = 0u; \1 < ([^;]+); \1\+\+\)/g, 'for (var $1 = 0u; $1 < ($2) * sm_one; $1++)');
  const decls = `${TYPES_WGSL}\nvar<workgroup> sm_xchg: array<u32, ${threads}>;\n${[...fns.values()].join('\n')}\n`;
  // After the enables (the first non-directive line), before anything that uses the types.
  const at = s.search(/^(?!\s*(enable|requires)\b)\s*\S/m);
  return s.slice(0, at) + decls + s.slice(at);
}
