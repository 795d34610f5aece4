"""The LUPI demo: `python -m demo.app [--checkpoint F] [--teacher F] [--atlas PATH] [--port 7860] [--host 127.0.0.1]`.

Serves http://127.0.0.1:7860 on CPU, offline: six tabs (Restore, Prior inspector,
Atlas map, Steer the prior, Privileged vs predicted, Learn). The model and the atlas are loaded once;
`build_app(pipeline, atlas)` builds the page around them (tests inject a tiny model):
one module per tab in demo/tabs/ owns its components and handlers, and demo/session.py
holds what the tabs share (the model, the atlas, uploads, the current image).
"""
from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any

import gradio as gr  # noqa: E402

from lupi_core.atlas import DEFAULT_ATLAS, Atlas  # noqa: E402
from lupi_core.cli import apply_runtime, checkpoint_flag, runtime_flags  # noqa: E402
from lupi_core.examples import EXAMPLES_DIR, load_index  # noqa: E402
from lupi_core.images import ImageError  # noqa: E402
from lupi_core.pipeline import Pipeline  # noqa: E402
from lupi_core.steering import atlas_priors, counterfactuals, steer_sentence  # noqa: E402

from . import charts, views  # noqa: E402
from .session import Current, RawImage, Session, Tab, warn  # noqa: E402
from .tabs.atlas_map import AtlasTab  # noqa: E402
from .tabs.inspector import InspectorTab  # noqa: E402
from .tabs.learn import STEPS, LearnTab  # noqa: E402
from .tabs.privileged import PrivilegedTab  # noqa: E402
from .tabs.restore import RestoreTab  # noqa: E402
from .tabs.steer import SteerTab  # noqa: E402

QUEUE_SIZE = 16


class Tabs:
    """The six tabs around one session, and what they do together: a new current image
    (an upload, an example, a synthesized degradation, an atlas click) updates every tab."""

    def __init__(self, session: Session):
        self.session = session
        self.restore, self.inspector = RestoreTab(session), InspectorTab(session)
        self.atlas, self.steer = AtlasTab(session), SteerTab(session)
        self.privileged, self.learn = PrivilegedTab(session), LearnTab(session)

    def __iter__(self):
        return iter((self.restore, self.inspector, self.atlas, self.steer, self.privileged, self.learn))

    def show(self, current: Current) -> dict[Tab, dict[str, Any]]:
        """Every tab's view of a new current image."""
        return {tab: tab.show(current) for tab in self}

    def shown_components(self) -> list:
        return [component for tab in self for component in tab.components(tab.shown())]


def prior_report(session: Session, path: str | None) -> dict[str, Any]:
    """The API's "prior" endpoint: an image file in, its 512-d prior and the atlas' reading out,
    or {"error": message}."""
    try:
        image, _ = session.read_upload(path)
    except ImageError as error:
        return {"error": str(error)}
    if not session.pipeline.has_prior:
        return {"error": "this model has no degradation predictor"}
    current = session.current(image, None, "api")
    report: dict[str, Any] = {"width": int(image.shape[1]), "height": int(image.shape[0]),
                              "prior": [round(float(v), 6) for v in current.prior]}
    if current.reading is not None:
        reading = current.reading
        report.update({key: reading[key] for key in ("kind", "sigma", "level", "agreement", "nearest_distance",
                                                      "out_of_distribution")})
        report["description"] = reading["text"]
        report["nearest"] = [{"index": label["index"], "sample": charts.sample_text(label), "distance": dist}
                             for label, dist in reading["neighbours"]]
    return report


def gallery_report(session: Session, path: str | None) -> dict[str, Any]:
    """The API's "gallery" endpoint: an image file in; out, for its own prior, the clean mean and
    each kind's mean prior, the mean change of the restoration against the own-prior one (0-255
    scale) and the gallery's sentence; or {"error": message}."""
    try:
        image, _ = session.read_upload(path)
    except ImageError as error:
        return {"error": str(error)}
    if not session.pipeline.has_prior or session.atlas is None:
        return {"error": "the gallery needs a model with a degradation predictor and an atlas"}
    results = counterfactuals(session.pipeline, image, atlas_priors(session.atlas))
    return {"restorations": [{"prior": c.name, "mean_change": round(c.change, 4)} for c in results],
            "sentence": steer_sentence(results)}


