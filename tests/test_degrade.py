"""Synthetic degradations: determinism, severity, conventions and errors."""
import numpy as np
import pytest
from skimage import data

from lupi_core.degrade import (
    KINDS,
    MIX_ORDER,
    add_gaussian_noise,
    blur_with_kernel,
    camera_shake_kernel,
    degrade,
    parameter_ranges,
)

ALL_KINDS = KINDS + ("mix",)


@pytest.fixture(scope="module")
def photo():
    return np.ascontiguousarray(data.astronaut()[40:136, 150:246])  # 96x96, face and background


@pytest.fixture(scope="module")
def photos(photo):
    return [photo, np.ascontiguousarray(data.chelsea()[60:140, 100:200]), np.ascontiguousarray(data.coffee()[100:180, 200:300])]


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_deterministic_per_seed_and_different_across_seeds(photo, kind):
    a = degrade(photo, kind, 0.5, seed=7)
    assert np.array_equal(a, degrade(photo, kind, 0.5, seed=7))
    assert not np.array_equal(a, degrade(photo, kind, 0.5, seed=8))


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_shape_and_dtype_kept(kind):
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for level in (0.0, 1.0, None):
        out = degrade(image, kind, level, seed=1)
        assert out.shape == image.shape and out.dtype == np.uint8
    assert degrade(image[:1, :1], kind, 1.0, seed=1).shape == (1, 1, 3)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_severity_grows_with_level(photos, kind):
    extra = {"kinds": ["rain", "noise"]} if kind == "mix" else {}
    for image in photos:
        for seed in (0, 1):
            scores = [psnr(image, degrade(image, kind, level, seed=seed, **extra)) for level in (0.1, 0.5, 0.9)]
            assert scores[0] > scores[1] > scores[2], (kind, seed, scores)


def test_random_level_is_drawn_from_the_seed(photo):
    out, info = degrade(photo, "rain", seed=3, return_info=True)
    assert 0.0 <= info["level"] <= 1.0
    assert np.array_equal(out, degrade(photo, "rain", seed=3))


def test_noise_follows_the_published_convention(photo):
    expected = np.clip(photo + np.random.RandomState(0).randn(*photo.shape) * 25, 0, 255).astype(np.uint8)
    assert np.array_equal(add_gaussian_noise(photo, 25, seed=0), expected)
    np.random.seed(0)
    expected = np.clip(photo + np.random.randn(*photo.shape) * 25, 0, 255).astype(np.uint8)
    assert np.array_equal(add_gaussian_noise(photo, 25, seed=0), expected)
    # degrade draws from its Generator with the same formula (clip, then truncate, not round).
    expected = np.clip(photo + np.random.default_rng(5).standard_normal(photo.shape) * 15, 0, 255).astype(np.uint8)
    assert np.array_equal(degrade(photo, "noise", sigma=15, seed=5), expected)


def test_shared_noise_stream_continues_across_images(photo):
    stream = np.random.RandomState(0)
    first, second = add_gaussian_noise(photo, 50, stream), add_gaussian_noise(photo, 50, stream)
    assert np.array_equal(first, add_gaussian_noise(photo, 50, seed=0))
    assert not np.array_equal(first, second)


def test_noise_level_maps_to_sigma(photo):
    lo, hi = parameter_ranges()["noise"]["sigma"]
    _, info = degrade(photo, "noise", 0.4, seed=0, return_info=True)
    assert info["sigma"] == pytest.approx(lo + 0.4 * (hi - lo))


def test_level_zero_and_one_give_the_range_ends(photo):
    for kind, ranges in parameter_ranges().items():
        for level, end in ((0.0, 0), (1.0, 1)):
            _, info = degrade(photo, kind, level, seed=0, return_info=True)
            for name, bounds in ranges.items():
                if name in ("angle", "airlight"):  # drawn, not set by the level
                    assert min(bounds) <= info[name] <= max(bounds)
                else:
                    assert info[name] == pytest.approx(bounds[end]), (kind, name)


def test_parameters_override_the_level(photo):
    out, info = degrade(photo, "rain", 0.5, seed=2, angle=20.0, return_info=True)
    assert info["angle"] == 20.0
    assert not np.array_equal(out, degrade(photo, "rain", 0.5, seed=2, angle=-20.0))
    _, info = degrade(photo, "haze", 0.5, seed=2, beta=0.1, return_info=True)
    assert info["beta"] == 0.1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "snow"}, "noise, rain, haze, blur, lowlight"),
        ({"kind": "rain", "level": 1.5}, r"\[0, 1\]"),
        ({"kind": "rain", "level": -0.1}, r"\[0, 1\]"),
        ({"kind": "rain", "level": float("nan")}, r"\[0, 1\]"),
        ({"kind": "rain", "level": "high"}, r"\[0, 1\]"),
        ({"kind": "rain", "sigma": 25}, "only to kind='noise'"),
        ({"kind": "rain", "beta": 0.1}, "its parameters are"),
        ({"kind": "mix", "kinds": ["rain", "fog"]}, "mix kinds"),
        ({"kind": "mix", "angle": 3}, "only kinds"),
    ],
)
def test_bad_arguments_raise_clear_errors(photo, kwargs, message):
    with pytest.raises(ValueError, match=message):
        degrade(photo, **kwargs)


@pytest.mark.parametrize(
    "image",
    [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), [[1, 2, 3]]],
)
def test_bad_images_raise_and_say_how_to_convert(image):
    with pytest.raises(ValueError, match="to_rgb_uint8"):
        degrade(image, "noise", 0.5)


def test_camera_shake_kernel_sums_to_one_and_is_centred():
    for seed in range(5):
        kernel = camera_shake_kernel(25, seed)
        assert kernel.shape == (25, 25) and kernel.min() >= 0
        assert kernel.sum() == pytest.approx(1.0)
        rows, cols = np.mgrid[:25, :25]
        assert (kernel * rows).sum() == pytest.approx(12, abs=1e-6) and (kernel * cols).sum() == pytest.approx(12, abs=1e-6)
    assert np.array_equal(camera_shake_kernel(15, 3), camera_shake_kernel(15, 3))
    with pytest.raises(ValueError, match="odd size"):
        camera_shake_kernel(16, 0)


def test_blur_kernel_is_reusable(photo):
    out, info = degrade(photo, "blur", 0.7, seed=4, return_info=True)
    assert info["kernel"].sum() == pytest.approx(1.0)
    assert np.array_equal(blur_with_kernel(photo, info["kernel"]), out)
    delta = np.zeros((5, 5))
    delta[2, 2] = 1.0
    assert np.array_equal(blur_with_kernel(photo, delta), photo)
    assert np.array_equal(degrade(photo, "blur", seed=0, kernel=delta), photo)


def test_mix_applies_kinds_in_physical_order(photo):
    _, info = degrade(photo, "mix", 0.5, seed=0, kinds=["noise", "haze", "rain"], return_info=True)
    assert info["kinds"] == ["haze", "rain", "noise"]
    _, info = degrade(photo, "mix", seed=1, return_info=True)
    assert len(info["kinds"]) == 2 and info["kinds"] == [k for k in MIX_ORDER if k in info["kinds"]]
