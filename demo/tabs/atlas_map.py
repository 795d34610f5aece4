"""Atlas map: every prior of the shipped atlas (d_S of photographs under each kind and level)
on a UMAP or PCA map, the current image as a star, its nearest atlas samples, and a click
on a point that loads that sample."""
from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from .. import charts, views
from ..session import Current, Tab

NEIGHBOURS = 8


class AtlasTab(Tab):
    title, tab_id = "Atlas map", "atlas"

    def build(self) -> None:
        atlas = self.atlas
        if atlas is None:
            self.info = gr.Markdown("No atlas loaded: build one with `python -m lupi_core atlas`.")
            return
        with gr.Row():
            self.space = gr.Radio([("UMAP", "umap"), ("PCA", "pca")], value="umap", label="Map")
            self.color = gr.Radio([("kind", "kind"), ("level", "level")], value="kind", label="Colour by")
            gr.Markdown(f"{len(atlas)} priors of this model's student D_S on photographs under every kind and "
                        "level. Hover a point for its image; **click it to load it into the inspector**. "
                        "The star is the current image.")
        self.map_html = views.map_component(self.map_value("umap", "kind", None), charts.thumbnail_uris(atlas))
        self.info = gr.Markdown(elem_id="map-info")
        gr.Markdown("#### Nearest atlas samples to the current prior (512-d, standardised distance)")
        with gr.Row():
            self.neighbour_table = gr.Dataframe(headers=["rank", "atlas #", "sample", "distance"], interactive=False,
                                                wrap=True, scale=1)
            self.neighbour_gallery = gr.Gallery(label="Their images", columns=4, height=260, allow_preview=False,
                                                format="png", scale=1)

    def shown(self) -> list[str]:
        return ["neighbour_table", "neighbour_gallery", "info"] if self.atlas is not None else []

    def show(self, current: Current) -> dict[str, Any]:
        if self.atlas is None or current.prior is None:
            return {}
        rows, gallery = self.neighbours(current.prior)
        return {"neighbour_table": rows, "neighbour_gallery": gallery, "info": ""}

    def map_value(self, space: str, color_by: str, prior: np.ndarray | None) -> str:
        """The map's figure (JSON), with the star at `prior` when given."""
        marker = self.atlas.place(prior, space) if prior is not None else None
        return charts.map_value(self.atlas, space, color_by, marker)

    def neighbours(self, prior: np.ndarray, k: int = NEIGHBOURS) -> tuple[list[list], list]:
        rows, gallery = [], []
        for rank, (label, dist) in enumerate(self.atlas.nearest(prior, k), 1):
            text = charts.sample_text(label)
            rows.append([rank, label["index"], text, round(dist, 4)])
            thumb = self.atlas.thumbnail_array(label["index"])
            if thumb is not None:
                gallery.append((thumb, f"#{label['index']} {text} (d={dist:.3f})"))
        return rows, gallery

    def load_sample(self, index: int) -> tuple[Current, np.ndarray]:
        """A click on the map: regenerate atlas sample `index` as the current image (with its clean
        original unless it is a clean sample). Raises ImageError/IndexError with the message."""
        index = int(index)
        if index < 0:
            raise IndexError("that star is the current image")
        degraded, clean = self.atlas.sample(index)
        label = self.atlas.labels[index]
        text = charts.sample_text(label)
        current = self.session.current(degraded, None if label["kind"] == "clean" else clean,
                                       f"Atlas sample #{index} ({text})", kind=label["kind"])
        return current, degraded

