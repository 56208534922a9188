// CCA-Attention decoding (Chen et al., ICML 2025) as split-KV flash decoding (Dao et al. 2023, "Flash-Decoding"):
// one query per head at position p sees the cores of its fully past groups, c < cs = max(0, (p + 1 - w) / g),
// and the raw tokens [cs g, p], all in the resident cache (cores in rows [0, cs) of a KV head, raw position j
// in ring row ring_row0 + j mod ring_cap, the step's own token appended first). Those n = cs + p - cs g + 1
// keys, numbered i (core i, then raw cs g + i - cs), are split over workgroups as flash-decode-wgsl.ts splits
// a contiguous cache: each runs FlashAttention-2's online softmax over its split in tiles of a thread per
// key and writes a partial state; flash-decode-wgsl.ts's merge folds the splits (it reads the same uniform,
// whose first eight words are decodeParams'). Prefill chunks keep the row-tile kernels of cca-wgsl.ts.
// CPU truth: attention/cca-cache.ts (CcaKVCache); test/cca-gpu-layer.test.ts checks many splits.
import type { DType } from '../tensor.js';
import {
  DECODE_TILE,
  decodeParams,
  decodeSplits,
  flashDecodePartialWgsl,
  type DecodeKeyRows,
} from './flash-decode-wgsl.js';

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
export function ccaDecodeParams(p: CcaDecodeParams): { params: ArrayBuffer; splits: number } {
  const { cores, rawFirst } = ccaDecodeKeys(p.position, p.group, p.window);
  const keys = cores + p.position - rawFirst + 1;
  const { splits, keysPerSplit } = decodeSplits(keys);
  const buf = new ArrayBuffer(64);
  new Uint8Array(buf).set(
    new Uint8Array(
      decodeParams({ keys, kvStride: p.rowsPerHead, group: p.headsPerKv, scale: p.scale, splits, keysPerSplit }),
    ),
  );
  new Uint32Array(buf, 32, 4).set([cores, rawFirst, p.ringRow0, Math.max(1, p.ringCapacity)]);
  return { params: buf, splits };
}

/** Where key i sits: core i, else raw position raw_first + i - cores in its ring slot (rows kept per tile for V). */
const CCA_KEY_ROWS: DecodeKeyRows = {
  params: 'cores: u32, raw_first: u32, ring_row0: u32, ring_cap: u32,',
  wgsl: `var<workgroup> rows: array<u32, ${DECODE_TILE}>;
fn row_of(i: u32) -> u32 {
  if (i < params.cores) { return i; }
  return params.ring_row0 + (params.raw_first + i - params.cores) % params.ring_cap;
}`,
  keyRow: 'let row = kbase + row_of(j) * D;\n      rows[lid] = row;',
  valueRow: 'rows[x]',
};

/** Partial states: q [Hq, 1, D], cache k/v [Hkv, rows, D] -> po [Hq, splits, D], plse [Hq, splits]. Grid (splits, Hq).
 * flash-decode-wgsl.ts's partial kernel (its NaN policy included) over CCA's key numbering. */
export function ccaDecodePartialWgsl(headDim: number, dtype: DType): string {
  return flashDecodePartialWgsl(headDim, dtype, CCA_KEY_ROWS);
}
