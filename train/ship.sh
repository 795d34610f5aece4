#!/usr/bin/env bash
# Ship a finished run as the default model: its half-precision weights into assets/, the
# atlas and the README's screenshots rebuilt from them, and every number the model card
# quotes rerun into docs/results/ (evaluate 3task and 5task, bench, probe, clean photos).
# Usage: train/ship.sh RUN_DIR DATA_DIR, with nothing else running (bench times the CPU);
# about an hour and a half on 2 cores. Then update MODEL_CARD.md from docs/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?usage: $0 RUN_DIR DATA_DIR}
data=${2:?usage: $0 RUN_DIR DATA_DIR}
PY=${PY:-.venv/bin/python}
results=docs/results
$PY -m lupi_core export "$run" --out assets --name lupi-small | tee "$results/export.log"
$PY -m lupi_core atlas --checkpoint assets/lupi-small-student.safetensors --out assets/atlas --no-progress
for benchmark in 3task 5task; do
  $PY -m lupi_core evaluate --data "$data" --benchmark $benchmark --out "$results/eval-$benchmark.json" \
    --csv "$results/eval-$benchmark.csv" --no-progress > "$results/eval-$benchmark.log"
done
$PY -m lupi_core probe --out "$results/probe-shipped.json" --no-progress > "$results/probe-shipped.txt"
clean=(test/denoise/CBSD68 test/dehaze/SOTS-indoor/target test/lowlight/LOL-eval15/target test/derain/Rain100L/target)
{ echo "Command: \`python -m tools.clean_photos ${clean[*]/#/DATA/}\`"; echo
  PYTHONPATH=. $PY -m tools.clean_photos "${clean[@]/#/$data/}"; } > "$results/clean-photos.md"
$PY -m lupi_core bench --preset small --threads 2 --runs 5 --warmup 2 --out "$results/bench-small.json" \
  > "$results/bench-small.txt"
LUPI_SCREENSHOTS_SHIPPED=1 $PY -m pytest -q tests/test_browser.py
