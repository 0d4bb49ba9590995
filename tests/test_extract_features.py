"""examples/extract_features.py: per-video CLIP features, resumable, split across two real processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from zeetad_hf import VideoFrameSampler, ZeetadFeatureExtractor
from zeetad_hf.frame_embedding import embed_video_frames


SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "extract_features.py"
DURATIONS = {"a": 3.0, "b": 5.0, "c": 2.0}


def write_video(path: Path, seconds: float, fps: int = 10, size: int = 48) -> None:
    rng = np.random.default_rng(len(path.name))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for _ in range(int(seconds * fps)):
            frame = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("extract")
    (root / "videos" / "sub").mkdir(parents=True)
    for name, seconds in DURATIONS.items():
        write_video(root / "videos" / ("sub" if name == "c" else "") / f"{name}.mp4", seconds)
    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4, image_size=32, patch_size=8,
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    CLIPVisionModelWithProjection(config).save_pretrained(root / "clip")
    return root


def run_script(setup, output_dir, launcher=(sys.executable,)):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    arguments = ["--videos_dir", str(setup / "videos"), "--output_dir", str(output_dir)]
    arguments += ["--clip_model", str(setup / "clip"), "--sampling_fps", "2", "--frame_batch_size", "4"]
    return subprocess.run(
        [*launcher, str(SCRIPT), *arguments], env=env, capture_output=True, text=True, timeout=300, check=True
    )


def test_features_match_the_pipeline_embedding_and_rerun_skips(setup, tmp_path):
    output = tmp_path / "features"
    run_script(setup, output)
    vision = CLIPVisionModelWithProjection.from_pretrained(setup / "clip").eval()
    extractor = ZeetadFeatureExtractor(
        sampling_fps=2.0, size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    for name, seconds in DURATIONS.items():
        features = np.load(output / f"{name}.npy")
        metadata = json.loads((output / f"{name}.json").read_text())
        assert features.shape == (int(seconds * 2), 16) and features.dtype == np.float32
        assert metadata["fps"] == 2.0 and metadata["feature_stride"] == 1 and metadata["window_size"] == 1
        assert metadata["duration"] == pytest.approx(seconds) and metadata["num_units"] == features.shape[0]
        source = setup / "videos" / ("sub" if name == "c" else "") / f"{name}.mp4"
        with torch.no_grad():
            expected = embed_video_frames(
                VideoFrameSampler(source, 2.0), extractor, lambda pixels: vision(pixel_values=pixels).image_embeds
            )
        np.testing.assert_allclose(features, expected.numpy(), rtol=1e-5, atol=1e-5)
    assert not [name for name in os.listdir(output) if name.endswith(".tmp")]

    # A second run skips every finished video and leaves the files untouched.
    before = {name: os.stat(output / name).st_mtime_ns for name in os.listdir(output)}
    result = run_script(setup, output)
    assert "0 extracted, 3 skipped" in result.stdout
    assert {name: os.stat(output / name).st_mtime_ns for name in os.listdir(output)} == before


def test_an_unfinished_video_is_redone(setup, tmp_path):
    output = tmp_path / "features"
    run_script(setup, output)
    # Simulate a kill after the features but before the metadata of "b", plus a stray temporary file.
    (output / "b.json").unlink()
    (output / ".b.npy.123.tmp").write_bytes(b"partial")
    result = run_script(setup, output)
    assert "1 extracted, 2 skipped" in result.stdout
    assert json.loads((output / "b.json").read_text())["num_units"] == 10


def test_two_processes_split_the_videos(setup, tmp_path):
    output = tmp_path / "features"
    launcher = (sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2")
    launcher += ("--main_process_port", "0")
    result = run_script(setup, output, launcher)
    counts = [
        int(line.split(": ")[1].split(" extracted")[0]) for line in result.stdout.splitlines() if "extracted" in line
    ]
    assert sorted(counts) == [1, 2], result.stdout
    assert sorted(name for name in os.listdir(output) if name.endswith(".json")) == ["a.json", "b.json", "c.json"]
