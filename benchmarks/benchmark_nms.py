"""Time `zeetad_hf.segment_utils.batched_nms` (Soft-NMS) against a naive NumPy port of ActionFormer's NMS loop.

Cases: 1k / 2k / 5k candidates of one video, per-class (20 classes, THUMOS14 settings: sigma 0.5, min score 0.001, at
most 200 detections) and class-agnostic (ActivityNet settings: sigma 0.75, min score 0.001, at most 100 detections),
the latter without and with segment voting (IoU 0.9). Candidates look like a detector's before NMS: jittered clusters
around a few actions plus background proposals, scores in (0, 1), seeded. THUMOS-like rows have short actions (~2% of
the video), ActivityNet-like rows long ones (~25%), so most of their candidates overlap.

The naive baseline is written here: ActionFormer's `batched_nms` with its C++ op `nms_1d_cpu.softnms` transcribed to
NumPy (one iteration per kept segment over every remaining candidate, every class in turn, no early stop). Both give the
same detections; the "same" column checks it on every case (scores within 1 float32 ulp).

`--op_dir DIR` times the compiled C++ op itself instead of the transcription (inside the same NumPy `batched_nms`
around it), alternating calls of the package and of the op: DIR holds an importable `nms_1d_cpu` module that you build
from ActionFormer's `libs/utils/csrc/nms_cpu.cpp` (e.g. `torch.utils.cpp_extension.load(name="nms_1d_cpu",
sources=[...], build_directory=DIR)`; nothing of it ships here). The op rounds its exponential with glibc's `expf`,
which is an ulp off for some inputs, so "same" can read False where scores differ by 2 ulps.

`--threads N` sets torch's intra-op threads (default: torch's default). `--busy` runs one CPU-bound neighbour process
(a pure-Python loop) during the measurement, to time the functions on a loaded machine. `--seeds` draws the
candidates with each seed in turn (one row each).

Usage: python benchmarks/benchmark_nms.py [--threads 1] [--busy] [--repeats 20] [--seeds 0 1 2] [--op_dir DIR]
"""

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from timing import timings_after_warm_up

from zeetad_hf.segment_utils import batched_nms


PER_CLASS_SETTINGS = {"sigma": 0.5, "min_score": 0.001, "max_segments": 200}
CLASS_AGNOSTIC_SETTINGS = {"sigma": 0.75, "min_score": 0.001, "max_segments": 100}
VOTING_THRESHOLD = 0.9
NUM_CLASSES = 20
NUM_ACTIONS = 30


def make_candidates(num_candidates: int, relative_action_length: float, seed: int) -> tuple[np.ndarray, ...]:
    """Pre-NMS candidates of one 600-unit video: `(segments (N, 2), scores (N,), class_ids (N,))`.

    60% of the candidates are jittered copies of one of `NUM_ACTIONS` actions (mostly with its class and a higher
    score), the rest are background proposals of similar lengths with low scores.
    """
    rng = np.random.default_rng(seed)
    duration = 600.0
    action_lengths = duration * relative_action_length * rng.lognormal(0.0, 0.5, NUM_ACTIONS)
    action_centres = rng.uniform(0.0, duration, NUM_ACTIONS)
    action_classes = rng.integers(NUM_CLASSES, size=NUM_ACTIONS)
    near_action = rng.random(num_candidates) < 0.6
    parents = rng.integers(NUM_ACTIONS, size=num_candidates)
    parent_lengths = action_lengths[parents]
    centres = np.where(
        near_action,
        action_centres[parents] + rng.normal(0.0, 0.3, num_candidates) * parent_lengths,
        rng.uniform(0.0, duration, num_candidates),
    )
    lengths = np.where(
        near_action,
        parent_lengths * rng.lognormal(0.0, 0.3, num_candidates),
        duration * relative_action_length * rng.lognormal(0.0, 0.8, num_candidates),
    )
    centres = np.clip(centres, 0.0, duration)
    # num_candidates, 2
    segments = np.stack((centres - 0.5 * lengths, centres + 0.5 * lengths), axis=-1)
    scores = np.where(near_action, rng.beta(2.0, 3.0, num_candidates), rng.beta(1.0, 8.0, num_candidates))
    keeps_action_class = near_action & (rng.random(num_candidates) < 0.7)
    class_ids = np.where(keeps_action_class, action_classes[parents], rng.integers(NUM_CLASSES, size=num_candidates))
    return segments.astype(np.float32), scores.astype(np.float32), class_ids.astype(np.int64)


