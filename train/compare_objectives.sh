#!/usr/bin/env bash
# Compare the objective options at the tiny preset, 3 seeds each (component checks: 1), at one budget:
# every LUPI row trains STEPS steps in Stage 1 and STEPS in Stage 2; the
# no-privileged row (no Stage 1) trains 2 x STEPS. Each run is then probed on the
# bundled photographs (python -m lupi_core probe). Runs resume where they stopped.
# ONLY="name ..." runs those variants alone; SEEDS="0" those seeds alone; THREADS=N passes --threads N.
#   DATA=/work/shared/data STEPS=400 train/compare_objectives.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
STEPS=${STEPS:-400}
OUT=${1:-runs/compare-objectives}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
STEER="--db-film-init random --wrong-prior-weight 1.0 --wrong-prior-margin 0.05 --contrast-weight 1.0"  # = --objective steer
declare -A VARIANTS=(
  [paper]=""
  [random-film]="--db-film-init random"
  [steer-weak]="--db-film-init random --wrong-prior-weight 1.0 --wrong-prior-margin 0.01 --contrast-weight 0.1"
  [steer]="$STEER"
  [steer-l1-from-teacher]="$STEER --align l1 --student-from-teacher"
  [steer2-l1-from-teacher]="$STEER --align l1 --student-from-teacher --no-stage1-prior-terms"  # steer in Stage 2 only
  [steer-l1-severity]="$STEER --align l1 --student-from-teacher --contrast-severity-bins 3"  # contrast by task and severity
  # the wrong prior of a synthetic patch is its own at another severity, so R must read the severity from d
  [severity-steer-l1-from-teacher]="$STEER --align l1 --student-from-teacher --wrong-prior-source severity"
  [severity-bins-steer-l1-from-teacher]="$STEER --align l1 --student-from-teacher --wrong-prior-source severity --contrast-severity-bins 3"
  [severity-l1-from-teacher]="--db-film-init random --wrong-prior-weight 1.0 --wrong-prior-margin 0.05 --wrong-prior-source severity --align l1 --student-from-teacher"
  [steer-l1-ema]="$STEER --align l1 --student-from-teacher --ema-decay 0.99"
  [steer-l1-progressive]="$STEER --align l1 --student-from-teacher --patch-schedule 32:0.5,64:0.5"
  [wrong-prior-only]="--db-film-init random --wrong-prior-weight 1.0 --wrong-prior-margin 0.05"
  [contrast-only]="--db-film-init random --contrast-weight 1.0"
  [residual]="--estimator-input residual"
  [l1-from-teacher]="--align l1 --student-from-teacher"  # the default recipe's objective
  [readout-l1-from-teacher]="--align l1 --student-from-teacher --readout-weight 0.1"  # a linear read must name task and severity
  [readout1-l1-from-teacher]="--align l1 --student-from-teacher --readout-weight 1.0"
  [balance-l1-from-teacher]="--align l1 --student-from-teacher --task-balance 1"  # each task's L1 over its gradient norm
  [coarse-l1-from-teacher]="--align l1 --student-from-teacher --coarse-scale 0.25"  # 16-px block means of the error squared
  [predictor-only-l1-from-teacher]="--align l1 --student-from-teacher --predictor-only"  # Stage 2 trains D_S alone through R_T
  [bottleneck-l1-from-teacher]="--align l1 --student-from-teacher --prior-bottleneck 1e-3"  # d_T pays per nat beyond d_S
  [context-l1-from-teacher]="--align l1 --student-from-teacher --patch-schedule 64:1.0 --prior-context 128"  # D_T, D_S read 128 px around R's 64
  [tone-l1-from-teacher]="--align l1 --student-from-teacher --tone-head"  # TC: the prior sets a whole-image colour transform
  [mse-from-teacher]="--align mse --student-from-teacher"
  [no-privileged]="--mode no-privileged"
)
# Rows run with three seeds; the others (component checks) with seed 0 only.
SEEDED="paper random-film steer-weak steer steer-l1-from-teacher steer2-l1-from-teacher steer-l1-severity severity-steer-l1-from-teacher severity-bins-steer-l1-from-teacher severity-l1-from-teacher steer-l1-ema steer-l1-progressive residual no-privileged l1-from-teacher readout-l1-from-teacher readout1-l1-from-teacher balance-l1-from-teacher coarse-l1-from-teacher bottleneck-l1-from-teacher predictor-only-l1-from-teacher context-l1-from-teacher tone-l1-from-teacher"
ONCE="wrong-prior-only contrast-only mse-from-teacher"
runs=()
for seed in ${SEEDS:-0 1 2}; do
  for name in $SEEDED; do runs+=("$name:$seed"); done
done
for name in $ONCE; do runs+=("$name:0"); done
if [[ -n ${ONLY:-} ]]; then
  kept=()
  for entry in "${runs[@]}"; do [[ " $ONLY " == *" ${entry%:*} "* ]] && kept+=("$entry"); done
  runs=("${kept[@]}")
fi
for entry in "${runs[@]}"; do
    name=${entry%:*} seed=${entry#*:}
    run="$OUT/$name-seed$seed"
    steps=(--stage1-steps "$STEPS" --stage2-steps "$STEPS")
    [[ $name == no-privileged ]] && steps=(--stage1-steps 0 --stage2-steps $((2 * STEPS)))
    # shellcheck disable=SC2086
    $PY -m lupi_core train --recipe train/recipes/lupi-small.toml --data "$DATA" --out "$run" --preset tiny \
      "${steps[@]}" --batch-size 8 --val-images 0 --no-progress --seed "$seed" ${THREADS:+--threads $THREADS} \
      ${VARIANTS[$name]} > "$run.log" 2>&1
    teacher=()
    [[ -f $run/teacher.safetensors ]] && teacher=(--teacher "$run/teacher.safetensors")
    [[ -f $run/probe.json ]] || $PY -m lupi_core probe --checkpoint "$run/student.safetensors" "${teacher[@]}" \
      --out "$run/probe.json" > "$run/probe.txt" 2>/dev/null
done
$PY - "$OUT" <<'PYEOF'
import json, sys, pathlib, statistics as st
rows = {}
for f in sorted(pathlib.Path(sys.argv[1]).glob("*-seed*/probe.json")):
    r = json.loads(f.read_text()); name = f.parent.name.rsplit("-seed", 1)[0]
    rows.setdefault(name, []).append((st.mean(r["steer"]["own_psnr"].values()), r["steer"]["steer_db"]["average"],
                                      r["kinds"]["loo_1nn_accuracy"], r["severity"]["noise"]["swing"],
                                      r["alignment"]["centred_cosine"] if r["alignment"] else float("nan")))
print("| variant | seeds | own-prior PSNR (dB) | steer (dB) | kinds 1-NN | noise swing | cosine(d_S, d_T) |\n"
      "|---|---|---|---|---|---|---|")
for name, values in rows.items():
    cells = [f"{st.mean(c):.3f} ± {st.pstdev(c):.3f}" for c in zip(*values)]
    print(f"| {name} | {len(values)} | " + " | ".join(cells) + " |")
PYEOF
