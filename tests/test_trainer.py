"""Training: the schedule, the data sharding, the two stages of section 3.3 and the
ablation modes, exact resumption after SIGKILL, and DistributedDataParallel."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
import torch.multiprocessing as mp
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from helpers import free_port, write
from lupi_core import losses
from lupi_core import trainer as trainer_module
from lupi_core.config import ModelConfig
from lupi_core.data import STAGE2_DRAWS, FolderPairs, SyntheticPairs, TaskMixture
from lupi_core.models import build_student, build_teacher
from lupi_core.prior import DegradationPredictor, PrivilegedEstimator
from lupi_core.trainer import (
    OBJECTIVES,
    SampleIndices,
    TrainConfig,
    Trainer,
    WeightAverage,
    centre_crop,
    contrast_labels,
    learning_rate,
    restorer_batch,
    validation_patches,
)
from lupi_core.weights import load_model, model_info

ROOT = Path(__file__).resolve().parent.parent
TINY = ModelConfig.preset("tiny")


# -- a small denoising dataset of the shape lupi_core.data produces ----------------------------
class NoisyPhotos(Dataset):
    """Item i: a patch of a photograph plus Gaussian noise (sigma 0-50), a pure function of i."""

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]

    def __init__(self, patch_size: int = 32, record: list | None = None):
        self.patch_size, self.record = patch_size, record

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, index: int) -> dict:
        if self.record is not None:
            self.record.append(int(index))
        rng = np.random.default_rng(index)
        photo = self.photos[rng.integers(len(self.photos))]
        y = rng.integers(photo.shape[0] - self.patch_size)
        x = rng.integers(photo.shape[1] - self.patch_size)
        clean = photo[y:y + self.patch_size, x:x + self.patch_size].astype(np.float32) / 255.0
        sigma = rng.uniform(0, 50) / 255.0
        degraded = np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 1).astype(np.float32)
        to_chw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))  # noqa: E731
        return {"degraded": to_chw(degraded), "clean": to_chw(clean), "task": "denoise"}


class TwoTasks(NoisyPhotos):
    """NoisyPhotos labelled with two alternating tasks, for the terms that compare tasks in a batch."""

    def __getitem__(self, index):
        return {**super().__getitem__(index), "task": "denoise" if index % 2 else "other"}


class GradedNoise(NoisyPhotos):
    """NoisyPhotos with a severity per item, as lupi_core.data's synthetic pairs carry one."""

    def __getitem__(self, index):
        return {**super().__getitem__(index), "severity": (index % 4) / 4}


def _config(out_dir, **overrides) -> TrainConfig:
    values = dict(out_dir=out_dir, preset="tiny", stage1_steps=3, stage2_steps=3, batch_size=2, lr=1e-3,
                  warmup_steps=2, checkpoint_every=1000, log_every=1, device="cpu", progress=False)
    values.update(overrides)
    return TrainConfig(**values)


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    differing = [key for key in a if not torch.equal(a[key], b[key])]
    assert not differing, f"{len(differing)} of {len(a)} tensors differ, e.g. {differing[:3]}"


