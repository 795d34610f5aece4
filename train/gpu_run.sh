#!/usr/bin/env bash
# The default recipe (train/train_default.sh) on a lent GPU, in one `device` call of under
# 9 minutes: 4x the batch at 1.5x the learning rate. The steps are sized to TRAIN_SECONDS
# (default 380, the readout phase included) from 30 timed Stage-1 steps, unless STAGE1_STEPS and
# STAGE2_STEPS are given.
# The product never depends on it; the same recipe trains on a CPU.
#   1. here, once:  python -m lupi_core pack train/recipes/lupi-small-clean.toml DATA runs/gpu-data
#      (a 30 MiB subset of the training folders, both of the recipe's mixtures: the call carries
#      64 MiB with the repository)
#   2. the call:    run(command="bash train/gpu_run.sh", carry=["runs/gpu-data"], timeout_s=570)
#   3. here:        python -m lupi_core evaluate --benchmark 5task --checkpoint FILES/lupi-gpu-student.safetensors
#                   python -m lupi_core probe --checkpoint FILES/lupi-gpu-student.safetensors \
#                     --teacher FILES/lupi-gpu-teacher.safetensors
# The half-precision weights, the logs and the config come back under $OUT. Flags given to
# this script win over its own (a CPU check of the plumbing: --device cpu --preset tiny ...);
# DATA and RUN move the data and the run folder.
set -euo pipefail
: "${OUT:?run this on the device machine, where OUT names the folder that comes back}"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no nvidia-smi"
data=${DATA:-runs/gpu-data}
run=${RUN:-runs/gpu}
export READOUT_STEPS=${READOUT_STEPS:-600}  # train_default.sh's default, read here for the time budget
gpu=(--device cuda --workers 12 --batch-size 32 --lr 6e-4)
SECONDS=0
if [[ -z ${STAGE1_STEPS:-} || -z ${STAGE2_STEPS:-} ]]; then
  READOUT_STEPS=0 bash train/train_default.sh "$data" "$run-timing" "${gpu[@]}" --stage1-steps 30 --stage2-steps 0 \
    --patch-schedule 128:1 --val-images 0 --log-every 10 --no-progress "$@"
  # seconds a 128-px Stage-1 step (warm-up included); a Stage-2 step costs about 0.9 of them, a
  # 64-px step (each stage's first 30 %) under a third of one, and Stage 2 gets 8.2x Stage 1's steps
  # (train_default.sh: 2000 + 16,400); the readout phase's steps (D_S alone) cost about 0.7 of one
  # (1.1 against 1.67 s on the CPU) and come out of the budget first
  step=$($PY -c 'import json, sys; r = json.loads(open(sys.argv[1]).readlines()[-1]); print(r["seconds"] / r["step"])' \
    "$run-timing/stage1_log.jsonl")
  read -r STAGE1_STEPS STAGE2_STEPS < <($PY -c "ratio = 16400 / 2000
budget = ${TRAIN_SECONDS:-380} - $READOUT_STEPS * 0.7 * $step
stage1 = max(1, int(budget / ($step * 0.8 * (1 + ratio * 0.9))))
print(stage1, int(stage1 * ratio))")
  echo "timed ${step} s a step: ${STAGE1_STEPS} + ${STAGE2_STEPS} steps"
fi
bash train/train_default.sh "$data" "$run" "${gpu[@]}" --stage1-steps "$STAGE1_STEPS" --stage2-steps "$STAGE2_STEPS" \
  --checkpoint-every 500 --val-every 1000 --log-every 50 --no-progress "$@"
echo "trained in ${SECONDS} s"
final=$run/readout
[[ $READOUT_STEPS == 0 ]] && final=$run
$PY -m lupi_core export "$final" --out "$OUT" --name lupi-gpu
cp "$run/train_config.json" "$run/stage1_log.jsonl" "$run/stage2_log.jsonl" "$OUT"/
[[ $final == "$run" ]] || cp "$final/stage2_log.jsonl" "$OUT/readout_log.jsonl"
