"""The app's event handlers as plain functions: no server, no browser."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from demo import charts
from demo.handlers import MAX_PIXELS, Handlers, parse_dims, prior_gap
from helpers import shared_model_and_atlas
from lupi_core.atlas import Atlas
from lupi_core.examples import load_index
from lupi_core.images import load_image
from lupi_core.pipeline import load_pretrained


@pytest.fixture(scope="module")
def handlers(tmp_path_factory):
    student, teacher, atlas_path = shared_model_and_atlas(tmp_path_factory)
    pipeline = load_pretrained(student, teacher=teacher)
    return Handlers(pipeline, Atlas.load(atlas_path), load_index(), tmp_dir=tmp_path_factory.mktemp("app"))


@pytest.fixture()
def photo(tmp_path):
    rng = np.random.default_rng(0)
    image = (rng.random((40, 56, 3)) * 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    return path, image


def test_upload_then_restore_a_path(handlers, photo):
    path, image = photo
    loaded = handlers.load_upload(str(path))
    np.testing.assert_array_equal(loaded["input_state"], image)
    assert loaded["clean_state"] is None and loaded["prior_state"].shape == (512,)
    assert "What the model thinks" in loaded["describe"]
    assert loaded["nn_table"] and loaded["nn_table"][0][0] == 1
    result = handlers.restore(str(path), None)
    before, after = result["restored"]
    np.testing.assert_array_equal(before, image)
    assert after.shape == image.shape and after.dtype == np.uint8
    np.testing.assert_array_equal(load_image(result["download"]), after)  # the download is the exact PNG
    assert result["difference"].shape == image.shape and "x " in result["difference_info"]
    assert "no PSNR" in result["metrics"]


def test_restore_reports_tile_progress(handlers):
    handlers.pipeline.tile = 136  # force tiles (overlap 64) on a small image
    calls, descriptions = [], []

    def progress(value, desc=None):
        calls.append(value)
        descriptions.append(desc)
    try:
        out = handlers.restore(np.zeros((160, 200, 3), np.uint8), None, progress=progress)
    finally:
        handlers.pipeline.tile = 512
    assert "restored" in out, out
    assert calls and calls[-1][0] == calls[-1][1] > 1
    assert calls[0][0] == 0 and "about" in descriptions[0]  # a time estimate before the tiles start


def test_a_clean_looking_input_is_left_alone_until_restore_anyway(handlers):
    from lupi_core.atlas import bundled_image

    clean = bundled_image("astronaut", 64)  # a clean sample of the test atlas: read as clean
    kept = handlers.restore(clean, None)
    assert "left as it is" in kept["status"] and "Restore anyway" in kept["status"]
    np.testing.assert_array_equal(kept["restored"][1], clean)
    forced = handlers.restore(clean, None, force=True)
    assert forced["status"].startswith("Restored") and not np.array_equal(forced["restored"][1], clean)
    np.testing.assert_array_equal(handlers.restore(clean, None, strength=0.0, force=True)["restored"][1], clean)


def test_synthesize_knows_the_clean_original(handlers, photo):
    path, image = photo
    handlers_state = handlers.load_upload(str(path))
    out = handlers.synthesize("noise", 25, 3, handlers_state["input_state"], None)
    np.testing.assert_array_equal(out["clean_state"], image)
    assert out["input_image"].shape == image.shape and not np.array_equal(out["input_image"], image)
    again = handlers.synthesize("noise", 25, 3, out["input_state"], out["clean_state"])  # from the clean, not compounded
    np.testing.assert_array_equal(again["input_state"], out["input_state"])
    result = handlers.restore(out["input_state"], out["clean_state"])
    assert "PSNR" in result["metrics"] and "restored" in result["metrics"]
    for kind in ("rain", "haze", "blur", "lowlight", "mix"):
        assert handlers.synthesize(kind, 0.5, 0, image, None)["input_state"].shape == image.shape
    assert "load an image first" in handlers.synthesize("noise", 25, 0, None, None)["status"]


def test_severity_control_switches_units(handlers):
    assert handlers.severity_control("noise")["severity"]["maximum"] == 75
    assert handlers.severity_control("haze")["severity"]["maximum"] == 1


@pytest.mark.parametrize("content", [b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_bad_files_give_a_message_not_an_exception(handlers, tmp_path, content):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    for out in (handlers.load_upload(str(bad)), handlers.restore(str(bad), None)):
        assert set(out) == {"status"} and out["status"].startswith("⚠️")
    assert "no image" in handlers.load_upload(None)["status"]
    assert "error" in handlers.prior_report(str(bad))


def test_truncated_tiny_huge_and_odd_images(handlers, tmp_path):
    full = tmp_path / "full.jpg"
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(full, quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(full.read_bytes()[:300])
    assert handlers.load_upload(str(truncated))["status"].startswith("⚠️")
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((4, 30, 3), np.uint8)).save(tiny)
    assert "at least 8" in handlers.load_upload(str(tiny))["status"]
    huge = tmp_path / "huge.png"
    side = int(MAX_PIXELS ** 0.5) + 10
    Image.new("L", (side, side)).save(huge)  # only the header is read before refusing
    assert "MP limit" in handlers.load_upload(str(huge))["status"]
    gray16 = tmp_path / "gray16.png"
    Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(gray16)
    out = handlers.load_upload(str(gray16))
    assert out["input_state"].shape == (16, 16, 3) and "16-bit" in out["status"]
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.zeros((16, 16, 4), np.uint8)).save(rgba)
    out = handlers.load_upload(str(rgba))
    assert (out["input_state"] == 255).all() and "transparency" in out["status"]  # transparent -> white
    gif = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    assert "first frame" in handlers.load_upload(str(gif))["status"]
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(rotated, exif=exif)
    out = handlers.load_upload(str(rotated))
    assert out["input_state"].shape == (32, 16, 3) and "EXIF" in out["status"]


def test_examples_load_with_their_clean_original(handlers):
    assert handlers.examples, "assets/examples/index.json is missing: run python -m lupi_core examples"
    index = next(i for i, e in enumerate(handlers.examples) if e["kind"] == "noise")
    out = handlers.load_example(index)
    assert out["clean_state"] is not None and out["input_image"].endswith(".png")
    clean_example = next(i for i, e in enumerate(handlers.examples) if e["kind"] == "clean")
    assert handlers.load_example(clean_example)["clean_state"] is None


def test_prior_chart_has_512_bars(handlers, photo):
    out = handlers.load_upload(str(photo[0]))
    bars = [trace for trace in out["insp_prior_plot"].data if trace.type == "bar"]
    assert len(bars) == 1 and len(bars[0].y) == 512
    assert len(out["insp_prior_plot"].layout.annotations) == 8  # top-8 dims labelled by index
    report = handlers.prior_report(str(photo[0]))
    assert len(report["prior"]) == 512 and report["kind"] in handlers.atlas.kinds


def test_sigma_slider_changes_the_prior(handlers, photo):
    state = handlers.load_upload(str(photo[0]))
    low = handlers.inspect_sigma(state["insp_clean"], state["insp_curve"], 5)
    high = handlers.inspect_sigma(state["insp_clean"], state["insp_curve"], 60)
    assert not np.allclose(low["insp_sigma_prior"], high["insp_sigma_prior"])
    bar_low = next(t for t in low["insp_prior_plot"].data if t.type == "bar")
    bar_high = next(t for t in high["insp_prior_plot"].data if t.type == "bar")
    assert not np.allclose(bar_low.y, bar_high.y)
    assert high["insp_noisy"].shape == state["insp_clean"].shape
    assert any(abs(shape.x0 - 60) < 1e-9 for shape in high["insp_curve_plot"].layout.shapes)  # sigma marked
    assert "Load an image first" in handlers.inspect_sigma(None, None, 10)["insp_info"]
    restored = handlers.inspect_restore(state["insp_clean"], 30)
    assert restored["insp_result"][1].shape == state["insp_clean"].shape and "dB" in restored["insp_metrics"]


def test_map_click_loads_the_right_atlas_sample(handlers):
    atlas = handlers.atlas
    index = next(i for i, label in enumerate(atlas.labels) if label["kind"] == "noise" and label["sigma"] == 30.0)
    out = handlers.load_atlas_sample(index)
    degraded, clean = atlas.sample(index)
    np.testing.assert_array_equal(out["input_state"], degraded)
    np.testing.assert_array_equal(out["clean_state"], clean)
    np.testing.assert_allclose(out["prior_state"], atlas.priors[index], rtol=1e-4, atol=1e-5)
    assert out["selected_tab"] == "inspector" and f"#{index}" in out["map_info"]
    assert out["nn_table"][0][1] == index  # its own nearest neighbour
    assert "current image" in handlers.load_atlas_sample(-1)["map_info"]


def test_map_spec_has_every_sample_and_the_marker(handlers):
    atlas = handlers.atlas
    fig = charts.map_figure(atlas, "pca", "kind", marker=(0.0, 0.0))
    ids = sorted(i for trace in fig["data"] for i in trace["customdata"])
    assert ids == [-1] + list(range(len(atlas)))
    by_level = charts.map_figure(atlas, "umap", "level")
    assert len(by_level["data"][0]["x"]) == len(atlas)
    assert handlers.map_value("PCA", "level", atlas.priors[0]).startswith("{")


def test_privileged_vs_predicted_gap(handlers):
    out = handlers.load_example(next(i for i, e in enumerate(handlers.examples) if e["kind"] == "haze"))
    compared = handlers.compare_priors(out["input_state"], out["clean_state"])
    gap = compared["priv_gap"]
    assert gap["kl"] >= 0 and -1 <= gap["cosine"] <= 1 and gap["l1"] >= 0
    assert "KL" in compared["priv_info"] and "dB" in compared["priv_info"]
    assert compared["priv_teacher"].shape == out["input_state"].shape
    assert len(compared["priv_plot"].data) == 2
    assert handlers.compare_priors(out["input_state"], None)["priv_info"].startswith("⚠️")
    same = prior_gap(np.ones(512), np.ones(512))
    assert same["kl"] == pytest.approx(0, abs=1e-6) and same["cosine"] == pytest.approx(1) and same["l1"] == 0


def test_counterfactual_differs(handlers):
    out = handlers.load_example(next(i for i, e in enumerate(handlers.examples) if e["kind"] == "rain"))
    image, clean = out["input_state"], out["clean_state"]
    scaled = handlers.counterfactual(image, clean, "own prior, chosen dims scaled", "", -3)
    default, changed = scaled["cf_result"]
    assert scaled["cf_change"] > 0 and not np.array_equal(default, changed)
    other = handlers.counterfactual(image, clean, "atlas mean: haze", "", 1)
    assert other["cf_change"] > 0 and "haze" in other["cf_info"] and "PSNR" in other["cf_info"]
    assert handlers.counterfactual(image, clean, "own prior, chosen dims scaled", "999", 2)["cf_info"].startswith("⚠️")


def test_parse_dims_and_difference_gain():
    assert parse_dims("71, 128 #5", 512) == [5, 71, 128] and parse_dims("", 512) == []
    with pytest.raises(ValueError):
        parse_dims("abc", 512)
    a = np.zeros((8, 8, 3), np.uint8)
    b = a.copy()
    b[0, 0] = 4
    diff, gain = charts.difference_image(b, a)
    assert gain >= 1 and diff.max() == min(255, 4 * gain)


def test_app_builds_and_degrades_gracefully_without_atlas_or_teacher(tmp_path_factory, photo):
    import gradio as gr

    from demo.app import build_app

    student, _, atlas_path = shared_model_and_atlas(tmp_path_factory)
    bare = load_pretrained(student)
    assert isinstance(build_app(bare, None, []), gr.Blocks)
    assert isinstance(build_app(bare, Atlas.load(atlas_path)), gr.Blocks)  # the shipped examples
    plain = Handlers(bare, None, [], tmp_dir=tmp_path_factory.mktemp("bare"))
    out = plain.load_upload(str(photo[0]))
    assert out["prior_state"].shape == (512,) and "No atlas" in out["describe"]
    assert "no teacher" in plain.compare_priors(out["input_state"], out["input_state"])["priv_info"]
    assert "restored" in plain.restore(str(photo[0]), None)


def test_load_defaults_checks_the_atlas_matches_the_model(tmp_path_factory, capsys):
    from demo.app import load_defaults

    student, teacher, atlas_path = shared_model_and_atlas(tmp_path_factory)
    pipeline, atlas = load_defaults(student, teacher, atlas_path)
    assert atlas is not None and atlas.matches(pipeline) and pipeline.teacher is not None
    assert "another model" not in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        load_defaults(student, None, atlas_path.with_name("missing"))


def test_a_png_whose_header_claims_30000_squared_gets_a_message_naming_the_upload(handlers, tmp_path):
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = bytes(data[12:29])  # b"IHDR" + 13 bytes of header
    patched = b"IHDR" + struct.pack(">II", 30000, 30000) + ihdr[12:]
    data[12:29] = patched
    data[29:33] = struct.pack(">I", zlib.crc32(patched))
    upload = tmp_path / "cache-3f9a2c" / "bomb.png"
    upload.parent.mkdir()
    upload.write_bytes(bytes(data))
    for out in (handlers.load_upload(str(upload)), handlers.restore(str(upload), None),
                handlers.prior_report(str(upload))):
        message = json.dumps(out, default=str)
        assert "bomb.png" in message and "cache-3f9a2c" not in message and "limit" in message
