"""Static parts of the page: the clickable atlas map component, the Learn tab's text,
the CSS. The map is a gr.HTML whose template never changes (so a new value does not
wipe the plot): its value is a Plotly figure as JSON, drawn with the plotly.min.js
that ships inside the plotly Python package (served by this app, no CDN), and a
click on a point calls trigger('select', {index, value}), which reaches the Python
`.select` handler with the point's atlas index."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

PLOTLY_JS = Path(__import__("plotly").__file__).resolve().parent / "package_data" / "plotly.min.js"

MAP_TEMPLATE = ('<div class="lupi-map-wrap"><div class="lupi-map" style="width:100%;height:520px"></div>'
                '<div class="lupi-tip"></div></div>')

MAP_CSS = """
.lupi-map-wrap { position: relative; }
.lupi-tip { position: absolute; display: none; pointer-events: none; z-index: 20; background: white;
            border: 1px solid #999; border-radius: 4px; padding: 3px; font-size: 11px; max-width: 150px; }
.lupi-tip img { display: block; width: 96px; height: 96px; image-rendering: pixelated; }
"""

# Runs once when the component mounts; `watch` redraws on each new value without
# touching the template. Plotly keeps its event handlers across Plotly.react calls.
MAP_JS = """
const box = element.querySelector('.lupi-map');
const tip = element.querySelector('.lupi-tip');
const thumbs = props.thumbs || [];
function bind() {
  if (box.dataset.bound) return;
  box.dataset.bound = '1';
  box.on('plotly_click', (ev) => {
    const p = ev && ev.points && ev.points[0];
    if (!p || p.customdata === undefined || p.customdata < 0) return;
    trigger('select', {index: p.customdata, value: p.text});
  });
  box.on('plotly_hover', (ev) => {
    const p = ev && ev.points && ev.points[0];
    if (!p) return;
    const uri = p.customdata >= 0 ? thumbs[p.customdata] : '';
    tip.innerHTML = (uri ? '<img src="' + uri + '">' : '') + '<div>' + (p.text || '') + '</div>';
    const rect = element.getBoundingClientRect();
    const e = ev.event || {};
    let x = (e.clientX || 0) - rect.left + 14, y = (e.clientY || 0) - rect.top + 14;
    if (x > rect.width - 160) x -= 190;
    tip.style.left = x + 'px'; tip.style.top = y + 'px'; tip.style.display = 'block';
  });
  box.on('plotly_unhover', () => { tip.style.display = 'none'; });
}
function draw() {
  if (!window.Plotly) { setTimeout(draw, 50); return; }
  if (!props.value) return;
  const fig = JSON.parse(props.value);
  window.Plotly.react(box, fig.data, fig.layout, {displaylogo: false, responsive: true,
                                                  modeBarButtonsToRemove: ['select2d', 'lasso2d']});
  bind();
  element.dataset.drawn = String(Number(element.dataset.drawn || 0) + 1);
}
draw();
watch('value', draw);
"""


def map_component(value: str, thumbs: list[str]) -> gr.HTML:
    """The clickable atlas map. `thumbs` (data: URIs per atlas sample) are sent once, as a prop."""
    return gr.HTML(value=value, html_template=MAP_TEMPLATE, css_template=MAP_CSS, js_on_load=MAP_JS,
                   head=f'<script src="/gradio_api/file={PLOTLY_JS}"></script>', thumbs=thumbs,
                   elem_id="atlas-map", padding=False, apply_default_css=False)


LEARN = """
## All-in-one restoration, in four ideas

**1. One model, many degradations.** Photographs get noisy (a dark room, a small sensor), rainy, hazy,
blurred (a shaking hand) or under-exposed, often several at once. An *all-in-one* restorer is a single
network that handles all of them without being told which one it faces. Try it: in **Restore**, pick a
degraded example from the gallery (or synthesize one with *Kind* and *Severity*) and press **Restore**.
The before/after slider and the amplified **difference** image show what the model changed.

**2. A degradation prior steers the restorer.** The restorer (a Restormer U-Net) is modulated by a
512-number vector, the *degradation prior* d: small MLPs turn d into a per-channel scale and shift
applied inside the decoder (the paper's Degradation-aware Blocks). A predictor network D_S looks at the
degraded image and outputs d. **Prior inspector** shows d as 512 bars; **Atlas map** shows where d falls
among the atlas of synthesized degradations, and "What the model thinks it is looking at" names the closest
kind and strength.

**3. Privileged information: a teacher that sees the answer.** How should d be learned? LUPI (*Learning
Using Privileged Information*) trains in two stages:

- *Stage 1* trains a **teacher** D_T that sees the degraded image **and the clean original** (the
  privileged information, available only in training) together with a restorer R_T. Because it sees
  both, D_T can encode exactly what was done to the image, in whatever form helps restoration most.
- *Stage 2* freezes D_T and trains the **student** D_S, which sees the degraded image alone, to produce
  the same prior (a KL divergence between softmax(d_T / 0.15) and softmax(d_S / 0.15)), together with a
  new restorer R_S. Only D_S and R_S are deployed.

**Privileged vs predicted** shows both priors for a synthesized image (its clean original is known):
the alignment gap the student was trained to close, and how much better the restoration would be with
the teacher's prior (the head-room the student leaves).

**4. The prior space is structured (the paper's Figure 5).** In **Prior inspector**, drag the **sigma**
slider: the image is re-noised and d is recomputed live (only D_S runs, a few milliseconds). The paper
finds a stable set of dimensions that light up for noise at every sigma, their magnitudes growing with
the strength (the line chart, Figure 5b); step 2 of the tour measures how far the loaded model's prior
moves. The heatmap below it (Figure 5a) compares the kinds' mean priors: dimensions
that several kinds share (additive corruptions such as noise and rain) and ones only one kind uses.
In **Atlas map**, similar degradations cluster; colour by *level* to see severity run along a cluster,
and click any point to load that sample into the inspector.

**What the prior controls.** In **Steer the prior**, move the prior along a named direction ("more
haze"), or restore the same image under every kind's mean prior: whatever changes in the output, though
the image does not, is what the prior controls. Step 4 of the tour measures how much that is on the
loaded model, and says so when it is nothing.

### Reading the views
- *Difference image*: |output - input| multiplied by the gain shown (a power of two), so small changes
  are visible. Black: unchanged.
- *PSNR / SSIM*: only when the clean original is known (synthesized inputs, degraded examples, atlas
  samples). Computed on the unquantised output, the papers' convention.
- *Out-of-distribution warning*: the prior is farther from every atlas sample than 99% of atlas samples
  are from their own nearest neighbour; the model has not seen anything like the image.
- All images are shown and downloaded as lossless PNG. Nothing leaves this machine.
"""

CSS = """
#lupi-title h1 { margin-bottom: 0; }
"""
