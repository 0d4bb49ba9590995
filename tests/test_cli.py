import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from tiny_models import save_tiny_video_detector

from zeetad_hf import probe_video
from zeetad_hf.cli import UsageError, build_parser, load_ground_truth, main, plot_paths


CONSOLE_SCRIPT = Path(sys.executable).with_name("zeetad")
requires_console_script = pytest.mark.skipif(
    not CONSOLE_SCRIPT.exists(), reason="the `zeetad` entry point appears after `pip install -e .`"
)


def write_video(path, seconds: float, fps: int) -> Path:
    """A small mp4 whose brightness ramps over time (frames differ, so the vision tower sees a changing video)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for index in range(round(seconds * fps)):
            frame = np.full((32, 48, 3), index * 7 % 256, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return Path(path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    """A saved tiny CLIP-only ZEETAD model with a 32x32 vision tower and its processor (4 units per second)."""
    return save_tiny_video_detector(tmp_path_factory.mktemp("cli-model"), tokenizer)


def run_cli(*args, cwd) -> subprocess.CompletedProcess:
    # conftest already made the environment offline with a throw-away HF_HOME; the child inherits it.
    return subprocess.run(
        [sys.executable, "-m", "zeetad_hf.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def check_detections(detections, labels, duration):
    assert isinstance(detections, list)
    for detection in detections:
        assert set(detection) == {"score", "label", "segment"} and set(detection["segment"]) == {"start", "end"}
        assert detection["label"] in labels and 0.0 <= detection["score"] <= 1.0
        assert 0.0 <= detection["segment"]["start"] <= detection["segment"]["end"] <= duration + 1e-6
    scores = [detection["score"] for detection in detections]
    assert scores == sorted(scores, reverse=True)


def test_detect_writes_json_and_one_plot_per_video(model_dir, tmp_path):
    videos = {
        "jump.mp4": write_video(tmp_path / "jump.mp4", 3.0, 10),
        "vault.mp4": write_video(tmp_path / "vault.mp4", 2.0, 25),
    }
    ground_truth = {
        "database": {
            "jump": {"annotations": [{"label": "jumping", "segment": [0.5, 1.5]}]},
            "vault": {"annotations": []},
        }
    }
    (tmp_path / "gt.json").write_text(json.dumps(ground_truth))
    labels = ["jumping", "running", "diving"]

    result = run_cli(
        "detect", *videos, "--model", model_dir, "--labels", ", ".join(labels),
        "--threshold", "0", "--top-k", "3", "--output", "out/detections.json",
        "--plot", "out/timeline.png", "--ground-truth", "gt.json",
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "frame" in result.stderr  # the progress bar
    # each written file is named on stderr, once it is complete (the JSON comes last)
    written = [line for line in result.stderr.splitlines() if line.startswith("wrote ")]
    assert written == [
        "wrote timeline out/timeline_jump.png",
        "wrote timeline out/timeline_vault.png",
        "wrote detections of 2 videos to out/detections.json",
    ]
    assert result.stdout == ""
    results = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert list(results) == list(videos)
    for name, path in videos.items():
        # threshold 0 keeps every query, top-k cuts them to 3
        assert len(results[name]) == 3
        check_detections(results[name], labels, probe_video(path).duration)
    assert sorted(os.listdir(tmp_path / "out")) == ["detections.json", "timeline_jump.png", "timeline_vault.png"]
    for plot in ("timeline_jump.png", "timeline_vault.png"):
        with Image.open(tmp_path / "out" / plot) as image:
            assert image.format == "PNG" and image.size[0] == 1000


def test_detect_prints_json_to_stdout_without_output(model_dir, tmp_path, capsys):
    video = write_video(tmp_path / "clip.mp4", 1.5, 12)

    exit_code = main(
        ["detect", str(video), "--model", str(model_dir), "--labels", "jumping,running", "--sampling-fps", "2",
         "--threshold", "0", "--frame-batch-size", "2", "--no-progress", "--plot", str(tmp_path / "timeline.png")]
    )  # fmt: skip

    captured = capsys.readouterr()
    assert exit_code == 0, captured.err
    # stdout holds the JSON alone; the picture is named on stderr
    assert f"wrote timeline {tmp_path / 'timeline.png'}" in captured.err.splitlines()
    results = json.loads(captured.out)
    check_detections(results[str(video)], ["jumping", "running"], probe_video(video).duration)
    assert results[str(video)], "threshold 0 keeps every query"
    with Image.open(tmp_path / "timeline.png") as image:
        assert image.format == "PNG"


@pytest.mark.parametrize("extension", [".svg", ".pdf"])
def test_detect_writes_the_picture_format_that_the_plot_extension_names(model_dir, tmp_path, capsys, extension):
    video = write_video(tmp_path / "clip.mp4", 1.5, 12)
    plot = tmp_path / f"timeline{extension}"

    exit_code = main(
        ["detect", str(video), "--model", str(model_dir), "--labels", "jumping,running", "--threshold", "0",
         "--no-progress", "--output", str(tmp_path / "detections.json"), "--plot", str(plot)]
    )  # fmt: skip

    assert exit_code == 0, capsys.readouterr().err
    data = plot.read_bytes()
    assert not data.startswith(b"\x89PNG")
    if extension == ".svg":
        root = ElementTree.fromstring(data)
        assert root.tag == "{http://www.w3.org/2000/svg}svg" and b"jumping" in data
    else:
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")


def test_an_unsupported_plot_extension_is_refused_before_any_detection_work(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # neither the video nor the model exists: the --plot error must come first, before probing or loading anything
    exit_code = main(["detect", "missing.mp4", "--model", "no/such/folder", "--labels", "a", "--plot", "t.jpg"])
    captured = capsys.readouterr()
    assert exit_code == 2 and captured.err.count("\n") == 1
    assert captured.err.startswith("zeetad detect: error: --plot 't.jpg' has the extension '.jpg'")
    assert "PNG, SVG or PDF" in captured.err and "missing.mp4" not in captured.err
    assert os.listdir(tmp_path) == []


def test_missing_video_exits_1_with_one_line(model_dir, tmp_path):
    result = run_cli(
        "detect",
        "missing.mp4",
        "--model",
        model_dir,
        "--labels",
        "jumping",
        "--output",
        "detections.json",
        cwd=tmp_path,
    )
    # a runtime error (the command line is fine, the file is missing): exit status 1
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "missing.mp4" in result.stderr and "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []


# exit status 2: the command line itself is wrong; 1: it is fine, but a file it names is missing or bad
@pytest.mark.parametrize(
    "arguments, exit_code, message",
    [
        (["--labels", "jumping,,running"], 2, "blank"),
        (["--labels", "jumping, Jumping"], 2, "Duplicate"),
        (["--labels", " , "], 2, "blank"),
        (["--threshold", "1.5"], 2, r"must be in \[0, 1\]"),
        (["--threshold", "nan"], 2, "must be finite"),
        (["--top-k", "0"], 2, "must be >= 1"),
        (["--sampling-fps", "0"], 2, "must be > 0"),
        (["--ground-truth", "gt.json"], 2, "only drawn on the plot"),
        (["--plot", "t.png", "--ground-truth", "missing.json"], 1, "file not found"),
        (["--plot", "t.png", "--ground-truth", "bad_gt.json"], 1, r"ground_truth\[0\]"),
        (["--plot", "timeline"], 2, "--plot 'timeline' has no extension"),
        (["--model", "no/such/folder"], 1, "is not a folder"),
        (["not_a_video.txt"], 1, "could not be opened as a video"),
        (["clip.mp4"], 2, "more than once"),
    ],
)
def test_bad_input_exits_with_one_line_and_writes_nothing(
    model_dir, tmp_path, capsys, monkeypatch, arguments, exit_code, message
):
    monkeypatch.chdir(tmp_path)
    write_video(tmp_path / "clip.mp4", 1.0, 10)
    (tmp_path / "bad_gt.json").write_text(json.dumps([{"label": "jumping", "segment": [2.0, 1.0]}]))
    (tmp_path / "not_a_video.txt").write_text("hello")
    before = sorted(os.listdir(tmp_path))

    # A later option overrides an earlier one, and a bare name joins the videos.
    argv = ["detect", "--model", str(model_dir), "--labels", "jumping", "--output", "out.json", *arguments, "clip.mp4"]
    status = main(argv)

    captured = capsys.readouterr()
    assert status == exit_code, captured.err
    assert captured.err.count("\n") == 1 and captured.err.startswith("zeetad detect: error:")
    assert re.search(message, captured.err), captured.err
    assert sorted(os.listdir(tmp_path)) == before


def test_help_and_missing_command(capsys):
    assert main(["--help"]) == 0 and "detect" in capsys.readouterr().out
    assert main(["detect", "--help"]) == 0
    help_text = capsys.readouterr().out
    for option in (
        "--model",
        "--labels",
        "--threshold",
        "--top-k",
        "--sampling-fps",
        "--output",
        "--plot",
        "--device",
    ):
        assert option in help_text
    assert main([]) == 2 and capsys.readouterr().err.count("\n") == 1


def test_quickstart_hub_model_id_without_push_exits_2_before_any_work(tmp_path, capsys):
    assert main(["quickstart", "--help"]) == 0
    assert "--push_to_hub" in capsys.readouterr().out

    exit_code = main(["quickstart", "--fast", "--output_dir", str(tmp_path / "run"), "--hub_model_id", "user/model"])
    captured = capsys.readouterr()
    assert exit_code == 2
    assert captured.err.count("\n") == 1 and captured.err.startswith("zeetad quickstart: error:")
    assert "--hub_model_id ('user/model')" in captured.err and "--push_to_hub" in captured.err
    assert os.listdir(tmp_path) == []


@requires_console_script
def test_console_script_is_installed():
    result = subprocess.run([str(CONSOLE_SCRIPT), "detect", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--ground-truth" in result.stdout


def test_plot_paths_for_one_and_several_videos():
    assert plot_paths("out/t.png", ["a/x.mp4"]) == {"a/x.mp4": "out/t.png"}
    assert plot_paths("out/t.png", ["a/x.mp4", "y.avi"]) == {"a/x.mp4": "out/t_x.png", "y.avi": "out/t_y.png"}
    with pytest.raises(UsageError, match="share a file name stem"):
        plot_paths("t.png", ["a/x.mp4", "b/x.mp4"])


def test_ground_truth_formats(tmp_path):
    annotations = [{"label": "jumping", "segment": {"start": 0.0, "end": 1.0}}]
    formats = {
        "list.json": annotations,
        "by_path.json": {"clips/a.mp4": annotations},
        "by_name.json": {"a.mp4": annotations},
        "activitynet.json": {"database": {"a": {"annotations": annotations}}},
    }
    for name, content in formats.items():
        (tmp_path / name).write_text(json.dumps(content))
        assert load_ground_truth(str(tmp_path / name), ["clips/a.mp4"]) == {"clips/a.mp4": annotations}
    with pytest.raises(ValueError, match="no annotations for clips/b.mp4"):
        load_ground_truth(str(tmp_path / "by_name.json"), ["clips/a.mp4", "clips/b.mp4"])
    with pytest.raises(ValueError, match="one list of annotations but 2 videos"):
        load_ground_truth(str(tmp_path / "list.json"), ["a.mp4", "b.mp4"])


def test_flags_are_snake_case_with_the_dashed_spelling_accepted():
    parser = build_parser()
    detect = ["detect", "video.mp4", "--model", "m", "--labels", "a"]
    snake = parser.parse_args(
        [*detect, "--top_k", "3", "--sampling_fps", "2", "--frame_batch_size", "4", "--ground_truth", "g.json"]
    )
    dashed = parser.parse_args(
        [*detect, "--top-k", "3", "--sampling-fps", "2", "--frame-batch-size", "4", "--ground-truth", "g.json"]
    )
    assert vars(snake) == vars(dashed)
    assert (snake.top_k, snake.sampling_fps, snake.frame_batch_size, snake.ground_truth) == (3, 2.0, 4, "g.json")
    quickstart = parser.parse_args(["quickstart", "--output-dir", "d", "--push-to-hub", "--hub-model-id", "u/m"])
    assert (quickstart.output_dir, quickstart.push_to_hub, quickstart.hub_model_id) == ("d", True, "u/m")
    # the help shows the snake_case spelling first, as transformers' scripts do
    help_text = parser._subparsers._group_actions[0].choices["detect"].format_help()
    assert "--top_k N, --top-k N" in help_text and "--no_progress, --no-progress" in help_text
