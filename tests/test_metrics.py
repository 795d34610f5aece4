"""PSNR / SSIM follow the published convention: scikit-image on RGB floats in [0, 1],
uint8 inputs scaled by 1/255, floats clamped, SSIM with the 7x7 uniform window."""
import math

import numpy as np
import pytest
import skimage.data
from skimage.metrics import structural_similarity

from lupi_core.metrics import as_unit_float, error_bands, psnr, ssim


@pytest.fixture(scope="module")
def pair():
    clean = skimage.data.astronaut()[100:196, 150:278]
    rng = np.random.default_rng(0)
    restored = np.clip(clean / 255.0 + rng.normal(0, 0.05, clean.shape), 0, 1)
    return restored, clean


def test_ssim_by_hand_on_constant_images():
    """Constant images have no variance, so SSIM is the luminance term alone:
    (2 * 0.5 * 0.6 + C1) / (0.5^2 + 0.6^2 + C1), C1 = (0.01 * 1)^2, = 0.60010 / 0.61010."""
    restored, clean = np.full((16, 16, 3), 0.6), np.full((16, 16, 3), 0.5)
    assert ssim(restored, clean) == pytest.approx(0.60010 / 0.61010, rel=1e-6)
    assert ssim(restored, clean) == pytest.approx(ssim(clean, restored), rel=1e-12)  # symmetric


def test_ssim_uses_a_7x7_window(pair):
    restored, clean = pair
    clean_f = clean / 255.0
    expected = structural_similarity(clean_f, restored, data_range=1.0, channel_axis=-1, win_size=7)
    other = structural_similarity(clean_f, restored, data_range=1.0, channel_axis=-1, win_size=11)
    assert ssim(restored, clean) == pytest.approx(expected) and abs(expected - other) > 1e-3


def test_uint8_means_divided_by_255(pair):
    _, clean = pair
    noisy = np.clip(clean.astype(int) + 7, 0, 255).astype(np.uint8)
    assert psnr(noisy, clean) == pytest.approx(psnr(noisy / 255.0, clean / 255.0))
    assert ssim(noisy, clean) == pytest.approx(ssim(noisy / 255.0, clean))
    assert as_unit_float(noisy).dtype == np.float64 and as_unit_float(noisy).max() <= 1.0


def test_constant_offset_by_hand():
    clean = np.full((32, 32, 3), 100, np.uint8)
    assert psnr(clean + np.uint8(10), clean) == pytest.approx(20 * math.log10(255 / 10))  # 28.13 dB
    assert psnr(np.full((32, 32, 3), 0.6), np.full((32, 32, 3), 0.5)) == pytest.approx(20.0)


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_floats_are_clamped_not_wrapped():
    clean = np.full((16, 16, 3), 1.0)
    assert psnr(np.full((16, 16, 3), 1.7), clean) == math.inf  # clamped to 1.0: identical
    assert ssim(clean, clean) == pytest.approx(1.0)


def test_error_bands_add_up_and_land_where_they_belong(pair):
    restored, clean = pair
    bands = error_bands(restored, clean, periods=(8, 32))
    assert list(bands) == ["mse", "offset", "> 32 px", "8-32 px", "< 8 px"]
    assert sum(bands.values()) - bands["mse"] == pytest.approx(bands["mse"], rel=1e-9)
    assert bands["< 8 px"] > 0.7 * bands["mse"]  # white noise is mostly fine detail
    flat = np.full((32, 32, 3), 0.5)
    shifted = flat + np.array([0.1, 0.0, -0.1])
    assert error_bands(shifted, flat) == pytest.approx(
        {"mse": 0.02 / 3, "offset": 0.02 / 3, "> 32 px": 0, "8-32 px": 0, "< 8 px": 0})
    y = np.arange(64)[:, None, None]
    grey = np.full((64, 64, 3), 0.5)
    for wave, band in ((64, "> 32 px"), (16, "8-32 px"), (4, "< 8 px")):
        bands = error_bands(grey + 0.1 * np.sin(2 * np.pi * y / wave), grey)
        assert bands[band] == pytest.approx(0.005) and bands["mse"] == pytest.approx(0.005)