# -- schedule and sharding ------------------------------------------------------------------------
def test_learning_rate_warmup_then_cosine_to_zero():
    total, peak, warmup = 100, 2e-4, 10
    lrs = [learning_rate(s, total, peak, warmup) for s in range(total + 1)]
    assert lrs[0] == pytest.approx(peak / warmup)
    assert all(a < b for a, b in zip(lrs[:warmup], lrs[1:warmup]))  # rising during warm-up
    assert max(lrs) == pytest.approx(peak)
    assert lrs[warmup] == pytest.approx(peak)  # the peak right after warm-up
    assert all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1:]))  # then only decaying
    assert lrs[total] == pytest.approx(0.0, abs=1e-12)  # zero at the end
    assert lrs[warmup + (total - warmup) // 2] == pytest.approx(peak / 2)  # cosine: half-way is half
    assert learning_rate(total + 50, total, peak, warmup) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(0, 10, 1.0, 0) == pytest.approx(1.0)  # no warm-up: starts at the peak


def test_sample_indices_are_disjoint_across_ranks_and_steps():
    batch, world, steps = 3, 4, 5
    seen = {}
    for rank in range(world):
        it = iter(SampleIndices(0, batch, rank, world, offset=1000))
        seen[rank] = [[next(it) for _ in range(batch)] for _ in range(steps)]
    flat = [i for rank in seen.values() for step in rank for i in step]
    assert len(flat) == len(set(flat)) == batch * world * steps
    assert sorted(flat) == list(range(1000, 1000 + batch * world * steps))  # nothing skipped either
    # Starting at step 2 continues exactly where step 2 of a fresh run would be.
    resumed = iter(SampleIndices(2, batch, 1, world, offset=1000))
    assert [next(resumed) for _ in range(batch * 3)] == [i for step in seen[1][2:] for i in step]


def test_validation_patches_come_from_outside_the_training_draws():
    record = []
    pairs = validation_patches(NoisyPhotos(16, record), 2)
    assert len(pairs) == 2 and len(record) == 2 and min(record) >= 10**13
    degraded, clean = pairs[0]
    assert degraded.dtype == clean.dtype == np.uint8 and degraded.shape == clean.shape == (16, 16, 3)


def test_train_config_validation(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        _config(tmp_path, mode="distill")
    cfg = _config(tmp_path, align={"form": "l1", "temperature": 1.0, "weight": 0.5})
    assert cfg.align.form == "l1" and cfg.model_config() == TINY
    assert json.loads(cfg.to_json())["out_dir"] == str(tmp_path)


def test_an_objective_sets_its_fields_and_an_explicit_field_wins(tmp_path):
    paper = _config(tmp_path)
    assert (paper.objective, paper.db_film_init, paper.wrong_prior_weight, paper.contrast_weight) == \
        ("paper", "zero", 0.0, 0.0)
    steer = _config(tmp_path, objective="steer")
    assert {name: getattr(steer, name) for name in OBJECTIVES["steer"]} == OBJECTIVES["steer"]
    assert steer.model_config().db_film_init == "random"
    assert _config(tmp_path, objective="steer", wrong_prior_weight=0.0).wrong_prior_weight == 0.0
    with pytest.raises(ValueError, match="objective"):
        _config(tmp_path, objective="best")


# -- the two-stage LUPI run -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lupi_run(tmp_path_factory):
    """Stage 1 and Stage 2 of the tiny preset, watching the teacher file, the frozen D_T and the
    optimizers as they go."""
    out = tmp_path_factory.mktemp("lupi")
    cfg = _config(out, stage1_steps=30, stage2_steps=30, batch_size=4, warmup_steps=3, checkpoint_every=10)
    seen = {"optimizers": [], "teachers": [], "teacher_digest": {}}

    class RecordingAdamW(torch.optim.AdamW):
        def __init__(self, params, *args, **kwargs):
            params = list(params)
            seen["optimizers"].append({id(p) for p in params})
            super().__init__(params, *args, **kwargs)

    original_load, original_run_stage = trainer_module.load_model, Trainer._run_stage

    def recording_load(*args, **kwargs):
        model = original_load(*args, **kwargs)
        seen["teachers"].append(model)
        return model

    def recording_run_stage(self, stage):
        path = original_run_stage(self, stage)
        if stage.name == "stage1":
            seen["teacher_digest"]["after stage 1"] = _digest(path)
        return path

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.optim, "AdamW", RecordingAdamW)
        patch.setattr(trainer_module, "load_model", recording_load)
        patch.setattr(Trainer, "_run_stage", recording_run_stage)
        outputs = Trainer(cfg, NoisyPhotos(32)).run()
    seen["teacher_digest"]["at the end"] = _digest(outputs["teacher"])
    return out, outputs, seen


def test_lupi_run_writes_both_models(lupi_run):
    out, outputs, _ = lupi_run
    assert outputs == {"teacher": out / "teacher.safetensors", "student": out / "student.safetensors"}
    teacher, student = load_model(outputs["teacher"], kind="teacher"), load_model(outputs["student"], kind="student")
    assert teacher.cfg == student.cfg == TINY and student.has_predictor
    assert model_info(outputs["student"])["steps"] == 30 and model_info(outputs["student"])["mode"] == "lupi"
    assert json.loads((out / "train_config.json").read_text())["stage1_steps"] == 30


def test_stage1_l1_falls(lupi_run):
    out, _, _ = lupi_run
    log = _log(out / "stage1_log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 31))
    l1 = [r["l1"] for r in log]
    assert np.mean(l1[-5:]) < 0.85 * np.mean(l1[:5]), l1
    # The step-s update used learning_rate(s - 1): the peak right after warm-up, near zero at the end.
    assert [r["lr"] for r in log] == pytest.approx([learning_rate(s, 30, 1e-3, 3) for s in range(30)])
    assert max(r["lr"] for r in log) == pytest.approx(1e-3) == log[3]["lr"]
    assert log[-1]["lr"] < 0.01 * 1e-3


def test_stage2_alignment_falls(lupi_run):
    out, _, _ = lupi_run
    log = _log(out / "stage2_log.jsonl")
    assert len(log) == 30 and all({"l1", "align", "loss"} <= set(r) for r in log)
    align = [r["align"] for r in log]
    assert np.mean(align[-5:]) < 0.7 * np.mean(align[:5]), align
    for r in log:  # eq. 4 with lambda_align = 1
        assert r["loss"] == pytest.approx(r["l1"] + r["align"], abs=2e-5)


def test_teacher_estimator_is_frozen_in_stage2(lupi_run):
    out, outputs, seen = lupi_run
    digests = seen["teacher_digest"]
    assert digests["after stage 1"] == digests["at the end"]  # teacher.safetensors untouched
    assert len(seen["teachers"]) == 1
    estimator = seen["teachers"][0].estimator  # the very D_T stage 2 used
    assert not any(p.requires_grad for p in estimator.parameters())
    stage1_params, stage2_params = seen["optimizers"]
    assert not ({id(p) for p in estimator.parameters()} & stage2_params)  # not optimised
    assert len(stage2_params) == len(list(build_student(TINY).parameters()))  # the whole student is
    # After 30 steps of stage 2 its weights are still the ones stage 1 saved.
    _assert_same_tensors(estimator.state_dict(), load_model(outputs["teacher"]).estimator.state_dict())


def test_stage_checkpoints_hold_the_final_step(lupi_run):
    out, _, _ = lupi_run
    for stage, steps in (("stage1", 30), ("stage2", 30)):
        state = torch.load(out / "checkpoints" / f"{stage}.pt", weights_only=True)
        assert state["step"] == steps


def test_a_finished_run_is_not_retrained(lupi_run):
    out, outputs, _ = lupi_run
    before = {name: _digest(path) for name, path in outputs.items()}
    again = Trainer(_config(out, stage1_steps=30, stage2_steps=30, batch_size=4, warmup_steps=3,
                            checkpoint_every=10), NoisyPhotos(32))
    assert {k: _digest(v) for k, v in again.run().items()} == before


def test_student_from_teacher_copies_r_t(lupi_run, tmp_path):
    out, outputs, _ = lupi_run
    (tmp_path / "teacher.safetensors").write_bytes(outputs["teacher"].read_bytes())
    teacher_restorer = load_model(outputs["teacher"]).restorer.state_dict()
    copied = Trainer(_config(tmp_path, student_from_teacher=True), NoisyPhotos(32))._stage2()
    _assert_same_tensors(copied.model.restorer.state_dict(), teacher_restorer)
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "teacher.safetensors").write_bytes(outputs["teacher"].read_bytes())
    fresh = Trainer(_config(tmp_path / "fresh", student_from_teacher=False), NoisyPhotos(32))._stage2()
    differing = [k for k, v in fresh.model.restorer.state_dict().items() if not torch.equal(v, teacher_restorer[k])]
    assert differing  # without the flag R_S starts afresh


def test_predictor_only_trains_d_s_through_the_frozen_r_t(lupi_run, tmp_path):
    earlier, outputs, _ = lupi_run
    cfg = _config(tmp_path, stage1_steps=0, stage2_steps=4, batch_size=4, init_from=earlier, predictor_only=True)
    trainer = Trainer(cfg, NoisyPhotos(32))
    trainer.run()
    student, teacher = load_model(tmp_path / "student.safetensors"), load_model(outputs["teacher"])
    _assert_same_tensors(student.restorer.state_dict(), teacher.restorer.state_dict())  # R_T, untouched
    started_from = load_model(outputs["student"]).predictor.state_dict()
    assert any(not torch.equal(v, started_from[k]) for k, v in student.predictor.state_dict().items())
    assert {"l1", "align"} <= set(_log(tmp_path / "stage2_log.jsonl")[-1])
    with pytest.raises(ValueError, match="needs mode lupi"):
        _config(tmp_path / "ablation", mode="no-privileged", predictor_only=True)


def test_freeze_restorer_retrains_d_s_alone_and_keeps_r_s_as_it_started(lupi_run, tmp_path):
    earlier, outputs, _ = lupi_run
    cfg = _config(tmp_path, stage1_steps=0, stage2_steps=4, batch_size=4, init_from=earlier, freeze_restorer=True)
    Trainer(cfg, NoisyPhotos(32)).run()
    student, started_from = load_model(tmp_path / "student.safetensors"), load_model(outputs["student"])
    _assert_same_tensors(student.restorer.state_dict(), started_from.restorer.state_dict())  # R_S, untouched
    before = started_from.predictor.state_dict()
    assert any(not torch.equal(v, before[k]) for k, v in student.predictor.state_dict().items())


def test_init_from_warm_starts_both_stages_with_a_fresh_schedule(lupi_run, tmp_path):
    earlier, outputs, _ = lupi_run
    cfg = _config(tmp_path, stage1_steps=0, stage2_steps=4, batch_size=4, warmup_steps=2, init_from=earlier)
    trainer = Trainer(cfg, NoisyPhotos(32))
    _assert_same_tensors(trainer._stage1().model.state_dict(), load_model(outputs["teacher"]).state_dict())
    (tmp_path / "teacher.safetensors").write_bytes(outputs["teacher"].read_bytes())
    _assert_same_tensors(trainer._stage2().model.state_dict(), load_model(outputs["student"]).state_dict())
    trainer.run()
    assert model_info(tmp_path / "student.safetensors")["init_from"] == str(earlier)
    log = _log(tmp_path / "stage2_log.jsonl")
    assert [r["lr"] for r in log] == pytest.approx([learning_rate(s, 4, 1e-3, 2) for s in range(4)])
    with pytest.raises(ValueError, match="different architecture"):
        Trainer(_config(tmp_path / "other", init_from=earlier, preset="small"), NoisyPhotos(32))._stage1()
    # The steer objective's random FiLM init is a starting point, which warm-started weights replace.
    steer = Trainer(_config(tmp_path / "steer", stage1_steps=0, init_from=earlier, objective="steer"), NoisyPhotos(32))
    _assert_same_tensors(steer._stage1().model.state_dict(), load_model(outputs["teacher"]).state_dict())
    # A tone head the earlier model lacks starts at the identity beside its weights.
    toned = Trainer(_config(tmp_path / "toned", stage1_steps=0, init_from=earlier, tone_head=True), NoisyPhotos(32))
    teacher = toned._stage1().model.state_dict()
    added = [key for key in teacher if ".tone." in key]
    assert added and not teacher[added[-1]].any()
    _assert_same_tensors({k: v for k, v in teacher.items() if k not in added}, load_model(outputs["teacher"]).state_dict())
    toned.run()  # and a model with one does not warm-start one without it
    with pytest.raises(ValueError, match="different architecture"):
        Trainer(_config(tmp_path / "untoned", init_from=tmp_path / "toned"), NoisyPhotos(32))._stage1()


def test_init_from_reads_exported_weights(lupi_run, tmp_path):
    """A folder like assets/ (NAME-teacher / NAME-student, as `export` writes them) warm-starts too."""
    _, outputs, _ = lupi_run
    exported = tmp_path / "exported"
    exported.mkdir()
    for kind in ("teacher", "student"):
        (exported / f"mine-{kind}.safetensors").write_bytes(outputs[kind].read_bytes())
    trainer = Trainer(_config(tmp_path / "run", stage1_steps=0, init_from=exported), NoisyPhotos(32))
    _assert_same_tensors(trainer._stage1().model.state_dict(), load_model(outputs["teacher"]).state_dict())
    (exported / "other-teacher.safetensors").write_bytes(outputs["teacher"].read_bytes())
    with pytest.raises(FileNotFoundError, match="found 2 files named"):
        trainer._stage1()
    with pytest.raises(FileNotFoundError, match="found neither"):
        Trainer(_config(tmp_path / "run2", init_from=tmp_path / "run"), NoisyPhotos(32))._stage1()


def test_frequency_weight_adds_the_spectrum_l1_in_both_stages(tmp_path):
    Trainer(_config(tmp_path, frequency_weight=0.5), NoisyPhotos(32)).run()
    for stage in ("stage1", "stage2"):
        log = _log(tmp_path / f"{stage}_log.jsonl")
        assert len(log) == 3 and all(r["spectrum"] > 0 for r in log), stage
        for r in log:  # stage 2 adds L_align; stage 1 has none
            assert r["loss"] == pytest.approx(r["l1"] + 0.5 * r["spectrum"] + r.get("align", 0.0), abs=2e-5)
    assert all("align" in r for r in _log(tmp_path / "stage2_log.jsonl"))
    with pytest.raises(ValueError, match="frequency_weight"):
        _config(tmp_path, frequency_weight=-1.0)


def test_the_prior_bottleneck_charges_stage1_for_what_d_t_sends_beyond_d_s(tmp_path, monkeypatch):
    charged = []
    original = losses.prior_information

    def recording(excess, noise_std):
        charged.append(excess.detach().clone())
        return original(excess, noise_std)

    monkeypatch.setattr(trainer_module, "prior_information", recording)
    Trainer(_config(tmp_path, prior_bottleneck=0.01, prior_noise=0.5), NoisyPhotos(32)).run()
    stage1 = _log(tmp_path / "stage1_log.jsonl")
    assert len(charged) == 3 and all(r["prior_nats"] > 0 for r in stage1)
    for r in stage1:
        assert r["loss"] == pytest.approx(r["l1"] + 0.01 * r["prior_nats"], abs=2e-5)
    assert not any("prior_nats" in r for r in _log(tmp_path / "stage2_log.jsonl"))  # D_T is frozen there
    # Stage 1 trained a D_S beside D_T (kept in its checkpoint), and Stage 2 went on from it.
    stage1_predictor = torch.load(tmp_path / "checkpoints" / "stage1.pt", weights_only=True)["predictor"]
    fresh = build_student(TINY).predictor.state_dict()
    assert any(not torch.equal(v, fresh[k]) for k, v in stage1_predictor.items())
    trainer = Trainer(_config(tmp_path, prior_bottleneck=0.01, prior_noise=0.5), NoisyPhotos(32))
    stage1 = trainer._stage1()
    trainer._run_stage(stage1)  # finished: restores the companions and returns
    _assert_same_tensors(trainer._stage2(stage1).model.predictor.state_dict(), stage1_predictor)
    # What is charged: d_T - d_S, through the channel d_T + N(0, 0.25 I), in nats.
    teacher = load_model(tmp_path / "teacher.safetensors", kind="teacher")
    degraded, clean = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        prior = teacher.estimator(degraded, clean)
        assert 2 * prior.pow(2).sum(1).mean() == pytest.approx(original(prior, 0.5).item())
        noisy = teacher(degraded, clean, channel_noise=0.5)
        assert torch.equal(noisy[1], prior)  # d_T itself is returned; R_T read it with noise
        assert not torch.allclose(noisy[0], teacher(degraded, clean)[0])
    with pytest.raises(ValueError, match="prior_bottleneck"):
        _config(tmp_path, prior_bottleneck=-1.0)
    with pytest.raises(ValueError, match="prior_noise"):
        _config(tmp_path, prior_noise=0.0)


def test_the_student_prior_share_feeds_r_t_a_d_s_trained_beside_d_t(tmp_path):
    teacher, predictor = build_teacher(TINY).eval(), build_student(TINY).predictor.eval()
    degraded, clean = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        student_prior, teacher_prior = predictor(degraded), teacher.estimator(degraded, clean)
        mixed, returned = teacher(degraded, clean, stand_in=(torch.tensor([True, False]), student_prior))
        assert torch.equal(returned, teacher_prior)  # d_T itself is returned; R_T read d_S on row 0
        assert torch.allclose(mixed[:1], teacher.restorer(degraded, student_prior)[:1], atol=1e-6)
        assert torch.allclose(mixed[1:], teacher.restorer(degraded, teacher_prior)[1:], atol=1e-6)
    Trainer(_config(tmp_path, student_prior_share=0.5), NoisyPhotos(32)).run()
    stage1 = _log(tmp_path / "stage1_log.jsonl")
    assert len(stage1) == 3 and all(r["align"] > 0 for r in stage1)
    for r in stage1:  # L1 through R_T, plus eq. 4's L_align pulling D_S towards the detached d_T
        assert r["loss"] == pytest.approx(r["l1"] + r["align"], abs=2e-5)
    stage1_predictor = torch.load(tmp_path / "checkpoints" / "stage1.pt", weights_only=True)["predictor"]
    fresh = build_student(TINY).predictor.state_dict()
    assert any(not torch.equal(v, fresh[k]) for k, v in stage1_predictor.items())
    for share in (-0.1, 1.5):
        with pytest.raises(ValueError, match="student_prior_share"):
            _config(tmp_path, student_prior_share=share)


def test_snapshots_keep_the_moving_average_along_the_way(tmp_path):
    Trainer(_config(tmp_path, stage1_steps=4, stage2_steps=4, ema_decay=0.9, snapshot_every=2), NoisyPhotos(32)).run()
    snapshots = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert snapshots == ["stage1-step2.safetensors", "stage2-step2.safetensors"]  # the last step is the weights file
    for stage, kind, final in (("stage1", "teacher", "teacher.safetensors"), ("stage2", "student", "student.safetensors")):
        info = model_info(tmp_path / "snapshots" / f"{stage}-step2.safetensors")
        assert (info["steps"], info["of_steps"], info["stage"]) == (2, 4, stage)
        assert info["weights"] == "moving average, decay 0.9"
        snapshot = load_model(tmp_path / "snapshots" / f"{stage}-step2.safetensors", kind=kind).state_dict()
        last = load_model(tmp_path / final, kind=kind).state_dict()
        assert any(not torch.equal(v, last[k]) for k, v in snapshot.items())
    with pytest.raises(ValueError, match="snapshot_every"):
        _config(tmp_path, snapshot_every=-1)


# -- the ablation modes ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,has_predictor", [("no-privileged", True), ("no-predictor", False)])
def test_ablation_modes_write_a_student(tmp_path, mode, has_predictor):
    outputs = Trainer(_config(tmp_path, mode=mode), NoisyPhotos(32)).run()
    assert set(outputs) == {"student"}
    assert not (tmp_path / "teacher.safetensors").exists() and not (tmp_path / "stage1_log.jsonl").exists()
    student = load_model(tmp_path / "student.safetensors", kind="student")
    assert student.has_predictor is has_predictor
    assert bool(student.restorer.dbs) is has_predictor
    log = _log(tmp_path / "stage2_log.jsonl")
    assert len(log) == 3 and all("align" not in r for r in log)  # L1 only: no teacher to align to
    assert model_info(tmp_path / "student.safetensors")["mode"] == mode


def test_validation_psnr_is_logged(tmp_path):
    dataset = NoisyPhotos(16)
    Trainer(_config(tmp_path, mode="no-predictor", stage2_steps=2, val_every=2), dataset,
            validation_patches(dataset, 2)).run()
    log = _log(tmp_path / "stage2_log.jsonl")
    assert "val_psnr" not in log[0] and 5 < log[-1]["val_psnr"] < 60


# -- exact resumption after SIGKILL, through the command line -------------------------------------
def _clean_folder(folder: Path) -> Path:
    folder.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(skimage.data, name)()[:96, :128]).save(folder / f"{name}.png")
    return folder


