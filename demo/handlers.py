"""The app's event handlers as plain functions (methods of `Handlers`), testable without
a browser or a server.

Each handler returns a dict keyed by view names ("status", "restored", ...); app.py
maps the names to components, so a handler updates only the views it names. Every
computation is a lupi_core call: the pipeline (prior, privileged prior, restore),
the atlas (describe, nearest, place), degrade, metrics and the alignment loss.
"""
from __future__ import annotations

import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from lupi_core.atlas import Atlas, noise_curve
from lupi_core.degrade import add_gaussian_noise, degrade
from lupi_core.images import ImageError, load_image, quantize, save_png, to_rgb_uint8
from lupi_core.losses import AlignConfig, alignment_loss
from lupi_core.metrics import psnr, ssim
from lupi_core.pipeline import Pipeline

from . import charts

MAX_PIXELS = 16_000_000          # uploads above this are refused with a message (CLI: any size)
MIN_SIDE = 8                     # the network downsamples three times
INSPECTOR_SIDE = 384             # the inspector re-noises a copy this size, so the slider stays live
CURVE_SIGMAS = (0, 10, 20, 30, 40, 50, 60)
SIGMA_MAX = 75
NOISE_SEED = 0                   # the inspector's re-noising seed: the same noise pattern at every sigma
ALIGN_TEMPERATURE = AlignConfig().temperature  # the training's default KL temperature
SYNTH_KINDS = (("noise", "noise"), ("rain", "rain"), ("haze", "haze"), ("blur", "blur"),
               ("low light", "lowlight"), ("mix", "mix"))
NEIGHBOURS = 8

Progress = Callable[..., Any] | None


