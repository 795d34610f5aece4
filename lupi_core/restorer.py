"""R: the Restormer U-Net, with Degradation-aware Blocks where the prior enters.

Four encoder levels (dim, 2dim, 4dim, latent 8dim), three decoder levels, a
refinement stage and the global image residual, exactly as Restormer, optionally
after TC, the prior's whole-image colour transform (`tone_head`, not in the paper).
With no DB sites and no TC it *is* Restormer (26,126,644 parameters in the `paper`
preset): the Table 3 "w/o Degradation Predictor" model.
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import Downsample, Upsample, transformer_stage
from .config import ModelConfig
from .prior import DegradationAwareBlock, PriorTone


class Restorer(nn.Module):
    """R_T or R_S: restore(I_d, d). `with_prior=False` builds the plain backbone."""

    def __init__(self, cfg: ModelConfig, with_prior: bool = True):
        super().__init__()
        dim, blocks, heads = cfg.dim, cfg.num_blocks, cfg.heads
        stage = lambda channels, depth, n_heads: transformer_stage(  # noqa: E731
            channels, depth, n_heads, cfg.ffn_expansion_factor, cfg.layernorm_type == "WithBias")

        self.patch_embed = nn.Conv2d(3, dim, 3, padding=1, bias=False)
        self.encoder1 = stage(dim, blocks[0], heads[0])
        self.down1_2 = Downsample(dim)
        self.encoder2 = stage(dim * 2, blocks[1], heads[1])
        self.down2_3 = Downsample(dim * 2)
        self.encoder3 = stage(dim * 4, blocks[2], heads[2])
        self.down3_4 = Downsample(dim * 4)
        self.latent = stage(dim * 8, blocks[3], heads[3])

        self.up4_3 = Upsample(dim * 8)
        self.reduce3 = nn.Conv2d(dim * 8, dim * 4, 1, bias=False)
        self.decoder3 = stage(dim * 4, blocks[2], heads[2])
        self.up3_2 = Upsample(dim * 4)
        self.reduce2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=False)
        self.decoder2 = stage(dim * 2, blocks[1], heads[1])
        self.up2_1 = Upsample(dim * 2)
        self.decoder1 = stage(dim * 2, blocks[0], heads[0])
        self.refinement = stage(dim * 2, cfg.num_refinement_blocks, heads[0])
        self.output = nn.Conv2d(dim * 2, 3, 3, padding=1, bias=False)

        site_channels = {"latent": dim * 8, "decoder3": dim * 4, "decoder2": dim * 2,
                         "decoder1": dim * 2, "refinement": dim * 2}
        self.dbs = nn.ModuleDict({
            site: DegradationAwareBlock(site_channels[site], cfg.prior_dim, cfg.db_mlp_hidden, cfg.db_film_init)
            for site in (cfg.db_sites if with_prior else ())
        })
        self.tone = PriorTone(cfg.prior_dim, cfg.db_mlp_hidden) if with_prior and cfg.tone_head else None

    @property
    def uses_prior(self) -> bool:
        return len(self.dbs) > 0 or self.tone is not None

    def _modulate(self, site: str, features: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        return self.dbs[site](features, prior) if site in self.dbs else features

    def forward(self, image: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """image: B x 3 x H x W in [0, 1], H and W multiples of 8; prior: B x prior_dim."""
        if self.uses_prior and prior is None:
            raise ValueError("this restorer reads a prior (in its Degradation-aware Blocks or TC) and needs a prior")
        if self.tone is not None:
            image = self.tone(image, prior)
        enc1 = self.encoder1(self.patch_embed(image))
        enc2 = self.encoder2(self.down1_2(enc1))
        enc3 = self.encoder3(self.down2_3(enc2))
        x = self._modulate("latent", self.latent(self.down3_4(enc3)), prior)

        x = self.decoder3(self.reduce3(torch.cat([self.up4_3(x), enc3], dim=1)))
        x = self._modulate("decoder3", x, prior)
        x = self.decoder2(self.reduce2(torch.cat([self.up3_2(x), enc2], dim=1)))
        x = self._modulate("decoder2", x, prior)
        x = self.decoder1(torch.cat([self.up2_1(x), enc1], dim=1))
        x = self._modulate("decoder1", x, prior)
        x = self._modulate("refinement", self.refinement(x), prior)
        return self.output(x) + image
