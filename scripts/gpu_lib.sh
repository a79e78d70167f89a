# Sourced by scripts/gpu_release.sh and scripts/gpu_ablation.sh, the one-call GPU scripts: their shared settings
# (each overridable from the environment; WORKERS set by the caller), the data unpacked, the trainer's common
# flags, the run length planned from a measured rate, and the end of a run (statistics, export).
DEVICE=${DEVICE:-cuda}
TIMING_STEPS=${TIMING_STEPS:-40}
BATCH=${BATCH:-16}
HELDOUT_WEIGHTS=${HELDOUT_WEIGHTS:-models/terraform_trainable_heldout.pt}  # the held-out line (never saw CALI, ITALY)
MARGIN_S=${MARGIN_S:-120}     # start-up, validation and statistics beyond the planned steps, before the safety timeout
OUT=${OUT:?the device tool sets OUT}
PY=${PYTHON:-python3}
ARCHIVE=${ARCHIVE:-runs/ship/data.tar.gz}
DATA_ROOT=${DATA_ROOT:-/tmp/data}
DATA=$DATA_ROOT/seed-pairs
RUNS=${RUNS:-runs/gpu}
mkdir -p "$RUNS"

[ -d "$DATA" ] || $PY -m training.pack --unpack "$ARCHIVE" --out "$DATA_ROOT"
[ "$DEVICE" = cuda ] && { nvidia-smi -L; PRECISION="--amp bf16"; } || PRECISION="--precision fp32"
init() { [ -f "$1" ] && echo "--init-from $1" || true; }
COMMON="--data $DATA --device $DEVICE $PRECISION --ngf 16 --max-channels 128 --ndf 32 --batch-size $BATCH --workers $WORKERS"
HELDOUT="--val-regions CALI ITALY --val-chips 64 $(init "$HELDOUT_WEIGHTS")"

# plan_steps BUDGET_S SUMMARY...: the steps the slowest of the timed runs makes in BUDGET_S seconds.
plan_steps() {
  $PY - "$@" <<'PLAN'
import json, sys
budget, paths = float(sys.argv[1]), sys.argv[2:]
slowest = max(json.load(open(p))["seconds_per_step"] for p in paths)
print(max(1, int(budget / slowest)))
PLAN
}

# finish_run RUN ONNX NAME VERSION: export RUN's last checkpoint. A run that ended measured its BatchNorm
# statistics and wrote its summary; one the safety timeout stopped did neither, so its statistics are measured
# here (without them the exported model runs on momentum statistics: blotchy tones).
finish_run() {
  [ -f "$1/checkpoints/last.pt" ] || { echo "$1: no checkpoint (stopped before step 500?)"; return 1; }
  if [ ! -f "$1/summary.json" ]; then
    echo "$1: stopped by the timeout; measuring the statistics of its last checkpoint"
    $PY -m training.recalibrate --checkpoint "$1/checkpoints/last.pt" --chips 384
  fi
  $PY -m training.export --checkpoint "$1/checkpoints/last.pt" --output "$2" --name "$3" --version "$4"
}
