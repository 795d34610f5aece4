"""The command line, run as a user runs it: `python -m lupi_core ...` in subprocesses.

Starting Python with torch takes a few seconds, so the module fixture prepares every
scenario's files and runs all the commands at once; each test then checks one of them.
"""
import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from safetensors import safe_open

from lupi_core.__main__ import parse_task_weight
from lupi_core.config import ModelConfig
from lupi_core.models import build_backbone, build_student, build_teacher, count_parameters
from lupi_core.weights import load_model, model_info, save_model

ROOT = Path(__file__).resolve().parent.parent
TINY = ModelConfig.preset("tiny")
RESTORE_SIZES = {"a": (37, 53), "b": (64, 48), "c": (5, 3)}  # name: (height, width)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    y, x = seed * 37 % 300, seed * 53 % 300
    return skimage.data.astronaut()[y:y + height, x:x + width]


def _run_all(commands: dict[str, list], timeout: float = 240) -> dict[str, Result]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    processes = {name: subprocess.Popen([sys.executable, "-m", "lupi_core", *map(str, args)], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name, args in commands.items()}
    deadline, results = time.monotonic() + timeout, {}
    try:
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results[name] = Result(process.returncode, stdout, stderr)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    checkpoint = save_model(build_student(TINY), base / "tiny-student.safetensors")

    # restore: one file and one folder (with a text file that is not an image, so not listed).
    files = base / "files"
    folder = files / "in"
    folder.mkdir(parents=True)
    for i, (name, (h, w)) in enumerate(RESTORE_SIZES.items()):
        Image.fromarray(_photo(h, w, i)).save(folder / f"{name}.png")
    (folder / "notes.txt").write_text("not an image, and not listed as one")
    Image.fromarray(_photo(21, 30, 5)).save(files / "single.jpg", quality=95)

    # restore with a truncated checkpoint.
    corrupt = base / "corrupt"
    corrupt.mkdir()
    bad_weights = corrupt / "broken-weights.safetensors"
    bad_weights.write_bytes(checkpoint.read_bytes()[:1000])
    Image.fromarray(_photo(16, 16)).save(corrupt / "x.png")

    # restore a folder with a damaged image, plus a text file named explicitly.
    mixed = base / "mixed"
    (mixed / "in").mkdir(parents=True)
    Image.fromarray(_photo(24, 40, 3)).save(mixed / "in" / "good.png")
    (mixed / "in" / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))  # looks like a PNG, is not
    (mixed / "readme.txt").write_text("hello")

    # export: a run folder with a student and a teacher, shipped into another folder.
    run = base / "run"
    save_model(build_student(TINY), run / "student.safetensors", info={"steps": 3})
    save_model(build_teacher(TINY), run / "teacher.safetensors")

    results = _run_all({
        "export": ["export", run, "--out", base / "shipped", "--name", "mine"],
        "info": ["info", "--preset", "tiny", "--size", "64"],
        "restore": ["restore", files / "single.jpg", folder, "--out", files / "out", "--checkpoint", checkpoint],
        "corrupt": ["restore", corrupt / "x.png", "--out", corrupt / "out", "--checkpoint", bad_weights],
        "mixed": ["restore", mixed / "in", mixed / "readme.txt", "--out", mixed / "out", "--checkpoint", checkpoint],
        "strength0": ["restore", folder, "--out", files / "out0", "--strength", "0", "--checkpoint", checkpoint],
        "strength_bad": ["restore", folder, "--out", files / "out-bad", "--strength", "2", "--checkpoint", checkpoint],
    })
    return base, results


def test_info_prints_the_four_parameter_counts(cli):
    result = cli[1]["info"]
    assert result.returncode == 0, result.stderr
    student, teacher = build_student(TINY), build_teacher(TINY)
    expected = {
        "backbone R (Restormer)": count_parameters(build_backbone(TINY)),
        "estimator D_T": count_parameters(teacher.estimator),
        "predictor D_S": count_parameters(student.predictor),
        "student D_S + R_S (deployed)": count_parameters(student),
    }
    rows = {}
    for line in result.stdout.splitlines():
        for name in expected:
            if line.startswith(name):
                params, gmac = line[len(name):].split()
                rows[name] = (int(params.replace(",", "")), float(gmac))
    assert rows.keys() == expected.keys(), result.stdout
    for name, count in expected.items():
        assert rows[name][0] == count, name
    assert rows["student D_S + R_S (deployed)"][0] == (rows["backbone R (Restormer)"][0] + rows["predictor D_S"][0]
                                                       + count_parameters(student.restorer.dbs))
    assert rows["student D_S + R_S (deployed)"][1] > rows["backbone R (Restormer)"][1] > 0  # D_S and DBs cost
    assert "1x3x64x64" in result.stdout


def test_restore_a_file_and_a_folder(cli):
    base, results = cli
    result, out = results["restore"], base / "files" / "out"
    assert result.returncode == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png", "single.png"]
    for name, (h, w) in {**RESTORE_SIZES, "single": (21, 30)}.items():
        with Image.open(out / f"{name}.png") as image:
            assert image.format == "PNG" and image.mode == "RGB" and image.size == (w, h)
    assert "wrote 4 image(s)" in result.stdout


