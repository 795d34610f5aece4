#!/usr/bin/env bash
# The default recipe (train/train_default.sh) on a lent GPU, in one `device` call of under
# 9 minutes: 4x the batch at 1.5x the learning rate, the steps below. The product never
# depends on it; the same recipe trains on a CPU.
#   1. here, once:  python -m lupi_core pack train/recipes/lupi-small-clean.toml DATA runs/gpu-data
#      (a 30 MiB subset of the training folders: the call carries 64 MiB with the repository)
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
SECONDS=0
bash train/train_default.sh "$data" "$run" --device cuda --workers 12 --batch-size 32 --lr 6e-4 \
  --stage1-steps "${STAGE1_STEPS:-2000}" --stage2-steps "${STAGE2_STEPS:-3000}" \
  --checkpoint-every 500 --val-every 1000 --log-every 50 --no-progress "$@"
echo "trained in ${SECONDS} s"
$PY -m lupi_core export "$run" --out "$OUT" --name lupi-gpu
cp "$run/train_config.json" "$run/stage1_log.jsonl" "$run/stage2_log.jsonl" "$OUT"/
