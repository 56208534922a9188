#!/usr/bin/env bash
# passkey-2k past its trained 2K context on the GPU machine, in one call of about 7 minutes (at most 9):
#   source .device/prelude.sh && bash scripts/eval-h200.sh [PASSKEY_2K_DIR]      (results under $OUT)
# - WebGPU (the H200): exact attention with plain RoPE and with YaRN (factor 16, original 2048), single-key
#   passkey as train_passkey.py's sample() makes it, at 4K-128K, round robin over lengths (up to 100 cases per
#   length to 32K and 50 beyond, as many as the budget allows), then multi-key, variable tracking and bAbI qa1-qa2
#   at 4K-32K beside it;
# - the host's CPU cores, in parallel: Self-Extend (window 512, group 8: every distance inside 2K up to 13K
#   tokens), which runs on the CPU decoder only so far, at 4K (about a minute of one core per case).
# SEED=1 is the dev split (choose a configuration), SEED=2 (default) the test split (report it unchanged).
# EVAL_SECONDS (default 340) bounds each part; what finished is kept (results.jsonl) and reported.
# LENGTHS, LONG_LENGTHS, BESIDE_LENGTHS, SE_LENGTHS and CORES override the grid (a dry run elsewhere).
set -uo pipefail
model="${1:-test/fixtures/passkey-2k}"
out="${OUT:-eval-out}"
seed="${SEED:-2}"
budget="${EVAL_SECONDS:-340}"
work=/tmp/longctx-eval-h200
mkdir -p "$out" "$work"
[ -f dist/src/cli/main.js ] || npx tsc -p . || exit 1
[ -e "$model" ] || { echo "no passkey-2k model at $model" >&2; exit 2; }
# Each part starts no case after its budget; a hard timeout stops a case in flight well inside 9 minutes.
cli() { timeout $(( budget + 90 )) node dist/src/cli/main.js eval --model "$model" --seed "$seed" "$@"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
cores=${CORES:-$(( $(nproc) - 2 ))}
[ "$cores" -lt 1 ] && cores=1
# CPU shards first (they start in the background), then the GPU part in the foreground.
for i in $(seq 0 $(( cores - 1 ))); do
  cli --backend cpu --tasks passkey --lengths ${SE_LENGTHS:-4K} --cases-per 100 --positions self-extend:window=512,group=8 \
    --shard "$i/$cores" --budget-seconds $(( budget - 60 )) --out "$work/cpu-$i" > /dev/null 2> "$work/cpu-$i.log" &
done
{
  cli --backend webgpu --tasks passkey --lengths ${LENGTHS:-4K,8K,16K,32K} --cases-per 100 --rope model \
    --rope yarn:factor=16,original=2048 --budget-seconds $(( budget * 6 / 10 )) --out "$work/gpu" --title "passkey (GPU)"
  cli --backend webgpu --tasks passkey --lengths ${LONG_LENGTHS:-64K,128K} --cases-per 50 --rope model \
    --rope yarn:factor=16,original=2048 --budget-seconds $(( budget * 3 / 10 )) --out "$work/gpu" --title "passkey (GPU)"
  cli --backend webgpu --tasks multikey,vt,qa1,qa2 --lengths ${BESIDE_LENGTHS:-4K,16K,32K} --cases-per 20 --rope model \
    --rope yarn:factor=16,original=2048 --budget-seconds $(( budget / 10 )) --out "$work/gpu" --title "beside (GPU)"
} 2>&1 | grep -v "artificially reduced" | tail -n 60 > "$out/gpu.log"
wait
# One report over everything: the results of every part, then a report-only run (--cases-per 0).
mkdir -p "$work/all"
cat "$work"/gpu/results.jsonl "$work"/cpu-*/results.jsonl > "$work/all/results.jsonl" 2> /dev/null
cli --backend cpu --cases-per 0 --out "$work/all" --title "passkey-2k past 2K on the H200 (seed $seed)" > /dev/null
cp "$work/all/report.md" "$work/all/report.json" "$work/all/results.jsonl" "$out/"
tail -n 3 "$work"/cpu-*.log > "$out/cpu.log" 2>&1
tar -C "$work/all" -czf "$out/plots.tar.gz" $(cd "$work/all" && ls ./*.svg)
cat "$out/report.md"
