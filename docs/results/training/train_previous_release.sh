#!/usr/bin/env bash
# Retrain the previous release of lupi-small (assets/ before session 28) exactly as it was
# trained: the lupi-small recipe on the benchmark data, both LUPI stages, on CPU.
# Usage, from the repository root: docs/results/training/train_previous_release.sh DATA_DIR [RUN_DIR]
# One Stage-1 run and ten Stage-2 sittings, each from the one before (docs/results/training/HISTORY.md).
# Killed? Run it again: each run resumes from its checkpoints/ folder.
set -euo pipefail
data=${1:?usage: $0 DATA_DIR [RUN_DIR]}
run=${2:-runs/lupi-small}

# One later sitting: Stage 2 again from an earlier run's student, with a fresh
# warm-up and schedule (D_T and R_T are carried over unchanged).
# Arguments: OUT INIT STEPS, then the flags that differ between sittings.
sitting() {
  local out=$1 init=$2 steps=$3
  shift 3
  python -m lupi_core train \
    --recipe train/recipes/lupi-small.toml --data "$data" --out "$out" \
    --preset small --init-from "$init" --stage1-steps 0 --stage2-steps "$steps" --batch-size 8 \
    --warmup-steps 50 --checkpoint-every 50 --val-images 16 "$@"
}

python -m lupi_core train \
  --recipe train/recipes/lupi-small.toml --data "$data" --out "$run" \
  --preset small --stage1-steps 1500 --stage2-steps 1200 --batch-size 8 \
  --lr 4e-4 --warmup-steps 100 --student-from-teacher \
  --checkpoint-every 50 --val-every 250 --val-images 16 --threads 1
# A second sitting at half the peak learning rate.
sitting "$run-ft" "$run" 2400 --lr 2e-4 --val-every 300 --threads 1
# A third, on 128-px patches (the blur kernels reach 32 px, half of a 64-px patch)
# at a lower peak learning rate, on two threads.
sitting "$run-ft2" "$run-ft" 2000 --patch-size 128 --lr 1.5e-4 --val-every 400 --threads 2
# A fourth, sampling blur (the weakest task) and noise more, with a fresh seed so
# the patches are new draws.
sitting "$run-ft3" "$run-ft2" 2000 --patch-size 128 \
  --task-weight deblur-synthetic=1.6 --task-weight denoise-bsd400=1.2 --seed 3 \
  --lr 1.5e-4 --val-every 400 --threads 2
# A fifth, sampling blur still more and rain more (the fourth had lost ground on
# rain), at a lower peak learning rate.
sitting "$run-ft4" "$run-ft3" 2000 --patch-size 128 \
  --task-weight deblur-synthetic=2.0 --task-weight denoise-bsd400=1.4 --task-weight derain-synthetic=0.9 --seed 4 \
  --lr 1.2e-4 --val-every 400 --threads 2
# A sixth, from the fifth (another, runs/lupi-small-ft5, was tried and not
# shipped; see MODEL_CARD.md), with the spectrum L1 added to the L1.
sitting "$run-ft6" "$run-ft4" 900 --patch-size 128 \
  --task-weight deblur-synthetic=2.0 --task-weight denoise-bsd400=1.4 --task-weight derain-synthetic=0.9 \
  --frequency-weight 1.0 --seed 6 --lr 1.2e-4 --val-every 400 --threads 2
# A seventh, the spectrum L1 kept, sampling noise more and blur less.
sitting "$run-ft7" "$run-ft6" 700 --patch-size 128 \
  --task-weight denoise-bsd400=2.0 --task-weight deblur-synthetic=1.5 \
  --frequency-weight 1.0 --seed 7 --lr 1e-4 --val-every 350 --threads 2
# An eighth, sampling synthetic rain more again (the seventh had lost ground on rain).
sitting "$run-ft8" "$run-ft7" 800 --patch-size 128 \
  --task-weight denoise-bsd400=2.0 --task-weight deblur-synthetic=1.5 --task-weight derain-synthetic=1.0 \
  --frequency-weight 1.0 --seed 8 --lr 1e-4 --val-every 400 --threads 2
# A ninth, sampling blur twice as much.
sitting "$run-ft9" "$run-ft8" 900 --patch-size 128 \
  --task-weight denoise-bsd400=2.0 --task-weight deblur-synthetic=3.0 --task-weight derain-synthetic=1.0 \
  --frequency-weight 1.0 --seed 9 --lr 1e-4 --val-every 450 --threads 2
# A tenth, from the ninth's half-precision export (the previous release's assets/): clean
# inputs that must come back unchanged (recipe lupi-small-clean), SOTS scenes sampled more,
# 4000 steps averaged by an EMA of the weights (the saved weights are the average).
python -m lupi_core export "$run-ft9" --out "$run-ft9-export" --name lupi-small
sitting "$run-ft10" "$run-ft9-export" 4000 --recipe train/recipes/lupi-small-clean.toml --patch-size 128 \
  --task-weight denoise-bsd400=2.0 --task-weight deblur-synthetic=3.0 --task-weight derain-synthetic=1.0 \
  --task-weight dehaze-sots-indoor=1.0 --frequency-weight 1.0 --ema-decay 0.999 --seed 14 --lr 1e-4 \
  --val-every 500 --threads 2
# Ship: half-precision copies of the two weights files into assets/.
python -m lupi_core export "$run-ft10" --out assets --name lupi-small
