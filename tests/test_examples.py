"""The README's main command: the offline end-to-end example runs and finds the unseen class. examples/evaluate.py:
saved predictions that would score wrong without a word are refused with one message naming the file and the problem.
"""

import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from zeetad_hf.zero_shot_splits import load_zero_shot_split


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tiny_zero_shot_example.py"
EVALUATE_SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "evaluate.py"


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


# ---------------------------------------------------------------------------------------------------------------------
# examples/evaluate.py


@pytest.fixture
def split_files(tmp_path):
    """A THUMOS14-style annotation file with one test video per unseen class of split 0, and perfect predictions."""
    _, unseen = load_zero_shot_split("thumos14", "75_25", 0)
    database = {
        f"video_test_{index}": {
            "subset": "Test",
            "duration": 30.0,
            "annotations": [{"label": name, "segment": [5.0, 9.0]}],
        }
        for index, name in enumerate(unseen)
    }
    annotations = tmp_path / "thumos14.json"
    annotations.write_text(json.dumps({"database": database}))
    results = {
        video_id: [{"label": video["annotations"][0]["label"], "score": 0.9, "segment": [5.0, 9.0]}]
        for video_id, video in database.items()
    }
    return annotations, results


def run_evaluate(monkeypatch, annotations, predictions, output_dir, *flags: str, status: int = 0) -> None:
    """Run examples/evaluate.py as `python examples/evaluate.py ...` does and check its exit status."""
    argv = ["--dataset", "thumos14", "--annotations", str(annotations), "--split", "0"]
    argv += ["--predictions", str(predictions), "--output_dir", str(output_dir), *flags]
    monkeypatch.setattr(sys, "argv", [str(EVALUATE_SCRIPT), *argv])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(EVALUATE_SCRIPT), run_name="__main__")
    assert exited.value.code == status


def evaluate_error(monkeypatch, capsys, status, *arguments) -> str:
    """The one-line error of a refused run: exit status 2 for the command line, 1 for a bad file; no traceback."""
    run_evaluate(monkeypatch, *arguments, status=status)
    error = capsys.readouterr().err
    assert "Traceback" not in error and "usage:" not in error
    return error.strip().splitlines()[-1]


def average_map(output_dir) -> float:
    return json.loads((output_dir / "evaluation_results.json").read_text())["splits"]["0"]["average_mAP"]


def test_evaluate_refuses_a_predictions_file_in_another_format(split_files, tmp_path, monkeypatch, capsys):
    annotations, results = split_files
    predictions = tmp_path / "detections.json"
    # a flat list of detections: it used to end in a TypeError inside the script
    predictions.write_text(json.dumps([{"video": video_id, **items[0]} for video_id, items in results.items()]))
    error = evaluate_error(monkeypatch, capsys, 1, annotations, predictions, tmp_path / "out")
    assert error.startswith(f"evaluate.py: error: --predictions {predictions}: `predictions` file {predictions}")
    assert 'in the ActivityNet format {"results": {video_id: [{"label": str, "score": float' in error
    assert error.endswith("got a list")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("thresholds", [["30", "50", "70"], ["1.5", "-1"]])
def test_evaluate_refuses_tiou_thresholds_outside_zero_one(split_files, tmp_path, monkeypatch, capsys, thresholds):
    annotations, results = split_files
    predictions = tmp_path / "predictions.json"
    predictions.write_text(json.dumps({"results": results}))
    error = evaluate_error(
        monkeypatch, capsys, 2, annotations, predictions, tmp_path / "out", "--tiou_thresholds", *thresholds
    )
    shown = str([float(value) for value in thresholds])
    assert error.startswith("evaluate.py: error: --tiou_thresholds: `tiou_thresholds` must lie in (0, 1]")
    assert f"got {shown} among {shown}" in error
    assert not (tmp_path / "out").exists()


def test_evaluate_refuses_prediction_videos_missing_from_the_ground_truth(split_files, tmp_path, monkeypatch, capsys):
    annotations, results = split_files
    predictions = tmp_path / "predictions.json"
    predictions.write_text(json.dumps({"results": {f"{video_id}.mp4": items for video_id, items in results.items()}}))
    error = evaluate_error(monkeypatch, capsys, 1, annotations, predictions, tmp_path / "out")
    assert error.startswith(f"evaluate.py: error: --predictions {predictions}: 5 of 5 prediction videos are not in")
    assert "'video_test_0.mp4' is 'video_test_0' without its folder and file extension" in error
    assert 'unknown_videos="false_positive"' in error

    # the official scoring, asked for: every detection is a false positive
    run_evaluate(monkeypatch, annotations, predictions, tmp_path / "out", "--unknown_videos", "false_positive")
    assert average_map(tmp_path / "out") == 0.0


def test_evaluate_refuses_a_video_id_given_twice(split_files, tmp_path, monkeypatch, capsys):
    annotations, results = split_files
    predictions = tmp_path / "predictions.json"
    entries = [f"{json.dumps(video_id)}: {json.dumps(items)}" for video_id, items in results.items()]
    # a second, empty entry for video_test_0 after the real one: JSON readers keep only the empty one
    entries.append('"video_test_0": []')
    predictions.write_text('{"results": {' + ", ".join(entries) + "}}")
    error = evaluate_error(monkeypatch, capsys, 1, annotations, predictions, tmp_path / "out")
    assert "1 video ids occur more than once in \"results\" (e.g. ['video_test_0'])" in error
    assert 'duplicate_videos="keep_last"' in error

    run_evaluate(monkeypatch, annotations, predictions, tmp_path / "out", "--duplicate_videos", "keep_last")
    # the class of video_test_0 lost its only detection: 4 of the 5 unseen classes are found
    assert average_map(tmp_path / "out") == pytest.approx(0.8)
    # and the correct file scores perfectly
    predictions.write_text(json.dumps({"results": results}))
    run_evaluate(monkeypatch, annotations, predictions, tmp_path / "fixed")
    assert average_map(tmp_path / "fixed") == 1.0
