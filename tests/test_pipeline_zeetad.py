"""The zero-shot-temporal-action-detection pipeline end to end: saved folders, streaming, windows, bad input, remote code."""

import json
import math
import os
import subprocess
import sys
import sysconfig
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from test_video_utils import BAD_VIDEO_ERRORS, make_bad_videos, write_video
from tiny_models import TINY_DETECTOR, save_tiny_clip
from transformers import pipeline

from zeetad_hf import (
    ZeetadFeatureExtractor,
    ZeetadForTemporalActionDetection,
    ZeetadProcessor,
    ZeetadTemporalActionDetectionOutput,
    ZeroShotTemporalActionDetectionPipeline,
    export_for_remote_code,
)


TASK = "zero-shot-temporal-action-detection"
LABELS = ["jumping", "diving"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer):
    """A tiny CLIP-only ZEETAD with a vision tower, saved with model.save_pretrained + processor.save_pretrained."""
    folder = tmp_path_factory.mktemp("checkpoint")
    save_tiny_clip(folder / "clip", tokenizer)
    torch.manual_seed(0)
    model = ZeetadForTemporalActionDetection.from_clip(str(folder / "clip"), load_vision=True, **TINY_DETECTOR).eval()
    extractor = ZeetadFeatureExtractor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = ZeetadProcessor(extractor, tokenizer)
    model.save_pretrained(folder / "zeetad")
    processor.save_pretrained(folder / "zeetad")
    return model, processor, folder / "zeetad"


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """10 seconds at 25 fps."""
    return write_video(tmp_path_factory.mktemp("videos") / "video.mp4", 25, 250)


@pytest.fixture(scope="module")
def detector(checkpoint):
    return pipeline(TASK, model=str(checkpoint[2]))


