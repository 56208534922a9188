#!/usr/bin/env python3
"""Our decoder against Hugging Face transformers' LlamaForCausalLM on the same random weights.

A Llama-3.2-1B-shaped config (hidden 2048, 16 layers, 32 heads, 8 KV heads, head dim 64, MLP 8192,
vocab 128256, Llama 3 RoPE factor 32 from 8192, tied embeddings) gets random weights (seed 0; norm
weights drawn in [0.5, 1.5] so that a missing norm shows), is saved with save_pretrained as f16
safetensors, and runs in float32 (TF32 off) on random token sequences of each length. The logits of the
last 8 positions are compared with scripts/logits.ts (our loader + decoder, built to dist/scripts/logits.js):
max abs diff, relative to the largest reference logit, and top-1 agreement. Also RoPE's inv_freq against ours.

  python3 scripts/hf-equivalence.py [--lengths 4096,8192,16384,32768] [--backend webgpu]
  python3 scripts/hf-equivalence.py --tiny --backend cpu     # no torch: a numpy float64 reference

Writes $OUT/hf-equivalence/{results.json,summary.md} (or --out DIR).
"""
import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

LAST = 8
ROPE = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}
SHAPE_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                num_key_value_heads=8, head_dim=64, vocab_size=128256, max_position_embeddings=131072,
                rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001)
# Tiny: same structure (GQA 4:1, llama3 RoPE that scales some pairs at these lengths, tied), CPU-sized.
SHAPE_TINY = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=1, head_dim=16, vocab_size=300, max_position_embeddings=4096,
                  rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
TINY_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
             "original_max_position_embeddings": 64}
THETA = 500000.0


# ---- the transformers reference (GPU machine) ----

def torch_reference(model_dir, token_files, last):
    import inspect
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    kwargs = dict(SHAPE_1B)
    if "rope_parameters" in inspect.signature(LlamaConfig.__init__).parameters:  # transformers 5
        kwargs["rope_parameters"] = dict(ROPE, rope_theta=THETA)
    else:
        kwargs.update(rope_theta=THETA, rope_scaling=dict(ROPE))
    config = LlamaConfig(**kwargs)
    config._attn_implementation = "sdpa"  # memory-efficient kernel: no N x N in float32
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    # model.half() also casts the RoPE inv_freq buffers, and f16 flushes the lowest frequencies (~1e-7)
    # to subnormals: keep the float32 buffers and put them back, so the reference's RoPE is exact.
    buffers = {name: b.detach().clone() for name, b in model.named_buffers() if "inv_freq" in name}
    model.half().save_pretrained(model_dir, safe_serialization=True)
    model.float().eval()
    with torch.no_grad():
        for name, b in model.named_buffers():
            if name in buffers:
                b.copy_(buffers[name])
    inv_freq = model.model.rotary_emb.inv_freq.detach().double().cpu().numpy()
    # Only the memory-efficient SDPA kernel (float32, causal without a materialised mask): the math
    # fallback would allocate heads x N x N floats (8 GiB per layer at 8K) and run out of memory.
    # The efficient kernel takes no GQA: have transformers repeat the KV heads (its own fallback path).
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import transformers.integrations.sdpa_attention as hf_sdpa
    hf_sdpa.use_gqa_in_sdpa = lambda *args, **kwargs: False
    refs = {}
    for name, path in token_files.items():
        ids = torch.from_numpy(np.fromfile(path, dtype="<i4").astype(np.int64)).cuda()[None]
        t = time.time()
        torch.cuda.empty_cache()
        with torch.no_grad(), sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]):
            hidden = model.model(input_ids=ids, attention_mask=None).last_hidden_state[:, -last:]
            logits = model.lm_head(hidden)[0].float().cpu().numpy()
        torch.cuda.synchronize()
        refs[name] = (logits, time.time() - t)
    return inv_freq, refs, f"transformers {__import__('transformers').__version__}, torch {torch.__version__}"


# ---- the numpy reference (tiny, anywhere) ----

