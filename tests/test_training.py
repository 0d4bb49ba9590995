"""Training: collate (targets, crops, class indices), a tiny end-to-end run, atomic checkpoints, kill-and-resume."""

import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from datasets import Dataset
from mount_namespace import MOUNTS_AVAILABLE, MOUNTS_REASON, run_with_mounted_folder, run_with_small_disk
from safetensors.torch import load_file, save_file
from tiny_models import TINY_DETECTOR, save_tiny_clip, tiny_zeetad_config
from torch.utils.data import DataLoader

from zeetad_hf import (
    ZeetadFeatureExtractor,
    ZeetadForTemporalActionDetection,
    ZeetadProcessor,
    ZeetadTemporalActionDetectionOutput,
    build_clip_tokenizer,
    normalized_segments_to_seconds,
    post_process_temporal_action_detection,
    seconds_to_normalized_segments,
)
from zeetad_hf.data import VIDEO_FEATURES, to_ground_truth
from zeetad_hf.evaluation import instance_detection_rate
from zeetad_hf.training import (
    RESULTS_NAME,
    TEMPORARY_PREFIX,
    TRAINER_STATE_NAME,
    ZeetadDataCollator,
    ZeetadTrainingArguments,
    encode_class_prompts,
    find_latest_checkpoint,
    list_checkpoints,
    predict,
    sample_training_prompts,
    train,
)
from zeetad_hf.zero_shot_splits import load_zero_shot_split


REPOSITORY = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPOSITORY / "examples" / "train.py"
SEEN = ["jumping", "running", "swimming"]
UNSEEN = ["diving", "throwing"]
LOCALIZATION_DIM, CLIP_DIM = 24, 16  # tiny config: localization_feature_dim=24, CLIP projection_dim=16


def video_row(directory: Path, video_id: str, num_units: int, annotations, subset="train", clip_units=None, **timing):
    """One dataset row with random feature files written to `directory` (CLIP features optionally of another length)."""
    generator = np.random.default_rng(zlib.crc32(video_id.encode()))
    feature_path = directory / f"{video_id}.npy"
    np.save(feature_path, generator.standard_normal((num_units, LOCALIZATION_DIM)).astype(np.float32))
    clip_path = directory / f"{video_id}_clip.npy"
    np.save(clip_path, generator.standard_normal((clip_units or num_units, CLIP_DIM)).astype(np.float32))
    timing = {"fps": 10.0, "feature_stride": 2.0, "window_size": 4.0, **timing}
    return {
        "video_id": video_id,
        "subset": subset,
        "duration": (num_units * timing["feature_stride"] + timing["window_size"]) / timing["fps"],
        **timing,
        "feature_path": str(feature_path),
        "clip_feature_path": str(clip_path),
        "num_units": num_units,
        "annotations": [{"label": label, "start": start, "end": end} for label, start, end in annotations],
    }


def synthetic_datasets(directory: Path, num_train: int = 6, num_eval: int = 3, train_units: int = 40):
    """Training videos with seen classes only; evaluation videos with unseen (and one seen) class."""
    directory.mkdir(parents=True, exist_ok=True)
    train_rows = [
        video_row(
            directory,
            f"train_{index}",
            train_units + 4 * index,
            [(SEEN[index % 3], 1.0 + index % 3, 4.0 + index % 3), (SEEN[(index + 1) % 3], 6.0, 7.5)],
        )
        for index in range(num_train)
    ]
    eval_rows = [
        video_row(
            directory,
            f"eval_{index}",
            36 + 2 * index,
            [(UNSEEN[index % 2], 2.0, 5.0), ("jumping", 6.0, 7.0)],
            subset="test",
            clip_units=18 + index,
        )
        for index in range(num_eval)
    ]
    return Dataset.from_list(train_rows, features=VIDEO_FEATURES), Dataset.from_list(
        eval_rows, features=VIDEO_FEATURES
    )


@pytest.fixture
def fresh_accelerator_state():
    """`train` builds an `Accelerator`, whose state is process-global: reset it so that other tests start clean."""
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


# ---------------------------------------------------------------------------------------------------------------------
# Collate
# ---------------------------------------------------------------------------------------------------------------------


def test_collate_targets_match_hand_computation(tmp_path):
    # 10 fps, stride 2, window 4: unit i is centred at (2 i + 2) / 10 s, so t seconds is grid index 5 t - 1 and the
    # normalised position over V units is (5 t - 1 + 0.5) / V.
    row = video_row(tmp_path, "v", 40, [("running", 2.0, 4.0), ("jumping", 0.0, 1.0)], clip_units=20)
    batch = ZeetadDataCollator(SEEN)([row])
    labels = batch["labels"][0]
    assert labels["class_labels"].tolist() == [1, 0]
    start, end = (5 * 2.0 - 0.5) / 40, (5 * 4.0 - 0.5) / 40
    expected = [[(start + end) / 2, end - start], [(0.0 + 4.5 / 40) / 2, 4.5 / 40]]  # 2nd: clipped at the video start
    torch.testing.assert_close(labels["segments"], torch.tensor(expected))
    # The package conversion gives the same numbers.
    normalised = seconds_to_normalized_segments(
        torch.tensor([[2.0, 4.0]]), 40, fps=10.0, feature_stride=2.0, window_size=4.0
    )
    torch.testing.assert_close(normalised[0].float(), torch.tensor([start, end]))
    assert batch["input_features"].shape == (1, 40, LOCALIZATION_DIM)
    # 20 CLIP units linearly resampled onto the 40-unit grid: output unit j sits at CLIP position (j + 0.5) / 2 - 0.5.
    clip = torch.from_numpy(np.load(tmp_path / "v_clip.npy"))
    assert batch["clip_features"].shape == (1, 40, CLIP_DIM)
    torch.testing.assert_close(batch["clip_features"][0, 0], clip[0])
    torch.testing.assert_close(batch["clip_features"][0, 1], 0.75 * clip[0] + 0.25 * clip[1])
    torch.testing.assert_close(batch["clip_features"][0, 6], 0.25 * clip[2] + 0.75 * clip[3])
    assert batch["video_metadata"][0]["unit_offset"] == 0


def test_collate_pads_and_keeps_metadata(tmp_path):
    rows = [video_row(tmp_path, "a", 30, [("swimming", 1.0, 2.0)]), video_row(tmp_path, "b", 20, [])]
    batch = ZeetadDataCollator(SEEN)(rows)
    assert batch["input_features"].shape == (2, 30, LOCALIZATION_DIM)
    assert batch["feature_attention_mask"].sum(-1).tolist() == [30, 20]
    assert batch["video_ids"] == ["a", "b"]
    assert batch["labels"][1]["segments"].shape == (0, 2) and batch["labels"][1]["class_labels"].numel() == 0
    np.testing.assert_allclose(batch["input_features"][1, :20].numpy(), np.load(tmp_path / "b.npy"))
    assert "labels" not in ZeetadDataCollator()(rows)