def decode_all_frames(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def as_arrays(detections: list[dict]) -> tuple[np.ndarray, list[str], np.ndarray]:
    scores = np.array([detection["score"] for detection in detections])
    segments = np.array([[detection["segment"]["start"], detection["segment"]["end"]] for detection in detections])
    return scores, [detection["label"] for detection in detections], segments


def test_pipeline_from_a_saved_folder_streams_the_video_like_the_model_run_by_hand(checkpoint, detector, video):
    model, processor, _ = checkpoint
    assert isinstance(detector, ZeroShotTemporalActionDetectionPipeline)
    batch_sizes = []
    detections = detector(
        video,
        candidate_labels=LABELS,
        threshold=0.0,
        top_k=5,
        frame_batch_size=4,
        progress_callback=batch_sizes.append,
    )
    # frames flow through the vision tower in chunks, never all at once, and each chunk reports progress
    assert batch_sizes == [4, 4, 2]
    assert 0 < len(detections) <= 5
    for detection in detections:
        assert set(detection) == {"score", "label", "segment"} and detection["label"] in LABELS
        assert all(type(value) is float for value in (detection["score"], *detection["segment"].values()))
        assert 0.0 <= detection["segment"]["start"] <= detection["segment"]["end"] <= 10.0
    scores, labels, segments = as_arrays(detections)
    assert (np.diff(scores) <= 0).all()

    # the same computation by hand: sample everything, embed at once, one forward, post-process
    inputs = processor(videos=video, text=LABELS)
    with torch.no_grad():
        clip_features = model.get_clip_features(inputs["pixel_values"][0])
        outputs = model(
            input_features=clip_features[None], input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        )
    (expected,) = processor.post_process_temporal_action_detection(
        outputs, inputs["video_metadata"], text_labels=LABELS, max_segments=5
    )
    assert inputs["video_metadata"][0]["duration"] == 10.0 and clip_features.shape[0] == 10
    assert labels == expected["text_labels"]
    np.testing.assert_allclose(scores, expected["scores"].numpy(), atol=1e-5)
    np.testing.assert_allclose(segments, expected["segments"].numpy(), atol=1e-4)


def test_a_list_of_videos_gives_a_list_of_results_for_every_input_kind(detector, video):
    with open(video, "rb") as file:
        results = detector(
            [
                video,
                file,
                {"frames": decode_all_frames(video), "fps": 25},
                {"clip_features": torch.randn(40, 16), "fps": 30, "feature_stride": 4, "duration": 5.5},
            ],
            candidate_labels="jumping, diving",
            threshold=0.0,
            top_k=3,
        )
    assert len(results) == 4 and all(isinstance(result, list) and len(result) == 3 for result in results)
    # a path, an open file and the decoded frames are the same video
    assert results[0] == results[1]
    np.testing.assert_allclose(as_arrays(results[2])[0], as_arrays(results[0])[0], atol=1e-6)
    np.testing.assert_allclose(as_arrays(results[2])[2], as_arrays(results[0])[2], atol=1e-4)
    # segments are clamped to the duration given with the features
    assert all(0.0 <= detection["segment"]["start"] <= detection["segment"]["end"] <= 5.5 for detection in results[3])


def test_saving_the_pipeline_writes_a_package_checkpoint(detector, tmp_path):
    detector.save_pretrained(tmp_path)
    assert "custom_pipelines" not in (tmp_path / "config.json").read_text()
    reloaded = pipeline(TASK, model=str(tmp_path))
    features = {"clip_features": torch.randn(12, 16), "fps": 1, "feature_stride": 1}
    kwargs = {"candidate_labels": LABELS, "threshold": 0.0, "top_k": 3}
    assert reloaded(features, **kwargs) == detector(features, **kwargs)


def test_a_model_needs_its_processor(checkpoint, tmp_path):
    model, processor, _ = checkpoint
    with pytest.raises(ValueError, match="found no `ZeetadProcessor`.*`tokenizer=` and `feature_extractor=`"):
        pipeline(TASK, model=model)
    with pytest.raises(ValueError, match="found no `ZeetadProcessor`"):
        ZeroShotTemporalActionDetectionPipeline(model=model)
    # a folder with the weights but without the processor files names the folder and the missing files
    model.save_pretrained(tmp_path / "weights_only")
    with pytest.raises(ValueError, match=f"for {tmp_path / 'weights_only'}.*processor_config.json"):
        pipeline(TASK, model=str(tmp_path / "weights_only"))


def test_pipeline_without_a_model_says_what_to_pass():
    with pytest.raises(ValueError, match="has no default model: pass `model=`"):
        pipeline(TASK)


def test_tokenizer_and_feature_extractor_objects_replace_the_processor(checkpoint):
    model, processor, _ = checkpoint
    features = {
        "clip_features": torch.randn(30, 16, generator=torch.Generator().manual_seed(0)),
        "fps": 2,
        "feature_stride": 1,
    }
    from_parts = pipeline(
        TASK, model=model, tokenizer=processor.tokenizer, feature_extractor=processor.feature_extractor
    )
    assert isinstance(from_parts.processor, ZeetadProcessor)
    # the same model object: a model loaded from the folder may differ in the last bits (its weights keep the file's
    # alignment, and some CPUs' matrix kernels round differently then)
    from_processor = pipeline(TASK, model=model, processor=processor)
    assert from_parts(features, candidate_labels=LABELS, threshold=0.0) == from_processor(
        features, candidate_labels=LABELS, threshold=0.0
    )


def test_per_video_labels_as_rows_or_lists(detector):
    generator = torch.Generator().manual_seed(1)
    videos = [
        {"clip_features": torch.randn(units, 16, generator=generator), "fps": 2, "feature_stride": 1}
        for units in (30, 12)
    ]
    label_lists = [LABELS, ["swimming", "running"]]
    one_by_one = [
        detector(video, candidate_labels=labels, threshold=0.0) for video, labels in zip(videos, label_lists)
    ]
    assert {detection["label"] for detection in one_by_one[1]} <= {"swimming", "running"} and one_by_one[1]
    assert detector(videos, candidate_labels=label_lists, threshold=0.0) == one_by_one
    rows = [{"video": video, "candidate_labels": labels} for video, labels in zip(videos, label_lists)]
    assert detector(rows, threshold=0.0) == one_by_one
    assert detector(rows[1], threshold=0.0) == one_by_one[1]
    # a row without labels takes the call's labels; a comma-separated string is a list of labels
    assert detector([{"video": videos[0]}], candidate_labels="jumping, diving", threshold=0.0) == one_by_one[:1]
    assert detector([], candidate_labels=LABELS) == []
    with pytest.raises(ValueError, match="2 label lists for 1 video"):
        detector(videos[:1], candidate_labels=label_lists)
    with pytest.raises(ValueError, match=r"Unknown key\(s\) \['labels'\]"):
        detector({"video": videos[0], "labels": LABELS})


def test_precomputed_features_with_a_model_instance_and_its_processor(make_config, tokenizer):
    model = ZeetadForTemporalActionDetection(make_config(localization_feature_dim=None)).eval()
    processor = ZeetadProcessor(ZeetadFeatureExtractor(), tokenizer, prompt_templates=["a video of a person {}."])
    detector = pipeline(TASK, model=model, processor=processor)
    features = {
        "clip_features": torch.randn(30, 16),
        "fps": 30,
        "feature_stride": 4,
        "window_size": 16,
        "duration": 4.2,
    }
    detections = detector(features, candidate_labels=LABELS, threshold=0.0, hypothesis_template="the person {}")
    inputs = processor(features=features, text=LABELS, prompt_templates=["the person {}"])
    with torch.no_grad():
        outputs = model(**{key: value for key, value in inputs.items() if key != "video_metadata"})
    (expected,) = processor.post_process_temporal_action_detection(
        outputs, inputs["video_metadata"], text_labels=LABELS
    )
    scores, labels, segments = as_arrays(detections)
    assert labels == expected["text_labels"] and len(labels) > 0
    np.testing.assert_allclose(scores, expected["scores"].numpy(), atol=1e-6)
    np.testing.assert_allclose(segments, expected["segments"].numpy(), atol=1e-5)
    assert segments.max() <= 4.2


def install_fake_detector(model, actions: list[tuple[int, int, int]]) -> list[int]:
    """Replace the model's forward (and vision tower) by a detector that finds `actions` perfectly.

    `actions` are `(class_index, first_unit, end_unit)` in units of the whole video. Frame embeddings carry their unit
    index in channel 0, so each window's forward knows which units it sees; it reports every action it overlaps,
    clipped to the window (as a real model sees only the window), with high actionness and class probability, and
    padding queries with ~0 of both. Returns the list that records every window length.
    """
    window_lengths, next_unit = [], [0]

    def get_clip_features(pixel_values):
        units = torch.arange(next_unit[0], next_unit[0] + len(pixel_values), dtype=torch.float32)
        next_unit[0] += len(pixel_values)
        return torch.cat([units[:, None], torch.zeros(len(units), 15)], dim=1)

    def forward(input_features, text_embeds=None, **kwargs):
        first_unit, length = int(input_features[0, 0, 0].round()), input_features.shape[1]
        window_lengths.append(length)
        num_queries, num_classes = len(actions) + 2, text_embeds.shape[0]
        logits = torch.full((1, num_queries, num_classes), -12.0)
        actionness = torch.full((1, num_queries), -12.0)
        segments = torch.tensor([[0.5, 0.05]]).repeat(1, num_queries, 1)
        for query, (class_index, start, end) in enumerate(actions):
            start, end = max(start - first_unit, 0), min(end - first_unit, length)
            if start < end:
                segments[0, query] = torch.tensor([(start + end) / 2 / length, (end - start) / length])
                actionness[0, query] = 8.0
                logits[0, query, class_index] = 12.0
        return ZeetadTemporalActionDetectionOutput(
            logits=logits,
            class_probabilities=logits.sigmoid(),  # the model's (default) sigmoid head
            actionness_logits=actionness,
            pred_segments=segments,
            feature_lengths=torch.tensor([length]),
        )

    model.get_clip_features, model.forward = get_clip_features, forward
    return window_lengths


@pytest.mark.parametrize("max_units", [None, 100])
def test_windows_merge_into_one_detection_per_action_with_exact_times(make_config, tokenizer, max_units):
    model = ZeetadForTemporalActionDetection(make_config(localization_feature_dim=None)).eval()
    processor = ZeetadProcessor(ZeetadFeatureExtractor(), tokenizer)
    detector = pipeline(TASK, model=model, processor=processor)
    # class 0 straddles the end of the first window (units 0-99); class 1 lies in the overlap of the last two windows
    window_lengths = install_fake_detector(model, [(0, 90, 110), (1, 160, 170)])
    features = {"clip_features": torch.cat([torch.arange(250.0)[:, None], torch.zeros(250, 15)], dim=1)}
    features.update(fps=2.0, feature_stride=1, window_size=1)
    detections = detector(features, candidate_labels=LABELS, threshold=0.5, max_units=max_units, window_overlap=0.25)
    assert window_lengths == ([250] if max_units is None else [100, 100, 100])
    assert [(detection["label"], detection["segment"]) for detection in detections] == [
        ("jumping", {"start": pytest.approx(45.0, abs=1e-4), "end": pytest.approx(55.0, abs=1e-4)}),
        ("diving", {"start": pytest.approx(80.0, abs=1e-4), "end": pytest.approx(85.0, abs=1e-4)}),
    ]


def test_a_fixed_length_processor_resizes_the_video_and_times_stay_seconds(make_config, tokenizer):
    model = ZeetadForTemporalActionDetection(make_config(localization_feature_dim=None)).eval()
    processor = ZeetadProcessor(ZeetadFeatureExtractor(fixed_num_units=50), tokenizer)
    detector = pipeline(TASK, model=model, processor=processor)
    # actions in units of the resized video: 250 units at 2 per second become 50 units of 2.5 s
    window_lengths = install_fake_detector(model, [(0, 9, 11), (1, 40, 44)])
    features = {"clip_features": torch.zeros(250, 16), "fps": 2.0, "feature_stride": 1, "window_size": 1}
    detections = detector(features, candidate_labels=LABELS, threshold=0.5)
    assert window_lengths == [50]
    assert [(detection["label"], detection["segment"]) for detection in detections] == [
        ("jumping", {"start": pytest.approx(22.5, abs=1e-4), "end": pytest.approx(27.5, abs=1e-4)}),
        ("diving", {"start": pytest.approx(100.0, abs=1e-4), "end": pytest.approx(110.0, abs=1e-4)}),
    ]


@pytest.mark.parametrize("fps", [24, Fraction(30000, 1001)], ids=["24", "29.97"])
def test_windowed_video_times_are_seconds_of_the_source(checkpoint, tmp_path, fps):
    num_frames = round(12 * fps)
    path = write_video(tmp_path / "video.mp4", fps, num_frames)
    duration = float(num_frames / fps)
    # a private copy of the checkpoint: its forward and vision tower are replaced below
    model = ZeetadForTemporalActionDetection.from_pretrained(checkpoint[2]).eval()
    detector = pipeline(TASK, model=model, processor=checkpoint[1])
    # at 2.5 units per second unit i covers [i / 2.5, (i + 1) / 2.5): 30 units (31 at 29.97 fps), windows of 12 units;
    # class 1 straddles the end of the first window, class 0 runs past the end of the video
    window_lengths = install_fake_detector(model, [(1, 10, 14), (0, 27, 31)])
    detections = detector(path, candidate_labels=LABELS, threshold=0.5, sampling_fps=2.5, max_units=12)
    num_units = math.ceil(duration * 2.5)
    assert len(window_lengths) == len(checkpoint[1].feature_extractor.temporal_windows(num_units, 12)) >= 3
    assert set(window_lengths) == {12}
    assert sorted(
        (detection["segment"]["start"], detection["segment"]["end"], detection["label"]) for detection in detections
    ) == [
        (pytest.approx(4.0, abs=1e-4), pytest.approx(5.6, abs=1e-4), "diving"),
        (pytest.approx(10.8, abs=1e-4), pytest.approx(min(31 / 2.5, duration), abs=1e-4), "jumping"),
    ]


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory):
    return make_bad_videos(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("kind", sorted(BAD_VIDEO_ERRORS))
def test_bad_video_files_raise_errors_naming_the_file(detector, bad_videos, kind):
    error_type, message = BAD_VIDEO_ERRORS[kind]
    with pytest.raises(error_type, match=message) as raised:
        detector(bad_videos[kind], candidate_labels=LABELS)
    assert bad_videos[kind].name in str(raised.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threshold": -0.1}, r"`threshold` must be a number in \[0, 1\], got -0.1"),
        ({"threshold": 1.5}, r"`threshold` must be a number in \[0, 1\], got 1.5"),
        ({"top_k": 0}, "`top_k` must be an integer >= 1, got 0"),
        ({"top_k": -3}, "`top_k` must be an integer >= 1, got -3"),
        ({"top_k": 2.5}, "`top_k` must be an integer >= 1, got 2.5"),
        ({"sampling_fps": 0}, "`sampling_fps` must be a finite positive number, got 0"),
        ({"sampling_fps": -1.0}, "`sampling_fps` must be a finite positive number, got -1.0"),
        ({"sampling_fps": float("inf")}, "`sampling_fps` must be a finite positive number, got inf"),
        ({"frame_batch_size": 0}, "`frame_batch_size` must be an integer >= 1"),
        ({"max_units": 0}, "`max_units` must be a positive integer"),
        ({"window_overlap": 1.0}, r"`window_overlap` must be a number in \[0, 1\)"),
        ({"batch_size": 2}, "`batch_size=2` is not supported"),
        ({"candidate_labels": []}, "non-empty list"),
        ({"candidate_labels": ""}, "Candidate label 0 is blank"),
        ({"candidate_labels": ["jumping", "jumping"]}, "Duplicate candidate labels"),
        ({"candidate_labels": "jumping, Jumping"}, "Duplicate candidate labels"),
        ({"candidate_labels": ["jumping", 7]}, "Candidate label 1 is a int"),
        ({"candidate_labels": None}, "`candidate_labels` are required"),
        ({"hypothesis_template": "a video"}, "exactly one '{}'"),
        ({"progress_callback": 3}, "`progress_callback` must be callable"),
    ],
)
def test_bad_parameters_raise_before_any_decoding(detector, video, kwargs, message):
    kwargs = {"candidate_labels": LABELS, **kwargs}
    with pytest.raises(ValueError, match=message):
        detector(video, **kwargs)


