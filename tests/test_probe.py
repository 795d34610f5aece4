"""The prior probe: its four blocks, and numbers that follow what the model does with its prior."""
import numpy as np
import pytest
import torch

from helpers import shared_model_and_atlas
from lupi_core import probe as probe_module
from lupi_core.images import bundled_images
from lupi_core.pipeline import load_pretrained

IMAGES = ("astronaut", "coffee")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    student, teacher, _ = shared_model_and_atlas(tmp_path_factory)
    return load_pretrained(student, teacher=teacher)


@pytest.fixture(scope="module")
def images():
    return bundled_images(IMAGES, size=32)


def test_probe_reports_the_four_blocks(pipeline, images):
    result = probe_module.probe(pipeline, images)
    assert set(result["steer"]["steer_db"]) == {"noise", "rain", "haze", "blur", "lowlight", "average"}
    assert set(result["steer"]["oracle_db"]) == set(result["steer"]["steer_db"])
    for row in result["severity"].values():
        assert len(row["dims"]) == 6 and all(0 <= r <= 1 for r in row["abs_rho"]) and row["swing"] > 0
    assert result["kinds"]["samples"] == len(images) * 5 * 3
    assert 0 <= result["kinds"]["loo_1nn_accuracy"] <= 1 and -1 <= result["kinds"]["silhouette"] <= 1
    assert -1 <= result["alignment"]["centred_cosine"] <= 1 and result["alignment"]["scale_ratio"] > 0
    text = probe_module.report(result)
    for block in ("steer:", "oracle:", "severity:", "kinds:", "alignment:"):
        assert block in text


def test_steer_is_zero_when_the_restorer_ignores_its_prior(pipeline, images):
    """With every DB zeroed R_S is the same function of I_d whatever the prior: steer must read 0."""
    with torch.no_grad():
        saved = {name: p.clone() for name, p in pipeline.student.restorer.dbs.named_parameters()}
        for p in pipeline.student.restorer.dbs.parameters():
            p.zero_()
    try:
        steer = probe_module.steer(pipeline, images)
    finally:
        with torch.no_grad():
            for name, p in pipeline.student.restorer.dbs.named_parameters():
                p.copy_(saved[name])
    assert all(v == 0 for v in steer["steer_db"].values())  # identity DBs: the very same computation
    assert all(v == 0 for v in steer["oracle_db"].values())
    assert probe_module.steer(pipeline, images)["steer_db"]["average"] != 0  # restored DBs steer again


def test_alignment_is_perfect_for_a_student_that_copies_the_teacher(pipeline, images, monkeypatch):
    monkeypatch.setattr(pipeline, "prior", lambda image: 2.0 * pipeline.privileged_prior(image, image) + 1.0)
    monkeypatch.setattr(pipeline, "privileged_prior", lambda image, clean: np.asarray(image, np.float32).reshape(-1)[:512] / 255)
    result = probe_module.alignment(pipeline, images)
    assert result["centred_cosine"] == pytest.approx(1.0, abs=1e-5)
    assert result["scale_ratio"] == pytest.approx(2.0, rel=1e-4)


def test_kinds_accuracy_is_one_for_a_prior_that_names_the_kind(pipeline, images, monkeypatch):
    """A prior that encodes the kind's one-hot code (and nothing else of the image) separates perfectly."""
    kinds = probe_module.KINDS

    def fake_degraded(clean, kind, level, seed):
        return np.full((8, 8, 3), kinds.index(kind), np.uint8)
    monkeypatch.setattr(probe_module, "degraded", fake_degraded)
    monkeypatch.setattr(pipeline, "prior", lambda image: np.eye(512, dtype=np.float32)[int(image[0, 0, 0])])
    result = probe_module.kinds(pipeline, images)
    assert result["loo_1nn_accuracy"] == result["other_photo_1nn_accuracy"] == 1.0 and result["silhouette"] > 0.9
    per_kind = len(images) * len(probe_module.KIND_LEVELS)
    assert result["confusion"] == {k: {o: per_kind * (o == k) for o in kinds} for k in kinds}
    rng = np.random.default_rng(0)
    monkeypatch.setattr(pipeline, "prior", lambda image: rng.normal(size=512).astype(np.float32))
    blind = probe_module.kinds(pipeline, images)  # a prior that ignores the image: about chance
    assert blind["loo_1nn_accuracy"] < 0.6 and blind["silhouette"] < 0.1


def test_kinds_errors_name_a_prior_that_reads_the_photograph(pipeline, images, monkeypatch):
    """A prior that encodes which photograph it sees, not the kind, errs with the same photograph's samples."""
    def fake_degraded(clean, kind, level, seed):
        return np.full((8, 8, 3), seed - 100, np.uint8)  # kinds() seeds photograph i with 100 + i
    monkeypatch.setattr(probe_module, "degraded", fake_degraded)
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(len(images), 512)).astype(np.float32)  # one code per photograph, in every dimension
    monkeypatch.setattr(pipeline, "prior", lambda image: codes[int(image[0, 0, 0])]
                        + 0.01 * rng.normal(size=512).astype(np.float32))
    result = probe_module.kinds(pipeline, images)
    assert result["loo_1nn_accuracy"] < 0.5 and result["errors_same_photo"] == 1.0
    assert sum(sum(row.values()) for row in result["confusion"].values()) == result["samples"]


def test_a_kind_code_that_differs_by_photograph_passes_leave_one_out_but_not_across_photographs(
        pipeline, images, monkeypatch):
    """Each (photograph, kind) gets its own random code: a sample's nearest neighbour is its own
    photograph under the same kind at another level, but no code carries over to a new photograph."""
    kinds = probe_module.KINDS

    def fake_degraded(clean, kind, level, seed):  # kinds() seeds photograph i with 100 + i
        return np.full((8, 8, 3), (seed - 100) * len(kinds) + kinds.index(kind), np.uint8)
    monkeypatch.setattr(probe_module, "degraded", fake_degraded)
    codes = np.random.default_rng(0).normal(size=(len(images) * len(kinds), 512)).astype(np.float32)
    monkeypatch.setattr(pipeline, "prior", lambda image: codes[int(image[0, 0, 0])])
    result = probe_module.kinds(pipeline, images)
    assert result["loo_1nn_accuracy"] == 1.0 and result["other_photo_1nn_accuracy"] < 0.6