def naive_soft_nms(segments: np.ndarray, scores: np.ndarray, sigma: float, min_score: float) -> tuple[np.ndarray, ...]:
    """ActionFormer's `softnms_1d_cpu` (method 2) in NumPy: returns `(indices, scores)` in selection order."""
    starts, ends, current_scores = segments[:, 0].copy(), segments[:, 1].copy(), scores.copy()
    lengths = ends - starts + np.float32(1e-6)
    indices = np.arange(len(scores))
    working_arrays = (starts, ends, current_scores, lengths, indices)
    sigma, min_score = np.float32(sigma), np.float32(min_score)
    num_segments, position = len(scores), 0
    while position < num_segments:
        # move the first maximum to the front of the remaining candidates
        best = position + int(np.argmax(current_scores[position:num_segments]))
        for array in working_arrays:
            array[[position, best]] = array[[best, position]]
        rest = slice(position + 1, num_segments)
        intersection = np.maximum(
            np.minimum(ends[rest], ends[position]) - np.maximum(starts[rest], starts[position]), np.float32(0)
        )
        iou = intersection / (lengths[position] + lengths[rest] - intersection)
        decay = np.exp(-(iou * iou) / sigma, dtype=np.float64).astype(np.float32)
        current_scores[rest] *= decay
        # a candidate below `min_score` is overwritten by the last one, which is examined next
        examined = position + 1
        while True:
            dropped = np.flatnonzero(current_scores[examined:num_segments] < min_score)
            if dropped.size == 0:
                break
            examined += int(dropped[0])
            for array in working_arrays:
                array[examined] = array[num_segments - 1]
            num_segments -= 1
        position += 1
    return indices[:num_segments].copy(), current_scores[:num_segments].copy()


