"""The bad-input battery of issue 14, as one table: what a user can get wrong, and what each mistake gives.

Every case builds real inputs (videos written with PyAV, tiny saved models, annotation, feature and predictions
files), runs the real code and pins either the exception (type and a message fragment, which names the input) or, for
the console entry points (`zeetad detect`, `zeetad quickstart`, `examples/*.py`), the exit status and the one line on
stderr: `<program>: error: <message>`, status 2 for the command line itself, 1 for everything else (missing or bad
files, corrupt weights, unavailable devices); a traceback only with `--debug`. In-process cases run under a time limit;
the few subprocess cases run the real console scripts end to end with a timeout.
"""

import contextlib
import io
import json
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import save_file
from test_training import (
    SEEN,
    UNSEEN,
    script_arguments,
    subprocess_env,
    synthetic_datasets,
    tiny_model_and_processor,
    write_tiny_benchmark,
)
from test_video_utils import make_bad_videos
from tiny_models import save_tiny_video_detector
from transformers import pipeline

from zeetad_hf.cli import main as zeetad_main
from zeetad_hf.cli_errors import run_command
from zeetad_hf.data import filter_to_classes, load_activitynet_style, load_bmn_style, load_features
from zeetad_hf.evaluation import load_predictions, score_predictions
from zeetad_hf.file_utils import check_model_folder, check_writable_directory
from zeetad_hf.processing_zeetad import validate_labels
from zeetad_hf.training import ZeetadTrainingArguments, train
from zeetad_hf.video_utils import VideoFrameSampler, probe_video


REPOSITORY = Path(__file__).resolve().parents[1]
EXAMPLES = REPOSITORY / "examples"
TASK = "zero-shot-temporal-action-detection"
# Seconds an in-process case may take (the slowest build an Accelerator and a tiny model), and a subprocess case.
CASE_TIME_LIMIT = 60
SUBPROCESS_TIMEOUT = 180
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
FEATURE_DIM = 24


# ---------------------------------------------------------------------------------------------------------------------
# What a case expects
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Raises:
    """The call raises `exception` with a message matching the regular expression `message`."""

    exception: type[BaseException]
    message: str


@dataclass(frozen=True)
class Exits:
    """The entry point exits with `status` and its last stderr line is `<program>: error: ...` matching `line`; the
    traceback is printed only when `traceback` (`--debug`)."""

    status: int
    line: str
    traceback: bool = False


@dataclass(frozen=True)
class Case:
    area: str
    name: str
    run: Callable[["World"], Any]
    expect: Raises | Exits
    skip: str | None = None

    @property
    def id(self) -> str:
        return f"{self.area}/{self.name}"