def build_app(pipeline: Pipeline, atlas: Atlas | None, examples: list[dict] | None = None,
              concurrency: int = 1) -> gr.Blocks:
    """The page around a loaded pipeline and atlas (either may be a tiny test model); `concurrency`
    restorations run at once, the others wait in the queue and see their position."""
    session = Session(pipeline, atlas, load_index() if examples is None else examples)
    tabs = Tabs(session)
    gr.set_static_paths([str(views.PLOTLY_JS)] + ([str(Path(session.examples[0]["path"]).parent)]
                                                  if session.examples else []))
    with gr.Blocks(title="LUPI: all-in-one image restoration", analytics_enabled=False) as demo:
        gr.Markdown("# LUPI: all-in-one image restoration with a privileged degradation prior\n"
                    "One model for noise, rain, haze, blur and low light, steered by a 512-d prior that a student "
                    "network predicts from the degraded image. New here? Start with the **Learn** tab.",
                    elem_id="lupi-title")
        current = gr.State(None)
        with gr.Tabs(selected="restore") as tab_bar:
            for tab in tabs:
                with gr.Tab(tab.title, id=tab.tab_id) as tab.tab:
                    tab.build()
        wire(tabs, current, tab_bar)
        api_image, api_prior = RawImage(type="filepath", visible=False), gr.JSON(visible=False)
        api_image.change(lambda path: prior_report(session, path), api_image, api_prior, api_name="prior",
                         concurrency_id="prior", concurrency_limit=2)
        gallery_image, gallery_report_json = RawImage(type="filepath", visible=False), gr.JSON(visible=False)
        gallery_image.change(lambda path: gallery_report(session, path), gallery_image, gallery_report_json,
                             api_name="gallery")
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=concurrency)
    return demo


def wire(tabs: Tabs, current: gr.State, tab_bar: gr.Tabs) -> None:
    """The events: those that make a new current image (every tab shows it), then each tab's own."""
    restore = tabs.restore
    new_image_outputs = [current, *tabs.shown_components()]
    with_input = new_image_outputs + [restore.input_image]

    def fan_out(made: Current, input_value: Any = None, extra: dict | None = None) -> dict:
        out = {current: made}
        for tab, values in tabs.show(made).items():
            out.update(tab.updates(values))
        if input_value is not None:
            out[restore.input_image] = input_value
        return {**out, **(extra or {})}

    def failed(error: Exception) -> dict:
        return restore.updates({"status": warn(str(error))})

    def on_upload(path):
        try:
            return fan_out(restore.load_upload(path))
        except ImageError as error:
            return failed(error)

    def on_example(evt: gr.SelectData):
        try:
            made, path = tabs.session.example(evt.index)
        except ImageError as error:
            return failed(error)
        return fan_out(made, input_value=path)

    def on_synthesize(kind, severity, seed, made):
        try:
            made = restore.synthesize(kind, severity, seed, made)
        except ValueError as error:
            return failed(error)
        return fan_out(made, input_value=made.image)

    move_star = wire_atlas(tabs, current, tab_bar, fan_out, with_input)
    for event in (restore.input_image.upload(on_upload, restore.input_image, new_image_outputs, api_name="load_image"),
                  restore.gallery.select(on_example, None, with_input, api_visibility="private"),
                  restore.synth_btn.click(on_synthesize, [restore.kind, restore.severity, restore.seed, current],
                                          with_input, api_name="synthesize")):
        move_star(event)
    restore.input_image.clear(lambda: {restore.status: "Cleared.", current: None}, None, [restore.status, current],
                              api_visibility="private")
    restore.kind.change(lambda kind: restore.updates(restore.severity_control(kind)), restore.kind, [restore.severity],
                        api_visibility="private")

    wire_restore(restore, current)
    wire_inspector(tabs.inspector)
    wire_steer(tabs.steer, current, move_star)
    wire_learn(tabs, tab_bar, fan_out, with_input, move_star)
    tabs.privileged.compare_btn.click(lambda made: tabs.privileged.updates(tabs.privileged.compare(made)), current,
                                      tabs.privileged.components(["plot", "info", "with_student", "with_teacher"]),
                                      api_name="compare_priors")


