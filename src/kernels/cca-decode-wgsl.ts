// CCA-Attention decoding (Chen et al., ICML 2025) as split-KV flash decoding (Dao et al. 2023, "Flash-Decoding"):
// one query per head at position p sees the cores of its fully past groups, c < cs = max(0, (p + 1 - w) / g),
// and the raw tokens [cs g, p], all in the resident cache (cores in rows [0, cs) of a KV head, raw position j
// in ring row ring_row0 + j mod ring_cap, the step's own token appended first). Those n = cs + p - cs g + 1
// keys, numbered i (core i, then raw cs g + i - cs), are split over workgroups as flash-decode-wgsl.ts splits
// a contiguous cache: each runs FlashAttention-2's online softmax over its split in tiles of a thread per
// key and writes a partial state; flash-decode-wgsl.ts's merge folds the splits (it reads the same uniform,
// whose first eight words are decodeParams'). Prefill chunks keep the row-tile kernels of cca-wgsl.ts.
// Two partial kernels, side by side: decode-v1 (flash-decode-wgsl.ts's, a workgroup per query head, a thread per
// key) and decode-v4 (flash-decode-v3-wgsl.ts's unrolled version: a workgroup per KV head's query heads, 16-byte
// loads, many in flight), the default: on the H200 v1 took 137 us a layer for the ~9K keys of a 128K context
// (group 16, window 1024), as long as v4 takes for all 128K keys of flash (docs/BENCHMARKS.md, the profile).
// CPU truth: attention/cca-cache.ts (CcaKVCache); test/cca-gpu-layer.test.ts checks many splits.
import type { DType } from '../tensor.js';
import {
  DECODE_SPLITTING,
  DECODE_TILE,
  decodeParams,
  decodeSplits,
  flashDecodePartialWgsl,
  type DecodeKeyRows,
  type DecodeSplitting,
} from './flash-decode-wgsl.js';
import { flashDecodeV3PartialWgsl, type KeyRowMap } from './flash-decode-v3-wgsl.js';

export const CCA_DECODE_VERSIONS = ['decode-v1', 'decode-v4'] as const;
export type CcaDecodeVersion = (typeof CCA_DECODE_VERSIONS)[number];
export const CCA_DECODE_DEFAULT: CcaDecodeVersion = 'decode-v4';

export interface CcaDecodeParams {
  /** Position of the decoded token. */
  position: number;
  group: number;
  window: number;
  /** Rows per KV head of the cache buffers (cores + ring). */
  rowsPerHead: number;
  ringRow0: number;
  ringCapacity: number;
  /** Query heads per KV head. */
  headsPerKv: number;
  scale: number;
}

/** The cores and raw tokens the query at `position` sees (as cca-wgsl.ts cores_seen and CcaKVCache). */
export function ccaDecodeKeys(position: number, group: number, window: number): { cores: number; rawFirst: number } {
  const cores = Math.max(0, Math.floor((position + 1 - window) / group));
  return { cores, rawFirst: cores * group };
}

/** The uniform of both dispatches (partial, then flash-decode-wgsl's merge) and the split count. */
export function ccaDecodeParams(
  p: CcaDecodeParams,
  splitting: DecodeSplitting = DECODE_SPLITTING,
): { params: ArrayBuffer; splits: number } {
  const { cores, rawFirst } = ccaDecodeKeys(p.position, p.group, p.window);
  const keys = cores + p.position - rawFirst + 1;
  const { splits, keysPerSplit } = decodeSplits(keys, splitting);
  const buf = new ArrayBuffer(64);
  new Uint8Array(buf).set(
    new Uint8Array(
      decodeParams({ keys, kvStride: p.rowsPerHead, group: p.headsPerKv, scale: p.scale, splits, keysPerSplit }),
    ),
  );
  new Uint32Array(buf, 32, 4).set([cores, rawFirst, p.ringRow0, Math.max(1, p.ringCapacity)]);
  return { params: buf, splits };
}

const CCA_PARAMS = 'cores: u32, raw_first: u32, ring_row0: u32, ring_cap: u32,';
/** The row of key i within its KV head: core i, else raw position raw_first + i - cores in its ring slot. */
const ccaRowFn = (name: string) => `fn ${name}(i: u32) -> u32 {
  if (i < params.cores) { return i; }
  return params.ring_row0 + (params.raw_first + i - params.cores) % params.ring_cap;
}`;

/** Where key i sits: core i, else raw position raw_first + i - cores in its ring slot (rows kept per tile for V). */
const CCA_KEY_ROWS: DecodeKeyRows = {
  params: CCA_PARAMS,
  wgsl: `var<workgroup> rows: array<u32, ${DECODE_TILE}>;\n${ccaRowFn('row_of')}`,
  keyRow: 'let row = kbase + row_of(j) * D;\n      rows[lid] = row;',
  valueRow: 'rows[x]',
};

/** decode-v4's form of the same numbering. */
const CCA_ROW_MAP: KeyRowMap = { params: CCA_PARAMS, wgsl: ccaRowFn('key_row') };

/** decode-v4 over CCA's keys: grid decodeV3Grid(splits, Hq, Hkv); `group` (Hq / Hkv) and `lanes` compiled in. */
export function ccaDecodeV4Wgsl(headDim: number, dtype: DType, group: number, lanes: number): string {
  return flashDecodeV3PartialWgsl(headDim, dtype, group, lanes, true, CCA_ROW_MAP);
}

/** Partial states: q [Hq, 1, D], cache k/v [Hkv, rows, D] -> po [Hq, splits, D], plse [Hq, splits]. Grid (splits, Hq).
 * flash-decode-wgsl.ts's partial kernel (its NaN policy included) over CCA's key numbering. */
export function ccaDecodePartialWgsl(headDim: number, dtype: DType): string {
  return flashDecodePartialWgsl(headDim, dtype, CCA_KEY_ROWS);
}
