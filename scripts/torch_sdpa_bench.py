"""PyTorch reference rows for `longctx bench attention --reference`: scaled_dot_product_attention with the
flash and math backends, timed with CUDA events (median of reps after warm-up), peak memory from
torch.cuda.max_memory_allocated. Run on the GPU machine in the same session as our benchmark.
PyTorch is the side-by-side reference only, never a dependency of longctx."""
import argparse, json, statistics, sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def time_call(fn, reps, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--lengths', default='1024,2048,4096,8192,16384,32768,65536,131072')
    p.add_argument('--heads', type=int, default=32)
    p.add_argument('--head-dim', type=int, default=128)
    p.add_argument('--dtype', default='f16', choices=['f16', 'bf16'])
    p.add_argument('--reps', type=int, default=5)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--out', required=True)
    a = p.parse_args()
    dtype = torch.float16 if a.dtype == 'f16' else torch.bfloat16
    rows = []
    failed = set()
    for n in [int(x) for x in a.lengths.split(',')]:
        for name, backend in [('sdpa-flash', SDPBackend.FLASH_ATTENTION), ('sdpa-math', SDPBackend.MATH)]:
            row = dict(source='pytorch', method=name, backend='cuda', variant=f'torch {torch.__version__}', dtype=a.dtype,
                       seqLen=n, heads=a.heads, kvHeads=a.heads, headDim=a.head_dim, causal=True,
                       ms=None, tflops=None, peakBytes=None, status='ok')
            if name in failed:
                row.update(status='skipped', note='a shorter length already failed')
                rows.append(row)
                continue
            try:
                torch.cuda.empty_cache()
                q, k, v = (torch.randn(1, a.heads, n, a.head_dim, device='cuda', dtype=dtype) for _ in range(3))
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated() - 3 * q.numel() * q.element_size()
                with sdpa_kernel(backend):
                    ms = time_call(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), a.reps, a.warmup)
                flops = 4 * n * n * a.heads * a.head_dim / 2
                row.update(ms=ms, tflops=flops / (ms * 1e-3) / 1e12, peakBytes=torch.cuda.max_memory_allocated() - base)
                del q, k, v
            except torch.OutOfMemoryError as e:
                row.update(status='oom', note=str(e).split('.')[0][:120])
                failed.add(name)
            print(f"{name} {n}: {row['status']} {row['ms']}", file=sys.stderr, flush=True)
            rows.append(row)
    torch.cuda.empty_cache()
    json.dump({'title': 'PyTorch SDPA', 'device': torch.cuda.get_device_name(), 'date': '', 'rows': rows}, open(a.out, 'w'), indent=1)


if __name__ == '__main__':
    main()
