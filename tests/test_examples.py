"""The README's main command: the offline end-to-end example runs and finds the unseen class."""

import os
import re
import subprocess
import sys
from pathlib import Path


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tiny_zero_shot_example.py"


def test_tiny_zero_shot_example_detects_the_unseen_class():
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        check=True,
    )
    losses = [float(value) for value in re.findall(r"loss (\d+\.\d+)", result.stdout)]
    assert losses[-1] < 0.2 * losses[0]
    ground_truth = re.search(r"ground truth: diving (\d+\.\d+)-(\d+\.\d+) s", result.stdout)
    detections = re.findall(r"^\s+(\d\.\d+)\s+(\w+)\s+(\d+\.\d+)\s+(\d+\.\d+)$", result.stdout, flags=re.MULTILINE)
    assert ground_truth and detections
    score, label, start, end = detections[0]
    assert label == "diving"
    gt_start, gt_end = float(ground_truth[1]), float(ground_truth[2])
    intersection = max(0.0, min(float(end), gt_end) - max(float(start), gt_start))
    union = (float(end) - float(start)) + (gt_end - gt_start) - intersection
    assert intersection / union >= 0.5
