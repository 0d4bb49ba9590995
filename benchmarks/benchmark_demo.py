"""How fast `zeetad demo` serves its page: each run is a fresh `zeetad demo --model MODEL` process as a user starts it.

Columns: seconds from the loaded model to the served page (what the command prints: building the page and starting the
server), and from the process start to the page's first HTTP 200 (imports, Gradio and the model load included). What
a click on "Detect" takes is the pipeline's time (benchmark_pipeline.py).

Usage: python benchmarks/benchmark_demo.py --model zeetad-quickstart/runs/bottleneck [--repeats 3]
"""

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


SERVING_LINE = re.compile(r"Serving the demo on (\S+) \(([\d.]+) s after the model was loaded\)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_start(model: str) -> tuple[float, float]:
    """(seconds from model loaded to served, seconds from process start to the page's first HTTP 200)."""
    zeetad = os.path.join(os.path.dirname(sys.executable), "zeetad")
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        server = subprocess.Popen(
            [zeetad, "demo", "--model", model, "--port", str(free_port())], stdout=log, stderr=subprocess.DEVNULL
        )
        try:
            while True:
                log.seek(0)
                match = SERVING_LINE.search(log.read())
                if match:
                    break
                if server.poll() is not None:
                    raise RuntimeError(f"zeetad demo exited with status {server.returncode}")
                time.sleep(0.05)
            with urllib.request.urlopen(match[1], timeout=60) as response:
                response.read()
            return float(match[2]), time.perf_counter() - start
        finally:
            server.terminate()
            server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a ZEETAD model folder that reads video files")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = [one_start(args.model) for _ in range(args.repeats)]
    print("| run | model loaded -> page served (s) | process start -> first HTTP 200 (s) |")
    print("|---|---|---|")
    for index, (served, first_page) in enumerate(runs, start=1):
        print(f"| {index} | {served:.2f} | {first_page:.2f} |")
    print(f"| median | {statistics.median(r[0] for r in runs):.2f} | {statistics.median(r[1] for r in runs):.2f} |")


if __name__ == "__main__":
    main()