def test_restore_with_a_corrupt_checkpoint_names_the_file(cli):
    base, results = cli
    result = results["corrupt"]
    assert result.returncode != 0
    assert "broken-weights.safetensors" in result.stderr
    assert "Traceback" not in result.stderr  # a message, not a crash
    assert not (base / "corrupt" / "out" / "x.png").exists()


def test_restore_skips_non_images_and_restores_the_rest(cli):
    base, results = cli
    result, out = results["mixed"], base / "mixed" / "out"
    assert result.returncode == 1, result.output  # some inputs failed, but the run finished
    assert "Traceback" not in result.output
    skipped = [line for line in result.output.splitlines() if "skipped" in line]
    assert len(skipped) == 2, result.output
    assert any("damaged.png" in line for line in skipped) and any("readme.txt" in line for line in skipped)
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]
    with Image.open(out / "good.png") as image:
        assert image.size == (40, 24)
    assert "wrote 1 image(s)" in result.output


def test_export_ships_both_files_in_half_precision_with_their_info(cli):
    base, results = cli
    assert results["export"].returncode == 0, results["export"].stderr
    student = load_model(base / "shipped" / "mine-student.safetensors", kind="student")
    load_model(base / "shipped" / "mine-teacher.safetensors", kind="teacher")
    assert model_info(base / "shipped" / "mine-student.safetensors") == {"steps": 3}
    with safe_open(str(base / "shipped" / "mine-student.safetensors"), framework="pt") as handle:
        assert handle.get_tensor(handle.keys()[0]).dtype == torch.float16
    assert student.has_predictor
    assert "largest output change" in results["export"].stdout


def test_task_weight_flag_reads_name_and_a_weight_of_at_least_0():
    assert parse_task_weight("deblur-synthetic=1.6") == ("deblur-synthetic", 1.6)
    assert parse_task_weight("clean-lol=0") == ("clean-lol", 0.0)
    for bad in ("deblur", "=2", "deblur=-1", "deblur=heavy", "deblur=nan"):
        with pytest.raises(argparse.ArgumentTypeError, match="NAME=W"):
            parse_task_weight(bad)


def test_restore_at_strength_0_writes_the_inputs_exactly(cli):
    base, results = cli
    assert results["strength0"].returncode == 0, results["strength0"].stderr
    for name in RESTORE_SIZES:
        written = np.asarray(Image.open(base / "files" / "out0" / f"{name}.png"))
        np.testing.assert_array_equal(written, np.asarray(Image.open(base / "files" / "in" / f"{name}.png")))
    bad = results["strength_bad"]
    assert bad.returncode == 2 and "strength from 0" in bad.stderr


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _defaults(parser: argparse.ArgumentParser) -> dict[str, object]:
    return {a.dest: a.default for a in parser._actions if a.option_strings}


def test_every_command_shares_the_run_time_flags_with_the_same_defaults():
    from lupi_core.__main__ import MODULE_COMMANDS, build_parser

    commands = _subcommands(build_parser())
    assert set(commands) == {"restore", "info", "train", "export", *MODULE_COMMANDS}
    assert {"diagnose", "probe", "examples"} <= set(commands)
    for name, sub in commands.items():
        defaults = _defaults(sub)
        assert {k: defaults.get(k, "missing") for k in ("threads", "device", "progress")} == \
            {"threads": None, "device": "auto", "progress": True}, name
    loads_student = {name for name, sub in commands.items() if "checkpoint" in _defaults(sub)}
    assert loads_student == {"restore", "evaluate", "bench", "atlas", "probe"}
    assert all(_defaults(commands[name])["checkpoint"] is None for name in loads_student)


def test_train_takes_device_and_progress_from_the_shared_flags():
    from lupi_core.__main__ import build_parser

    args = build_parser().parse_args(["train", "--out", "x", "--no-progress", "--device", "cpu"])
    assert (args.progress, args.device, args.threads) == (False, "cpu", None)


def test_a_device_that_is_not_there_is_a_clear_error(capsys):
    from lupi_core.__main__ import main

    assert main(["info", "--preset", "tiny", "--device", "cuda:7" if not torch.cuda.is_available() else "tpu"]) == 2
    error = capsys.readouterr().err
    assert "--device" in error and ("no CUDA device" in error or "give auto, cpu" in error)


def test_train_refuses_crops_smaller_than_the_prior_context(tmp_path):
    from lupi_core.__main__ import build_parser, run_train

    args = build_parser().parse_args(["train", "--out", str(tmp_path), "--clean-folder", str(tmp_path),
                                      "--patch-schedule", "32:1.0", "--prior-context", "64", "--patch-size", "48"])
    with pytest.raises(SystemExit, match="--prior-context 64"):
        run_train(args)


def test_train_asks_for_the_final_share_when_given_a_final_mixture(tmp_path):
    from lupi_core.__main__ import build_parser, run_train

    args = build_parser().parse_args(["train", "--out", str(tmp_path), "--clean-folder", str(tmp_path),
                                      "--final-task-weight", "clean-bsd400=1.0"])
    with pytest.raises(SystemExit, match="--final-share"):
        run_train(args)
