"""`diagnose`: the prior report and the gradient report on a tiny model and a made-up recipe layout."""
from pathlib import Path

import pytest

from helpers import make_tiny_checkpoint, recipe_layout
from lupi_core.diagnose import diagnose, gradient_report

RECIPE = """
patch_size = 32
[[task]]
name = "noise"
kind = "noise"
clean = "clean"
[[task]]
name = "haze"
kind = "haze"
clean = "clean"
[[task]]
name = "clean-inputs"
task = "clean"
input = "clean"
target = "clean"
"""


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("diagnose")
    make_tiny_checkpoint(root / "run")
    recipe = root / "recipe.toml"
    recipe.write_text(RECIPE)
    return root / "run", recipe, recipe_layout(root / "data", recipe, count=2)


def test_the_gradient_report_gives_each_component_a_norm_and_a_symmetric_cosine_matrix(layout):
    lines = gradient_report(*layout, patches=2, frequency_weight=1.0, device="cpu")
    norms = {line.split()[0]: float(line.split()[1]) for line in lines[2:5]}
    assert list(norms) == ["noise", "haze", "clean-inputs"] and all(n > 0 for n in norms.values())
    matrix = [[float(c) for c in line.split()[1:]] for line in lines[6:9]]
    assert [matrix[i][i] for i in range(3)] == [1.0, 1.0, 1.0]
    assert all(matrix[i][j] == pytest.approx(matrix[j][i], abs=0.011) for i in range(3) for j in range(3))
    assert all(-1 <= c <= 1 for row in matrix for c in row)
    squared = gradient_report(*layout, patches=2, frequency_weight=1.0, coarse_scale=0.25, device="cpu")
    assert squared[2:5] != lines[2:5]  # the coarse term changes the gradients it reports


def test_the_prior_report_scores_each_task(layout):
    lines = diagnose(*layout, patches=6, device="cpu")
    assert any(line.strip().startswith("clean (") for line in lines) and "centred cosine" in lines[2]
    for line in [line for line in lines if "patches):" in line]:  # per task: R_S's L1 and its colour offset
        l1, offset = float(line.split("R_S with d_S ")[1].split(",")[0]), float(line.split()[-1])
        assert 0 <= offset <= l1 + 1e-4


def test_the_command_line_runs_both_reports(layout, capsys):
    from lupi_core.__main__ import main

    run, recipe, data = layout
    assert main(["diagnose", str(run), str(recipe), str(data), "--patches", "2", "--gradients", "--device", "cpu"]) == 0
    assert "cosines" in capsys.readouterr().out
    assert main(["diagnose", str(run), str(recipe), str(data), "--patches", "3", "--device", "cpu"]) == 0
    assert "centred cosine" in capsys.readouterr().out
