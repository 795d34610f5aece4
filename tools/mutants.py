"""Do the tests catch these bugs? Apply each mutation to a copy-restored source file, run
the tests that should catch it, and report which were killed (a test failed) and which
survived. `python -m tools.mutants`; exits 1 if any mutant survives.

The mutations are the ones code review found slipping past the tests once (issue #18):
the KL's direction, the mean over tiles in D_S's pooling, SSIM's window and uint8 scaling.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (file, original text, mutated text, tests that must fail)
MUTANTS = (
    ("lupi_core/losses.py", "F.kl_div(log_p_student, log_p_teacher", "F.kl_div(log_p_teacher, log_p_student",
     "tests/test_losses.py"),
    ("lupi_core/pipeline.py", "predictor.head(pooled / area)", "predictor.head(pooled)", "tests/test_pipeline.py"),
    ("lupi_core/metrics.py", "channel_axis=-1, win_size=7))", "channel_axis=-1, win_size=11))",
     "tests/test_metrics.py"),
    ("lupi_core/metrics.py", "return image.astype(np.float64) / 255.0", "return image.astype(np.float64)",
     "tests/test_metrics.py"),
)


def killed(file: str, original: str, mutated: str, tests: str) -> bool:
    path = ROOT / file
    source = path.read_text()
    if original not in source:
        raise SystemExit(f"{file}: {original!r} not found; update tools/mutants.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        path.write_text(source.replace(original, mutated, 1))
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", tests],
                              cwd=ROOT, env=env, capture_output=True, text=True)
    finally:
        path.write_text(source)
    return done.returncode != 0


def main() -> int:
    survivors = 0
    for file, original, mutated, tests in MUTANTS:
        caught = killed(file, original, mutated, tests)
        survivors += not caught
        print(f"{'killed  ' if caught else 'SURVIVED'} {file}: {original!r} -> {mutated!r}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
