"""The README's main command: the offline end-to-end example runs, finds the unseen class and leaves nothing behind.
examples/train.py and examples/evaluate.py: `--help` shows the optional JSON file of flags, which both read;
`--with_tracking --report_to tensorboard` writes TensorBoard event files, and is refused before any data is read when
tensorboard is missing. examples/evaluate.py: saved predictions that would score wrong without a word are refused
with one message naming the file and the problem; every split is scored on all evaluation videos and on those holding
unseen-class ground truth, and `--all_splits` reports mean ± sample std of both (the layout examples/README.md shows).
"""

import importlib.util
import json
import math
import os
import re
import runpy
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from test_training import script_arguments, subprocess_env, write_one_video_per_class, write_tiny_benchmark

from zeetad_hf.evaluation import temporal_action_map
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
    annotations = write_one_video_per_class(tmp_path / "thumos14.json", unseen)
    results = {
        f"video_test_{index}": [{"label": name, "score": 0.9, "segment": [5.0, 9.0]}]
        for index, name in enumerate(unseen)
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


# examples/evaluate.py: two video sets, mean ± std over the splits

THUMOS_TIOU_THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7]


@pytest.fixture
def ten_split_files(tmp_path):
    """One THUMOS14 test video per class (action at 5-9 s) and, per split, detections in which only some are wrong.

    Split k: an exact detection (score 0.9) on the video of each unseen class; `k % 3` confident (0.95) detections of
    the first unseen class on videos of seen classes, which hold no unseen ground truth; for odd k, a confident
    detection of the second unseen class at 20-25 s of its own video (tIoU 0). Returns the annotation file, the
    predictions path pattern and the per-split detections.
    """
    seen, unseen = load_zero_shot_split("thumos14", "75_25", 0)
    classes = sorted(seen + unseen)
    # with a video outside the evaluation subset, which neither video set scores
    annotations = write_one_video_per_class(tmp_path / "thumos14.json", classes, validation_video=True)
    video_of = {name: f"video_test_{index}" for index, name in enumerate(classes)}
    detections = {}
    for split in range(10):
        _, split_unseen = load_zero_shot_split("thumos14", "75_25", split)
        results = {video_of[name]: [{"label": name, "score": 0.9, "segment": [5.0, 9.0]}] for name in split_unseen}
        seen_videos = [video_of[name] for name in classes if name not in split_unseen]
        for video_id in seen_videos[: split % 3]:
            results[video_id] = [{"label": split_unseen[0], "score": 0.95, "segment": [5.0, 9.0]}]
        if split % 2:
            results[video_of[split_unseen[1]]].append(
                {"label": split_unseen[1], "score": 0.95, "segment": [20.0, 25.0]}
            )
        (tmp_path / f"predictions_{split}.json").write_text(json.dumps({"results": results}))
        detections[split] = results
    return annotations, tmp_path / "predictions_{split}.json", detections


def expected_average_precisions(split: int) -> tuple[float, float]:
    """Hand-computed mAP of split k at every threshold, on all test videos and on those with unseen ground truth.

    Each unseen class has one instance. First class: `k % 3` false positives ranked above its true positive, so AP
    = 1 / (k % 3 + 1) on all videos, 1 without the seen-class videos. Second class, odd k: one false positive above
    the true positive on its own video, AP 1/2 on both sets. The three other classes: AP 1.
    """
    second = 0.5 if split % 2 else 1.0
    return (3 + 1 / (split % 3 + 1) + second) / 5, (4 + second) / 5


