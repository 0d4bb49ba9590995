"""The README's main command: the offline end-to-end example runs, finds the unseen class and leaves nothing behind.
examples/train.py and examples/evaluate.py: `--help` shows the optional JSON file of flags, which both read;
`--with_tracking --report_to tensorboard` writes TensorBoard event files, and is refused before any data is read when
tensorboard is missing. examples/evaluate.py: saved predictions that would score wrong without a word are refused
with one message naming the file and the problem.
"""

import importlib.util
import json
import math
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from test_training import script_arguments, subprocess_env, write_tiny_benchmark

from zeetad_hf.training import RESULTS_NAME, ZeetadTrainingArguments
from zeetad_hf.zero_shot_splits import load_zero_shot_split


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE = EXAMPLES / "tiny_zero_shot_example.py"
TRAIN_SCRIPT = EXAMPLES / "train.py"
EVALUATE_SCRIPT = EXAMPLES / "evaluate.py"
requires_tensorboard = pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None, reason='needs the tracking extra: pip install -e ".[tracking]"'
)


def run_example(monkeypatch, script: Path, *argv: str) -> int:
    """Run an example script in this process as `python <script> <argv>` does; returns its exit status."""
    monkeypatch.setattr(sys, "argv", [str(script), *argv])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(script), run_name="__main__")
    return exited.value.code


def test_tiny_zero_shot_example_detects_the_unseen_class_and_cleans_up(tmp_path):
    # a folder of its own for the run's temporary files, which must all be gone when it ends
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TMPDIR": str(temporary)}
    # torch's compile cache, which importing transformers' models creates under TMPDIR unless this says where: one
    # cache that every run reuses, not a leftover of this run
    env["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path / "torchinductor")
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=300, env=env, check=True
    )
    assert list(temporary.iterdir()) == []
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
    assert run_example(monkeypatch, EVALUATE_SCRIPT, *argv) == status


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


def test_evaluate_reads_its_flags_from_a_json_file(split_files, tmp_path, monkeypatch):
    annotations, results = split_files
    predictions = tmp_path / "predictions.json"
    predictions.write_text(json.dumps({"results": results}))
    config = tmp_path / "evaluation.json"
    flags = {"dataset": "thumos14", "annotations": str(annotations), "split": 0, "all_splits": False}
    flags.update(predictions=str(predictions), tiou_thresholds=[0.5, 0.7], output_dir=str(tmp_path / "from_config"))
    config.write_text(json.dumps(flags))
    # a flag after the file overrides its value
    assert run_example(monkeypatch, EVALUATE_SCRIPT, str(config), "--output_dir", str(tmp_path / "out")) == 0
    report = json.loads((tmp_path / "out" / "evaluation_results.json").read_text())
    assert report["tiou_thresholds"] == [0.5, 0.7] and report["num_splits"] == 1
    assert average_map(tmp_path / "out") == 1.0
    assert not (tmp_path / "from_config").exists()


# ---------------------------------------------------------------------------------------------------------------------
# examples/train.py and examples/evaluate.py: the command line


@pytest.mark.parametrize("script", [TRAIN_SCRIPT, EVALUATE_SCRIPT], ids=lambda script: script.name)
def test_help_shows_the_optional_json_file_of_flags(script, monkeypatch, capsys):
    assert run_example(monkeypatch, script, "--help") == 0
    help_text = capsys.readouterr().out
    assert help_text.startswith(f"usage: {script.name} [-h] [config.json] [--flag value ...]\n")
    # argparse wraps the description to the terminal's width
    assert "config.json (optional, first): a JSON object of flags" in " ".join(help_text.split())
    assert "--output_dir" in help_text


def test_an_unknown_tracker_is_refused_with_the_known_ones():
    known = r"\['all', .*'tensorboard'.*\]"
    with pytest.raises(ValueError, match=rf"^`--report_to` must be one of {known}, got 'tensorbord'\.$"):
        ZeetadTrainingArguments(output_dir="unused", with_tracking=True, report_to="tensorbord")


# examples/train.py where tensorboard is not installed: importing it (or its fallbacks) fails and Accelerate finds none
WITHOUT_TENSORBOARD = """
import runpy, sys
for name in ("tensorboard", "torch.utils.tensorboard", "tensorboardX"):
    sys.modules[name] = None
from zeetad_hf.training import check_tracker
check_tracker("all")  # every installed tracker, here none: nothing to refuse
try:
    check_tracker("tensorboard")
except ValueError as error:
    print(error)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_missing_tracker_package_is_one_line_before_any_data_is_read(tmp_path):
    # files that do not exist: reading any data would fail with another message
    arguments = ["--annotations", str(tmp_path / "missing.json"), "--features", str(tmp_path / "missing")]
    arguments += ["--output_dir", str(tmp_path / "run"), "--with_tracking", "--report_to", "tensorboard"]
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TENSORBOARD, str(TRAIN_SCRIPT), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(),
    )
    install = 'pip install -e ".[tracking]"'
    message = f"`--with_tracking --report_to tensorboard` needs the tensorboard package, which is not installed: `{install}`."
    assert result.stdout.splitlines() == [message]
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"train.py: error: {message}"]
    assert not (tmp_path / "run").exists()


@requires_tensorboard
def test_training_with_tensorboard_writes_the_logged_losses(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # 2 training videos, batch 1, no accumulation, 1 epoch: 2 optimizer steps, then one evaluation
    benchmark = write_tiny_benchmark(tmp_path / "benchmark", num_train=2, num_eval=1)
    arguments = script_arguments(
        benchmark, tmp_path / "from_config", gradient_accumulation_steps="1", num_train_epochs="1"
    )
    flags = dict(zip((flag.removeprefix("--") for flag in arguments[::2]), arguments[1::2]))
    config = tmp_path / "train.json"
    config.write_text(json.dumps({**flags, "with_tracking": True, "report_to": "tensorboard"}))
    run = tmp_path / "run"
    subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), str(config), "--output_dir", str(run)],
        env=subprocess_env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert not (tmp_path / "from_config").exists()
    # Accelerate's TensorBoard tracker writes to `<output_dir>/<project name>`
    assert list((run / "zeetad").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(run / "zeetad")).Reload()
    assert {"train_loss", "lr", "epoch_train_loss", "eval_unseen_average_mAP"} <= set(events.Tags()["scalars"])
    step_losses = events.Scalars("train_loss")
    assert [event.step for event in step_losses] == [1, 2]
    assert all(math.isfinite(event.value) and event.value > 0 for event in step_losses)
    # the epoch's loss is the mean of its steps', as all_results.json records it (TensorBoard stores float32)
    results = json.loads((run / RESULTS_NAME).read_text())
    (epoch_loss,) = events.Scalars("epoch_train_loss")
    assert epoch_loss.value == pytest.approx(results["train_loss"], rel=1e-6)
    assert epoch_loss.value == pytest.approx(sum(event.value for event in step_losses) / 2, rel=1e-6)