def _train_command(clean: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "lupi_core", "train", "--preset", "tiny", "--clean-folder", str(clean),
            "--out", str(out), "--mode", "lupi", "--stage1-steps", "12", "--stage2-steps", "4",
            "--batch-size", "2", "--patch-size", "32", "--lr", "1e-3", "--warmup-steps", "2",
            "--checkpoint-every", "2", "--log-every", "1", "--val-images", "0", "--threads", "1", "--no-progress",
            "--device", "cpu", "--seed", "3", "--precision", "bf16",  # resume is exact under bf16 autocast
            "--ema-decay", "0.9", "--patch-schedule", "16:0.5,32:0.5",  # and with the average and the schedule
            "--readout-weight", "0.5",  # and with the readout head, which trains beside the model
            "--task-balance", "1", "--balance-every", "3", "--balance-patches", "2"]  # and the task weights


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def test_resume_after_sigkill_is_exact(tmp_path):
    clean = _clean_folder(tmp_path / "clean")
    killed_out, reference_out = tmp_path / "killed", tmp_path / "reference"
    command = _train_command(clean, killed_out)
    # The uninterrupted reference runs alongside the run we kill.
    reference = subprocess.Popen(_train_command(clean, reference_out), cwd=ROOT, env=_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    victim = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    checkpoint = killed_out / "checkpoints" / "stage1.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists():
        if victim.poll() is not None:
            pytest.fail(f"training exited before its first checkpoint: {victim.stderr.read()[-2000:]}")
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    victim.stderr.close()
    assert victim.returncode == -signal.SIGKILL
    step = torch.load(checkpoint, weights_only=True)["step"]
    assert 0 < step < 12, step
    assert not (killed_out / "teacher.safetensors").exists()

    resumed = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"[stage1] resuming from {checkpoint} at step {step}" in resumed.stdout
    reference_output, _ = reference.communicate(timeout=300)
    assert reference.returncode == 0, reference_output[-3000:]
    assert "resuming" not in reference_output

    for name in ("teacher.safetensors", "student.safetensors"):
        a, b = load_model(killed_out / name), load_model(reference_out / name)
        _assert_same_tensors(a.state_dict(), b.state_dict())
    for stage in ("stage1", "stage2"):  # one line per step, none twice, with the same losses
        killed_log, reference_log = _log(killed_out / f"{stage}_log.jsonl"), _log(reference_out / f"{stage}_log.jsonl")
        assert [(r["step"], r["loss"]) for r in killed_log] == [(r["step"], r["loss"]) for r in reference_log]
    seconds = [r["seconds"] for r in _log(killed_out / "stage1_log.jsonl")]
    assert seconds == sorted(seconds)  # wall time runs on across the kill
    assert not torch.equal(load_model(reference_out / "student.safetensors").restorer.output.weight,
                           build_student(TINY).restorer.output.weight)


# -- progressive patches and the weight average ----------------------------------------------------
def test_patch_schedule_splits_each_stage_and_rejects_malformed_schedules(tmp_path):
    cfg = _config(tmp_path, patch_schedule="64:0.5,128:0.3,192:0.2")
    assert cfg.patch_phases() == [(64, 0.5), (128, 0.3), (192, 0.2)]
    assert [cfg.patch_size_at(step, 10) for step in range(10)] == [64] * 5 + [128] * 3 + [192] * 2
    assert _config(tmp_path).patch_size_at(3, 10) is None
    for bad in ("64:0.5,128:0.4", "128:0.5,64:0.5", "60:1", "64", "64:x", "64:0,128:1"):
        with pytest.raises(ValueError, match="patch_schedule"):
            _config(tmp_path, patch_schedule=bad)
    with pytest.raises(ValueError, match="ema_decay"):
        _config(tmp_path, ema_decay=1.0)


def test_centre_crop_crops_both_images_alike_and_refuses_to_grow():
    batch = {"degraded": torch.arange(2 * 3 * 8 * 8.0).reshape(2, 3, 8, 8), "task": ["a", "b"]}
    batch["clean"] = batch["degraded"] + 1
    cropped = centre_crop(batch, 4)
    assert cropped["degraded"].shape == (2, 3, 4, 4) and cropped["task"] == ["a", "b"]
    assert torch.equal(cropped["degraded"], batch["degraded"][..., 2:6, 2:6])
    assert torch.equal(cropped["clean"] - 1, cropped["degraded"])
    assert centre_crop(batch, None) is batch
    with pytest.raises(ValueError, match="--patch-size 16"):
        centre_crop(batch, 16)


def test_a_patch_schedule_trains_each_phase_at_its_size(tmp_path):
    cfg = _config(tmp_path, mode="no-privileged", stage2_steps=4, patch_schedule="16:0.5,32:0.5")
    Trainer(cfg, NoisyPhotos(32)).run()
    assert [r["patch"] for r in _log(tmp_path / "stage2_log.jsonl")] == [16, 16, 32, 32]


def test_the_prior_context_keeps_the_whole_crops_beside_r_s_patches():
    batch = {"degraded": torch.rand(2, 3, 8, 8), "clean": torch.rand(2, 3, 8, 8), "task": ["a", "b"]}
    plain = restorer_batch(batch, 4, prior_context=False)
    assert set(plain) == {"degraded", "clean", "task"} and plain["degraded"].shape[-1] == 4
    both = restorer_batch(batch, 4, prior_context=True)
    assert torch.equal(both["degraded"], batch["degraded"][..., 2:6, 2:6])
    assert both["prior_degraded"] is batch["degraded"] and both["prior_clean"] is batch["clean"]


def test_with_a_prior_context_d_t_and_d_s_read_the_whole_crop_and_r_the_patch(tmp_path, monkeypatch):
    seen: dict[str, set] = {"D_T": set(), "D_S": set()}
    for cls, name in ((PrivilegedEstimator, "D_T"), (DegradationPredictor, "D_S")):
        def spy(self, degraded, *rest, _forward=cls.forward, _name=name):
            seen[_name].add(degraded.shape[-1])
            return _forward(self, degraded, *rest)
        monkeypatch.setattr(cls, "forward", spy)
    student = build_student(TINY).eval()
    degraded, context = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        restored, prior = student(degraded, prior_input=context)
        assert torch.allclose(prior, student.predictor(context))
        assert torch.allclose(restored, student.restorer(degraded, prior))
    seen["D_S"].clear()
    Trainer(_config(tmp_path, patch_schedule="16:1.0", prior_context=32), NoisyPhotos(32)).run()
    assert seen == {"D_T": {32}, "D_S": {32}}  # D_T in both stages (frozen in Stage 2), D_S in Stage 2
    assert {r["patch"] for r in _log(tmp_path / "stage2_log.jsonl")} == {16}
    for schedule in (None, "16:0.5,64:0.5"):  # R's patches must be set, and fit inside the context
        with pytest.raises(ValueError, match="prior_context"):
            _config(tmp_path, patch_schedule=schedule, prior_context=32)


def test_weight_average_follows_the_ramped_decay():
    model = nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update(model)  # decay min(0.9, 2 / 11)
    expected = start + (1 - 2 / 11) * 1.0
    assert torch.allclose(average.model.weight, expected)
    assert not average.model.weight.requires_grad


def test_an_averaged_run_saves_the_average_not_the_last_step(tmp_path):
    cfg = _config(tmp_path, mode="no-privileged", stage2_steps=4, ema_decay=0.99, checkpoint_every=4)
    Trainer(cfg, NoisyPhotos(16)).run()
    checkpoint = torch.load(tmp_path / "checkpoints" / "stage2.pt", weights_only=True)
    saved = load_model(tmp_path / "student.safetensors").state_dict()
    _assert_same_tensors(saved, checkpoint["average"]["model"])
    assert checkpoint["average"]["updates"] == 4
    assert not torch.equal(saved["restorer.output.weight"], checkpoint["model"]["restorer.output.weight"])
    assert model_info(tmp_path / "student.safetensors")["weights"] == "moving average, decay 0.99"


# -- DistributedDataParallel on two CPU processes ---------------------------------------------------
def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    record: list[int] = []
    cfg = _config(Path(out), mode="no-privileged", stage2_steps=3, batch_size=2, checkpoint_every=2)
    trainer = Trainer(cfg, NoisyPhotos(16, record))
    assert trainer.dist.rank == rank and trainer.dist.world == world
    trainer.run()
    # The loader prefetches nothing (no workers), so `record` holds exactly the samples trained on.
    torch.save({"indices": record}, Path(out) / f"rank{rank}_indices.pt")
    torch.distributed.destroy_process_group()


def test_ddp_two_cpu_processes(tmp_path, monkeypatch):
    # Each rank saves its own final parameters at the end of the stage (see _ddp_worker_saving).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # fork, not spawn: the children inherit the imports (torch, this module), saving ~5 s each.
    context = mp.start_processes(_ddp_worker_saving, args=(2, free_port(), str(tmp_path)), nprocs=2,
                                 join=False, start_method="fork")
    deadline = time.monotonic() + 180
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the two DDP processes did not finish within 180 s")
    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    _assert_same_tensors(states[0], states[1])  # DDP kept the replicas identical
    torch.manual_seed(1)  # what stage 2 seeds with (seed + 1) before building the student
    initial = build_student(TINY).state_dict()
    changed = [k for k in initial if not torch.equal(initial[k], states[0][k])]
    assert len(changed) > len(initial) // 2  # training happened
    _assert_same_tensors(load_model(tmp_path / "student.safetensors").state_dict(), states[0])
    indices = [torch.load(tmp_path / f"rank{r}_indices.pt", weights_only=True)["indices"] for r in range(2)]
    assert len(indices[0]) == len(indices[1]) == 3 * 2
    assert not set(indices[0]) & set(indices[1])  # each rank saw its own samples
    offset = 10**12
    assert sorted(indices[0] + indices[1]) == list(range(offset, offset + 12))  # and together, all of them
    log = _log(tmp_path / "stage2_log.jsonl")
    assert len(log) == 3  # rank 0 alone logs


def _ddp_worker_saving(rank: int, world: int, port: int, out: str) -> None:
    original = Trainer._run_stage

    def run_stage_and_save(self, stage):
        path = original(self, stage)
        torch.save(stage.model.state_dict(), Path(out) / f"rank{self.dist.rank}.pt")
        return path

    Trainer._run_stage = run_stage_and_save
    _ddp_worker(rank, world, port, out)


def test_bf16_autocast_runs_is_logged_and_fp32_can_be_forced(tmp_path):
    losses = {}
    for precision, expected in (("bf16", "bf16 autocast"), ("fp32", "fp32")):
        cfg = _config(tmp_path / precision, mode="no-predictor", precision=precision)
        Trainer(cfg, NoisyPhotos()).run()
        records = [json.loads(line) for line in (cfg.out_dir / "stage2_log.jsonl").read_text().splitlines()]
        assert {r["precision"] for r in records} == {expected}
        assert model_info(cfg.out_dir / "student.safetensors")["precision"] == expected
        losses[precision] = [r["loss"] for r in records]
    assert all(np.isfinite(losses["bf16"]))
    assert losses["bf16"] != losses["fp32"]  # autocast really computed in bf16
    assert np.allclose(losses["bf16"], losses["fp32"], rtol=0.05)
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(out_dir=tmp_path, precision="fp16")


def test_wrong_prior_and_contrast_terms_add_to_the_loss_in_both_stages(tmp_path):
    cfg = _config(tmp_path, mode="lupi", batch_size=4, wrong_prior_weight=2.0, wrong_prior_margin=0.05,
                  contrast_weight=0.5)
    Trainer(cfg, TwoTasks()).run()
    for stage in ("stage1", "stage2"):
        for r in _log(tmp_path / f"{stage}_log.jsonl"):
            expected = r["l1"] + 2.0 * r["wrong_prior"] + 0.5 * r["contrast"] + r.get("align", 0.0)
            assert r["loss"] == pytest.approx(expected, rel=1e-3, abs=1e-4), (stage, r)
            assert r["wrong_prior"] > 0 and r["contrast"] > 0
    with pytest.raises(ValueError, match="contrast_temperature"):
        TrainConfig(out_dir=tmp_path, contrast_temperature=0)


def test_contrast_by_severity_splits_each_synthetic_task_into_bins(tmp_path):
    severity = torch.tensor([0.1, 0.9, 1.0, float("nan")], dtype=torch.float64)
    tasks = ["denoise", "denoise", "denoise", "derain"]
    assert contrast_labels(tasks, severity, 2) == ["denoise:0", "denoise:1", "denoise:1", "derain"]
    assert contrast_labels(tasks, severity, 0) == tasks and contrast_labels(tasks, None, 3) == tasks
    cfg = _config(tmp_path, mode="lupi", batch_size=4, contrast_weight=1.0, contrast_severity_bins=2)
    Trainer(cfg, GradedNoise()).run()  # the batch's severity travels with it to the loss
    assert all(r["contrast"] > 0 for r in _log(tmp_path / "stage2_log.jsonl"))
    with pytest.raises(ValueError, match="contrast_severity_bins"):
        TrainConfig(out_dir=tmp_path, contrast_severity_bins=-1)


def test_the_severity_wrong_prior_trains_on_counterfactual_patches_in_both_stages(tmp_path):
    write(tmp_path / "clean", ["a.png", "b.png"], h=48, w=48)
    write(tmp_path / "pairs" / "input", ["x.png"], h=48, w=48)
    write(tmp_path / "pairs" / "target", ["x.png"], seed=5, h=48, w=48)
    mixture = TaskMixture([(SyntheticPairs(tmp_path / "clean", "noise", sigma_range=(0, 55), patch_size=32), 1.0),
                           (FolderPairs(tmp_path / "pairs" / "input", tmp_path / "pairs" / "target", patch_size=32,
                                        task="real"), 1.0)])
    cfg = _config(tmp_path / "run", mode="lupi", batch_size=4, wrong_prior_weight=1.0, wrong_prior_margin=0.05,
                  wrong_prior_source="severity")
    Trainer(cfg, mixture).run()
    assert all(part.counterfactuals for part in mixture.datasets)
    for stage, first in (("stage1", 0), ("stage2", STAGE2_DRAWS)):
        for r in _log(tmp_path / "run" / f"{stage}_log.jsonl"):
            assert r["loss"] == pytest.approx(r["l1"] + r["wrong_prior"] + r.get("align", 0.0), rel=1e-3, abs=1e-4)
            drawn = range(first + 4 * (r["step"] - 1), first + 4 * r["step"])
            synthetic = any(mixture.component_of(index) == 0 for index in drawn)
            # untrained, R restores alike under either prior, so each counterfactual row pays the margin;
            # a batch of real pairs alone, all of one task, has no wrong prior to pay for
            assert r["wrong_prior"] > 0 if synthetic else r["wrong_prior"] == 0, (stage, r)
    with pytest.raises(ValueError, match="wrong_prior_source"):
        TrainConfig(out_dir=tmp_path, wrong_prior_source="kind")
    with pytest.raises(ValueError, match="prior-context"):
        TrainConfig(out_dir=tmp_path, wrong_prior_source="severity", patch_schedule="32:1.0", prior_context=64)


def test_stage1_prior_terms_can_be_left_to_stage2(tmp_path):
    cfg = _config(tmp_path, mode="lupi", batch_size=4, objective="steer", stage1_prior_terms=False)
    Trainer(cfg, TwoTasks()).run()
    stage1, stage2 = _log(tmp_path / "stage1_log.jsonl"), _log(tmp_path / "stage2_log.jsonl")
    assert all(r["loss"] == r["l1"] and "wrong_prior" not in r and "contrast" not in r for r in stage1)
    assert all(r["wrong_prior"] >= 0 and r["contrast"] > 0 for r in stage2)


def test_a_run_folder_refuses_other_experiment_settings_but_not_other_runtime_ones(tmp_path):
    Trainer(_config(tmp_path, stage2_steps=2, mode="no-predictor"), NoisyPhotos()).run()
    Trainer(_config(tmp_path, stage2_steps=2, mode="no-predictor", log_every=5, precision="fp32"), NoisyPhotos())
    with pytest.raises(ValueError, match=r"other settings \(lr\)"):
        Trainer(_config(tmp_path, stage2_steps=2, mode="no-predictor", lr=5e-4), NoisyPhotos())
    saved = json.loads((tmp_path / "train_config.json").read_text())
    assert saved["lr"] == 1e-3  # the refused run did not overwrite the folder's settings


class Labelled(GradedNoise):
    """GradedNoise whose items and dataset carry one task label, as lupi_core.data's datasets do."""

    def __init__(self, task: str):
        super().__init__()
        self.task = task

    def __getitem__(self, index):
        return {**super().__getitem__(index), "task": self.task}


def test_the_readout_term_reads_task_and_severity_from_the_prior_in_both_stages(tmp_path):
    from lupi_core.data import TaskMixture

    mixture = TaskMixture([(Labelled("denoise"), 1.0), (Labelled("deblur"), 1.0)], seed=0)
    cfg = _config(tmp_path, mode="lupi", batch_size=4, readout_weight=0.5, checkpoint_every=1)
    Trainer(cfg, mixture).run()
    for stage in ("stage1", "stage2"):
        for r in _log(tmp_path / f"{stage}_log.jsonl"):
            assert r["loss"] == pytest.approx(r["l1"] + 0.5 * r["readout"] + r.get("align", 0.0), rel=1e-3, abs=1e-4)
            assert r["readout"] > 0
        head = torch.load(tmp_path / "checkpoints" / f"{stage}.pt", weights_only=True)["readout"]
        assert head["linear.weight"].shape == (3, TINY.prior_dim)  # two tasks and a severity; resumable
    heads = [torch.load(tmp_path / "checkpoints" / f"{stage}.pt", weights_only=True)["readout"]["linear.weight"]
             for stage in ("stage1", "stage2")]
    assert (heads[1] - heads[0]).abs().max() < 0.01  # Stage 2 began from Stage 1's read of d_T (3 steps at 1e-3)
    assert set(load_model(tmp_path / "student.safetensors").state_dict()) == set(build_student(TINY).state_dict())
    with pytest.raises(ValueError, match="name their task"):
        Trainer(_config(tmp_path / "unlabelled", readout_weight=1.0), NoisyPhotos()).run()
    with pytest.raises(ValueError, match="readout_weight"):
        TrainConfig(out_dir=tmp_path, readout_weight=-1)


def test_the_readout_loss_counts_only_known_severities():
    from lupi_core.losses import readout_loss

    logits = torch.tensor([[4.0, -4.0], [-4.0, 4.0]])
    tasks = torch.tensor([0, 1])
    certain = readout_loss(logits, torch.tensor([0.5, 0.9]), tasks, torch.tensor([0.5, float("nan")]))
    assert certain.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, tasks).item())
    wrong = readout_loss(logits, torch.tensor([0.5, 0.9]), tasks, torch.tensor([0.0, float("nan")]))
    assert wrong.item() == pytest.approx(certain.item() + 0.25)
    assert readout_loss(logits, torch.tensor([0.5, 0.9]), tasks, None).item() == pytest.approx(certain.item())


