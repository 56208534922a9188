#!/usr/bin/env bash
# One device call of at most CALL_SECONDS (default 570, prelude included) that runs two measurements in turn:
#  1. scripts/eval-h200.sh on test/fixtures/passkey-2k (tracked in the repository): EVAL_SECONDS (default 330) of
#     cases (45/40/15 by its three parts), stopped by EVAL_WINDOW (default 400) s after the call started whatever
#     is in flight; if it was stopped, its report is made here from the cases that finished (results.jsonl);
#  2. scripts/train-indexer-h200.sh in the time left (less 15 s for the archive), at reduced sizes: TRAIN_LENGTHS
#     (512,2048,8192), TRAIN_CPU_MAX (1024), TRAIN_STEPS (2), TRAIN_CONTEXT (2048), TRAIN_MODEL (passkey-2k).
# Everything under $OUT ends in $OUT/results.tar.gz (eval/, train/), beside $OUT/summary.txt (also printed).
#   bash scripts/pack-device.sh   then   source .device/prelude.sh && bash scripts/h200-call-eval-train.sh
# eval-h200.sh's own overrides pass through (LENGTHS, LONG_LENGTHS, BESIDE_LENGTHS, CASES, ..., POSITIONS, SEED).
# Dry run here (lavapipe, ~5 minutes): OUT=/tmp/dry-eval-train CALL_SECONDS=400 EVAL_SECONDS=40 EVAL_WINDOW=200
#   LENGTHS=1K LONG_LENGTHS=2K BESIDE_LENGTHS=1K CASES=2 LONG_CASES=1 BESIDE_CASES=1
#   POSITIONS=self-extend:window=256,group=4 TRAIN_LENGTHS=128,256 TRAIN_CPU_MAX=256 TRAIN_CONTEXT=128
#   TRAIN_MODEL=test/fixtures/stories260K/stories260K.gguf bash scripts/h200-call-eval-train.sh
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200-call-lib.sh
source scripts/h200-call-lib.sh
out="${OUT:-h200-call-out}"
mkdir -p "$out/eval" "$out/train"
call_deadline "${CALL_SECONDS:-570}"
[ -f dist/src/cli/main.js ] || npx tsc -p . || exit 1
model=test/fixtures/passkey-2k
export EVAL_SECONDS="${EVAL_SECONDS:-330}"
# eval-h200.sh resumes from its work folder's results.jsonl: a stale one (an earlier run on this machine) would
# mix into this call's report.
work=/tmp/longctx-eval-h200
rm -rf "$work"
OUT="$out/eval" within $(( started + ${EVAL_WINDOW:-400} - $(date +%s) )) bash scripts/eval-h200.sh "$model" \
  > "$out/eval/stdout.txt" 2>&1
echo "eval-h200.sh: exit $?, $(( $(date +%s) - started )) s into the call" | tee "$out/eval/exit.txt"
if [ ! -s "$out/eval/report.md" ] && [ -s "$work/gpu/results.jsonl" ]; then
  # Stopped before its report: the same report-only run over what finished.
  within 40 node dist/src/cli/main.js eval --model "$model" --seed "${SEED:-2}" --backend cpu --cases-per 0 \
    --out "$work/gpu" --title "passkey-2k past 2K on WebGPU (seed ${SEED:-2}; cut off by the call's budget)" \
    > /dev/null 2>> "$out/eval/stdout.txt"
  cp "$work/gpu/report.md" "$work/gpu/report.json" "$work/gpu/results.jsonl" "$out/eval/" 2>/dev/null
  svgs=$(cd "$work/gpu" && ls ./*.svg 2>/dev/null)
  # shellcheck disable=SC2086 # one word per file
  [ -n "$svgs" ] && tar -C "$work/gpu" -czf "$out/eval/plots.tar.gz" $svgs
fi
OUT="$out/train" within $(( $(seconds_left) - 15 )) env LENGTHS="${TRAIN_LENGTHS:-512,2048,8192}" \
  CPU_MAX="${TRAIN_CPU_MAX:-1024}" STEPS="${TRAIN_STEPS:-2}" CONTEXT="${TRAIN_CONTEXT:-2048}" \
  MODEL="${TRAIN_MODEL:-$model}" bash scripts/train-indexer-h200.sh > "$out/train/stdout.txt" 2>&1
echo "train-indexer-h200.sh: exit $?, $(( $(date +%s) - started )) s into the call" | tee "$out/train/exit.txt"
{
  echo "== eval (scripts/eval-h200.sh, EVAL_SECONDS=$EVAL_SECONDS): $(cat "$out/eval/exit.txt")"
  cat "$out/eval/gpu.txt" 2>/dev/null
  tail -n 30 "$out/eval/report.md" 2>/dev/null || tail -n 10 "$out/eval/stdout.txt"
  grep -h "took" "$out/eval/gpu.log" 2>/dev/null
  echo
  echo "== train-indexer (scripts/train-indexer-h200.sh): $(cat "$out/train/exit.txt")"
  cat "$out/train/grad-timing.md" "$out/train/summary.txt" 2>/dev/null || tail -n 10 "$out/train/stdout.txt"
  echo
  echo "call: $(( $(date +%s) - started )) s so far"
} > "$out/summary.txt"
cat "$out/summary.txt"
pack_results "$out"