def wire_restore(restore: RestoreTab, current: gr.State) -> None:
    def on_restore(path, made, strength=1.0, progress=gr.Progress()):
        return restore.updates(restore.restore(path, made, strength, progress=progress))

    def on_force(path, made, strength=1.0, progress=gr.Progress()):
        return restore.updates(restore.restore(path, made, strength, force=True, progress=progress))
    restore_inputs, restored_outputs = [restore.input_image, current, restore.strength], restore.components(restore.RESTORED)
    restore.restore_btn.click(on_restore, restore_inputs, restored_outputs, api_name="restore")
    restore.force_btn.click(on_force, restore_inputs, restored_outputs, api_name="restore_anyway")


def wire_atlas(tabs: Tabs, current: gr.State, tab_bar: gr.Tabs, fan_out, with_input: list):
    """The map's own events (view switches, a click that loads a sample into the inspector); returns
    what moves the map's star after an event that changed the current image (nothing without an atlas)."""
    atlas_tab = tabs.atlas
    if tabs.session.atlas is None:
        return lambda event, prior_state=None: None
    star_inputs = [atlas_tab.space, atlas_tab.color, current]

    def star(space: str, color: str, made: Current | None) -> dict:
        return {atlas_tab.map_html: atlas_tab.map_value(space, color, made.prior if made else None)}

    def move_star(event, prior_state: gr.State | None = None) -> None:
        """After `event`: the star at the current image's prior, or at `prior_state`'s (an edited prior)."""
        if prior_state is None:
            event.then(star, star_inputs, [atlas_tab.map_html], show_progress="hidden", api_visibility="private")
            return
        event.then(lambda space, color, prior: {atlas_tab.map_html: atlas_tab.map_value(space, color, prior)},
                   [atlas_tab.space, atlas_tab.color, prior_state], [atlas_tab.map_html], show_progress="hidden",
                   api_visibility="private")

    for radio in (atlas_tab.space, atlas_tab.color):
        radio.change(star, star_inputs, [atlas_tab.map_html], show_progress="hidden", api_visibility="private")

    def on_map_click(evt: gr.SelectData):
        try:
            made, degraded = atlas_tab.load_sample(int(evt.index))
        except (ImageError, IndexError) as error:
            return atlas_tab.updates({"info": f"{str(error).capitalize()}."})
        return fan_out(made, input_value=degraded, extra={atlas_tab.info: f"Loaded {made.source[0].lower()}{made.source[1:]}.",
                                                           tab_bar: gr.Tabs(selected="inspector")})
    move_star(atlas_tab.map_html.select(on_map_click, None, with_input + [tab_bar], api_name="atlas_select"))
    return move_star


def wire_inspector(inspector: InspectorTab) -> None:
    inspector.sigma.change(lambda copy, curve, sigma: inspector.updates(inspector.on_sigma(copy, curve, sigma)),
                           [inspector.clean_copy, inspector.curve, inspector.sigma],
                           inspector.components(["prior_plot", "curve_plot", "sigma_plot", "noisy", "info"]),
                           trigger_mode="always_last", show_progress="hidden", concurrency_limit=2,
                           concurrency_id="prior", api_name="prior_at_sigma")
    inspector.sigma.release(lambda copy, sigma: inspector.updates(inspector.on_release(copy, sigma)),
                            [inspector.clean_copy, inspector.sigma], inspector.components(["result", "metrics"]),
                            trigger_mode="always_last", api_name="restore_at_sigma")


def wire_learn(tabs: Tabs, tab_bar: gr.Tabs, fan_out, with_input: list, move_star) -> None:
    """The tour: the numbers are measured when the Learn tab opens; a step's button loads its example
    and opens its view."""
    learn = tabs.learn
    results = learn.components([f"result_{k}" for k in range(len(STEPS))])
    learn.tab.select(lambda: learn.updates(learn.measure()), None, results, api_visibility="private")

    def on_step(index: int):
        def go():
            try:
                made, path = learn.step_example(index)
            except ImageError as error:
                return tabs.restore.updates({"status": warn(str(error))})
            return fan_out(made, input_value=path, extra={tab_bar: gr.Tabs(selected=STEPS[index].tab)})
        return go
    for k, button in enumerate(learn.buttons):
        move_star(button.click(on_step(k), None, with_input + [tab_bar], api_visibility="private"))