class CaseTimeout(BaseException):
    """Raised by the time limit; a `BaseException`, so that no error handler under test can swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float):
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise CaseTimeout(f"the case ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------------------------------------------------------
# The inputs, built once for the module
# ---------------------------------------------------------------------------------------------------------------------


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def broken_copies(model: Path, root: Path) -> dict[str, Path]:
    """Copies of a good model folder, each with one fault."""
    copies = {}
    for fault in ("no_processor", "truncated_weights", "bad_config", "no_weights", "no_config", "wrong_config_type"):
        copies[fault] = Path(shutil.copytree(model, root / fault))
    for name in ("processor_config.json", "tokenizer_config.json", "tokenizer.json"):
        (copies["no_processor"] / name).unlink()
    truncate(copies["truncated_weights"] / "model.safetensors")
    (copies["bad_config"] / "config.json").write_text('{"model_type": "zeetad", ')
    (copies["no_weights"] / "model.safetensors").unlink()
    (copies["no_config"] / "config.json").unlink()
    config = json.loads((model / "config.json").read_text())
    (copies["wrong_config_type"] / "config.json").write_text(json.dumps({**config, "num_queries": "many"}))
    return copies


def database(**videos) -> dict:
    """An ActivityNet-format annotation file: two good training videos, updated with `videos`."""
    entries = {
        video_id: {
            "subset": "training",
            "duration": 10.0,
            "fps": 10.0,
            "annotations": [{"label": "jumping", "segment": [1.0, 3.0]}],
        }
        for video_id in ("v1", "v2")
    }
    entries.update(videos)
    return {"database": entries}


class World:
    """Every input of the battery, written once under `root`, and the ways to run the entry points."""

    def __init__(self, root: Path, tokenizer):
        self.root = root
        self.tokenizer = tokenizer
        self.videos = make_bad_videos(self._folder("videos"))
        self.videos["good"] = self.root / "videos" / "good.mp4"
        (self.root / "videos" / "empty.mp4").write_bytes(b"")
        self.videos["empty"] = self.root / "videos" / "empty.mp4"
        self.model = save_tiny_video_detector(self._folder("model"), tokenizer)
        self.broken_models = broken_copies(self.model, self._folder("broken-models"))
        self.benchmark = write_tiny_benchmark(self.root / "benchmark", num_train=4, num_eval=2)
        clip = Path(shutil.copytree(self.benchmark["clip_model"], self.root / "truncated-clip"))
        truncate(clip / "model.safetensors")
        self.truncated_clip = clip
        self.a_file = self.root / "a_file.txt"
        self.a_file.write_text("not a folder\n")
        self._count = 0

    def _folder(self, name: str) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def fresh(self) -> Path:
        """A new, empty folder for one case."""
        self._count += 1
        return self._folder(f"case-{self._count}")

    # files of the data-loading cases
    def annotations(self, content: Any, name: str = "annotations.json") -> Path:
        path = self.fresh() / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return path

    def features(
        self, arrays: dict[str, Any] | None = None, extension: str = ".npy", width: int = FEATURE_DIM
    ) -> Path:
        """A feature folder with good `(20, width)` features for v1 and v2, `arrays` written over them."""
        folder = self.fresh()
        generator = np.random.default_rng(0)
        values = {video_id: generator.standard_normal((20, width)).astype(np.float32) for video_id in ("v1", "v2")}
        values.update(arrays or {})
        for video_id, array in values.items():
            path = folder / f"{video_id}{extension}"
            if extension == ".npy":
                np.save(path, array, allow_pickle=True)
            elif extension == ".safetensors":
                save_file(array if isinstance(array, dict) else {"features": torch.as_tensor(array)}, path)
            else:
                torch.save(torch.from_numpy(array) if isinstance(array, np.ndarray) else array, path)
        return folder

    def load(self, annotations: Any = None, features: Path | None = None, **kwargs):
        path = annotations if isinstance(annotations, Path) else self.annotations(annotations or database())
        return load_activitynet_style(path, features or self.features(), **kwargs)

    @cached_property
    def detector(self):
        return pipeline(TASK, model=str(self.model))

    def detect(self, video: str = "good", **kwargs):
        return self.detector(str(self.videos[video]), **{"candidate_labels": ["jumping", "running"], **kwargs})

    # training
    def train(self, model_overrides: dict | None = None, train_dataset=None, unseen=UNSEEN, **arguments):
        """[`train`] of a tiny model on tiny synthetic videos (`train_dataset` replaces the training videos)."""
        datasets = synthetic_datasets(self.fresh())
        model, processor = tiny_model_and_processor(self.tokenizer, **(model_overrides or {}))
        args = ZeetadTrainingArguments(
            **{"output_dir": str(self.fresh() / "run"), "use_cpu": True, "num_train_epochs": 1, **arguments}
        )
        try:
            return train(model, processor, train_dataset or datasets[0], datasets[1], SEEN, unseen, args)
        finally:
            AcceleratorState._reset_state(reset_partial_state=True)
            GradientState._reset_state()

    # the console entry points, in process: (exit status, stderr)
    def zeetad(self, *argv) -> tuple[int, str]:
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            status = zeetad_main([str(item) for item in argv])
        return status, stderr.getvalue()

    def detect_command(self, *argv, video: str = "good", model: Path | None = None) -> tuple[int, str]:
        output = self.fresh() / "detections.json"
        return self.zeetad(
            "detect", self.videos[video], "--model", model or self.model, "--labels", "jumping,running",
            "--output", output, "--no-progress", *argv,
        )  # fmt: skip

    def script(self, name: str, *argv) -> tuple[int, str]:
        """`python examples/<name> argv...` in this process (as `runpy` runs it): its exit status and stderr."""
        stderr, saved_argv = io.StringIO(), sys.argv
        sys.argv = [str(EXAMPLES / name), *map(str, argv)]
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                runpy.run_path(str(EXAMPLES / name), run_name="__main__")
        except SystemExit as exited:
            return exited.code, stderr.getvalue()
        finally:
            sys.argv = saved_argv
        raise AssertionError(f"examples/{name} returned without exiting")

    def train_script(self, *argv, **overrides) -> tuple[int, str]:
        output_dir = overrides.pop("output_dir", self.fresh() / "run")
        return self.script("train.py", *script_arguments(self.benchmark, output_dir, **overrides), *argv)

    def evaluate_script(self, *argv) -> tuple[int, str]:
        common = ["--dataset", "thumos14", "--annotations", self.benchmark["annotations"], "--split", "0"]
        return self.script("evaluate.py", *common, "--output_dir", self.fresh() / "out", *argv)

    def predictions_file(self, content: Any) -> Path:
        path = self.fresh() / "predictions.json"
        path.write_text(json.dumps(content))
        return path

    def subprocess(self, *command) -> tuple[int, str]:
        completed = subprocess.run(
            [sys.executable, *map(str, command)],
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            env=subprocess_env(),
            cwd=self.fresh(),
        )
        return completed.returncode, completed.stderr


@pytest.fixture(scope="module")
def world(tmp_path_factory, tokenizer) -> World:
    return World(tmp_path_factory.mktemp("bad-inputs"), tokenizer)


# ---------------------------------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------------------------------


def decode(world: World, video: str, sampling_fps: Any = 1.0) -> None:
    # some problems only show while decoding
    list(VideoFrameSampler(world.videos[video], sampling_fps).iter_chunks())


# one test video with one action of class "a", the ground truth of the prediction cases
GROUND_TRUTH = {
    "database": {"v1": {"subset": "Test", "duration": 30.0, "annotations": [{"label": "a", "segment": [1, 5]}]}}
}


def score(world: World, predictions: Any, thresholds=(0.5,)) -> Any:
    return score_predictions(GROUND_TRUTH, predictions, ["a"], list(thresholds))


def one_prediction(**fields) -> dict:
    return {"v1": [{"label": "a", "score": 0.9, "segment": [1.0, 5.0], **fields}]}


def bmn_files(world: World, csv_text: str) -> tuple[Path, Path]:
    annotations = world.annotations({"v1": {"duration_second": 10.0, "annotations": []}})
    csv_path = annotations.with_name("video_info.csv")
    csv_path.write_text(csv_text)
    return annotations, csv_path


def read_only_folder(world: World) -> Path:
    folder = world.fresh()
    folder.chmod(0o500)
    return folder


def evaluation_predictions(world: World, transform: Callable[[dict], Any]) -> Path:
    """A predictions file for the tiny benchmark's test videos, passed through `transform`."""
    database = json.loads(Path(world.benchmark["annotations"]).read_text())["database"]
    results = {
        video_id: [{"label": item["label"], "score": 0.9, "segment": item["segment"]} for item in video["annotations"]]
        for video_id, video in database.items()
        if video["subset"] == "Test"
    }
    return world.predictions_file(transform(results))


