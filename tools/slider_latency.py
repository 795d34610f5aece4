"""How long the sigma slider's server step takes (re-noise, D_S, the atlas reading and the two
charts' data): median over repeated calls on a bundled photo fitted to SIZE px.
`python -m tools.slider_latency [--size 256] [--calls 20] [--threads 2]`."""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import gradio as gr
import torch

from demo.app import Tabs
from demo.session import Session
from lupi_core.images import bundled_image, fit_within
from lupi_core.pipeline import load_pretrained


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipeline = load_pretrained()
    tabs = Tabs(Session(pipeline, pipeline.atlas, []))
    with gr.Blocks():
        tabs.inspector.build()
    copy = fit_within(bundled_image("coffee", None), args.size)
    curve = tabs.inspector.curve_of(copy, clean_known=True)
    times = []
    for k in range(args.calls + 2):  # two warm-up calls
        started = time.perf_counter()
        tabs.inspector.on_sigma(copy, curve, 5 + (k * 7) % 55)
        times.append(time.perf_counter() - started)
    print(f"sigma slider step at {copy.shape[1]}x{copy.shape[0]}, {args.threads} thread(s): median "
          f"{statistics.median(times[2:]) * 1e3:.1f} ms over {args.calls} calls")
    return 0


if __name__ == "__main__":
    sys.exit(main())