def test_the_task_balance_weighs_each_task_by_its_inverse_gradient_norm_in_both_stages(tmp_path):
    from lupi_core.data import TaskMixture

    mixture = TaskMixture([(Labelled("denoise"), 1.0), (Labelled("deblur"), 1.0)], seed=0)
    cfg = _config(tmp_path, mode="lupi", batch_size=4, task_balance=1.0, balance_every=2, balance_patches=2,
                  checkpoint_every=1)
    Trainer(cfg, mixture).run()
    for stage in ("stage1", "stage2"):
        log = _log(tmp_path / f"{stage}_log.jsonl")
        weights = [r["task_weights"] for r in log]
        assert all(set(w) == {"denoise", "deblur"} and sum(w.values()) == pytest.approx(2.0, abs=1e-3) for w in weights)
        assert weights[0] != {"denoise": 1.0, "deblur": 1.0}  # measured before the first step
        saved = torch.load(tmp_path / "checkpoints" / f"{stage}.pt", weights_only=True)["task_balance"]
        assert saved == pytest.approx(weights[-1], abs=1e-4)  # resumable
        assert all(r["plain_l1"] > 0 and r["loss"] != r["plain_l1"] for r in log)  # the unweighted L1, logged beside
    with pytest.raises(ValueError, match="balance_every"):
        TrainConfig(out_dir=tmp_path, balance_every=0)


