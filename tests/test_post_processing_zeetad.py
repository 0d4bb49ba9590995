"""post_process_temporal_action_detection: scores, seconds, NMS, thresholds and argument checks."""

import math

import pytest
import torch

from zeetad_hf import ZeetadForTemporalActionDetection, post_process_temporal_action_detection
from zeetad_hf.modeling_zeetad import ZeetadTemporalActionDetectionOutput
from zeetad_hf.pipeline_zeetad import merge_window_outputs
from zeetad_hf.post_processing_zeetad import video_level_class_scores


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


# ---------------------------------------------------------------------------------------------------------------------
# Video-level fusion
# ---------------------------------------------------------------------------------------------------------------------


def fusion_outputs():
    """Two videos, 3 classes with orthogonal embeddings; video 0's units lean to class "a" (4 valid units, 2 padded),
    video 1's to class "c" (both close to "b"). Two queries per video, each sure of its own class (probability 0.8)."""
    text_embeds = torch.eye(3, 4)
    unit_embeds = torch.zeros(2, 6, 4)
    unit_embeds[0, :4] = torch.tensor([[0.72, 0.69, 0, 0]] * 3 + [[0.69, 0.72, 0, 0]])
    unit_embeds[0, 4:] = torch.tensor([0, 0, 5.0, 0])  # padding: must not count
    unit_embeds[1] = torch.tensor([[0, 0.69, 0.72, 0]] * 6)
    class_probabilities = torch.tensor([[[0.8, 0, 0], [0, 0.8, 0]], [[0, 0.8, 0], [0, 0, 0.8]]])
    return ZeetadTemporalActionDetectionOutput(
        logits=class_probabilities.logit(eps=1e-6),
        class_probabilities=class_probabilities,
        actionness_logits=torch.full((2, 2), 5.0),
        pred_segments=torch.tensor([[[0.25, 0.2], [0.75, 0.2]]] * 2),
        feature_lengths=torch.tensor([4, 6]),
        unit_embeds=unit_embeds,
        text_embeds=text_embeds,
    )


def expected_video_scores() -> list[list[float]]:
    """By hand: the mean valid unit embedding, normalised, times 100, softmax over the 3 classes."""
    means = [[(0.72 * 3 + 0.69) / 4, (0.69 * 3 + 0.72) / 4, 0.0], [0.0, 0.69, 0.72]]
    scores = []
    for mean in means:
        norm = math.sqrt(sum(value * value for value in mean))
        exponentials = [math.exp(100 * value / norm) for value in mean]
        scores.append([value / sum(exponentials) for value in exponentials])
    return scores


def test_video_level_class_scores_are_clip_zero_shot_scores_of_the_mean_unit_embedding():
    scores = video_level_class_scores(fusion_outputs())
    torch.testing.assert_close(scores, torch.tensor(expected_video_scores()), rtol=1e-5, atol=1e-7)


def test_video_level_fusion_keeps_the_top_classes_and_multiplies_their_scores():
    timing = [{"fps": 1.0, "feature_stride": 1, "window_size": 1}] * 2
    labels = ["a", "b", "c"]

    def detect(**kwargs) -> list[dict[str, float]]:
        # detections scoring above 0 (the classes a query is not sure of score 0): {label: score} per video
        results = post_process_temporal_action_detection(
            fusion_outputs(), timing, text_labels=labels, threshold=1e-9, **kwargs
        )
        return [dict(zip(video["text_labels"], video["scores"].tolist())) for video in results]

    expected = expected_video_scores()
    assert 0.5 < expected[0][0] < 0.99 and 0.5 < expected[1][2] < 0.99  # "a" leads video 0, "c" video 1
    assert detect() == [
        {"a": pytest.approx(0.8), "b": pytest.approx(0.8)},
        {"b": pytest.approx(0.8), "c": pytest.approx(0.8)},
    ]
    # top 1: only the video's best class is detected, its score times its video-level score
    assert detect(video_fusion_top_k=1) == [
        {"a": pytest.approx(0.8 * expected[0][0], rel=1e-5)},
        {"c": pytest.approx(0.8 * expected[1][2], rel=1e-5)},
    ]
    # top 3 (every candidate): every detection stays, scaled by its class's video-level score
    assert detect(video_fusion_top_k=3) == [
        {label: pytest.approx(0.8 * video[labels.index(label)], rel=1e-5) for label in found}
        for video, found in zip(expected, (["a", "b"], ["b", "c"]))
    ]
    with pytest.raises(ValueError, match="`video_fusion_top_k` must be a positive integer or None, got 0"):
        post_process_temporal_action_detection(fusion_outputs(), timing, video_fusion_top_k=0)


def test_merged_windows_take_each_unit_embedding_from_the_window_that_owns_it():
    windows = [(0, 40), (30, 70), (60, 100)]  # cores split at units 35 and 65
    window_outputs = []
    for index, (start, end) in enumerate(windows):
        # dim 0: the window's index; dim 1: the unit's index in the whole video
        unit_embeds = torch.stack([torch.full((end - start,), float(index)), torch.arange(start, end).float()], -1)
        window_outputs.append(
            {
                "logits": torch.zeros(1, 1, 2),
                "class_probabilities": torch.zeros(1, 1, 2),
                "actionness_logits": torch.zeros(1, 1),
                "pred_segments": torch.tensor([[[0.5, 0.1]]]),
                "feature_lengths": torch.tensor([end - start]),
                "unit_embeds": unit_embeds[None],
                "text_embeds": torch.eye(2),
            }
        )
    merged = merge_window_outputs(window_outputs, windows, 100)
    assert merged.unit_embeds.shape == (1, 100, 2)
    assert merged.unit_embeds[0, :, 1].tolist() == list(range(100))
    assert merged.unit_embeds[0, :, 0].tolist() == [0.0] * 35 + [1.0] * 30 + [2.0] * 35
    assert torch.equal(merged.text_embeds, torch.eye(2))
