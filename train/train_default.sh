#!/usr/bin/env bash
# The default recipe, from scratch, in two `train` calls:
# 1. Stage 1 (D_T + R_T, eq. 3) and Stage 2 (D_S + R_S, eq. 4 with an L1 alignment, R_S started
#    from R_T), progressive patches (64 px, then 128 px, in each stage) and a moving average of
#    the weights. The five tasks of lupi-small.toml throughout; Stage 2's last quarter draws from
#    lupi-small-clean.toml, the same tasks plus clean inputs (18 % of its patches) that must come
#    back unchanged: clean inputs from the start cost the student its dehazing.
# 2. The readout phase, into RUN_DIR/readout: D_S alone, READOUT_STEPS (600) steps through R_S
#    held as call 1 left it, with the readout term (--readout-weight), so that the prior's noise
#    dimensions follow the noise level monotonically, for 0.03 dB of the 5-task average
#    (docs/results/readout-small/).
# docs/design.md says what decided each choice; docs/results/training/HISTORY.md, the runs before.
# Usage: train/train_default.sh DATA_DIR [RUN_DIR [more train flags, which win]]
# The flags given reach both calls, except those that define the readout phase (its recipe,
# patches, steps, learning rate, seed and the frozen R_S); READOUT_STEPS=0 skips it.
# Killed? Run it again with the same arguments: each call resumes exactly from its checkpoints/.
# Then: python -m lupi_core export RUN_DIR/readout --out assets --name lupi-small
set -euo pipefail
data=${1:?usage: $0 DATA_DIR [RUN_DIR [train flags]]}
run=${2:-runs/lupi-default}
readout_steps=${READOUT_STEPS:-600}
shift $(($# < 2 ? $# : 2))
${PY:-python} -m lupi_core train \
  --recipe train/recipes/lupi-small.toml --final-recipe train/recipes/lupi-small-clean.toml --final-share 0.25 \
  --data "$data" --out "$run" \
  --preset small --objective paper --align l1 --student-from-teacher \
  --frequency-weight 1.0 --ema-decay 0.999 \
  --stage1-steps 2000 --stage2-steps 16400 --batch-size 8 --lr 4e-4 --warmup-steps 100 \
  --patch-schedule 64:0.3,128:0.7 --seed 15 \
  --checkpoint-every 50 --snapshot-every 1000 --val-every 1000 --val-images 16 "$@"
[[ $readout_steps == 0 ]] && exit 0
${PY:-python} -m lupi_core train \
  --data "$data" --preset small --objective paper --align l1 --frequency-weight 1.0 --ema-decay 0.999 \
  --batch-size 8 --checkpoint-every 50 --val-images 0 "$@" \
  --out "$run/readout" --init-from "$run" --recipe train/recipes/lupi-small-clean.toml --patch-size 128 \
  --final-share 0 --patch-schedule "" --no-student-from-teacher \
  --stage1-steps 0 --stage2-steps "$readout_steps" --lr 1e-4 --warmup-steps 50 --seed 16 \
  --readout-weight 1.0 --freeze-restorer
