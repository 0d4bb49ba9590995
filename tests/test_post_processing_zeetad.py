"""post_process_temporal_action_detection: scores, seconds, NMS, thresholds and argument checks."""

import math

import pytest
import torch

from zeetad_hf import ZeetadForTemporalActionDetection, post_process_temporal_action_detection
from zeetad_hf.modeling_zeetad import ZeetadTemporalActionDetectionOutput


THUMOS_TIMING = {"fps": 30.0, "feature_stride": 4, "window_size": 16}


def make_outputs(logits, actionness, segments, lengths, head="softmax"):
    logits = torch.tensor(logits, dtype=torch.float32)
    return ZeetadTemporalActionDetectionOutput(
        logits=logits,
        class_probabilities=logits.softmax(-1) if head == "softmax" else logits.sigmoid(),
        actionness_logits=torch.tensor(actionness, dtype=torch.float32),
        pred_segments=torch.tensor(segments, dtype=torch.float32),
        feature_lengths=torch.tensor(lengths),
    )


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.5, 0.8])
def test_single_detection_score_label_and_seconds(weight):
    # One video, 10 units, one query centred at 0.5 with width 0.2 -> normalised [0.4, 0.6]
    # -> grid indices 0.4 * 10 - 0.5 = 3.5 and 5.5 -> seconds (3.5 * 4 + 8) / 30 and (5.5 * 4 + 8) / 30.
    outputs = make_outputs([[[0.0, 2.0]]], [[1.0]], [[[0.5, 0.2]]], [10])
    (result,) = post_process_temporal_action_detection(
        outputs, [THUMOS_TIMING], text_labels=["run", "jump"], actionness_weight=weight
    )
    # sigmoid(actionness) ** w * p(class) ** (1 - w), p = softmax([0, 2])[1]
    expected_score = (1 / (1 + math.exp(-1.0))) ** weight * (math.exp(2.0) / (1 + math.exp(2.0))) ** (1 - weight)
    best = result["scores"].argmax()
    assert result["scores"][best].item() == pytest.approx(expected_score, rel=1e-6)
    assert result["labels"][best].item() == 1 and result["text_labels"][best] == "jump"
    torch.testing.assert_close(result["segments"][best], torch.tensor([22 / 30, 30 / 30]))
    # The other class of the same query is a second candidate with the complementary probability.
    assert sorted(result["text_labels"]) == ["jump", "run"]
    assert torch.all(result["scores"][:-1] >= result["scores"][1:])


def test_window_offset_shifts_by_whole_units():
    outputs = make_outputs([[[0.0, 2.0]]], [[1.0]], [[[0.5, 0.2]]], [10])
    (plain,) = post_process_temporal_action_detection(outputs, [THUMOS_TIMING])
    (shifted,) = post_process_temporal_action_detection(outputs, [{**THUMOS_TIMING, "unit_offset": 25}])
    # 25 units of stride 4 at 30 fps = 100 frames = 10 / 3 seconds later.
    torch.testing.assert_close(shifted["segments"], plain["segments"] + 100 / 30)


def test_threshold_and_duration_clamp():
    # sigmoid head: class probability sigmoid(5) for both queries, the actionness tells them apart
    outputs = make_outputs([[[5.0], [5.0]]], [[4.0, -4.0]], [[[0.95, 0.3], [0.2, 0.1]]], [10], head="sigmoid")
    (result,) = post_process_temporal_action_detection(
        outputs, [{**THUMOS_TIMING, "duration": 1.5}], threshold=0.5, actionness_weight=0.5
    )
    # Only the confident query survives the threshold; its end (grid 10.5 -> 50 / 30 = 1.67 s) is clamped to 1.5 s.
    assert result["scores"].numel() == 1
    start, end = result["segments"][0].tolist()
    assert start == pytest.approx(((0.8 * 10 - 0.5) * 4 + 8) / 30)
    assert end == pytest.approx(1.5)


def test_soft_nms_decays_duplicate_queries():
    # Two queries predict the same segment and class: Soft-NMS keeps the first and decays the second by exp(-iou^2/sigma).
    outputs = make_outputs([[[3.0], [3.0]]], [[2.0, 1.0]], [[[0.5, 0.4], [0.5, 0.4]]], [20])
    # a single candidate: softmax probability 1, so the score is the actionness (any weight)
    (soft,) = post_process_temporal_action_detection(outputs, [THUMOS_TIMING], nms_sigma=0.5, actionness_weight=1.0)
    first, second = soft["scores"].tolist()
    assert first == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert second == pytest.approx(1 / (1 + math.exp(-1.0)) * math.exp(-1.0 / 0.5), rel=1e-4)
    (hard,) = post_process_temporal_action_detection(outputs, [THUMOS_TIMING], use_soft_nms=False, iou_threshold=0.5)
    assert hard["scores"].numel() == 1


def test_real_model_outputs_give_sorted_segments_inside_the_video(make_config, tokenizer):
    model = ZeetadForTemporalActionDetection(make_config()).eval()
    inputs = tokenizer(["a person jumping", "a person running", "diving"], padding=True, return_tensors="pt")
    with torch.no_grad():
        outputs = model(
            input_features=torch.randn(2, 30, 24),
            clip_features=torch.randn(2, 30, 16),
            feature_attention_mask=torch.cat(
                [torch.ones(1, 30), torch.cat([torch.ones(1, 20), torch.zeros(1, 10)], 1)]
            ),
            **inputs,
        )
    metadata = [
        {"fps": 1.0, "feature_stride": 1, "window_size": 1, "duration": 30.0},
        {**THUMOS_TIMING, "duration": 3.0},
    ]
    results = post_process_temporal_action_detection(outputs, metadata, max_segments=5)
    for result, meta in zip(results, metadata):
        assert 0 < result["scores"].numel() <= 5
        assert torch.all(result["scores"][:-1] >= result["scores"][1:])
        assert torch.all(result["segments"] >= 0) and torch.all(result["segments"] <= meta["duration"])
        assert torch.all(result["segments"][:, 0] <= result["segments"][:, 1])
        assert set(result["labels"].tolist()) <= {0, 1, 2}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 1.5}, r"`threshold` must be in \[0, 1\], got 1.5"),
        ({"threshold": -0.1}, r"`threshold` must be in \[0, 1\]"),
        ({"top_k": 0}, r"`top_k` must be a positive integer, got 0"),
        ({"actionness_weight": 1.2}, r"`actionness_weight` must be in \[0, 1\], got 1.2"),
        ({"video_metadata": []}, r"`video_metadata` has 0 entries for a batch of 1"),
        ({"video_metadata": [{"fps": 30.0}]}, r"`video_metadata\[0\]` lacks \['feature_stride', 'window_size'\]"),
        ({"video_metadata": [{**THUMOS_TIMING, "fps": 0.0}]}, r"fps"),
        ({"text_labels": ["only one"]}, r"`text_labels` has 1 names for 2 classes"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    outputs = make_outputs([[[0.0, 2.0]]], [[1.0]], [[[0.5, 0.2]]], [10])
    arguments = {"video_metadata": [THUMOS_TIMING], **kwargs}
    with pytest.raises(ValueError, match=message):
        post_process_temporal_action_detection(outputs, **arguments)