def changed_feature_file(world: World):
    """A dataset whose first training video's file was rewritten with another length after the dataset was built."""
    train_dataset, _ = synthetic_datasets(world.fresh())
    np.save(train_dataset[0]["feature_path"], np.zeros((7, FEATURE_DIM), np.float32))
    return train_dataset


def binary_annotations(world: World) -> Path:
    path = world.fresh() / "annotations.json"
    path.write_bytes(b"\xff\xfe{\x00}\x00")
    return path


def truncated_feature(world: World) -> Path:
    folder = world.features()
    truncate(folder / "v1.npy")
    return folder


def nan_benchmark_features(world: World) -> str:
    folder = Path(shutil.copytree(world.benchmark["features"], world.fresh() / "i3d"))
    first = sorted(folder.iterdir())[0]
    values = np.load(first)
    values[3, 5] = np.nan
    np.save(first, values)
    return str(folder)


def repeated_predictions(world: World) -> Path:
    path = world.fresh() / "predictions.json"
    path.write_text('{"results": {"v1": [], "v1": []}}')
    return path


# fmt: off
# One case a line: area, name, what is run, what it gives.
VIDEO_CASES = [
    Case("video", "missing_file", lambda w: probe_video(w.videos["missing"]), Raises(FileNotFoundError, r"Video file not found: '.*missing\.mp4'")),
    Case("video", "text_file", lambda w: probe_video(w.videos["not_a_video"]), Raises(ValueError, r"not_a_video\.mp4.*could not be opened as a video")),
    Case("video", "empty_file", lambda w: probe_video(w.videos["empty"]), Raises(ValueError, r"empty\.mp4.*could not be opened as a video")),
    Case("video", "truncated_index_at_end", lambda w: probe_video(w.videos["truncated"]), Raises(ValueError, r"truncated\.mp4.*could not be opened as a video")),
    Case("video", "truncated_faststart", lambda w: decode(w, "truncated_faststart"), Raises(ValueError, r"truncated_faststart\.mp4.*corrupt or truncated")),
    Case("video", "audio_only", lambda w: probe_video(w.videos["audio_only"]), Raises(ValueError, r"audio_only\.m4a.*no video stream")),
    Case("video", "zero_frames", lambda w: probe_video(w.videos["zero_frames"]), Raises(ValueError, r"zero_frames\.mp4.*no video stream")),
    Case("video", "shorter_than_a_sampling_step", lambda w: decode(w, "tenth_of_a_second"), Raises(ValueError, r"tenth_of_a_second\.mp4.*shorter than one sampling step")),
    Case("video", "a_folder", lambda w: probe_video(w.root / "videos"), Raises(ValueError, r"videos'? is a directory, not a video file")),
    Case("video", "sampling_fps_inf", lambda w: decode(w, "good", float("inf")), Raises(ValueError, r"`sampling_fps` must be a finite positive number, got inf")),
    Case("video", "sampling_fps_string", lambda w: decode(w, "good", "2"), Raises(ValueError, r"`sampling_fps` must be a finite positive number, got '2'")),
    Case("video", "pipeline_missing_file", lambda w: w.detect("missing"), Raises(FileNotFoundError, r"missing\.mp4")),
    Case("video", "pipeline_truncated", lambda w: w.detect("truncated_faststart"), Raises(ValueError, r"truncated_faststart\.mp4.*corrupt or truncated")),
    Case("video", "cli_missing_file", lambda w: w.detect_command(video="missing"), Exits(1, r"^zeetad detect: error: Video file not found: '.*missing\.mp4'")),
    Case("video", "cli_missing_file_debug", lambda w: w.detect_command("--debug", video="missing"), Exits(1, r"Video file not found", traceback=True)),
    Case("video", "cli_text_file", lambda w: w.detect_command(video="not_a_video"), Exits(1, r"not_a_video\.mp4.*could not be opened as a video")),
    Case("video", "cli_truncated_while_decoding", lambda w: w.detect_command(video="truncated_faststart"), Exits(1, r"truncated_faststart\.mp4.*corrupt or truncated")),
    Case("video", "cli_given_twice", lambda w: w.zeetad("detect", w.videos["good"], w.videos["good"], "--model", w.model, "--labels", "a"), Exits(2, r"video\(s\) given more than once: .*good\.mp4")),
]

LABEL_CASES = [
    Case("labels", "blank", lambda w: validate_labels(["jumping", " "]), Raises(ValueError, r"Candidate label 1 is blank")),
    Case("labels", "duplicate_ignoring_case", lambda w: validate_labels(["High jump", "high  JUMP"]), Raises(ValueError, r"Duplicate")),
    Case("labels", "empty_list", lambda w: validate_labels([]), Raises(ValueError, r"non-empty list of strings, got \[\]")),
    Case("labels", "not_strings", lambda w: validate_labels([1, 2]), Raises(ValueError, r"Candidate label 0 is a int")),
    Case("labels", "pipeline_without_labels", lambda w: w.detector(str(w.videos["good"])), Raises(ValueError, r"`candidate_labels` are required")),
    Case("labels", "pipeline_blank_label", lambda w: w.detect(candidate_labels=["jumping", ""]), Raises(ValueError, r"Candidate label 1 is blank")),
    Case("labels", "annotation_label_in_no_class_list", lambda w: filter_to_classes(w.load()["training"], ["running"], drop_empty=True, excluded_classes=["diving"]), Raises(ValueError, r"'jumping' in 2 videos.*misspelling")),
    Case("labels", "cli_blank", lambda w: w.detect_command("--labels", "jumping,,running"), Exits(2, r"--labels 'jumping,,running': Candidate label 1 is blank")),
    Case("labels", "cli_only_commas", lambda w: w.detect_command("--labels", " , "), Exits(2, r"--labels ' , ':.*blank")),
    Case("labels", "cli_duplicate", lambda w: w.detect_command("--labels", "jumping, Jumping"), Exits(2, r"Duplicate")),
]

