"""Figures for the app: Plotly charts of priors (Figure 5), the atlas map spec for
the clickable map, and the amplified difference image. Display only: every
number comes from lupi_core (the pipeline's priors, the atlas)."""
from __future__ import annotations

import base64
import functools
import json
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from gradio.components.plot import PlotData

from lupi_core.atlas import KIND_NAMES, Atlas

KIND_COLORS = {
    "clean": "#7f7f7f", "noise": "#1f77b4", "rain": "#17becf", "haze": "#ff7f0e",
    "blur": "#9467bd", "lowlight": "#2ca02c", "mix": "#d62728",
}
LAYOUT = dict(template="plotly_white", margin=dict(l=50, r=20, t=50, b=45), font=dict(size=12),
              legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0))
# under the x axis, for charts whose title takes two lines
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.3, xanchor="left", x=0.0)


def kind_color(kind: str) -> str:
    return KIND_COLORS.get(kind, "#444444")


def top_indices(values: np.ndarray, k: int) -> list[int]:
    return [int(i) for i in np.argsort(-np.asarray(values), kind="stable")[:k]]


# -- priors ----------------------------------------------------------------------------------------

@functools.cache
def _layout() -> dict:
    """LAYOUT with its template expanded, as Plotly's to_json would write it."""
    import plotly.io as pio

    return {**LAYOUT, "template": pio.templates[LAYOUT["template"]].to_plotly_json()}


def _numbers(values: np.ndarray, digits: int = 4) -> list:
    return np.round(np.asarray(values, np.float64), digits).tolist()


def plot_data(data: list[dict], layout: dict) -> PlotData:
    """A Plotly figure from plain trace and layout dicts, as gr.Plot's value: no figure validation,
    so a live view (the sigma slider) redraws in a few milliseconds instead of tens."""
    return PlotData(type="plotly", plot=json.dumps({"data": data, "layout": {**_layout(), **layout}}))


def prior_bars(prior: np.ndarray, atlas: Atlas | None = None, top_k: int = 8, highlight: str | None = None,
               title: str = "The current prior d_S (512 dimensions)") -> PlotData:
    """The prior as 512 bars, its top-k dimensions labelled by index, and each atlas kind's
    mean prior as a line (the described kind shown, the others a legend click away)."""
    prior = np.asarray(prior, dtype=np.float32)
    dims = list(range(prior.size))
    data = [dict(type="bar", x=dims, y=_numbers(prior), name="this image",
                 marker=dict(color="#1f3b73", line=dict(width=0)), hovertemplate="dim #%{x}: %{y:.3f}<extra>this image</extra>")]
    if atlas is not None:
        data += [dict(type="scatter", x=dims, y=_numbers(mean), mode="lines", name=f"atlas mean: {KIND_NAMES.get(kind, kind)}",
                      line=dict(color=kind_color(kind), width=1.2), visible=True if kind == highlight else "legendonly",
                      hovertemplate=f"dim #%{{x}}: %{{y:.3f}}<extra>{kind} mean</extra>")
                 for kind, mean in zip(atlas.kinds, atlas.kind_means)]
    annotations = [dict(x=i, y=float(prior[i]), text=f"#{i}", showarrow=True, arrowhead=0, ax=0, ay=-18,
                        font=dict(size=10, color="#1f3b73")) for i in top_indices(prior, top_k)]
    return plot_data(data, dict(title=dict(text=title, x=0.01), bargap=0, height=340, annotations=annotations,
                                xaxis=dict(title=dict(text="dimension"), range=[-2, prior.size + 1]),
                                yaxis=dict(title=dict(text="activation"))))


