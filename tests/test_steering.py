"""Named prior directions and counterfactual restorations (lupi_core.steering)."""
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import deaf_to_prior, shared_model_and_atlas
from lupi_core.atlas import Atlas, bundled_image
from lupi_core.metrics import psnr
from lupi_core.pipeline import load_pretrained
from lupi_core.steering import (
    Counterfactual,
    atlas_priors,
    counterfactuals,
    kind_directions,
    named_directions,
    principal_directions,
    severity_directions,
    steer_sentence,
)


def toy_atlas() -> SimpleNamespace:
    """Clean priors at 0; rain along axis 0 with strength = severity; haze at 2 on axis 1."""
    labels, priors = [], []
    for severity in (0.0, 0.5, 1.0):
        labels.append({"kind": "rain", "severity": severity})
        priors.append([1.0 + 4.0 * severity, 0.0, 0.0])
    labels += [{"kind": "clean", "severity": 0.0}, {"kind": "haze", "severity": 0.5}]
    priors += [[0.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
    priors = np.array(priors, np.float32)
    kinds = ["clean", "rain", "haze"]
    means = {k: priors[[label["kind"] == k for label in labels]].mean(axis=0) for k in kinds}
    return SimpleNamespace(kinds=kinds, labels=labels, priors=priors, kind_mean=means.__getitem__)


def test_kind_directions_take_the_clean_mean_to_each_kind_mean():
    atlas = toy_atlas()
    directions = {d.key: d for d in kind_directions(atlas)}
    assert set(directions) == {"kind:rain", "kind:haze"} and directions["kind:rain"].label == "more rain"
    np.testing.assert_allclose(directions["kind:rain"].moved(atlas.kind_mean("clean"), 1.0), [3.0, 0.0, 0.0])
    np.testing.assert_allclose(directions["kind:haze"].moved(atlas.kind_mean("clean"), 0.5), [0.0, 1.0, 0.0])


def test_severity_direction_is_the_least_squares_slope():
    (rain,) = severity_directions(toy_atlas())  # haze has one severity: no slope
    assert rain.key == "severity:rain" and rain.label == "stronger rain"
    np.testing.assert_allclose(rain.vector, [4.0, 0.0, 0.0], atol=1e-6)  # 1 -> 5 from severity 0 to 1


def test_principal_directions_are_labelled_by_the_kinds_at_their_ends():
    first = principal_directions(toy_atlas(), count=1)[0]
    assert abs(first.vector[0]) > 3 * abs(first.vector[1])  # rain's spread on axis 0 dominates
    assert "rain" in first.label and first.key == "pc:1"
    norm = np.linalg.norm(first.vector)
    priors = toy_atlas().priors
    spread = np.std((priors - priors.mean(axis=0)) @ (first.vector / norm), ddof=1)
    assert norm == pytest.approx(spread, rel=1e-5)  # one unit: one standard deviation along it


def test_steer_sentence_names_the_worst_prior_and_the_loss():
    image = np.zeros((2, 2, 3))
    results = [Counterfactual("own prior", image, 25.0, 0.0), Counterfactual("haze mean", image, 21.9, 3.0),
               Counterfactual("noise mean", image, 24.5, 1.0)]
    text = steer_sentence(results, "rain")
    assert "haze mean prior made this rain image 3.1 dB worse" in text and "no other prior beat" in text
    unknown = [Counterfactual(c.name, c.restored, None, c.change) for c in results]
    assert "haze mean prior changed the restoration most: 3.00/255" in steer_sentence(unknown)


@pytest.fixture(scope="module")
def model_and_atlas(tmp_path_factory):
    student, _, atlas_path = shared_model_and_atlas(tmp_path_factory)
    return load_pretrained(student), Atlas.load(atlas_path)


def test_counterfactuals_restore_under_each_prior(model_and_atlas):
    pipeline, atlas = model_and_atlas
    clean = bundled_image("coffee", 48)
    image = np.clip(clean.astype(int) + 20, 0, 255).astype(np.uint8)
    results = counterfactuals(pipeline, image, atlas_priors(atlas), clean)
    assert [c.name for c in results] == ["own prior"] + [f"{k.replace('lowlight', 'low light')} mean"
                                                          for k in atlas.kinds]
    assert results[0].change == 0.0
    haze = next(c for c in results if c.name == "haze mean")
    expected = pipeline.restore_float(image, prior=atlas.kind_mean("haze"))
    assert haze.psnr == pytest.approx(psnr(expected, clean)) and haze.change > 0
    keys = [d.key for d in named_directions(atlas)]
    assert keys[:len(atlas.kinds) - 1] == [f"kind:{k}" for k in atlas.kinds if k != "clean"]
    assert keys[-3:] == ["pc:1", "pc:2", "pc:3"]


def test_a_model_deaf_to_its_prior_gives_the_same_restoration_under_every_prior(tmp_path_factory):
    student, _, atlas_path = shared_model_and_atlas(tmp_path_factory)
    pipeline, atlas = load_pretrained(student), Atlas.load(atlas_path)
    deaf_to_prior(pipeline)
    image = bundled_image("chelsea", 48)
    assert all(c.change == 0.0 for c in counterfactuals(pipeline, image, atlas_priors(atlas)))