PARAMETER_CASES = [
    Case("parameters", "pipeline_threshold", lambda w: w.detect(threshold=1.5), Raises(ValueError, r"`threshold` must be a number in \[0, 1\], got 1\.5")),
    Case("parameters", "pipeline_top_k", lambda w: w.detect(top_k=0), Raises(ValueError, r"`top_k` must be an integer >= 1, got 0")),
    Case("parameters", "pipeline_window_overlap_string", lambda w: w.detect(window_overlap="0.5"), Raises(ValueError, r"`window_overlap` must be a number in \[0, 1\), got '0\.5'")),
    Case("parameters", "pipeline_frame_batch_size", lambda w: w.detect(frame_batch_size=0), Raises(ValueError, r"`frame_batch_size` must be an integer >= 1")),
    Case("parameters", "pipeline_max_units", lambda w: w.detect(max_units=0), Raises(ValueError, r"`max_units` must be a positive integer")),
    Case("parameters", "pipeline_sampling_fps_inf", lambda w: w.detect(sampling_fps=float("inf")), Raises(ValueError, r"`sampling_fps` must be a finite positive number")),
    Case("parameters", "training_batch_size", lambda w: ZeetadTrainingArguments(output_dir="x", per_device_train_batch_size=0), Raises(ValueError, r"`per_device_train_batch_size` must be at least 1, got 0")),
    Case("parameters", "training_mixed_precision", lambda w: ZeetadTrainingArguments(output_dir="x", mixed_precision="fp17"), Raises(ValueError, r"`mixed_precision` must be one of .*got 'fp17'")),
    Case("parameters", "training_tiou_percent", lambda w: ZeetadTrainingArguments(output_dir="x", tiou_thresholds=[30, 50]), Raises(ValueError, r"`tiou_thresholds` must lie in \(0, 1\]")),
    Case("parameters", "training_checkpointing_steps", lambda w: ZeetadTrainingArguments(output_dir="x", checkpointing_steps="often"), Raises(ValueError, r"positive integer or 'epoch', got 'often'")),
    Case("parameters", "training_window_overlap", lambda w: ZeetadTrainingArguments(output_dir="x", eval_window_overlap=1.0), Raises(ValueError, r"`eval_window_overlap`: `window_overlap` must be a number in \[0, 1\)")),
    Case("parameters", "cli_top_k_not_an_integer", lambda w: w.detect_command("--top-k", "x"), Exits(2, r"^zeetad detect: error: argument --top_k/--top-k: must be an integer, got 'x'")),
    Case("parameters", "cli_threshold_above_one", lambda w: w.detect_command("--threshold", "1.5"), Exits(2, r"argument --threshold: must be in \[0, 1\], got 1\.5")),
    Case("parameters", "cli_sampling_fps_inf", lambda w: w.detect_command("--sampling-fps", "inf"), Exits(2, r"argument --sampling_fps/--sampling-fps: must be finite, got inf")),
    Case("parameters", "cli_unknown_flag", lambda w: w.detect_command("--frobnicate"), Exits(2, r"unrecognized arguments: --frobnicate")),
    Case("parameters", "cli_missing_labels", lambda w: w.zeetad("detect", w.videos["good"], "--model", w.model), Exits(2, r"the following arguments are required: --labels")),
    Case("parameters", "cli_no_command", lambda w: w.zeetad(), Exits(2, r"^zeetad: error: the following arguments are required: COMMAND")),
    Case("parameters", "cli_device_syntax", lambda w: w.detect_command("--device", "gpu0"), Exits(2, r"argument --device: not a torch device: 'gpu0'")),
    Case("parameters", "cli_device_unavailable", lambda w: w.detect_command("--device", "cuda:99"), Exits(1, r"--device 'cuda:99': this machine .*cuda device")),
    Case("parameters", "cli_plot_extension", lambda w: w.detect_command("--plot", w.fresh() / "t.jpg"), Exits(2, r"--plot '.*t\.jpg' has the extension '\.jpg'.*PNG, SVG or PDF")),
    Case("parameters", "cli_ground_truth_without_plot", lambda w: w.detect_command("--ground-truth", "gt.json"), Exits(2, r"--ground_truth is only drawn on the plot")),
    Case("parameters", "cli_output_under_a_file", lambda w: w.detect_command("--output", w.a_file / "out.json"), Exits(1, r"--output .*a_file\.txt: .*a_file\.txt is a file, not a folder")),
    Case("parameters", "cli_quickstart_hub_id_without_push", lambda w: w.zeetad("quickstart", "--output_dir", w.fresh(), "--hub_model_id", "me/model"), Exits(2, r"^zeetad quickstart: error: --hub_model_id \('me/model'\).*--push_to_hub")),
    Case("parameters", "train_script_batch_size", lambda w: w.train_script(per_device_train_batch_size="0"), Exits(2, r"^train\.py: error: `per_device_train_batch_size` must be at least 1, got 0")),
    Case("parameters", "train_script_mixed_precision", lambda w: w.train_script(mixed_precision="fp17"), Exits(2, r"`mixed_precision` must be one of")),
    Case("parameters", "train_script_tiou_percent", lambda w: w.train_script("--tiou_thresholds", "30", "50"), Exits(2, r"`tiou_thresholds` must lie in \(0, 1\]")),
    Case("parameters", "train_script_unknown_override", lambda w: w.train_script(config_overrides='{"num_querys": 4}'), Exits(2, r"--config_overrides: \['num_querys'\] are not ZeetadConfig fields")),
    Case("parameters", "train_script_override_not_json", lambda w: w.train_script(config_overrides="num_queries=4"), Exits(2, r"--config_overrides is not valid JSON")),
    Case("parameters", "train_script_split", lambda w: w.train_script(split="12"), Exits(2, r"`split` must be in \[0, 9\], got 12")),
    Case("parameters", "train_script_dataset", lambda w: w.train_script(dataset="ucf101"), Exits(2, r"argument --dataset: invalid choice: 'ucf101'")),
    Case("parameters", "train_script_epochs_not_an_integer", lambda w: w.train_script(num_train_epochs="x"), Exits(2, r"argument --num_train_epochs/--num-train-epochs: invalid int value: 'x'")),
    Case("parameters", "train_script_unknown_flag", lambda w: w.train_script("--lerning_rate", "1e-3"), Exits(2, r"unrecognized arguments: --lerning_rate")),
    Case("parameters", "train_script_without_features", lambda w: w.script("train.py", "--annotations", "a.json", "--output_dir", w.fresh()), Exits(2, r"--annotations and --features are required")),
    Case("parameters", "evaluate_script_tiou_percent", lambda w: w.evaluate_script("--predictions", "p.json", "--tiou_thresholds", "30", "50", "70"), Exits(2, r"^evaluate\.py: error: --tiou_thresholds: `tiou_thresholds` must lie in \(0, 1\]")),
    Case("parameters", "evaluate_script_no_source", lambda w: w.evaluate_script(), Exits(2, r"exactly one of --predictions or --model_name_or_path")),
    Case("parameters", "evaluate_script_unknown_choice", lambda w: w.evaluate_script("--predictions", "p.json", "--unknown_videos", "ignore"), Exits(2, r"argument --unknown_videos/--unknown-videos: invalid choice: 'ignore' \(choose from 'error', 'false_positive'\)")),
    Case("parameters", "extract_script_sampling_fps_inf", lambda w: w.script("extract_features.py", "--videos_dir", w.root / "videos", "--output_dir", w.fresh(), "--sampling_fps", "inf"), Exits(2, r"^extract_features\.py: error: `sampling_fps` must be a finite positive number, got inf")),
    Case("parameters", "extract_script_missing_flag", lambda w: w.script("extract_features.py", "--videos_dir", w.root / "videos"), Exits(2, r"the following arguments are required: --output_dir")),
]