def test_collate_crop_keeps_overlapping_segments_clipped(tmp_path):
    # fps 1, stride 1, window 0: t seconds is grid index t, i.e. unit-edge coordinate t + 0.5 (unit i spans [i, i + 1]).
    annotations = [("jumping", 10.0, 20.0), ("running", 45.0, 60.0), ("swimming", 70.0, 80.0), ("jumping", 97.0, 99.0)]
    row = video_row(tmp_path, "long", 100, annotations, fps=1.0, feature_stride=1.0, window_size=0.0)
    collator = ZeetadDataCollator(SEEN, max_units=40, crop_overlap_threshold=0.5, seed=3)
    for epoch in range(20):
        collator.set_epoch(epoch)
        batch = collator([row])
        offset = batch["video_metadata"][0]["unit_offset"]
        assert batch["input_features"].shape == (1, 40, LOCALIZATION_DIM)
        np.testing.assert_allclose(
            batch["input_features"][0].numpy(), np.load(tmp_path / "long.npy")[offset : offset + 40]
        )
        expected_labels, expected_segments = [], []
        for index, (_, start, end) in enumerate(annotations):
            edges = np.array([start, end]) + 0.5  # unit-edge coordinates of the whole video
            clipped = np.clip(edges, offset, offset + 40) - offset
            if clipped[1] - clipped[0] > 0 and clipped[1] - clipped[0] >= 0.5 * (end - start):
                expected_labels.append(SEEN.index(annotations[index][0]))
                expected_segments.append([clipped.mean() / 40, (clipped[1] - clipped[0]) / 40])
        labels = batch["labels"][0]
        assert labels["class_labels"].tolist() == expected_labels
        torch.testing.assert_close(labels["segments"], torch.tensor(expected_segments).reshape(-1, 2).float())
        assert ((labels["segments"][:, 0] - labels["segments"][:, 1] / 2) >= 0).all()
        assert ((labels["segments"][:, 0] + labels["segments"][:, 1] / 2) <= 1 + 1e-6).all()
    # Crops are a function of (seed, epoch, video id): the same again, different for another epoch.
    collator.set_epoch(4)
    first = collator([row])["video_metadata"][0]["unit_offset"]
    assert collator([row])["video_metadata"][0]["unit_offset"] == first
    offsets = set()
    for epoch in range(10):
        collator.set_epoch(epoch)
        offsets.add(collator([row])["video_metadata"][0]["unit_offset"])
    assert len(offsets) > 1


def test_collate_refuses_labels_outside_the_prompts(tmp_path):
    row = video_row(tmp_path, "v", 20, [("diving", 1.0, 2.0)])
    with pytest.raises(ValueError, match="'diving'.*filter_to_classes"):
        ZeetadDataCollator(SEEN)([row])
    ZeetadDataCollator()([row])  # evaluation batches carry no labels: nothing to refuse


@pytest.mark.parametrize("fixed_num_units", [50, 300])  # fewer and more units than the video's 137
def test_fixed_length_videos_round_trip_segments_to_the_same_seconds(tmp_path, fixed_num_units):
    # ActivityNet TSP timing: 16-frame snippets every 16 frames at 15 fps; 137 units = 146.1 s of video
    annotations = [("jumping", 0.0, 3.3), ("running", 20.25, 47.5), ("swimming", 101.0, 146.0)]
    row = video_row(tmp_path, "anet", 137, annotations, clip_units=70, fps=15.0, feature_stride=16.0, window_size=16.0)
    extractor = ZeetadFeatureExtractor(fixed_num_units=fixed_num_units)
    batch = ZeetadDataCollator(SEEN, feature_extractor=extractor)([row])
    assert batch["input_features"].shape == (1, fixed_num_units, LOCALIZATION_DIM)
    assert batch["clip_features"].shape == (1, fixed_num_units, CLIP_DIM)
    metadata = batch["video_metadata"][0]
    assert metadata["feature_stride"] == metadata["window_size"] == 137 * 16.0 / fixed_num_units
    # the training targets, taken as the model's answer, come back as the annotated seconds
    labels = batch["labels"][0]
    num_targets = len(labels["class_labels"])
    class_probabilities = torch.nn.functional.one_hot(labels["class_labels"], len(SEEN)).float()[None] * 0.9
    outputs = ZeetadTemporalActionDetectionOutput(
        logits=class_probabilities.logit(eps=1e-6),
        class_probabilities=class_probabilities,
        actionness_logits=torch.full((1, num_targets), 8.0),
        pred_segments=labels["segments"][None],
        feature_lengths=batch["feature_attention_mask"].sum(-1),
    )
    (detections,) = post_process_temporal_action_detection(outputs, batch["video_metadata"], text_labels=SEEN)
    found = sorted(zip(detections["text_labels"], detections["segments"].tolist()), key=lambda item: item[1])
    assert [label for label, _ in found] == [label for label, _, _ in annotations]
    # float32 targets: a few microseconds of rounding on a 146 s video
    np.testing.assert_allclose([segment for _, segment in found], [[s, e] for _, s, e in annotations], atol=1e-4)
    # in float64 the package's conversions invert each other exactly on the new grid
    seconds = torch.tensor([[start, end] for _, start, end in annotations], dtype=torch.float64)
    timing = {key: metadata[key] for key in ("fps", "feature_stride", "window_size")}
    normalized = seconds_to_normalized_segments(seconds, fixed_num_units, **timing)
    torch.testing.assert_close(
        normalized_segments_to_seconds(normalized, fixed_num_units, **timing), seconds, rtol=0, atol=1e-12
    )


# ---------------------------------------------------------------------------------------------------------------------
# Training in process
# ---------------------------------------------------------------------------------------------------------------------


def tiny_model_and_processor(tokenizer, **overrides):
    torch.manual_seed(0)
    config = tiny_zeetad_config(tokenizer, **overrides)
    processor = ZeetadProcessor(feature_extractor=ZeetadFeatureExtractor(), tokenizer=tokenizer)
    return ZeetadForTemporalActionDetection(config), processor