@pytest.mark.parametrize(
    "video_input, message",
    [
        ({"frames": np.zeros((8, 40, 40, 3), np.uint8), "fps": 0}, "raw frames: `fps` must be a positive number"),
        ({"frames": np.zeros((8, 40, 40, 3), np.uint8), "fps": -5}, "raw frames: `fps` must be a positive number"),
        ({"clip_features": np.zeros((8, 16)), "fps": 0, "feature_stride": 4}, r"\['fps'\]` must be a number > 0"),
        ({"clip_features": np.zeros((8, 16)), "fps": -30, "feature_stride": 4}, r"\['fps'\]` must be a number > 0"),
        (np.zeros((8, 40, 40, 3), np.uint8), "Each video must be a path"),
    ],
)
def test_bad_video_dicts_raise(detector, video_input, message):
    with pytest.raises(ValueError, match=message):
        detector(video_input, candidate_labels=LABELS)


def test_raw_video_needs_a_vision_tower(make_config, tokenizer, video):
    model = ZeetadForTemporalActionDetection(make_config(localization_feature_dim=None)).eval()
    detector = pipeline(TASK, model=model, processor=ZeetadProcessor(ZeetadFeatureExtractor(), tokenizer))
    with pytest.raises(ValueError, match="no CLIP vision tower"):
        detector(video, candidate_labels=LABELS)