MODEL_FOLDER_CASES = [
    # the model folder is checked before any video is probed or decoded: the (missing) video is never reached
    Case("model_folders", "cli_no_processor_files", lambda w: w.detect_command(video="missing", model=w.broken_models["no_processor"]), Exits(1, r"--model .*no_processor: missing processor_config\.json, tokenizer_config\.json")),
    Case("model_folders", "cli_truncated_weights", lambda w: w.detect_command(video="missing", model=w.broken_models["truncated_weights"]), Exits(1, r"truncated_weights/model\.safetensors is corrupt or truncated")),
    Case("model_folders", "cli_config_not_json", lambda w: w.detect_command(video="missing", model=w.broken_models["bad_config"]), Exits(1, r"bad_config/config\.json is not valid JSON")),
    Case("model_folders", "cli_no_weights", lambda w: w.detect_command(video="missing", model=w.broken_models["no_weights"]), Exits(1, r"no_weights: no weights \(model\.safetensors")),
    Case("model_folders", "cli_no_config", lambda w: w.detect_command(video="missing", model=w.broken_models["no_config"]), Exits(1, r"no_config: no config\.json")),
    Case("model_folders", "cli_config_value_of_wrong_type", lambda w: w.detect_command(model=w.broken_models["wrong_config_type"]), Exits(1, r"num_queries")),
    Case("model_folders", "cli_not_a_folder_nor_hub_id", lambda w: w.detect_command(model=Path("no/such/folder")), Exits(1, r"--model 'no/such/folder' is not a folder and could not be loaded as a Hub id")),
    Case("model_folders", "pipeline_no_processor_files", lambda w: pipeline(TASK, model=str(w.broken_models["no_processor"])), Raises(ValueError, r"found no `ZeetadProcessor`.*processor_config\.json")),
    Case("model_folders", "check_truncated_weights", lambda w: check_model_folder(w.broken_models["truncated_weights"], "model"), Raises(ValueError, r"model\.safetensors is corrupt or truncated \(safetensors: .*incomplete metadata")),
    Case("model_folders", "train_script_model_without_processor", lambda w: w.train_script(model_name_or_path=str(w.broken_models["no_processor"])), Exits(1, r"^train\.py: error: --model_name_or_path .*missing processor_config\.json")),
    Case("model_folders", "train_script_truncated_clip", lambda w: w.train_script(clip_model=str(w.truncated_clip)), Exits(1, r"--clip_model .*truncated-clip/model\.safetensors is corrupt or truncated")),
    Case("model_folders", "evaluate_script_truncated_model", lambda w: w.evaluate_script("--model_name_or_path", w.broken_models["truncated_weights"], "--features", w.benchmark["features"]), Exits(1, r"^evaluate\.py: error: --model_name_or_path .*model\.safetensors is corrupt or truncated")),
    Case("model_folders", "extract_script_truncated_clip", lambda w: w.script("extract_features.py", "--videos_dir", w.root / "videos", "--output_dir", w.fresh(), "--clip_model", w.truncated_clip), Exits(1, r"^extract_features\.py: error: --clip_model .*model\.safetensors is corrupt or truncated")),
]

