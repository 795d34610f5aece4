"""Prior-space analysis: directions in the space of d that a person can name, and
counterfactual restorations R_S(I_d, d') under priors other than the image's own d_S.

From an atlas (d_S of photographs under every kind and level):

- a *kind* direction per degradation: mean(d | kind) - mean(d | clean), "more rain";
- a *severity* direction per kind: the least-squares slope of d against the sample's
  severity in [0, 1] (noise: sigma / 60), "stronger rain": one unit is mildest -> strongest;
- the first *principal components* of d, labelled by the kinds whose mean lies furthest
  along them.

Moving a prior by amount x along a direction adds x times the direction's vector, so x = 1
on a kind direction takes the clean mean to that kind's mean. `counterfactuals` restores
one image under its own prior and under others (the atlas' clean and kind means): the
probe's "steer" number for one image, and what the probe averages.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .atlas import KIND_NAMES, Atlas
from .metrics import psnr

if TYPE_CHECKING:
    from .pipeline import Pipeline

PRINCIPAL_COMPONENTS = 3


@dataclass(frozen=True)
class Direction:
    """A named direction in prior space; `vector` is one unit of movement (see the module docstring)."""

    key: str        # "kind:rain", "severity:rain", "pc:1"
    label: str      # what a slider says: "more rain", "stronger rain", "PC1 (haze + / low light -)"
    vector: np.ndarray

    def moved(self, prior: np.ndarray, amount: float) -> np.ndarray:
        return (np.asarray(prior, np.float32) + float(amount) * self.vector).astype(np.float32)


def _kind_name(kind: str) -> str:
    return KIND_NAMES.get(kind, kind)


def kind_directions(atlas: Atlas) -> list[Direction]:
    """mean(kind) - mean(clean) for every degraded kind of the atlas (none without clean samples)."""
    if "clean" not in atlas.kinds:
        return []
    clean = atlas.kind_mean("clean")
    return [Direction(f"kind:{kind}", f"more {_kind_name(kind)}", (atlas.kind_mean(kind) - clean).astype(np.float32))
            for kind in atlas.kinds if kind != "clean"]


def severity_directions(atlas: Atlas) -> list[Direction]:
    """Per kind with at least two severities, the least-squares slope of d against severity."""
    directions = []
    for kind in atlas.kinds:
        if kind in ("clean", "mix"):
            continue
        rows = [i for i, label in enumerate(atlas.labels) if label["kind"] == kind]
        severity = np.array([atlas.labels[i]["severity"] for i in rows], np.float64)
        if len(rows) < 2 or np.ptp(severity) == 0:
            continue
        centred = severity - severity.mean()
        slope = centred @ (atlas.priors[rows] - atlas.priors[rows].mean(axis=0)) / (centred @ centred)
        directions.append(Direction(f"severity:{kind}", f"stronger {_kind_name(kind)}", slope.astype(np.float32)))
    return directions


def principal_directions(atlas: Atlas, count: int = PRINCIPAL_COMPONENTS) -> list[Direction]:
    """The first principal components of the atlas' raw priors, one standard deviation per unit,
    each labelled by the kinds whose means lie furthest along it on either side."""
    priors = atlas.priors.astype(np.float64)
    centred = priors - priors.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    spread = singular / np.sqrt(max(1, len(priors) - 1))
    directions = []
    for k in range(min(count, len(components))):
        along = {kind: float((atlas.kind_mean(kind) - priors.mean(axis=0)) @ components[k]) for kind in atlas.kinds}
        high, low = max(along, key=along.get), min(along, key=along.get)
        label = f"PC{k + 1} ({_kind_name(high)} + / {_kind_name(low)} -)"
        directions.append(Direction(f"pc:{k + 1}", label, (components[k] * spread[k]).astype(np.float32)))
    return directions


def named_directions(atlas: Atlas) -> list[Direction]:
    """Every direction a slider offers: kinds, severities, then principal components."""
    return kind_directions(atlas) + severity_directions(atlas) + principal_directions(atlas)


@dataclass(frozen=True)
class Counterfactual:
    """One restoration of an image under a chosen prior."""

    name: str                  # "own prior", "clean mean", "rain mean", ...
    restored: np.ndarray       # float HxWx3 in [0, 1]
    psnr: float | None         # against the clean original, when known
    change: float              # mean |restored - own-prior restoration|, on the 0-255 scale


def atlas_priors(atlas: Atlas) -> dict[str, np.ndarray]:
    """The atlas' mean prior of every kind, by the name the gallery shows ("clean mean", "rain mean")."""
    return {f"{_kind_name(kind)} mean": atlas.kind_mean(kind) for kind in atlas.kinds}


def counterfactuals(pipeline: Pipeline, image: np.ndarray, priors: Mapping[str, np.ndarray],
                    clean: np.ndarray | None = None, own: np.ndarray | None = None) -> list[Counterfactual]:
    """R_S(I_d, d) for d = the image's own d_S (`own`, computed when not given), then each of `priors`."""
    own = pipeline.prior(image) if own is None else own
    restored = {"own prior": pipeline.restore_float(image, prior=own)}
    restored.update({name: pipeline.restore_float(image, prior=prior) for name, prior in priors.items()})
    reference = restored["own prior"]
    return [Counterfactual(name, out, psnr(out, clean) if clean is not None else None,
                           float(np.mean(np.abs(out - reference)) * 255)) for name, out in restored.items()]


def steer_sentence(results: list[Counterfactual], true_kind: str | None = None) -> str:
    """The gallery as one sentence: which other prior hurt most, by how much, or that none mattered."""
    own, others = results[0], results[1:]
    if not others:
        return "No atlas means to compare with."
    if own.psnr is not None:
        worst = min(others, key=lambda c: c.psnr)
        best = max(others, key=lambda c: c.psnr)
        subject = f"this {_kind_name(true_kind)} image" if true_kind else "this image"
        sentence = (f"The {worst.name} prior made {subject} {own.psnr - worst.psnr:.1f} dB worse than its own "
                    f"prior")
        if best.psnr > own.psnr:
            return sentence + f"; the {best.name} prior made it {best.psnr - own.psnr:.1f} dB better."
        return sentence + f"; no other prior beat its own (best: {best.name}, {own.psnr - best.psnr:.1f} dB behind)."
    largest = max(others, key=lambda c: c.change)
    return (f"The {largest.name} prior changed the restoration most: {largest.change:.2f}/255 on average "
            f"(no clean original, so no PSNR).")