REMOTE_SCRIPT = """
import json, sys
try:
    import zeetad_hf
except ImportError:
    pass
else:
    sys.exit("zeetad_hf is importable: the test environment is not clean")
# inference needs only what the export declares (torch, transformers, peft, numpy, av): scipy is for training only
sys.modules["scipy"] = None
import torch
torch.set_num_threads(1)
from transformers import AutoModel, pipeline
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
detector = pipeline("zero-shot-temporal-action-detection", model=sys.argv[1], trust_remote_code=True)
features = {"clip_features": torch.load(sys.argv[3]), "fps": 30, "feature_stride": 4}
results = detector([sys.argv[2], features], candidate_labels=["jumping", "diving"], threshold=0.0, top_k=4)
print(json.dumps({"module": type(detector).__module__, "model_module": type(model).__module__, "results": results}))
"""


def test_remote_code_export_runs_where_zeetad_hf_is_not_installed(checkpoint, detector, video, tmp_path):
    model, processor, _ = checkpoint
    export_dir = tmp_path / "remote"
    files = export_for_remote_code(model, processor, export_dir)
    modules = ("configuration", "modeling", "loss", "post_processing", "feature_extraction", "processing", "pipeline")
    code_files = {f"{module}_zeetad.py" for module in modules}
    code_files |= {"segment_utils.py", "video_utils.py", "frame_embedding.py", "file_utils.py"}
    assert {file for file in files if file.endswith(".py")} == code_files
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= set(files)
    config = json.loads((export_dir / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_zeetad.ZeetadConfig",
        "AutoModel": "modeling_zeetad.ZeetadForTemporalActionDetection",
    }
    assert config["custom_pipelines"][TASK] == {
        "impl": "pipeline_zeetad.ZeroShotTemporalActionDetectionPipeline",
        "pt": ["AutoModel"],
        "type": "multimodal",
    }
    processor_config = json.loads((export_dir / "processor_config.json").read_text())
    assert processor_config["auto_map"] == {"AutoProcessor": "processing_zeetad.ZeetadProcessor"}
    assert processor_config["feature_extractor"]["auto_map"]["AutoFeatureExtractor"] == (
        "feature_extraction_zeetad.ZeetadFeatureExtractor"
    )
    # where zeetad_hf is installed, the export loads like a package checkpoint: no `trust_remote_code` needed
    installed = pipeline(TASK, model=str(export_dir))
    assert type(installed) is ZeroShotTemporalActionDetectionPipeline
    assert type(installed.model) is ZeetadForTemporalActionDetection
    assert "custom_pipelines" not in installed.model.config.to_dict()
    # the export leaves no trace on the live objects: a plain save is still a package checkpoint
    model.save_pretrained(tmp_path / "plain")
    processor.save_pretrained(tmp_path / "plain")
    assert "auto_map" not in (tmp_path / "plain" / "config.json").read_text()
    assert "custom_pipelines" not in (tmp_path / "plain" / "config.json").read_text()
    for name in ("processor_config.json", "tokenizer_config.json"):
        assert "auto_map" not in (tmp_path / "plain" / name).read_text()

    clip_features = torch.randn(24, 16)
    torch.save(clip_features, tmp_path / "features.pt")
    # `-S` skips site-packages' .pth files, and with them the editable install's import hook; the dependencies stay
    # importable through PYTHONPATH, and the working directory is outside the repository.
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "OMP_NUM_THREADS": "1",
    }
    completed = subprocess.run(
        [sys.executable, "-S", "-c", REMOTE_SCRIPT, str(export_dir), str(video), str(tmp_path / "features.pt")],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    remote = json.loads(completed.stdout.strip().splitlines()[-1])
    assert remote["module"].startswith("transformers_modules.")
    assert remote["model_module"].startswith("transformers_modules.")
    features = {"clip_features": clip_features, "fps": 30, "feature_stride": 4}
    local = detector([video, features], candidate_labels=LABELS, threshold=0.0, top_k=4)
    for remote_result, local_result in zip(remote["results"], local):
        assert as_arrays(remote_result)[1] == as_arrays(local_result)[1]
        np.testing.assert_allclose(as_arrays(remote_result)[0], as_arrays(local_result)[0], atol=1e-6)
        np.testing.assert_allclose(as_arrays(remote_result)[2], as_arrays(local_result)[2], atol=1e-5)


def test_class_prompts_are_encoded_once_per_class_set(checkpoint):
    model, processor, _ = checkpoint
    detector = pipeline(TASK, model=model, processor=processor)
    text_tower_calls = []
    hook = detector.model.text_encoder.register_forward_hook(lambda *args: text_tower_calls.append(1))
    features = [{"clip_features": torch.randn(30, 16), "fps": 2, "feature_stride": 1} for _ in range(3)]
    try:
        first = detector(features, candidate_labels=LABELS, threshold=0.0)
        assert len(text_tower_calls) == 1  # three videos, one class set
        detector(features[0], candidate_labels=LABELS[::-1], threshold=0.0)
        assert len(text_tower_calls) == 2  # another class set (order matters: it is another prompt tensor)
        again = detector(features, candidate_labels=LABELS, threshold=0.0)
        assert len(text_tower_calls) == 3
    finally:
        hook.remove()
    assert first == again  # the cached embeddings give the same detections as freshly computed ones


def test_bfloat16_pipeline_finds_what_float32_finds(checkpoint, detector, video):
    half_detector = pipeline(TASK, model=str(checkpoint[2]), dtype=torch.bfloat16)
    assert half_detector.model.dtype == torch.bfloat16
    expected = detector(video, candidate_labels=LABELS, threshold=0.0, top_k=3)
    # two more: a near-tie at rank 3 may swap under bfloat16 rounding
    detections = half_detector(video, candidate_labels=LABELS, threshold=0.0, top_k=5)
    assert len(expected) == 3 and len(detections) == 5
    # 10 units over 10 seconds: one unit is one second
    for wanted in expected:
        assert any(
            found["label"] == wanted["label"]
            and abs(found["segment"]["start"] - wanted["segment"]["start"]) <= 1.0
            and abs(found["segment"]["end"] - wanted["segment"]["end"]) <= 1.0
            and abs(found["score"] - wanted["score"]) <= 0.02
            for found in detections
        ), (wanted, detections)