def wire_steer(steer: SteerTab, current: gr.State, move_star) -> None:
    def on_steer(made, *amounts):
        return steer.updates(steer.on_steer(made, *amounts))
    steered = steer.components(["result", "change", "edited"])
    for slider in steer.sliders:  # on release: a programmatic reset does not restore once per slider
        move_star(slider.release(on_steer, [current, *steer.sliders], steered, trigger_mode="always_last",
                                 show_progress="minimal", api_visibility="private"), steer.edited)
    reset = steer.reset_btn.click(lambda: [0] * len(steer.sliders), None, steer.sliders, api_visibility="private")
    move_star(reset.then(on_steer, [current, *steer.sliders], steered, api_visibility="private"), steer.edited)
    steer.gallery_btn.click(lambda made: steer.updates(steer.on_gallery(made)), current,
                            steer.components(["gallery", "gallery_info"]), api_visibility="private")
    steer.dims_btn.click(lambda made, dims, scale: steer.updates(steer.on_dims(made, dims, scale)),
                         [current, steer.dims, steer.scale], steer.components(["result", "dims_info", "dims_plot"]),
                         api_name="counterfactual")


def launch_options(host: str = "127.0.0.1", port: int = 7860) -> dict[str, Any]:
    """launch() keywords: local only, no share link, the theme/CSS, and the examples folder allowed."""
    return dict(server_name=host, server_port=port, share=False, css=views.CSS, theme=gr.themes.Default(),
                allowed_paths=[str(EXAMPLES_DIR)], footer_links=["api", "settings"], run_history=False)


def load_defaults(checkpoint: str | Path | None, teacher: str | Path | None, atlas_path: str | Path | None,
                  device: str = "auto", precision: str = "auto") -> tuple[Pipeline, Atlas | None]:
    """The shipped model and atlas (or the given files), with a clear error when missing."""
    from lupi_core.pipeline import load_pretrained

    pipeline = load_pretrained(checkpoint, teacher=teacher, device=device, precision=precision)
    explicit = atlas_path is not None
    atlas_path = Path(atlas_path) if explicit else DEFAULT_ATLAS
    try:
        atlas = Atlas.load(atlas_path)
    except FileNotFoundError as error:
        if explicit:
            raise
        print(f"warning: {error}\n(the app runs without the atlas views)", file=sys.stderr)
        return pipeline, None
    if not atlas.matches(pipeline):
        rebuild = (f"python -m lupi_core atlas --checkpoint {checkpoint or 'assets/lupi-small-student.safetensors'} "
                   f"--out {atlas_path}")
        if not explicit:
            print(f"warning: {atlas_path} was built with another model's predictor, so its map and descriptions do "
                  f"not apply; the app runs without it. Rebuild it with: {rebuild}", file=sys.stderr)
            return pipeline, None
        print(f"warning: {atlas_path} was built with another model's predictor; rebuild it with: {rebuild}",
              file=sys.stderr)
    return pipeline, atlas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.app", description=__doc__.splitlines()[0],
                                     parents=[runtime_flags(), checkpoint_flag()])
    parser.add_argument("--teacher", type=Path, default=None,
                        help="teacher weights for the Privileged tab (default: the shipped teacher, "
                             "when --checkpoint is not given)")
    parser.add_argument("--atlas", type=Path, default=None, help="atlas path without suffix (default: assets/atlas)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--concurrency", type=int, default=1,
                        help="restorations run at once (each peaks at about 1.5 GB); the rest queue")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be 1 or more")

    from lupi_core.weights import WeightsError

    try:
        apply_runtime(args)
        pipeline, atlas = load_defaults(args.checkpoint, args.teacher, args.atlas, args.device, args.precision)
    except (WeightsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}\nStart the app on other weights with: python -m demo.app --checkpoint STUDENT "
              f"[--teacher TEACHER] [--atlas ATLAS]", file=sys.stderr)
        return 2
    build_app(pipeline, atlas, concurrency=args.concurrency).launch(**launch_options(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
