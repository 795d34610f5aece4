"""Many clients at once: start the app (the shipped model) in its own process, send CLIENTS x
REQUESTS /restore calls of a photo from that many threads, and report how many were answered,
the median and slowest answer, and the server's peak RSS (VmHWM).
`python -m tools.load_test [--clients 8] [--requests 10] [--size 400x300] [--concurrency 1]`."""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from lupi_core.images import bundled_image

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_gb(pid: int) -> float:
    line = next(row for row in Path(f"/proc/{pid}/status").read_text().splitlines() if row.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024**2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=10, help="per client")
    parser.add_argument("--size", default="400x300")
    parser.add_argument("--concurrency", type=int, default=1, help="the app's --concurrency")
    parser.add_argument("--port", type=int, default=7871)
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    width, height = (int(v) for v in args.size.split("x"))
    photo = Path(tempfile.mkdtemp(prefix="lupi-load-")) / "photo.png"
    Image.fromarray(bundled_image("coffee", None)).resize((width, height)).save(photo)
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen([sys.executable, "-m", "demo.app", "--port", str(args.port), "--concurrency",
                               str(args.concurrency), "--no-progress"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{args.port}/"
    try:
        for _ in range(240):
            try:
                Client(url, verbose=False)
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(1)
        else:
            print("the app did not start")
            return 2

        def client_run(_: int) -> list[float | None]:
            client, times = Client(url, verbose=False), []
            for _ in range(args.requests):
                started = time.perf_counter()
                try:
                    status = client.predict(handle_file(str(photo)), api_name="/restore")[5]
                    times.append(time.perf_counter() - started if "Restored" in str(status) else None)
                except Exception:  # noqa: BLE001 - a refused or failed request counts as unanswered
                    times.append(None)
            return times

        with ThreadPoolExecutor(args.clients) as pool:
            results = [t for times in pool.map(client_run, range(args.clients)) for t in times]
        answered = [t for t in results if t is not None]
        print(f"{args.clients} clients x {args.requests} /restore of {width}x{height}, app --concurrency "
              f"{args.concurrency}: {len(answered)} of {len(results)} answered, median "
              f"{statistics.median(answered):.1f} s, slowest {max(answered):.1f} s; server peak RSS "
              f"{peak_rss_gb(server.pid):.2f} GB")
        return 0 if len(answered) == len(results) else 1
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
