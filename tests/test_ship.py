"""train/ship.sh resumes: a rerun skips the steps its run's weights already went through, a
failed step is retried, and new weights redo every step. The commands are a stub that records
its arguments, so nothing is trained, evaluated or written outside tmp_path."""
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = ["export", "atlas", "evaluate --data DATA --benchmark 3task", "evaluate --data DATA --benchmark 5task",
         "probe", "tools.clean_photos", "tools.steer_examples", "bench", "pytest"]


def _ship(tmp_path: Path, fail: str = "") -> tuple[int, list[str]]:
    calls = tmp_path / "calls.txt"
    calls.unlink(missing_ok=True)
    stub = tmp_path / "python"
    stub.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\n[[ -z "{fail}" || "$*" != *"{fail}"* ]]\n')
    stub.chmod(0o755)
    env = {**os.environ, "PY": str(stub), "RESULTS": str(tmp_path / "results")}
    done = subprocess.run(["bash", str(ROOT / "train" / "ship.sh"), str(tmp_path / "run"), "DATA"], env=env,
                          capture_output=True, text=True)
    lines = calls.read_text().splitlines() if calls.is_file() else []
    return done.returncode, lines


def _ran(lines: list[str]) -> list[str]:
    return [next(s for s in STEPS if all(word in line for word in s.split())) for line in lines]


def test_ship_resumes_step_by_step_and_redoes_all_for_new_weights(tmp_path):
    (tmp_path / "results").mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "student.safetensors").write_bytes(b"student")
    (run / "teacher.safetensors").write_bytes(b"teacher")
    code, lines = _ship(tmp_path, fail="probe")
    assert code != 0 and _ran(lines) == STEPS[:5]  # stops at the failed step
    code, lines = _ship(tmp_path)
    assert code == 0 and _ran(lines) == STEPS[4:]  # the finished steps are skipped, the failed one retried
    assert _ship(tmp_path) == (0, [])
    (run / "student.safetensors").write_bytes(b"retrained")
    code, lines = _ship(tmp_path)
    assert code == 0 and _ran(lines) == STEPS
