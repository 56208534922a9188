#!/usr/bin/env bash
# One device call of at most CALL_SECONDS (default 570, prelude included) that takes issue 13's remap test split
# (seed 2, `remap:window=512,topk=512`, chosen on the dev split in docs/eval-h200-remap/) to the case counts the
# issue asks for, resuming the cases already in docs/eval-h200-remap/results.jsonl (new ones are appended):
#  1. 4K-32K to 100 cases each, within 90 s;
#  2. 128K towards 50 cases (about 18.5 s a case on the H200), in what is left.
# The report over every length is rewritten at the end: $OUT/eval/ (report.md, results.jsonl, plots).
#   bash scripts/pack-device.sh      then      source .device/prelude.sh && bash scripts/h200-call-remap-finish.sh
# Dry run on lavapipe: OUT=/tmp/dry-remap SHORT=2K LONG=3K SHORT_CASES=95 LONG_CASES=23 CALL_SECONDS=200 \
#   bash scripts/h200-call-remap-finish.sh
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200-call-lib.sh
source scripts/h200-call-lib.sh
out="${OUT:-h200-call-out}"
mkdir -p "$out/eval"
call_deadline "${CALL_SECONDS:-570}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
cp docs/eval-h200-remap/results.jsonl "$out/eval/results.jsonl"
remap() { # seconds, lengths, cases per length
  within "$(( $1 + 20 ))" node dist/src/cli/main.js eval --model "${PASSKEY_2K:-test/fixtures/passkey-2k}" \
    --tasks passkey --lengths "$2" --cases-per "$3" --seed 2 --backend webgpu --storage "${STORAGE:-f16}" \
    --positions remap:window=512,topk=512 --budget-seconds "$1" --title "passkey (WebGPU)" --out "$out/eval" 2>&1 |
    grep -v -e 'artificially reduced' -e deprecated | tail -n 30 >> "$out/eval/log.txt"
}
remap "$(( $(window 110) - 20 ))" "${SHORT:-4K,8K,16K,32K}" "${SHORT_CASES:-100}"
stamp short $?
remap "$(( $(window 600) - 50 ))" "${LONG:-128K}" "${LONG_CASES:-50}"
stamp long $?
# The report over every length and task in results.jsonl (no new cases).
within "$(window 40)" node dist/src/cli/main.js eval --model "${PASSKEY_2K:-test/fixtures/passkey-2k}" --tasks passkey \
  --lengths "${SHORT:-4K,8K,16K,32K},64K,${LONG:-128K}" --cases-per 0 --seed 2 --backend webgpu \
  --storage "${STORAGE:-f16}" --positions remap:window=512,topk=512 --title "passkey (WebGPU)" --out "$out/eval" \
  >> "$out/eval/log.txt" 2>&1
stamp report $?
{
  cat "$out/gpu.txt"
  for p in short long report; do echo "== $p: $(cat "$out/$p-exit.txt")"; done
  grep -E "^\|" "$out/eval/report.md" 2> /dev/null | head -n 8
  echo "call: $(( $(date +%s) - started )) s so far"
} > "$out/summary.txt"
cat "$out/summary.txt"
pack_results "$out"
