"""`pack`: the size-capped training-data subset for the GPU machine, the default recipe's one
command (train/train_default.sh) and its GPU call (train/gpu_run.sh, here on the CPU) end to end
at the tiny preset, on generated folders."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import recipe_layout
from lupi_core.data import pair_folders
from lupi_core.pack import pack, subset
from lupi_core.recipes import load_recipe, recipe_tasks

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "train" / "recipes" / "lupi-small-clean.toml"


@pytest.fixture
def layout(tmp_path):
    return recipe_layout(tmp_path / "data", RECIPE, count=10, inputs_per_target=4)


def _size(root: Path, files) -> int:
    return sum((root / f).stat().st_size for f in files)


def test_a_pack_fits_its_budget_keeps_every_task_and_copies_bytes_unchanged(layout, tmp_path):
    budget = _size(layout, subset(RECIPE, layout, 1.0)) // 3
    fraction, files = pack(RECIPE, layout, tmp_path / "packed", budget)
    packed = tmp_path / "packed"
    assert 0.1 < fraction < 0.5
    assert _size(packed, files) <= budget < _size(layout, subset(RECIPE, layout, fraction + 0.05))
    assert all((packed / f).read_bytes() == (layout / f).read_bytes() for f in files)
    _, _, specs = recipe_tasks(RECIPE)
    for spec in specs:
        if not spec.synthetic and spec.input != spec.target:
            pairs = pair_folders(packed / spec.input, packed / spec.target)  # every input finds its target
            scenes = {target for _, target in pairs}
            assert len(pairs) == len(scenes) * 2, spec.name  # ceil(fraction x 4) of each scene's 4 inputs
    assert len(load_recipe(RECIPE, packed).datasets) == len(specs)


def test_a_budget_below_one_image_a_folder_is_refused(layout, tmp_path):
    with pytest.raises(ValueError, match="--max-mib"):
        pack(RECIPE, layout, tmp_path / "packed", 1000)


TINY = ["--preset", "tiny", "--stage1-steps", "2", "--stage2-steps", "2", "--batch-size", "2",
        "--warmup-steps", "1", "--val-images", "0", "--threads", "1", "--no-progress", "--device", "cpu"]


def _script(name: str, *args: str, **env: str) -> None:
    result = subprocess.run(["bash", f"train/{name}", *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={"PY": sys.executable, "PATH": "/usr/bin:/bin", **env})
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_default_recipe_trains_both_stages_and_the_readout_phase_in_one_command(layout, tmp_path):
    run = tmp_path / "run"
    _script("train_default.sh", str(layout), str(run), *TINY, READOUT_STEPS="2")
    config = (run / "train_config.json").read_text()
    for setting in ('"objective": "paper"', '"form": "l1"', '"student_from_teacher": true', '"ema_decay": 0.999',
                    '"patch_schedule": "64:0.3,128:0.7"', '"frequency_weight": 1.0', '"final_share": 0.25'):
        assert setting in config, setting
    data = json.loads((run / "data.json").read_text())
    assert data["recipe"] == "train/recipes/lupi-small.toml" and data["patch_size"] == 128
    assert "clean-bsd400" not in data["task_weights"] and data["task_weights"]["deblur-synthetic"] == 1.0
    assert data["final"]["recipe"] == "train/recipes/lupi-small-clean.toml"
    assert data["final"]["task_weights"]["clean-bsd400"] == 0.5
    assert (run / "teacher.safetensors").is_file() and (run / "student.safetensors").is_file()

    readout = json.loads((run / "readout" / "train_config.json").read_text())
    assert readout["init_from"] == str(run) and readout["freeze_restorer"] and readout["readout_weight"] == 1.0
    assert (readout["stage1_steps"], readout["stage2_steps"], readout["lr"], readout["seed"]) == (0, 2, 1e-4, 16)
    assert (readout["preset"], readout["batch_size"], readout["final_share"]) == ("tiny", 2, 0.0)  # flags given reach it
    assert json.loads((run / "readout" / "data.json").read_text())["recipe"] == "train/recipes/lupi-small-clean.toml"
    before, after = load_file(run / "student.safetensors"), load_file(run / "readout" / "student.safetensors")
    restorer = [name for name in before if name.startswith("restorer.")]
    assert restorer and all(torch.equal(before[name], after[name]) for name in restorer)  # R_S as call 1 left it
    assert any(not torch.equal(before[name], after[name]) for name in before if name.startswith("predictor."))


def test_the_gpu_call_brings_back_half_precision_weights_logs_and_config(layout, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _script("gpu_run.sh", *TINY, "--workers", "0", OUT=str(out), DATA=str(layout), RUN=str(tmp_path / "run"),
            READOUT_STEPS="2")
    assert sorted(p.name for p in out.iterdir()) == [
        "lupi-gpu-student.safetensors", "lupi-gpu-teacher.safetensors", "readout_log.jsonl", "stage1_log.jsonl",
        "stage2_log.jsonl", "train_config.json"]
    assert '"batch_size": 2' in (out / "train_config.json").read_text()  # the flags given win
