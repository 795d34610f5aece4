"""The LUPI demo: `python -m demo.app [--checkpoint F] [--teacher F] [--atlas PATH] [--port 7860] [--host 127.0.0.1]`.

Serves http://127.0.0.1:7860 on CPU, offline: five tabs (Restore, Prior inspector,
Atlas map, Privileged vs predicted, Learn). The model and the atlas are loaded once;
`build_app(pipeline, atlas)` builds the page around them (tests inject a tiny model),
and every view calls lupi_core through demo/handlers.py.
"""
from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import gradio as gr  # noqa: E402

from lupi_core.atlas import DEFAULT_ATLAS, Atlas  # noqa: E402
from lupi_core.examples import EXAMPLES_DIR, load_index  # noqa: E402
from lupi_core.pipeline import Pipeline  # noqa: E402

from . import charts, views  # noqa: E402
from .handlers import SIGMA_MAX, SYNTH_KINDS, Handlers  # noqa: E402

QUEUE_SIZE = 16


class RawImage(gr.Image):
    """An image input that hands the handler the uploaded file's path untouched, so that
    lupi_core.images.load_image reads it (EXIF, 16-bit, alpha, and a clear message for a
    damaged or non-image file) instead of Gradio's own conversion raising first."""

    def preprocess(self, payload):  # type: ignore[override]
        if payload is not None and getattr(payload, "path", None) and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        return super().preprocess(payload)

    def get_block_name(self) -> str:
        return "image"


