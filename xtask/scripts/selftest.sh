#!/usr/bin/env bash
# The GPU capture self-test (issue #25), run from a bundle (`cargo xtask
# bundle` copies it in as bundle/selftest.sh). The parity tests compare
# eager and best mode on the CPU, where nothing is captured; here each twin
# runs both modes on the GPU for a few steps: bert and lm-train list every
# step's loss (`--set record_losses=true`), TinyLlama its greedy tokens,
# Whisper the first window's greedy tokens (PyTorch's best mode: the
# static decoder's CUDA graph).
# `xtask selftest-check` then asserts, per framework and precision, equal
# losses (within a relative tolerance per precision: 1e-3 f32, 2e-3 tf32,
# 5e-3 bf16, the reasons in xtask/crates/analysis/src/selftest.rs), equal
# tokens, and best rows that say `cuda-graph` (the capture ran).
#
# usage: selftest.sh OUT_DIR [PRECISION...]        (default: f32 bf16)
# Writes OUT_DIR/rows/ (the rows), OUT_DIR/selftest.txt (the verdict) and
# OUT_DIR/selftest.json (the verdict with every loss and token); exits 0
# when every comparison passes. Commit the last two beside the campaign.
# env: SELFTEST_BENCHES  (default: bert lm-train tinyllama whisper)
#      SELFTEST_DEVICE   (gpu), SELFTEST_PRESET (paper)
#      SELFTEST_EXPECT   (cuda-graph: what best rows' execution= must say; empty: no check)
#      SELFTEST_RUN, SELFTEST_XTASK (this bundle's run.sh and bin/xtask;
#                        other ones to try the script elsewhere, e.g. on a CPU)
#      SELFTEST_SET      (more options for run.sh, e.g. "--set tinyllama.gen_tokens=8")
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: selftest.sh OUT_DIR [PRECISION...]}
shift
precisions=("$@")
[ ${#precisions[@]} -gt 0 ] || precisions=(f32 bf16)
read -r -a benches <<<"${SELFTEST_BENCHES:-bert lm-train tinyllama whisper}"
run=${SELFTEST_RUN:-$here/run.sh}
xtask=${SELFTEST_XTASK:-$here/bin/xtask}
expect=${SELFTEST_EXPECT-cuda-graph}
mkdir -p "$out/rows"
# Two warm-up steps, then four timed: PyTorch runs its first step eagerly,
# captures the second and replays every later one, so the losses and
# tokens compared include replays. The time budget is large so that both
# modes run every step (a mode cut short would have fewer losses).
# bert: the step case only (time-to-accuracy takes minutes and records no
# losses). lm-train: the full learning rate from the first step (no
# warm-up), so that a step that skipped its update or replayed a stale
# batch moves the loss by far more than the tolerance; batch 8 of the
# paper's 32, as MLX's eager float32 step at 32 ran out of an H100's 80 GB
# (2026-12-07; the capture, not the size, is under test). A scoped key
# (bert.x) reaches only its benchmark, and may name only one that runs.
sets=()
for bench in "${benches[@]}"; do
  case "$bench" in
    bert) sets+=(--set bert.record_losses=true --set bert.time_to_accuracy=false) ;;
    lm-train) sets+=(--set lm-train.record_losses=true --set lm-train.warmup_steps=0 --set lm-train.batch_size=8) ;;
  esac
done
# shellcheck disable=SC2086 # SELFTEST_SET: words, one option each
bash "$run" "$out/rows" --bench "${benches[@]}" --device "${SELFTEST_DEVICE:-gpu}" \
  --preset "${SELFTEST_PRESET:-paper}" --precision "${precisions[@]}" --execution eager best \
  --warmup 2 --repetitions 4 --time-budget 1000 --run-tag selftest "${sets[@]}" \
  ${SELFTEST_SET:-}
echo "== the runs ended with $?; the verdict:"
"$xtask" selftest-check "$out/rows" ${expect:+--expect-execution "$expect"} \
  --json "$out/selftest.json" | tee "$out/selftest.txt"
exit "${PIPESTATUS[0]}"
