"""The Table 5 benchmark on the tiny preset: its rows, the student/backbone ratio, the
published rows and the pipeline timings are all reported (no timing assertions)."""

import json

import pytest
import torch

from helpers import command_args
from lupi_core import bench
from lupi_core.config import ModelConfig
from lupi_core.models import build_student
from lupi_core.weights import save_model


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    torch.manual_seed(0)
    weights = save_model(build_student(ModelConfig.preset("tiny")), tmp_path_factory.mktemp("w") / "tiny.safetensors")
    return bench.run_bench(size=64, runs=1, warmup=0, checkpoint=weights)


def test_rows_and_ratio(result):
    assert result["preset"] == "tiny" and result["threads"] == torch.get_num_threads()
    assert set(result["rows"]) == {"backbone", "student", "predictor"}
    for row in result["rows"].values():
        assert set(bench.METRICS) <= set(row)
        assert row["params"] > 0 and row["latency_ms"] > 0 and row["memory_mb"] > 0
        assert row["throughput_fps"] == pytest.approx(1000 / row["latency_ms"])
    rows = result["rows"]
    for metric in bench.METRICS:
        assert result["ratio"][metric] == pytest.approx(rows["student"][metric] / rows["backbone"][metric])
    assert result["ratio"]["params"] > 1  # D_S and the DBs are extra parameters
    assert result["published_ratio"]["latency_ms"] == pytest.approx(52.55 / 50.67)


def test_markdown_and_pipeline(result):
    text = bench.bench_to_markdown(result)
    for name in ("Backbone R (Restormer)", "LUPI student D_S + R_S", "ratio student / backbone",
                 "D_S alone (live slider)", "LUPI (paper)", "52.55 ms", "RTX 4090", "torch thread"):
        assert name in text, name
    pipeline = result["pipeline"]
    assert pipeline["restore_512_s"] > 0 and pipeline["prior_256_ms"] > 0
    assert "restore() of 512x512" in text


def test_cli_without_memory_or_pipeline(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = command_args("bench", "--preset", "tiny", "--size", "32", "--runs", "1", "--warmup", "0", "--no-memory",
                        "--no-pipeline", "--out", out)
    assert bench.run(args) == 0
    assert "n/a" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["rows"]["student"]["memory_mb"] is None and "memory_mb" not in saved["ratio"]
