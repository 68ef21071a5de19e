#!/usr/bin/env bash
# The GPU campaign (issue #16) over several short device calls, with the
# work itself running on between them: one background lane per GPU works
# through its step list (xtask/scripts/campaign/laneN.steps) while the calls
# only bring the large assets in and take the results out.
#
# Why this shape: a device call carries at most 64 MiB and runs at most 10
# minutes, but a warm machine keeps what was staged and keeps running what
# was started in its own session. So the bundle goes in first, MiniLM and
# Whisper's weights follow in chunks over the next calls, the lanes wait
# for the assets they need, and every call packs what has been measured so
# far (one archive, so that a lost machine loses nothing already packed).
#
# Here (the CPU machine), after `cargo xtask bundle --mlx-cuda-sm 90`:
#   gpu-campaign.sh pack BUNDLE TRANSPORT      -> TRANSPORT-core/, TRANSPORT-1/, ...
# There (the first call carries TRANSPORT-core and TRANSPORT-1, each later
# one the next TRANSPORT-k):
#   gpu-campaign.sh start STAGE TRANSPORT-core DEADLINE_S [LANES]
#                                                      unpack, install, start the lanes
#                                                      (LANES: a folder of campaign/ with
#                                                      its own lane0.steps and lane1.steps)
#   gpu-campaign.sh feed STAGE TRANSPORT-k                  add a chunk, unpack what is whole
#   gpu-campaign.sh collect STAGE OUT WAIT_S                 wait (at most WAIT_S), pack OUT/campaign.tgz
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
chunk_bytes=$((58 * 1024 * 1024))

# The large files, each its own archive, in the order the lanes need them.
big_archives() {
  echo "whisper assets/whisper-tiny-en-ct2/model.bin"
  echo "spam assets/spam-assassin"
  echo "minilm assets/minilm/model.safetensors"
}

# Which archives a benchmark needs before it can run.
needs() {
  case "$1" in
    whisper) echo whisper ;;
    bert) echo spam minilm ;;
    *) ;;
  esac
}

pack() {
  local bundle=${1:?bundle folder} transport=${2:?transport prefix}
  rm -rf "$transport"-* && mkdir -p "$transport-core" "$transport-stream"
  local exclude=() name path
  while read -r name path; do
    exclude+=(--exclude "./$path")
    tar -C "$bundle" -cf - "./$path" | xz -6 -T0 >"$transport-stream/$name.tar.xz"
  done < <(big_archives)
  tar -C "$bundle" "${exclude[@]}" -cf - . | xz -6 -T0 >"$transport-core/bundle.tar.xz"
  cp "$here/gpu-campaign.sh" "$transport-core/"
  cp -r "$here/campaign" "$transport-core/"
  # One stream of the archives, cut into chunks that fit beside the tree
  # (the first also beside the core). Whisper's weights come first: they
  # are the smaller of the two models, so Whisper can start sooner.
  : >"$transport-core/archives"
  while read -r name path; do
    echo "$name $(stat -c %s "$transport-stream/$name.tar.xz")" >>"$transport-core/archives"
    cat "$transport-stream/$name.tar.xz"
  done < <(big_archives) >"$transport-stream/stream"
  local top tree core first
  top=$(git -C "$here" rev-parse --show-toplevel)
  tree=$(cd "$top" && git ls-files -z | du --files0-from=- -cb | tail -n 1 | cut -f1)
  core=$(du -cb "$transport-core" | tail -n 1 | cut -f1)
  first=$((64 * 1024 * 1024 - tree - core - 2 * 1024 * 1024))
  mkdir -p "$transport-1"
  head -c "$first" "$transport-stream/stream" >"$transport-1/chunk.00"
  tail -c +$((first + 1)) "$transport-stream/stream" | split -b "$chunk_bytes" -d -a 2 --numeric-suffixes=1 - "$transport-stream/chunk."
  local k=2 chunk
  for chunk in "$transport-stream"/chunk.*; do
    mkdir -p "$transport-$k" && mv "$chunk" "$transport-$k/"
    k=$((k + 1))
  done
  rm -rf "$transport-stream"
  du -sh "$transport"-*
}

# Unpack every archive whose bytes have all arrived.
unpack_whole() {
  local stage=$1 offset=0 name size
  while read -r name size; do
    if [ ! -e "$stage/ready/$name" ] && [ "$(stat -c %s "$stage/stream" 2>/dev/null || echo 0)" -ge $((offset + size)) ]; then
      dd if="$stage/stream" bs=1M iflag=skip_bytes,count_bytes skip="$offset" count="$size" status=none |
        xz -dc | tar -C "$stage/bundle" -xf - &&
        touch "$stage/ready/$name" && echo "unpacked $name"
    fi
    offset=$((offset + size))
  done <"$stage/archives"
  if [ "$(ls "$stage/ready" | wc -l)" -eq "$(wc -l <"$stage/archives")" ] && [ ! -e "$stage/verified" ]; then
    (cd "$stage/bundle" && sha256sum --quiet -c MANIFEST.sha256) && touch "$stage/verified" &&
      echo "every file of the bundle matches MANIFEST.sha256"
  fi
}

feed() {
  local stage=${1:?stage} transport=${2:?transport folder} chunk
  for chunk in "$transport"/chunk.*; do
    [ -e "$stage/chunks/$(basename "$chunk")" ] && continue
    cp "$chunk" "$stage/chunks/" && cat "$chunk" >>"$stage/stream"
  done
  unpack_whole "$stage"
}

