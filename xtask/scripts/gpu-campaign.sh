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
#                                                      its own lane0.steps and lane1.steps,
#                                                      or lane0.steps alone: one lane)
#   gpu-campaign.sh feed STAGE TRANSPORT-k                  add a chunk, unpack what is whole
#   gpu-campaign.sh collect STAGE OUT WAIT_S                 wait (at most WAIT_S), pack OUT/campaign.tgz
# Anywhere, without a GPU:
#   gpu-campaign.sh plan SET [GPUS] [CORES] [BUDGET_S]       print each lane's commands on a
#                                                      clock of the steps' estimates
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

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
  # Every later call carries the repository's tree beside its chunk too.
  local chunk_bytes=$((64 * 1024 * 1024 - tree - 2 * 1024 * 1024))
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

# One lane: its steps in order on its GPU, each within the deadline. With
# DRY_RUN set it runs nothing: it prints each step's command on a clock
# that each step moves by its estimate (the lines' seconds), so that
# `plan` shows what a set runs and what the deadline would cut.
lane() {
  local stage=$1 index=$2 gpus=$3 steps=$4 threads=$5
  local bundle="$stage/bundle" dir="$stage/lane$index" deadline clock=0
  deadline=$(cat "$stage/deadline")
  [ -z "${DRY_RUN:-}" ] && mkdir -p "$dir/results"
  [ "$gpus" -gt 1 ] && export CUDA_VISIBLE_DEVICES=$index
  export BENCH_THREADS=$threads
  # One NVRTC cache per lane, for every step (the self-test's too).
  export MLX_PTX_CACHE_DIR="$dir/results/mlx-ptx-cache"
  local kind bench precisions mode backends seconds options left need unknown=0
  local waits seen=" " ran=0 skipped=0 planned=0
  while read -r kind bench precisions mode backends seconds options; do
    case "$kind" in '' | '#'*) continue ;; esac
    # "wait laneN": start what follows only once lane N is done (so that a
    # CPU-heavy step does not share the host with the other lane's cells).
    if [ "$kind" = wait ]; then
      echo "== $(stamp) waiting for $bench"
      [ -n "${DRY_RUN:-}" ] && continue
      while [ ! -e "$stage/$bench/done" ] && [ "$(now)" -lt "$deadline" ]; do sleep 5; done
      continue
    fi
    # The streamed archives the step's benchmarks need (a self-test's
    # bench column lists several, comma-separated); a dry run names each
    # at the first step that needs it.
    waits=""
    for need in $(for b in ${bench//,/ }; do needs "$b"; done | sort -u); do
      if [ -n "${DRY_RUN:-}" ]; then
        case "$seen" in *" $need "*) ;; *) waits+=" $need" seen+="$need " ;; esac
        continue
      fi
      while [ ! -e "$stage/ready/$need" ] && [ "$(now)" -lt "$deadline" ]; do sleep 5; done
    done
    seconds=${seconds:-60}
    planned=$((planned + seconds))
    left=$((deadline - $(now)))
    # A step that cannot finish is not started: a cut cell is a failed row.
    if [ "$left" -lt "$seconds" ]; then
      echo "== $(stamp) skipped, too little time left: $kind $bench $precisions $mode $backends $options ($left s left, needs $seconds)"
      skipped=$((skipped + 1))
      continue
    fi
    echo "== $(stamp) $kind $bench $precisions $mode $backends $options ($left s left${waits:+; first waits for the archives$waits})"
    ran=$((ran + 1))
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
        act timeout "$left" bash "$bundle/run.sh" "$dir/results" --bench "$bench" --device gpu \
          --precision ${precisions//,/ } --preset paper --threads "$threads" \
          --run-tag "g$index" "${extra[@]}" ;;
      refs)
        act env REFERENCE_TIMEOUT="$left" timeout "$left" bash "$bundle/references.sh" "$dir/results" \
          "$bench" --precision "$precisions" --preset paper --device gpu ${backends//,/ } ;;
      selftest)
        # bundle/selftest.sh: eager against best mode, losses and tokens.
        # shellcheck disable=SC2086 # one argument per precision
        act env SELFTEST_BENCHES="${bench//,/ }" timeout "$left" bash "$bundle/selftest.sh" \
          "$dir/selftest" ${precisions//,/ } ;;
      *)
        echo "== unknown step kind '$kind' in $steps (twins, refs, selftest, wait)"
        unknown=$((unknown + 1)) ;;
    esac
  done <"$steps"
  echo "== $(stamp) lane $index done: $ran steps run, $skipped skipped; all steps' estimates: $planned s"
  if [ -n "${DRY_RUN:-}" ]; then
    return $((unknown > 0))
  fi
  touch "$dir/done"
}

# The lane's clock: the time, or in a dry run the sum of the estimates so far.
now() {
  if [ -n "${DRY_RUN:-}" ]; then echo "$clock"; else date +%s; fi
}

# How a lane's log dates a line: the UTC time, or in a dry run the
# estimated seconds since the lanes started.
stamp() {
  if [ -n "${DRY_RUN:-}" ]; then printf '+%04d s' "$clock"; else date -u +%T; fi
}

