"""Each classical reference method improves on its degraded input (synthetic cases built
from scikit-image's photographs) and returns HxWx3 floats in [0, 1]."""
import numpy as np
import pytest
import skimage.data

from lupi_core import classical
from lupi_core.degrade import add_gaussian_noise, degrade
from lupi_core.metrics import psnr

PHOTOS = ("astronaut", "coffee", "chelsea")


def _photo(name: str) -> np.ndarray:
    return getattr(skimage.data, name)()[200:328, 100:260]  # 128 x 160 at the photos' own scale


@pytest.mark.parametrize("kind", sorted(classical.METHODS))
@pytest.mark.parametrize("name", PHOTOS)
def test_improves_over_the_input(kind, name):
    clean = _photo(name)
    if kind == "noise":
        degraded, side = add_gaussian_noise(clean, 25, seed=1), {}
    else:
        degraded, info = degrade(clean, kind, level=0.5, seed=1, return_info=True)
        side = {"kernel": info["kernel"]} if kind == "blur" else {}
    restored = classical.restore(kind, degraded, **side)
    assert restored.shape == clean.shape and restored.dtype == np.float64
    assert 0.0 <= restored.min() and restored.max() <= 1.0
    assert psnr(restored, clean) > psnr(degraded, clean) + 0.5


def test_every_method_is_named_and_unknown_kinds_fail():
    assert set(classical.METHODS) == {"noise", "rain", "haze", "blur", "lowlight"}
    assert all(name for name, _ in classical.METHODS.values())
    with pytest.raises(ValueError, match="no classical method"):
        classical.restore("snow", np.zeros((8, 8, 3), np.uint8))


def test_guided_filter_keeps_constants_and_edges():
    guide = np.zeros((32, 32))
    guide[:, 16:] = 1.0
    assert np.allclose(classical.guided_filter(guide, np.full((32, 32), 0.3), 4, 1e-3), 0.3)
    # A step that the guide shares survives the smoothing.
    smoothed = classical.guided_filter(guide, guide.copy(), 4, 1e-4)
    assert smoothed[:, :14].max() < 0.05 and smoothed[:, 18:].min() > 0.95


def test_noise_sigma_estimate():
    flat = np.full((128, 128, 3), 128, np.uint8)
    estimate = classical.estimate_noise_sigma(add_gaussian_noise(flat, 25, seed=0) / 255.0) * 255
    assert estimate == pytest.approx(25, rel=0.1)


def test_the_blind_unsharp_mask_leaves_flat_images_and_steepens_edges():
    from lupi_core.classical import deblur_unsharp, restore

    flat = np.full((16, 16, 3), 90, np.uint8)
    np.testing.assert_allclose(deblur_unsharp(flat), 90 / 255)
    edge = np.zeros((8, 32, 3), np.uint8)
    edge[:, 16:] = 200
    soft = np.clip(ndimage_blur(edge), 0, 255).astype(np.uint8)
    sharpened = deblur_unsharp(soft, radius=1.0, amount=1.0)
    assert np.abs(np.diff(sharpened[4, :, 0])).max() > np.abs(np.diff(soft[4, :, 0] / 255)).max()
    np.testing.assert_array_equal(restore("blur", soft, blind=True), deblur_unsharp(soft))


def ndimage_blur(image):
    """A horizontal Gaussian blur, sigma 2 px."""
    from scipy import ndimage

    return ndimage.gaussian_filter(image.astype(float), sigma=(0, 2, 0))