# One lane: its steps in order on its GPU, each within the deadline.
lane() {
  local stage=$1 index=$2 gpus=$3 steps=$4 threads=$5
  local bundle="$stage/bundle" dir="$stage/lane$index" deadline
  deadline=$(cat "$stage/deadline")
  mkdir -p "$dir/results"
  [ "$gpus" -gt 1 ] && export CUDA_VISIBLE_DEVICES=$index
  export BENCH_THREADS=$threads
  local kind bench precisions mode backends seconds options left need
  while read -r kind bench precisions mode backends seconds options; do
    case "$kind" in '' | '#'*) continue ;; esac
    # "wait laneN": start what follows only once lane N is done (so that a
    # CPU-heavy step does not share the host with the other lane's cells).
    if [ "$kind" = wait ]; then
      echo "== $(date -u +%T) waiting for $bench"
      while [ ! -e "$stage/$bench/done" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 5; done
      continue
    fi
    for need in $(needs "$bench"); do
      while [ ! -e "$stage/ready/$need" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 5; done
    done
    left=$((deadline - $(date +%s)))
    # A step that cannot finish is not started: a cut cell is a failed row.
    if [ "$left" -lt "${seconds:-60}" ]; then
      echo "== $(date -u +%T) skipped, too little time left: $kind $bench $precisions $mode $backends"
      continue
    fi
    echo "== $(date -u +%T) $kind $bench $precisions $mode $backends ($left s left)"
    case "$kind" in
      twins)
        local extra=()
        [ "$mode" = eager ] && extra+=(--execution eager)
        [ "$bench" = transfer ] && extra+=(--set transfer.n=2048 --set transfer.iterations=5)
        # What the step adds after its seconds (e.g. --repetitions 3) wins.
        case "$bench:$options" in
          *--repetitions*) ;;
          tinyllama:* | lm-train:* | transfer:*) extra+=(--repetitions 5) ;;
        esac
        # shellcheck disable=SC2206
        extra+=($options)
        timeout "$left" bash "$bundle/run.sh" "$dir/results" --bench "$bench" --device gpu \
          --precision ${precisions//,/ } --preset paper --threads "$threads" \
          --run-tag "g$index" "${extra[@]}" ;;
      refs)
        REFERENCE_TIMEOUT=$left timeout "$left" bash "$bundle/references.sh" "$dir/results" \
          "$bench" --precision "$precisions" --preset paper --device gpu ${backends//,/ } ;;
    esac
  done <"$steps"
  echo "== $(date -u +%T) lane $index done"
  touch "$dir/done"
}

start() {
  local stage=${1:?stage} transport=${2:?transport-core folder} budget=${3:?deadline seconds}
  local lanes=$stage/campaign/${4:-.}
  mkdir -p "$stage/bundle" "$stage/chunks" "$stage/ready"
  echo $(($(date +%s) + budget)) >"$stage/deadline"
  cp "$transport/gpu-campaign.sh" "$transport/archives" "$stage/"
  cp -r "$transport/campaign" "$stage/"
  xz -dc "$transport/bundle.tar.xz" | tar -C "$stage/bundle" -xf -
  nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader
  nvidia-smi topo -m 2>/dev/null | head -n 4
  local gpus cores threads
  gpus=$(nvidia-smi -L | wc -l)
  cores=$(nproc)
  # Installs once, before the lanes (they would otherwise race on it).
  bash "$stage/bundle/run.sh" "$stage/warm" --list-knobs >/dev/null
  bash "$stage/bundle/references.sh" "$stage/warm" tinyllama
  if [ "$gpus" -ge 2 ]; then
    threads=$((cores / 2))
    # Half of the physical cores each, a core's hyperthreads in the same
    # lane (the CPUs sorted by core; the numbering of siblings varies).
    local order
    order=$(lscpu -p=CPU,CORE,SOCKET | grep -v '^#' | sort -t, -k3,3n -k2,2n -k1,1n | cut -d, -f1)
    for index in 0 1; do
      local cpus
      cpus=$(echo "$order" | sed -n "$((index * threads + 1)),$((index * threads + threads))p" | paste -sd,)
      echo "lane $index: CPUs $cpus"
      setsid taskset -c "$cpus" \
        bash "$stage/gpu-campaign.sh" lane "$stage" "$index" "$gpus" \
        "$lanes/lane$index.steps" "$threads" >"$stage/lane$index.log" 2>&1 </dev/null &
    done
  else
    # One GPU: both lists, step by step in turn.
    paste -d '\n' "$lanes/lane0.steps" "$lanes/lane1.steps" | grep -v '^wait' >"$stage/campaign/one.steps"
    setsid bash "$stage/gpu-campaign.sh" lane "$stage" 0 1 "$stage/campaign/one.steps" "$cores" \
      >"$stage/lane0.log" 2>&1 </dev/null &
  fi
  echo "$gpus GPU(s), $cores cores: lanes started, deadline in $budget s"
}

collect() {
  local stage=${1:?stage} out=${2:?out} wait=${3:?seconds} until lanes done
  until=$(($(date +%s) + wait))
  while :; do
    lanes=$(ls -d "$stage"/lane?/ 2>/dev/null | wc -l)
    done=$(ls "$stage"/lane?/done 2>/dev/null | wc -l)
    [ "$lanes" -gt 0 ] && [ "$done" -eq "$lanes" ] && break
    [ "$(date +%s)" -ge "$until" ] && break
    sleep 10
  done
  for log in "$stage"/lane?.log; do
    echo "--- $log"
    grep '^== ' "$log" | tail -n 4
  done
  tar -C "$stage" --exclude mlx-ptx-cache -czf "$out/campaign.tgz" $(cd "$stage" && ls -d lane* 2>/dev/null)
  echo "packed $(du -h "$out/campaign.tgz" | cut -f1), lanes done: $done of $lanes, $(($(cat "$stage/deadline") - $(date +%s))) s to the deadline"
}

command=${1:?usage: gpu-campaign.sh pack|start|feed|collect|lane ...}
shift
"$command" "$@"
