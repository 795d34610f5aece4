"""The training objectives: L1 reconstruction (eq. 3) and the alignment term of eq. 4.

The reconstruction term may add an L1 between the images' spectra (off by default;
the paper trains with L1 alone). MoCE-IR, the strongest published row on
deblurring, trains with L1 plus such a term: blur removes high frequencies whose
pixel-domain L1 is small, and the spectrum weighs them as much as the rest.

Two optional terms (off by default; the paper has neither) make the prior matter:
`wrong_prior_loss` asks R to restore worse under another task's prior, and
`prior_contrast_loss` clusters priors by task, and `readout_loss` asks a linear read of the
prior to name each patch's task and severity. See docs/design.md.

`prior_information` is the price of the prior bottleneck (`--prior-bottleneck`, not in the
paper): R_T reads d_T through a Gaussian channel, and Stage 1 pays for the nats d_T sends
beyond what a D_S trained beside it predicts (a conditional VAE's KL), so that d_T carries the
clean image's content, which D_S cannot predict, only where it is worth its price.

The paper says only that L_align is "a KL divergence" between d_S and d_T. The
default follows KDSR, the closest published teacher-student prior distillation:
KL(softmax(d_T / tau) || softmax(d_S / tau)) over the prior's dimensions with
tau = 0.15 and weight 1. L1 and MSE alignments are offered for comparison.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .settings import setting

ALIGN_FORMS = ("kl", "l1", "mse")


@dataclass(frozen=True)
class AlignConfig:
    """L_align of eq. 4: its form, the KL's softmax temperature, and lambda_align."""

    form: str = setting("kl", flag="align", choices=ALIGN_FORMS, help="form of L_align (eq. 4)")
    temperature: float = setting(0.15, flag="align-temperature", help="the KL's softmax temperature")
    weight: float = setting(1.0, flag="align-weight", help="lambda_align of eq. 4")

    def __post_init__(self) -> None:
        if self.form not in ALIGN_FORMS:
            raise ValueError(f"alignment form must be one of {ALIGN_FORMS}, got {self.form!r}")
        if self.temperature <= 0:
            raise ValueError("alignment temperature must be positive")


def _weighted_mean(per_sample: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    return per_sample.mean() if weights is None else (per_sample * weights).mean()


def reconstruction_loss(restored: torch.Tensor, clean: torch.Tensor, weights: torch.Tensor | None = None,
                        coarse_block: int = 16, coarse_scale: float = 0.0) -> torch.Tensor:
    """L1 between the restoration and the clean image (eq. 3, and L_recon of eq. 4); `weights`,
    one per sample, scale each patch's L1 (balance.py), None weighs them equally.

    With `coarse_scale` > 0 the error's means over coarse_block x coarse_block blocks are scored
    by a squared error, mean(m^2) / (2 coarse_scale), and the rest of the error by L1. L1's
    gradient is a sign per pixel, so an error that is smooth over the patch (haze's, low
    light's) pushes with every pixel at full strength however small it is; squared, its push
    shrinks with it, and equals L1's where the block mean is coarse_scale (docs/results/task-balance/).
    """
    error = restored.float() - clean.float()
    if not coarse_scale:
        return _weighted_mean(error.abs().mean(dim=(1, 2, 3)), weights)
    height, width = error.shape[-2:]
    if height % coarse_block or width % coarse_block:
        raise ValueError(f"the coarse error term needs patches whose sides are multiples of {coarse_block} px, "
                         f"got {height}x{width}; change the patch size or --coarse-block")
    coarse = F.avg_pool2d(error, coarse_block)
    fine = error - F.interpolate(coarse, scale_factor=coarse_block, mode="nearest")
    per_sample = fine.abs().mean(dim=(1, 2, 3)) + coarse.square().mean(dim=(1, 2, 3)) / (2 * coarse_scale)
    return _weighted_mean(per_sample, weights)


def frequency_loss(restored: torch.Tensor, clean: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """L1 between the 2-D spectra (real and imaginary parts) of the restoration and the clean image.

    The FFT is orthonormal, so the term does not grow with the patch size; at 128 px,
    MoCE-IR's weight of 0.1 on an unnormalised FFT is a weight of 12.8 here. `weights` as in
    reconstruction_loss.
    """
    spectrum = torch.fft.rfft2(restored.float() - clean.float(), norm="ortho")
    return _weighted_mean(torch.view_as_real(spectrum).abs().mean(dim=(1, 2, 3, 4)), weights)


def wrong_prior_loss(restored: torch.Tensor, wrong: torch.Tensor, clean: torch.Tensor, different: torch.Tensor,
                     margin: float) -> torch.Tensor:
    """The true prior must restore better than another task's prior by `margin` (per-sample L1):
    mean over pairs of different tasks of relu(margin + L1(own) - L1(wrong)). As CPL's negative
    prompts: it is zero once the prior decides the restoration, and pulls R towards using it."""
    own_error = (restored.float() - clean.float()).abs().mean(dim=(1, 2, 3))
    wrong_error = (wrong.float() - clean.float()).abs().mean(dim=(1, 2, 3))
    gap = F.relu(margin + own_error - wrong_error) * different
    return gap.sum() / different.sum().clamp_min(1)


def prior_contrast_loss(priors: torch.Tensor, labels: list[str], temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (SupCon) on a batch of priors: each prior's cosine similarity to
    the priors of its own task against all others, so d clusters by degradation. Zero when no
    sample has another of its task (nothing to pull together)."""
    z = F.normalize(priors.float(), dim=1)
    logits = z @ z.T / temperature
    n = len(labels)
    self_mask = torch.eye(n, dtype=torch.bool, device=priors.device)
    same = torch.tensor([[a == b for b in labels] for a in labels], device=priors.device) & ~self_mask
    log_prob = logits - torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    has_positive = same.any(dim=1)
    if not has_positive.any():
        return priors.sum() * 0
    mean_positive = (log_prob * same).sum(dim=1)[has_positive] / same.sum(dim=1)[has_positive]
    return -mean_positive.mean()


def prior_information(excess: torch.Tensor, noise_std: float) -> torch.Tensor:
    """The nats d_T sends through the channel d_T + N(0, s^2 I) beyond a reference d (d_S), with
    excess = d_T - d: KL(N(d_T, s^2 I) || N(d, s^2 I)) = ||excess||^2 / (2 s^2) per patch, averaged
    over the batch."""
    return excess.float().pow(2).sum(dim=1).mean() / (2 * noise_std**2)


def alignment_loss(student_prior: torch.Tensor, teacher_prior: torch.Tensor, cfg: AlignConfig) -> torch.Tensor:
    """L_align of eq. 4: pulls d_S towards the frozen d_T."""
    teacher_prior = teacher_prior.detach()
    if cfg.form == "l1":
        return F.l1_loss(student_prior, teacher_prior)
    if cfg.form == "mse":
        return F.mse_loss(student_prior, teacher_prior)
    log_p_student = F.log_softmax(student_prior / cfg.temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_prior / cfg.temperature, dim=-1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)


def readout_loss(logits: torch.Tensor, severity: torch.Tensor, task_index: torch.Tensor,
                 true_severity: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy of the task logits plus the squared error of the severity, the latter over
    the patches whose severity is known (synthetic ones; NaN elsewhere, or no severities at all)."""
    loss = F.cross_entropy(logits.float(), task_index)
    if true_severity is None:
        return loss
    known = torch.isfinite(true_severity)
    if known.any():
        loss = loss + F.mse_loss(severity.float()[known], true_severity.float()[known])
    return loss
