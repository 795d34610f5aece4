"""The shipped model (assets/) restores out of the box, with no argument and no data folder."""
import numpy as np
from skimage import data as photographs

import lupi_core
from lupi_core.degrade import add_gaussian_noise
from lupi_core.metrics import psnr


def test_shipped_model_denoises_a_bundled_photograph_by_several_db():
    pipeline = lupi_core.load_pretrained()
    clean = photographs.chelsea()[:256, :256]  # a photograph bundled with scikit-image, not in the training data
    noisy = add_gaussian_noise(clean, 25, seed=0)
    restored = pipeline.restore(noisy)
    assert restored.shape == clean.shape and restored.dtype == np.uint8
    gain = psnr(restored, clean) - psnr(noisy, clean)
    assert gain > 4.0, f"the shipped model raised PSNR by only {gain:.2f} dB at sigma 25"


def test_shipped_prior_is_512_d_and_teacher_ships_too():
    pipeline = lupi_core.load_pretrained()
    image = photographs.astronaut()[:128, :128]
    assert pipeline.prior(image).shape == (512,)
    assert pipeline.teacher is not None
    assert pipeline.privileged_prior(add_gaussian_noise(image, 25, seed=0), image).shape == (512,)


def test_a_bundled_clean_photo_comes_back_close_to_itself():

    pipeline = lupi_core.load_pretrained()
    clean = photographs.chelsea()[:256, :256]
    restored = pipeline.restore_float(clean)  # ungated: the model itself, not the clean-photo gate
    assert psnr(restored, clean) >= 33.0
    assert abs(restored.mean() * 255 - clean.mean()) <= 3.0


def test_another_kinds_prior_lowers_the_psnr_of_a_degraded_photo():
    from lupi_core.examples import load_index
    from lupi_core.images import load_image
    from lupi_core.steering import counterfactuals

    pipeline = lupi_core.load_pretrained()
    entry = next(e for e in load_index() if e["file"] == "rocket_haze.png")
    image, clean = load_image(entry["path"]), load_image(entry["clean_path"])
    own, low_light = counterfactuals(pipeline, image, {"low light mean": pipeline.atlas.kind_mean("lowlight")}, clean)
    assert low_light.psnr < own.psnr - 0.2  # shipped model: -1.35 dB; the prior steers, if weakly