def noise_curve_chart(sigmas: np.ndarray, priors: np.ndarray, dims: Sequence[int], rho: Sequence[float] = (),
                      current_sigma: float | None = None, current_prior: np.ndarray | None = None,
                      atlas: Atlas | None = None, teacher: np.ndarray | None = None,
                      title: str = "Figure 5b: the dimensions that follow sigma") -> PlotData:
    """Figure 5b: the chosen dimensions of d_S as the image is re-noised at each sigma (solid,
    labelled with their rho over the atlas), the teacher's d_T when given (dashed), the atlas'
    mean over photographs (dotted), and the slider's sigma marked."""
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
    x, data = _numbers(sigmas, 2), []
    for j, d in enumerate(dims):
        color = palette[j % len(palette)]
        name = f"#{d}" + (f" (rho {rho[j]:+.2f})" if j < len(rho) else "")
        data.append(dict(type="scatter", x=x, y=_numbers(priors[:, d]), mode="lines+markers", name=name,
                         legendgroup=str(d), line=dict(color=color), marker=dict(size=5),
                         hovertemplate=f"d_S #{d} at sigma %{{x}}: %{{y:.3f}}<extra></extra>"))
        if teacher is not None:
            data.append(dict(type="scatter", x=x, y=_numbers(teacher[:, d]), mode="lines", showlegend=False,
                             legendgroup=str(d), line=dict(color=color, dash="dash", width=1.5),
                             hovertemplate=f"d_T #{d} at sigma %{{x}}: %{{y:.3f}}<extra></extra>"))
        if atlas is not None and len(atlas.noise_sigmas):
            data.append(dict(type="scatter", x=_numbers(atlas.noise_sigmas, 2), y=_numbers(atlas.noise_curve[:, d]),
                             mode="lines", showlegend=False, legendgroup=str(d), opacity=0.6,
                             line=dict(color=color, dash="dot", width=1),
                             hovertemplate=f"atlas mean #{d} at sigma %{{x}}: %{{y:.3f}}<extra></extra>"))
        if current_prior is not None and current_sigma is not None:
            data.append(dict(type="scatter", x=[current_sigma], y=[float(current_prior[d])], mode="markers",
                             showlegend=False, legendgroup=str(d),
                             marker=dict(size=11, color=color, symbol="diamond", line=dict(width=1, color="black")),
                             hovertemplate=f"#{d} now: %{{y:.3f}}<extra></extra>"))
    shapes = [] if current_sigma is None else [dict(type="line", x0=current_sigma, x1=current_sigma, y0=0, y1=1,
                                                    yref="paper", line=dict(color="#555", dash="dash", width=1))]
    note = "solid: student d_S" + (", dashed: teacher d_T" if teacher is not None else "") + \
        (", dotted: atlas mean" if atlas is not None else "")
    return plot_data(data, dict(title=dict(text=f"{title}<br><sup>{note}</sup>", x=0.01), height=400, shapes=shapes,
                                margin={**LAYOUT["margin"], "t": 60, "b": 100}, legend=LEGEND_BELOW,
                                xaxis=dict(title=dict(text="noise sigma (0-255 scale)")),
                                yaxis=dict(title=dict(text="activation"))))


def sigma_reading_chart(sigmas: np.ndarray, read: Sequence[float | None], current: tuple[float, float | None] | None = None
                        ) -> PlotData:
    """The severity the prior reads (the atlas' nearest-neighbour sigma estimate) against the true
    sigma; None where the prior does not read noise."""
    x = _numbers(sigmas, 2)
    data = [dict(type="scatter", x=x, y=x, mode="lines", name="truth", line=dict(color="#999", dash="dot")),
            dict(type="scatter", x=x, y=[None if r is None else round(float(r), 2) for r in read], mode="lines+markers",
                 name="read by the prior", line=dict(color="#1f3b73"))]
    if current is not None and current[1] is not None:
        data.append(dict(type="scatter", x=[current[0]], y=[current[1]], mode="markers", name="now",
                         marker=dict(size=11, symbol="diamond", color="#d62728")))
    missing = sum(r is None for r in read)
    title = "The noise level the prior reads"
    if missing:
        title += (f"<br><sup>no reading at {missing} of {len(read)} sigmas: there the nearest atlas samples "
                  "name another kind than noise</sup>")
    return plot_data(data, dict(title=dict(text=title, x=0.01), height=300, margin={**LAYOUT["margin"], "t": 60, "b": 90},
                                legend=LEGEND_BELOW,
                                xaxis=dict(title=dict(text="true sigma")), yaxis=dict(title=dict(text="read sigma"))))


