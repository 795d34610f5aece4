"""The degradation prior d: privileged estimator D_T, student predictor D_S, and
the Degradation-aware Block DB that injects d into the restorer (Figure 3).

- D_T (Figure 3a) sees the degraded image I_d *and* the clean image I_c, the
  privileged information (or, with `estimator_input="residual"`, I_d - I_c). `siamese` (the paper's design) runs one shared
  encoder on each and fuses the features with a 3x3 conv; `concat` and `add`
  are the Table 4 alternatives that combine the images before one encoder.
- D_S (Figure 3b) is one branch of the same encoder, seeing I_d alone.
- DB (Figure 3c, eq. 1-2): [gamma, beta] = MLP(d); F' = F + Conv3x3(GELU(gamma * F + beta)).
- PriorTone, TC (not in the paper; `tone_head`): a colour transform of the whole image that d sets,
  applied before R's U-Net, so that global degradations' colour offsets leave the U-Net's steps.
- DegradationReadout (not in the paper; training only, `--readout-weight`): a linear read of d
  that must name each patch's task and its severity, so that d carries what is wrong.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


class ConvEncoder(nn.Sequential):
    """Four conv layers, H x W -> H/8 x W/8 (strides 1, 2, 2, 2), GELU between."""

    def __init__(self, in_channels: int, channels: tuple[int, int, int, int]):
        layers: list[nn.Module] = []
        for out_channels, stride in zip(channels, (1, 2, 2, 2)):
            layers += [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1), nn.GELU()]
            in_channels = out_channels
        super().__init__(*layers)


def prior_head(in_features: int, hidden: int, prior_dim: int) -> nn.Sequential:
    """Global average pooling already done; the MLP that maps pooled features to d."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Linear(hidden, prior_dim))


class PrivilegedEstimator(nn.Module):
    """D_T: (I_d, I_c) -> d_T. Used in Stage 1 (trained) and Stage 2 (frozen)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.design, self.input = cfg.estimator_design, cfg.estimator_input
        width = cfg.estimator_channels[-1]
        self.encoder = ConvEncoder(6 if self.design == "concat" else 3, cfg.estimator_channels)
        fused_in = 2 * width if self.design == "siamese" else width
        self.fusion = nn.Sequential(nn.Conv2d(fused_in, width, 3, padding=1), nn.GELU())
        self.head = prior_head(width, cfg.estimator_mlp_hidden, cfg.prior_dim)

    def forward(self, degraded: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        if self.input == "residual":
            clean = degraded - clean
        if self.design == "siamese":
            features = torch.cat([self.encoder(degraded), self.encoder(clean)], dim=1)
        elif self.design == "concat":
            features = self.encoder(torch.cat([degraded, clean], dim=1))
        else:
            features = self.encoder(degraded + clean)
        return self.head(self.fusion(features).mean(dim=(2, 3)))


class DegradationPredictor(nn.Module):
    """D_S: I_d -> d_S, one branch of D_T's encoder. The only estimator at inference."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.encoder = ConvEncoder(3, cfg.estimator_channels)
        self.head = prior_head(cfg.estimator_channels[-1], cfg.estimator_mlp_hidden, cfg.prior_dim)

    def pooled_features(self, degraded: torch.Tensor) -> torch.Tensor:
        """Encoder features averaged over space; averaging these over tiles of a
        large image and applying `head` approximates the whole-image prior."""
        return self.encoder(degraded).mean(dim=(2, 3))

    def forward(self, degraded: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled_features(degraded))


class DegradationAwareBlock(nn.Module):
    """DB, eq. (1)-(2): FiLM-modulate F by the prior, then a residual 3x3 conv.

    gamma is parameterised as 1 + delta and the conv starts at zero, so a new DB
    is the identity: inserting DBs into a trained restorer (or starting R_S from
    R_T) does not disturb it at step 0. The MLP's last layer starts at zero too
    (`db_film_init="zero"`) or at PyTorch's default (`"random"`).
    """

    def __init__(self, channels: int, prior_dim: int, hidden: int, film_init: str = "zero"):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(prior_dim, hidden), nn.GELU(), nn.Linear(hidden, 2 * channels))
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        for layer in (self.mlp[-1], self.conv) if film_init == "zero" else (self.conv,):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, features: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        delta_gamma, beta = self.mlp(prior)[:, :, None, None].chunk(2, dim=1)
        return features + self.conv(F.gelu((1 + delta_gamma) * features + beta))


class PriorTone(nn.Module):
    """TC: I_d -> (1 + A(d)) I_d + b(d), one 3x3 colour matrix and offset per image, set by d.

    Haze's airlight and low light's exposure are global: the prior carries them and a patch does
    not show them (docs/design.md), and most of their remaining error is one colour offset per
    patch, whose L1 gradient sets the shared steps and holds back the local tasks. With TC the
    prior takes that offset off directly and the U-Net restores what is local. The MLP's last
    layer starts at zero, so a new TC is the identity (a warm start from a model without one
    keeps that model's output).
    """

    def __init__(self, prior_dim: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(prior_dim, hidden), nn.GELU(), nn.Linear(hidden, 12))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, image: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        params = self.mlp(prior)
        matrix, offset = params[:, :9].unflatten(1, (3, 3)), params[:, 9:, None, None]
        return image + torch.einsum("bij,bjhw->bihw", matrix.to(image.dtype), image) + offset.to(image.dtype)


class DegradationReadout(nn.Module):
    """A linear read of the prior d: logits over the training tasks and a severity in [0, 1].

    Used only in training, by the readout term (losses.readout_loss): eq. 3 and eq. 4 give d no
    reason to carry a degradation R can see for itself (noise, blur), and a linear read that must
    name it does. It is not part of D_T or D_S, so the weights files keep their layout.
    """

    def __init__(self, prior_dim: int, tasks: tuple[str, ...]):
        super().__init__()
        self.tasks = tuple(tasks)
        self.linear = nn.Linear(prior_dim, len(self.tasks) + 1)

    def forward(self, prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(task logits B x T, severity B)."""
        out = self.linear(prior.float())
        return out[:, :-1], torch.sigmoid(out[:, -1])

    def task_indices(self, tasks: list[str], device: torch.device) -> torch.Tensor:
        return torch.tensor([self.tasks.index(task) for task in tasks], device=device)
