import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from urllib.request import urlopen

import pytest
import test_hub
from huggingface_hub import ModelCard

from zeetad_hf.quickstart import VARIANTS, fast_settings, run_quickstart


HUB_REPO_ID = "user/zeetad-quickstart"
# test_hub.py's fixture, shared: tests/fakehub.py on a free loopback port, stopped after this module
hub_endpoint = test_hub.hub_endpoint


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    """One `--fast` quickstart (about 45 s on 2 cores): its folder and returned results."""
    output_dir = tmp_path_factory.mktemp("quickstart")
    return output_dir, run_quickstart(output_dir, fast=True)


def test_fast_quickstart_beats_chance(fast_run):
    output_dir, results = fast_run
    for name in ("world/annotations.json", "world/split.json", "clip/model.safetensors", "results.md"):
        assert (output_dir / name).exists(), name
    demo = json.loads((output_dir / "detections.json").read_text())
    assert demo["candidate_labels"] == results["unseen"] and demo["ground_truth"]
    assert all(detection["label"] in results["unseen"] for detection in demo["detections"])
    assert (output_dir / "timeline.png").read_bytes().startswith(b"\x89PNG")
    saved = json.loads((output_dir / "results.json").read_text())
    assert set(saved["variants"]) == set(fast_settings().variants) <= set(VARIANTS)
    chance = saved["variants"]["random_text"]["eval_unseen_average_mAP"]
    # both classification heads beat chance
    for variant, head in (("bottleneck", "sigmoid"), ("bottleneck_softmax", "softmax")):
        assert saved["variants"][variant]["classification_head"] == head
        assert saved["variants"][variant]["eval_unseen_average_mAP"] > chance, variant
    assert saved["table"] == results["table"]


def test_fast_quickstart_measures_the_open_vocabulary_behaviour(fast_run):
    output_dir, results = fast_run
    for variant, result in results["variants"].items():
        report = result["open_vocabulary"]
        generalized = report["generalized"]
        rates = [*report["off_list"]["mean"], *report["on_list"]["mean"]]
        for value in (generalized["seen_average_mAP"], generalized["unseen_average_mAP"], *rates):
            assert 0.0 <= value <= 1.0, variant
        assert generalized["harmonic_mean"] <= max(generalized["seen_average_mAP"], generalized["unseen_average_mAP"])
        for kind in ("off_list", "on_list"):
            assert set(report[kind]["per_class"]) == set(results["unseen"])
            # a higher score threshold never detects more
            assert report[kind]["mean"] == sorted(report[kind]["mean"], reverse=True)
        assert 0 < report["unseen_only_videos"]["num_videos"] < 36  # the fast world has 36 validation videos
    # one table row per variant, with its head and every measure
    rows = [line for line in results["table"].splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0].strip("| ") for row in rows] == list(results["variants"])
    assert all(len(row.split(" | ")) == 9 for row in rows)


def test_model_folder_has_a_card_with_the_measured_results(fast_run):
    output_dir, results = fast_run
    model_dir = output_dir / "runs" / "bottleneck"
    assert results["model_dir"] == str(model_dir)
    assert {"config.json", "model.safetensors", "processor_config.json"} <= {path.name for path in model_dir.iterdir()}
    # only the Hub-ready model gets a card
    assert [path.parent.name for path in (output_dir / "runs").glob("*/README.md")] == ["bottleneck"]

    measured = json.loads((output_dir / "results.json").read_text())["variants"]["bottleneck"]
    card = ModelCard.load(model_dir / "README.md")
    entry = card.data.to_dict()["model-index"][0]
    assert entry["name"] == "zeetad-quickstart-bottleneck"
    metrics = {metric["name"]: metric["value"] for metric in entry["results"][0]["metrics"]}
    assert metrics["average mAP"] == round(100 * measured["eval_unseen_average_mAP"], 2)
    for threshold, value in zip(measured["tiou_thresholds"], measured["eval_unseen_mAP"]):
        assert metrics[f"mAP@{threshold:g}"] == round(100 * value, 2)
    dataset = entry["results"][0]["dataset"]
    assert (dataset["type"], dataset["split"]) == ("synthetic_world", "validation")
    assert (dataset["args"]["seen_classes"], dataset["args"]["unseen_classes"]) == (results["seen"], results["unseen"])
    assert "small CLIP frame embeddings at 2 fps" in card.text
    # the model holds its CLIP vision tower (the demo runs it on an mp4), and the card says it takes video files
    assert 'detector("video.mp4"' in card.text and "Raw video without" not in card.text
    assert card.data.base_model is None and not re.search(r"paper reports \d", card.text)


def test_cached_run_pushes_the_model_folder_without_rebuilding(fast_run, hub_endpoint, tmp_path):
    output_dir, results = fast_run
    stamps = {path: path.stat().st_mtime_ns for path in output_dir.rglob("stage_settings.json")}
    # huggingface_hub reads the endpoint at import time and this process is offline (conftest): push from a child.
    environment = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "HF_HOME")}
    environment.update(
        HF_ENDPOINT=hub_endpoint,
        HF_TOKEN="hf_fake_token",
        HF_HUB_DISABLE_XET="1",
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        OMP_NUM_THREADS="1",
    )
    command = ["quickstart", "--fast", "--output_dir", str(output_dir), "--push_to_hub", "--hub_model_id", HUB_REPO_ID]
    completed = subprocess.run(
        [sys.executable, "-m", "zeetad_hf.cli", *command], env=environment, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    # every stage was reused (nothing rebuilt) and the table printed
    assert stamps == {path: path.stat().st_mtime_ns for path in output_dir.rglob("stage_settings.json")}
    assert results["table"] in completed.stdout
    # stage 4 has a progress bar over the variants, naming the current one
    assert re.search(r"4/5 training: 100%.* 3/3 .*variant=bottleneck_softmax", completed.stderr), completed.stderr[
        -2000:
    ]
    # the pipeline demo runs again (it is not cached) with its own bar, which reaches every sampled frame
    assert re.search(r"5/5 detection: 100%.* (\d+)/\1 ", completed.stderr), completed.stderr[-2000:]

    with urlopen(f"{hub_endpoint}/api/models/{HUB_REPO_ID}") as response:
        pushed = {sibling["rfilename"] for sibling in json.load(response)["siblings"]}
    assert {"config.json", "model.safetensors", "README.md", "processor_config.json"} <= pushed
    # the model folder as it is, nothing from the other stages
    assert pushed == {path.name for path in (output_dir / "runs" / "bottleneck").iterdir()}
    with urlopen(f"{hub_endpoint}/{HUB_REPO_ID}/resolve/main/README.md") as response:
        assert response.read() == (output_dir / "runs" / "bottleneck" / "README.md").read_bytes()


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
