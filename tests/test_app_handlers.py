"""The app's tabs and their handlers as plain functions: no server, no browser."""
from __future__ import annotations

import io
import json

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from demo import charts
from demo.app import Tabs, prior_report
from demo.session import MAX_PIXELS, Session, describe_sentence
from demo.tabs.privileged import prior_gap
from demo.tabs.steer import parse_dims
from helpers import shared_model_and_atlas
from lupi_core.atlas import Atlas, bundled_image
from lupi_core.examples import load_index
from lupi_core.images import ImageError, load_image, quantize
from lupi_core.pipeline import load_pretrained


@pytest.fixture(scope="module")
def tabs(tmp_path_factory):
    student, teacher, atlas_path = shared_model_and_atlas(tmp_path_factory)
    pipeline = load_pretrained(student, teacher=teacher)
    tabs = Tabs(Session(pipeline, Atlas.load(atlas_path), load_index(), tmp_dir=tmp_path_factory.mktemp("app")))
    with gr.Blocks():  # the components, so that handler results can be matched to them
        for tab in tabs:
            tab.build()
    return tabs


@pytest.fixture()
def photo(tmp_path):
    rng = np.random.default_rng(0)
    image = (rng.random((40, 56, 3)) * 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    return path, image


def _example(tabs, kind):
    current, _ = tabs.session.example(next(i for i, e in enumerate(tabs.session.examples) if e["kind"] == kind))
    return current


def test_upload_then_restore_a_path(tabs, photo):
    path, image = photo
    current = tabs.restore.load_upload(str(path))
    np.testing.assert_array_equal(current.image, image)
    assert current.clean is None and current.prior.shape == (512,)
    shown = tabs.show(current)
    assert "What the model thinks" in shown[tabs.restore]["describe"]
    assert "Uploaded photo.png" in shown[tabs.restore]["status"]
    assert shown[tabs.atlas]["neighbour_table"][0][0] == 1
    result = tabs.restore.restore(str(path), current)
    before, after = result["restored"]
    np.testing.assert_array_equal(before, image)
    assert after.shape == image.shape and after.dtype == np.uint8
    np.testing.assert_array_equal(load_image(result["download"]), after)  # the download is the exact PNG
    assert result["difference"].shape == image.shape and "x " in result["difference_info"]
    assert "no PSNR" in result["metrics"]


def test_every_name_a_tab_fills_is_one_of_its_components(tabs, photo):
    current = tabs.restore.load_upload(str(photo[0]))
    for tab, values in tabs.show(current).items():
        assert set(values) <= set(tab.shown()), tab.title
        tab.updates(values)  # raises AttributeError for a name that is not a component


def test_restore_reports_tile_progress(tabs):
    tabs.session.pipeline.tile = 136  # force tiles (overlap 64) on a small image
    calls, descriptions = [], []

    def progress(value, desc=None):
        calls.append(value)
        descriptions.append(desc)
    try:
        out = tabs.restore.restore(np.zeros((160, 200, 3), np.uint8), None, progress=progress)
    finally:
        tabs.session.pipeline.tile = 512
    assert "restored" in out, out
    assert calls and calls[-1][0] == calls[-1][1] > 1
    assert calls[0][0] == 0 and "about" in descriptions[0]  # a time estimate before the tiles start


def test_a_clean_looking_input_is_left_alone_until_restore_anyway(tabs):
    clean = bundled_image("astronaut", 64)  # a clean sample of the test atlas: read as clean
    kept = tabs.restore.restore(clean, None)
    assert "left as it is" in kept["status"] and "Restore anyway" in kept["status"]
    np.testing.assert_array_equal(kept["restored"][1], clean)
    forced = tabs.restore.restore(clean, None, force=True)
    assert forced["status"].startswith("Restored") and not np.array_equal(forced["restored"][1], clean)
    np.testing.assert_array_equal(tabs.restore.restore(clean, None, strength=0.0, force=True)["restored"][1], clean)


def test_synthesize_knows_the_clean_original(tabs, photo):
    path, image = photo
    uploaded = tabs.restore.load_upload(str(path))
    noisy = tabs.restore.synthesize("noise", 25, 3, uploaded)
    np.testing.assert_array_equal(noisy.clean, image)
    assert noisy.image.shape == image.shape and not np.array_equal(noisy.image, image)
    assert (uploaded.kind, noisy.kind) == (None, "noise")  # an upload's degradation is unknown
    again = tabs.restore.synthesize("noise", 25, 3, noisy)  # from the clean original, not compounded
    np.testing.assert_array_equal(again.image, noisy.image)
    result = tabs.restore.restore(noisy.image, noisy)
    assert "PSNR" in result["metrics"] and "restored" in result["metrics"]
    for kind in ("rain", "haze", "blur", "lowlight", "mix"):
        assert tabs.restore.synthesize(kind, 0.5, 0, uploaded).image.shape == image.shape
    with pytest.raises(ValueError, match="load an image first"):
        tabs.restore.synthesize("noise", 25, 0, None)


def test_severity_control_switches_units(tabs):
    assert tabs.restore.severity_control("noise")["severity"]["maximum"] == 75
    assert tabs.restore.severity_control("haze")["severity"]["maximum"] == 1


@pytest.mark.parametrize("content", [b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_bad_files_give_a_message_not_an_exception(tabs, tmp_path, content):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    with pytest.raises(ImageError, match="bad.png"):
        tabs.restore.load_upload(str(bad))
    out = tabs.restore.restore(str(bad), None)
    assert set(out) == {"status"} and out["status"].startswith("⚠️") and "bad.png" in out["status"]
    with pytest.raises(ImageError, match="no image"):
        tabs.restore.load_upload(None)
    assert "error" in prior_report(tabs.session, str(bad))


def test_truncated_tiny_huge_and_odd_images(tabs, tmp_path):
    load = tabs.restore.load_upload
    full = tmp_path / "full.jpg"
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(full, quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(full.read_bytes()[:300])
    with pytest.raises(ImageError, match="truncated.jpg"):
        load(str(truncated))
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((4, 30, 3), np.uint8)).save(tiny)
    with pytest.raises(ImageError, match="at least 8"):
        load(str(tiny))
    huge = tmp_path / "huge.png"
    side = int(MAX_PIXELS ** 0.5) + 10
    Image.new("L", (side, side)).save(huge)  # only the header is read before refusing
    with pytest.raises(ImageError, match="MP limit"):
        load(str(huge))
    gray16 = tmp_path / "gray16.png"
    Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(gray16)
    current = load(str(gray16))
    assert current.image.shape == (16, 16, 3) and "16-bit" in current.note
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.zeros((16, 16, 4), np.uint8)).save(rgba)
    current = load(str(rgba))
    assert (current.image == 255).all() and "transparency" in current.note  # transparent -> white
    gif = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    assert "first frame" in load(str(gif)).note
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(rotated, exif=exif)
    current = load(str(rotated))
    assert current.image.shape == (32, 16, 3) and "EXIF" in current.note


def test_examples_load_with_their_clean_original(tabs):
    examples = tabs.session.examples
    assert examples, "assets/examples/index.json is missing: run python -m lupi_core examples"
    current, path = tabs.session.example(next(i for i, e in enumerate(examples) if e["kind"] == "noise"))
    assert current.clean is not None and path.endswith(".png")
    clean, _ = tabs.session.example(next(i for i, e in enumerate(examples) if e["kind"] == "clean"))
    assert clean.clean is None
    with pytest.raises(ImageError, match="no example"):
        tabs.session.example(len(examples))


def test_prior_chart_has_512_bars(tabs, photo):
    current = tabs.restore.load_upload(str(photo[0]))
    plot = figure(tabs.inspector.show(current)["prior_plot"])
    bars = [trace for trace in plot["data"] if trace["type"] == "bar"]
    assert len(bars) == 1 and len(bars[0]["y"]) == 512
    np.testing.assert_allclose(bars[0]["y"], current.prior, atol=6e-5)  # rounded to 4 digits for the page
    assert len(plot["layout"]["annotations"]) == 8  # top-8 dims labelled by index
    report = prior_report(tabs.session, str(photo[0]))
    assert len(report["prior"]) == 512 and report["kind"] in tabs.session.atlas.kinds


def figure(plot) -> dict:
    """A gr.Plot value (PlotData) as the Plotly figure dict the page draws."""
    return json.loads(plot.plot)


def _bars(plot) -> np.ndarray:
    return np.asarray(next(t for t in figure(plot)["data"] if t["type"] == "bar")["y"])


def test_sigma_slider_changes_the_prior(tabs, photo):
    inspector = tabs.inspector
    shown = inspector.show(tabs.restore.load_upload(str(photo[0])))
    low = inspector.on_sigma(shown["clean_copy"], shown["curve"], 5)
    high = inspector.on_sigma(shown["clean_copy"], shown["curve"], 60)
    np.testing.assert_allclose(_bars(high["prior_plot"]), tabs.session.pipeline.prior(high["noisy"]), atol=6e-5)
    assert not np.allclose(_bars(low["prior_plot"]), _bars(high["prior_plot"]))
    assert high["noisy"].shape == shown["clean_copy"].shape
    curve = figure(high["curve_plot"])
    assert any(abs(shape["x0"] - 60) < 1e-9 for shape in curve["layout"]["shapes"])  # sigma marked
    dims, rho = tabs.session.atlas.severity_dims("noise")
    names = [trace["name"] for trace in curve["data"] if trace.get("showlegend", True)]
    assert names == [f"#{d} (rho {r:+.2f})" for d, r in zip(dims, rho)]  # chosen by rho, labelled with it
    teacher = [t for t in curve["data"] if t.get("line", {}).get("dash") == "dash"]
    assert not teacher  # an uploaded image has no clean original: no d_T
    reading = figure(high["sigma_plot"])["data"]
    assert reading[0]["name"] == "truth" and len(reading[1]["y"]) == len(shown["curve"].sigmas)
    assert "Load an image first" in inspector.on_sigma(None, None, 10)["info"]
    restored = inspector.on_release(shown["clean_copy"], 30)
    assert restored["result"][1].shape == shown["clean_copy"].shape and "dB" in restored["metrics"]


def test_the_sigma_chart_says_why_a_reading_is_missing():
    sigmas = np.array([0.0, 30.0, 60.0])
    gaps = figure(charts.sigma_reading_chart(sigmas, [0.0, None, None]))
    assert gaps["data"][1]["y"] == [0.0, None, None]
    assert "no reading at 2 of 3 sigmas" in gaps["layout"]["title"]["text"]
    assert "no reading" not in figure(charts.sigma_reading_chart(sigmas, [0.0, 30.0, 50.0]))["layout"]["title"]["text"]


def test_figure_5b_shows_the_teacher_when_the_clean_original_is_known(tabs):
    current = _example(tabs, "noise")
    shown = tabs.inspector.show(current)
    curve = shown["curve"]
    assert curve.teacher is not None and curve.teacher.shape == curve.priors.shape
    expected = tabs.session.pipeline.privileged_prior(tabs.inspector.renoised(shown["clean_copy"], 30.0),
                                                      shown["clean_copy"])
    np.testing.assert_allclose(curve.teacher[list(curve.sigmas).index(30.0)], expected, rtol=1e-5, atol=1e-6)
    dashed = [t for t in figure(shown["curve_plot"])["data"] if t.get("line", {}).get("dash") == "dash"]
    assert len(dashed) == len(curve.dims)


def test_map_click_loads_the_right_atlas_sample(tabs):
    atlas = tabs.session.atlas
    index = next(i for i, label in enumerate(atlas.labels) if label["kind"] == "noise" and label["sigma"] == 30.0)
    current, shown_input = tabs.atlas.load_sample(index)
    degraded, clean = atlas.sample(index)
    np.testing.assert_array_equal(current.image, degraded)
    np.testing.assert_array_equal(shown_input, degraded)
    np.testing.assert_array_equal(current.clean, clean)
    np.testing.assert_allclose(current.prior, atlas.priors[index], rtol=1e-4, atol=1e-5)
    assert f"#{index}" in current.source and current.kind == "noise"
    assert tabs.atlas.show(current)["neighbour_table"][0][1] == index  # its own nearest neighbour
    with pytest.raises(IndexError, match="current image"):
        tabs.atlas.load_sample(-1)


def test_map_spec_has_every_sample_and_the_marker(tabs):
    atlas = tabs.session.atlas
    fig = charts.map_figure(atlas, "pca", "kind", marker=(0.0, 0.0))
    ids = sorted(i for trace in fig["data"] for i in trace["customdata"])
    assert ids == [-1] + list(range(len(atlas)))
    by_level = charts.map_figure(atlas, "umap", "level")
    assert len(by_level["data"][0]["x"]) == len(atlas)
    assert tabs.atlas.map_value("pca", "level", atlas.priors[0]).startswith("{")


def test_privileged_vs_predicted_gap(tabs):
    current = _example(tabs, "haze")
    compared = tabs.privileged.compare(current)
    gap = prior_gap(tabs.session.pipeline.privileged_prior(current.image, current.clean), current.prior)
    assert gap["kl"] >= 0 and -1 <= gap["cosine"] <= 1 and gap["l1"] >= 0
    assert f"**{gap['kl']:.4f}**" in compared["info"] and f"**{gap['l1']:.4f}**" in compared["info"] and "dB" in compared["info"]
    assert compared["with_teacher"].shape == current.image.shape
    assert len(compared["plot"].data) == 2
    uploaded = tabs.session.current(current.image, None, "no clean original")
    assert tabs.privileged.compare(uploaded)["info"].startswith("⚠️")
    same = prior_gap(np.ones(512), np.ones(512))
    assert same["kl"] == pytest.approx(0, abs=1e-6) and same["cosine"] == pytest.approx(1) and same["l1"] == 0


def test_a_direction_slider_restores_with_the_moved_prior(tabs):
    steer = tabs.steer
    current = _example(tabs, "rain")
    keys = [d.key for d in steer.directions]
    amounts = [0.0] * len(keys)
    assert "own prior" in steer.on_steer(current, *amounts)["change"].lower()
    amounts[keys.index("kind:haze")] = 1.5
    out = steer.on_steer(current, *amounts)
    own, edited = out["result"]
    haze = next(d for d in steer.directions if d.key == "kind:haze")
    np.testing.assert_allclose(out["edited"], current.prior + 1.5 * haze.vector, rtol=1e-5)
    expected = tabs.session.pipeline.restore_float(current.image, prior=out["edited"])
    np.testing.assert_array_equal(edited, quantize(expected))
    assert "+1.5 more haze" in out["change"] and "dB" in out["change"] and "clean original" in out["change"]
    assert tabs.steer.on_steer(None, *amounts)["change"].startswith("⚠️")


def test_the_gallery_shows_every_prior_with_its_psnr(tabs):
    current = _example(tabs, "rain")
    out = tabs.steer.on_gallery(current)
    captions = [caption for _, caption in out["gallery"]]
    assert len(captions) == 1 + len(tabs.session.atlas.kinds) and captions[0].startswith("own prior: ")
    assert all(" dB" in caption for caption in captions) and "worse than its own prior" in out["gallery_info"]
    assert "this rain image" in out["gallery_info"]  # the example's true kind, not what the atlas reads
    uploaded = tabs.session.current(current.image, None, "no clean original")
    assert "changed the restoration most" in tabs.steer.on_gallery(uploaded)["gallery_info"]


def test_scaling_chosen_dimensions_prefills_the_ones_that_matter(tabs):
    current = _example(tabs, "rain")
    shown = tabs.steer.show(current)
    dims = [int(d) for d in shown["dims"].split(",")]
    distance = np.abs(current.prior - tabs.session.atlas.kind_mean("clean"))
    assert sorted(dims) == sorted(np.argsort(-distance)[:5].tolist())
    scaled = tabs.steer.on_dims(current, "", -3)
    default, changed = scaled["result"]
    assert not np.array_equal(default, changed) and "PSNR" in scaled["dims_info"]
    assert tabs.steer.on_dims(current, "999", 2)["dims_info"].startswith("⚠️")


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
    from demo.app import build_app

    student, _, atlas_path = shared_model_and_atlas(tmp_path_factory)
    bare = load_pretrained(student)
    assert isinstance(build_app(bare, None, []), gr.Blocks)
    assert isinstance(build_app(bare, Atlas.load(atlas_path)), gr.Blocks)  # the shipped examples
    plain = Tabs(Session(bare, None, [], tmp_dir=tmp_path_factory.mktemp("bare")))
    current = plain.restore.load_upload(str(photo[0]))
    assert current.prior.shape == (512,) and "No atlas" in plain.restore.show(current)["describe"]
    assert plain.atlas.show(current) == {} and plain.atlas.shown() == []
    with_clean = plain.session.current(current.image, current.image, "test")
    assert "no teacher" in plain.privileged.compare(with_clean)["info"]
    assert "restored" in plain.restore.restore(str(photo[0]), None)


def test_load_defaults_checks_the_atlas_matches_the_model(tmp_path_factory, capsys):
    from demo.app import load_defaults

    student, teacher, atlas_path = shared_model_and_atlas(tmp_path_factory)
    pipeline, atlas = load_defaults(student, teacher, atlas_path)
    assert atlas is not None and atlas.matches(pipeline) and pipeline.teacher is not None
    assert "another model" not in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        load_defaults(student, None, atlas_path.with_name("missing"))


def test_a_png_whose_header_claims_30000_squared_gets_a_message_naming_the_upload(tabs, tmp_path):
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
    with pytest.raises(ImageError) as raised:
        tabs.restore.load_upload(str(upload))
    for message in (str(raised.value), json.dumps(tabs.restore.restore(str(upload), None)),
                    json.dumps(prior_report(tabs.session, str(upload)))):
        assert "bomb.png" in message and "cache-3f9a2c" not in message and "limit" in message


def test_the_tour_measures_each_step_on_the_loaded_model(tabs):
    from demo.tabs.learn import STEPS

    sentences = tabs.learn.measure()
    assert list(sentences) == [f"result_{k}" for k in range(len(STEPS))]
    assert all("dB" in sentences[f"result_{k}"] for k in (0, 4)) and "%" in sentences["result_1"]
    assert "nearest atlas samples" in sentences["result_2"]
    current, path = tabs.learn.step_example(3)
    assert path.endswith("rocket_rain.png") and current.clean is not None


def test_the_tour_says_so_when_the_prior_has_no_effect(tmp_path_factory):
    from helpers import deaf_to_prior

    student, teacher, atlas_path = shared_model_and_atlas(tmp_path_factory)
    pipeline = load_pretrained(student, teacher=teacher)
    deaf_to_prior(pipeline)
    learn = Tabs(Session(pipeline, Atlas.load(atlas_path), load_index(), tmp_dir=tmp_path_factory.mktemp("deaf"))).learn
    assert "no measurable effect" in learn.measure()["result_3"]


def test_a_reading_without_a_majority_says_it_is_unsure_and_how_the_neighbours_split():
    def reading(*kinds):
        return {"kind": kinds[0], "text": f"{kinds[0]}, level ~ 0.80 (strong)",
                "neighbours": [({"kind": kind}, 0.1 * (i + 1)) for i, kind in enumerate(kinds)]}

    sure = describe_sentence(reading("noise", "noise", "noise", "noise", "rain", "rain", "mix"))
    assert sure.startswith("Looks like **noise") and "4 of the 7 nearest atlas samples agree" in sure
    unsure = describe_sentence(reading("rain", "noise", "rain", "noise", "rain", "mix", "noise"))
    assert unsure.startswith("Unsure") and "split 3 rain, 3 noise, 1 mix" in unsure and "**rain" in unsure
