"""Two real CPU processes run examples/train.py with the launch line documented in examples/README.md."""

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from fakehub import serve_in_subprocess
from test_training import TRAIN_SCRIPT, script_arguments, subprocess_env, write_tiny_benchmark

from zeetad_hf.training import DEBUG_DIR, RESULTS_NAME


ACCELERATE = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
REPO_ID = "user/zeetad-tiny-2proc"


@pytest.fixture
def hub_endpoint():
    """tests/fakehub.py (a local stand-in for the Hub API) on a free port of 127.0.0.1."""
    with serve_in_subprocess() as endpoint:
        yield endpoint


@pytest.mark.skipif(ACCELERATE is None, reason="the `accelerate` command is not installed")
def test_two_cpu_processes_split_the_data_and_gather_each_video_once(tmp_path, hub_endpoint):
    # 8 training videos: each process takes 4 (no padding); 5 test videos with batch 1: Accelerate pads the second
    # process with a repeated video, which gather_for_metrics must drop.
    benchmark = write_tiny_benchmark(tmp_path / "data", num_train=8, num_eval=5)
    output_dir = tmp_path / "run"
    arguments = script_arguments(
        benchmark,
        output_dir,
        gradient_accumulation_steps="1",
        num_train_epochs="1",
        checkpointing_steps="2",  # 4 steps: step_2 mid-epoch, step_4 after the evaluation
        debug_data_log="true",
        push_to_hub="true",
        hub_model_id=REPO_ID,
    )
    # The Hub client reads these at import time: only the child processes talk to the local stand-in Hub.
    env = {key: value for key, value in subprocess_env().items() if key != "HF_HUB_OFFLINE"}
    env.update(HF_ENDPOINT=hub_endpoint, HF_TOKEN="hf_fake_token", HF_HUB_DISABLE_XET="1")
    # The documented CPU launch line (`--cpu --num_processes 2` would silently run a single process), with the
    # launcher's mixed precision, which train.py follows when its own flag is not given.
    command = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", "0"]
    command += ["--mixed_precision", "bf16"]
    completed = subprocess.run(
        [*command, str(TRAIN_SCRIPT), *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]

    logs = [json.loads((output_dir / DEBUG_DIR / f"rank_{rank}.json").read_text()) for rank in (0, 1)]
    assert [log["num_processes"] for log in logs] == [2, 2]
    assert [log["process_index"] for log in logs] == [0, 1]
    assert [log["mixed_precision"] for log in logs] == ["bf16", "bf16"]
    seen_by_rank = [log["train_video_ids"]["0"] for log in logs]
    assert len(seen_by_rank[0]) == len(seen_by_rank[1]) == 4
    assert not set(seen_by_rank[0]) & set(seen_by_rank[1])
    assert len(set(seen_by_rank[0]) | set(seen_by_rank[1])) == 8

    gathered = logs[0]["eval_gathered_video_ids"]["0"]
    database = json.loads(Path(benchmark["annotations"]).read_text())["database"]
    test_videos = sorted(video_id for video_id, video in database.items() if video["subset"] == "Test")
    assert len(test_videos) == 5
    assert sorted(gathered) == test_videos  # every test video exactly once: no duplicated tail
    results = json.loads((output_dir / RESULTS_NAME).read_text())
    assert [record["epoch"] for record in results["epochs"]] == [0]
    predictions = json.loads((output_dir / "eval_predictions.json").read_text())["results"]
    assert sorted(predictions) == test_videos
    assert (output_dir / "model.safetensors").is_file()

    # Both processes wrote their random states into each checkpoint before it was published.
    for step in ("step_2", "step_4"):
        assert {"random_states_0.pkl", "random_states_1.pkl"} <= {path.name for path in (output_dir / step).iterdir()}
    # The main process pushed the final folder once, without checkpoints or debug logs.
    with urllib.request.urlopen(f"{hub_endpoint}/api/models/{REPO_ID}") as response:
        files = {sibling["rfilename"] for sibling in json.load(response)["siblings"]}
    assert {
        "model.safetensors",
        "config.json",
        "processor_config.json",
        RESULTS_NAME,
        "eval_predictions.json",
    } <= files
    assert not [name for name in files if name.startswith(("step_", "epoch_", DEBUG_DIR, ".tmp"))]