def build_app(pipeline: Pipeline, atlas: Atlas | None, examples: list[dict] | None = None,
              concurrency: int = 1) -> gr.Blocks:
    """The page around a loaded pipeline and atlas (either may be a tiny test model); `concurrency`
    restorations run at once, the others wait in the queue and see their position."""
    examples = load_index() if examples is None else examples
    h = Handlers(pipeline, atlas, examples)
    gr.set_static_paths([str(views.PLOTLY_JS)] + ([str(Path(examples[0]["path"]).parent)] if examples else []))
    views_: dict[str, Any] = {}

    def adapt(result: dict[str, Any], keys: list[str]) -> dict:
        """A handler's named results -> {component: value} for the outputs this event declared."""
        out = {}
        for key, value in result.items():
            if key == "selected_tab":
                if "tabs" in keys:
                    out[views_["tabs"]] = gr.Tabs(selected=value)
            elif key in keys:
                out[views_[key]] = value
        return out

    def event(fn: Callable[..., dict], keys: list[str]) -> tuple[Callable, list]:
        def run(*args):
            return adapt(fn(*args), keys)
        return run, [views_[k] for k in keys]

    with gr.Blocks(title="LUPI: all-in-one image restoration", analytics_enabled=False) as demo:
        gr.Markdown("# LUPI: all-in-one image restoration with a privileged degradation prior\n"
                    "One model for noise, rain, haze, blur and low light, steered by a 512-d prior that a student "
                    "network predicts from the degraded image. New here? Start with the **Learn** tab.",
                    elem_id="lupi-title")
        states = {name: gr.State(None) for name in (
            "input_state", "clean_state", "output_state", "prior_state", "insp_clean", "insp_curve")}
        views_.update(states)
        with gr.Tabs(selected="restore") as tabs:
            views_["tabs"] = tabs
            # -- Restore --------------------------------------------------------------------------------
            with gr.Tab("Restore", id="restore"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1):
                        views_["input_image"] = RawImage(
                            type="filepath", sources=["upload", "clipboard"], format="png", image_mode=None,
                            label="Input image: drop, paste or click to pick", height=340, elem_id="input-image")
                        with gr.Accordion("Or synthesize a degradation (the clean original is then known)", open=True):
                            with gr.Row():
                                views_["kind"] = gr.Dropdown(choices=list(SYNTH_KINDS), value="noise", label="Kind",
                                                             scale=2)
                                views_["seed"] = gr.Number(value=0, precision=0, label="Seed", scale=1, minimum=0)
                            views_["severity"] = gr.Slider(0, SIGMA_MAX, value=25, step=1,
                                                           label="Noise sigma (0-255 scale)")
                            synth_btn = gr.Button("Degrade the clean original", elem_id="synth-btn")
                        views_["strength"] = gr.Slider(0, 1, value=1, step=0.05, elem_id="strength",
                                                       label="Strength (0: the input, 1: the full restoration)")
                        with gr.Row():
                            restore_btn = gr.Button("Restore", variant="primary", elem_id="restore-btn", scale=2)
                            force_btn = gr.Button("Restore anyway", elem_id="force-btn", scale=1)
                        views_["status"] = gr.Markdown("Load an image to begin.", elem_id="status")
                    with gr.Column(scale=1):
                        views_["restored"] = gr.ImageSlider(label="Before / after (drag the handle)", type="numpy",
                                                            format="png", interactive=False, max_height=420,
                                                            elem_id="restored")
                        with gr.Row():
                            views_["difference"] = gr.Image(label="Difference, amplified", format="png", type="numpy",
                                                            interactive=False, height=200, elem_id="difference",
                                                            scale=1)
                            with gr.Column(scale=1):
                                views_["difference_info"] = gr.Markdown()
                                views_["download"] = gr.DownloadButton("Download restored PNG", value=None,
                                                                       elem_id="download")
                        views_["metrics"] = gr.Markdown(elem_id="metrics")
                        views_["describe"] = gr.Markdown(elem_id="describe")
                gallery = gr.Gallery(value=[(e["path"], e["file"].removesuffix(".png").replace("_", " "))
                                            for e in examples],
                                     label="Examples (click one to load it; degraded ones come with their clean original)",
                                     columns=8, height=230, allow_preview=False, object_fit="cover", format="png",
                                     elem_id="examples")
            # -- Prior inspector ------------------------------------------------------------------------
            with gr.Tab("Prior inspector", id="inspector"):
                views_["insp_info"] = gr.Markdown("Load an image first (Restore tab), or click a point on the atlas map.",
                                                  elem_id="insp-info")
                views_["insp_prior_plot"] = gr.Plot(label="Prior d_S", elem_id="insp-prior")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2):
                        views_["insp_sigma"] = gr.Slider(0, SIGMA_MAX, value=0, step=1, elem_id="insp-sigma",
                                                         label="Sigma: re-noise the clean image (prior redraws live; "
                                                               "release to restore)")
                        views_["insp_curve_plot"] = gr.Plot(label="Figure 5b", elem_id="insp-curve")
                    with gr.Column(scale=1):
                        views_["insp_noisy"] = gr.Image(label="Re-noised input", format="png", type="numpy",
                                                        interactive=False, height=220, elem_id="insp-noisy")
                        views_["insp_result"] = gr.ImageSlider(label="Its restoration (on release)", type="numpy",
                                                               format="png", interactive=False, max_height=260,
                                                               elem_id="insp-result")
                        views_["insp_metrics"] = gr.Markdown(elem_id="insp-metrics")
                if atlas is not None:
                    fig5a, fig5a_text = charts.signature_heatmap(atlas)
                    gr.Plot(value=fig5a, label="Figure 5a", elem_id="fig5a")
                    gr.Markdown(fig5a_text)
            # -- Atlas map ------------------------------------------------------------------------------
            with gr.Tab("Atlas map", id="atlas"):
                if atlas is not None:
                    with gr.Row():
                        views_["map_space"] = gr.Radio(["UMAP", "PCA"], value="UMAP", label="Map")
                        views_["map_color"] = gr.Radio(["kind", "level"], value="kind", label="Colour by")
                        gr.Markdown(f"{len(atlas)} priors of this model's student D_S on photographs under every kind "
                                    "and level. Hover a point for its image; **click it to load it into the "
                                    "inspector**. The star is the current image.")
                    views_["map_html"] = views.map_component(h.map_value("umap", "kind", None),
                                                             charts.thumbnail_uris(atlas))
                    views_["map_info"] = gr.Markdown(elem_id="map-info")
                    gr.Markdown("#### Nearest atlas samples to the current prior (512-d, standardised distance)")
                    with gr.Row():
                        views_["nn_table"] = gr.Dataframe(headers=["rank", "atlas #", "sample", "distance"],
                                                          interactive=False, wrap=True, scale=1)
                        views_["nn_gallery"] = gr.Gallery(label="Their images", columns=4, height=260,
                                                          allow_preview=False, format="png", scale=1)
                else:
                    views_["map_info"] = gr.Markdown("No atlas loaded: build one with `python -m lupi_core atlas`.")
            # -- Privileged vs predicted ------------------------------------------------------------------
            with gr.Tab("Privileged vs predicted", id="privileged"):
                gr.Markdown("For an image whose clean original is known (synthesized, a degraded example, or an atlas "
                            "sample): the teacher's prior d_T, computed from the degraded **and** the clean image, "
                            "beside the student's d_S from the degraded image alone.")
                compare_btn = gr.Button("Compare teacher and student on the current image", variant="primary",
                                        elem_id="compare-btn")
                views_["priv_info"] = gr.Markdown(elem_id="priv-info")
                views_["priv_plot"] = gr.Plot(label="d_T vs d_S", elem_id="priv-plot")
                with gr.Row():
                    views_["priv_student"] = gr.Image(label="Restored with the student's d_S (deployed)", format="png",
                                                      type="numpy", interactive=False, height=260, elem_id="priv-student")
                    views_["priv_teacher"] = gr.Image(label="Restored with the teacher's d_T (privileged)",
                                                      format="png", type="numpy", interactive=False, height=260,
                                                      elem_id="priv-teacher")
                gr.Markdown("### Counterfactual: restore with another prior\nSame image, different prior: what changes is "
                            "what the prior controls.")
                with gr.Row():
                    cf_choices = ["own prior, chosen dims scaled"] + (
                        [f"atlas mean: {charts.KIND_NAMES.get(k, k)}" for k in atlas.kinds] if atlas is not None else [])
                    views_["cf_source"] = gr.Dropdown(cf_choices, value=cf_choices[0], label="Prior", scale=2)
                    views_["cf_dims"] = gr.Textbox(label="Dimensions (e.g. 71, 128; empty: the 5 largest)", scale=2)
                    views_["cf_scale"] = gr.Slider(-3, 3, value=2, step=0.1, label="Scale those dimensions by", scale=2)
                cf_btn = gr.Button("Restore with this prior", elem_id="cf-btn")
                views_["cf_info"] = gr.Markdown(elem_id="cf-info")
                with gr.Row():
                    views_["cf_result"] = gr.ImageSlider(label="Default restoration / counterfactual", type="numpy",
                                                         format="png", interactive=False, max_height=360,
                                                         elem_id="cf-result")
                    views_["cf_plot"] = gr.Plot(label="Prior used")
            # -- Learn ------------------------------------------------------------------------------------
            with gr.Tab("Learn", id="learn"):
                gr.Markdown(views.LEARN)

        # hidden API-only endpoint: an image file in, its prior and description out
        api_image = RawImage(type="filepath", visible=False)
        api_prior = gr.JSON(visible=False)

        # -- wiring ---------------------------------------------------------------------------------------
        current_keys = ["input_state", "clean_state", "output_state", "prior_state", "restored", "difference",
                        "difference_info", "metrics", "download", "status", "insp_clean", "insp_curve", "describe",
                        "insp_prior_plot", "insp_curve_plot", "insp_info"]
        if atlas is not None:
            current_keys += ["nn_table", "nn_gallery", "map_info"]
        with_input = current_keys + ["input_image"]

        def refresh_map(*args):  # after the current image changes: move the star
            if atlas is None:
                return {}
            space, color, prior = args
            return {views_["map_html"]: h.map_value(space, color, prior)}

        map_inputs = [views_["map_space"], views_["map_color"], views_["prior_state"]] if atlas is not None else []
        map_outputs = [views_["map_html"]] if atlas is not None else []

        def chain(dep):
            if atlas is not None:
                dep.then(refresh_map, map_inputs, map_outputs, show_progress="hidden", api_visibility="private")

        fn, outs = event(h.load_upload, current_keys)
        chain(views_["input_image"].upload(fn, views_["input_image"], outs, api_name="load_image"))
        views_["input_image"].clear(lambda: {views_["status"]: "Cleared.", views_["input_state"]: None,
                                             views_["clean_state"]: None},
                                    None, [views_["status"], views_["input_state"], views_["clean_state"]],
                                    api_visibility="private")

        def on_example(evt: gr.SelectData):
            return adapt(h.load_example(evt.index), with_input)
        chain(gallery.select(on_example, None, [views_[k] for k in with_input], api_visibility="private"))

        fn, outs = event(h.severity_control, ["severity"])
        views_["kind"].change(fn, views_["kind"], outs, api_visibility="private")
        fn, outs = event(h.synthesize, with_input)
        chain(synth_btn.click(fn, [views_["kind"], views_["severity"], views_["seed"], views_["input_state"],
                                   views_["clean_state"]], outs, api_name="synthesize"))

        restore_keys = ["restored", "output_state", "difference", "difference_info", "download", "metrics", "status",
                        "describe"]

        def on_restore(path, clean, strength=1.0, progress=gr.Progress()):
            return adapt(h.restore(path, clean, strength, progress=progress), restore_keys)

        def on_force(path, clean, strength=1.0, progress=gr.Progress()):
            return adapt(h.restore(path, clean, strength, force=True, progress=progress), restore_keys)
        restore_inputs = [views_["input_image"], views_["clean_state"], views_["strength"]]
        restore_btn.click(on_restore, restore_inputs, [views_[k] for k in restore_keys], api_name="restore")
        force_btn.click(on_force, restore_inputs, [views_[k] for k in restore_keys], api_name="restore_anyway")

        sigma_keys = ["insp_prior_plot", "insp_curve_plot", "insp_noisy", "insp_info"]
        fn, outs = event(h.inspect_sigma, sigma_keys)
        views_["insp_sigma"].change(fn, [views_["insp_clean"], views_["insp_curve"], views_["insp_sigma"]], outs,
                                    trigger_mode="always_last", show_progress="hidden", concurrency_limit=2,
                                    concurrency_id="prior", api_name="prior_at_sigma")
        fn, outs = event(h.inspect_restore, ["insp_result", "insp_metrics"])
        views_["insp_sigma"].release(fn, [views_["insp_clean"], views_["insp_sigma"]], outs,
                                     trigger_mode="always_last", api_name="restore_at_sigma")

        if atlas is not None:
            def on_map_view(space, color, prior):
                return {views_["map_html"]: h.map_value(space, color, prior)}
            for radio in (views_["map_space"], views_["map_color"]):
                radio.change(on_map_view, map_inputs, map_outputs, show_progress="hidden", api_visibility="private")

            def on_map_click(evt: gr.SelectData):
                return adapt(h.load_atlas_sample(int(evt.index)), with_input + ["tabs"])
            chain(views_["map_html"].select(on_map_click, None, [views_[k] for k in with_input + ["tabs"]],
                                            api_name="atlas_select"))

        priv_keys = ["priv_plot", "priv_info", "priv_student", "priv_teacher"]
        fn, outs = event(h.compare_priors, priv_keys)
        compare_btn.click(fn, [views_["input_state"], views_["clean_state"]], outs, api_name="compare_priors")
        cf_keys = ["cf_result", "cf_info", "cf_plot"]
        fn, outs = event(h.counterfactual, cf_keys)
        cf_btn.click(fn, [views_["input_state"], views_["clean_state"], views_["cf_source"], views_["cf_dims"],
                          views_["cf_scale"]], outs, api_name="counterfactual")

        api_image.change(h.prior_report, api_image, api_prior, api_name="prior", concurrency_id="prior",
                         concurrency_limit=2)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=concurrency)
    return demo