ANNOTATION_CASES = [
    Case("annotations", "missing_file", lambda w: w.load(w.root / "missing.json"), Raises(FileNotFoundError, r"`annotation_path` file not found: .*missing\.json")),
    Case("annotations", "not_json", lambda w: w.load(w.annotations('{"database": {')), Raises(ValueError, r"`annotation_path` file .*annotations\.json is not valid JSON")),
    Case("annotations", "not_utf8", lambda w: w.load(binary_annotations(w)), Raises(ValueError, r"`annotation_path` file .*annotations\.json is not a UTF-8 JSON file")),
    Case("annotations", "no_database", lambda w: w.load({"videos": {}}), Raises(ValueError, r'expected a JSON object with a "database" object')),
    Case("annotations", "video_id_twice", lambda w: w.load(w.annotations(json.dumps(database())[:-2] + ', "v1": {}}}')), Raises(ValueError, r"1 video ids occur more than once \(e\.g\. \['v1'\]\).*keep_last")),
    Case("annotations", "reversed_segment", lambda w: w.load(database(v1={"subset": "training", "duration": 10.0, "fps": 10.0, "annotations": [{"label": "jumping", "segment": [5.0, 2.0]}]})), Raises(ValueError, r"1 segments in 1 videos have start >= end.*v1: jumping \[5\.0, 2\.0\]")),
    Case("annotations", "segment_not_numbers", lambda w: w.load(database(v1={"subset": "training", "duration": 10.0, "annotations": [{"label": "jumping", "segment": ["1s", "3s"]}]})), Raises(ValueError, r"video 'v1', annotation 0: field \"segment\" must be a \[start, end\] pair of finite numbers")),
    Case("annotations", "negative_duration", lambda w: w.load(database(v1={"subset": "training", "duration": -3, "annotations": []})), Raises(ValueError, r"video 'v1': field \"duration\" must be a positive number of seconds, got -3")),
    Case("annotations", "no_subset", lambda w: w.load(database(v1={"duration": 10.0, "annotations": []})), Raises(ValueError, r"video 'v1': field \"subset\" must be a non-empty string")),
    Case("annotations", "unknown_subset", lambda w: w.load(subsets=["Validation"]), Raises(ValueError, r"`subsets` \['Validation'\] not found in the annotation file; available: \['training'\]")),
    Case("annotations", "bmn_csv_without_subset_column", lambda w: load_bmn_style(*bmn_files(w, "video,fps\nv1,30\n"), w.features()), Raises(ValueError, r"`video_info_csv` .*video_info\.csv: missing columns \['subset'\]")),
    Case("annotations", "bmn_video_without_csv_row", lambda w: load_bmn_style(*bmn_files(w, "video,subset\nv2,training\n"), w.features()), Raises(ValueError, r"1 videos of `annotation_path` have no row in `video_info_csv`")),
    Case("annotations", "cli_ground_truth_missing", lambda w: w.detect_command("--plot", w.fresh() / "t.png", "--ground-truth", w.root / "missing.json"), Exits(1, r"--ground_truth: file not found: .*missing\.json")),
    Case("annotations", "cli_ground_truth_reversed_segment", lambda w: w.detect_command("--plot", w.fresh() / "t.png", "--ground-truth", w.annotations([{"label": "jumping", "segment": [2.0, 1.0]}])), Exits(1, r"--ground_truth: annotations of .*good\.mp4: ground_truth\[0\]")),
    Case("annotations", "evaluate_script_annotations_missing", lambda w: w.script("evaluate.py", "--annotations", w.root / "missing.json", "--predictions", "p.json", "--output_dir", w.fresh()), Exits(1, r"--annotations .*missing\.json: `annotation_path` file not found")),
]


