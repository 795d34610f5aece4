"""Two-stage privileged training (section 3.3) and the Table 3 ablation modes.

- `lupi`: Stage 1 trains D_T + R_T with L1 (eq. 3); Stage 2 freezes D_T and
  trains D_S + a new R_S with L1 + lambda_align * L_align (eq. 4).
- `no-privileged`: D_S + R_S end to end with L1 only (no Stage 1).
- `no-predictor`: the plain backbone R with L1.

`--objective paper` trains eq. 3-4 as written; `--objective steer` adds the
wrong-prior and contrast terms (losses.py) in both stages (`--no-stage1-prior-terms`: in Stage 2
only), so R must follow its prior.
`--predictor-only` trains D_S alone through the frozen R_T in Stage 2, and `--prior-bottleneck`
charges d_T in Stage 1 for what it says beyond a D_S trained beside it (docs/results/student-routing/);
`--student-prior-share` feeds R_T that D_S's prior instead of d_T on a share of Stage 1's patches.
Two of Restormer's training tricks are options of every stage: progressive patch sizes
(`--patch-schedule`) and an exponential moving average of the weights (`--ema-decay`).

One loop serves every stage: AdamW, linear warm-up then cosine decay to zero,
checkpoints that resume exactly after a SIGKILL (weights, optimizer, step, RNG;
the learning rate is a function of the step and the data a function of the
sample index), bf16 autocast on CUDA and on CPUs with native bf16 (LayerNorm,
MDTA's softmax and the losses stay fp32), and DistributedDataParallel under torchrun.
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from itertools import islice
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from .balance import TaskBalance, probe_batches
from .config import DB_FILM_INITS, ESTIMATOR_DESIGNS, ESTIMATOR_INPUTS, PRESETS, ModelConfig
from .data import HELD_OUT_DRAWS, STAGE2_DRAWS, with_counterfactuals
from .hardware import PRECISIONS, autocast_dtype, keep_freed_memory, resolve_device
from .images import quantize, to_float_image, to_tensor
from .losses import (
    AlignConfig,
    alignment_loss,
    frequency_loss,
    prior_contrast_loss,
    prior_information,
    readout_loss,
    reconstruction_loss,
    wrong_prior_loss,
)
from .metrics import psnr
from .models import build_student, build_teacher
from .prior import DegradationPredictor, DegradationReadout
from .settings import runtime_fields, setting
from .tiling import forward_padded
from .weights import exported_name, load_model, save_model

MODES = ("lupi", "no-privileged", "no-predictor")
WRONG_PRIOR_SOURCES = ("task", "severity")
TEACHER_FILE, STUDENT_FILE = "teacher.safetensors", "student.safetensors"


# The named objectives (`--objective`). "paper" is eq. 3 and eq. 4 as written; "steer" adds the
# wrong-prior and contrast terms and a random FiLM init, the variant that made R_S use its prior
# (docs/design.md, "Objective options"). A field given explicitly overrides its objective's value.
OBJECTIVES: dict[str, dict[str, object]] = {
    "paper": {"db_film_init": "zero", "wrong_prior_weight": 0.0, "wrong_prior_margin": 0.01, "contrast_weight": 0.0},
    "steer": {"db_film_init": "random", "wrong_prior_weight": 1.0, "wrong_prior_margin": 0.05, "contrast_weight": 1.0},
}


@dataclass
class TrainConfig:
    """Everything a run needs besides its data; saved beside the run as train_config.json.
    Every field is a `train` flag (lupi_core.settings); runtime fields may change on resume."""

    out_dir: Path = setting(flag="out", type=Path, runtime=True, help="run folder: checkpoints, logs, weights")
    preset: str = setting("small", choices=tuple(sorted(PRESETS)), help="model size")
    estimator_design: str = setting("siamese", flag="estimator", choices=ESTIMATOR_DESIGNS,
                                    help="D_T's design (Table 4)")
    estimator_input: str = setting("clean", choices=ESTIMATOR_INPUTS,
                                   help="what D_T sees beside I_d: the clean image (the paper) or the residual I_d - I_c")
    objective: str = setting("paper", choices=tuple(OBJECTIVES),
                             help="named objective: the paper's eq. 3-4, or with the terms that make R use its "
                                  "prior (steer); sets --db-film-init, --wrong-prior-weight, --wrong-prior-margin and "
                                  "--contrast-weight where they are not given")
    db_film_init: str | None = setting(None, type=str, choices=DB_FILM_INITS,
                                       help="DB's FiLM MLP starts at zero (gamma 1, beta 0 for every prior) or random "
                                            "(default: the objective's)")
    tone_head: bool = setting(False, help="TC: the prior also sets a colour matrix and offset for the whole "
                                          "image before R's U-Net (not in the paper; a warm start from a model "
                                          "without it adds it at the identity)")
    mode: str = setting("lupi", choices=MODES, help="two-stage LUPI or a Table 3 ablation")
    stage1_steps: int = setting(1000, help="Stage 1 steps (D_T + R_T)")
    stage2_steps: int = setting(1000, help="Stage 2 steps (D_S + R_S), or the single stage of an ablation")
    batch_size: int = setting(8, help="patches per step, per process")
    lr: float = setting(2e-4, help="peak learning rate (AdamW)")
    weight_decay: float = setting(0.01, help="AdamW weight decay")
    warmup_steps: int = setting(100, help="linear warm-up steps before the cosine decay")
    align: AlignConfig = setting(default_factory=AlignConfig, help="L_align of eq. 4")
    frequency_weight: float = setting(0.0, help="add this weight x the L1 between spectra to the reconstruction "
                                                "L1, in both stages (0: L1 alone, as the paper)")
    wrong_prior_weight: float | None = setting(None, type=float,
                                               help="weight of the wrong-prior term: the true prior must restore "
                                                    "better than another task's, in both stages (0: off; default: "
                                                    "the objective's)")
    wrong_prior_margin: float | None = setting(None, type=float,
                                               help="the wrong-prior term's margin, in L1 units (default: the objective's)")
    wrong_prior_source: str = setting("task", choices=WRONG_PRIOR_SOURCES,
                                      help="the wrong-prior term's wrong prior: the next sample's, of another task "
                                           "(task), or, for synthetic patches, the prior of the same patch degraded "
                                           "at another severity (severity; real pairs keep the next sample's), so "
                                           "that R must read how strong a degradation is from the prior")
    contrast_weight: float | None = setting(None, type=float,
                                            help="weight of the supervised contrastive term clustering priors "
                                                 "by task, in both stages (0: off; default: the objective's)")
    contrast_temperature: float = setting(0.1, help="the contrastive term's temperature")
    contrast_severity_bins: int = setting(0, help="cluster synthetic patches by task and severity, the level cut "
                                                  "into this many equal bins, so the prior must carry how strong a "
                                                  "degradation is (0: by task alone; real pairs always by task)")
    readout_weight: float = setting(0.0, help="weight of the readout term: a linear read of the prior must name "
                                              "each patch's task and, for synthetic patches, its severity, in both "
                                              "stages (d_T, then d_S; 0: off)")
    coarse_scale: float = setting(0.0, help="score the error's block means (--coarse-block px) by a squared error "
                                            "that equals L1's push where a block mean is this large, and the rest "
                                            "of the error by L1 (losses.reconstruction_loss; 0: L1 alone, as the paper)")
    coarse_block: int = setting(16, help="the block size of the coarse error term")
    task_balance: float = setting(0.0, help="weigh each task's reconstruction loss by its gradient norm to the power "
                                            "-TASK_BALANCE, the norms measured on held-out patches of each task every "
                                            "--balance-every steps (balance.py): 1 gives every task's gradient the "
                                            "same norm, 0 is off (one L1 over the mixture, as the paper)")
    balance_every: int = setting(100, help="steps between the task balance's measurements")
    balance_patches: int = setting(8, help="held-out patches per task that the task balance measures on")
    prior_bottleneck: float = setting(0.0, help="Stage 1 passes d_T to R_T through a Gaussian channel, d_T + "
                                                "N(0, s^2 I) with s = --prior-noise, trains D_S beside it, and adds "
                                                "this weight x the nats d_T sends beyond D_S's prediction, "
                                                "||d_T - d_S||^2 / (2 s^2) per patch (a conditional VAE's KL; "
                                                "losses.prior_information): d_T pays for the clean image's content "
                                                "that D_S cannot predict (0: off, as the paper)")
    prior_noise: float = setting(0.05, help="the bottleneck channel's noise s; 0.05 is about the spread of the "
                                            "shipped d_T's dimensions over degradations, so the channel starts "
                                            "informative")
    student_prior_share: float = setting(0.0, help="Stage 1 trains a D_S beside D_T (eq. 4's L_align to the detached "
                                                   "d_T, plus the L1 through R_T) and feeds R_T its prior d_S instead "
                                                   "of d_T on this share of the patches, so that R_T also restores "
                                                   "from what the degraded image alone tells; Stage 2 starts D_S from "
                                                   "it (0: off, as the paper)")
    stage1_prior_terms: bool = setting(True, help="apply the wrong-prior, contrast and readout terms in Stage 1 as "
                                                  "well as in Stage 2 (off: Stage 1 trains R_T on eq. 3 alone)")
    patch_schedule: str | None = setting(None, type=str,
                                         help="progressive patches within each stage, SIZE:FRACTION of its steps, "
                                              "e.g. 64:0.5,128:0.5; each step trains on centre crops of the data's "
                                              "patches, whose size is the largest SIZE (default: the data's size "
                                              "throughout)")
    prior_context: int = setting(0, help="D_T and D_S read a crop of this many px around R's patch, as at "
                                         "inference, where D_S reads the whole image while R's attention spans "
                                         "it: the prior can then tell a lightly degraded scene from a clean one "
                                         "that a patch alone cannot (needs --patch-schedule, R's patches, no "
                                         "larger than it; 0: the patch itself, as the paper)")
    final_share: float = setting(0.0, help="the last share of Stage 2's steps draws from the final mixture "
                                           "(train --final-recipe / --final-task-weight) instead of the main one: "
                                           "clean inputs brought in once the student restores, at the cosine "
                                           "schedule's low tail (0: one mixture throughout)")
    ema_decay: float = setting(0.0, help="validate and save an exponential moving average of each stage's weights "
                                         "at this decay (0: off, the last weights; Restormer keeps one at 0.999)")
    student_from_teacher: bool = setting(False, help="start R_S from R_T's weights")
    predictor_only: bool = setting(False, help="Stage 2 trains D_S alone, through the teacher's restorer R_T held "
                                               "frozen: D_S learns the prior R_T restores best with (eq. 4's "
                                               "L1 + L_align), and the student ships R_T as its R_S (mode lupi)")
    freeze_restorer: bool = setting(False, help="Stage 2 trains D_S alone, through R_S held as it starts (from "
                                                "--init-from, or R_T with --student-from-teacher): a warm start "
                                                "can retrain the prior (e.g. with --readout-weight) and leave "
                                                "what R_S does with a given prior unchanged")
    init_from: Path | None = setting(None, type=Path,
                                     help="an earlier run folder, or a folder of exported weights such as assets/: "
                                          "start each stage from its weights with a fresh schedule")
    seed: int = setting(0, help="seed of the weights' initialisation and of the data")
    checkpoint_every: int = setting(200, runtime=True, help="steps between checkpoints")
    snapshot_every: int = setting(0, runtime=True, help="also keep the weights (the moving average where there is "
                                                        "one) every this many steps, as out_dir/snapshots/STAGE-"
                                                        "stepN.safetensors, to score a long run's learning curve "
                                                        "(0: off)")
    val_every: int = setting(500, runtime=True, help="steps between validation scores")
    log_every: int = setting(10, runtime=True, help="steps between log lines")
    device: str = setting("auto", runtime=True, help="auto, cpu or cuda")
    precision: str = setting("auto", choices=PRECISIONS, runtime=True,
                             help="auto: bf16 autocast on CUDA and on CPUs with AVX512-BF16 or AMX, else fp32")
    num_workers: int = setting(0, flag="workers", runtime=True, help="DataLoader worker processes")
    progress: bool = setting(True, runtime=True, help="show a progress bar")

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.init_from is not None:
            self.init_from = Path(self.init_from)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {tuple(OBJECTIVES)}, got {self.objective!r}")
        for name, value in OBJECTIVES[self.objective].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if isinstance(self.align, dict):
            self.align = AlignConfig(**self.align)
        for name in ("frequency_weight", "wrong_prior_weight", "wrong_prior_margin", "contrast_weight", "readout_weight",
                     "prior_bottleneck"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.student_prior_share <= 1:
            raise ValueError(f"student_prior_share is a share of the patches, between 0 and 1, got "
                             f"{self.student_prior_share}")
        if self.snapshot_every < 0:
            raise ValueError(f"snapshot_every must be >= 0 (0: no snapshots), got {self.snapshot_every}")
        if self.prior_noise <= 0:
            raise ValueError(f"prior_noise must be > 0, got {self.prior_noise}")
        if self.coarse_scale < 0 or self.coarse_block < 1:
            raise ValueError(f"coarse_scale must be >= 0 and coarse_block >= 1, got {self.coarse_scale}, "
                             f"{self.coarse_block}")
        if self.task_balance < 0 or self.balance_every < 1 or self.balance_patches < 1:
            raise ValueError(f"task_balance must be >= 0 and balance_every and balance_patches >= 1, got "
                             f"{self.task_balance}, {self.balance_every}, {self.balance_patches}")
        if self.contrast_severity_bins < 0:
            raise ValueError(f"contrast_severity_bins must be >= 0, got {self.contrast_severity_bins}")
        if self.contrast_temperature <= 0:
            raise ValueError(f"contrast_temperature must be > 0, got {self.contrast_temperature}")
        if self.predictor_only and self.mode != "lupi":
            raise ValueError(f"predictor_only trains D_S through the teacher's restorer, so needs mode lupi, "
                             f"got {self.mode!r}")
        if not 0 <= self.final_share < 1:
            raise ValueError(f"final_share must be in [0, 1), got {self.final_share}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.wrong_prior_source not in WRONG_PRIOR_SOURCES:
            raise ValueError(f"wrong_prior_source must be one of {WRONG_PRIOR_SOURCES}, got {self.wrong_prior_source!r}")
        if self.wrong_prior_source == "severity" and self.prior_context:
            raise ValueError("the severity wrong prior reads the counterfactual patch alone; it cannot be combined "
                             "with --prior-context")
        phases = self.patch_phases()  # a malformed schedule fails here, before any training
        if self.prior_context and (not phases or self.prior_context < phases[-1][0]):
            raise ValueError(f"prior_context {self.prior_context} needs a --patch-schedule for R's patches, none "
                             f"larger than the context (got {self.patch_schedule!r})")

    def patch_phases(self) -> list[tuple[int, float]]:
        """The patch schedule as (size, fraction of the stage's steps), sizes growing; [] when off."""
        if not self.patch_schedule:
            return []
        try:
            phases = [(int(size), float(fraction)) for size, fraction in
                      (part.split(":") for part in self.patch_schedule.split(","))]
        except ValueError:
            phases = []
        sizes, fractions = [size for size, _ in phases], [fraction for _, fraction in phases]
        if (not phases or any(size <= 0 or size % 8 for size in sizes) or sizes != sorted(sizes)
                or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6):
            raise ValueError(f"patch_schedule {self.patch_schedule!r}: write SIZE:FRACTION,... with sizes that are "
                             f"multiples of 8 in growing order and fractions that sum to 1, e.g. 64:0.5,128:0.5")
        return phases

    def patch_size_at(self, step: int, steps: int) -> int | None:
        """The patch size of a stage's `step` of `steps` under the schedule (None: the data's)."""
        reached = 0.0
        for size, fraction in self.patch_phases():
            reached += fraction
            if step < reached * steps:
                return size
        return self.patch_phases()[-1][0] if self.patch_schedule else None

    def model_config(self) -> ModelConfig:
        return ModelConfig.preset(self.preset, estimator_design=self.estimator_design,
                                  estimator_input=self.estimator_input, db_film_init=self.db_film_init,
                                  tone_head=self.tone_head)

    def to_json(self) -> str:
        paths = {"out_dir": str(self.out_dir), "init_from": self.init_from and str(self.init_from)}
        return json.dumps({**asdict(self), **paths}, indent=2)


def check_same_run(cfg: TrainConfig) -> None:
    """A run folder that already holds a run must hold this one (its experiment fields equal),
    or resuming would mix two experiments; runtime fields (device, progress, ...) may differ."""
    saved = cfg.out_dir / "train_config.json"
    if not saved.is_file():
        return
    old, new = json.loads(saved.read_text()), json.loads(cfg.to_json())
    defaults = json.loads(TrainConfig(out_dir=cfg.out_dir).to_json())  # a field added since counts as its default
    changed = sorted(k for k in new.keys() - runtime_fields(TrainConfig) if old.get(k, defaults[k]) != new[k])
    if changed:
        raise ValueError(f"{cfg.out_dir} holds a run with other settings ({', '.join(changed)}); "
                         f"rerun with that run's settings to resume it, or use another --out")


def contrast_labels(tasks: list[str], severity: torch.Tensor | None, bins: int) -> list[str]:
    """What the contrastive term clusters by: the task, and with `bins` the severity bin of each
    synthetic patch ("denoise:2"); a patch of unknown severity (NaN, a real pair) keeps its task."""
    if not bins or severity is None:
        return tasks
    return [task if math.isnan(level) else f"{task}:{min(int(level * bins), bins - 1)}"
            for task, level in zip(tasks, severity.tolist())]


def dataset_tasks(dataset: Dataset) -> tuple[str, ...]:
    """The task labels a dataset's items carry (a TaskMixture's components', or its own), sorted."""
    tasks = {getattr(part, "task", None) for part in getattr(dataset, "datasets", [dataset])}
    if None in tasks:
        raise ValueError("the readout term and the task balance need a dataset whose parts name their task (a "
                         "`task` attribute, as lupi_core.data's datasets and a recipe's mixture have)")
    return tuple(sorted(tasks))


def warm_start_file(folder: Path, weights_file: str, kind: str) -> Path:
    """The weights `--init-from` reads: a run folder's `weights_file`, or else the one exported
    `NAME-<kind>.safetensors` in the folder (`assets/` holds the shipped model under those names)."""
    if (folder / weights_file).is_file():
        return folder / weights_file
    exported = sorted(folder.glob(exported_name("*", kind)))
    if len(exported) == 1:
        return exported[0]
    found = f"{len(exported)} files named {exported_name('*', kind)}" if exported else "neither"
    raise FileNotFoundError(f"--init-from {folder}: expected {weights_file} (a run folder) or one exported "
                            f"{exported_name('NAME', kind)} (like assets/), found {found}")


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to `peak`, then cosine decay to zero at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class SampleIndices(Sampler[int]):
    """Global sample indices for this process, from `start_step` on, forever.

    Step s of rank r draws samples s * world * batch + r * batch + [0, batch): the
    data depend only on the step, so a resumed or re-sharded run sees the same data.
    """

    def __init__(self, start_step: int, batch_size: int, rank: int, world: int, offset: int):
        self.start_step, self.batch_size, self.rank, self.world, self.offset = start_step, batch_size, rank, world, offset

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            base = self.offset + (step * self.world + self.rank) * self.batch_size
            yield from range(base, base + self.batch_size)
            step += 1


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def from_env(device_type: str) -> Distributed:
        """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return Distributed()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
        return Distributed(dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")))

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


# -- one stage ---------------------------------------------------------------------------------
LossFn = Callable[[nn.Module, dict], dict[str, torch.Tensor]]  # (model, possibly DDP-wrapped; batch)


@dataclass
class Stage:
    """One training stage: which model trains, on which loss, for how many steps, into which file."""

    name: str
    model: nn.Module
    loss_fn: LossFn
    steps: int
    weights_file: str
    data_offset: int
    evaluate: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]  # (model, degraded, clean)
    readout: DegradationReadout | None = None  # trained beside the model, not saved with it
    predictor: DegradationPredictor | None = None  # Stage 1's D_S (bottleneck, student-prior share), likewise
    balance: TaskBalance | None = None  # the tasks' loss weights, kept in the checkpoint

    @property
    def companions(self) -> dict[str, nn.Module]:
        """The modules trained beside the model: in the optimizer and the checkpoint, not in its weights file."""
        return {name: module for name, module in (("readout", self.readout), ("predictor", self.predictor))
                if module is not None}


class WeightAverage:
    """An exponential moving average of a model's weights, the weights a stage validates and
    saves when `ema_decay` > 0. The decay ramps up as (1 + n) / (10 + n) over the first n
    updates, so that the average of a short run is not held near its random start."""

    def __init__(self, model: nn.Module, decay: float):
        self.model = copy.deepcopy(model).requires_grad_(False).eval()
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, current in zip(self.model.state_dict().values(), model.state_dict().values()):
            if average.dtype.is_floating_point:
                average.lerp_(current, 1 - decay)
            else:
                average.copy_(current)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = state["updates"]


def restorer_batch(batch: dict, size: int | None, prior_context: bool) -> dict:
    """The batch R trains on: its centre size x size crops; with `prior_context` the whole
    crops stay beside them as `prior_degraded` and `prior_clean`, what D_T and D_S read."""
    cropped = centre_crop(batch, size)
    if prior_context:
        cropped = {**cropped, "prior_degraded": batch["degraded"], "prior_clean": batch["clean"]}
    return cropped


def centre_crop(batch: dict, size: int | None) -> dict:
    """The batch's images cropped to their central size x size (the data's patches are random
    crops already, so a centre crop of one is another); `size` None keeps them whole."""
    height, width = batch["degraded"].shape[-2:]
    if size is None or (size, size) == (height, width):
        return batch
    if size > min(height, width):
        raise ValueError(f"the patch schedule asks for {size}-px patches but the data's are {height}x{width}; "
                         f"load the data at the schedule's largest size (train --patch-size {size})")
    top, left = (height - size) // 2, (width - size) // 2
    return {k: v[..., top:top + size, left:left + size] if torch.is_tensor(v) and v.dim() == 4 else v
            for k, v in batch.items()}


def counterfactual(batch: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(rows, images) for the severity wrong prior: which patches have a counterfactual (the same
    patch at another severity, data.with_counterfactuals) and those images; None without them."""
    if "counterfactual" not in batch:
        return None
    images = batch["counterfactual"]
    return ~torch.isnan(batch["counterfactual_severity"]).to(images.device), images


