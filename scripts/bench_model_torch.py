#!/usr/bin/env python3
"""Prefill and decode tokens/s of Hugging Face transformers' LlamaForCausalLM (random weights, the
Llama-3.2-1B shape, SDPA attention) against context length: the reference beside scripts/bench-model.mjs.

  python3 scripts/bench_model_torch.py --out torch-model.json [--lengths 1024,4096,16384] [--decode 32] [--dtype float16]
"""
import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--lengths", default="1024,4096,16384")
p.add_argument("--decode", type=int, default=32)
p.add_argument("--dtype", default="float16")
args = p.parse_args()

config = LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=64, vocab_size=128256, max_position_embeddings=131072,
                     rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True, attn_implementation="sdpa")
dtype = getattr(torch, args.dtype)
torch.manual_seed(0)
model = LlamaForCausalLM(config).to("cuda", dtype).eval()
rows = []
with torch.inference_mode():
    for length in [int(x) for x in args.lengths.split(",")]:
        ids = torch.arange(length, device="cuda").mul(7919).add(13).remainder(config.vocab_size).unsqueeze(0)
        model(ids[:, :64], use_cache=True)  # warm up kernels
        torch.cuda.synchronize()
        a = time.perf_counter()
        try:
            out = model(ids, use_cache=True, logits_to_keep=1)  # transformers >= 4.50
        except TypeError:
            out = model(ids, use_cache=True)
        torch.cuda.synchronize()
        prefill = time.perf_counter() - a
        past = out.past_key_values
        tok = out.logits[:, -1:].argmax(-1)
        b = time.perf_counter()
        for _ in range(args.decode):
            out = model(tok, past_key_values=past, use_cache=True)
            past = out.past_key_values
            tok = out.logits[:, -1:].argmax(-1)
        torch.cuda.synchronize()
        decode = time.perf_counter() - b
        row = dict(method=f"transformers sdpa {args.dtype}", length=length, prefillSeconds=prefill,
                   prefillTokensPerSecond=length / prefill, decodeSteps=args.decode, decodeTokensPerSecond=args.decode / decode,
                   peakBytes=torch.cuda.max_memory_allocated())
        rows.append(row)
        print(json.dumps(row), flush=True)
        del out, past
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
json.dump({"rows": rows}, open(args.out, "w"), indent=2)
