#!/usr/bin/env bash
# Issue 7's check on the GPU machine: our loader + WebGPU decoder against transformers' LlamaForCausalLM
# on a Llama-3.2-1B-shaped model with random weights, 4K to 32K tokens (scripts/hf-equivalence.py).
# Assumes the device prelude (node on PATH, dist/ built, PyTorch + transformers as python3).
# Results: $OUT/hf-equivalence/{results.json,summary.md,log.txt} (HF_EQ_ARGS=--save-logits adds .npy). Budget: under 4 minutes on an H100.
#   LENGTHS=4096,8192 ATTENTION=flash bash scripts/hf-equivalence.sh
#   HF_EQ_ARGS=--tiny BACKEND=cpu LENGTHS=97,200 bash scripts/hf-equivalence.sh   # the logic, without torch
set -uo pipefail
cd "$(dirname "$0")/.."
[ -f .device/prelude.sh ] && source .device/prelude.sh
: "${OUT:=$PWD/out}"
mkdir -p "$OUT/hf-equivalence"
{
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
} > "$OUT/hf-equivalence/log.txt" 2>&1
# The node side gets what is left of the budget; a length that does not finish is reported as failed.
timeout 235 python3 scripts/hf-equivalence.py \
  --lengths "${LENGTHS:-4096,8192,16384,32768}" --backend "${BACKEND:-webgpu}" --attention "${ATTENTION:-flash}" \
  --node-timeout "${NODE_TIMEOUT:-170}" --out "$OUT/hf-equivalence" ${HF_EQ_ARGS:-} 2>&1 | tee -a "$OUT/hf-equivalence/log.txt"
status=${PIPESTATUS[0]}
echo "hf-equivalence: exit $status" | tee -a "$OUT/hf-equivalence/log.txt"
exit "$status"