def signature_heatmap(atlas: Atlas, k: int = 6) -> tuple[go.Figure, str]:
    """Figure 5a: the kinds' mean priors over the union of their top-k dimensions, and a
    sentence naming the shared and the distinctive dimensions."""
    sig = atlas.signature(k)
    labels = [f"#{d}" for d in sig["dims"]]
    names = [KIND_NAMES.get(kd, kd) for kd in sig["kinds"]]
    text = [[("●" if d in sig["top"][kd] else "") for d in sig["dims"]] for kd in sig["kinds"]]
    fig = go.Figure(go.Heatmap(z=sig["matrix"], x=labels, y=names, colorscale="Viridis", text=text,
                               texttemplate="%{text}", textfont=dict(color="white", size=10),
                               hovertemplate="%{y}, dim %{x}: %{z:.3f}<extra></extra>",
                               colorbar=dict(title="mean", thickness=12)))
    fig.update_layout(**{**LAYOUT, "margin": dict(l=80, r=20, t=50, b=45)}, height=300,
                      title=dict(text=f"Mean prior of each kind over their top-{k} dimensions (● = in that kind's top {k})",
                                 x=0.01),
                      xaxis=dict(type="category", title="dimension"), yaxis=dict(autorange="reversed"))
    shared = ", ".join(f"#{d} ({'/'.join(KIND_NAMES.get(o, o) for o in sig['owners'][d])})" for d in sig["shared"]) or "none"
    distinct = "; ".join(f"{KIND_NAMES.get(kd, kd)}: {', '.join(f'#{d}' for d in dims) or '-'}"
                         for kd, dims in sig["distinct"].items())
    summary = f"**Shared top dimensions:** {shared}.  \n**Only in one kind's top {k}:** {distinct}."
    return fig, summary


def two_priors_chart(first: np.ndarray, second: np.ndarray, names: tuple[str, str], title: str,
                     top_k: int = 8) -> go.Figure:
    """Two priors over the 512 dimensions (e.g. the teacher's d_T and the student's d_S)."""
    dims = np.arange(len(first))
    fig = go.Figure()
    fig.add_scatter(x=dims, y=first, mode="lines", name=names[0], line=dict(color="#d62728", width=1.3))
    fig.add_scatter(x=dims, y=second, mode="lines", name=names[1], line=dict(color="#1f3b73", width=1.3))
    for i in top_indices(first, top_k):
        fig.add_annotation(x=i, y=float(first[i]), text=f"#{i}", showarrow=False, yshift=10,
                           font=dict(size=10, color="#d62728"))
    fig.update_layout(**LAYOUT, title=dict(text=title, x=0.01), height=320,
                      xaxis=dict(title="dimension"), yaxis=dict(title="activation"))
    return fig


# -- the atlas map ---------------------------------------------------------------------------------

def thumbnail_uris(atlas: Atlas) -> list[str]:
    """Each sample's thumbnail as a data: URI ("" where the atlas stores none)."""
    uris = []
    for i in range(len(atlas)):
        data = atlas.thumbnail(i)
        uris.append("data:image/jpeg;base64," + base64.b64encode(data).decode() if data else "")
    return uris


def sample_text(label: dict) -> str:
    kind = label["kind"]
    if kind == "noise":
        what = f"noise, sigma {label['sigma']:g}"
    elif kind == "clean":
        what = "clean"
    elif kind == "mix":
        what = f"mix ({' + '.join(label.get('mix_kinds', []))}), level {label['level']:g}"
    else:
        what = f"{KIND_NAMES.get(kind, kind)}, level {label['level']:g}"
    image = label["image"].removeprefix("folder:")
    return f"{what} · {image}"


