"""Wall-clock seconds of the console entry points at 1 and 2 torch threads, with OpenMP's default and passive waiting,
alone on the machine and beside one CPU-bound process: the data behind the package's thread policy.

Workloads, each a fresh process as a user starts it (imports and model loading included):
- `detect`: `zeetad detect` on a 60 s (`--video-seconds`) 320x240 30 fps H.264 video sampled at 1 fps, with a ViT-B/16-sized random CLIP
  (12-layer vision tower, default text tower) and 5 labels: the vision tower dominates, plus many small ops (text
  tower, detector, Soft-NMS);
- `train_step`: `benchmarks/benchmark_training_step.py` (3 training steps at ActivityNet scale, 32 prompts per step).
Configurations (`--configurations`): `OMP_NUM_THREADS` (torch's intra-op threads) 1 or 2, `OMP_WAIT_POLICY` unset
(libgomp spins a while before it sleeps) or `PASSIVE` (sleeps at once); `auto` sets neither variable, so the command
applies its own policy. The busy neighbour is `python -c "while True: pass"` (one core).

Usage: python benchmarks/benchmark_threads.py [--workloads detect,train_step] [--repeats 1] [--video-seconds 60]
    [--configurations 1,1:PASSIVE,2,2:PASSIVE,auto]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager

from benchmark_pipeline import LABELS, VIT_B16_SHAPE, build_detector, write_video


BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
CONFIGURATIONS = ("1", "1:PASSIVE", "2", "2:PASSIVE", "auto")


def prepare_detect(folder: str, video_seconds: float) -> Callable[[str | None], list[str]]:
    """The `zeetad detect` command (the thread count comes from the environment)."""
    video = os.path.join(folder, "video.mp4")
    write_video(video, video_seconds, 320, 240)
    _, model, processor = build_detector({**VIT_B16_SHAPE, "num_hidden_layers": 12}, None, 1.0)
    model.save_pretrained(os.path.join(folder, "model"))
    processor.save_pretrained(os.path.join(folder, "model"))
    zeetad = os.path.join(os.path.dirname(sys.executable), "zeetad")
    output = os.path.join(folder, "detections.json")
    command = [zeetad, "detect", video, "--model", os.path.join(folder, "model"), "--labels", ",".join(LABELS)]
    return lambda threads: [*command, "--output", output, "--no_progress"]


def prepare_train_step(folder: str, video_seconds: float) -> Callable[[str | None], list[str]]:
    """The training-step benchmark, which sets torch's thread count itself: the same number (both cores for "auto")."""
    script = os.path.join(BENCHMARKS, "benchmark_training_step.py")
    return lambda threads: [sys.executable, script, "--repeats", "3", "--threads", threads or "2"]


@contextmanager
def neighbour(busy: bool):
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        time.sleep(0.5 if busy else 0)
        yield
    finally:
        if process is not None:
            process.kill()
            process.wait()


def run_once(command: Callable[[str | None], list[str]], threads: str | None, wait_policy: str | None) -> float:
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    if wait_policy is not None:
        env["OMP_WAIT_POLICY"] = wait_policy
    start = time.perf_counter()
    subprocess.run(command(threads), env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default="detect,train_step")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--video-seconds", type=float, default=60.0)
    parser.add_argument(
        "--configurations",
        default=",".join(CONFIGURATIONS),
        help="comma-separated OMP_NUM_THREADS[:OMP_WAIT_POLICY], or auto (neither variable set)",
    )
    args = parser.parse_args()
    preparers = {"detect": prepare_detect, "train_step": prepare_train_step}
    print(f"{os.cpu_count()} CPUs; seconds per run, median of {args.repeats}")
    print("| workload | OMP_NUM_THREADS | OMP_WAIT_POLICY | idle | one busy neighbour | busy / idle |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for workload in args.workloads.split(","):
            command = preparers[workload](folder, args.video_seconds)
            for configuration in args.configurations.split(","):
                threads, _, wait_policy = configuration.partition(":")
                threads, wait_policy = (None if threads == "auto" else threads), (wait_policy or None)
                seconds = {}
                for busy in (False, True):
                    with neighbour(busy):
                        runs = [run_once(command, threads, wait_policy) for _ in range(args.repeats)]
                    seconds[busy] = statistics.median(runs)
                print(
                    f"| {workload} | {threads or 'unset'} | {wait_policy or 'unset'} | {seconds[False]:.1f} | "
                    f"{seconds[True]:.1f} | {seconds[True] / seconds[False]:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