def test_tiny_training_run_writes_model_and_results(tmp_path, tokenizer, fresh_accelerator_state):
    train_dataset, eval_dataset = synthetic_datasets(tmp_path / "data")
    model, processor = tiny_model_and_processor(tokenizer)
    args = ZeetadTrainingArguments(
        output_dir=str(tmp_path / "run"),
        per_device_train_batch_size=2,
        num_train_epochs=2,
        learning_rate=1e-3,
        max_units=32,
        checkpointing_steps="2",
        use_cpu=True,
    )
    results = train(model, processor, train_dataset, eval_dataset, SEEN, UNSEEN, args)
    run = tmp_path / "run"
    assert {"model.safetensors", "config.json", RESULTS_NAME, "eval_predictions.json"} <= set(os.listdir(run))
    on_disk = json.loads((run / RESULTS_NAME).read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert [record["epoch"] for record in on_disk["epochs"]] == [0, 1]
    for record in on_disk["epochs"]:
        assert np.isfinite(record["train_loss"])
        assert set(record["eval_unseen"]["per_class_ap"]) == set(UNSEEN)
        assert 0.0 <= record["eval_unseen"]["average_mAP"] <= 1.0
    assert on_disk["model_selection"] == "last_epoch" and on_disk["selected_epoch"] == 1
    assert on_disk["protocol"] == "strict" and on_disk["video_fusion_top_k"] is None
    assert on_disk["eval_unseen_average_mAP"] == on_disk["epochs"][1]["eval_unseen"]["average_mAP"]
    # 6 videos / 2 per batch = 3 steps per epoch; step checkpoints every 2 steps (step_6 after the epoch-1 evaluation).
    assert sorted(name for name in os.listdir(run) if name.startswith("step_")) == ["step_2", "step_4", "step_6"]
    assert find_latest_checkpoint(run) == str(run / "step_6")
    # The saved model and processor load back and score only unseen classes.
    reloaded = ZeetadForTemporalActionDetection.from_pretrained(run)
    for name, tensor in reloaded.state_dict().items():
        torch.testing.assert_close(tensor, model.state_dict()[name], rtol=0, atol=0)
    ZeetadProcessor.from_pretrained(run)
    submission = json.loads((run / "eval_predictions.json").read_text())
    assert submission["protocol"] == "strict"
    predictions = submission["results"]
    assert set(predictions) == {"eval_0", "eval_1", "eval_2"}
    assert {item["label"] for video in predictions.values() for item in video} <= set(UNSEEN)


def test_evaluating_every_second_epoch_trains_the_same_model(tmp_path, tokenizer, fresh_accelerator_state):
    train_dataset, eval_dataset = synthetic_datasets(tmp_path / "data")
    runs = {}
    for every in (1, 2):
        model, processor = tiny_model_and_processor(tokenizer, dropout=0.1)  # dropout: the global generator is used
        args = ZeetadTrainingArguments(
            output_dir=str(tmp_path / f"every_{every}"),
            per_device_train_batch_size=2,
            num_train_epochs=3,
            learning_rate=1e-3,
            max_units=32,
            eval_every_n_epochs=every,
            use_cpu=True,
            seed=3,
        )
        runs[every] = (train(model, processor, train_dataset, eval_dataset, SEEN, UNSEEN, args), model.state_dict())
    (every_epoch, every_epoch_weights), (every_second, every_second_weights) = runs[1], runs[2]
    # epochs 2 (the second) and 3 (the last) are evaluated, the first only records its loss
    assert ["eval_unseen" in record for record in every_second["epochs"]] == [False, True, True]
    assert all("eval_unseen" in record for record in every_epoch["epochs"])
    # the same training: every loss, the final weights and the results of the evaluated epochs
    for name, tensor in every_epoch_weights.items():
        torch.testing.assert_close(every_second_weights[name], tensor, rtol=0, atol=0)
    assert [record["train_loss"] for record in every_second["epochs"]] == [
        record["train_loss"] for record in every_epoch["epochs"]
    ]
    assert every_second["epochs"][1:] == every_epoch["epochs"][1:]
    assert every_second["eval_unseen_average_mAP"] == every_epoch["eval_unseen_average_mAP"]
    with pytest.raises(ValueError, match="eval_every_n_epochs"):
        ZeetadTrainingArguments(output_dir=str(tmp_path / "bad"), eval_every_n_epochs=0)


def test_heldout_selection_and_windowed_evaluation(tmp_path, tokenizer, fresh_accelerator_state):
    train_dataset, eval_dataset = synthetic_datasets(tmp_path / "data", num_train=6, num_eval=2)
    model, processor = tiny_model_and_processor(tokenizer)
    args = ZeetadTrainingArguments(
        output_dir=str(tmp_path / "run"),
        per_device_train_batch_size=2,
        num_train_epochs=3,
        learning_rate=1e-3,
        heldout_percentage=30.0,  # ceil(0.3 * 6) = 2 training videos select the epoch, on the seen classes
        fixed_num_units=30,  # every video resized to 30 units (the training videos have 40, the evaluation 36-38)
        eval_max_units=16,  # the 30 units run as 3 overlapping windows
        eval_window_overlap=0.5,
        video_fusion_top_k=1,  # one class per evaluation video, scaled by its video-level score
        use_cpu=True,
    )
    results = train(model, processor, train_dataset, eval_dataset, SEEN, UNSEEN, args)
    run = tmp_path / "run"
    # the saved processor sizes videos as training and evaluation did, for the pipeline and examples/evaluate.py
    saved = ZeetadProcessor.from_pretrained(run).feature_extractor
    assert (saved.fixed_num_units, saved.max_units, saved.window_overlap) == (30, 16, 0.5)
    heldout = [record["heldout_seen"]["average_mAP"] for record in results["epochs"]]
    assert results["model_selection"] == "heldout_seen_average_mAP"
    assert results["selected_epoch"] == int(np.argmax(heldout))  # first best epoch
    assert results["eval_unseen_mAP"] == results["epochs"][results["selected_epoch"]]["eval_unseen"]["mAP"]
    for record in results["epochs"]:
        assert set(record["heldout_seen"]["per_class_ap"]) <= set(SEEN)
    # The published model is the selected epoch's, with that epoch's predictions.
    for name in ("model.safetensors", "eval_predictions.json"):
        assert (run / name).read_bytes() == (run / "best_model" / name).read_bytes()
    assert results["protocol"] == "video-level fusion" and results["video_fusion_top_k"] == 1
    submission = json.loads((run / "eval_predictions.json").read_text())
    assert submission["protocol"] == "video-level fusion"
    predictions = submission["results"]
    assert set(predictions) == {"eval_0", "eval_1"}
    assert all(len({item["label"] for item in video}) <= 1 for video in predictions.values())
    segments = [item["segment"] for video in predictions.values() for item in video]
    assert segments and max(end for _, end in segments) <= eval_dataset[1]["duration"] + 1e-6


@pytest.mark.parametrize("heldout_percentage", [0.0, 30.0])
def test_open_vocabulary_evaluation_of_the_selected_epoch(
    tmp_path, tokenizer, fresh_accelerator_state, heldout_percentage
):
    train_dataset, eval_dataset = synthetic_datasets(tmp_path / "data", num_train=6, num_eval=3)
    model, processor = tiny_model_and_processor(tokenizer)
    args = ZeetadTrainingArguments(
        output_dir=str(tmp_path / "run"),
        num_train_epochs=2,
        learning_rate=1e-3,
        heldout_percentage=heldout_percentage,  # the default batch size, 2
        open_vocabulary_evaluation=True,
        use_cpu=True,
    )
    results = train(model, processor, train_dataset, eval_dataset, SEEN, UNSEEN, args)
    report = results["open_vocabulary"]
    assert report == results["epochs"][results["selected_epoch"]]["open_vocabulary"]
    # every evaluation video also holds a seen "jumping" instance: none holds unseen classes only
    assert report["unseen_only_videos"] is None
    generalized = report["generalized"]
    for key in ("seen_average_mAP", "unseen_average_mAP", "harmonic_mean"):
        assert 0.0 <= generalized[key] <= 1.0
    for kind in ("off_list", "on_list"):
        assert set(report[kind]["per_class"]) == set(UNSEEN)
        assert report[kind]["score_thresholds"] == [0.1, 0.3, 0.5]
        assert all(0.0 <= rate <= 1.0 for rate in report[kind]["mean"])
    assert json.loads((tmp_path / "run" / RESULTS_NAME).read_text())["open_vocabulary"] == json.loads(
        json.dumps(report)
    )


def test_off_list_rates_equal_those_of_passes_over_every_video(tmp_path, tokenizer, fresh_accelerator_state):
    # Each off-list pass runs on the videos holding the left-out class only. Oracle: the trained model run with every
    # left-out candidate list over *all* evaluation videos, as `predict` on the whole set. The softmax head gives the
    # one remaining candidate a score of 1, so the rates are not all 0 and a pass that missed a video would show.
    train_dataset, _ = synthetic_datasets(tmp_path / "data", num_train=4, num_eval=1)
    # an unseen action over most of each video (7.6-9.2 s long), so that long detections of an untrained model match
    # it: "throwing" in one video, "diving" in the four others
    eval_rows = [
        video_row(
            tmp_path / "data", f"eval_{index}", 36 + 2 * index, [(label, 0.2, 7.4), ("jumping", 3.0, 4.0)], "test"
        )
        for index, label in enumerate(["diving", "diving", "throwing", "diving", "diving"])
    ]
    eval_dataset = Dataset.from_list(eval_rows, features=VIDEO_FEATURES)
    model, processor = tiny_model_and_processor(tokenizer, classification_head="softmax")
    args = ZeetadTrainingArguments(
        output_dir=str(tmp_path / "run"),
        num_train_epochs=1,
        per_device_eval_batch_size=2,
        open_vocabulary_evaluation=True,
        use_cpu=True,
    )
    report = train(model, processor, train_dataset, eval_dataset, SEEN, UNSEEN, args)["open_vocabulary"]["off_list"]

    trained = ZeetadForTemporalActionDetection.from_pretrained(tmp_path / "run")
    accelerator = Accelerator(cpu=True)
    loader = accelerator.prepare(
        DataLoader(
            eval_dataset, batch_size=1, collate_fn=ZeetadDataCollator(feature_extractor=processor.feature_extractor)
        )
    )
    ground_truth = to_ground_truth(eval_dataset)
    expected = {}
    for left_out in UNSEEN:
        candidates = [name for name in UNSEEN if name != left_out]
        results = predict(trained, loader, candidates, encode_class_prompts(processor, candidates, "cpu"), accelerator)
        assert set(results) == set(ground_truth["database"])  # every video
        expected[left_out] = [
            instance_detection_rate(ground_truth, {"results": results}, left_out, None, threshold)["rate"]
            for threshold in report["score_thresholds"]
        ]
    assert report["per_class"] == expected
    assert any(rate > 0 for rates in expected.values() for rate in rates)


def test_open_vocabulary_evaluation_needs_the_seen_annotations(tmp_path, tokenizer, fresh_accelerator_state):
    train_dataset, eval_dataset = synthetic_datasets(tmp_path / "data", num_train=2, num_eval=2)
    unseen_only = eval_dataset.map(
        lambda row: {"annotations": [item for item in row["annotations"] if item["label"] in UNSEEN]}
    )
    model, processor = tiny_model_and_processor(tokenizer)
    args = ZeetadTrainingArguments(output_dir=str(tmp_path / "run"), open_vocabulary_evaluation=True, use_cpu=True)
    with pytest.raises(ValueError, match="`open_vocabulary_evaluation` needs .* pass it unfiltered"):
        train(model, processor, train_dataset, unseen_only, SEEN, UNSEEN, args)
    assert not (tmp_path / "run").exists()


def test_sample_training_prompts_keeps_positives_and_reindexes():
    prompt_inputs = {"input_ids": torch.arange(6)[:, None].repeat(1, 3), "attention_mask": torch.ones(6, 3)}
    labels = [
        {"class_labels": torch.tensor([4, 1]), "segments": torch.rand(2, 2)},
        {"class_labels": torch.tensor([4]), "segments": torch.rand(1, 2)},
    ]
    sampled = sample_training_prompts(labels, prompt_inputs, 4, np.random.default_rng(0))
    kept = sampled["input_ids"][:, 0].tolist()  # row i of the full list holds the value i
    assert len(kept) == 4 and {1, 4} <= set(kept) and kept == sorted(kept)
    for original, remapped in zip(labels, sampled["labels"]):
        assert [kept[index] for index in remapped["class_labels"].tolist()] == original["class_labels"].tolist()
        assert remapped["segments"] is original["segments"]
    again = sample_training_prompts(labels, prompt_inputs, 4, np.random.default_rng(0))
    assert torch.equal(again["input_ids"], sampled["input_ids"])
    # positives are never dropped, even beyond the budget
    assert sample_training_prompts(labels, prompt_inputs, 1, np.random.default_rng(0))["input_ids"][:, 0].tolist() == [
        1,
        4,
    ]


def test_training_with_prompt_sampling(tmp_path, tokenizer, fresh_accelerator_state):
    train_dataset, eval_dataset = synthetic_datasets(tmp_path / "data", num_train=4, num_eval=2)
    model, processor = tiny_model_and_processor(tokenizer)
    prompt_counts = []
    hook = model.text_encoder.register_forward_hook(
        lambda module, args, kwargs, output: prompt_counts.append((module.training, kwargs["input_ids"].shape[0])),
        with_kwargs=True,
    )
    args = ZeetadTrainingArguments(
        output_dir=str(tmp_path / "run"),
        per_device_train_batch_size=1,  # each training video holds two of the three seen classes
        num_train_epochs=1,
        prompts_per_step=2,
        use_cpu=True,
    )
    results = train(model, processor, train_dataset, eval_dataset, SEEN, UNSEEN, args)
    hook.remove()
    assert np.isfinite(results["train_loss"])
    assert [count for training, count in prompt_counts if training] == [2] * 4
    assert {count for training, count in prompt_counts if not training} == {len(UNSEEN)}


def test_optimizer_selects_parameters_by_role(tokenizer):
    from zeetad_hf.training import _optimizer

    model, _ = tiny_model_and_processor(
        tokenizer,
        vision_config={
            "hidden_size": 32,
            "num_attention_heads": 4,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "image_size": 32,
            "patch_size": 8,
            "projection_dim": 16,
        },
    )
    expected = {id(parameter) for _, parameter in model.named_trainable_parameters()}
    # a user (or a loader) that re-enables gradients everywhere does not make CLIP's weights trainable
    model.requires_grad_(True)
    optimizer = _optimizer(model, ZeetadTrainingArguments(output_dir="unused"))
    selected = {id(parameter) for group in optimizer.param_groups for parameter in group["params"]}
    assert selected == expected
    frozen = [*model.text_projection.parameters(), *model.vision_encoder.parameters()]
    assert not {id(parameter) for parameter in frozen} & selected
    # and a parameter the caller froze stays out
    model.semantic_adapter.requires_grad_(False)
    optimizer = _optimizer(model, ZeetadTrainingArguments(output_dir="unused"))
    selected = {id(parameter) for group in optimizer.param_groups for parameter in group["params"]}
    assert selected == expected - {id(parameter) for parameter in model.semantic_adapter.parameters()}


def test_training_refuses_unseen_annotations(tmp_path, tokenizer, fresh_accelerator_state):
    train_dataset, eval_dataset = synthetic_datasets(tmp_path / "data", num_train=2, num_eval=1)
    model, processor = tiny_model_and_processor(tokenizer)
    args = ZeetadTrainingArguments(output_dir=str(tmp_path / "run"), use_cpu=True)
    with pytest.raises(ValueError, match="not seen classes.*filter_to_classes"):
        train(model, processor, eval_dataset, eval_dataset, SEEN, UNSEEN, args)
    with pytest.raises(ValueError, match="disjoint"):
        train(model, processor, train_dataset, eval_dataset, SEEN, ["jumping"], args)
    with pytest.raises(ValueError, match="no annotation of the unseen classes"):
        train(model, processor, train_dataset, train_dataset, SEEN, UNSEEN, args)


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------------------


def test_latest_never_picks_a_temporary_or_incomplete_folder(tmp_path):
    def checkpoint(name, steps, with_state=True, weights="complete"):
        folder = tmp_path / name
        folder.mkdir()
        if weights is not None:
            save_file({"weight": torch.arange(64, dtype=torch.float32)}, folder / "model.safetensors")
        if weights == "truncated":
            data = (folder / "model.safetensors").read_bytes()
            (folder / "model.safetensors").write_bytes(data[: len(data) - 100])
        if with_state:
            (folder / TRAINER_STATE_NAME).write_text(json.dumps({"completed_steps": steps}))

    assert find_latest_checkpoint(tmp_path) is None
    checkpoint("step_4", 4)
    checkpoint("epoch_0", 6)
    checkpoint("step_2", 2)
    # What a save killed half-way leaves behind: the temporary folder (even with a state file, written last) ...
    checkpoint(f"{TEMPORARY_PREFIX}step_8", 8)
    # ... and folders without the state file (never produced by `save_checkpoint`, which publishes by renaming).
    checkpoint("step_10", 10, with_state=False)
    checkpoint("notes_99", 99)
    # A state file without weights, or with truncated weights (e.g. a folder edited or copied by hand): not complete.
    checkpoint("step_12", 12, weights=None)
    checkpoint("step_14", 14, weights="truncated")
    (tmp_path / "step_16").mkdir()
    (tmp_path / "step_16" / TRAINER_STATE_NAME).write_text("{not json")
    assert find_latest_checkpoint(tmp_path) == str(tmp_path / "epoch_0")
    assert [steps for steps, _ in list_checkpoints(tmp_path)] == [2, 4, 6]


# ---------------------------------------------------------------------------------------------------------------------
# The training script: kill and resume
# ---------------------------------------------------------------------------------------------------------------------

TEMPLATE_WORDS = ("a", "video", "of", "person")
# dropout on: its random draws must survive the resume too
TINY_MODEL_OVERRIDES = {**TINY_DETECTOR, "dropout": 0.1}


def write_tiny_benchmark(directory: Path, num_train: int, num_eval: int) -> dict[str, str]:
    """A THUMOS14-format annotation file (split-0 class names), feature folders and a tiny CLIP checkpoint."""
    seen, unseen = load_zero_shot_split("thumos14", "75_25", 0)
    features, clip_features = directory / "i3d", directory / "clip"
    features.mkdir(parents=True)
    clip_features.mkdir()
    generator = np.random.default_rng(0)
    database = {}
    for index in range(num_train + num_eval):
        is_train = index < num_train
        video_id = f"video_{'validation' if is_train else 'test'}_{index:07d}"
        num_units = 40 + 3 * index
        classes = seen if is_train else unseen
        annotations = [
            {"label": classes[index % len(classes)], "segment": [1.0 + index % 4, 4.0 + index % 4]},
            {"label": classes[(index + 2) % len(classes)], "segment": [6.5, 8.0]},
        ]
        if not is_train:
            annotations.append({"label": seen[0], "segment": [2.0, 3.0]})  # seen class in a test video: not scored
        database[video_id] = {
            "subset": "Validation" if is_train else "Test",
            "duration": (num_units * 4 + 16) / 10.0,
            "fps": 10.0,
            "annotations": annotations,
        }
        np.save(
            features / f"{video_id}.npy", generator.standard_normal((num_units, LOCALIZATION_DIM)).astype(np.float32)
        )
        np.save(
            clip_features / f"{video_id}.npy", generator.standard_normal((num_units // 2, CLIP_DIM)).astype(np.float32)
        )
    annotation_path = directory / "thumos14.json"
    annotation_path.write_text(json.dumps({"version": "tiny", "database": database}))

    tokenizer = build_clip_tokenizer(
        TEMPLATE_WORDS + tuple(name.lower() for name in seen + unseen), model_max_length=16
    )
    torch.manual_seed(0)
    save_tiny_clip(directory / "tiny-clip", tokenizer, num_hidden_layers=1)
    return {
        "annotations": str(annotation_path),
        "features": str(features),
        "clip_features": str(clip_features),
        "clip_model": str(directory / "tiny-clip"),
    }


def script_arguments(benchmark: dict[str, str], output_dir: Path, **overrides) -> list[str]:
    settings = {
        **benchmark,
        "dataset": "thumos14",
        "split_setting": "75_25",
        "split": "0",
        "config_overrides": json.dumps(TINY_MODEL_OVERRIDES),
        "output_dir": str(output_dir),
        "per_device_train_batch_size": "1",
        "gradient_accumulation_steps": "2",
        "num_train_epochs": "2",
        "learning_rate": "1e-3",
        "num_warmup_steps": "2",
        "max_units": "36",
        "seed": "7",
        **overrides,
    }
    return [item for key, value in settings.items() for item in (f"--{key}", value)]


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


# Runs examples/train.py with every feature read delayed, so that the test can kill it while an epoch is under way.
SLOW_LAUNCHER = """
import runpy, sys, time
import zeetad_hf.training as training
read = training.load_features
training.load_features = lambda path: (time.sleep({delay}), read(path))[1]
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory) -> dict[str, str]:
    # 11 training videos, batch 1, accumulation 2: 6 optimizer steps per epoch (the last on one batch), 2 epochs.
    return write_tiny_benchmark(tmp_path_factory.mktemp("benchmark"), num_train=11, num_eval=3)


@pytest.fixture(scope="module")
def reference_run(tiny_benchmark, tmp_path_factory) -> Path:
    """An uninterrupted run of examples/train.py on the tiny benchmark."""
    output_dir = tmp_path_factory.mktemp("reference")
    subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), *script_arguments(tiny_benchmark, output_dir)],
        env=subprocess_env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return output_dir


def test_training_script_fills_the_model_card_from_its_results(reference_run):
    from huggingface_hub import ModelCard

    results = json.loads((reference_run / RESULTS_NAME).read_text())
    card = ModelCard.load(reference_run / "README.md")
    assert card.data.library_name == "transformers"
    assert results["protocol"] == "strict" and "Protocol: **strict**" in card.text
    metrics = {
        metric["name"]: metric["value"] for metric in card.data.to_dict()["model-index"][0]["results"][0]["metrics"]
    }
    average = next(value for name, value in metrics.items() if "average" in name.lower())
    assert average == round(100 * results["eval_unseen_average_mAP"], 2)


def test_killed_run_resumes_to_identical_weights(tiny_benchmark, reference_run, tmp_path):
    reference, resumed = reference_run, tmp_path / "resumed"
    arguments = script_arguments(tiny_benchmark, resumed, checkpointing_steps="2")
    launcher = SLOW_LAUNCHER.format(delay=0.1)
    process = subprocess.Popen(
        [sys.executable, "-c", launcher, str(TRAIN_SCRIPT), *arguments],
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # Step 8 is the 2nd step of epoch 1: the run is past an epoch-end evaluation and in the middle of an epoch.
        deadline = time.monotonic() + 240
        while not (resumed / "step_8" / TRAINER_STATE_NAME).exists():
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "step_8 never appeared"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    assert not (resumed / "model.safetensors").exists() and not (resumed / RESULTS_NAME).exists()
    latest = json.loads((Path(find_latest_checkpoint(resumed)) / TRAINER_STATE_NAME).read_text())
    assert latest["completed_steps"] in (8, 10), "killed outside the second epoch"

    completed = subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), *arguments, "--resume_from_checkpoint", "latest"],
        env=subprocess_env(),
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert f"step_{latest['completed_steps']} at step {latest['completed_steps']}." in completed.stderr

    expected, actual = load_file(reference / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensor, actual[name]), name
    expected_results = json.loads((reference / RESULTS_NAME).read_text())
    actual_results = json.loads((resumed / RESULTS_NAME).read_text())
    assert actual_results["epochs"] == expected_results["epochs"]
    assert [record["epoch"] for record in actual_results["epochs"]] == [0, 1]


# ---------------------------------------------------------------------------------------------------------------------
# The final model folder: published in one rename, even when the run is killed while writing it
# ---------------------------------------------------------------------------------------------------------------------

# About 4M parameters (16 MB of weights): writing the final folder takes long enough to be caught part-way.
LARGER_MODEL_OVERRIDES = {**TINY_MODEL_OVERRIDES, "d_model": 128, "encoder_ffn_dim": 4096, "decoder_ffn_dim": 4096}


def top_level_files(folder: Path) -> dict[str, tuple[int, int, int]]:
    """`{name: (inode, size, mtime)}` of the files directly in `folder`: a file replaced or rewritten in place shows."""
    files = {}
    for entry in os.scandir(folder):
        if entry.is_file(follow_symlinks=False):
            status = entry.stat(follow_symlinks=False)
            files[entry.name] = (status.st_ino, status.st_size, status.st_mtime_ns)
    return files


def freeze(process: subprocess.Popen) -> bool:
    """SIGSTOP the child and wait until it has stopped: the files are then exactly what a kill now would leave.
    `False` when it exited instead (its exit status is recorded on `process`)."""
    os.kill(process.pid, signal.SIGSTOP)
    _, status = os.waitpid(process.pid, os.WUNTRACED)
    if os.WIFSTOPPED(status):
        return True
    process.returncode = os.waitstatus_to_exitcode(status)
    return False


def kill_frozen(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    _, status = os.waitpid(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)


def watch_final_save(process: subprocess.Popen, staging: Path, output_dir: Path, kill_when=None) -> list[dict]:
    """From the moment the final save's folder `staging` appears until the run ends, freeze the run again and again
    and record the output folder's top-level files each time; with `kill_when(staging)` true, SIGKILL it there."""
    deadline = time.monotonic() + 240
    # a folder an earlier, killed run left behind: the start of this run deletes it, long before its final save
    while staging.exists():
        assert process.poll() is None, "the run ended without cleaning up"
        assert time.monotonic() < deadline, f"{staging}, left behind, was never deleted"
        time.sleep(0.0005)
    while not staging.exists():
        assert process.poll() is None, "the run ended before its final save"
        assert time.monotonic() < deadline, "the final save never started"
        time.sleep(0.0005)
    snapshots = []
    while time.monotonic() < deadline and freeze(process):
        snapshots.append(top_level_files(output_dir))
        if kill_when is not None and kill_when(staging):
            kill_frozen(process)
            return snapshots
        os.kill(process.pid, signal.SIGCONT)
        time.sleep(0.001)
    return snapshots


def check_model_folder_loads(folder: Path) -> None:
    ZeetadForTemporalActionDetection.from_pretrained(folder)
    ZeetadProcessor.from_pretrained(folder)
    assert [record["epoch"] for record in json.loads((folder / RESULTS_NAME).read_text())["epochs"]] == [0, 1]
    assert json.loads((folder / "eval_predictions.json").read_text())["results"]


def test_a_kill_during_the_final_save_leaves_the_previous_folder_and_the_next_start_the_new_one(
    tiny_benchmark, reference_run, tmp_path
):
    # The previous complete folder: a finished run's (model, processor, results, predictions, card).
    output_dir = tmp_path / "run"
    shutil.copytree(reference_run, output_dir)
    previous = top_level_files(output_dir)
    previous_weights = (output_dir / "model.safetensors").read_bytes()
    staging = tmp_path / f"{TEMPORARY_PREFIX}run"
    arguments = script_arguments(
        tiny_benchmark,
        output_dir,
        seed="11",
        checkpointing_steps="epoch",
        config_overrides=json.dumps(LARGER_MODEL_OVERRIDES),
    )

    # 1. A new run into the same folder, killed while its final folder is half written (new weights in the staging
    # folder). Until that moment, and after it, the folder is the previous one, byte for byte.
    with open(tmp_path / "killed.log", "w") as log:
        # niced, so that on a busy machine the watcher is not the one kept waiting while the save runs to its end
        process = subprocess.Popen(
            [sys.executable, str(TRAIN_SCRIPT), *arguments],
            env=subprocess_env(),
            stdout=log,
            stderr=log,
            preexec_fn=lambda: os.nice(10),
        )
        try:
            snapshots = watch_final_save(
                process, staging, output_dir, kill_when=lambda folder: (folder / "model.safetensors").exists()
            )
        finally:
            if process.returncode is None:
                process.kill()
                process.wait()
    assert process.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-3000:]
    assert snapshots and all(snapshot == previous for snapshot in snapshots)
    assert top_level_files(output_dir) == previous
    assert (output_dir / "model.safetensors").read_bytes() == previous_weights
    check_model_folder_loads(output_dir)
    assert staging.is_dir()  # the half-written new folder, never published

    # 2. The next start cleans up, resumes from the last checkpoint (taken after the last epoch) and publishes the new
    # folder; at every moment of its final save the folder is the previous one or the new one.
    with open(tmp_path / "resumed.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(TRAIN_SCRIPT), *arguments, "--resume_from_checkpoint", "latest"],
            env=subprocess_env(),
            stdout=log,
            stderr=log,
        )
        try:
            snapshots = watch_final_save(process, staging, output_dir)
            process.wait(timeout=240)
        finally:
            if process.returncode is None:
                process.kill()
                process.wait()
    log_text = (tmp_path / "resumed.log").read_text()
    assert process.returncode == 0, log_text[-3000:]
    assert "Removed what interrupted saves left behind" in log_text and str(staging) in log_text
    new = top_level_files(output_dir)
    assert new != previous and (output_dir / "model.safetensors").read_bytes() != previous_weights
    assert snapshots and all(snapshot in (previous, new) for snapshot in snapshots)
    check_model_folder_loads(output_dir)
    # the selected (last) epoch's detections, kept in its checkpoint, are the folder's
    checkpoint_predictions = json.loads((output_dir / "epoch_1" / "eval_predictions.json").read_text())
    assert json.loads((output_dir / "eval_predictions.json").read_text()) == checkpoint_predictions
    assert sorted(name for name in os.listdir(output_dir) if name.startswith("epoch_")) == ["epoch_0", "epoch_1"]
    assert not [name for name in os.listdir(tmp_path) if name.startswith(TEMPORARY_PREFIX)]
    assert not [name for name in os.listdir(output_dir) if name.startswith(".")]


# examples/train.py inside a private mount namespace whose output folder is a small tmpfs (tests/mount_namespace.py): the
# run is frozen once its first checkpoint is complete, the disk is filled to the last byte, and the run goes on.
FULL_DISK_TRAINING = """
import json, os, signal, subprocess, sys, time
mount_point, *command = sys.argv[1:]
output_dir = os.path.join(mount_point, "run")
with open(os.path.join(mount_point, "..", "train.log"), "w") as log:
    process = subprocess.Popen([*command, "--output_dir", output_dir], stdout=log, stderr=log)
    while not os.path.exists(os.path.join(output_dir, "step_1", "trainer_state.json")) and process.poll() is None:
        time.sleep(0.001)
    os.kill(process.pid, signal.SIGSTOP)
    os.waitpid(process.pid, os.WUNTRACED)
    with open(os.path.join(mount_point, "filler"), "wb") as filler:
        try:
            while True:
                filler.write(bytes(1 << 16))
                filler.flush()
        except OSError:
            pass
    os.kill(process.pid, signal.SIGCONT)
    process.wait()
from zeetad_hf.training import list_checkpoints
print(json.dumps({
    "returncode": process.returncode,
    "entries": sorted(os.listdir(output_dir)),
    "checkpoints": [[steps, os.path.basename(path)] for steps, path in list_checkpoints(output_dir)],
}))
"""


@pytest.mark.skipif(not MOUNTS_AVAILABLE, reason=MOUNTS_REASON)
def test_a_full_disk_during_a_checkpoint_is_one_clear_line_and_leaves_no_partial_folder(tiny_benchmark, tmp_path):
    arguments = script_arguments(tiny_benchmark, tmp_path / "unused", checkpointing_steps="1")
    arguments = arguments[: arguments.index("--output_dir")] + arguments[arguments.index("--output_dir") + 2 :]
    result = run_with_small_disk(
        tmp_path / "disk", "64m", FULL_DISK_TRAINING, sys.executable, str(TRAIN_SCRIPT), *arguments,
        env=subprocess_env(),
    )  # fmt: skip
    log = (tmp_path / "train.log").read_text()
    assert result.returncode == 0, result.stderr[-3000:] + log[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    run = tmp_path / "disk" / "run"
    assert report["returncode"] == 1 and "Traceback" not in log
    assert log.strip().splitlines()[-1] == (
        f"train.py: error: No space left on device while writing {run / '.tmp-step_2'}; kept: {run / 'step_1'} "
        "(the last complete checkpoint)"
    )
    # the partial checkpoint is gone; the complete one is still the one to resume from
    assert report["entries"] == ["step_1"] and report["checkpoints"] == [[1, "step_1"]]


@pytest.mark.skipif(not MOUNTS_AVAILABLE, reason=MOUNTS_REASON)
@pytest.mark.parametrize("read_only_parent", [True, False], ids=["read-only-parent", "mount-point"])
def test_an_output_dir_that_cannot_be_swapped_is_written_file_by_file(tiny_benchmark, tmp_path, read_only_parent):
    # e.g. a volume mounted at the output folder: it cannot be renamed, and maybe nothing can be created next to it
    output_dir = tmp_path / "volumes" / "run"
    arguments = script_arguments(tiny_benchmark, output_dir, num_train_epochs="1")
    result = run_with_mounted_folder(
        output_dir, sys.executable, str(TRAIN_SCRIPT), *arguments, read_only_parent=read_only_parent,
        env=subprocess_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    reason = "cannot create" if read_only_parent else f"{output_dir} cannot be renamed (Device or resource busy)"
    assert reason in result.stderr and "is written file by file, not atomically" in result.stderr
    ZeetadForTemporalActionDetection.from_pretrained(output_dir)
    ZeetadProcessor.from_pretrained(output_dir)
    assert json.loads((output_dir / RESULTS_NAME).read_text())["selected_epoch"] == 0
    assert os.listdir(output_dir.parent) == ["run"]
    assert not [name for name in os.listdir(output_dir) if name.startswith(".")]


# ---------------------------------------------------------------------------------------------------------------------
# examples/evaluate.py
# ---------------------------------------------------------------------------------------------------------------------

EVALUATE_SCRIPT = REPOSITORY / "examples" / "evaluate.py"


def run_evaluate(monkeypatch, *arguments: str) -> None:
    monkeypatch.setattr(sys, "argv", [str(EVALUATE_SCRIPT), *arguments])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(EVALUATE_SCRIPT), run_name="__main__")
    assert exited.value.code == 0


def test_evaluate_reproduces_the_training_evaluation(
    tiny_benchmark, reference_run, tmp_path, monkeypatch, fresh_accelerator_state
):
    expected = json.loads((reference_run / RESULTS_NAME).read_text())
    common = ["--dataset", "thumos14", "--annotations", tiny_benchmark["annotations"], "--split", "0"]
    run_evaluate(
        monkeypatch,
        *common,
        "--predictions",
        str(reference_run / "eval_predictions.json"),
        "--output_dir",
        str(tmp_path / "saved"),
    )
    saved = json.loads((tmp_path / "saved" / "evaluation_results.json").read_text())
    assert saved["splits"]["0"]["mAP"] == expected["eval_unseen_mAP"]
    assert saved["mean"] is None and saved["num_splits"] == 1
    model_mode = ["--model_name_or_path", str(reference_run), "--features", tiny_benchmark["features"]]
    model_mode += ["--clip_features", tiny_benchmark["clip_features"], "--output_dir", str(tmp_path / "model")]
    run_evaluate(monkeypatch, *common, *model_mode)
    rerun = json.loads((tmp_path / "model" / "evaluation_results.json").read_text())
    assert rerun["splits"]["0"]["mAP"] == expected["eval_unseen_mAP"]


def write_one_video_per_class(path, classes, validation_video: bool = False):
    """A THUMOS14-style annotation file at `path`: one 30 s test video per class (`video_test_<index>`, its action at
    5-9 s), and with `validation_video` one more video outside the evaluation subset. Returns `path`."""
    database = {
        f"video_test_{index}": {
            "subset": "Test",
            "duration": 30.0,
            "annotations": [{"label": name, "segment": [5.0, 9.0]}],
        }
        for index, name in enumerate(classes)
    }
    if validation_video:
        database["video_validation_0"] = {
            "subset": "Validation",
            "duration": 30.0,
            "annotations": [{"label": classes[0], "segment": [1.0, 2.0]}],
        }
    path.write_text(json.dumps({"database": database}))
    return path


def test_evaluate_averages_the_ten_splits(tmp_path, monkeypatch):
    # One test video per THUMOS14 class; split k's predictions find exactly its unseen classes, except split 3 (none).
    seen, unseen = load_zero_shot_split("thumos14", "75_25", 0)
    classes = sorted(seen + unseen)
    annotations = write_one_video_per_class(tmp_path / "thumos14.json", classes, validation_video=True)
    for split in range(10):
        _, split_unseen = load_zero_shot_split("thumos14", "75_25", split)
        results = {
            f"video_test_{index}": [{"label": name, "score": 0.9, "segment": [5.0, 9.0]}]
            for index, name in enumerate(classes)
            if split != 3 and name in split_unseen
        }
        (tmp_path / f"predictions_{split}.json").write_text(json.dumps({"results": results}))
    run_evaluate(
        monkeypatch,
        "--dataset", "thumos14", "--annotations", str(annotations), "--all_splits",
        "--predictions", str(tmp_path / "predictions_{split}.json"), "--output_dir", str(tmp_path / "out"),
    )  # fmt: skip
    report = json.loads((tmp_path / "out" / "evaluation_results.json").read_text())
    assert report["num_splits"] == 10 and report["tiou_thresholds"] == [0.3, 0.4, 0.5, 0.6, 0.7]
    assert [report["splits"][str(split)]["average_mAP"] for split in range(10)] == [1.0] * 3 + [0.0] + [1.0] * 6
    assert report["mean"]["average_mAP"] == pytest.approx(0.9)
    table = (tmp_path / "out" / "evaluation_results.md").read_text().splitlines()
    assert table[2] == "| split | video set | #videos | mAP@0.3 | mAP@0.4 | mAP@0.5 | mAP@0.6 | mAP@0.7 | average |"
    assert len(table) == 4 + 2 * 10 + 2
    # std: sample standard deviation of nine 1s and one 0
    assert table[-2] == "| mean ± std | all |  | " + " | ".join(["90.00 ± 31.62"] * 6) + " |"


def test_mixed_precision_comes_from_the_launcher_unless_given(
    tmp_path, tokenizer, fresh_accelerator_state, monkeypatch
):
    # `accelerate launch --mixed_precision bf16` passes its choice in this variable
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    train_dataset, eval_dataset = synthetic_datasets(tmp_path / "data", num_train=2, num_eval=2)
    autocast_states = []
    for run, mixed_precision in (("launcher", None), ("flag", "no")):
        model, processor = tiny_model_and_processor(tokenizer)
        hook = model.model.register_forward_hook(
            lambda module, args, output: autocast_states.append((run, torch.is_autocast_enabled("cpu")))
        )
        args = ZeetadTrainingArguments(
            output_dir=str(tmp_path / run),
            per_device_train_batch_size=2,
            num_train_epochs=1,
            mixed_precision=mixed_precision,
            use_cpu=True,
        )
        results = train(model, processor, train_dataset, eval_dataset, SEEN, UNSEEN, args)
        hook.remove()
        assert np.isfinite(results["train_loss"])
        # a second Accelerator in the same process needs a fresh global state
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    assert {state for run, state in autocast_states if run == "launcher"} == {True}
    assert {state for run, state in autocast_states if run == "flag"} == {False}
