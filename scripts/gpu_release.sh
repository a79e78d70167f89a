#!/usr/bin/env bash
# The release model in ONE device call: a GPU session gets 15 minutes of device time in all (machine start
# included) and 10 minutes per command, so everything that needs the GPU is this one prepared command.
#
# Two contract-2 generators (the shipped build: 5-level U-Net, ngf 16, widths capped at 128, conditioned on
# latitude, look and colour guide), trained side by side on the one GPU with the same settings, each warm-started
# from its own line of shipped trainable weights (generator and discriminator) so the GPU's images add to every
# earlier session's: `heldout` without CALI and ITALY, from models/terraform_trainable_heldout.pt (weights that
# never saw them: its numbers are the ones against the quality bar), and `all7` on every region, from
# models/terraform_trainable.pt (the one to ship). Each run's length is planned from the rate measured
# at the start, so the learning-rate decay ends inside the budget; each ends with its BatchNorm statistics
# measured (training.recalibrate) and is exported; the ONNX files come back in <= 16 MiB parts, and each run's
# summary, loss curve and new trainable weights in one small tar (at most 8 files come back from a call).
#
# Here, once:  .venv/bin/python -m training.pack --data ../shared/data/seed-pairs --out runs/ship/data.tar.gz
# Device:      run(command="scripts/gpu_release.sh", carry=["runs/ship"], timeout_s=600)
# Here, after: .venv/bin/python -m training.pack --join <files_at>/all7.onnx.parts.json --out runs/gpu/all7.onnx
#              (the same for heldout), tar -xf <files_at>/all7.extras.tar (all7.trainable.pt: commit it as
#              models/terraform_trainable.pt when the model ships; heldout.trainable.pt as
#              models/terraform_trainable_heldout.pt), then training.evaluate as in docs/release_model.md.
# A CPU smoke test of the script itself (a small archive of a few chips per region, made with training.pack):
#   DEVICE=cpu TIMING_STEPS=2 WORKERS=0 BATCH=2 ARCHIVE=small.tar DATA_ROOT=/tmp/smoke RUNS=/tmp/smoke/runs OUT=/tmp/smoke/out \
#   PYTHON=.venv/bin/python scripts/gpu_release.sh 10
set -euo pipefail
export PYTHONUNBUFFERED=1
BUDGET_S=${1:-330}            # seconds of training per run; the rest of the 600 s: unpack, timing, recalibrate, export
WORKERS=${WORKERS:-6}         # data-loader processes per run (16 cores, two runs)
VERSION=${VERSION:-0.5.0}
WEIGHTS=${WEIGHTS:-models/terraform_trainable.pt}  # where all7 starts from (absent: from scratch)
source "$(dirname "$0")/gpu_lib.sh"  # settings, data, COMMON and HELDOUT flags, plan_steps, finish_run
heldout=$HELDOUT
all7="$(init "$WEIGHTS")"

# 1. The rate of both runs together (they share the GPU and the cores): a short timed run of each at once.
$PY -m training.train $COMMON $heldout --out $RUNS/rate-heldout --max-steps "$TIMING_STEPS" --no-recalibrate --val-chips 1 > $RUNS.rate1.log 2>&1 &
first=$!
$PY -m training.train $COMMON $all7 --out $RUNS/rate-all7 --max-steps "$TIMING_STEPS" --no-recalibrate > $RUNS.rate2.log 2>&1 &
wait $first && wait $! || { tail -c 1500 $RUNS.rate1.log $RUNS.rate2.log; exit 1; }
STEPS=$(plan_steps "$BUDGET_S" $RUNS/rate-heldout/summary.json $RUNS/rate-all7/summary.json)
echo "rate: $STEPS steps of batch $BATCH fit ${BUDGET_S} s per run"

# 2. Both runs side by side, planned to that length; a safety timeout keeps the command inside its limit.
for run in heldout all7; do
  extra=$([ $run = heldout ] && echo "$heldout" || echo "$all7")
  timeout $((BUDGET_S + MARGIN_S)) $PY -m training.train $COMMON $extra --out $RUNS/$run --max-steps "$STEPS" \
      --val-every 100000 --checkpoint-every 500 > $RUNS.$run.log 2>&1 &
done
wait || true
tail -c 600 $RUNS.heldout.log; tail -c 600 $RUNS.all7.log

# 3. Export and bring back <= 8 files: per run the ONNX (one part + its index) and one tar of its summary, loss
#    curve and trainable weights; what a run the timeout stopped lacks is said, not fatal.
for run in heldout all7; do
  finish_run $RUNS/$run $RUNS/$run.onnx terraform-pix2pix-contract2 "$VERSION"
  $PY -m training.pack --split $RUNS/$run.onnx --out "$OUT"
  $PY -m training.trainable --checkpoint $RUNS/$run/checkpoints/last.pt --output $RUNS/$run.trainable.pt \
      --version "$VERSION"
  extras=$run.trainable.pt
  cp $RUNS/$run/summary.json $RUNS/$run.summary.json 2>/dev/null && extras="$extras $run.summary.json" \
    || echo "$run: no summary (stopped by the timeout)"
  cp $RUNS/$run/loss_curve.png $RUNS/$run.loss_curve.png 2>/dev/null && extras="$extras $run.loss_curve.png" \
    || echo "$run: no loss curve yet"
  tar -cf "$OUT/$run.extras.tar" -C $RUNS $extras
done
ls -l "$OUT"