class Handlers:
    """Everything the app does, bound to one loaded pipeline and atlas."""

    def __init__(self, pipeline: Pipeline, atlas: Atlas | None = None, examples: list[dict] | None = None,
                 tmp_dir: str | Path | None = None):
        self.pipeline, self.atlas, self.examples = pipeline, atlas, list(examples or [])
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL refuses bombs at the app's own limit, not its default 89 MP
        if atlas is not None and pipeline.atlas is None and pipeline.has_prior and atlas.matches(pipeline):
            pipeline.use_atlas(atlas)  # the pipeline reads inputs (clean or not) against the app's atlas
        self.tmp = Path(tmp_dir) if tmp_dir else Path(tempfile.mkdtemp(prefix="lupi-demo-"))
        self.tmp.mkdir(parents=True, exist_ok=True)

    # -- reading inputs ---------------------------------------------------------------------------
    def read_upload(self, path: str | Path | None) -> tuple[np.ndarray, str]:
        """Load an uploaded file as uint8 RGB; raises ImageError with a user-facing message.
        Returns the image and a note of what was converted (grayscale, alpha, 16-bit, ...)."""
        if path is None or str(path) == "":
            raise ImageError("no image: drop, paste or pick one (PNG, JPEG, BMP, TIFF, WebP, GIF)")
        path = Path(path)
        name = path.name  # never the server's temporary folder
        notes = []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, with a message
                with Image.open(path) as probe:  # the header only: refuse huge images before decoding
                    w, h = probe.size
                    mode, frames = probe.mode, getattr(probe, "n_frames", 1)
                    rotated = probe.getexif().get(0x0112, 1) not in (1, None)
        except Image.DecompressionBombError:  # a header claiming more than twice PIL's own limit
            w = h = MAX_PIXELS
            mode, frames, rotated = "", 1, False
        except Exception:  # unreadable: load_image says why
            w = h = 0
            mode, frames, rotated = "", 1, False
        if w * h > MAX_PIXELS:
            size = f"{w} x {h} ({w * h / 1e6:.1f} MP)" if w != MAX_PIXELS else "larger than PIL decodes safely"
            raise ImageError(f"{name}: the image is {size}, above this demo's "
                             f"{MAX_PIXELS / 1e6:.0f} MP limit; downscale it, or restore it with "
                             f"`python -m lupi_core restore` (tiles, any size)")
        image = load_image(path, name=name)
        if min(image.shape[:2]) < MIN_SIDE:
            raise ImageError(f"{name}: the image is {image.shape[1]} x {image.shape[0]} pixels; it needs at least "
                             f"{MIN_SIDE} x {MIN_SIDE}")
        if frames > 1:
            notes.append(f"animated ({frames} frames): the first frame is used")
        if mode in ("L", "1", "LA", "I;16", "I;16B", "I;16L", "I"):
            notes.append("grayscale: converted to RGB")
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            notes.append("16-bit: scaled to 8-bit")
        if mode in ("RGBA", "LA", "PA"):
            notes.append("transparency: composited on white")
        if rotated:
            notes.append("EXIF orientation applied")
        return image, "; ".join(notes)

    # -- the current image and everything derived from it ------------------------------------------
    def current(self, image: np.ndarray, clean: np.ndarray | None, source: str, note: str = "") -> dict[str, Any]:
        """New current input: its prior, the description, the inspector and the atlas views;
        previous results are cleared."""
        image = to_rgb_uint8(image)
        if clean is not None and clean.shape != image.shape:
            clean = None
        h, w = image.shape[:2]
        status = f"**{source}**: {w} x {h}" + (f" ({note})" if note else "")
        status += ". Clean original known: PSNR/SSIM will be shown." if clean is not None else "."
        out: dict[str, Any] = {"input_state": image, "clean_state": clean, "output_state": None,
                               "restored": None, "difference": None, "metrics": "", "download": None,
                               "status": status}
        insp_clean = fit_within(clean if clean is not None else image, INSPECTOR_SIDE)
        out["insp_clean"] = insp_clean
        if not self.pipeline.has_prior:
            out.update(prior_state=None, describe="This model has no degradation predictor: no prior to show.")
            return out
        prior = self.pipeline.prior(image)
        described = self.atlas.describe(prior) if self.atlas is not None else None
        sigmas, curve = noise_curve(self.pipeline, insp_clean, CURVE_SIGMAS, seed=NOISE_SEED)
        out.update(
            prior_state=prior, insp_curve=(sigmas, curve),
            describe=describe_markdown(described),
            insp_prior_plot=charts.prior_bars(prior, self.atlas, highlight=described["kind"] if described else None,
                                              title="Prior d_S of the current input"),
            insp_curve_plot=charts.noise_curve_chart(sigmas, curve, self.noise_dims(), atlas=self.atlas),
            insp_info=f"Showing the prior of the current input ({source}). "
                      f"{describe_sentence(described)} Move the sigma slider to re-noise "
                      f"{'the clean original' if clean is not None else 'this image'} and watch the prior change.",
        )
        out.update(self.atlas_views(prior))
        return out

    def noise_dims(self) -> list[int]:
        if self.atlas is not None and len(self.atlas.noise_dims):
            return [int(d) for d in self.atlas.noise_dims[:6]]
        return list(range(6))

    def atlas_views(self, prior: np.ndarray | None) -> dict[str, Any]:
        """The nearest atlas samples of a prior (the map's star moves in a follow-up event)."""
        if self.atlas is None or prior is None:
            return {}
        rows, gallery = self.neighbour_views(prior)
        return {"nn_table": rows, "nn_gallery": gallery, "map_info": ""}

    def map_value(self, space: str, color_by: str, prior: np.ndarray | None) -> str:
        space = "pca" if str(space).lower().startswith("pca") else "umap"
        color_by = "level" if "level" in str(color_by).lower() or "sever" in str(color_by).lower() else "kind"
        marker = self.atlas.place(prior, space) if prior is not None else None
        return charts.map_value(self.atlas, space, color_by, marker)

    def neighbour_views(self, prior: np.ndarray, k: int = NEIGHBOURS) -> tuple[list[list], list]:
        rows, gallery = [], []
        for rank, (label, dist) in enumerate(self.atlas.nearest(prior, k), 1):
            text = charts.sample_text(label)
            rows.append([rank, label["index"], text, round(dist, 4)])
            thumb = self.atlas.thumbnail_array(label["index"])
            if thumb is not None:
                gallery.append((thumb, f"#{label['index']} {text} (d={dist:.3f})"))
        return rows, gallery

    # -- restore tab --------------------------------------------------------------------------------
    def load_upload(self, path: str | None) -> dict[str, Any]:
        try:
            image, note = self.read_upload(path)
        except ImageError as error:
            return self.warn(str(error))
        return self.current(image, None, f"Uploaded {Path(path).name}", note)

    def load_example(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.examples):
            return self.warn(f"no example {index}")
        entry = self.examples[index]
        image = load_image(entry["path"])
        clean = load_image(entry["clean_path"]) if entry["kind"] != "clean" else None
        out = self.current(image, clean, f"Example {entry['file']}")
        out["input_image"] = entry["path"]
        return out

    def severity_control(self, kind: str) -> dict[str, Any]:
        """The severity slider for a kind: noise in sigma (0-255 scale), others a 0-1 level."""
        import gradio as gr

        if kind == "noise":
            return {"severity": gr.update(minimum=0, maximum=SIGMA_MAX, step=1, value=25,
                                          label="Noise sigma (0-255 scale)")}
        return {"severity": gr.update(minimum=0, maximum=1, step=0.05, value=0.5,
                                      label="Severity level (0 = mildest, 1 = strongest)")}

    def synthesize(self, kind: str, severity: float, seed: float | None, image: np.ndarray | None,
                   clean: np.ndarray | None) -> dict[str, Any]:
        """Degrade the clean original (or the current image, taken as clean) with a known recipe."""
        source = clean if clean is not None else image
        if source is None:
            return self.warn("load an image first (upload one or pick an example); it is taken as the clean original")
        seed = int(seed or 0)
        try:
            if kind == "noise":
                degraded = degrade(source, "noise", sigma=float(severity), seed=seed)
                what = f"noise sigma {float(severity):g}"
            else:
                level = float(np.clip(severity, 0.0, 1.0))
                degraded, info = degrade(source, kind, level=level, seed=seed, return_info=True)
                what = f"{kind} level {level:g}" + (f" ({' + '.join(info['kinds'])})" if kind == "mix" else "")
        except ValueError as error:
            return self.warn(str(error))
        out = self.current(degraded, source, f"Synthesized {what}, seed {seed}")
        out["input_image"] = degraded
        return out

    def restore(self, image: str | Path | np.ndarray | None, clean: np.ndarray | None, strength: float = 1.0,
                force: bool = False, progress: Progress = None) -> dict[str, Any]:
        """Restore the input (a file path, as the page sends it, or an array) at full resolution:
        before/after, the amplified difference, PSNR/SSIM when the clean original is known, a PNG
        to download. An input the prior reads as clean is left as it is unless `force`."""
        try:
            if isinstance(image, np.ndarray):
                array = to_rgb_uint8(image)
            else:
                array, _ = self.read_upload(image)
        except ImageError as error:
            return self.warn(str(error))
        if clean is not None and clean.shape != array.shape:
            clean = None
        tiles = None
        if progress is not None:
            started = time.perf_counter()

            def tiles(done: int, total: int) -> None:
                estimate = (time.perf_counter() - started) * total if done == 0 else None
                progress((done, total), desc=f"restoring {total} tile passes" +
                         (f", about {estimate:.0f} s" if estimate else ""))
        try:
            result = self.pipeline.restoration(array, strength=float(strength), force=bool(force), progress=tiles)
        except (ImageError, ValueError, RuntimeError) as error:
            return self.warn(f"restoration failed: {error}")
        restored = quantize(result.image)
        diff, gain = charts.difference_image(restored, array)
        download = save_png(restored, self.tmp / f"restored-{uuid.uuid4().hex[:8]}.png")
        w, h = array.shape[1], array.shape[0]
        if result.left_as_is:
            status = f"{w} x {h} {result.message}: press **Restore anyway**."
        else:
            status = f"Restored {w} x {h} at full resolution" + (f", strength {strength:g}." if strength < 1 else ".")
        out = {"restored": (array, restored), "output_state": restored, "difference": diff,
               "difference_info": f"|output - input| x {gain} (gain {gain}: a difference of "
                                  f"{255 / gain:.0f}/255 shows as white)",
               "download": str(download), "metrics": metrics_markdown(array, result.image, clean),
               "status": status}
        if self.pipeline.has_prior:
            reading = result.reading
            if reading is None and self.atlas is not None:
                reading = self.atlas.describe(self.pipeline.prior(array))
            out["describe"] = describe_markdown(reading)
        return out

    def prior_report(self, path: str | None) -> dict[str, Any]:
        """The API's "prior" endpoint: an image file in, its 512-d prior and description out."""
        try:
            image, _ = self.read_upload(path)
        except ImageError as error:
            return {"error": str(error)}
        if not self.pipeline.has_prior:
            return {"error": "this model has no degradation predictor"}
        prior = self.pipeline.prior(image)
        report: dict[str, Any] = {"width": int(image.shape[1]), "height": int(image.shape[0]),
                                  "prior": [round(float(v), 6) for v in prior]}
        if self.atlas is not None:
            described = self.atlas.describe(prior)
            report.update({key: described[key] for key in ("kind", "sigma", "level", "agreement",
                                                          "nearest_distance", "out_of_distribution")})
            report["description"] = described["text"]
            report["nearest"] = [{"index": label["index"], "sample": charts.sample_text(label), "distance": dist}
                                 for label, dist in described["neighbours"]]
        return report

    # -- prior inspector ------------------------------------------------------------------------------
    def inspect_sigma(self, insp_clean: np.ndarray | None, curve: tuple | None, sigma: float) -> dict[str, Any]:
        """Re-noise the inspector's clean copy at `sigma` (fixed seed) and redraw its prior.
        Runs D_S only (pipeline.prior): fast enough for a live slider."""
        if insp_clean is None:
            return {"insp_info": "Load an image first (Restore tab), or click a point on the atlas map."}
        sigma = float(sigma)
        noisy = add_gaussian_noise(insp_clean, sigma, NOISE_SEED) if sigma > 0 else insp_clean
        prior = self.pipeline.prior(noisy)
        described = self.atlas.describe(prior) if self.atlas is not None else None
        out = {"insp_prior_plot": charts.prior_bars(prior, self.atlas, highlight=described["kind"] if described else None,
                                                    title=f"Prior d_S after re-noising at sigma {sigma:g}"),
               "insp_noisy": noisy, "insp_sigma_prior": prior,
               "insp_info": f"Sigma {sigma:g}: {describe_sentence(described)}"}
        if curve is not None:
            sigmas, priors = curve
            out["insp_curve_plot"] = charts.noise_curve_chart(sigmas, priors, self.noise_dims(), current_sigma=sigma,
                                                              current_prior=prior, atlas=self.atlas)
        return out

    def inspect_restore(self, insp_clean: np.ndarray | None, sigma: float, progress: Progress = None) -> dict[str, Any]:
        """The full restoration of the re-noised copy (runs when the slider is released)."""
        if insp_clean is None:
            return {}
        sigma = float(sigma)
        noisy = add_gaussian_noise(insp_clean, sigma, NOISE_SEED) if sigma > 0 else insp_clean
        restored_float = self.pipeline.restore_float(noisy)
        restored = quantize(restored_float)
        return {"insp_result": (noisy, restored),
                "insp_metrics": f"Sigma {sigma:g}: noisy {psnr(noisy, insp_clean):.2f} dB -> restored "
                                f"{psnr(restored_float, insp_clean):.2f} dB PSNR against the clean copy."}

    # -- atlas map ----------------------------------------------------------------------------------
    def load_atlas_sample(self, index: int) -> dict[str, Any]:
        """A click on the map: regenerate that atlas sample and make it the current image."""
        if self.atlas is None:
            return self.warn("no atlas loaded")
        index = int(index)
        if index < 0:  # the current image's own marker
            return {"map_info": "That star is the current image."}
        try:
            degraded, clean = self.atlas.sample(index)
        except (ImageError, IndexError) as error:
            return self.warn(str(error))
        label = self.atlas.labels[index]
        clean_known = None if label["kind"] == "clean" else clean
        out = self.current(degraded, clean_known, f"Atlas sample #{index} ({charts.sample_text(label)})")
        out["input_image"] = degraded
        out["map_info"] = f"Loaded atlas sample #{index}: {charts.sample_text(label)}."
        out["selected_tab"] = "inspector"
        return out

    # -- privileged vs predicted ----------------------------------------------------------------------
    def compare_priors(self, image: np.ndarray | None, clean: np.ndarray | None) -> dict[str, Any]:
        """The teacher's d_T = D_T(I_d, I_c) beside the student's d_S = D_S(I_d), their gap,
        and the restorations each prior gives."""
        if image is None or clean is None:
            return self.warn("this needs a degraded image whose clean original is known: synthesize one "
                             "(Restore tab), pick a degraded example, or click an atlas point", key="priv_info")
        if self.pipeline.teacher is None:
            return self.warn("no teacher weights loaded (start the app with --teacher FILE)", key="priv_info")
        if not self.pipeline.has_prior:
            return self.warn("this model has no degradation predictor", key="priv_info")
        d_t = self.pipeline.privileged_prior(image, clean)
        d_s = self.pipeline.prior(image)
        gap = prior_gap(d_t, d_s)
        with_student = self.pipeline.restore_float(image)
        with_teacher = self.pipeline.restore_float(image, prior=d_t)
        p_in, p_s, p_t = psnr(image, clean), psnr(with_student, clean), psnr(with_teacher, clean)
        info = (f"**Alignment gap** (what Stage 2 minimises): KL(softmax(d_T/{ALIGN_TEMPERATURE:g}) || "
                f"softmax(d_S/{ALIGN_TEMPERATURE:g})) = **{gap['kl']:.4f}**, cosine similarity = **{gap['cosine']:.4f}**, "
                f"mean |d_T - d_S| = **{gap['l1']:.4f}**.  \n"
                f"**PSNR against the clean original:** input {p_in:.2f} dB; restored with the student's d_S "
                f"(deployed) **{p_s:.2f} dB**; restored with the teacher's d_T (privileged) **{p_t:.2f} dB** "
                f"({p_t - p_s:+.2f} dB).")
        return {"priv_plot": charts.two_priors_chart(d_t, d_s, ("teacher d_T (sees the clean image)",
                                                                 "student d_S (degraded image only)"),
                                                     "Privileged prior d_T vs predicted prior d_S"),
                "priv_info": info, "priv_gap": gap,
                "priv_student": quantize(with_student), "priv_teacher": quantize(with_teacher)}

    def counterfactual(self, image: np.ndarray | None, clean: np.ndarray | None, source: str, dims_text: str,
                       scale: float) -> dict[str, Any]:
        """Restore with another prior: another kind's atlas mean, or the own prior with chosen
        dimensions scaled. Shows what the prior controls in the restorer."""
        if image is None:
            return self.warn("load an image first", key="cf_info")
        if not self.pipeline.has_prior:
            return self.warn("this model has no degradation predictor", key="cf_info")
        own = self.pipeline.prior(image)
        if str(source).startswith("atlas mean: "):
            if self.atlas is None:
                return self.warn("no atlas loaded", key="cf_info")
            kind = str(source).removeprefix("atlas mean: ").replace("low light", "lowlight")
            used = self.atlas.kind_mean(kind).copy()
            what = f"the atlas mean prior of {charts.KIND_NAMES.get(kind, kind)}"
        else:
            try:
                dims = parse_dims(dims_text, own.size) or charts.top_indices(own, 5)
            except ValueError as error:
                return self.warn(str(error), key="cf_info")
            used = own.copy()
            used[dims] *= float(scale)
            what = f"its own prior with dims {', '.join(f'#{d}' for d in dims)} x {float(scale):g}"
        default = self.pipeline.restore_float(image)
        changed = self.pipeline.restore_float(image, prior=used)
        mean_change = float(np.mean(np.abs(changed - default)) * 255)
        info = f"Restored with {what}. Mean |change| against the default restoration: **{mean_change:.2f}/255**."
        if clean is not None:
            info += (f"  \nPSNR: default (own d_S) **{psnr(default, clean):.2f} dB**, counterfactual "
                     f"**{psnr(changed, clean):.2f} dB**.")
        return {"cf_result": (quantize(default), quantize(changed)), "cf_info": info, "cf_change": mean_change,
                "cf_plot": charts.two_priors_chart(used, own, ("prior used", "own prior d_S"),
                                                   "Counterfactual prior vs the image's own prior")}

    # -- helpers --------------------------------------------------------------------------------------
    def warn(self, message: str, key: str = "status") -> dict[str, Any]:
        """A message in the page (status Markdown) and as a toast; never an exception."""
        try:
            import gradio as gr

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # outside a request gradio turns it into a Python warning
                gr.Warning(message)
        except Exception:  # noqa: BLE001 - a toast is a nicety
            pass
        return {key: f"⚠️ {message}"}


