"""Inference: any image in, same type and size out; tiles; the prior; the teacher's prior;
and the shipped-weights loader."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from helpers import trained_looking
from lupi_core import pipeline as pipeline_module
from lupi_core.config import ModelConfig
from lupi_core.images import ImageError
from lupi_core.metrics import psnr
from lupi_core.models import build_student, build_teacher
from lupi_core.pipeline import Pipeline, load_pretrained
from lupi_core.tiling import feather, forward_padded, owned_spans, restore_independent_tiles, tile_starts
from lupi_core.weights import WeightsError, save_model

TINY = ModelConfig.preset("tiny")


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    return trained_looking(build_student(TINY), torch.Generator().manual_seed(0)).eval()


@pytest.fixture(scope="module")
def pipe(student):
    return Pipeline(student)


@pytest.fixture(scope="module")
def photo():
    return skimage.data.astronaut()  # 512 x 512 x 3 uint8


# -- type and size in = type and size out ------------------------------------------------------
@pytest.mark.parametrize("height,width", [(37, 53), (8, 8), (3, 5), (1, 1), (64, 24)])
def test_numpy_in_numpy_out_same_size(pipe, photo, height, width):
    image = photo[:height, 100:100 + width]
    out = pipe.restore(image)
    assert isinstance(out, np.ndarray)
    assert out.shape == (height, width, 3) and out.dtype == np.uint8


def test_a_read_only_array_converts_without_a_warning():
    """np.asarray of a PIL image is read-only; torch warns (once per process, hence a fresh one)."""
    code = ("import numpy as np; from lupi_core.images import to_tensor; a = np.zeros((4, 4, 3), np.uint8); "
            "a.flags.writeable = False; assert to_tensor(a).shape == (1, 3, 4, 4)")
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


@pytest.mark.parametrize("height,width", [(37, 53), (8, 8), (3, 5)])
def test_pil_in_pil_out_same_size(pipe, photo, height, width):
    image = Image.fromarray(photo[:height, :width])
    out = pipe.restore(image)
    assert isinstance(out, Image.Image)
    assert out.size == (width, height) and out.mode == "RGB"


def test_grayscale_rgba_and_16_bit_inputs(pipe, photo):
    gray = skimage.data.camera()[:37, :53]
    for image in (gray, gray[:, :, None], Image.fromarray(gray)):
        out = pipe.restore(image)
        assert np.asarray(out).shape == (37, 53, 3)
    rgba = np.dstack([photo[:37, :53], np.full((37, 53), 128, np.uint8)])
    for image in (rgba, Image.fromarray(rgba, "RGBA")):
        out = pipe.restore(image)
        assert np.asarray(out).shape == (37, 53, 3)
    sixteen = gray.astype(np.uint16) * 257
    for image in (sixteen, Image.fromarray(sixteen)):
        out = pipe.restore(image)
        assert np.asarray(out).shape == (37, 53, 3)
    # 16-bit input is the same picture as its 8-bit version.
    np.testing.assert_array_equal(pipe.restore(sixteen), pipe.restore(gray))


def test_restore_float_is_clamped_float32(pipe, photo):
    out = pipe.restore_float(photo[:40, :48])
    assert out.dtype == np.float32 and out.shape == (40, 48, 3)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_bad_shapes_raise_image_error(pipe):
    with pytest.raises(ImageError):
        pipe.restore(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError):
        pipe.restore(np.zeros((2, 4, 4, 3), np.uint8))


def test_padding_is_cropped_not_centre_cropped(student):
    """forward_padded must keep the top-left-aligned content: an identity fn returns the input."""
    image = torch.rand(1, 3, 13, 21)
    out = forward_padded(lambda x: x, image)
    assert torch.equal(out, image)
    small = torch.rand(1, 3, 3, 5)
    assert torch.equal(forward_padded(lambda x: x, small), small)


# -- tiles --------------------------------------------------------------------------------
def test_tile_starts_cover_the_image():
    assert tile_starts(20, 32, 8) == [0]
    starts = tile_starts(100, 32, 8)
    assert starts[0] == 0 and starts[-1] == 100 - 32
    assert all(b - a <= 32 - 8 for a, b in zip(starts, starts[1:]))  # overlap at least 8


def test_tiled_restore_shape_and_progress(student, photo):
    tiled = Pipeline(student, tile=32, tile_overlap=8)
    calls = []
    image = photo[:100, :70]
    out = tiled.restore(image, progress=lambda done, total: calls.append((done, total)))
    assert out.shape == (100, 70, 3)
    tiles = len(tile_starts(100, 32, 8)) * len(tile_starts(70, 32, 8))
    total = (tiled.tile_refine + 1) * tiles  # a statistics pass, then the output pass
    assert tiles > 1
    assert calls == [(i, total) for i in range(0, total + 1)]
    # An image that fits one tile reports one step.
    calls.clear()
    tiled.restore(photo[:24, :24], progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 1)]


def test_owned_spans_partition_each_axis_on_multiples_of_8():
    for length, tile, overlap in ((100, 32, 8), (1000, 512, 64), (530, 128, 32)):
        starts = tile_starts(length, tile, overlap)
        spans = owned_spans(starts, tile, length)
        absolute = [(s + a, s + b) for s, (a, b) in zip(starts, spans)]
        assert absolute[0][0] == 0 and absolute[-1][1] == length
        assert all(prev[1] == nxt[0] and nxt[0] % 8 == 0 for prev, nxt in zip(absolute, absolute[1:]))
        assert all(0 <= a < b <= min(tile, length - s) for s, (a, b) in zip(starts, spans))


def test_feather_weights_rise_across_overlaps_and_stay_positive():
    starts = tile_starts(100, 32, 8)
    weights = feather(starts, 32, 100)
    assert torch.all(weights[0][:8] == 1)  # the image's own edge is not faded
    assert torch.all(weights[1][:8] < 1) and torch.all(torch.diff(weights[1][:8]) > 0)
    assert all(torch.all(w > 0) for w in weights)


def independent_tiles(pipeline: Pipeline, image: np.ndarray, tile: int, overlap: int) -> np.ndarray:
    tensor = pipeline._input(image)
    prior = pipeline._prior_tensor(tensor)
    with torch.inference_mode():
        restored = restore_independent_tiles(lambda x: pipeline.student.restorer(x, prior), tensor, tile, overlap)
    return restored.clamp(0, 1)[0].permute(1, 2, 0).numpy()


def test_tiles_agree_with_one_pass_where_their_brightness_differs(photo):
    """A photo whose left half is dark and right half hazy-bright: a tile restored alone
    takes its attention statistics from its own pixels and comes out at its own brightness;
    tiles sharing the whole image's statistics restore as one pass does."""
    pipeline = load_pretrained()
    image = np.concatenate([photo[:384, :256] // 5, 150 + photo[:384, 256:] // 3], axis=1).astype(np.uint8)
    whole = pipeline.restore_float(image, tile=512)
    tiled = pipeline.restore_float(image, tile=256)  # 2 x 3 tiles
    alone = independent_tiles(pipeline, image, 256, pipeline.tile_overlap)
    assert psnr(alone, whole) < 40  # the old tiling shows the tiles on this image ...
    assert psnr(tiled, whole) >= 40  # ... the shared statistics do not


def test_tiled_identity_model_returns_the_input_exactly(photo):
    torch.manual_seed(0)
    identity = trained_looking(build_student(TINY), torch.Generator().manual_seed(0)).eval()
    with torch.no_grad():
        identity.restorer.output.weight.zero_()  # global residual: output == input
    image = photo[:100, :70]
    tiled = Pipeline(identity, tile=32, tile_overlap=8)
    np.testing.assert_array_equal(tiled.restore(image), image)
    np.testing.assert_allclose(tiled.restore_float(image), image / 255.0, atol=1e-6)
    np.testing.assert_array_equal(Pipeline(identity).restore(image), image)


def test_tile_argument_overrides_default(pipe, photo):
    calls = []
    out = pipe.restore(photo[:100, :80], tile=160, progress=lambda d, t: calls.append(t))
    assert out.shape == (100, 80, 3)
    assert calls == [1]
    # An override no larger than twice the overlap (64 by default) is refused clearly, not a crash inside range().
    with pytest.raises(ValueError, match="overlap"):
        pipe.restore(photo[:100, :80], tile=128)
    with pytest.raises(ValueError, match="multiples of 8"):
        pipe.restore(photo[:100, :80], tile=260)


def test_invalid_tile_raises(student):
    with pytest.raises(ValueError, match="multiples of 8"):
        Pipeline(student, tile=30)
    with pytest.raises(ValueError):
        Pipeline(student, tile=32, tile_overlap=16)


# -- the prior ------------------------------------------------------------------------------
def test_prior_is_deterministic_float32_512(pipe, photo):
    image = photo[:64, :96]
    prior = pipe.prior(image)
    assert prior.dtype == np.float32 and prior.shape == (512,)
    np.testing.assert_array_equal(prior, pipe.prior(image))
    np.testing.assert_array_equal(prior, pipe.prior(Image.fromarray(image)))
    assert not np.allclose(prior, pipe.prior(skimage.data.coffee()[:64, :96]))


def test_prior_does_not_run_the_restorer(student, photo, monkeypatch):
    pipe = Pipeline(student)

    def forbidden(*_args, **_kwargs):
        raise AssertionError("prior() must run D_S alone")

    monkeypatch.setattr(student.restorer, "forward", forbidden)
    assert pipe.prior(photo[:32, :32]).shape == (512,)
    with pytest.raises(AssertionError, match="D_S alone"):
        pipe.restore(photo[:32, :32])  # the patch is live: restore does run R


def test_tiled_prior_is_close_to_the_whole_image_prior():
    torch.manual_seed(0)
    model = build_student(TINY).eval()
    with torch.no_grad():  # zero biases: the prior then depends strongly on the image
        for module in model.predictor.modules():
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
    image = skimage.data.astronaut()[:256, :384]
    whole = Pipeline(model, tile=512).prior(image)
    tiled = Pipeline(model, tile=128, tile_overlap=8).prior(image)
    other_image = Pipeline(model, tile=512).prior(skimage.data.coffee()[:256, :384])
    distance = np.linalg.norm(whole - tiled) / np.linalg.norm(whole)
    between_images = np.linalg.norm(whole - other_image) / np.linalg.norm(whole)
    assert distance < 0.1
    assert distance < 0.25 * between_images
    assert not np.array_equal(whole, tiled)  # it really was tiled
    with torch.no_grad():  # and one tile is D_S itself: pooling weights tiles by area, it does not scale
        direct = model.predictor(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)[0].numpy()
    np.testing.assert_allclose(whole, direct, rtol=1e-4, atol=1e-5)


def test_explicit_prior_changes_the_restoration(pipe, photo):
    image = photo[:40, :56]
    default = pipe.restore_float(image)
    own = pipe.restore_float(image, prior=pipe.prior(image))
    np.testing.assert_allclose(own, default, atol=1e-6)  # passing d_S itself changes nothing
    rng = np.random.default_rng(0)
    other = pipe.restore_float(image, prior=rng.normal(size=512).astype(np.float32) * 3)
    assert np.abs(other - default).max() > 1e-3


def test_prior_of_wrong_length_raises(pipe, photo):
    with pytest.raises(ValueError, match="512"):
        pipe.restore(photo[:16, :16], prior=np.zeros(100, np.float32))


def test_backbone_model_has_no_prior(photo):
    backbone = Pipeline(build_student(TINY, with_predictor=False))
    assert not backbone.has_prior
    assert backbone.restore(photo[:21, :13]).shape == (21, 13, 3)
    with pytest.raises(RuntimeError, match="no degradation predictor"):
        backbone.prior(photo[:16, :16])


def test_privileged_prior_needs_a_teacher(pipe, photo):
    clean = photo[:32, :32]
    with pytest.raises(RuntimeError, match="teacher"):
        pipe.privileged_prior(clean, clean)


def test_privileged_prior_with_a_teacher(student, photo):
    torch.manual_seed(1)
    with_teacher = Pipeline(student, teacher=build_teacher(TINY))
    clean = photo[:32, :48]
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    d_t = with_teacher.privileged_prior(noisy, clean)
    assert d_t.dtype == np.float32 and d_t.shape == (512,)
    assert not np.array_equal(d_t, with_teacher.privileged_prior(noisy, noisy))  # it sees the clean image
    with pytest.raises(ImageError, match="differ in size"):
        with_teacher.privileged_prior(noisy, clean[:16])
    # d_T can drive the student's restorer (the counterfactual the app shows).
    assert with_teacher.restore(noisy, prior=d_t).shape == noisy.shape


# -- loading --------------------------------------------------------------------------------
def test_load_pretrained_without_default_file_says_so(tmp_path, monkeypatch):
    missing = tmp_path / "lupi-small-student.safetensors"
    monkeypatch.setattr(pipeline_module, "DEFAULT_STUDENT", missing)
    monkeypatch.setattr(pipeline_module, "DEFAULT_TEACHER", tmp_path / "lupi-small-teacher.safetensors")
    with pytest.raises(WeightsError) as info:
        load_pretrained(None)
    assert str(missing) in str(info.value)
    assert "--checkpoint" in str(info.value)  # says what to do


def test_load_pretrained_from_files(tmp_path, student, photo, monkeypatch):
    student_path = save_model(student, tmp_path / "s.safetensors")
    teacher_path = save_model(build_teacher(TINY), tmp_path / "t.safetensors")
    pipe = load_pretrained(student_path, tile=160)
    assert pipe.teacher is None and pipe.tile == 160
    np.testing.assert_array_equal(pipe.restore(photo[:24, :40]), Pipeline(student).restore(photo[:24, :40]))
    assert load_pretrained(student_path, teacher=teacher_path).teacher is not None
    with pytest.raises(WeightsError, match="t.safetensors"):
        load_pretrained(teacher_path)  # a teacher file is not a student
    # The default path: the student and, when present, the teacher beside it.
    monkeypatch.setattr(pipeline_module, "DEFAULT_STUDENT", student_path)
    monkeypatch.setattr(pipeline_module, "DEFAULT_TEACHER", teacher_path)
    assert load_pretrained().teacher is not None


# -- restore only what is degraded; strength ---------------------------------------------------
def test_strength_zero_returns_the_input_exactly_and_one_the_restoration(pipe, photo):
    image = photo[:40, :56]
    np.testing.assert_array_equal(pipe.restore(image, strength=0), image)
    np.testing.assert_array_equal(pipe.restore(image, strength=1), pipe.restore(image))
    half = pipe.restoration(image, strength=0.5).image
    full = pipe.restore_float(image)
    np.testing.assert_allclose(half, (image / 255.0 + full) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="strength"):
        pipe.restore(image, strength=1.5)


def test_an_input_the_prior_reads_as_clean_is_left_alone_unless_forced(tmp_path_factory):
    from helpers import shared_model_and_atlas
    from lupi_core.atlas import bundled_image
    from lupi_core.degrade import add_gaussian_noise

    student_path, _, atlas_path = shared_model_and_atlas(tmp_path_factory)
    pipeline = load_pretrained(student_path, atlas=atlas_path)
    clean = bundled_image("coffee", 64)  # the atlas' own clean sample: its prior reads "clean"
    kept = pipeline.restoration(clean)
    assert kept.left_as_is and kept.reading["kind"] == "clean" and "left as it is" in kept.message
    np.testing.assert_array_equal(pipeline.restore(clean), clean)
    forced = pipeline.restore(clean, force=True)
    assert not np.array_equal(forced, clean)
    np.testing.assert_array_equal(forced, pipeline.restore(clean, force=True, strength=1.0))
    noisy = add_gaussian_noise(clean, 50, seed=0)
    assert pipeline.read(noisy)["kind"] != "clean"
    assert not pipeline.restoration(noisy).left_as_is


def test_an_atlas_of_another_predictor_is_refused(tmp_path_factory):
    from helpers import shared_model_and_atlas
    from lupi_core.atlas import Atlas

    _, _, atlas_path = shared_model_and_atlas(tmp_path_factory)
    other = build_student(TINY)  # fresh weights: another D_S
    with pytest.raises(ValueError, match="another predictor"):
        Pipeline(other).use_atlas(Atlas.load(atlas_path))


# -- precision -----------------------------------------------------------------------------------
def test_auto_precision_is_bf16_only_where_the_processor_has_it(monkeypatch):
    from lupi_core import hardware

    cpu = torch.device("cpu")
    for native in (True, False):
        monkeypatch.setattr(hardware, "cpu_has_bf16", lambda native=native: native)
        assert hardware.autocast_dtype("auto", cpu) == (torch.bfloat16 if native else None)
    assert hardware.autocast_dtype("bf16", cpu) == torch.bfloat16
    assert hardware.autocast_dtype("fp32", torch.device("cuda")) is None
    with pytest.raises(ValueError, match="precision"):
        hardware.autocast_dtype("fp16", cpu)


def test_a_bf16_restorer_stays_close_to_fp32_and_leaves_the_prior_alone(student, photo):
    crop = photo[:128, :128]
    bf16, fp32 = Pipeline(student, precision="bf16"), Pipeline(student, precision="fp32")
    fast, exact = bf16.restore_float(crop), fp32.restore_float(crop)
    assert fast.dtype == np.float32 and not np.array_equal(fast, exact)  # the restorer did run in bf16
    assert psnr(fast, exact) > 40.0
    np.testing.assert_array_equal(bf16.prior(crop), fp32.prior(crop))  # D_S stays fp32