FEATURE_CASES = [
    Case("features", "folder_missing", lambda w: w.load(features=w.root / "no-features"), Raises(FileNotFoundError, r"`feature_dir` is not a directory: .*no-features")),
    Case("features", "file_missing", lambda w: w.load(database(v3=database()["database"]["v1"])), Raises(ValueError, r"Missing feature files: 1 videos have no \.npy file in `feature_dir`.*\['v3'\]")),
    Case("features", "wrong_width", lambda w: w.load(features=w.features({"v2": np.zeros((20, 20), np.float32)})), Raises(ValueError, r"1 of 2 feature files are not 24-d.*v2\.npy: 20-d")),
    Case("features", "nan", lambda w: w.load(features=w.features({"v2": np.full((20, FEATURE_DIM), np.nan, np.float32)})), Raises(ValueError, r"v2\.npy: 480 non-finite \(NaN or infinite\) values")),
    Case("features", "inf_in_safetensors", lambda w: w.load(features=w.features({"v1": np.full((20, FEATURE_DIM), np.inf, np.float32)}, ".safetensors"), feature_extension=".safetensors"), Raises(ValueError, r"v1\.safetensors: 480 non-finite")),
    Case("features", "nan_in_torch_file", lambda w: w.load(features=w.features({"v1": torch.full((20, FEATURE_DIM), float("nan"))}, ".pt"), feature_extension=".pt"), Raises(ValueError, r"v1\.pt: 480 non-finite")),
    Case("features", "one_dimensional", lambda w: w.load(features=w.features({"v1": np.zeros(20, np.float32)})), Raises(ValueError, r"v1\.npy: expected a 2-D \(num_units, feature_dim\) array, got shape \(20,\)")),
    Case("features", "no_units", lambda w: w.load(features=w.features({"v1": np.zeros((0, FEATURE_DIM), np.float32)})), Raises(ValueError, r"v1\.npy: empty array of shape \(0, 24\)")),
    Case("features", "object_array", lambda w: w.load(features=w.features({"v1": np.array([[object()]], dtype=object)})), Raises(ValueError, r"v1\.npy: expected real-valued features, got dtype object")),
    Case("features", "complex_values", lambda w: w.load(features=w.features({"v1": np.zeros((20, FEATURE_DIM), np.complex64)})), Raises(ValueError, r"v1\.npy: expected real-valued features, got dtype complex64")),
    Case("features", "truncated_file", lambda w: w.load(features=truncated_feature(w)), Raises(ValueError, r"v1\.npy: truncated: 1024 bytes, the header announces 2048")),
    Case("features", "torch_file_without_tensor", lambda w: w.load(features=w.features({"v1": {"features": "not a tensor"}}, ".pt"), feature_extension=".pt"), Raises(ValueError, r"v1\.pt: .*(expected a tensor|cannot be read)")),
    Case("features", "two_tensors_none_named_features", lambda w: w.load(features=w.features({"v1": {"a": torch.zeros(20, FEATURE_DIM), "b": torch.zeros(20, FEATURE_DIM)}}, ".safetensors"), feature_extension=".safetensors"), Raises(ValueError, r"v1\.safetensors: holds 2 tensors \['a', 'b'\]; expected one, or one named \"features\"")),
    Case("features", "unknown_extension", lambda w: w.load(feature_extension=".h5"), Raises(ValueError, r"`feature_extension` must be one of")),
    Case("features", "clip_features_nan", lambda w: load_activitynet_style(w.annotations(database()), w.features(), w.features({"v1": np.full((20, 16), np.nan, np.float32)}, width=16)), Raises(ValueError, r"`clip_feature_dir` .*v1\.npy: 320 non-finite")),
    Case("features", "load_features_nan", lambda w: load_features(w.features({"v1": np.full((2, 2), np.nan, np.float32)}) / "v1.npy"), Raises(ValueError, r"v1\.npy: 4 non-finite")),
    Case("features", "train_script_nan_before_training", lambda w: w.train_script(features=nan_benchmark_features(w)), Exits(1, r"^train\.py: error: `feature_dir` .*: 1 of 6 feature files are unusable: .*non-finite")),
    Case("features", "training_width_differs_from_the_model", lambda w: w.train({"localization_feature_dim": 20}), Raises(ValueError, r"`train_dataset` feature_path: 6 of 6 feature files are not 20-d \(the model takes\)")),
    Case("features", "training_file_changed_after_loading", lambda w: w.train(train_dataset=changed_feature_file(w)), Raises(ValueError, r"feature files changed since the dataset was built.*has 7 units, the row says 40.*rebuild the dataset")),
]


PREDICTION_CASES = [
    Case("predictions", "file_missing", lambda w: load_predictions(w.root / "missing.json"), Raises(FileNotFoundError, r"`predictions` file not found: .*missing\.json")),
    Case("predictions", "a_list_of_detections", lambda w: load_predictions(w.predictions_file([{"video": "v1", "label": "a"}])), Raises(ValueError, r"in the ActivityNet format .*got a list")),
    Case("predictions", "video_id_twice", lambda w: load_predictions(repeated_predictions(w)), Raises(ValueError, r"1 video ids occur more than once in \"results\" \(e\.g\. \['v1'\]\)")),
    Case("predictions", "video_ids_not_in_ground_truth", lambda w: score(w, {"v1.mp4": one_prediction()["v1"]}), Raises(ValueError, r"1 of 1 prediction videos are not in the ground truth.*'v1\.mp4' is 'v1' without its folder and file extension")),
    Case("predictions", "score_not_a_number", lambda w: score(w, one_prediction(score="high")), Raises(ValueError, r"video 'v1', entry 0: field \"score\" must be a finite number, got 'high'")),
    Case("predictions", "score_nan", lambda w: score(w, one_prediction(score=float("nan"))), Raises(ValueError, r"field \"score\" must be a finite number, got nan")),
    Case("predictions", "reversed_segment", lambda w: score(w, one_prediction(segment=[5.0, 1.0])), Raises(ValueError, r"field \"segment\" must have end >= start, got \[5\.0, 1\.0\]")),
    Case("predictions", "no_segment", lambda w: score(w, {"v1": [{"label": "a", "score": 0.9}]}), Raises(ValueError, r"video 'v1', entry 0: missing field \"segment\"")),
    Case("predictions", "not_a_list", lambda w: score(w, {"v1": "a"}), Raises(ValueError, r"video 'v1': expected a list of predictions, got str")),
    Case("predictions", "tiou_percent", lambda w: score(w, one_prediction(), thresholds=(50, 70)), Raises(ValueError, r"`tiou_thresholds` must lie in \(0, 1\].*got \[50\.0, 70\.0\]")),
    Case("predictions", "evaluate_script_list", lambda w: w.evaluate_script("--predictions", w.predictions_file([{"video": "x"}])), Exits(1, r"^evaluate\.py: error: --predictions .*predictions\.json: `predictions` file .*got a list")),
    Case("predictions", "evaluate_script_ids_with_extension", lambda w: w.evaluate_script("--predictions", evaluation_predictions(w, lambda results: {"results": {f"{key}.mp4": value for key, value in results.items()}})), Exits(1, r"--predictions .*: 2 of 2 prediction videos are not in the ground truth")),
    Case("predictions", "evaluate_script_file_missing", lambda w: w.evaluate_script("--predictions", w.root / "missing.json"), Exits(1, r"--predictions .*missing\.json: `predictions` file not found")),
]


