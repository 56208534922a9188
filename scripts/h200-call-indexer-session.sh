#!/usr/bin/env bash
# One device call of at most CALL_SECONDS (default 570, prelude included) for issue 18's sessions and issue 17's
# trained indexer on passkey-2k:
#  1. session-bench at 128K (1B shape, f16): flash, CCA and DSA now that sessions share the model's one weight
#     upload (the load no longer re-uploads 2.5 GB of weights): $OUT/session/;
#  2. training text: passkey prompts of seed 3 (scripts/passkey-training-text.ts; eval uses 1 and 2), each under
#     half the context so every training window holds a whole question with its statement;
#  3. `longctx train-indexer` on passkey-2k at its 2K context on WebGPU (H_I 4, D_I 64), the indexer written into a
#     copy of the model as indexer.safetensors; its captured mass at top-k on the held-back prompts: $OUT/train/;
#  4. `eval-mass --needle passkey` with the trained indexer beside the training-free ones and the oracle, YaRN x16,
#     top-256 and top-2048, 2K to 32K: $OUT/mass/;
#  5. passkey accuracy (test split, seed 2) with dsa:topk=2048 and the trained indexer against exact attention, both
#     under YaRN x16, 8K-32K then 64K-128K, round robin in what is left: $OUT/eval/.
# Everything under $OUT ends in $OUT/results.tar.gz, beside $OUT/summary.txt.
#   bash scripts/pack-device.sh && source .device/prelude.sh && bash scripts/h200-call-indexer-session.sh
# Dry run here (lavapipe): OUT=/tmp/dry-ix SHAPE=tiny SESSION_CONTEXT=1K PROMPTS=40 PROMPT_LENGTH=200 CONTEXT=512
#   STEPS=3 MASS_CONTEXTS=1024 MASS_CASES=2 EVAL_LENGTHS=1K EVAL_CASES=2 LONG_LENGTHS=2K STORAGE=f32 \
#   bash scripts/h200-call-indexer-session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200-call-lib.sh
source scripts/h200-call-lib.sh
out="${OUT:-h200-call-out}"
mkdir -p "$out/session" "$out/train" "$out/mass" "$out/eval"
call_deadline "${CALL_SECONDS:-570}"
[ -f dist/src/cli/main.js ] || npx tsc -p . || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
quiet() { grep -v -e 'artificially reduced' -e deprecated; }
yarn=yarn:factor=16,original=2048
storage="${STORAGE:-f16}"

# 1. Saved sessions at 128K.
within "$(window "${SESSION_SECONDS:-150}")" node dist/src/cli/session-bench.js --random "${SHAPE:-1b}" \
  --backend webgpu --storage "$storage" --context "${SESSION_CONTEXT:-128K}" --attention flash \
  --attention cca:group=16,window=1024 --attention dsa --json "$out/session/session.json" \
  > "$out/session/session.md" 2> "$out/session/session.err"
stamp session $?

# 2-3. The indexer, trained into a copy of the model.
model=/tmp/longctx-passkey-ix
rm -rf "$model" /tmp/longctx-passkey-text && cp -r "${PASSKEY_2K:-test/fixtures/passkey-2k}" "$model"
node dist/scripts/passkey-training-text.js --model "$model" --out /tmp/longctx-passkey-text \
  --count "${PROMPTS:-400}" --length "${PROMPT_LENGTH:-960}" > "$out/train/text.txt" 2>&1
train() {
  node dist/src/cli/main.js train-indexer --model "$model" --data /tmp/longctx-passkey-text --steps "${STEPS:-240}" \
    --context "${CONTEXT:-2048}" --topk 256 --heads 4 --head-dim 64 --lr "${LR:-1e-2}" --eval-samples 64 \
    --backend webgpu --out "$model/indexer.safetensors"
}
within "$(window "${TRAIN_SECONDS:-150}")" train > "$out/train/train.out" 2>&1
stamp train $?
if [ ! -f "$model/indexer.safetensors" ]; then
  echo "no trained indexer: the mass and accuracy parts are skipped" | tee -a "$out/train/train.out"
else
  # 4. Where the indexer looks at the answer position, trained beside training-free, YaRN at every length.
  within "$(window "${MASS_SECONDS:-80}")" node dist/src/cli/main.js eval-mass --needle passkey --model "$model" \
    --contexts "${MASS_CONTEXTS:-2048,8192,32768}" --cases "${MASS_CASES:-8}" --budgets 256,2048 --rope "$yarn" \
    --backend webgpu --out "$out/mass/needle.json" > "$out/mass/log.txt" 2>&1
  stamp mass $?

  # 5. Accuracy: dsa:topk=2048 with the trained indexer against exact attention, the same YaRN.
  short=$(( ($(window 400) - 40) * 60 / 100 ))
  dsa_vs_exact "$model" "$out/eval" "$short" "${EVAL_LENGTHS:-8K,16K,32K}" "${EVAL_CASES:-100}"
  dsa_vs_exact "$model" "$out/eval" $(( $(window 400) - 40 )) "${LONG_LENGTHS:-64K,128K}" "${LONG_CASES:-50}"
  stamp eval $?
  cp "$model/indexer.safetensors" "$out/train/" 2> /dev/null
fi

{
  cat "$out/gpu.txt"
  echo "== session: $(cat "$out/session-exit.txt")"
  grep -E "^\|" "$out/session/session.md" || tail -n 5 "$out/session/session.err"
  echo "== train: $(cat "$out/train-exit.txt")"; cat "$out/train/text.txt"
  grep -E "^step " "$out/train/train.out" | sed -n '1p;$p'; grep -E "^\|" "$out/train/train.out" | tail -n 12
  echo "== mass: $(cat "$out/mass-exit.txt" 2> /dev/null)"; grep -E "^\|" "$out/mass/needle.md" 2> /dev/null | head -n 30
  echo "== eval: $(cat "$out/eval-exit.txt" 2> /dev/null)"; grep -E "^\|" "$out/eval/report.md" 2> /dev/null | head -n 8
  echo "call: $(( $(date +%s) - started )) s so far"
} > "$out/summary.txt"
cat "$out/summary.txt"
pack_results "$out"
