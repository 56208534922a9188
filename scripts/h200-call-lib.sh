# Sourced by scripts/h200-call-*.sh: one device call (at most 10 minutes) that runs several measurement scripts
# within a hard wall-clock budget, then hands its results back as one archive (the device returns few files).
#   call_deadline SECONDS     sets $deadline: SECONDS after the device command started (prelude included)
#   seconds_left              seconds until $deadline
#   within SECONDS CMD...     runs CMD; at SECONDS it TERMs CMD and every process below it (by pid: the scripts'
#                             own `timeout`s put their children in other process groups, so a group kill misses
#                             them), KILLs what is left 5 s later, and returns 124
#   gpu_idle SECONDS          waits until the GPU is idle (after a stopped part; within does it itself)
#   pack_results DIR          DIR's files into DIR/results.tar.gz (the originals removed), DIR/summary.txt kept
#   dsa_vs_exact MODEL OUT BUDGET LENGTHS CASES
#                             passkey accuracy (test split) of exact attention and dsa:topk=2048 under YaRN x16 in
#                             f16 (or $STORAGE) into OUT, its log appended to OUT/log.txt; 124 when BUDGET <= 20 s

# When the device's shell (our parent, which sourced the prelude first) started; a parent older than 120 s is
# an interactive shell (a dry run), and then the call starts now.
call_started() {
  local now up start ticks age
  now=$(date +%s)
  read -r up _ < /proc/uptime 2> /dev/null || { echo "$now"; return; }
  start=$(sed 's/.*) //' "/proc/$PPID/stat" 2> /dev/null | awk '{ print $20 }')
  ticks=$(getconf CLK_TCK 2> /dev/null || echo 100)
  age=$(( ${up%.*} - ${start:-0} / ticks ))
  if [ -n "$start" ] && [ "$age" -ge 0 ] && [ "$age" -le 120 ]; then echo $(( now - age )); else echo "$now"; fi
}

call_deadline() {
  started=$(call_started)
  deadline=$(( started + $1 ))
  echo "call: started $(( $(date +%s) - started )) s ago (prelude), ends by $(date -u -d "@$deadline" +%T) UTC" >&2
}

seconds_left() { echo $(( deadline - $(date +%s) )); }

descendants() {
  local child
  for child in $(cat /proc/"$1"/task/*/children 2> /dev/null); do
    echo "$child"
    descendants "$child"
  done
}

within() {
  local seconds=$1
  shift
  if [ "$seconds" -le 0 ]; then
    echo "within: no time left for $*" >&2
    return 124
  fi
  "$@" &
  local pid=$! end=$(( $(date +%s) + seconds ))
  while kill -0 "$pid" 2> /dev/null; do
    if [ "$(date +%s)" -ge "$end" ]; then
      local tree
      tree=$(echo "$pid" $(descendants "$pid"))
      echo "within: $* ran past ${seconds} s: stopping pids $tree" >&2
      # shellcheck disable=SC2086 # one word per pid
      kill -TERM $tree 2> /dev/null
      sleep 5
      # shellcheck disable=SC2086
      kill -KILL $tree 2> /dev/null
      wait "$pid" 2> /dev/null
      gpu_idle 30
      return 124
    fi
    sleep 1
  done
  wait "$pid"
}

# Waits (at most SECONDS) until the GPU reads 0% busy twice in a row: a stopped process's queued work drains
# after it is gone, and on the H200 it slowed the next part's first rows 3-5x (docs/BENCHMARKS.md). No nvidia-smi: no wait.
gpu_idle() {
  command -v nvidia-smi > /dev/null || return 0
  local end=$(( $(date +%s) + $1 )) idle=0 busy
  while [ "$(date +%s)" -lt "$end" ]; do
    busy=$(nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits 2> /dev/null | head -n 1)
    if [ "${busy:-0}" -eq 0 ] 2> /dev/null; then idle=$(( idle + 1 )); [ "$idle" -ge 2 ] && return 0; else idle=0; fi
    sleep 1
  done
  echo "gpu_idle: the GPU was still busy after $1 s" >&2
}

pack_results() {
  local dir=$1 archive
  archive=$(mktemp /tmp/h200-call-results.XXXXXX)
  tar -C "$dir" -czf "$archive" . || return 1
  find "$dir" -mindepth 1 -maxdepth 1 ! -name summary.txt -exec rm -rf {} +
  mv "$archive" "$dir/results.tar.gz"
  echo "results: $dir/results.tar.gz ($(du -k "$dir/results.tar.gz" | cut -f1) KiB; tar -xzf it), $dir/summary.txt"
}

# A part's window: its own cap, or what is left of the call less 12 s for the archive.
window() { local left=$(( $(seconds_left) - 12 )); echo $(( $1 < left ? $1 : left )); }
# Records a part's exit status and when it ended, in $out/NAME-exit.txt.
stamp() { echo "$1: exit $2, $(( $(date +%s) - started )) s into the call" | tee "$out/$1-exit.txt"; }
# NATS_SERVER unless set: .device/nats-server, else .device/nats-server.xz unpacked to /tmp (exported).
find_nats_server() {
  if [ -z "${NATS_SERVER:-}" ]; then
    if [ -x .device/nats-server ]; then NATS_SERVER=.device/nats-server
    elif [ -f .device/nats-server.xz ]; then
      mkdir -p /tmp/longctx-nats && xz -dc .device/nats-server.xz > /tmp/longctx-nats/nats-server &&
        chmod +x /tmp/longctx-nats/nats-server && NATS_SERVER=/tmp/longctx-nats/nats-server
    fi
  fi
  export NATS_SERVER
}

dsa_vs_exact() {
  local model=$1 dir=$2 budget=$3 lengths=$4 cases=$5
  [ "$budget" -gt 20 ] || return 124
  within "$(( budget + 30 ))" node dist/src/cli/main.js eval --model "$model" --tasks passkey --lengths "$lengths" \
    --cases-per "$cases" --seed 2 --backend webgpu --storage "${STORAGE:-f16}" --rope yarn:factor=16,original=2048 \
    --attention flash --attention dsa:topk=2048 --budget-seconds "$budget" --title "passkey-2k, trained indexer (WebGPU)" \
    --out "$dir" 2>&1 | grep -v -e 'artificially reduced' -e deprecated | tail -n 30 >> "$dir/log.txt"
}
