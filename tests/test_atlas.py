"""The prior atlas (Figure 5): building, storage without pickles, neighbours, the
description, placement on the maps, and determinism of the maps, on the tiny model and
atlas of tests/helpers.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import SIZE, SMALL_IMAGES, SMALL_SPECS, build_small_atlas, command_args, make_tiny_checkpoint, shared_model_and_atlas
from lupi_core import atlas as atlas_module
from lupi_core.atlas import Atlas, Spec, build_atlas, bundled_image, default_specs, noise_curve
from lupi_core.degrade import degrade
from lupi_core.images import ImageError
from lupi_core.pipeline import load_pretrained


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return shared_model_and_atlas(tmp_path_factory)


@pytest.fixture(scope="module")
def pipeline(files):
    return load_pretrained(files[0], teacher=files[1])


@pytest.fixture(scope="module")
def atlas(files):
    return Atlas.load(files[2])


def test_build_labels_maps_and_thumbnails(atlas):
    n = len(SMALL_IMAGES) * len(SMALL_SPECS)
    assert len(atlas) == n and atlas.priors.shape == (n, 512) and atlas.priors.dtype == np.float32
    assert atlas.umap.shape == (n, 2) and atlas.pca.shape == (n, 2)
    assert np.isfinite(atlas.umap).all() and np.isfinite(atlas.pca).all()
    assert atlas.kinds == ["clean", "noise", "rain", "haze", "blur", "lowlight", "mix"]
    assert atlas.kind_means.shape == (7, 512)
    noise = [label for label in atlas.labels if label["kind"] == "noise"]
    assert sorted({label["sigma"] for label in noise}) == [10.0, 30.0, 50.0]
    assert all(label["level"] is None for label in noise)
    assert all(len(label["mix_kinds"]) == 2 for label in atlas.labels if label["kind"] == "mix")
    assert list(atlas.noise_sigmas) == [0.0, 10.0, 30.0, 50.0] and atlas.noise_curve.shape == (4, 512)
    dims, rho = atlas.severity_dims("noise")
    assert len(dims) == 6 and np.all(np.diff(np.abs(rho)) <= 1e-12)  # strongest first
    from scipy.stats import spearmanr
    per_image = []
    for image in SMALL_IMAGES:
        rows = [i for i, label in enumerate(atlas.labels) if label["kind"] in ("noise", "clean")
                and label["image"] == image]
        per_image.append(spearmanr([atlas.labels[i]["severity"] for i in rows], atlas.priors[rows, dims[0]]).statistic)
    assert rho[0] == pytest.approx(np.mean(per_image))
    # the clean images' mean prior is the sigma-0 point of the noise curve
    np.testing.assert_allclose(atlas.noise_curve[0], atlas.kind_mean("clean"), rtol=1e-5, atol=1e-6)
    thumb = atlas.thumbnail_array(0)
    assert thumb.shape == (64, 64, 3) and thumb.dtype == np.uint8
    assert atlas.ood_threshold >= atlas.typical_distance > 0


def test_save_load_round_trip_uses_no_pickle(atlas, tmp_path, monkeypatch):
    atlas.save(tmp_path / "copy")
    assert (tmp_path / "copy.npz").is_file() and (tmp_path / "copy.json").is_file()
    calls = []
    real_load = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(atlas_module.np, "load", spy)
    loaded = Atlas.load(tmp_path / "copy.npz")  # either suffix, or none, names the pair
    assert calls == [False]
    with real_load(tmp_path / "copy.npz", allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)
    for name in Atlas.ARRAYS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(atlas, name))
    assert loaded.labels == atlas.labels and loaded.kinds == atlas.kinds
    assert loaded.meta["image_size"] == SIZE


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m lupi_core atlas"):
        Atlas.load(tmp_path / "missing")


def test_nearest_of_an_atlas_prior_is_itself(atlas):
    for i in (0, 5, len(atlas) - 1):
        neighbours = atlas.nearest(atlas.priors[i], k=3)
        assert neighbours[0][0]["index"] == i and neighbours[0][1] == pytest.approx(0.0, abs=1e-5)
        assert [d for _, d in neighbours] == sorted(d for _, d in neighbours)
        assert neighbours[0][0]["kind"] == atlas.labels[i]["kind"]


def test_describe_picks_a_kind_and_flags_far_priors(atlas, pipeline):
    noisy = degrade(bundled_image("chelsea", SIZE), "noise", sigma=30, seed=3)
    described = atlas.describe(pipeline.prior(noisy))
    assert described["kind"] in atlas.kinds and isinstance(described["text"], str) and described["text"]
    assert 0 < described["agreement"] <= 1 and described["out_of_distribution"] in (True, False)
    if described["kind"] == "noise":
        assert described["sigma"] in (10.0, 30.0, 50.0)
    far = atlas.describe(atlas.z_mean + 50 * atlas.z_std)
    assert far["out_of_distribution"] is True
    assert atlas.describe(atlas.priors[0])["out_of_distribution"] is False


def test_place_on_both_maps(atlas):
    for i in (0, 7):
        assert atlas.place(atlas.priors[i], "umap") == pytest.approx(tuple(atlas.umap[i]), abs=1e-6)
        assert atlas.place(atlas.priors[i], "pca") == pytest.approx(tuple(atlas.pca[i]), abs=1e-3)
    x, y = atlas.place(0.5 * (atlas.priors[0] + atlas.priors[1]), "umap")
    lo, hi = atlas.umap.min(axis=0), atlas.umap.max(axis=0)
    assert lo[0] <= x <= hi[0] and lo[1] <= y <= hi[1]  # a weighted mean of atlas points
    with pytest.raises(ValueError):
        atlas.place(atlas.priors[0], "tsne")


def test_maps_are_deterministic(pipeline, atlas):
    again = build_small_atlas(pipeline)
    np.testing.assert_array_equal(again.priors, atlas.priors)
    np.testing.assert_allclose(again.umap, atlas.umap, atol=1e-5)
    np.testing.assert_allclose(again.pca, atlas.pca, atol=1e-5)


def test_samples_regenerate_exactly(atlas, pipeline):
    for i, label in enumerate(atlas.labels):
        if label["kind"] in ("clean", "rain"):
            degraded, clean = atlas.sample(i)
            assert degraded.shape == clean.shape == (SIZE, SIZE, 3)
            np.testing.assert_allclose(pipeline.prior(degraded), atlas.priors[i], rtol=1e-4, atol=1e-5)
    with pytest.raises(IndexError):
        atlas.sample(len(atlas))


def test_folder_images_store_no_thumbnails(pipeline):
    extra = {"folder:private.png": degrade(bundled_image("rocket", SIZE), "haze", level=0.2, seed=0)}
    small = build_atlas(pipeline, {**extra, "astronaut": bundled_image("astronaut", SIZE)},
                        [Spec("clean"), Spec("noise", sigma=20.0)], image_size=SIZE)
    private = [i for i, label in enumerate(small.labels) if label["image"] == "folder:private.png"]
    assert private and all(small.thumbnail(i) is None for i in private)
    assert all(small.thumbnail(i) for i, label in enumerate(small.labels) if label["image"] == "astronaut")
    with pytest.raises(ImageError, match="not shipped"):
        small.sample(private[0])


def test_signature_and_noise_curve(atlas, pipeline):
    sig = atlas.signature(k=4)
    assert sig["kinds"] == ["noise", "rain", "haze", "blur", "lowlight", "mix"]
    assert sig["matrix"].shape == (6, len(sig["dims"]))
    assert all(len(top) == 4 for top in sig["top"].values())
    for d in sig["shared"]:
        assert len(sig["owners"][d]) > 1
    sigmas, priors = noise_curve(pipeline, bundled_image("coffee", SIZE), sigmas=(0, 20, 40))
    assert list(sigmas) == [0, 20, 40] and priors.shape == (3, 512)
    assert not np.allclose(priors[0], priors[2])


def test_default_specs_cover_the_paper_grid():
    specs = default_specs()
    assert specs[0] == Spec("clean")
    assert [s.sigma for s in specs if s.kind == "noise"] == [float(s) for s in range(5, 61, 5)]
    assert {s.kind for s in specs} == {"clean", "noise", "rain", "haze", "blur", "lowlight", "mix"}


def test_cli_writes_an_atlas(files, tmp_path):
    args = command_args("atlas", "--checkpoint", files[0], "--out", tmp_path / "cli", "--bundled", "camera",
                        "--size", "32", "--no-progress")
    assert atlas_module.run(args) == 0
    built = Atlas.load(tmp_path / "cli")
    assert len(built) == len(default_specs()) and built.meta["checkpoint"] == "student.safetensors"


def test_atlas_knows_its_predictor(atlas, pipeline, tmp_path):
    assert atlas.matches(pipeline)
    other = load_pretrained(make_tiny_checkpoint(tmp_path)[0])
    with torch.no_grad():
        next(other.student.predictor.parameters()).add_(1.0)
    assert not atlas.matches(other)