def vote(kept_segments: np.ndarray, segments: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Segment voting with score x IoU weights (dense, NumPy)."""
    # num_kept, num_candidates
    intersection = np.maximum(
        np.minimum(kept_segments[:, 1:], segments[:, 1]) - np.maximum(kept_segments[:, :1], segments[:, 0]), 0
    )
    union = (kept_segments[:, 1:] - kept_segments[:, :1]) + (segments[:, 1] - segments[:, 0]) - intersection
    iou = intersection / np.maximum(union, np.float32(1e-8))
    weights = np.where(iou >= np.float32(threshold), scores * iou, np.float32(0))
    return np.einsum("ka,ac->kc", weights, segments) / weights.sum(axis=1, keepdims=True)


def naive_batched_nms(
    segments: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    *,
    sigma: float,
    min_score: float,
    max_segments: int,
    multiclass: bool,
    voting_threshold: float,
    soft_nms: Callable[..., tuple[np.ndarray, np.ndarray]] = naive_soft_nms,
) -> tuple[np.ndarray, ...]:
    """ActionFormer's `batched_nms` around `soft_nms` ([`naive_soft_nms`] or the compiled op, see [`compiled_soft_nms`]):
    every class in turn, capped, concatenated, re-sorted."""
    groups = [np.flatnonzero(class_ids == class_id) for class_id in np.unique(class_ids)] if multiclass else [None]
    kept_indices, kept_scores = [], []
    for members in groups:
        members = np.arange(len(scores)) if members is None else members
        selected, selected_scores = soft_nms(segments[members], scores[members], sigma, min_score)
        kept_indices.append(members[selected[:max_segments]])
        kept_scores.append(selected_scores[:max_segments])
    kept_indices, kept_scores = np.concatenate(kept_indices), np.concatenate(kept_scores)
    order = torch.sort(torch.from_numpy(kept_scores), descending=True).indices[:max_segments].numpy()
    kept_indices, kept_scores = kept_indices[order], kept_scores[order]
    kept_segments = segments[kept_indices]
    if not multiclass and voting_threshold > 0:
        kept_segments = vote(kept_segments, segments, scores, voting_threshold)
    return kept_segments, kept_scores, class_ids[kept_indices]


def compiled_soft_nms(op_dir: str) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """[`naive_soft_nms`]'s contract served by ActionFormer's compiled op (`nms_1d_cpu.softnms`, method 2: Gaussian),
    imported from `op_dir`."""
    sys.path.insert(0, op_dir)
    try:
        import nms_1d_cpu
    except ImportError as error:
        raise SystemExit(f"--op_dir {op_dir}: no importable `nms_1d_cpu` module there ({error})") from None

    def soft_nms(segments: np.ndarray, scores: np.ndarray, sigma: float, min_score: float) -> tuple[np.ndarray, ...]:
        # the op writes (start, end, decayed score) of every kept segment, in selection order, into `kept_rows`
        kept_rows = torch.empty((len(scores), 3))
        # iou_threshold (0.0 here) is unused by the Gaussian method
        kept = nms_1d_cpu.softnms(
            torch.from_numpy(segments), torch.from_numpy(scores), kept_rows, 0.0, float(sigma), float(min_score), 2
        )
        return kept.numpy(), kept_rows[: len(kept), 2].numpy()

    return soft_nms


def package_batched_nms(
    segments: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, **settings
) -> tuple[np.ndarray, ...]:
    """[`zeetad_hf.segment_utils.batched_nms`] on NumPy inputs, as the benchmark times it (tensor wrapping included)."""
    kept = batched_nms(
        torch.from_numpy(segments),
        torch.from_numpy(scores),
        torch.from_numpy(class_ids),
        **settings,
    )
    return tuple(tensor.numpy() for tensor in kept)


def same_detections(first: tuple[np.ndarray, ...], second: tuple[np.ndarray, ...]) -> bool:
    """Same segments (voted ones up to float32 rounding) and classes in the same order, scores within 1 ulp."""
    (first_segments, first_scores, first_classes), (second_segments, second_scores, second_classes) = first, second
    if first_scores.shape != second_scores.shape or not np.array_equal(first_classes, second_classes):
        return False
    ulps = np.abs(first_scores.view(np.int32).astype(np.int64) - second_scores.view(np.int32).astype(np.int64))
    return bool(np.allclose(first_segments, second_segments, rtol=1e-5, atol=1e-4) and ulps.max(initial=0) <= 1)


def median_milliseconds(function: Callable[[], object], repeats: int) -> float:
    return 1000 * statistics.median(timings_after_warm_up(function, repeats))


def alternating_median_milliseconds(functions: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median ms of each function over `repeats` rounds that call every function once, each round starting with the
    next one (after one untimed call of each), so that a slow spell of the machine hits all of them alike."""
    for function in functions:
        function()
    seconds = [[] for _ in functions]
    for round_index in range(repeats):
        for offset in range(len(functions)):
            index = (round_index + offset) % len(functions)
            start = time.perf_counter()
            functions[index]()
            seconds[index].append(time.perf_counter() - start)
    return [1000 * statistics.median(timings) for timings in seconds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000], help="candidates per video")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls of the package; the median is reported")
    parser.add_argument("--naive-repeats", type=int, default=5, help="timed calls of the naive port")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--busy", action="store_true", help="run one CPU-bound neighbour process meanwhile")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="candidate seeds, one row each")
    parser.add_argument(
        "--op_dir", "--op-dir", default=None, help="folder of a compiled `nms_1d_cpu`: time it instead of the port"
    )
    args = parser.parse_args()
    compiled = compiled_soft_nms(args.op_dir) if args.op_dir is not None else None

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cases = [
        ("per-class", {"multiclass": True, "voting_threshold": 0.0, **PER_CLASS_SETTINGS}, 0.02),
        ("class-agnostic", {"multiclass": False, "voting_threshold": 0.0, **CLASS_AGNOSTIC_SETTINGS}, 0.25),
        (
            "class-agnostic + voting",
            {"multiclass": False, "voting_threshold": VOTING_THRESHOLD, **CLASS_AGNOSTIC_SETTINGS},
            0.25,
        ),
    ]
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        rows = []
        for name, settings, relative_action_length in cases:
            for num_candidates in args.sizes:
                for seed in args.seeds:
                    inputs = make_candidates(num_candidates, relative_action_length, seed)

                    def package(inputs=inputs, settings=settings):
                        return package_batched_nms(*inputs, **settings)

                    def baseline(inputs=inputs, settings=settings):
                        if compiled is None:
                            return naive_batched_nms(*inputs, **settings)
                        return naive_batched_nms(*inputs, **settings, soft_nms=compiled)

                    if compiled is None:
                        package_ms = median_milliseconds(package, args.repeats)
                        baseline_ms = median_milliseconds(baseline, args.naive_repeats)
                    else:
                        package_ms, baseline_ms = alternating_median_milliseconds([package, baseline], args.repeats)
                    same = same_detections(package(), baseline())
                    rows.append((name, num_candidates, seed, package_ms, baseline_ms, same))
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()

    load = "one CPU-bound neighbour process" if args.busy else "no neighbour process"
    timing = "alternating calls" if compiled is not None else "one function after the other"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), {load}; median ms per call, {timing}\n"
    )
    baseline_name = "C++ op" if compiled is not None else "naive port"
    print(
        f"| mode | candidates | seed | package ms | {baseline_name} ms | {baseline_name} / package | same detections |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, num_candidates, seed, package_ms, baseline_ms, same in rows:
        print(
            f"| {name} | {num_candidates:,} | {seed} | {package_ms:.2f} | {baseline_ms:.2f} | "
            f"{baseline_ms / package_ms:.2f} | {same} |"
        )


if __name__ == "__main__":
    main()
