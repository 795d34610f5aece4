"""The running app, driven over HTTP with gradio_client: the named API endpoints
(/restore, /prior, /load_image + /prior_at_sigma in one session)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from gradio_client import Client, handle_file  # noqa: E402

from helpers import serve, shared_model_and_atlas  # noqa: E402
from lupi_core.atlas import Atlas  # noqa: E402
from lupi_core.pipeline import load_pretrained  # noqa: E402


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    student, teacher, atlas_path = shared_model_and_atlas(tmp_path_factory)
    yield from serve(load_pretrained(student, teacher=teacher), Atlas.load(atlas_path))


@pytest.fixture(scope="module")
def client(url):
    return Client(url, verbose=False)


@pytest.fixture()
def photo(tmp_path):
    image = (np.random.default_rng(1).random((48, 64, 3)) * 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    return path, image


def test_named_endpoints_exist(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/restore", "/prior", "/gallery", "/load_image", "/prior_at_sigma", "/synthesize", "/atlas_select"} <= names


def test_gallery_endpoint(client, photo):
    report = client.predict(handle_file(str(photo[0])), api_name="/gallery")
    report = json.loads(report) if isinstance(report, str) else report
    names = [row["prior"] for row in report["restorations"]]
    assert names[0] == "own prior" and "clean mean" in names and report["restorations"][0]["mean_change"] == 0
    assert "changed the restoration most" in report["sentence"]


def test_restore_endpoint(client, photo):
    path, image = photo
    slider, difference, difference_info, download, metrics, status, describe = client.predict(
        handle_file(str(path)), api_name="/restore")
    before, after = (np.asarray(Image.open(item if isinstance(item, str) else item["path"])) for item in slider)
    np.testing.assert_array_equal(before[..., :3], image)  # lossless PNG, not WebP
    assert after.shape[:2] == image.shape[:2]
    assert str(download).endswith(".png") and Image.open(download).size == (64, 48)
    assert "Restored 64 x 48" in status and "What the model thinks" in describe


def test_prior_endpoint(client, photo):
    report = client.predict(handle_file(str(photo[0])), api_name="/prior")
    report = json.loads(report) if isinstance(report, str) else report
    assert len(report["prior"]) == 512 and report["width"] == 64 and "description" in report
    bad = photo[0].with_name("bad.png")
    bad.write_bytes(b"garbage")
    assert "error" in client.predict(handle_file(str(bad)), api_name="/prior")


def test_prior_at_sigma_in_a_session(url, photo):
    session = Client(url, verbose=False)
    loaded = session.predict(handle_file(str(photo[0])), api_name="/load_image")
    assert any("photo.png" in str(item) for item in loaded)
    low = session.predict(5, api_name="/prior_at_sigma")
    high = session.predict(60, api_name="/prior_at_sigma")
    low_info, high_info = low[-1], high[-1]
    assert low_info.startswith("Sigma 5") and high_info.startswith("Sigma 60")
    low_plot, high_plot = (json.loads(r[0]["plot"]) if isinstance(r[0], dict) else r[0] for r in (low, high))
    assert low_plot != high_plot


def odd_files(folder):
    """The 17 bad and odd uploads of issue #20: {file: True when it must give a prior}."""
    import io
    import struct
    import zlib

    photo = (np.random.default_rng(2).random((40, 60, 3)) * 255).astype(np.uint8)
    files = {}

    def save(name, readable, write):
        path = folder / name
        write(path)
        files[path] = readable

    save("text.png", False, lambda p: p.write_text("not an image"))
    save("empty.png", False, lambda p: p.write_bytes(b""))
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG")
    save("truncated.jpg", False, lambda p: p.write_bytes(buffer.getvalue()[:200]))
    save("one.png", False, lambda p: Image.new("RGB", (1, 1)).save(p))
    save("thin.png", False, lambda p: Image.new("RGB", (5000, 3)).save(p))
    save("20mp.png", False, lambda p: Image.new("L", (5000, 4000)).save(p))  # above the 16 MP limit
    header = io.BytesIO()
    Image.new("RGB", (1, 1)).save(header, format="PNG")
    data = bytearray(header.getvalue())
    patched = b"IHDR" + struct.pack(">II", 30000, 30000) + bytes(data[24:29])
    data[12:29], data[29:33] = patched, struct.pack(">I", zlib.crc32(patched))
    save("bomb.png", False, lambda p: p.write_bytes(bytes(data)))
    save("drawing.svg", False, lambda p: p.write_text('<svg xmlns="http://www.w3.org/2000/svg"/>'))
    frames = [Image.fromarray(photo), Image.fromarray(photo[::-1].copy())]
    save("anim.gif", True, lambda p: frames[0].save(p, save_all=True, append_images=frames[1:]))
    save("gray.png", True, lambda p: Image.fromarray(photo[..., 0]).save(p))
    save("rgba.png", True, lambda p: Image.fromarray(np.dstack([photo, photo[..., :1]])).save(p))
    save("deep.png", True, lambda p: Image.fromarray(photo[..., 0].astype(np.uint16) * 257).save(p))
    save("cmyk.jpg", True, lambda p: Image.fromarray(photo).convert("CMYK").save(p))
    exif = Image.Exif()
    exif[0x0112] = 6
    save("rotated.jpg", True, lambda p: Image.fromarray(photo).save(p, exif=exif))
    save("png-named.jpg", True, lambda p: Image.fromarray(photo).save(p, format="PNG"))
    save("photo.webp", True, lambda p: Image.fromarray(photo).save(p, format="WEBP"))
    save("photo.bmp", True, lambda p: Image.fromarray(photo).save(p))
    return files


def test_seventeen_odd_uploads_each_get_a_prior_or_a_message_naming_them(client, photo, tmp_path):
    files = odd_files(tmp_path)
    assert len(files) == 17
    for path, readable in files.items():
        report = client.predict(handle_file(str(path)), api_name="/prior")
        report = json.loads(report) if isinstance(report, str) else report
        if readable:
            assert len(report.get("prior", [])) == 512, (path.name, report)
        else:
            error = report["error"]
            assert path.name in error and "/tmp/" not in error and "gradio" not in error.lower(), (path.name, error)
    assert len(client.predict(handle_file(str(photo[0])), api_name="/prior")["prior"]) == 512  # still up