def to_device(batch: dict, device: torch.device) -> dict:
    """The batch's images on `device`, channels-last; its other entries (task names, ...) as they are."""
    return {k: v.to(device, memory_format=torch.channels_last, non_blocking=True)
            if torch.is_tensor(v) and v.dim() == 4 else v for k, v in batch.items()}


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64))}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), 624, 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def validation_patches(dataset: Dataset, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` (degraded, clean) uint8 patches from sample indices no training step reaches
    (see data.HELD_OUT_DRAWS), for monitoring PSNR during training."""
    items = (dataset[HELD_OUT_DRAWS + i] for i in range(count))
    return [(quantize(to_float_image(item["degraded"])), quantize(to_float_image(item["clean"]))) for item in items]


class Trainer:
    """Runs the stages a mode needs, resuming from `out_dir/checkpoints/` when present."""

    def __init__(self, cfg: TrainConfig, dataset: Dataset, val_pairs: list[tuple[np.ndarray, np.ndarray]] = (),
                 data_source: dict | None = None, final_dataset: Dataset | None = None):
        """`data_source` says where `dataset` came from (recipe, folder, task weights); it is saved
        as data.json beside train_config.json, so that a run folder names its data mixture.
        `final_dataset`: what the last `cfg.final_share` of Stage 2 draws from."""
        if (cfg.final_share > 0) != (final_dataset is not None):
            raise ValueError("final_share > 0 needs a final dataset (train --final-recipe / --final-task-weight), "
                             "and a final dataset needs final_share > 0")
        if final_dataset is not None and cfg.task_balance:
            raise ValueError("the task balance measures one mixture; it does not combine with final_share")
        self.cfg, self.dataset, self.val_pairs, self.final_dataset = cfg, dataset, list(val_pairs), final_dataset
        if cfg.wrong_prior_source == "severity" and cfg.wrong_prior_weight:
            for data in (dataset, final_dataset):
                if data is not None:
                    with_counterfactuals(data)
        self.dist = Distributed.from_env(resolve_device(cfg.device).type)
        self.device = resolve_device(cfg.device, self.dist.local_rank)
        keep_freed_memory(self.device.type)
        self.model_cfg = cfg.model_config()
        self.checkpoint_dir = cfg.out_dir / "checkpoints"
        check_same_run(cfg)
        if self.dist.is_main:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            (cfg.out_dir / "train_config.json").write_text(cfg.to_json())
            if data_source is not None:
                (cfg.out_dir / "data.json").write_text(json.dumps(data_source, indent=2))

    def run(self) -> dict[str, Path]:
        """Train every stage of the mode; returns the weights files written."""
        outputs, stage1 = {}, None
        if self.cfg.mode == "lupi":
            stage1 = self._stage1()
            outputs["teacher"] = self._run_stage(stage1)  # its companions trained, or restored from its checkpoint
        outputs["student"] = self._run_stage(self._stage2(stage1))
        return outputs

    # -- the stages ----------------------------------------------------------------------------
    def _stage1(self) -> Stage:
        torch.manual_seed(self.cfg.seed)
        teacher = build_teacher(self.model_cfg)
        self._warm_start(teacher, TEACHER_FILE, "teacher")

        prior_terms = self.cfg.stage1_prior_terms
        readout = self._readout() if prior_terms else None
        bottleneck, share = self.cfg.prior_bottleneck, self.cfg.student_prior_share
        predictor = None
        # a D_S beside D_T: the conditional prior p(d | I_d) the bottleneck counts d_T's nats against,
        # or the prior R_T reads on the student-prior share
        if bottleneck or share:
            student = build_student(self.model_cfg)
            self._warm_start(student, STUDENT_FILE, "student")
            predictor = student.predictor.to(self.device)

        def loss_fn(model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
            degraded = batch["degraded"]
            prior_inputs = batch.get("prior_degraded", degraded), batch.get("prior_clean", batch["clean"])
            student_prior = predictor(prior_inputs[0]) if predictor is not None else None
            stand_in = None
            if share:
                stand_in = (torch.rand(len(degraded), device=degraded.device) < share, student_prior)
            outputs = model(degraded, batch["clean"], wrong_prior=prior_terms and self.cfg.wrong_prior_weight > 0,
                            channel_noise=self.cfg.prior_noise if bottleneck else 0.0, stand_in=stand_in,
                            prior_inputs=prior_inputs, counterfactual=counterfactual(batch))
            losses = self._reconstruction(outputs[0], batch)
            if bottleneck:
                nats = prior_information(outputs[1] - student_prior, self.cfg.prior_noise)
                losses = {**losses, "loss": losses["loss"] + bottleneck * nats, "prior_nats": nats}
            if share:
                align = alignment_loss(student_prior.float(), outputs[1].float(), self.cfg.align)
                losses = {**losses, "loss": losses["loss"] + self.cfg.align.weight * align, "align": align}
            return self._with_prior_terms(losses, outputs, batch, readout) if prior_terms else losses

        return Stage("stage1", teacher, loss_fn, self.cfg.stage1_steps, TEACHER_FILE, 0,
                     lambda model, deg, clean: model(deg, clean)[0], readout, predictor, self._balance())

    def _stage2(self, stage1: Stage | None = None) -> Stage:
        torch.manual_seed(self.cfg.seed + 1)
        student = build_student(self.model_cfg, with_predictor=self.cfg.mode != "no-predictor")
        estimator = None
        if self.cfg.mode == "lupi":
            teacher = load_model(self.cfg.out_dir / TEACHER_FILE, kind="teacher", device=self.device)
            estimator = teacher.estimator.requires_grad_(False).eval()  # D_T frozen
            if self.cfg.student_from_teacher and self.cfg.init_from is None:
                student.restorer.load_state_dict(teacher.restorer.state_dict())
        self._warm_start(student, STUDENT_FILE, "student")
        if self.cfg.predictor_only:  # R_T routes by its prior (R_S started from it learns to ignore d_S)
            student.restorer.load_state_dict(teacher.restorer.state_dict())
        if self.cfg.predictor_only or self.cfg.freeze_restorer:
            student.restorer.requires_grad_(False)
        align_cfg = self.cfg.align
        with_prior = self.cfg.mode != "no-predictor"
        readout = self._readout() if with_prior else None
        if readout is not None and stage1 is not None and stage1.readout is not None:
            readout.load_state_dict(stage1.readout.state_dict())  # d_S is read the way d_T was, to begin with
        if stage1 is not None and stage1.predictor is not None:  # D_S goes on from where the bottleneck left it
            student.predictor.load_state_dict(stage1.predictor.state_dict())

        def loss_fn(model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
            outputs = model(batch["degraded"], wrong_prior=with_prior and self.cfg.wrong_prior_weight > 0,
                            prior_input=batch.get("prior_degraded"), counterfactual=counterfactual(batch))
            restored, student_prior = outputs[:2]
            losses = self._reconstruction(restored, batch)
            if with_prior:
                losses = self._with_prior_terms(losses, outputs, batch, readout)
            if estimator is None:
                return losses
            with torch.no_grad():
                teacher_prior = estimator(batch.get("prior_degraded", batch["degraded"]),
                                          batch.get("prior_clean", batch["clean"]))
            align = alignment_loss(student_prior.float(), teacher_prior.float(), align_cfg)
            return {**losses, "loss": losses["loss"] + align_cfg.weight * align, "align": align}

        return Stage("stage2", student, loss_fn, self.cfg.stage2_steps, STUDENT_FILE, STAGE2_DRAWS,
                     lambda model, deg, clean: model(deg)[0], readout, balance=self._balance())

    def _readout(self) -> DegradationReadout | None:
        """The stage's linear read of the prior, when the readout term is on."""
        if not self.cfg.readout_weight:
            return None
        tasks = set(dataset_tasks(self.dataset))
        if self.final_dataset is not None:
            tasks |= set(dataset_tasks(self.final_dataset))
        return DegradationReadout(self.model_cfg.prior_dim, tuple(sorted(tasks))).to(self.device)

    def _balance(self) -> TaskBalance | None:
        """The stage's task balance, when it is on."""
        if not self.cfg.task_balance:
            return None
        probes = probe_batches(self.dataset, dataset_tasks(self.dataset), self.cfg.balance_patches)
        return TaskBalance(probes, self.cfg.balance_every, self.cfg.task_balance)

    def _reconstruction(self, restored: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        """L_recon: the L1 of eq. 3 (its coarse part squared when coarse_scale > 0), plus the spectrum
        L1 when frequency_weight > 0, each patch weighted by its task's balance weight when the
        batch carries them ("loss_weight")."""
        clean, weights = batch["clean"], batch.get("loss_weight")
        l1 = reconstruction_loss(restored, clean, weights, self.cfg.coarse_block, self.cfg.coarse_scale)
        losses = {"loss": l1, "l1": l1}
        if weights is not None or self.cfg.coarse_scale:  # the plain L1 too, comparable with the paper's runs
            losses["plain_l1"] = reconstruction_loss(restored.detach(), clean)
        if self.cfg.frequency_weight:
            spectrum = frequency_loss(restored, clean, weights)
            losses.update(loss=l1 + self.cfg.frequency_weight * spectrum, spectrum=spectrum)
        return losses

    def _with_prior_terms(self, losses: dict[str, torch.Tensor], outputs: tuple, batch: dict,
                          readout: DegradationReadout | None) -> dict[str, torch.Tensor]:
        """Add the wrong-prior, contrast and readout terms to a stage's losses, when their weights are on.
        `outputs` is (restored, prior[, restored under the next sample's prior])."""
        cfg = self.cfg
        if cfg.wrong_prior_weight:
            tasks = list(batch["task"])
            different = torch.tensor([a != b for a, b in zip(tasks, tasks[-1:] + tasks[:-1])],
                                     dtype=torch.float32, device=outputs[0].device)
            if "counterfactual" in batch:  # those rows' wrong prior is their own patch's at another severity
                different = torch.maximum(different, counterfactual(batch)[0].float())
            wrong = wrong_prior_loss(outputs[0], outputs[2], batch["clean"], different, cfg.wrong_prior_margin)
            losses = {**losses, "loss": losses["loss"] + cfg.wrong_prior_weight * wrong, "wrong_prior": wrong}
        if cfg.contrast_weight:
            labels = contrast_labels(list(batch["task"]), batch.get("severity"), cfg.contrast_severity_bins)
            contrast = prior_contrast_loss(outputs[1], labels, cfg.contrast_temperature)
            losses = {**losses, "loss": losses["loss"] + cfg.contrast_weight * contrast, "contrast": contrast}
        if readout is not None:
            logits, severity = readout(outputs[1])
            known = batch.get("severity")
            term = readout_loss(logits, severity, readout.task_indices(list(batch["task"]), logits.device),
                                None if known is None else known.to(logits.device))
            losses = {**losses, "loss": losses["loss"] + cfg.readout_weight * term, "readout": term}
        return losses

    def _warm_start(self, model: nn.Module, weights_file: str, kind: str) -> None:
        if self.cfg.init_from is None:
            return
        path = warm_start_file(self.cfg.init_from, weights_file, kind)
        earlier = load_model(path, kind=kind)
        # db_film_init only chooses starting values, which the loaded weights replace; a TC the
        # earlier model lacks starts at the identity
        adds_tone = self.model_cfg.tone_head and not earlier.cfg.tone_head
        same = replace(earlier.cfg, db_film_init=self.model_cfg.db_film_init,
                       tone_head=earlier.cfg.tone_head or self.model_cfg.tone_head)
        if same != self.model_cfg:
            raise ValueError(f"{path} is a different architecture from preset "
                             f"{self.cfg.preset!r}; warm-start from a run of the same preset")
        model.load_state_dict(earlier.state_dict(), strict=not adds_tone)

    # -- the loop ------------------------------------------------------------------------------
    def _run_stage(self, stage: Stage) -> Path:
        """Train one stage to its last step (resuming from its checkpoint) and save its weights."""
        weights_path = self.cfg.out_dir / stage.weights_file
        checkpoint_path = self.checkpoint_dir / f"{stage.name}.pt"
        # channels-last routes the depthwise convs to oneDNN: about 2x faster on CPU
        model = stage.model.to(self.device, memory_format=torch.channels_last)
        params = [p for p in model.parameters() if p.requires_grad]
        for companion in stage.companions.values():
            params += list(companion.parameters())
        optimizer = torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay, betas=(0.9, 0.999))
        average = WeightAverage(model, self.cfg.ema_decay) if self.cfg.ema_decay else None
        step = self._resume(stage, checkpoint_path, model, optimizer, average)
        if step >= stage.steps and weights_path.is_file():
            return weights_path
        started = time.perf_counter()
        precision = self._train(stage, model, optimizer, average, step, checkpoint_path, self._trim_log(stage, step))
        if self.dist.is_main:
            info = self._weights_info(stage, stage.steps, precision,
                                      {"seconds_this_sitting": round(time.perf_counter() - started, 1)})
            save_model(average.model if average else model, weights_path, info=info)
        self.dist.barrier()
        return weights_path

    def _weights_info(self, stage: Stage, steps: int, precision: str, extra: dict) -> dict:
        """The training facts a weights file carries in its metadata."""
        info = {"stage": stage.name, "mode": self.cfg.mode, "steps": steps,
                "batch_size": self.cfg.batch_size * self.dist.world, **extra, "precision": precision,
                "weights": f"moving average, decay {self.cfg.ema_decay}" if self.cfg.ema_decay else "last step"}
        if self.cfg.init_from is not None:
            info["init_from"] = str(self.cfg.init_from)  # the steps above came on top of that run's
        return info

    def _train(self, stage: Stage, model: nn.Module, optimizer: torch.optim.Optimizer,
               average: WeightAverage | None, step: int, checkpoint_path: Path, elapsed: float) -> str:
        """The training loop from `step` to the stage's end, `elapsed` seconds of earlier sittings in;
        returns the precision it ran at."""
        cfg, device = self.cfg, self.device
        with_context = cfg.prior_context > 0
        forward_model = DistributedDataParallel(model) if self.dist.world > 1 else model
        batches = self._batches(stage, step)
        dtype = autocast_dtype(cfg.precision, device)
        autocast = torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
        precision = "bf16 autocast" if dtype is not None else "fp32"
        if self.dist.is_main:
            print(f"[{stage.name}] precision: {precision}")
        bar = tqdm(total=stage.steps, initial=step, desc=stage.name, disable=not (cfg.progress and self.dist.is_main),
                   dynamic_ncols=True)
        model.train()
        started = time.perf_counter() - elapsed
        while step < stage.steps:
            patch_size = cfg.patch_size_at(step, stage.steps)
            batch = to_device(restorer_batch(next(batches), patch_size, with_context), device)
            if stage.balance is not None:
                if step % stage.balance.every == 0:
                    with autocast:
                        stage.balance.measure(model, lambda m, b: self._reconstruction(
                            stage.evaluate(m, b["degraded"], b["clean"]), b)["loss"],
                            lambda b: to_device(restorer_batch(b, patch_size, with_context), device))
                batch["loss_weight"] = stage.balance.per_sample(list(batch["task"]), device)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, stage.steps, cfg.lr, cfg.warmup_steps)
            with autocast:
                losses = stage.loss_fn(forward_model, batch)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            if self.dist.world > 1:  # companions are outside DDP: average their gradients by hand
                for companion in stage.companions.values():
                    for parameter in companion.parameters():
                        torch.distributed.all_reduce(parameter.grad)
                        parameter.grad /= self.dist.world
            optimizer.step()
            if average is not None:
                average.update(model)
            step += 1
            bar.update(1)
            if self.dist.is_main and (step % cfg.log_every == 0 or step == stage.steps):
                record = {"step": step, "lr": optimizer.param_groups[0]["lr"], "patch": batch["degraded"].shape[-1],
                          **{k: round(v.item(), 5) for k, v in losses.items()}, "precision": precision,
                          **({"task_weights": {t: round(w, 4) for t, w in stage.balance.weights.items()}}
                             if stage.balance is not None else {}),
                          "seconds": round(time.perf_counter() - started, 2)}
                self._log(stage, average.model if average else model, record, bar)
            if step % cfg.checkpoint_every == 0 or step == stage.steps:
                self._save_checkpoint(checkpoint_path, model, optimizer, average, step, stage)
            if self.dist.is_main and cfg.snapshot_every and step % cfg.snapshot_every == 0 and step < stage.steps:
                save_model(average.model if average else model,
                           cfg.out_dir / "snapshots" / f"{stage.name}-step{step}.safetensors",
                           info=self._weights_info(stage, step, precision, {"of_steps": stage.steps}))
        bar.close()
        return precision

    def _batches(self, stage: Stage, step: int) -> Iterator[dict]:
        """The stage's batches from `step` to its end: the main mixture's, and in Stage 2's last
        `final_share` of steps the final mixture's. Sample indices run on across the switch, so
        that a resumed run draws what an unbroken one would."""
        switch = stage.steps
        if stage.name == "stage2" and self.final_dataset is not None:
            switch = round(stage.steps * (1 - self.cfg.final_share))
        for dataset, start, end in ((self.dataset, step, switch), (self.final_dataset, max(step, switch), stage.steps)):
            if start < end:
                loader = DataLoader(dataset, batch_size=self.cfg.batch_size, num_workers=self.cfg.num_workers,
                                    sampler=SampleIndices(start, self.cfg.batch_size, self.dist.rank, self.dist.world,
                                                          stage.data_offset))
                yield from islice(loader, end - start)

    def _resume(self, stage: Stage, checkpoint_path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                average: WeightAverage | None) -> int:
        """The step to go on from: the checkpoint's (model, optimizer, average and RNG restored), else 0."""
        if not checkpoint_path.is_file():
            return 0
        state = torch.load(checkpoint_path, map_location=self.device, weights_only=True)
        model.load_state_dict(state["model"])
        for name, companion in stage.companions.items():
            companion.load_state_dict(state[name])
        if stage.balance is not None:
            stage.balance.weights = state["task_balance"]
        optimizer.load_state_dict(state["optimizer"])
        if average is not None:
            average.load_state_dict(state["average"])
        _set_rng_state(state["rng"])
        if self.dist.is_main:
            print(f"[{stage.name}] resuming from {checkpoint_path} at step {state['step']}")
        return state["step"]

    def _trim_log(self, stage: Stage, step: int) -> float:
        """Drop the log lines past `step`, which a resumed run computes again, and return the
        wall seconds the kept lines had reached (the log's `seconds` run on across sittings)."""
        path = self.cfg.out_dir / f"{stage.name}_log.jsonl"
        if not self.dist.is_main or not path.is_file():
            return 0.0
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))
        return json.loads(kept[-1])["seconds"] if kept else 0.0

    def _log(self, stage: Stage, model: nn.Module, record: dict, bar: tqdm) -> None:
        """One log line (JSON, in out_dir/STAGE_log.jsonl), with validation PSNR every val_every steps."""
        bar.set_postfix({k: v for k, v in record.items() if k not in ("step", "lr", "patch", "precision", "seconds")})
        step = record["step"]
        if self.val_pairs and (step % self.cfg.val_every == 0 or step == stage.steps):
            record["val_psnr"] = self._validate(stage, model)
            bar.write(f"[{stage.name}] step {step}: validation PSNR {record['val_psnr']:.2f} dB")
        with (self.cfg.out_dir / f"{stage.name}_log.jsonl").open("a") as log:
            log.write(json.dumps(record) + "\n")

    def _save_checkpoint(self, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                         average: WeightAverage | None, step: int, stage: Stage) -> None:
        if self.dist.is_main:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                     "rng": _rng_state()}
            for name, companion in stage.companions.items():
                state[name] = companion.state_dict()
            if stage.balance is not None:
                state["task_balance"] = stage.balance.weights
            if average is not None:
                state["average"] = average.state_dict()
            tmp = path.with_suffix(".tmp")
            torch.save(state, tmp)
            os.replace(tmp, path)  # atomic: a kill mid-write keeps the previous checkpoint
        self.dist.barrier()

    @torch.no_grad()
    def _validate(self, stage: Stage, model: nn.Module) -> float:
        was_training = model.training
        model.eval()
        scores = []
        for degraded, clean in self.val_pairs:
            deg, cln = to_tensor(degraded).to(self.device), to_tensor(clean).to(self.device)
            restored = forward_padded(lambda d, c: stage.evaluate(model, d, c), deg, cln)
            scores.append(psnr(to_float_image(restored), clean))
        model.train(was_training)
        return round(float(np.mean(scores)), 3)
