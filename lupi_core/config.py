"""Typed model configuration and its named presets.

One `ModelConfig` describes every network of the paper: the restorer R (a
Restormer U-Net), the privileged estimator D_T, the student predictor D_S and
the Degradation-aware Blocks (DB) that inject the prior. Where the paper is
silent (estimator channels, MLP widths) the defaults are chosen so that the
`paper` preset lands near the paper's 31.93M parameters / 163.20 GMAC; see
docs/design.md for each choice and its reason.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

DB_SITES = ("latent", "decoder3", "decoder2", "decoder1", "refinement")
ESTIMATOR_DESIGNS = ("siamese", "concat", "add")
# What D_T sees beside I_d: the clean image (the paper) or the residual I_d - I_c, which carries
# the degradation without the scene's brightness and colour that no student can predict.
ESTIMATOR_INPUTS = ("clean", "residual")
# How DB's FiLM MLP starts: "zero" (gamma = 1, beta = 0 whatever the prior) or "random" (PyTorch's
# default init: gamma and beta depend on the prior from step 0). DB's conv starts at zero either
# way, so a new DB is the identity; with "zero" the MLP gets no gradient until that conv has grown.
DB_FILM_INITS = ("zero", "random")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of R, D_T, D_S and DB. Immutable; `replace()` makes variants."""

    # Restorer R: Restormer's U-Net (four encoder levels, three decoder levels, refinement).
    dim: int = 48
    num_blocks: tuple[int, int, int, int] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    layernorm_type: str = "WithBias"
    # The degradation prior d (8C in the paper's Figure 3); 512 in every preset.
    prior_dim: int = 512
    # Where Degradation-aware Blocks sit (PromptIR/AdaIR's three places by default).
    db_sites: tuple[str, ...] = ("latent", "decoder3", "decoder2")
    db_mlp_hidden: int = 512
    db_film_init: str = "zero"
    # TC (not in the paper): a whole-image colour transform that the prior sets before the U-Net.
    tone_head: bool = False
    # D_T / D_S encoder: four conv layers down to H/8 x W/8 (strides 1, 2, 2, 2).
    estimator_channels: tuple[int, int, int, int] = (64, 128, 256, 512)
    estimator_mlp_hidden: int = 512
    estimator_design: str = "siamese"
    estimator_input: str = "clean"

    def __post_init__(self) -> None:
        unknown = set(self.db_sites) - set(DB_SITES)
        if unknown:
            raise ValueError(f"unknown DB site(s) {sorted(unknown)}; choose from {DB_SITES}")
        if self.estimator_design not in ESTIMATOR_DESIGNS:
            raise ValueError(
                f"unknown estimator design {self.estimator_design!r}; choose from {ESTIMATOR_DESIGNS}")
        if self.db_film_init not in DB_FILM_INITS:
            raise ValueError(f"unknown DB FiLM init {self.db_film_init!r}; choose from {DB_FILM_INITS}")
        if self.estimator_input not in ESTIMATOR_INPUTS:
            raise ValueError(f"unknown estimator input {self.estimator_input!r}; choose from {ESTIMATOR_INPUTS}")
        if self.layernorm_type not in ("WithBias", "BiasFree"):
            raise ValueError("layernorm_type must be 'WithBias' or 'BiasFree'")
        for level, heads in enumerate(self.heads):
            channels = self.dim * 2 ** level
            if channels % heads:
                raise ValueError(f"level {level + 1}: {channels} channels do not split into {heads} heads")

    @staticmethod
    def preset(name: str, **overrides) -> ModelConfig:
        """A named preset (`paper`, `small`, `tiny`), optionally with fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides)

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> ModelConfig:
        raw = json.loads(text)
        known = {f.name for f in dataclasses.fields(ModelConfig)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"config has unknown fields {sorted(unknown)}")
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return ModelConfig(**fields)

    def preset_name(self) -> str | None:
        """The preset this config equals, or None for a custom one. The DB FiLM init is left out:
        it only picks starting values, so a trained model of the small preset is "small" whatever it was."""
        return next((name for name, cfg in PRESETS.items()
                     if dataclasses.replace(cfg, db_film_init=self.db_film_init) == self), None)


_SMALL = ModelConfig(
    dim=24, num_blocks=(1, 2, 2, 2), num_refinement_blocks=1, heads=(1, 2, 4, 8),
    estimator_channels=(32, 64, 128, 256), estimator_mlp_hidden=256, db_mlp_hidden=256,
)

PRESETS: dict[str, ModelConfig] = {
    # The paper's model: Restormer defaults, prior 512 (section 4.1).
    "paper": ModelConfig(),
    # The shipped CPU model.
    "small": _SMALL,
    # `small` with about twice its transformer blocks, at the same width: does capacity let the
    # mixture learn the local tasks (blur) beside the global ones? docs/results/capacity/.
    "medium": _SMALL.replace(num_blocks=(2, 3, 3, 4), num_refinement_blocks=2),
    # Tests: a training step well under a second.
    "tiny": ModelConfig(
        dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 2, 2),
        estimator_channels=(8, 16, 16, 32), estimator_mlp_hidden=64, db_mlp_hidden=32,
    ),
}
