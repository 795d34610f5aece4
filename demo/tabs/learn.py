"""Learn: what a degradation prior is, and how to see it in the other tabs."""
from __future__ import annotations

import gradio as gr

from .. import views
from ..session import Tab


class LearnTab(Tab):
    title, tab_id = "Learn", "learn"

    def build(self) -> None:
        gr.Markdown(views.LEARN)
