#!/usr/bin/env bash
# The default recipe, trained once from scratch: both LUPI stages in one `train` call on the
# lupi-small-clean mixture (the five tasks plus clean inputs), with the steer objective, L1
# alignment, R_S started from R_T, and progressive patches; no moving average of the weights,
# which gained nothing at the tiny preset (docs/design.md says what decided each choice).
# Its first full run scored 21.23 dB on the 5-task table, below the shipped model, and is not
# shipped (docs/results/unshipped-from-scratch/); --no-stage1-prior-terms is the variant run next.
# Usage: train/train_default.sh DATA_DIR [RUN_DIR [more train flags, which win]]
# Killed? Run it again with the same arguments: it resumes exactly from RUN_DIR/checkpoints/.
# Then: python -m lupi_core export RUN_DIR --out assets --name lupi-small
set -euo pipefail
data=${1:?usage: $0 DATA_DIR [RUN_DIR [train flags]]}
run=${2:-runs/lupi-default}
shift $(($# < 2 ? $# : 2))
${PY:-python} -m lupi_core train \
  --recipe train/recipes/lupi-small-clean.toml --data "$data" --out "$run" \
  --preset small --objective steer --align l1 --student-from-teacher \
  --stage1-steps 2000 --stage2-steps 2000 --batch-size 8 --lr 4e-4 --warmup-steps 100 \
  --patch-schedule 64:0.5,128:0.5 \
  --checkpoint-every 50 --val-every 400 --val-images 16 "$@"