def test_the_coarse_error_term_trains_and_logs_the_plain_l1_beside_it(tmp_path):
    Trainer(_config(tmp_path, mode="no-predictor", stage2_steps=2, coarse_scale=0.25, coarse_block=16),
            NoisyPhotos(32)).run()
    for r in _log(tmp_path / "stage2_log.jsonl"):
        assert r["loss"] == pytest.approx(r["l1"]) and r["l1"] > 0 and r["plain_l1"] > 0 and r["l1"] != r["plain_l1"]
    with pytest.raises(ValueError, match="coarse_scale"):
        TrainConfig(out_dir=tmp_path, coarse_scale=-1)


class FinalPhotos(NoisyPhotos):
    """NoisyPhotos labelled as the final mixture's task (and naming it, as a recipe's parts do)."""

    task = "clean"

    def __getitem__(self, index):
        return {**super().__getitem__(index), "task": self.task}


def test_the_final_share_of_stage2_draws_from_the_final_mixture_and_resumes_on_it(tmp_path):
    main_draws, final_draws = [], []
    cfg = _config(tmp_path, stage2_steps=4, final_share=0.5, readout_weight=0.1)
    main = NoisyPhotos(32, record=main_draws)
    main.task = "denoise"
    trainer = Trainer(cfg, main, final_dataset=FinalPhotos(32, record=final_draws))
    trainer.run()
    assert trainer._readout().tasks == ("clean", "denoise")  # the readout names both mixtures' tasks
    stage2_main = [i for i in main_draws if i >= trainer_module.STAGE2_DRAWS]
    assert len(stage2_main) == 2 * 2 and len(final_draws) == 2 * 2  # steps 0-1, then 2-3, of 2 patches
    assert final_draws == list(range(stage2_main[-1] + 1, stage2_main[-1] + 5))  # the indices run on
    stage2 = types.SimpleNamespace(name="stage2", steps=4, data_offset=trainer_module.STAGE2_DRAWS)
    final_draws.clear()
    resumed = next(trainer._batches(stage2, 3))  # a run resumed at step 3 draws what the unbroken one did
    assert resumed["task"] == ["clean", "clean"] and final_draws == list(range(stage2_main[-1] + 3, stage2_main[-1] + 5))
    stage1 = types.SimpleNamespace(name="stage1", steps=4, data_offset=0)
    assert next(trainer._batches(stage1, 3))["task"] == ["denoise", "denoise"]  # Stage 1 keeps the main mixture
    with pytest.raises(ValueError, match="final_share"):
        _config(tmp_path, final_share=1.0)
    with pytest.raises(ValueError, match="final dataset"):
        Trainer(_config(tmp_path / "b", final_share=0.5), NoisyPhotos(32))
