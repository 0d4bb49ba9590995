"""`zeetad quickstart --fast` run as a user runs it (the session fixture `quickstart_fast_run` in conftest.py): what it
writes, what it prints, that a second run reuses every stage, and its push to the Hub, successful or not."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from urllib.request import urlopen

import pytest
import test_hub
from huggingface_hub import ModelCard

from zeetad_hf.quickstart import VARIANTS, fast_settings, run_quickstart


HUB_REPO_ID = "user/zeetad-quickstart"
CONSOLE_SCRIPT = os.path.join(os.path.dirname(sys.executable), "zeetad")
# test_hub.py's fixture, shared: tests/fakehub.py on a free loopback port, stopped after this module
hub_endpoint = test_hub.hub_endpoint
# Written again by every run, cached or not: the results, and the pipeline demo of stage 5.
REWRITTEN_BY_EVERY_RUN = {"results.json", "results.md", "detections.json", "timeline.png"}


def read_json(path: Path):
    return json.loads(path.read_text())


def rerun_quickstart(output_dir: Path, *arguments: str, **environment: str) -> subprocess.CompletedProcess:
    """`zeetad quickstart --fast` again on a built folder, online (for the Hub) with a throw-away HF_HOME."""
    # huggingface_hub reads the endpoint at import time and this process is offline (conftest): push from a child.
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_OFFLINE"}
    env.update(
        HF_HOME=str(output_dir.parent / "hf-home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        OMP_NUM_THREADS="1",
        **environment,
    )
    command = [CONSOLE_SCRIPT, "quickstart", "--fast", "--output_dir", str(output_dir), *arguments]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def file_stamps(output_dir: Path) -> dict[Path, tuple[int, int]]:
    """Size and modification time of every file of the run that a cached run leaves alone."""
    return {
        path: (path.stat().st_size, path.stat().st_mtime_ns)
        for path in output_dir.rglob("*")
        if path.is_file() and path.relative_to(output_dir).as_posix() not in REWRITTEN_BY_EVERY_RUN
    }


def test_fast_quickstart_beats_chance(quickstart_fast_run):
    output_dir = quickstart_fast_run.output_dir
    for name in ("world/annotations.json", "world/split.json", "clip/model.safetensors", "results.md"):
        assert (output_dir / name).exists(), name
    unseen = read_json(output_dir / "world" / "split.json")["unseen"]
    demo = read_json(output_dir / "detections.json")
    assert demo["candidate_labels"] == unseen and demo["ground_truth"]
    assert all(detection["label"] in unseen for detection in demo["detections"])
    assert (output_dir / "timeline.png").read_bytes().startswith(b"\x89PNG")
    saved = read_json(output_dir / "results.json")
    assert set(saved["variants"]) == set(fast_settings().variants) <= set(VARIANTS)
    chance = saved["variants"]["random_text"]["eval_unseen_average_mAP"]
    # both classification heads beat chance
    for variant, head in (("bottleneck", "sigmoid"), ("bottleneck_softmax", "softmax")):
        assert saved["variants"][variant]["classification_head"] == head
        assert saved["variants"][variant]["eval_unseen_average_mAP"] > chance, variant
    # the default model under video-level fusion too: the table says which number is which protocol
    fusion = saved["video_level_fusion"]
    assert fusion["variant"] == "bottleneck" and fusion["protocol"] == "video-level fusion"
    assert 0.0 <= fusion["eval_unseen_average_mAP"] <= 1.0
    assert saved["table"].startswith("Protocol: strict")
    assert f"unseen mAP, all videos {100 * fusion['eval_unseen_average_mAP']:.1f}" in saved["table"].splitlines()[-1]
    # the table is printed first, and is what results.md holds
    assert quickstart_fast_run.stdout.startswith(saved["table"] + "\n\n")
    assert (output_dir / "results.md").read_text() == saved["table"] + "\n"


def test_fast_quickstart_measures_the_open_vocabulary_behaviour(quickstart_fast_run):
    saved = read_json(quickstart_fast_run.output_dir / "results.json")
    for variant, result in saved["variants"].items():
        report = result["open_vocabulary"]
        generalized = report["generalized"]
        rates = [*report["off_list"]["mean"], *report["on_list"]["mean"]]
        for value in (generalized["seen_average_mAP"], generalized["unseen_average_mAP"], *rates):
            assert 0.0 <= value <= 1.0, variant
        assert generalized["harmonic_mean"] <= max(generalized["seen_average_mAP"], generalized["unseen_average_mAP"])
        for kind in ("off_list", "on_list"):
            assert set(report[kind]["per_class"]) == set(saved["unseen"])
            # a higher score threshold never detects more
            assert report[kind]["mean"] == sorted(report[kind]["mean"], reverse=True)
        assert 0 < report["unseen_only_videos"]["num_videos"] < 36  # the fast world has 36 validation videos
    # one table row per variant, with its head and every measure
    rows = [line for line in saved["table"].splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0].strip("| ") for row in rows] == list(saved["variants"])
    assert all(len(row.split(" | ")) == 9 for row in rows)


def test_model_folder_has_a_card_with_the_measured_results(quickstart_fast_run):
    output_dir = quickstart_fast_run.output_dir
    model_dir = output_dir / "runs" / "bottleneck"
    assert {"config.json", "model.safetensors", "processor_config.json"} <= {path.name for path in model_dir.iterdir()}
    # only the Hub-ready model gets a card
    assert [path.parent.name for path in (output_dir / "runs").glob("*/README.md")] == ["bottleneck"]

    saved = read_json(output_dir / "results.json")
    measured = saved["variants"]["bottleneck"]
    card = ModelCard.load(model_dir / "README.md")
    entry = card.data.to_dict()["model-index"][0]
    assert entry["name"] == "zeetad-quickstart-bottleneck"
    metrics = {metric["name"]: metric["value"] for metric in entry["results"][0]["metrics"]}
    assert metrics["average mAP"] == round(100 * measured["eval_unseen_average_mAP"], 2)
    for threshold, value in zip(measured["tiou_thresholds"], measured["eval_unseen_mAP"]):
        assert metrics[f"mAP@{threshold:g}"] == round(100 * value, 2)
    dataset = entry["results"][0]["dataset"]
    assert (dataset["type"], dataset["split"]) == ("synthetic_world", "validation")
    assert (dataset["args"]["seen_classes"], dataset["args"]["unseen_classes"]) == (saved["seen"], saved["unseen"])
    assert "small CLIP frame embeddings at 2 fps" in card.text
    # the model holds its CLIP vision tower (the demo runs it on an mp4), and the card says it takes video files
    assert 'detector("video.mp4"' in card.text and "Raw video without" not in card.text
    assert card.data.base_model is None and not re.search(r"paper reports \d", card.text)


def printed_summary(run) -> str:
    """What the command printed after its table (results.md) and the blank line after it."""
    table = read_json(run.output_dir / "results.json")["table"]
    assert run.stdout.startswith(table + "\n\n")
    return run.stdout[len(table) + 2 :]


def test_summary_names_every_artefact_and_the_held_out_video(quickstart_fast_run):
    output_dir = quickstart_fast_run.output_dir
    summary = printed_summary(quickstart_fast_run)
    artefacts = re.findall(r"^  (\S+)  ", summary.split("\n\n")[0], flags=re.MULTILINE)
    expected = ["world/", "clip/", "features/", "runs/<variant>/", "runs/bottleneck/", "results.json", "results.md"]
    expected += ["detections.json", "timeline.png"]
    assert artefacts == [os.path.join(output_dir, name) for name in expected]
    variants = read_json(output_dir / "results.json")["variants"]
    for path in artefacts:
        for variant in variants:
            assert Path(path.replace("<variant>", variant)).exists(), path
    assert f"one trained and evaluated model per variant ({', '.join(variants)})" in summary

    # the held-out video: a validation video of the world holding unseen-class actions, with its duration
    demo = read_json(output_dir / "detections.json")
    video = Path(demo["video"])
    assert video.parent == output_dir / "world" / "videos" and video.exists()
    entry = read_json(output_dir / "world" / "annotations.json")["database"][video.stem]
    unseen = read_json(output_dir / "world" / "split.json")["unseen"]
    assert entry["subset"] == "validation" and demo["duration"] == entry["duration"]
    assert demo["ground_truth"] == [item for item in entry["annotations"] if item["label"] in unseen]
    assert f"Detections on the held-out video {video} ({entry['duration']:.1f} s)" in summary


def tiou(first: tuple[float, float], second: tuple[float, float]) -> float:
    intersection = max(0.0, min(first[1], second[1]) - max(first[0], second[0]))
    return intersection / ((first[1] - first[0]) + (second[1] - second[0]) - intersection)


def test_summary_sets_each_detection_beside_its_ground_truth(quickstart_fast_run):
    demo = read_json(quickstart_fast_run.output_dir / "detections.json")
    detections, ground_truth = demo["detections"], demo["ground_truth"]
    summary = printed_summary(quickstart_fast_run).split("\n\n", 1)[1]
    printed = re.findall(
        r"^  (\d\.\d{3})  (.+?) +(\d+\.\d)-(\d+\.\d) s +(no ground truth .+|ground truth .+)$",
        summary,
        flags=re.MULTILINE,
    )
    assert len(printed) == len(detections) > 0
    for (score, label, start, end, match), detection in zip(printed, detections):
        segment = (detection["segment"]["start"], detection["segment"]["end"])
        assert (score, label, start, end) == (
            f"{detection['score']:.3f}",
            detection["label"],
            f"{segment[0]:.1f}",
            f"{segment[1]:.1f}",
        )
        same_label = [item["segment"] for item in ground_truth if item["label"] == detection["label"]]
        if not same_label:
            assert match == "no ground truth of this label"
            continue
        best = max(same_label, key=lambda truth: tiou(segment, truth))
        assert match == f"ground truth {best[0]:.1f}-{best[1]:.1f} s, tIoU {tiou(segment, best):.2f}"

    missed = [
        f"  {item['label']}  {item['segment'][0]:.1f}-{item['segment'][1]:.1f} s"
        for item in ground_truth
        if not any(
            tiou((detection["segment"]["start"], detection["segment"]["end"]), item["segment"]) > 0
            for detection in detections
            if detection["label"] == item["label"]
        )
    ]
    header = "Ground truth that no detection of its label overlaps: "
    assert summary.rstrip("\n").endswith("\n".join([header + (str(len(missed)) if missed else "none"), *missed]))


def test_cached_run_pushes_the_model_folder_without_rebuilding(quickstart_fast_run, hub_endpoint):
    output_dir = quickstart_fast_run.output_dir
    stamps = file_stamps(output_dir)
    completed = rerun_quickstart(
        output_dir,
        "--push_to_hub",
        "--hub_model_id",
        HUB_REPO_ID,
        HF_ENDPOINT=hub_endpoint,
        HF_TOKEN="hf_fake_token",
        HF_HUB_DISABLE_XET="1",
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    # every stage was reused (nothing rebuilt), the same table and summary printed, then the push
    assert stamps == file_stamps(output_dir)
    model_dir = output_dir / "runs" / "bottleneck"
    pushed_line = f"\nPushed {model_dir} to the Hub repository {HUB_REPO_ID}.\n"
    assert completed.stdout == quickstart_fast_run.stdout + pushed_line
    # stage 4 has a progress bar over the variants, here all reused
    assert re.search(r"4/5 training: 100%.* 3/3 .*cached=3", completed.stderr), completed.stderr[-2000:]
    # the pipeline demo runs again (it is not cached) with its own bar, which reaches every sampled frame
    assert re.search(r"5/5 detection: 100%.* (\d+)/\1 ", completed.stderr), completed.stderr[-2000:]

    with urlopen(f"{hub_endpoint}/api/models/{HUB_REPO_ID}") as response:
        pushed = {sibling["rfilename"] for sibling in json.load(response)["siblings"]}
    assert {"config.json", "model.safetensors", "README.md", "processor_config.json"} <= pushed
    # the model folder as it is, nothing from the other stages
    assert pushed == {path.name for path in model_dir.iterdir()}
    with urlopen(f"{hub_endpoint}/{HUB_REPO_ID}/resolve/main/README.md") as response:
        assert response.read() == (model_dir / "README.md").read_bytes()


def test_failed_push_reports_one_line_after_the_results_and_keeps_the_folder(quickstart_fast_run):
    output_dir = quickstart_fast_run.output_dir
    stamps = file_stamps(output_dir)
    # a loopback port that nothing listens on: the connection is refused, as with no network
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    completed = rerun_quickstart(
        output_dir,
        "--push_to_hub",
        "--hub_model_id",
        "user/x",
        HF_ENDPOINT=f"http://127.0.0.1:{closed_port}",
        HF_TOKEN="hf_fake_token",
    )
    assert completed.returncode == 1, completed.stderr[-4000:]
    assert completed.stdout == quickstart_fast_run.stdout
    assert "Traceback" not in completed.stderr
    model_dir = output_dir / "runs" / "bottleneck"
    error = completed.stderr.splitlines()[-1]
    assert error.startswith(f"zeetad quickstart: error: could not push {model_dir} to the Hub repository 'user/x';")
    assert "the folder is kept (ConnectError" in error and completed.stderr.count("error:") == 1
    assert stamps == file_stamps(output_dir)
    assert all((output_dir / name).exists() for name in REWRITTEN_BY_EVERY_RUN)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"hub_model_id": "user/model"}, "`hub_model_id` ('user/model') names the repository of a push"),
        (
            {"push_to_hub": True, "settings": replace(fast_settings(), variants=("frozen",))},
            "`push_to_hub` uploads the 'bottleneck' model",
        ),
    ],
)
def test_impossible_push_is_refused_before_any_stage(tmp_path, arguments, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        run_quickstart(tmp_path / "quickstart", **arguments)
    assert not (tmp_path / "quickstart").exists()


@pytest.mark.slow
def test_stages_run_side_by_side_give_what_they_give_one_after_another(quickstart_fast_run, tmp_path):
    # Where there are 2+ cores, the fixture's run pretrains the CLIP in a thread while it writes the world, embeds two
    # videos at a time and trains the variants in parallel worker processes; the same command confined to one core
    # runs everything one after another in one process. Same code, threads and seeds: same bytes.
    cores = os.sched_getaffinity(0)
    if len(cores) < 2:
        pytest.skip("one core: the fixture's run trained the variants one after another too")
    completed = subprocess.run(
        [Path(sys.executable).with_name("zeetad"), "quickstart", "--fast", "--output_dir", tmp_path],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        preexec_fn=lambda: os.sched_setaffinity(0, {min(cores)}),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "workers=" not in completed.stderr  # trained one after another
    names = ["clip/model.safetensors", *(f"runs/{variant}/model.safetensors" for variant in fast_settings().variants)]
    for folder, pattern in (("world", "*.mp4"), ("features", "*.npy")):
        names += [path.relative_to(tmp_path).as_posix() for path in sorted((tmp_path / folder).rglob(pattern))]
    for name in names:
        assert (tmp_path / name).read_bytes() == (quickstart_fast_run.output_dir / name).read_bytes(), name


def test_ctrl_c_while_the_world_is_written_stops_the_clip_pretraining_beside_it_too(tmp_path):
    # On 2+ cores the CLIP pretrains in a thread while the world's videos are written: Ctrl-C must stop both at once,
    # leaving neither stage marked finished (the next run rebuilds them).
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: the CLIP pretrains after the world, not beside it")
    output_dir = tmp_path / "quickstart"
    # the default (slow) settings: the pretraining cannot finish before the interruption
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as stderr_file:
        # faulthandler: a child that does not stop is sent SIGABRT below, which prints every thread's stack
        server = subprocess.Popen(
            [CONSOLE_SCRIPT, "quickstart", "--output_dir", str(output_dir)],
            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"},
            stderr=stderr_file,
            text=True,
            # a test run started in the background of a non-interactive shell inherits SIGINT ignored, and Python
            # then installs no KeyboardInterrupt handler: the child gets the default, as under a terminal
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 120
        while not list((output_dir / "world").glob("videos/*.mp4")):
            assert server.poll() is None and time.monotonic() < deadline, "no world video within 120 s"
            time.sleep(0.2)
        time.sleep(2)  # the pretraining thread is past its image rendering or in it; either way it must stop
        interrupted = time.monotonic()
        server.send_signal(signal.SIGINT)
        try:
            status = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.send_signal(signal.SIGABRT)
            server.wait(timeout=30)
            pytest.fail(f"no exit within 60 s of Ctrl-C; the threads then:\n{stderr_path.read_text()[-8000:]}")
        stopped_after = time.monotonic() - interrupted
    finally:
        server.kill()
    stderr = stderr_path.read_text()
    assert status == 130, stderr[-3000:]
    assert stopped_after < 15, stopped_after  # one image or one step, then the stage ends
    assert "Traceback" not in stderr
    assert not (output_dir / "world" / "stage_settings.json").exists()
    assert not (output_dir / "clip" / "stage_settings.json").exists()
