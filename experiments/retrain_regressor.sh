#!/bin/bash
# Retrain one round's regressor of a finished workflow run with changed flags, and score it on
# the test split (docs/regressor_study.md, "Learning configuration: flips and a camera-frame
# joint term"). It trains with the options of the round's own model
# (RESULTS/round_ROUND/regressor/model.pt stores them), so it repeats what the workflow ran;
# EPOCHS and the extra flags override them.
#
# usage: experiments/retrain_regressor.sh RESULTS OUT ROUND INIT EPOCHS [dlearn regress flags...]
#   RESULTS  a workflow results folder (results, results_learning)
#   OUT      a new folder for the model, predictions and evaluation (must not exist)
#   ROUND    whose registrations are the targets (results/round_ROUND/registration.zarr)
#   INIT     a model.pt to warm-start from, or none
#   EPOCHS   epochs
# e.g. experiments/retrain_regressor.sh results_learning /tmp/cj10 2 \
#          results_learning/round_1/regressor/model.pt 52 --weights-camera-joints 10
# Prints the test split's ConvNet PA-MPJPE, bone-scaled MPJPE and mean rotation error, and the
# training seconds. Run it alone on the machine (it trains on 2 threads).
set -euo pipefail
[ $# -ge 5 ] || { sed -n 8,15p "$0"; exit 2; }
R=$1 OUT=$2 ROUND=$3 INIT=$4 EPOCHS=$5
shift 5
[ ! -e "$OUT" ] || { echo "$OUT exists: give a new folder" >&2; exit 2; }
mkdir -p "$OUT"
init=()
[ "$INIT" = none ] || init=(--init-model "$INIT")
# Round ROUND's train predictions exist only once the workflow finished that round; the train
# metrics are not read here, so any round's do.
train_predictions=$(ls -d "$R"/round_*/predictions_train.zarr | head -1)
# The round's model's options as flags (its options dict, loaded without unpickling objects),
# one NUL-terminated word each: nothing of the file is run by the shell.
mapfile -d '' stored < <(python -c '
import shlex, sys
from dlearn.checkpoint import REGRESSOR_FORMAT, load_tagged
from dlearn.options import cli_flags
for word in shlex.split(cli_flags(load_tagged(sys.argv[1], REGRESSOR_FORMAT, "model")["options"])):
    sys.stdout.write(word + "\0")
' "$R/round_$ROUND/regressor/model.pt")
[ ${#stored[@]} -gt 0 ] || { echo "no options read from $R/round_$ROUND/regressor/model.pt" >&2; exit 2; }
start=$(date +%s)
# The stored options come first: the paths after them win over any flag the file might name.
OMP_NUM_THREADS=2 dlearn regress "${stored[@]}" --crops "$R/data/crops_train.zarr" \
    --correspondences "$R/correspondences_train.zarr" --registration "$R/round_$ROUND/registration.zarr" \
    --body-model "$R/body/model.pkl" --out "$OUT/model.pt" --curve "$OUT/curve.png" \
    --checkpoint-dir "$OUT/.checkpoints" --depths "$R/cgan/depths_train.zarr" "${init[@]}" \
    --epochs "$EPOCHS" "$@" > "$OUT/regress.log" 2>&1
seconds=$(($(date +%s) - start))
OMP_NUM_THREADS=2 dlearn predict --model "$OUT/model.pt" --crops "$R/data/crops_test.zarr" \
    --body-model "$R/body/model.pkl" --out "$OUT/predictions_test.zarr" > "$OUT/predict.log" 2>&1
dlearn evaluate --round "$ROUND" --body-model "$R/body/model.pkl" \
    --registration "$R/round_$ROUND/registration.zarr" --crops-train "$R/data/crops_train.zarr" \
    --crops-test "$R/data/crops_test.zarr" --gt-train "$R/data/gt_train.zarr" \
    --gt-test "$R/data/gt_test.zarr" --predictions-train "$train_predictions" \
    --predictions-test "$OUT/predictions_test.zarr" --cgan-depths "$R/cgan/depths_test.zarr" \
    --out-json "$OUT/evaluation.json" --out-csv "$OUT/evaluation.csv" > "$OUT/evaluate.log" 2>&1
echo "$OUT: trained in $seconds s; test ConvNet:" \
    $(grep -E "test,convnet,(pa_mpjpe|mpjpe_bone_scaled|rotation_error_deg)," "$OUT/evaluation.csv" | cut -d, -f4,5)
