"""PyTorch rows for `longctx bench kernels --reference`: the same work as our kernel versions, timed
with CUDA events (median after warm-up): SDPA flash (causal, f16, 32 heads, D 128 at 16K-128K, D 64 at
16K), cuBLAS f16 matmuls y = x W^T (4096x2048x8192, 4096x8192x2048), GEMV M = 1 over f16 weights
rotating through >= 512 MiB (so none stays in L2), and device-to-device copy bandwidth (read + write).
Case names match src/bench/kernel-bench.ts. PyTorch is the reference only, never a dependency."""
import argparse, json, math, statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def timed(fn, target_ms=300.0, max_reps=50):
    fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); fn(); e.record(); torch.cuda.synchronize()
    first = s.elapsed_time(e)
    reps = max(1, min(max_reps, int(target_ms / max(first, 1e-3))))
    times = []
    for _ in range(min(reps, 7)):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(max(1, reps // 7)):
            fn()
        e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / max(1, reps // 7))
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--lengths', default='16384,32768,65536,131072')
    p.add_argument('--out', required=True)
    a = p.parse_args()
    dev = torch.device('cuda')
    rows = []

    def emit(row):
        rows.append(row)
        print(json.dumps(row), flush=True)
        with open(a.out, 'w') as f:
            json.dump({'device': torch.cuda.get_device_name(), 'torch': torch.__version__, 'rows': rows}, f, indent=1)

    # Matmuls: y[M, N] = x[M, K] W[N, K]^T, f16 in, cuBLAS (f32 accumulation).
    for m, n, k in [(4096, 2048, 8192), (4096, 8192, 2048)]:
        x = torch.randn(m, k, device=dev, dtype=torch.float16)
        w = torch.randn(n, k, device=dev, dtype=torch.float16)
        ms = timed(lambda: F.linear(x, w))
        emit({'family': 'matmul', 'version': 'torch', 'case': f'M{m} N{n} K{k}', 'ms': ms,
              'tflops': 2 * m * n * k / (ms * 1e-3) / 1e12, 'timer': 'cuda-event', 'reps': 1})
        del x, w
    # GEMV over rotating weights (same count as ours: ceil(0.75 GiB / bytes)).
    for n, k in [(8192, 2048), (2048, 8192)]:
        nbytes = n * k * 2
        count = max(2, math.ceil(0.75 * 2**30 / nbytes))
        ws = [torch.randn(n, k, device=dev, dtype=torch.float16) for _ in range(count)]
        x = torch.randn(1, k, device=dev, dtype=torch.float16)

        def sweep():
            for w in ws:
                F.linear(x, w)
        ms = timed(sweep) / count
        emit({'family': 'gemv', 'version': 'torch', 'case': f'N{n} K{k} rotating {count * nbytes // 2**20} MiB',
              'ms': ms, 'gbps': (nbytes + 2 * k + 2 * n) / (ms * 1e-3) / 1e9, 'timer': 'cuda-event', 'reps': count})
        del ws
    # Copy bandwidth: read + write bytes.
    nbytes = 256 * 2**20
    src = torch.empty(nbytes, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    ms = timed(lambda: dst.copy_(src))
    emit({'family': 'copy', 'version': 'torch', 'case': 'copy 256MiB', 'ms': ms,
          'gbps': 2 * nbytes / (ms * 1e-3) / 1e9, 'timer': 'cuda-event', 'reps': 1})
    del src, dst
    # Flash attention (FlashAttention-2 through SDPA), causal, f16, batch 1.
    lengths = [int(s) for s in a.lengths.split(',')]
    for n, d in [(n, 128) for n in lengths] + [(lengths[0], 64)]:
        q, k, v = (torch.randn(1, 32, n, d, device=dev, dtype=torch.float16) for _ in range(3))
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            ms = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), target_ms=200.0)
        emit({'family': 'flash', 'version': 'torch', 'case': f'causal H32 D{d} N{n}', 'ms': ms,
              'tflops': 2 * 2 * n * n * d * 32 * 0.5 / (ms * 1e-3) / 1e12, 'timer': 'cuda-event', 'reps': 1})
        del q, k, v
        torch.cuda.empty_cache()


if __name__ == '__main__':
    main()