# -- small pure helpers ----------------------------------------------------------------------------

def fit_within(image: np.ndarray, side: int) -> np.ndarray:
    """Downscale (never up) so the longer side is at most `side`."""
    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    scale = side / max(h, w)
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    return np.array(Image.fromarray(image).resize(size, Image.Resampling.BOX))


def prior_gap(d_t: np.ndarray, d_s: np.ndarray, temperature: float = ALIGN_TEMPERATURE) -> dict[str, float]:
    """KL as trained (lupi_core.losses, temperature 0.15), cosine similarity and mean |difference|."""
    t = torch.as_tensor(np.asarray(d_t, np.float32))[None]
    s = torch.as_tensor(np.asarray(d_s, np.float32))[None]
    kl = float(alignment_loss(s, t, AlignConfig("kl", temperature)))
    l1 = float(alignment_loss(s, t, AlignConfig("l1", temperature)))
    cosine = float(torch.nn.functional.cosine_similarity(s, t).item())
    return {"kl": kl, "cosine": cosine, "l1": l1}


def parse_dims(text: str | None, size: int) -> list[int]:
    """"71, 128 300" -> [71, 128, 300]; raises ValueError for anything else."""
    if not text or not str(text).strip():
        return []
    dims = []
    for token in str(text).replace(",", " ").replace("#", " ").split():
        if not token.isdigit() or not 0 <= int(token) < size:
            raise ValueError(f"dimensions must be whole numbers from 0 to {size - 1}, got {token!r}")
        dims.append(int(token))
    return sorted(set(dims))


