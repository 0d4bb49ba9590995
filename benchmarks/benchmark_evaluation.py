"""Time `zeetad_hf.evaluation.temporal_action_map` at ActivityNet-validation scale.

Ground truth: the real ActivityNet-1.3 validation annotations when the development workspace's `../shared/data` is
present (4,728 videos, 7,293 instances, 200 classes), otherwise a synthetic ground truth of the same size. Predictions:
100 per video, half of them jittered copies of the video's ground truth (so that matching does real work), half random
segments with random labels. Timed twice: on parsed dicts, and from the JSON files (reading included), as
`examples/evaluate.py` runs it. Run with `python benchmarks/benchmark_evaluation.py`.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from zeetad_hf.data import load_benchmark_ground_truth
from zeetad_hf.evaluation import temporal_action_map


SHARED_ANNOTATIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "annotations"
NUM_VIDEOS, NUM_GROUND_TRUTH, NUM_CLASSES = 4728, 7293, 200


def real_ground_truth() -> dict:
    """ActivityNet validation ground truth from the shared BMN files, as the official evaluator reads it."""
    return load_benchmark_ground_truth(
        "activitynet", SHARED_ANNOTATIONS / "anet_anno_action.json", SHARED_ANNOTATIONS / "anet_video_info.csv"
    )


def synthetic_ground_truth(rng: np.random.Generator) -> dict:
    labels = [f"class_{index:03d}" for index in range(NUM_CLASSES)]
    # every video gets one instance, the remaining instances go to random videos
    counts = np.ones(NUM_VIDEOS, dtype=int) + np.bincount(
        rng.integers(0, NUM_VIDEOS, NUM_GROUND_TRUTH - NUM_VIDEOS), minlength=NUM_VIDEOS
    )
    database = {}
    for video_idx, count in enumerate(counts):
        duration = float(rng.uniform(30.0, 240.0))
        label = labels[rng.integers(NUM_CLASSES)]  # ActivityNet videos mostly hold one class
        starts = rng.uniform(0.0, 0.8 * duration, count)
        ends = np.minimum(starts + rng.uniform(2.0, 0.5 * duration, count), duration)
        database[f"v_{video_idx:06d}"] = {
            "subset": "validation",
            "duration": duration,
            "annotations": [{"label": label, "segment": [float(s), float(e)]} for s, e in zip(starts, ends)],
        }
    return {"database": database}


def random_predictions(ground_truth: dict, rng: np.random.Generator, per_video: int) -> dict:
    labels = sorted(
        {annotation["label"] for video in ground_truth["database"].values() for annotation in video["annotations"]}
    )
    results = {}
    for video_id, video in ground_truth["database"].items():
        duration = float(video["duration"])
        annotations = video["annotations"]
        detections = []
        for _ in range(per_video):
            if annotations and rng.random() < 0.5:
                annotation = annotations[rng.integers(len(annotations))]
                start, end = annotation["segment"]
                jitter = 0.2 * max(end - start, 1.0)
                start, end = sorted((start + rng.normal(0.0, jitter), end + rng.normal(0.0, jitter)))
                label = annotation["label"]
            else:
                start = rng.uniform(0.0, duration)
                end = start + rng.uniform(0.5, duration / 3)
                label = labels[rng.integers(len(labels))]
            detections.append({"label": label, "score": float(rng.random()), "segment": [float(start), float(end)]})
        results[video_id] = detections
    return {"results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median is reported")
    parser.add_argument("--predictions-per-video", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic ground truth even if data exists")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    use_real = not args.synthetic and (SHARED_ANNOTATIONS / "anet_anno_action.json").is_file()
    ground_truth = real_ground_truth() if use_real else synthetic_ground_truth(rng)
    predictions = random_predictions(ground_truth, rng, args.predictions_per_video)
    tiou_thresholds = np.linspace(0.5, 0.95, 10)

    with tempfile.TemporaryDirectory() as directory:
        # the same inputs as JSON files, as `examples/evaluate.py` reads them
        files = (os.path.join(directory, "ground_truth.json"), os.path.join(directory, "predictions.json"))
        for path, data in zip(files, (ground_truth, predictions)):
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
        rows = {}
        for source, inputs in (("parsed dicts", (ground_truth, predictions)), ("JSON files", files)):
            timings = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                result = temporal_action_map(*inputs, tiou_thresholds, subset="validation")
                timings.append(time.perf_counter() - start)
            rows[source] = (statistics.median(timings), result["average_mAP"])

    source = "real ActivityNet-1.3 validation GT" if use_real else "synthetic GT of ActivityNet-validation size"
    num_ground_truth = sum(len(video["annotations"]) for video in ground_truth["database"].values())
    num_predictions = sum(len(detections) for detections in predictions["results"].values())
    print(f"ground truth: {source}; tIoU thresholds 0.5:0.05:0.95; median of {args.repeats} runs")
    print(f"{len(ground_truth['database']):,} videos, {num_ground_truth:,} GT, {num_predictions:,} predictions\n")
    print("| inputs | seconds | average mAP |")
    print("|---|---|---|")
    for name, (seconds, average_map) in rows.items():
        print(f"| {name} | {seconds:.2f} | {average_map:.4f} |")


if __name__ == "__main__":
    main()
