#!/usr/bin/env bash
# One device call's worth of the GPU campaign, run on the GPU machine from a
# bundle (`cargo xtask bundle --mlx-cuda-sm 90`): twins and Python
# references interleaved in the one call (the shared host's speed drifts
# between calls), all within a time budget, results packed as they come.
#
# usage: gpu-session.sh BUNDLE OUT STEP...
#   STEP  twins:BENCH:PRECISION[:eager]        both twins, paper preset
#         refs:BENCH:PRECISION:BACKEND[,BACKEND...]   references.sh backends
# env:   BUDGET (seconds for all steps, default 560), PRESET (default paper)
set -u
bundle=$(cd "${1:?usage: gpu-session.sh BUNDLE OUT STEP...}" && pwd)
out=${2:?usage: gpu-session.sh BUNDLE OUT STEP...}
shift 2
results="$out/results"
mkdir -p "$results"
export PATH="/opt/torch/.venv/bin:$PATH" PYTHONUNBUFFERED=1
preset=${PRESET:-paper}
deadline=$((SECONDS + ${BUDGET:-560}))
pack() { tar -C "$out" -czf "$out/results.tgz" results 2>/dev/null; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
for step in "$@"; do
  IFS=: read -r kind bench precision extra <<<"$step"
  left=$((deadline - SECONDS))
  if [ "$left" -lt 30 ]; then echo "== skipped, no time left: $step"; continue; fi
  echo "== $step ($left s left)"
  case "$kind" in
    twins)
      timeout "$left" bash "$bundle/run.sh" "$results" --bench "$bench" --device gpu \
        --precision "$precision" --preset "$preset" ${extra:+--execution $extra} ;;
    refs)
      REFERENCE_TIMEOUT=$left timeout "$left" bash "$bundle/references.sh" "$results" "$bench" \
        --precision "$precision" --preset "$preset" --device gpu ${extra//,/ } ;;
    *) echo "unknown step kind: $kind" ;;
  esac
  pack
done
echo "== done, $SECONDS s"
