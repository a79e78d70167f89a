#!/usr/bin/env bash
# Issue 19's texture levers in ONE device call (a GPU session gets 15 minutes of device time in all, 10 minutes
# per command): arms side by side on the one GPU, each the recipe plus a lever (training.levers), all
# warm-started from the held-out line (models/terraform_trainable_heldout.pt, which never saw CALI and ITALY:
# the arms are scored there), the same steps and images each - planned from the rate of all arms running
# together, so the slowest arm ends inside the budget; each arm's summary says what its steps cost. BatchNorm
# statistics measured at the end, exported. Each arm comes back as one tar, $OUT/<arm>.tar (its ONNX, summary,
# losses, loss curve): at most 8 arms, as a device call brings back at most 8 files.
#
# Here, once:  .venv/bin/python -m training.pack --data ../shared/data/seed-pairs --out runs/ship/data.tar.gz
# Device:      run(command="scripts/gpu_ablation.sh", carry=["runs/ship"], timeout_s=600)
# Here, after: for t in <files_at>/*.tar; do tar -xf $t -C runs/ablation; done; then for each arm
#              .venv/bin/python -m training.evaluate --model runs/ablation/<arm>.onnx --data ../shared/data/seed-pairs \
#                  --regions CALI ITALY --out runs/ablation/eval-<arm>
#              and the table into docs/training.md (sharpness, spectrum per octave, L1, colour, periodic share).
# ARMS: "name flags;name flags;..." (default below: the recipe and one lever each, and DiffAugment with the L1
# weight at 30, the pair that bought visible texture on the CPU; --antialias only lowered the periodic share,
# a pattern of a tenth of a grey level, docs/training.md). A CPU smoke test:
#   DEVICE=cpu TIMING_STEPS=2 WORKERS=0 BATCH=1 ARMS="recipe;hinge --gan-loss hinge" ARCHIVE=small.tar \
#   DATA_ROOT=/tmp/smoke RUNS=/tmp/smoke/runs OUT=/tmp/smoke/out PYTHON=.venv/bin/python scripts/gpu_ablation.sh 3
set -euo pipefail
export PYTHONUNBUFFERED=1
BUDGET_S=${1:-360}            # seconds of training per arm; the rest of the 600 s: unpack, timing, statistics, export
ARMS=${ARMS:-"recipe;hinge --gan-loss hinge;lsgan --gan-loss lsgan;fm --feature-matching 10;spectrum --spectrum-loss 1;diffaug --diff-augment;ttur --lr-d 4e-4;diffaug-l30 --diff-augment --lambda-l1 30"}
WORKERS=${WORKERS:-2}         # data-loader processes per arm (16 cores, up to 8 arms)
VERSION=${VERSION:-0.5.0-ablation}
RUNS=${RUNS:-runs/ablation}
source "$(dirname "$0")/gpu_lib.sh"  # settings, data, COMMON and HELDOUT flags, plan_steps, finish_run
IFS=';' read -ra arms <<< "$ARMS"
(( ${#arms[@]} <= 8 )) || { echo "at most 8 arms: a device call brings back at most 8 files"; exit 1; }
arm_name() { echo "${1%% *}"; }
arm_flags() { [[ "$1" == *" "* ]] && echo "${1#* }" || true; }

# 1. The rate of all arms together (they share the GPU and the cores): a short timed run of each at once.
pids=()
for arm in "${arms[@]}"; do
  n=$(arm_name "$arm")
  $PY -m training.train $COMMON $HELDOUT $(arm_flags "$arm") --out $RUNS/rate-$n --max-steps "$TIMING_STEPS" \
      --no-recalibrate --val-chips 1 > $RUNS.rate-$n.log 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait $pid || { tail -c 1500 $RUNS.rate-*.log; exit 1; }; done
summaries=()
for arm in "${arms[@]}"; do summaries+=("$RUNS/rate-$(arm_name "$arm")/summary.json"); done
STEPS=$(plan_steps "$BUDGET_S" "${summaries[@]}")
echo "rate: $STEPS steps of batch $BATCH fit ${BUDGET_S} s per arm (${#arms[@]} arms)"

# 2. Every arm side by side, planned to that length; a safety timeout keeps the command inside its limit.
for arm in "${arms[@]}"; do
  n=$(arm_name "$arm")
  timeout $((BUDGET_S + MARGIN_S)) $PY -m training.train $COMMON $HELDOUT $(arm_flags "$arm") --out $RUNS/$n \
      --max-steps "$STEPS" --val-every 100000 --checkpoint-every 500 > $RUNS.$n.log 2>&1 &
done
wait || true

# 3. Each arm exported, and one tar of it back.
for arm in "${arms[@]}"; do
  n=$(arm_name "$arm")
  tail -c 300 $RUNS.$n.log; echo
  finish_run $RUNS/$n $RUNS/$n.onnx "terraform-ablation-$n" "$VERSION" || continue
  files=$n.onnx
  for what in summary.json losses.csv loss_curve.png val.csv; do
    cp $RUNS/$n/$what $RUNS/$n.$what 2>/dev/null && files="$files $n.$what" || echo "$n: no $what"
  done
  tar -cf "$OUT/$n.tar" -C $RUNS $files
done
ls -l "$OUT"
