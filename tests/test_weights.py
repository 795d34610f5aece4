"""Weights files: round trips, self-describing metadata, and clear errors that
name the file for every way a file can be wrong. Nothing is ever unpickled."""
import json
import os
import pickle

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lupi_core import weights as weights_module
from lupi_core.config import ModelConfig
from lupi_core.models import StudentSystem, TeacherSystem, build_student, build_teacher
from lupi_core.weights import FORMAT, WeightsError, load_model, model_info, read_metadata, save_model

TINY = ModelConfig.preset("tiny")


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-default values everywhere (the DBs start at zero), so a round trip proves something."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return model


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture
def student_file(tmp_path):
    model = _randomise(build_student(TINY))
    return model, save_model(model, tmp_path / "student.safetensors", info={"steps": 7})


# -- round trips --------------------------------------------------------------------------
def test_student_round_trip(student_file):
    model, path = student_file
    loaded = load_model(path)
    assert isinstance(loaded, StudentSystem) and loaded.has_predictor
    assert loaded.cfg == TINY
    assert not loaded.training  # ready for inference
    _assert_same_state(model, loaded)
    image = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.eval()(image)[0], loaded(image)[0])


def test_teacher_round_trip(tmp_path):
    cfg = TINY.replace(estimator_design="concat")
    model = _randomise(build_teacher(cfg), seed=1)
    path = save_model(model, tmp_path / "teacher.safetensors")
    loaded = load_model(path, kind="teacher")
    assert isinstance(loaded, TeacherSystem) and loaded.cfg == cfg
    assert loaded.estimator.design == "concat"
    _assert_same_state(model, loaded)


def test_backbone_student_round_trip(tmp_path):
    model = _randomise(build_student(TINY, with_predictor=False), seed=2)
    path = save_model(model, tmp_path / "backbone.safetensors")
    loaded = load_model(path, kind="student", preset="tiny")
    assert not loaded.has_predictor and len(loaded.restorer.dbs) == 0
    _assert_same_state(model, loaded)


def test_half_precision_save_loads_close(tmp_path, student_file):
    model, full_path = student_file
    half_path = save_model(model, tmp_path / "half.safetensors", half=True)
    with safe_open(str(half_path), framework="pt") as handle:
        assert all(handle.get_tensor(k).dtype == torch.float16 for k in handle.keys())
    assert os.path.getsize(half_path) < 0.6 * os.path.getsize(full_path)
    loaded = load_model(half_path)
    original = model.state_dict()
    differs = False
    for key, value in loaded.state_dict().items():
        assert value.dtype == torch.float32  # computed in float32 after loading
        torch.testing.assert_close(value, original[key], rtol=1e-3, atol=1e-4)
        differs |= not torch.equal(value, original[key])
    assert differs  # it really was rounded to fp16


# -- metadata -------------------------------------------------------------------------------
def test_metadata_carries_config_and_info(student_file):
    _, path = student_file
    metadata = read_metadata(path)
    assert metadata["format"] == FORMAT
    assert metadata["kind"] == "student"
    assert ModelConfig.from_json(metadata["config"]) == TINY
    assert json.loads(metadata["with_predictor"]) is True
    assert model_info(path) == {"steps": 7}


def test_file_alone_rebuilds_a_custom_config(tmp_path):
    cfg = TINY.replace(db_sites=("decoder1", "refinement"), db_mlp_hidden=16)
    model = _randomise(build_student(cfg), seed=3)
    path = save_model(model, tmp_path / "custom.safetensors")
    loaded = load_model(path)  # no config passed: it comes from the file
    assert loaded.cfg == cfg and set(loaded.restorer.dbs) == {"decoder1", "refinement"}
    _assert_same_state(model, loaded)


def test_save_is_atomic_and_leaves_no_temporary(tmp_path, student_file):
    model, _ = student_file
    path = save_model(model, tmp_path / "deep" / "dir" / "w.safetensors")
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["w.safetensors"]


# -- failures name the file -------------------------------------------------------------------
def _expect_error(path, match=None, **kwargs):
    with pytest.raises(WeightsError) as info:
        load_model(path, **kwargs)
    message = str(info.value)
    assert path.name in message
    if match:
        assert match in message, message
    return message


def test_truncated_file(tmp_path, student_file):
    _, path = student_file
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 20):
        bad = tmp_path / f"truncated_{cut}.safetensors"
        bad.write_bytes(data[:cut])
        _expect_error(bad)


def test_random_bytes(tmp_path):
    bad = tmp_path / "noise.safetensors"
    bad.write_bytes(os.urandom(4096))
    _expect_error(bad, "not a readable safetensors file")


def test_empty_file(tmp_path):
    bad = tmp_path / "empty.safetensors"
    bad.write_bytes(b"")
    _expect_error(bad)


def test_non_lupi_safetensors(tmp_path):
    plain = tmp_path / "someone_elses.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, str(plain))
    _expect_error(plain, "not a LUPI weights file")
    other = tmp_path / "other_format.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, str(other), metadata={"format": "diffusers"})
    _expect_error(other, "not a LUPI weights file")


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nowhere.safetensors", "not found")


def test_wrong_kind(tmp_path, student_file):
    _, path = student_file
    _expect_error(path, "teacher", kind="teacher")
    teacher_path = save_model(build_teacher(TINY), tmp_path / "t.safetensors")
    _expect_error(teacher_path, "student", kind="student")


def test_wrong_preset(student_file):
    _, path = student_file
    message = _expect_error(path, "small", preset="small")
    assert "tiny" in message  # says what the file holds
    assert load_model(path, preset="tiny").cfg == TINY


def test_tensors_that_do_not_match_the_config(tmp_path):
    # A file whose metadata says one config while its tensors belong to another.
    small_tensors = {k: v.contiguous() for k, v in build_student(TINY.replace(dim=16)).state_dict().items()}
    bad = tmp_path / "mismatch.safetensors"
    save_file(small_tensors, str(bad), metadata={"format": FORMAT, "kind": "student", "config": TINY.to_json(),
                                                 "with_predictor": "true", "info": "{}"})
    _expect_error(bad, "do not match")


def test_invalid_config_metadata(tmp_path):
    bad = tmp_path / "badconfig.safetensors"
    raw = json.loads(TINY.to_json())
    raw["estimator_design"] = "triplet"
    save_file({"w": torch.zeros(1)}, str(bad), metadata={"format": FORMAT, "kind": "student",
                                                         "config": json.dumps(raw)})
    _expect_error(bad, "config")


@pytest.fixture()
def no_unpickling(monkeypatch):
    """Every route to unpickling raises while the test runs."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("weights loading must never unpickle")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)


def test_a_pickle_is_rejected_not_unpickled(tmp_path, no_unpickling):
    pickled = tmp_path / "pickled.safetensors"
    torch.save(build_student(TINY).state_dict(), pickled)  # saving pickles; only loading is refused
    _expect_error(pickled, "not a readable safetensors file")


def test_loading_never_unpickles(student_file, no_unpickling):
    _, path = student_file
    assert load_model(path).cfg == TINY
    # And the module has no route to pickle or torch.load at all.
    source = open(weights_module.__file__).read()
    assert "torch.load" not in source and "import pickle" not in source