def describe_sentence(described: dict | None) -> str:
    if described is None:
        return "No atlas loaded, so no description."
    n = len(described["neighbours"])
    agree = sum(1 for label, _ in described["neighbours"] if label["kind"] == described["kind"])
    return f"Looks like **{described['text']}** ({agree} of the {n} nearest atlas samples agree)."


def describe_markdown(described: dict | None) -> str:
    text = "#### What the model thinks it is looking at\n" + describe_sentence(described)
    if described is not None and described["out_of_distribution"]:
        text += (f"\n\n⚠️ **Far from everything in the atlas**: the nearest atlas sample is "
                 f"{described['nearest_distance']:.3f} away, beyond the {described['threshold']:.3f} that 99% of "
                 f"atlas samples are within of their own nearest neighbour. The model has seen nothing like this "
                 f"image; read its description, and its restoration, with care.")
    return text


def metrics_markdown(degraded: np.ndarray, restored: np.ndarray, clean: np.ndarray | None) -> str:
    """PSNR/SSIM of the input and of the (unquantised) output against the clean original."""
    if clean is None:
        return ("No clean original for this image, so no PSNR/SSIM. Synthesize a degradation (above) or pick a "
                "degraded example to see them.")
    p_in, p_out = psnr(degraded, clean), psnr(restored, clean)
    s_in, s_out = ssim(degraded, clean), ssim(restored, clean)
    return ("| against the clean original | PSNR (dB) | SSIM |\n|---|---|---|\n"
            f"| input | {p_in:.2f} | {s_in:.4f} |\n| restored | **{p_out:.2f}** | **{s_out:.4f}** |\n"
            f"| change | {p_out - p_in:+.2f} | {s_out - s_in:+.4f} |")