def test_evaluate_scores_all_videos_and_the_videos_with_unseen_ground_truth(ten_split_files, tmp_path, monkeypatch):
    annotations, predictions, detections = ten_split_files
    run_evaluate(monkeypatch, annotations, str(predictions).format(split=2), tmp_path / "out", "--split", "2")
    report = json.loads((tmp_path / "out" / "evaluation_results.json").read_text())
    all_videos, with_unseen = report["splits"]["2"], report["videos_with_unseen_ground_truth"]["splits"]["2"]
    # split 2: two false positives on seen-class videos -> AP 1/3 for the first class on all videos only
    assert all_videos["mAP"] == pytest.approx([(4 + 1 / 3) / 5] * 5)
    assert with_unseen["mAP"] == [1.0] * 5
    assert (all_videos["num_videos"], with_unseen["num_videos"]) == (20, 5)
    # the second set is what the evaluator gives on the hand-restricted ground truth and detections
    _, unseen = load_zero_shot_split("thumos14", "75_25", 2)
    database = json.loads(annotations.read_text())["database"]
    kept = {
        video_id
        for video_id, video in database.items()
        if video["subset"] == "Test" and any(annotation["label"] in unseen for annotation in video["annotations"])
    }
    restricted = temporal_action_map(
        {"database": {video_id: database[video_id] for video_id in kept}},
        {"results": {video_id: items for video_id, items in detections[2].items() if video_id in kept}},
        THUMOS_TIOU_THRESHOLDS,
    )
    assert with_unseen["mAP"] == restricted["mAP"] and with_unseen["per_class_ap"] == restricted["per_class_ap"]
    # one split: no mean or std, and the table says which video set each row is
    assert report["mean"] is report["std"] is None and report["num_splits"] == 1
    assert report["videos_with_unseen_ground_truth"]["mean"] is None
    table = (tmp_path / "out" / "evaluation_results.md").read_text().splitlines()
    assert "mean ± std" not in table[0]
    assert table[2:] == [
        "| split | video set | #videos | mAP@0.3 | mAP@0.4 | mAP@0.5 | mAP@0.6 | mAP@0.7 | average |",
        "|---|---|---|---|---|---|---|---|---|",
        "| 2 | all | 20 | " + " | ".join(["86.67"] * 6) + " |",
        "| 2 | with unseen GT | 5 | " + " | ".join(["100.00"] * 6) + " |",
    ]


def test_evaluate_all_splits_reports_mean_and_sample_std_of_both_video_sets(
    ten_split_files, tmp_path, monkeypatch, capsys
):
    annotations, predictions, _ = ten_split_files
    run_evaluate(monkeypatch, annotations, predictions, tmp_path / "out", "--all_splits")
    printed = capsys.readouterr().out.splitlines()
    report = json.loads((tmp_path / "out" / "evaluation_results.json").read_text())
    table = (tmp_path / "out" / "evaluation_results.md").read_text().splitlines()
    expected = [expected_average_precisions(split) for split in range(10)]
    assert report["num_splits"] == 10 and report["std_ddof"] == 1
    for index, (key, block) in enumerate(
        [("all", report), ("with unseen GT", report["videos_with_unseen_ground_truth"])]
    ):
        values = [pair[index] for pair in expected]
        assert [block["splits"][str(split)]["average_mAP"] for split in range(10)] == pytest.approx(values)
        mean, std = statistics.mean(values), statistics.stdev(values)
        # the same at every threshold: the detections are exact
        for statistic, value in (("mean", mean), ("std", std)):
            assert block[statistic]["mAP"] == pytest.approx([value] * 5)
            assert block[statistic]["average_mAP"] == pytest.approx(value)
        row = f"| mean ± std | {key} |  | " + " | ".join([f"{100 * mean:.2f} ± {100 * std:.2f}"] * 6) + " |"
        assert row in printed and row in table
    # the video sets differ where there are detections on videos without unseen ground truth (splits with k % 3 > 0)
    differ = [
        split
        for split in range(10)
        if report["splits"][str(split)]["mAP"]
        != report["videos_with_unseen_ground_truth"]["splits"][str(split)]["mAP"]
    ]
    assert differ == [split for split in range(10) if split % 3]
    assert report["mean"]["average_mAP"] < report["videos_with_unseen_ground_truth"]["mean"]["average_mAP"]
    # caption, blank line, header, rule, 2 rows per split, 2 rows of mean ± std; printed as written
    assert "sample standard deviation (ddof 1)" in table[0] and len(table) == 4 + 2 * 10 + 2
    assert printed[-len(table) :] == table


def test_the_readme_sample_of_the_table_is_what_evaluate_prints(ten_split_files, tmp_path, monkeypatch, capsys):
    # examples/README.md shows the table of the test above (without its caption), the rows of splits 2-8 left out
    annotations, predictions, _ = ten_split_files
    run_evaluate(monkeypatch, annotations, predictions, tmp_path / "out", "--all_splits")
    printed = capsys.readouterr().out.splitlines()
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    sample = re.search(r"tests/test_examples\.py[^`]*\n\n```\n(.*?)```", readme, flags=re.DOTALL)[1].splitlines()
    elided = [index for index, line in enumerate(sample) if line.startswith("| … |")]
    assert len(elided) == 1
    before, after = sample[: elided[0]], sample[elided[0] + 1 :]
    header = printed.index(before[0])
    assert printed[header : header + len(before)] == before and printed[-len(after) :] == after


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
