#!/usr/bin/env bash
# Scale training across GPUs (or machines) with torchrun: DistributedDataParallel,
# nccl on GPUs, bf16 autocast. --batch-size is per process, so 4 GPUs x 8 = 32.
# Usage: train/torchrun_multi_gpu.sh DATA_DIR [GPUS]
# Several machines: add --nnodes N --node_rank R --rdzv_backend c10d
# --rdzv_endpoint HOST:PORT to the torchrun line on each machine.
set -euo pipefail
data=${1:?usage: $0 DATA_DIR [GPUS]}
gpus=${2:-4}
torchrun --standalone --nproc_per_node "$gpus" -m lupi_core train \
  --recipe train/recipes/lupi-small.toml --data "$data" --out runs/lupi-paper \
  --preset paper --patch-size 128 --batch-size 8 --device cuda --workers 4 \
  --stage1-steps 150000 --stage2-steps 150000 --lr 2e-4 --warmup-steps 1000
