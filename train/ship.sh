#!/usr/bin/env bash
# Ship a finished run as the default model: its half-precision weights into assets/, the
# atlas and the README's screenshots rebuilt from them, and every number the model card
# quotes rerun into docs/results/ (evaluate 3task and 5task, bench, probe, clean photos,
# steering on the app's examples).
# Usage: train/ship.sh RUN_DIR DATA_DIR, with nothing else running (bench times the CPU);
# about an hour and a half on 2 cores. Then update MODEL_CARD.md from docs/results/.
# Resumable: each finished step leaves a marker in RUN_DIR/ship-state/ holding the checksum of
# the run's weights; a rerun skips the steps whose marker matches, and new weights redo them all.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?usage: $0 RUN_DIR DATA_DIR}
data=${2:?usage: $0 RUN_DIR DATA_DIR}
PY=${PY:-.venv/bin/python}
results=${RESULTS:-docs/results}
state="$run/ship-state"
weights=$(cat "$run/student.safetensors" "$run/teacher.safetensors" | sha256sum | cut -d' ' -f1)
mkdir -p "$state"

export_weights() {
  $PY -m lupi_core export "$run" --out assets --name lupi-small | tee "$results/export.log"
}
atlas() {
  $PY -m lupi_core atlas --checkpoint assets/lupi-small-student.safetensors --out assets/atlas --no-progress
}
evaluate() {  # evaluate BENCHMARK
  $PY -m lupi_core evaluate --data "$data" --benchmark "$1" --out "$results/eval-$1.json" \
    --csv "$results/eval-$1.csv" --no-progress > "$results/eval-$1.log"
}
probe() {
  $PY -m lupi_core probe --out "$results/probe-shipped.json" --no-progress > "$results/probe-shipped.txt"
}
clean_photos() {
  local clean=(test/denoise/CBSD68 test/dehaze/SOTS-indoor/target test/lowlight/LOL-eval15/target test/derain/Rain100L/target)
  { echo "Command: \`python -m tools.clean_photos ${clean[*]/#/DATA/}\`"; echo
    PYTHONPATH=. $PY -m tools.clean_photos "${clean[@]/#/$data/}"; } > "$results/clean-photos.md"
}
steer_examples() {
  { echo "Shipped model and atlas. Command: \`python -m tools.steer_examples\`"; echo
    PYTHONPATH=. $PY -m tools.steer_examples; } > "$results/steer-examples.md"
}
bench() {
  $PY -m lupi_core bench --preset small --threads 2 --runs 5 --warmup 2 --out "$results/bench-small.json" \
    > "$results/bench-small.txt"
}
screenshots() {
  LUPI_SCREENSHOTS_SHIPPED=1 $PY -m pytest -q tests/test_browser.py
}

step() {  # step NAME COMMAND...: run COMMAND unless this run's weights already went through NAME
  local name=$1; shift
  if [[ -f $state/$name && $(cat "$state/$name") == "$weights" ]]; then
    echo "ship: $name done for these weights, skipped"
    return
  fi
  echo "ship: $name"
  "$@"
  echo "$weights" > "$state/$name"
}

step export export_weights
step atlas atlas
step evaluate-3task evaluate 3task
step evaluate-5task evaluate 5task
step probe probe
step clean-photos clean_photos
step steer-examples steer_examples
step bench bench
step screenshots screenshots