def llama3_inv_freq(head_dim, theta, rope):
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    n0, lo, hi, f = rope["original_max_position_embeddings"], rope["low_freq_factor"], rope["high_freq_factor"], rope["factor"]
    wavelen = 2 * math.pi / inv
    smooth = (n0 / wavelen - lo) / (hi - lo)
    out = np.where(wavelen > n0 / lo, inv / f, inv)
    mid = (wavelen >= n0 / hi) & (wavelen <= n0 / lo)
    return np.where(mid, (1 - smooth) * inv / f + smooth * inv, out)


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr.astype("<f2")).tobytes()
        header[name] = {"dtype": "F16", "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def numpy_reference(model_dir, token_files, last):
    c = SHAPE_TINY
    rng = np.random.default_rng(0)
    h, ff, L, H, Hkv, d, V = (c[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                            "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size"))
    w = {"model.embed_tokens.weight": rng.normal(0, 0.2, (V, h)), "model.norm.weight": rng.uniform(0.5, 1.5, h)}
    for i in range(L):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = rng.uniform(0.5, 1.5, h)
        w[p + "post_attention_layernorm.weight"] = rng.uniform(0.5, 1.5, h)
        for n, shape in (("self_attn.q_proj", (H * d, h)), ("self_attn.k_proj", (Hkv * d, h)), ("self_attn.v_proj", (Hkv * d, h)),
                         ("self_attn.o_proj", (h, H * d)), ("mlp.gate_proj", (ff, h)), ("mlp.up_proj", (ff, h)), ("mlp.down_proj", (h, ff))):
            w[p + n + ".weight"] = rng.normal(0, 0.2, shape)
    w = {k: v.astype(np.float16).astype(np.float64) for k, v in w.items()}  # what the file holds
    write_safetensors(os.path.join(model_dir, "model.safetensors"), w)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(dict(c, architectures=["LlamaForCausalLM"], model_type="llama", rope_theta=THETA, rope_scaling=TINY_ROPE), f)
    inv = llama3_inv_freq(d, THETA, TINY_ROPE)

    def norm(x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + c["rms_norm_eps"]) * g

    def rope(x, pos):  # x [N, heads, d], half-split layout (rotate_half)
        ang = pos[:, None] * inv[None, :]
        cos, sin = np.cos(np.concatenate([ang, ang], 1))[:, None], np.sin(np.concatenate([ang, ang], 1))[:, None]
        x1, x2 = x[..., : d // 2], x[..., d // 2:]
        return x * cos + np.concatenate([-x2, x1], -1) * sin

    refs = {}
    for name, path in token_files.items():
        ids = np.fromfile(path, dtype="<i4")
        n, t = len(ids), time.time()
        pos = np.arange(n, dtype=np.float64)
        x = w["model.embed_tokens.weight"][ids]
        mask = np.triu(np.full((n, n), -np.inf), 1)
        for i in range(L):
            p = f"model.layers.{i}."
            a = norm(x, w[p + "input_layernorm.weight"])
            q = rope((a @ w[p + "self_attn.q_proj.weight"].T).reshape(n, H, d), pos)
            k = rope((a @ w[p + "self_attn.k_proj.weight"].T).reshape(n, Hkv, d), pos)
            v = (a @ w[p + "self_attn.v_proj.weight"].T).reshape(n, Hkv, d)
            out = np.empty((n, H, d))
            for hh in range(H):
                kv = hh // (H // Hkv)
                s = q[:, hh] @ k[:, kv].T / math.sqrt(d) + mask
                s = np.exp(s - s.max(1, keepdims=True))
                out[:, hh] = (s / s.sum(1, keepdims=True)) @ v[:, kv]
            x = x + out.reshape(n, H * d) @ w[p + "self_attn.o_proj.weight"].T
            m = norm(x, w[p + "post_attention_layernorm.weight"])
            g = m @ w[p + "mlp.gate_proj.weight"].T
            x = x + ((g / (1 + np.exp(-g))) * (m @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
        logits = norm(x[-last:], w["model.norm.weight"]) @ w["model.embed_tokens.weight"].T
        refs[name] = (logits, time.time() - t)
    return inv, refs, "numpy float64 reference"


# ---- compare ----

def compare(ref, ours):
    diff = np.abs(ref - ours)
    scale = max(1.0, float(np.abs(ref).max()))
    top_ref, top_ours = ref.argmax(-1), ours.argmax(-1)
    srt = np.sort(ref, -1)
    margin = srt[:, -1] - srt[:, -2]  # how far the reference's top-1 stands above its runner-up
    return {
        "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()), "max_abs_ref": float(np.abs(ref).max()),
        "rel_max_abs_diff": float(diff.max() / scale), "top1_agree": int((top_ref == top_ours).sum()), "positions": int(len(ref)),
        # A disagreement only counts where the reference's margin exceeds our error: otherwise it is a near-tie.
        "top1_clear_disagreements": int(((top_ref != top_ours) & (margin > 2 * diff.max())).sum()),
        "nan": bool(np.isnan(ours).any()),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="4096,8192,16384,32768")
    ap.add_argument("--backend", default="webgpu")
    ap.add_argument("--attention", default="flash")
    ap.add_argument("--tiny", action="store_true", help="tiny model, numpy reference (no torch)")
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "hf-equivalence"))
    ap.add_argument("--tolerance", type=float, default=1e-3, help="max abs diff / max(1, max |ref logit|)")
    ap.add_argument("--node-timeout", type=int, default=600)
    ap.add_argument("--save-logits", action="store_true", help="also write both sides' logits as .npy (4 MB per length at 1B)")
    args = ap.parse_args()
    lengths = [int(s) for s in args.lengths.split(",")]
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="hf-equivalence-")
    model_dir = os.path.join(work, "model")
    os.makedirs(model_dir)
    vocab = (SHAPE_TINY if args.tiny else SHAPE_1B)["vocab_size"]
    rng = np.random.default_rng(1)
    token_files = {}
    for n in lengths:
        path = os.path.join(work, f"tokens-{n}.i32")
        rng.integers(0, vocab, n).astype("<i4").tofile(path)
        token_files[f"tokens-{n}"] = path
    try:
        inv_ref, refs, reference = (numpy_reference if args.tiny else torch_reference)(model_dir, token_files, LAST)
        cmd = ["node", "dist/scripts/logits.js", "--model", model_dir, "--tokens", ",".join(token_files.values()),
               "--out-dir", work, "--last", str(LAST), "--backend", args.backend, "--attention", args.attention,
               "--rope-out", os.path.join(work, "inv_freq.f64")]
        print("running:", " ".join(cmd), file=sys.stderr, flush=True)
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=args.node_timeout)
        except subprocess.TimeoutExpired as e:  # keep the lengths that finished
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            run = subprocess.CompletedProcess(cmd, 124, out, err + f"\nlogits.js timed out after {args.node_timeout} s\n")
        sys.stderr.write(run.stderr[-4000:])
        timings = {json.loads(l)["file"]: json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")}
        inv_ours = np.fromfile(os.path.join(work, "inv_freq.f64"), dtype="<f8") if os.path.exists(os.path.join(work, "inv_freq.f64")) else None
        results = {"reference": reference, "backend": args.backend, "attention": args.attention, "tiny": args.tiny,
                   "node_exit": run.returncode, "tolerance": args.tolerance, "lengths": {}}
        if inv_ours is not None:
            results["inv_freq_max_rel_diff"] = float(np.max(np.abs(inv_ours - inv_ref) / inv_ref))
        ok = run.returncode == 0 and inv_ours is not None and results["inv_freq_max_rel_diff"] < 1e-5
        for name, (ref, ref_seconds) in refs.items():
            path = os.path.join(work, f"{name}.logits.f32")
            entry = {"reference_seconds": ref_seconds, "ours": timings.get(name)}
            if os.path.exists(path):
                ours = np.fromfile(path, dtype="<f4").reshape(LAST, -1)
                if args.save_logits:
                    np.save(os.path.join(args.out, f"{name}-reference.npy"), ref.astype(np.float32))
                    np.save(os.path.join(args.out, f"{name}-ours.npy"), ours)
                entry.update(compare(ref, ours))
                entry["pass"] = (not entry["nan"]) and entry["rel_max_abs_diff"] <= args.tolerance and entry["top1_clear_disagreements"] == 0
            else:
                entry["pass"] = False
            ok = ok and entry["pass"]
            results["lengths"][name] = entry
        results["pass"] = ok
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    rows = ["| tokens | max abs diff | rel | top-1 agree | ours (s) | reference (s) | pass |", "|---|---|---|---|---|---|---|"]
    for name, e in results["lengths"].items():
        if "max_abs_diff" in e:
            ours_s = e["ours"]["totalSeconds"] if e.get("ours") else float("nan")
            rows.append(f"| {name[7:]} | {e['max_abs_diff']:.3g} | {e['rel_max_abs_diff']:.3g} | {e['top1_agree']}/{e['positions']} | {ours_s:.1f} | {e['reference_seconds']:.1f} | {e['pass']} |")
        else:
            rows.append(f"| {name[7:]} | - | - | - | - | {e['reference_seconds']:.1f} | False |")
    summary = f"{reference} vs longctx ({args.backend}, {args.attention}); inv_freq max rel diff {results.get('inv_freq_max_rel_diff')}\n\n" + "\n".join(rows) + "\n"
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(summary)
    print(summary)
    sys.exit(0 if results["pass"] else 1)


if __name__ == "__main__":
    main()