def map_figure(atlas: Atlas, space: str = "umap", color_by: str = "kind",
               marker: tuple[float, float] | None = None, marker_text: str = "this image") -> dict:
    """The atlas map as a Plotly figure dict. Every atlas point's customdata is its atlas
    index (the click handler's key); the current image's marker has customdata -1."""
    xy = atlas.coordinates(space)
    labels = atlas.labels
    data: list[dict] = []
    if color_by == "kind":
        for kind in atlas.kinds:
            idx = [i for i, label in enumerate(labels) if label["kind"] == kind]
            data.append(dict(type="scatter", mode="markers", name=KIND_NAMES.get(kind, kind),
                             x=xy[idx, 0].round(4).tolist(), y=xy[idx, 1].round(4).tolist(), customdata=idx,
                             text=[sample_text(labels[i]) for i in idx], hoverinfo="none",
                             marker=dict(size=8, color=kind_color(kind), opacity=0.85,
                                         line=dict(width=0.5, color="white"))))
    else:
        symbols = {"clean": "circle-open", "noise": "circle", "rain": "triangle-up", "haze": "square",
                   "blur": "diamond", "lowlight": "star", "mix": "x"}
        data.append(dict(type="scatter", mode="markers", name="severity", x=xy[:, 0].round(4).tolist(),
                         y=xy[:, 1].round(4).tolist(), customdata=list(range(len(labels))),
                         text=[sample_text(label) for label in labels], hoverinfo="none",
                         marker=dict(size=8, color=[label["severity"] for label in labels], colorscale="Viridis",
                                     cmin=0, cmax=1, symbol=[symbols.get(label["kind"], "circle") for label in labels],
                                     colorbar=dict(title="severity", thickness=12), opacity=0.9,
                                     line=dict(width=0.5, color="white")),
                         showlegend=False))
    if marker is not None:
        data.append(dict(type="scatter", mode="markers+text", name=marker_text, x=[marker[0]], y=[marker[1]],
                         customdata=[-1], text=[marker_text], textposition="top center",
                         hovertemplate=f"{marker_text}<extra></extra>",
                         marker=dict(size=18, symbol="star", color="gold", line=dict(width=1.5, color="black"))))
    axis = "UMAP" if space == "umap" else "PC"
    layout = dict(template="plotly_white", height=520, margin=dict(l=40, r=10, t=60, b=40), hovermode="closest",
                  title=dict(text=f"Prior atlas: {len(atlas)} samples ({'UMAP' if space == 'umap' else 'PCA'})", x=0.01),
                  xaxis=dict(title=f"{axis} 1", zeroline=False), yaxis=dict(title=f"{axis} 2", zeroline=False),
                  legend=dict(orientation="v", yanchor="top", y=1.0, xanchor="left", x=1.01), clickmode="event")
    return {"data": data, "layout": layout}


def map_value(atlas: Atlas, space: str, color_by: str, marker: tuple[float, float] | None = None,
              marker_text: str = "this image") -> str:
    """The JSON string the map component's value carries."""
    return json.dumps(map_figure(atlas, space, color_by, marker, marker_text), separators=(",", ":"))


# -- images ----------------------------------------------------------------------------------------

def difference_image(output: np.ndarray, reference: np.ndarray, max_gain: int = 64) -> tuple[np.ndarray, int]:
    """|output - reference| amplified by a power-of-two gain chosen so the 99.5th percentile
    of the difference lands near full scale. Returns (uint8 image, gain)."""
    diff = np.abs(output.astype(np.int16) - reference.astype(np.int16)).astype(np.float32)
    high = float(np.percentile(diff, 99.5)) if diff.size else 0.0
    gain = 1
    while gain < max_gain and high * gain * 2 <= 255:
        gain *= 2
    return np.clip(diff * gain, 0, 255).astype(np.uint8), gain
