"""The Table 3 / Table 4 ablation on the tiny preset, a few steps per stage, one seed and
one image per benchmark column: both tables are written with their rows (Table 3 with
the steer objective's rows and probe columns), the siamese LUPI run is shared, the step
budget is as documented, and a rerun reuses the runs."""

import pytest
import skimage.data
from PIL import Image
from test_evaluate import make_benchmark_tree

from helpers import command_args
from lupi_core import ablate


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablate")
    data = make_benchmark_tree(root / "data")
    clean = root / "clean"
    clean.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(skimage.data, name)()[:96, :128]).save(clean / f"{name}.png")
    argv = ["--data", str(data), "--clean-folder", str(clean), "--patch-size", "32", "--out", str(root / "runs"),
            "--preset", "tiny", "--steps", "3", "--batch-size", "2", "--lr", "1e-3", "--warmup-steps", "1",
            "--seeds", "0", "--limit", "1", "--threads", "1", "--no-progress"]
    assert ablate.run(command_args("ablate", *argv)) == 0
    return root / "runs", argv


def test_tables_written_with_their_rows(ablation):
    out, _ = ablation
    table3, table4 = (out / "table3.md").read_text(), (out / "table4.md").read_text()
    body = lambda text: [label for label in text.splitlines() if label.startswith("| ") and "PSNR" not in label]  # noqa: E731
    assert len(body(table3)) == 5 and len(body(table4)) == 3
    assert "| ✓ | ✓ | paper |" in table3 and "32.98 / 0.921" in table3 and "| ✓ | ✓ | steer |" in table3
    # The backbone has no prior to probe; every other row has a steer and a kinds number.
    cells = [[cell.strip() for cell in row.split("|")[1:-1]] for row in body(table3)]
    steer_column = table3.splitlines()[2].split("|")[1:-1].index(" steer (dB) ↑ ")
    assert [row[steer_column] == "—" for row in cells] == [True, False, False, False, False]
    assert [row[-1] == "—" for row in cells] == [False, False, True, False, True]  # no published steer rows
    assert "Input Addition" in table4 and "Input Concat" in table4 and "Siamese (Ours)" in table4
    for text in ("preset: `tiny`", "seeds: 0", "first 1 image(s)", "3task", "equal-total"):
        assert text in table3, text
    # The siamese LUPI run is shared by both tables: seven runs, not eight.
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(
        f"{v}-seed0" for v in ("lupi-siamese", "lupi-steer", "no-privileged", "no-privileged-steer", "no-predictor",
                               "lupi-concat", "lupi-add"))


def test_steer_rows_train_under_the_steer_objective(ablation):
    import json

    out, _ = ablation
    steer = json.loads((out / "lupi-steer-seed0" / "train_config.json").read_text())
    paper = json.loads((out / "lupi-siamese-seed0" / "train_config.json").read_text())
    assert (steer["objective"], steer["wrong_prior_weight"], steer["db_film_init"]) == ("steer", 1.0, "random")
    assert (steer["align"]["form"], steer["student_from_teacher"]) == ("l1", True)
    assert (paper["objective"], paper["wrong_prior_weight"], paper["db_film_init"]) == ("paper", 0.0, "zero")
    assert (paper["align"]["form"], paper["student_from_teacher"]) == ("kl", False)


def test_budget_gives_single_stage_rows_twice_the_steps(ablation):
    import json

    out, _ = ablation
    lupi = json.loads((out / "lupi-siamese-seed0" / "train_config.json").read_text())
    single = json.loads((out / "no-privileged-seed0" / "train_config.json").read_text())
    assert (lupi["stage1_steps"], lupi["stage2_steps"], single["stage2_steps"]) == (3, 3, 6)


def test_rerun_reuses_finished_runs(ablation, capsys):
    out, argv = ablation
    student = out / "no-predictor-seed0" / "student.safetensors"
    before = student.stat().st_mtime_ns
    capsys.readouterr()
    assert ablate.run(command_args("ablate", *argv)) == 0
    assert student.stat().st_mtime_ns == before
    assert "Table 3" in capsys.readouterr().out


def test_changed_settings_refuse_to_mix_runs(ablation):
    out, argv = ablation
    changed = [*argv[:argv.index("--steps") + 1], "4", *argv[argv.index("--steps") + 2:], "--tables", "3"]
    with pytest.raises(ValueError, match="other settings"):
        ablate.run(command_args("ablate", *changed))


def test_a_run_saved_before_a_setting_existed_still_resumes(ablation):
    import json

    out, argv = ablation
    saved = out / "no-predictor-seed0" / "train_config.json"
    config = json.loads(saved.read_text())
    del config["frequency_weight"]  # as written before the setting was added, at its default
    saved.write_text(json.dumps(config))
    assert ablate.run(command_args("ablate", *argv)) == 0
