"""The evaluation harness on a tiny folder laid out like the benchmark data's test/ tree:
a randomly initialised `tiny` student is scored beside the input and classical rows, with
the published rows, a per-image CSV, JSON and the markdown table."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from helpers import command_args
from lupi_core import evaluate
from lupi_core.config import ModelConfig
from lupi_core.degrade import degrade
from lupi_core.models import build_student
from lupi_core.weights import save_model

PHOTOS = ("astronaut", "coffee", "chelsea")


def _save(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def make_benchmark_tree(root: Path) -> Path:
    """DIR/test/... with two or three 64x80 images per set (degraded with lupi_core.degrade)."""
    test = root / "test"
    photos = [getattr(skimage.data, name)()[200:264, 100:180] for name in PHOTOS]
    for k, clean in enumerate(photos):
        _save(clean, test / "denoise/CBSD68" / f"{k}.png")
        for kind, folder in (("rain", "derain/Rain100L"), ("lowlight", "lowlight/LOL-eval15")):
            _save(degrade(clean, kind, level=0.5, seed=k), test / folder / "input" / f"{k}.png")
            _save(clean, test / folder / "target" / f"{k}.png")
    for scene, clean in zip((1425, 1426), photos):
        _save(clean, test / "dehaze/SOTS-indoor/target" / f"{scene}.png")
        for level in (1, 10):
            hazy = degrade(clean, "haze", level=level / 10, seed=level)
            _save(hazy, test / "dehaze/SOTS-indoor/input" / f"{scene}_{level}.png")
    _save(degrade(photos[0], "blur", level=0.3, seed=0), test / "deblur/real-pairs/input/shake.png")
    _save(photos[0], test / "deblur/real-pairs/target/shake.png")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_benchmark_tree(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_model(build_student(ModelConfig.preset("tiny")), tmp_path_factory.mktemp("w") / "tiny.safetensors")


def _run(*argv: str) -> int:
    return evaluate.run(command_args("evaluate", *argv))


def test_evaluate_5task_writes_table_csv_json_and_real_pairs(tree, checkpoint, tmp_path, capsys):
    out = tmp_path / "results" / "r.json"
    assert _run("--checkpoint", str(checkpoint), "--data", str(tree), "--benchmark", "5task", "--out", str(out),
                "--csv", str(tmp_path / "per_image.csv"), "--no-progress") == 0
    printed = capsys.readouterr().out
    for text in ("Input (degraded)", "Classical (per task)", "Ours, LUPI student (tiny)", "not measured here",
                 "MoCE-IR", "LUPI (paper)", "SOTS-outdoor", "GoPro", "non-blind", "Rain100L"):
        assert text in printed, text
    results = json.loads(out.read_text())
    assert [c["key"] for c in results["columns"]] == ["dehaze", "derain", "noise25", "deblur", "lowlight"]
    assert [c["images"] for c in results["columns"]] == [4, 3, 3, 3, 3]
    assert [r["key"] for r in results["rows"]] == ["input", "classical", "classical_blind", "model"]
    by_key = {r["key"]: r["scores"] for r in results["rows"]}
    for column in ("dehaze", "derain", "noise25", "lowlight"):  # blind already: the same method
        assert by_key["classical_blind"][column] == by_key["classical"][column]
    assert by_key["classical_blind"]["deblur"] != by_key["classical"]["deblur"]
    assert "Blind row: as the classical row, except" in printed and "unsharp mask" in printed
    for row in results["rows"]:
        assert row["average"]["psnr"] == pytest.approx(np.mean([s["psnr"] for s in row["scores"].values()]))
    assert results["published"][-1]["average"] == {"psnr": 30.97, "ssim": 0.922}
    rows = list(csv.DictReader((tmp_path / "per_image.csv").open()))
    assert len(rows) == 16 * 4 and set(rows[0]) == {"task", "image", "method", "psnr", "ssim"}
    assert out.with_suffix(".md").read_text() == evaluate.results_to_markdown(results)
    assert (out.parent / "real-pairs" / "shake_restored.png").is_file()


def test_evaluate_3task_library_with_limit(tree, checkpoint):
    from lupi_core.pipeline import load_pretrained

    results = evaluate.evaluate_benchmark(load_pretrained(checkpoint), tree, "3task", limit=1, progress=False)
    assert [c["key"] for c in results["columns"]] == ["dehaze", "derain", "noise15", "noise25", "noise50"]
    assert all(c["images"] == 1 for c in results["columns"])
    scores = {r["key"]: r["scores"] for r in results["rows"]}
    assert list(scores) == ["input", "classical", "model"]  # every 3-task classical method is blind already
    # The input gets noisier with sigma; the classical denoiser beats the noisy input.
    assert scores["input"]["noise15"]["psnr"] > scores["input"]["noise25"]["psnr"] > scores["input"]["noise50"]["psnr"]
    assert scores["classical"]["noise50"]["psnr"] > scores["input"]["noise50"]["psnr"]
    markdown = evaluate.results_to_markdown(results)
    assert "Table 1" in markdown and "32.98 / 0.921" in markdown and "first 1 image(s)" in markdown


def test_synthetic_inputs_are_fixed(tree):
    column = evaluate.COLUMNS["deblur"]
    (_, target), = evaluate.column_files(tree, column, limit=1)
    first, second = evaluate.load_sample(column, 0, None, target), evaluate.load_sample(column, 0, None, target)
    assert np.array_equal(first.degraded, second.degraded) and "kernel" in first.side
    noise25 = evaluate.COLUMNS["noise25"]
    first_noise, second_noise = (evaluate.load_sample(noise25, i, None, target).degraded for i in (0, 1))
    assert not np.array_equal(first_noise, second_noise)  # each image index has its own seed


def test_missing_folder_is_reported(tmp_path, checkpoint, capsys):
    assert _run("--checkpoint", str(checkpoint), "--data", str(tmp_path), "--no-progress") == 2
    assert "SOTS-indoor" in capsys.readouterr().err


def test_a_subset_of_columns_is_scored_and_averaged_alone(tree, checkpoint, tmp_path, capsys):
    out = tmp_path / "deblur.json"
    assert _run("--checkpoint", str(checkpoint), "--data", str(tree), "--benchmark", "5task", "--columns",
                "deblur,noise25", "--no-references", "--out", str(out), "--no-progress") == 0
    results = json.loads(out.read_text())
    assert [c["key"] for c in results["columns"]] == ["noise25", "deblur"]  # the benchmark's order
    (row,) = results["rows"]
    assert row["key"] == "model" and set(row["scores"]) == {"noise25", "deblur"}
    assert row["average"]["psnr"] == pytest.approx(np.mean([s["psnr"] for s in row["scores"].values()]))
    paper = results["published"][-1]
    assert paper["scores"]["deblur"]["psnr"] == 29.46 and paper["average"]["psnr"] == pytest.approx((31.55 + 29.46) / 2)
    assert {r["task"] for r in results["per_image"]} == {"noise25", "deblur"}


def test_an_unknown_column_is_named_with_the_choices(tree, checkpoint, capsys):
    assert _run("--checkpoint", str(checkpoint), "--data", str(tree), "--benchmark", "3task", "--columns", "deblur",
                "--no-progress") == 2
    assert "3task has no column deblur; its columns are dehaze, derain" in capsys.readouterr().err


def test_the_teacher_row_scores_r_t_given_d_t(tree, checkpoint, tmp_path, capsys):
    from lupi_core.models import build_teacher
    from lupi_core.pipeline import load_pretrained

    torch.manual_seed(1)
    teacher = save_model(build_teacher(ModelConfig.preset("tiny")), tmp_path / "teacher.safetensors")
    out = tmp_path / "t.json"
    assert _run("--checkpoint", str(checkpoint), "--teacher", str(teacher), "--data", str(tree), "--benchmark",
                "5task", "--columns", "dehaze", "--limit", "1", "--no-references", "--out", str(out),
                "--no-progress") == 0
    assert "LUPI teacher R_T(I_d, d_T)" in capsys.readouterr().out
    results = json.loads(out.read_text())
    assert [r["key"] for r in results["rows"]] == ["model", "teacher"]
    student, teacher_row = (r["scores"]["dehaze"]["psnr"] for r in results["rows"])
    assert student != teacher_row  # another restorer, another prior

    pipeline = load_pretrained(checkpoint, teacher=teacher)
    (hazy, target), = evaluate.column_files(tree, evaluate.COLUMNS["dehaze"], limit=1)
    sample = evaluate.load_sample(evaluate.COLUMNS["dehaze"], 0, hazy, target)
    d_t = pipeline.privileged_prior(sample.degraded, sample.clean)
    by_hand = pipeline.teacher.restorer(pipeline._input(sample.degraded), torch.from_numpy(d_t)[None])
    restored = pipeline.restore_float(sample.degraded, prior=d_t, with_teacher=True)
    assert np.abs(restored - by_hand[0].permute(1, 2, 0).clamp(0, 1).detach().numpy()).max() < 2 / 255
    with pytest.raises(ValueError, match="--teacher FILE"):
        evaluate.evaluate_benchmark(load_pretrained(checkpoint), tree, "5task", limit=1, progress=False,
                                    references=False, only=["dehaze"], teacher=True)