TRAINING_CASES = [
    Case("training", "train_script_output_dir_under_a_file", lambda w: w.train_script(output_dir=w.a_file / "run"), Exits(1, r"^train\.py: error: --output_dir .*a_file\.txt/run: .*a_file\.txt is a file, not a folder")),
    Case("training", "output_dir_under_a_file", lambda w: w.train(output_dir=str(w.a_file / "run")), Raises(NotADirectoryError, r"`output_dir` .*a_file\.txt is a file, not a folder")),
    Case("training", "output_dir_read_only", lambda w: check_writable_directory(read_only_folder(w) / "run", "--output_dir"), Raises(PermissionError, r"--output_dir .*run: cannot create files in .*Permission denied"), skip="root writes to read-only folders" if IS_ROOT else None),
    Case("training", "seen_and_unseen_overlap", lambda w: w.train(unseen=["jumping"]), Raises(ValueError, r"Seen and unseen classes must be disjoint; both hold \['jumping'\]")),
    Case("training", "unseen_class_in_training_set", lambda w: w.train(train_dataset=synthetic_datasets(w.fresh())[1]), Raises(ValueError, r"training set holds annotations of 2 classes that are not seen classes")),
    Case("training", "resume_from_a_folder_without_state", lambda w: w.train(resume_from_checkpoint=str(w.fresh())), Raises(FileNotFoundError, r"`resume_from_checkpoint` file not found: .*trainer_state\.json")),
    Case("training", "train_script_config_file_missing", lambda w: w.script("train.py", w.root / "missing.json"), Exits(1, r"^train\.py: error: `config` file not found: .*missing\.json")),
    Case("training", "train_script_config_file_not_an_object", lambda w: w.script("train.py", w.annotations("[1, 2]", "config.json")), Exits(1, r"`config` file .*config\.json must hold a JSON object of flags, got list")),
    Case("training", "train_script_push_without_hub_access", lambda w: w.train_script(push_to_hub="true", hub_model_id="user/x"), Exits(1, r"^train\.py: error: could not create or find the Hub repository 'user/x' \(OfflineModeIsEnabled")),
    Case("training", "extract_script_videos_dir_missing", lambda w: w.script("extract_features.py", "--videos_dir", w.root / "no-videos", "--output_dir", w.fresh()), Exits(1, r"^extract_features\.py: error: --videos_dir '.*no-videos' is not a folder")),
]

# the real console scripts, end to end (Python's own exit status and stderr)
SUBPROCESS_CASES = [
    Case("subprocess", "zeetad_usage_error", lambda w: w.subprocess("-m", "zeetad_hf.cli", "detect", w.videos["good"], "--model", w.model, "--labels", "a", "--top-k", "x"), Exits(2, r"^zeetad detect: error: argument --top_k/--top-k: must be an integer, got 'x'")),
    Case("subprocess", "zeetad_corrupt_weights_debug", lambda w: w.subprocess("-m", "zeetad_hf.cli", "detect", w.videos["good"], "--model", w.broken_models["truncated_weights"], "--labels", "a", "--debug"), Exits(1, r"^zeetad detect: error: --model .*model\.safetensors is corrupt or truncated", traceback=True)),
    Case("subprocess", "train_script_usage_error", lambda w: w.subprocess(EXAMPLES / "train.py", "--mixed_precision", "fp17", "--output_dir", w.fresh()), Exits(2, r"^train\.py: error: `mixed_precision` must be one of")),
    Case("subprocess", "evaluate_script_bad_predictions", lambda w: w.subprocess(EXAMPLES / "evaluate.py", "--annotations", w.benchmark["annotations"], "--predictions", w.predictions_file([1]), "--output_dir", w.fresh()), Exits(1, r"^evaluate\.py: error: --predictions .*got a list")),
    Case("subprocess", "extract_script_missing_folder", lambda w: w.subprocess(EXAMPLES / "extract_features.py", "--videos_dir", w.root / "no-videos", "--output_dir", w.fresh()), Exits(1, r"^extract_features\.py: error: --videos_dir .* is not a folder")),
]

# fmt: on

CASES = (
    VIDEO_CASES
    + LABEL_CASES
    + PARAMETER_CASES
    + MODEL_FOLDER_CASES
    + ANNOTATION_CASES
    + FEATURE_CASES
    + PREDICTION_CASES
    + TRAINING_CASES
    + SUBPROCESS_CASES
)


# ---------------------------------------------------------------------------------------------------------------------
# Running the table
# ---------------------------------------------------------------------------------------------------------------------


def test_the_table_has_at_least_60_distinct_cases_in_every_area():
    assert len({case.id for case in CASES}) == len(CASES) >= 60
    areas = {case.area for case in CASES}
    assert {
        "video",
        "labels",
        "parameters",
        "model_folders",
        "annotations",
        "features",
        "predictions",
        "training",
    } <= areas


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, world: World):
    if case.skip:
        pytest.skip(case.skip)
    expect = case.expect
    if isinstance(expect, Raises):
        with time_limit(CASE_TIME_LIMIT), pytest.raises(expect.exception, match=expect.message):
            case.run(world)
        return
    with time_limit(SUBPROCESS_TIMEOUT + 10):
        status, stderr = case.run(world)
    lines = stderr.strip().splitlines()
    assert status == expect.status, stderr[-3000:]
    # exactly one error line, the last one; a traceback only when asked for
    assert lines and re.search(expect.line, lines[-1]), stderr[-3000:]
    assert sum(": error: " in line for line in lines) == 1, stderr[-3000:]
    assert ("Traceback" in stderr) == expect.traceback, stderr[-3000:]
    if case.area != "subprocess" and not expect.traceback:
        # in process, stderr holds nothing else: no usage block, no warnings
        assert len(lines) == 1, stderr


def test_a_genuine_bug_keeps_its_traceback():
    def buggy(argv):
        return {}["missing key"]

    with pytest.raises(KeyError):
        run_command(buggy, "program", [])