# Runs a step's command; in a dry run prints it instead and moves the
# clock by the step's estimate (the caller's $seconds).
act() {
  if [ -n "${DRY_RUN:-}" ]; then
    printf '   '
    printf '%q ' "$@"
    echo
    clock=$((clock + seconds))
  else
    "$@"
  fi
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
  local gpus cores
  gpus=$(nvidia-smi -L | wc -l)
  cores=$(nproc)
  # Installs once, before the lanes (they would otherwise race on it).
  bash "$stage/bundle/run.sh" "$stage/warm" --list-knobs >/dev/null
  bash "$stage/bundle/references.sh" "$stage/warm" tinyllama
  launch "$stage" "$lanes" "$gpus" "$cores"
  echo "$gpus GPU(s), $cores cores: lanes started, deadline in $budget s"
}

# Starts the lanes of a set of lane files (or with DRY_RUN prints them):
# - lane0.steps alone: one lane on the first GPU with the whole host (one
#   lane per host while launch-bound cells run, issue #25);
# - lane0.steps and lane1.steps on two GPUs or more: one lane per GPU,
#   each with half of the physical cores (a core's hyperthreads in the
#   same lane; the CPUs sorted by core, as the numbering of siblings varies);
# - both lists on one GPU: one lane, the lists step by step in turn.
launch() {
  local stage=$1 lanes=$2 gpus=$3 cores=$4
  [ -e "$lanes/lane0.steps" ] || { echo "no lane0.steps in $lanes" >&2; return 1; }
  if [ ! -e "$lanes/lane1.steps" ]; then
    lane_start "$stage" 0 "$gpus" "$lanes/lane0.steps" "$cores" ""
  elif [ "$gpus" -ge 2 ]; then
    local threads=$((cores / 2)) order index cpus status=0
    [ -z "${DRY_RUN:-}" ] &&
      order=$(lscpu -p=CPU,CORE,SOCKET | grep -v '^#' | sort -t, -k3,3n -k2,2n -k1,1n | cut -d, -f1)
    for index in 0 1; do
      cpus="half $((index + 1)) of the host's, by core"
      [ -z "${DRY_RUN:-}" ] &&
        cpus=$(echo "$order" | sed -n "$((index * threads + 1)),$((index * threads + threads))p" | paste -sd,)
      lane_start "$stage" "$index" "$gpus" "$lanes/lane$index.steps" "$threads" "$cpus" || status=1
    done
    return "$status"
  else
    # Steps only (no comments, blank lines or waits), so that they alternate.
    local steps_of='^[[:space:]]*(#|wait|$)'
    paste -d '\n' <(grep -Ev "$steps_of" "$lanes/lane0.steps") <(grep -Ev "$steps_of" "$lanes/lane1.steps") |
      grep -v '^$' >"$stage/campaign/one.steps"
    lane_start "$stage" 0 1 "$stage/campaign/one.steps" "$cores" ""
  fi
}

# One lane in the background (its log: STAGE/laneN.log), pinned to CPUS
# where given; with DRY_RUN, its plan on stdout.
lane_start() {
  local stage=$1 index=$2 gpus=$3 steps=$4 threads=$5 cpus=$6
  local gpu=0
  [ "$gpus" -gt 1 ] && gpu=$index
  echo "lane $index: GPU $gpu, $threads threads, CPUs ${cpus:-all}, steps ${steps#"$stage/"}"
  if [ -n "${DRY_RUN:-}" ]; then
    (lane "$stage" "$index" "$gpus" "$steps" "$threads")
    return
  fi
  local pin=()
  [ -n "$cpus" ] && pin=(taskset -c "$cpus")
  setsid "${pin[@]}" bash "$stage/gpu-campaign.sh" lane "$stage" "$index" "$gpus" \
    "$steps" "$threads" >"$stage/lane$index.log" 2>&1 </dev/null &
}

# What `start` would run for a set, without a GPU: each lane's steps with
# their commands, on a clock of the steps' estimates, and what a deadline
# of BUDGET_S seconds would skip. SET: a folder of campaign/ (. for the
# lane files at its top) or a path. Exits 1 on an unknown step kind.
plan() {
  local set=${1:?usage: gpu-campaign.sh plan SET [GPUS] [CORES] [BUDGET_S]}
  local gpus=${2:-1} cores=${3:-16} budget=${4:-1500} lanes stage status
  lanes=$here/campaign/$set
  [ -d "$set" ] && [ ! -d "$lanes" ] && lanes=$set
  stage=$(mktemp -d)
  mkdir -p "$stage/campaign"
  echo "$budget" >"$stage/deadline"
  echo "plan of $lanes: $gpus GPU(s), $cores cores, deadline after $budget s (STAGE: the start folder)"
  DRY_RUN=1 launch "$stage" "$lanes" "$gpus" "$cores" | sed "s#$stage#STAGE#g"
  status=${PIPESTATUS[0]}
  rm -rf "$stage"
  return "$status"
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