def launch_options(host: str = "127.0.0.1", port: int = 7860) -> dict[str, Any]:
    """launch() keywords: local only, no share link, the theme/CSS, and the examples folder allowed."""
    return dict(server_name=host, server_port=port, share=False, css=views.CSS, theme=gr.themes.Default(),
                allowed_paths=[str(EXAMPLES_DIR)], footer_links=["api", "settings"], run_history=False)


def load_defaults(checkpoint: str | Path | None, teacher: str | Path | None, atlas_path: str | Path | None
                  ) -> tuple[Pipeline, Atlas | None]:
    """The shipped model and atlas (or the given files), with a clear error when missing."""
    from lupi_core.pipeline import load_pretrained

    pipeline = load_pretrained(checkpoint, teacher=teacher)
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
    parser = argparse.ArgumentParser(prog="python -m demo.app", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="student weights (default: assets/lupi-small-student.safetensors)")
    parser.add_argument("--teacher", type=Path, default=None,
                        help="teacher weights for the Privileged tab (default: the shipped teacher, "
                             "when --checkpoint is not given)")
    parser.add_argument("--atlas", type=Path, default=None, help="atlas path without suffix (default: assets/atlas)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="restorations run at once (each peaks at about 1.5 GB); the rest queue")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be 1 or more")

    import torch

    from lupi_core.weights import WeightsError

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        pipeline, atlas = load_defaults(args.checkpoint, args.teacher, args.atlas)
    except (WeightsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}\nStart the app on other weights with: python -m demo.app --checkpoint STUDENT "
              f"[--teacher TEACHER] [--atlas ATLAS]", file=sys.stderr)
        return 2
    build_app(pipeline, atlas, concurrency=args.concurrency).launch(**launch_options(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
