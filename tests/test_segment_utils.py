"""Tests for `zeetad_hf.segment_utils`: segment formats, IoU / GIoU, time conversion and (Soft-)NMS."""

import math

import numpy as np
import pytest
import torch

from zeetad_hf import segment_utils
from zeetad_hf.segment_utils import (
    batched_nms,
    grid_to_seconds,
    normalized_segments_to_seconds,
    pairwise_generalized_segment_iou,
    pairwise_segment_iou,
    seconds_to_grid,
    seconds_to_normalized_segments,
    segment_cw_to_se,
    segment_se_to_cw,
)


# THUMOS14 ActionFormer I3D features: stride 4 frames, window 16 frames, 30 fps
THUMOS_TIME = {"fps": 30.0, "feature_stride": 4, "window_size": 16}


def nms_decay(iou: float, sigma: float = 0.5) -> float:
    return math.exp(-(iou**2) / sigma)


def nms_iou(segment_a: tuple[float, float], segment_b: tuple[float, float]) -> float:
    """IoU with the `+ 1e-6` segment lengths the NMS reference uses (float64, for hand-computed expectations)."""
    intersection = max(0.0, min(segment_a[1], segment_b[1]) - max(segment_a[0], segment_b[0]))
    union = (segment_a[1] - segment_a[0] + 1e-6) + (segment_b[1] - segment_b[0] + 1e-6) - intersection
    return intersection / union


def run_nms(segments: list, scores: list, class_ids: list | None = None, **kwargs):
    class_ids = [0] * len(scores) if class_ids is None else class_ids
    return batched_nms(
        torch.tensor(segments, dtype=torch.float32).view(-1, 2),
        torch.tensor(scores, dtype=torch.float32),
        torch.tensor(class_ids, dtype=torch.long),
        **kwargs,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Segment formats and IoU
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 2), (3, 4, 2), (0, 2)])
def test_segment_format_round_trip(shape):
    generator = torch.Generator().manual_seed(0)
    start_end = torch.rand(shape, generator=generator).sort(dim=-1).values
    center_width = segment_se_to_cw(start_end)
    assert center_width.shape == start_end.shape
    torch.testing.assert_close(segment_cw_to_se(center_width), start_end)


def test_segment_format_hand_computed():
    torch.testing.assert_close(segment_se_to_cw(torch.tensor([[1.0, 3.0]])), torch.tensor([[2.0, 2.0]]))
    torch.testing.assert_close(segment_cw_to_se(torch.tensor([[0.5, 0.2]])), torch.tensor([[0.4, 0.6]]))


@pytest.mark.parametrize(
    "segment_a, segment_b, expected_iou, expected_giou",
    [
        ([0.0, 2.0], [1.0, 3.0], 1 / 3, 1 / 3 - 0.0),  # hull 3 = union: no penalty
        ([0.0, 1.0], [2.0, 3.0], 0.0, -1 / 3),  # hull 3, union 2
        ([0.0, 4.0], [1.0, 2.0], 0.25, 0.25),  # containment
        ([0.0, 1.0], [0.0, 1.0], 1.0, 1.0),
        ([0.0, 1.0], [1.0, 2.0], 0.0, 0.0),  # touching: hull = union
    ],
)
def test_pairwise_iou_and_giou_hand_computed(segment_a, segment_b, expected_iou, expected_giou):
    segments_a, segments_b = torch.tensor([segment_a]), torch.tensor([segment_b])
    torch.testing.assert_close(pairwise_segment_iou(segments_a, segments_b), torch.tensor([[expected_iou]]))
    torch.testing.assert_close(
        pairwise_generalized_segment_iou(segments_a, segments_b), torch.tensor([[expected_giou]])
    )
    # symmetric
    torch.testing.assert_close(pairwise_segment_iou(segments_b, segments_a), torch.tensor([[expected_iou]]))


def test_pairwise_iou_shapes_and_zero_length():
    segments_a = torch.tensor([[0.0, 1.0], [2.0, 2.0], [0.5, 3.0]])
    segments_b = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    iou = pairwise_segment_iou(segments_a, segments_b)
    assert iou.shape == (3, 2)
    # two zero-length segments: 0 instead of NaN thanks to the clamped union
    assert iou[1, 1] == 0
    giou = pairwise_generalized_segment_iou(segments_a, segments_b)
    assert giou.shape == (3, 2)
    assert bool(torch.isfinite(giou).all())
    assert bool(((giou >= -1) & (giou <= iou)).all())


# ---------------------------------------------------------------------------------------------------------------------
# Time conversion
# ---------------------------------------------------------------------------------------------------------------------


def test_grid_to_seconds_protocol_example():
    # (10 * 4 + 0.5 * 16) / 30 = 48 / 30
    assert grid_to_seconds(10, **THUMOS_TIME) == pytest.approx(1.6)
    assert seconds_to_grid(1.6, **THUMOS_TIME) == pytest.approx(10.0)
    seconds = grid_to_seconds(torch.tensor([0.0, 10.0, 10.5]), **THUMOS_TIME)
    torch.testing.assert_close(seconds, torch.tensor([8 / 30, 1.6, 50 / 30]))


@pytest.mark.parametrize(
    "fps, feature_stride, window_size",
    [(30.0, 4, 16), (25.0, 16, 16), (15.0, 16.1, 16.1), (29.97, 8, 0)],
)
def test_grid_seconds_round_trip(fps, feature_stride, window_size):
    grid_positions = torch.linspace(-0.5, 2303.5, 97, dtype=torch.float64)
    seconds = grid_to_seconds(grid_positions, fps, feature_stride, window_size)
    torch.testing.assert_close(seconds_to_grid(seconds, fps, feature_stride, window_size), grid_positions)
    time_stamps = torch.linspace(0.0, 600.0, 53, dtype=torch.float64)
    grid = seconds_to_grid(time_stamps, fps, feature_stride, window_size)
    torch.testing.assert_close(grid_to_seconds(grid, fps, feature_stride, window_size), time_stamps)


def test_normalized_segments_to_seconds_hand_computed():
    num_units = 100
    # centre of unit 10 -> grid 10 -> 1.6 s; u = 0 -> grid -0.5 -> (-2 + 8) / 30 s; u = 1 -> grid 99.5 -> 406 / 30 s
    segments = torch.tensor([[10.5 / num_units, 0.0], [0.0, 1.0]], dtype=torch.float64)
    seconds = normalized_segments_to_seconds(segments, num_units, **THUMOS_TIME)
    torch.testing.assert_close(seconds, torch.tensor([[1.6, 6 / 30], [6 / 30, 406 / 30]], dtype=torch.float64))


def test_normalized_segments_to_seconds_clamps_to_duration():
    segments = torch.tensor([[0.0, 1.0], [0.5, 0.6], [-0.2, 1.3]])
    # without a window the left edge of unit 0 lies before 0 s: -0.5 * 4 / 30
    unclamped = normalized_segments_to_seconds(segments, 100, fps=30.0, feature_stride=4, window_size=0)
    assert unclamped[0, 0] < 0
    clamped = normalized_segments_to_seconds(segments, 100, fps=30.0, feature_stride=4, window_size=0, duration=10.0)
    torch.testing.assert_close(clamped, unclamped.clamp(0.0, 10.0))
    assert clamped[0, 0] == 0 and clamped[0, 1] == 10.0 and clamped[2, 1] == 10.0
    # segments inside the video are untouched
    torch.testing.assert_close(clamped[1], unclamped[1])


@pytest.mark.parametrize("num_units", [1, 37, 192, 2304])
def test_normalized_segments_round_trip(num_units):
    generator = torch.Generator().manual_seed(num_units)
    seconds = (torch.rand(20, 2, generator=generator, dtype=torch.float64) * 100).sort(dim=-1).values
    normalized = seconds_to_normalized_segments(seconds, num_units, **THUMOS_TIME)
    torch.testing.assert_close(normalized_segments_to_seconds(normalized, num_units, **THUMOS_TIME), seconds)
    normalized = torch.rand(20, 2, generator=generator, dtype=torch.float64).sort(dim=-1).values
    seconds = normalized_segments_to_seconds(normalized, num_units, **THUMOS_TIME)
    torch.testing.assert_close(seconds_to_normalized_segments(seconds, num_units, **THUMOS_TIME), normalized)


def test_seconds_to_normalized_segments_unit_centres():
    # the centre of unit i in seconds maps back to (i + 0.5) / num_units
    num_units = 8
    centres = grid_to_seconds(torch.arange(num_units, dtype=torch.float64), **THUMOS_TIME)
    normalized = seconds_to_normalized_segments(torch.stack((centres, centres), dim=-1), num_units, **THUMOS_TIME)
    expected = (torch.arange(num_units, dtype=torch.float64) + 0.5) / num_units
    torch.testing.assert_close(normalized[:, 0], expected)


@pytest.mark.parametrize(
    "overrides, name",
    [
        ({"fps": 0.0}, "fps"),
        ({"fps": -30.0}, "fps"),
        ({"fps": float("nan")}, "fps"),
        ({"feature_stride": 0}, "feature_stride"),
        ({"window_size": -1}, "window_size"),
        ({"num_units": 0}, "num_units"),
        ({"duration": -1.0}, "duration"),
    ],
)
def test_time_conversion_rejects_bad_arguments(overrides, name):
    arguments = {"num_units": 10, **THUMOS_TIME, "duration": 5.0, **overrides}
    with pytest.raises(ValueError, match=f"`{name}`"):
        normalized_segments_to_seconds(torch.zeros(1, 2), **arguments)
    if name not in ("num_units", "duration"):
        time_arguments = {key: arguments[key] for key in THUMOS_TIME}
        with pytest.raises(ValueError, match=f"`{name}`"):
            grid_to_seconds(1.0, **time_arguments)
        with pytest.raises(ValueError, match=f"`{name}`"):
            seconds_to_grid(1.0, **time_arguments)
    if name != "duration":
        arguments.pop("duration")
        with pytest.raises(ValueError, match=f"`{name}`"):
            seconds_to_normalized_segments(torch.zeros(1, 2), **arguments)


def test_time_conversion_rejects_bad_segment_shape():
    with pytest.raises(ValueError, match="`segments`"):
        normalized_segments_to_seconds(torch.zeros(4, 3), 10, **THUMOS_TIME)
    with pytest.raises(ValueError, match="`segments`"):
        seconds_to_normalized_segments(torch.zeros(4), 10, **THUMOS_TIME)


# ---------------------------------------------------------------------------------------------------------------------
# Soft-NMS: hand-computed cases
# ---------------------------------------------------------------------------------------------------------------------


def test_soft_nms_two_overlapping_segments():
    segments, scores, class_ids = run_nms([[0.0, 2.0], [1.0, 3.0]], [0.9, 0.8])
    expected_second = 0.8 * nms_decay(nms_iou((0, 2), (1, 3)))
    torch.testing.assert_close(segments, torch.tensor([[0.0, 2.0], [1.0, 3.0]]))
    torch.testing.assert_close(scores, torch.tensor([0.9, expected_second]), rtol=0, atol=1e-6)
    assert class_ids.tolist() == [0, 0]
    assert scores.dtype == torch.float32 and segments.dtype == torch.float32


def test_soft_nms_three_segments_repeated_decay():
    # step 1 picks [0, 2] (0.9): [1, 3] decays by IoU 1/3, [2, 4] touches it (IoU 0) and keeps 0.7
    # step 2 picks [2, 4] (0.7 > 0.8 * decay(1/3) = 0.64): [1, 3] decays again by IoU 1/3
    segments, scores, _ = run_nms([[0.0, 2.0], [1.0, 3.0], [2.0, 4.0]], [0.9, 0.8, 0.7])
    decay = nms_decay(nms_iou((0, 2), (1, 3)))
    assert segments.tolist() == [[0.0, 2.0], [2.0, 4.0], [1.0, 3.0]]
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.7, 0.8 * decay * decay]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("sigma", [0.3, 0.5, 0.75])
def test_soft_nms_sigma(sigma):
    segments, scores, _ = run_nms([[0.0, 4.0], [1.0, 4.0]], [0.6, 0.5], sigma=sigma)
    expected = 0.5 * nms_decay(nms_iou((0, 4), (1, 4)), sigma)
    torch.testing.assert_close(scores, torch.tensor([0.6, expected]), rtol=0, atol=1e-6)
    assert segments.tolist() == [[0.0, 4.0], [1.0, 4.0]]


def test_soft_nms_tie_order_is_first_occurrence():
    # equal scores before any swap: the candidate listed first is selected first, and the other one is decayed
    segments, scores, _ = run_nms([[1.0, 3.0], [0.0, 2.0]], [0.5, 0.5])
    assert segments.tolist() == [[1.0, 3.0], [0.0, 2.0]]
    assert scores[0] == 0.5 and scores[1] < 0.5
    # up to 16 detections the final sort keeps the selection order, and the class order across classes
    segments, scores, class_ids = run_nms([[5.0, 6.0], [0.0, 1.0], [8.0, 9.0]], [0.5, 0.5, 0.5], [3, 1, 3])
    assert class_ids.tolist() == [1, 3, 3]
    assert segments.tolist() == [[0.0, 1.0], [5.0, 6.0], [8.0, 9.0]]


def test_soft_nms_ties_follow_the_swapped_working_order():
    # [50, 60] is selected and swapped with [0, 10]: working order [50, 60], [1, 11], [0, 10]. Neither 0.5 overlaps
    # [50, 60], and the first of them in the working order is [1, 11], not the lowest input index [0, 10]
    segments_in, scores_in = [[0.0, 10.0], [1.0, 11.0], [50.0, 60.0]], [0.5, 0.5, 0.9]
    segments, scores, _ = run_nms(segments_in, scores_in, max_segments=2)
    assert segments.tolist() == [[50.0, 60.0], [1.0, 11.0]]
    assert scores.tolist() == [np.float32(0.9), 0.5]
    # then [0, 10] is decayed by [1, 11]
    segments, scores, _ = run_nms(segments_in, scores_in, max_segments=3)
    assert segments.tolist() == [[50.0, 60.0], [1.0, 11.0], [0.0, 10.0]]
    torch.testing.assert_close(scores[2], torch.tensor(0.5 * nms_decay(nms_iou((1, 11), (0, 10)))))
    # the oracle agrees
    assert [index for index, _ in _reference_soft_nms(segments_in, scores_in, sigma=0.5, min_score=0.001)] == [2, 1, 0]


def test_soft_nms_dropped_segment_is_overwritten_by_the_last_one():
    # [0, 1] (0.9) decays its duplicate (0.002 -> 0.0003) below `min_score`; the reference overwrites the duplicate
    # with the last element [30, 31]: working order [0, 1], [30, 31], [10, 11], [20, 21], so among the tied 0.5
    # [30, 31] comes first
    segments_in = [[0.0, 1.0], [0.0, 1.0], [10.0, 11.0], [20.0, 21.0], [30.0, 31.0]]
    segments, scores, _ = run_nms(segments_in, [0.9, 0.002, 0.5, 0.5, 0.5], min_score=0.001)
    assert segments.tolist() == [[0.0, 1.0], [30.0, 31.0], [10.0, 11.0], [20.0, 21.0]]
    assert scores.tolist()[1:] == [0.5, 0.5, 0.5]


def test_soft_nms_tie_created_by_a_decay():
    # [1, 3] (0.8) is decayed by [0, 2] (0.9) to exactly the score of [10, 12], which does not overlap [0, 2].
    # [0, 2] was swapped to the front, so the working order is [0, 2], [1, 3], [10, 12] and [1, 3] wins the tie
    # although [10, 12] comes first in the input
    length = np.float32(2.0) + np.float32(1e-6)
    iou = np.float32(1.0) / (length + length - np.float32(1.0))
    decayed = np.float32(0.8) * np.float32(math.exp(-(iou * iou) / np.float32(0.5)))
    segments, scores, _ = run_nms([[10.0, 12.0], [1.0, 3.0], [0.0, 2.0]], [float(decayed), 0.8, 0.9])
    assert segments.tolist() == [[0.0, 2.0], [1.0, 3.0], [10.0, 12.0]]
    assert scores.tolist() == [np.float32(0.9), decayed, decayed]


def test_final_sort_is_torch_sort_of_the_concatenated_classes():
    # ActionFormer concatenates the classes in ascending id, each in selection order, and sorts with `torch.sort`,
    # which is not stable: with 17 or more detections, tied scores leave the class and selection order
    num_classes = 20
    tied_order = torch.sort(torch.full((num_classes,), 0.5), descending=True).indices.tolist()
    assert tied_order != sorted(tied_order)
    class_ids_in = [(7 * index) % num_classes for index in range(num_classes)]
    segments_in = [[float(class_id), class_id + 0.5] for class_id in class_ids_in]
    _, scores, class_ids = run_nms(segments_in, [0.5] * num_classes, class_ids_in, max_segments=5)
    assert class_ids.tolist() == tied_order[:5]
    assert scores.tolist() == [0.5] * 5
    # the same inside one class: disjoint tied segments are selected in input order, then reordered by the sort
    segments_in = [[3.0 * index, 3.0 * index + 1] for index in range(num_classes)]
    segments, _, _ = run_nms(segments_in, [0.5] * num_classes, max_segments=num_classes)
    assert segments[:, 0].tolist() == [3.0 * index for index in tied_order]


def test_hard_nms_ties_follow_torch_sort():
    # hard NMS scans a class in `torch.sort(scores, descending=True)` order, tied scores included
    num_candidates = 20
    tied_order = torch.sort(torch.full((num_candidates,), 0.5), descending=True).indices.tolist()
    segments_in = [[3.0 * index, 3.0 * index + 1] for index in range(num_candidates)]
    segments, _, _ = run_nms(segments_in, [0.5] * num_candidates, use_soft_nms=False, max_segments=5)
    assert segments[:, 0].tolist() == [3.0 * index for index in tied_order[:5]]
    # so the first candidate in that order suppresses its tied neighbour with a lower input index, not the reverse
    first = tied_order[0]
    segments_in[first - 1] = [3.0 * first + 0.25, 3.0 * first + 1.25]
    segments, _, _ = run_nms(segments_in, [0.5] * num_candidates, use_soft_nms=False, max_segments=num_candidates)
    starts = segments[:, 0].tolist()
    assert 3.0 * first in starts and 3.0 * first + 0.25 not in starts


def test_soft_nms_discards_below_min_score():
    # identical segments: IoU ~ 1, decay ~ exp(-2) = 0.135 -> 0.05 becomes ~0.0068
    segments_in, scores_in = [[0.0, 1.0], [0.0, 1.0]], [0.9, 0.05]
    decayed = 0.05 * nms_decay(nms_iou((0, 1), (0, 1)))
    _, scores, _ = run_nms(segments_in, scores_in, min_score=0.01)
    torch.testing.assert_close(scores, torch.tensor([0.9]))
    _, scores, _ = run_nms(segments_in, scores_in, min_score=0.005)
    torch.testing.assert_close(scores, torch.tensor([0.9, decayed]), rtol=0, atol=1e-6)


def test_soft_nms_min_score_only_applies_after_a_decay():
    # reference behaviour: the first pick of a class is never tested against `min_score`, every later candidate is
    # tested after its (possibly unit) decay, even without any overlap
    segments, scores, class_ids = run_nms(
        [[0.0, 1.0], [5.0, 6.0], [0.0, 1.0]], [0.0005, 0.0004, 0.3], [0, 0, 1], min_score=0.001
    )
    assert class_ids.tolist() == [1, 0]
    torch.testing.assert_close(scores, torch.tensor([0.3, 0.0005]))
    assert segments.tolist() == [[0.0, 1.0], [0.0, 1.0]]
    # class-agnostic (block selection): every score below `min_score`, the first pick is still kept
    segments, scores, _ = run_nms([[5.0, 6.0], [0.0, 1.0]], [0.0004, 0.0005], multiclass=False, min_score=0.001)
    torch.testing.assert_close(scores, torch.tensor([0.0005]))
    assert segments.tolist() == [[0.0, 1.0]]


@pytest.mark.parametrize("spread", [1, 10**7])
def test_per_class_nms_depends_on_the_order_of_class_ids_only(spread):
    # classes are ranked by id (counted for a narrow range, sorted for a wide one), negative ids included; the
    # returned ids are the input's
    segments, scores, class_ids = _random_candidates(seed=4, num_candidates=300, num_classes=4, ties="none")
    id_of_rank = torch.tensor([-5, 0, 3, 3 + spread])
    expected = batched_nms(segments, scores, class_ids, max_segments=50)
    kept_segments, kept_scores, kept_class_ids = batched_nms(segments, scores, id_of_rank[class_ids], max_segments=50)
    assert torch.equal(kept_segments, expected[0]) and torch.equal(kept_scores, expected[1])
    assert torch.equal(kept_class_ids, id_of_rank[expected[2]])
    # the ranks themselves, against NumPy's sort-based inverse
    ids = id_of_rank[class_ids].numpy()
    unique_ids, expected_ranks = np.unique(ids, return_inverse=True)
    ranks, num_classes = segment_utils._rank_of_class(ids)
    assert ranks.tolist() == expected_ranks.tolist() and num_classes == unique_ids.size
    narrow_ids = np.array([127, -128, 0, 127], dtype=np.int8)
    assert segment_utils._rank_of_class(narrow_ids)[0].tolist() == [2, 0, 1, 2]


def test_soft_nms_classes_are_independent():
    segments_in, scores_in = [[0.0, 2.0], [0.0, 2.0], [1.0, 3.0]], [0.9, 0.8, 0.7]
    # multiclass: the class-1 duplicate is not decayed by the class-0 pick
    _, scores, class_ids = run_nms(segments_in, scores_in, [0, 1, 0])
    expected = [0.9, 0.8, 0.7 * nms_decay(nms_iou((0, 2), (1, 3)))]
    torch.testing.assert_close(scores, torch.tensor(expected), rtol=0, atol=1e-6)
    assert class_ids.tolist() == [0, 1, 0]
    # class-agnostic: everything decays against everything, the class ids travel with the segments
    segments, scores, class_ids = run_nms(segments_in, scores_in, [0, 1, 0], multiclass=False)
    iou_duplicate, iou_shifted = nms_iou((0, 2), (0, 2)), nms_iou((0, 2), (1, 3))
    second = 0.8 * nms_decay(iou_duplicate)
    third = 0.7 * nms_decay(iou_shifted)
    # third (0.7 * 0.80 = 0.56) beats second (0.8 * 0.135 = 0.11), then decays second by IoU 1/3
    assert class_ids.tolist() == [0, 0, 1]
    assert segments.tolist() == [[0.0, 2.0], [1.0, 3.0], [0.0, 2.0]]
    expected = [0.9, third, second * nms_decay(iou_shifted)]
    torch.testing.assert_close(scores, torch.tensor(expected), rtol=0, atol=1e-6)


def test_hard_nms():
    segments_in = [[0.0, 2.0], [1.0, 3.0], [10.0, 12.0], [0.1, 2.0]]
    scores_in = [0.9, 0.8, 0.7, 0.001]
    # IoU([0, 2], [1, 3]) = 1/3 >= 0.3: suppressed; the last candidate is dropped by `score > min_score`
    segments, scores, _ = run_nms(segments_in, scores_in, use_soft_nms=False, iou_threshold=0.3, min_score=0.001)
    assert segments.tolist() == [[0.0, 2.0], [10.0, 12.0]]
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.7]))
    segments, scores, _ = run_nms(segments_in, scores_in, use_soft_nms=False, iou_threshold=0.4, min_score=0.001)
    assert segments.tolist() == [[0.0, 2.0], [1.0, 3.0], [10.0, 12.0]]
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.8, 0.7]))
    # a suppressed candidate does not suppress others: [1, 3] is removed by [0, 2], so [2.5, 4.5] survives
    segments, _, _ = run_nms([[0.0, 2.0], [1.0, 3.0], [2.5, 4.5]], [0.9, 0.8, 0.7], use_soft_nms=False)
    assert segments.tolist() == [[0.0, 2.0], [2.5, 4.5]]


def test_hard_nms_per_class():
    segments, scores, class_ids = run_nms([[0.0, 2.0], [0.0, 2.0]], [0.9, 0.8], [0, 1], use_soft_nms=False)
    assert class_ids.tolist() == [0, 1]
    segments, scores, class_ids = run_nms(
        [[0.0, 2.0], [0.0, 2.0]], [0.9, 0.8], [0, 1], use_soft_nms=False, multiclass=False
    )
    assert class_ids.tolist() == [0]


def _hand_voting(kept, candidates, threshold, use_iou):
    def plain_iou(segment_a, segment_b):
        intersection = max(0.0, min(segment_a[1], segment_b[1]) - max(segment_a[0], segment_b[0]))
        return intersection / ((segment_a[1] - segment_a[0]) + (segment_b[1] - segment_b[0]) - intersection)

    weights = []
    for segment, score in candidates:
        iou = plain_iou(kept, segment)
        weights.append(score * (iou if use_iou else 1.0) if iou >= threshold else 0.0)
    total = sum(weights)
    return [sum(w * segment[i] for w, (segment, _) in zip(weights, candidates)) / total for i in range(2)]


@pytest.mark.parametrize("voting_weight", ["score_iou", "score"])
def test_segment_voting(voting_weight):
    candidates = [([0.0, 2.0], 0.9), ([0.2, 2.2], 0.6), ([10.0, 11.0], 0.5), ([0.0, 4.0], 0.3)]
    segments_in = [segment for segment, _ in candidates]
    scores_in = [score for _, score in candidates]
    segments, scores, _ = run_nms(
        segments_in, scores_in, multiclass=False, voting_threshold=0.7, voting_weight=voting_weight
    )
    plain_segments, plain_scores, _ = run_nms(segments_in, scores_in, multiclass=False)
    # voting moves segments only, never scores or order
    torch.testing.assert_close(scores, plain_scores)
    use_iou = voting_weight == "score_iou"
    expected = [_hand_voting(segment, candidates, 0.7, use_iou) for segment in plain_segments.tolist()]
    torch.testing.assert_close(segments, torch.tensor(expected), rtol=0, atol=1e-5)
    # [0, 2] and [0.2, 2.2] (IoU 0.82) are averaged, [10, 11] and [0, 4] have no neighbour
    assert segments[0, 0] > 0 and segments[0, 1] > 2
    assert plain_segments.tolist()[1] == [10.0, 11.0] and segments.tolist()[1] == [10.0, 11.0]


def test_voting_is_ignored_in_multiclass_mode():
    segments_in, scores_in = [[0.0, 2.0], [0.2, 2.2]], [0.9, 0.6]
    voted = run_nms(segments_in, scores_in, multiclass=True, voting_threshold=0.7)
    plain = run_nms(segments_in, scores_in, multiclass=True)
    for voted_tensor, plain_tensor in zip(voted, plain):
        torch.testing.assert_close(voted_tensor, plain_tensor)


def test_hard_nms_voting_uses_unfiltered_candidates():
    # the 0.0005 candidate is dropped by the hard-NMS score filter but still votes
    candidates = [([0.0, 2.0], 0.9), ([0.1, 2.1], 0.0005)]
    segments, _, _ = run_nms(
        [segment for segment, _ in candidates],
        [score for _, score in candidates],
        multiclass=False,
        use_soft_nms=False,
        voting_threshold=0.5,
        voting_weight="score",
    )
    torch.testing.assert_close(segments, torch.tensor([_hand_voting([0.0, 2.0], candidates, 0.5, False)]))


def test_voting_keeps_degenerate_segments_finite():
    # a zero-length kept segment has no neighbour with a defined IoU: it is returned unchanged instead of NaN
    segments, _, _ = run_nms([[1.0, 1.0], [0.0, 2.0]], [0.9, 0.5], multiclass=False, voting_threshold=0.5)
    assert segments.tolist() == [[1.0, 1.0], [0.0, 2.0]]


@pytest.mark.parametrize("max_segments", [1, 3, 7])
def test_max_segments(max_segments):
    segments_in = [[float(3 * i), float(3 * i + 1)] for i in range(5)]
    scores_in = [0.1, 0.5, 0.3, 0.9, 0.7]
    segments, scores, _ = run_nms(segments_in, scores_in, max_segments=max_segments)
    expected = sorted(scores_in, reverse=True)[:max_segments]
    torch.testing.assert_close(scores, torch.tensor(expected))
    assert segments.shape == (len(expected), 2)


@pytest.mark.parametrize("use_soft_nms", [True, False])
@pytest.mark.parametrize("multiclass", [True, False])
def test_empty_input(use_soft_nms, multiclass):
    segments, scores, class_ids = batched_nms(
        torch.zeros(0, 2), torch.zeros(0), torch.zeros(0, dtype=torch.long), use_soft_nms=use_soft_nms
    )
    assert segments.shape == (0, 2) and segments.dtype == torch.float32
    assert scores.shape == (0,) and scores.dtype == torch.float32
    assert class_ids.shape == (0,) and class_ids.dtype == torch.long
    # everything filtered away by hard NMS
    segments, scores, class_ids = run_nms([[0.0, 1.0]], [0.0001], use_soft_nms=False, multiclass=multiclass)
    assert segments.shape == (0, 2) and scores.shape == (0,) and class_ids.shape == (0,)


def test_float64_input_gives_float32_output():
    segments, scores, class_ids = batched_nms(
        torch.tensor([[0.0, 1.0]], dtype=torch.float64),
        torch.tensor([0.5], dtype=torch.float64),
        torch.tensor([2], dtype=torch.int32),
    )
    assert segments.dtype == torch.float32 and scores.dtype == torch.float32 and class_ids.dtype == torch.int32


@pytest.mark.parametrize(
    "inputs, kwargs, name",
    [
        ((torch.zeros(3, 3), torch.zeros(3), torch.zeros(3, dtype=torch.long)), {}, "segments"),
        ((torch.zeros(3, 2), torch.zeros(2), torch.zeros(3, dtype=torch.long)), {}, "scores"),
        ((torch.zeros(3, 2), torch.zeros(3), torch.zeros(3, 1, dtype=torch.long)), {}, "class_ids"),
        ((torch.zeros(3, 2), torch.zeros(3), torch.zeros(3)), {}, "class_ids"),
        ((torch.zeros(1, 2), torch.tensor([float("nan")]), torch.zeros(1, dtype=torch.long)), {}, "scores"),
        ((torch.tensor([[0.0, float("nan")]]), torch.zeros(1), torch.zeros(1, dtype=torch.long)), {}, "segments"),
        ((torch.tensor([[float("-inf"), 1.0]]), torch.zeros(1), torch.zeros(1, dtype=torch.long)), {}, "segments"),
        ((torch.tensor([[0.0, 1.0], [2.0, 1.5]]), torch.zeros(2), torch.zeros(2, dtype=torch.long)), {}, "segments"),
        ((torch.zeros(1, 2), torch.zeros(1), torch.zeros(1, dtype=torch.long)), {"sigma": 0.0}, "sigma"),
        ((torch.zeros(1, 2), torch.zeros(1), torch.zeros(1, dtype=torch.long)), {"max_segments": 0}, "max_segments"),
        (
            (torch.zeros(1, 2), torch.zeros(1), torch.zeros(1, dtype=torch.long)),
            {"voting_threshold": 1.5},
            "voting_threshold",
        ),
        (
            (torch.zeros(1, 2), torch.zeros(1), torch.zeros(1, dtype=torch.long)),
            {"voting_weight": "iou"},
            "voting_weight",
        ),
    ],
)
def test_batched_nms_rejects_bad_inputs(inputs, kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        batched_nms(*inputs, **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Soft-NMS: randomized comparison with a literal port of ActionFormer's NMS (the oracle)
# ---------------------------------------------------------------------------------------------------------------------


def _decay_float32(iou: np.float32, sigma: np.float32) -> np.float32:
    """`std::exp(-(ovr * ovr) / sigma)` on floats: float32 exponent, exponential rounded once to float32."""
    return np.float32(math.exp(-(iou * iou) / sigma))


def _reference_soft_nms(segments: list, scores: list, sigma: float, min_score: float) -> list[tuple[int, np.float32]]:
    """Literal, element-by-element port of ActionFormer's `softnms_1d_cpu` (method 2, Gaussian) in float32.

    Returns `(input index, final score)` in selection order.
    """
    starts = [np.float32(segment[0]) for segment in segments]
    ends = [np.float32(segment[1]) for segment in segments]
    current_scores = [np.float32(score) for score in scores]
    lengths = [end - start + np.float32(1e-6) for start, end in zip(starts, ends)]
    indices = list(range(len(segments)))
    working_arrays = (starts, ends, current_scores, lengths, indices)
    sigma, min_score = np.float32(sigma), np.float32(min_score)
    num_segments, selected = len(segments), []
    position = 0
    while position < num_segments:
        # first maximum of the working array from `position` on
        max_position = position
        for other in range(position + 1, num_segments):
            if current_scores[max_position] < current_scores[other]:
                max_position = other
        # swap it with the element at `position`
        for array in working_arrays:
            array[position], array[max_position] = array[max_position], array[position]
        selected.append((indices[position], current_scores[position]))
        other = position + 1
        while other < num_segments:
            intersection = max(np.float32(0), min(ends[position], ends[other]) - max(starts[position], starts[other]))
            iou = intersection / (lengths[position] + lengths[other] - intersection)
            current_scores[other] = current_scores[other] * _decay_float32(iou, sigma)
            if current_scores[other] < min_score:
                # discard: overwrite with the last element, which is examined next
                for array in working_arrays:
                    array[other] = array[num_segments - 1]
                num_segments -= 1
            else:
                other += 1
        position += 1
    return selected


def _reference_hard_nms(segments: list, scores: list, iou_threshold: float) -> list[tuple[int, np.float32]]:
    """Literal port of ActionFormer's `nms_1d_cpu`: scan in `torch.sort` order, suppress later overlapping ones."""
    order = torch.sort(torch.tensor(scores, dtype=torch.float32), descending=True).indices.tolist()
    starts = [np.float32(segment[0]) for segment in segments]
    ends = [np.float32(segment[1]) for segment in segments]
    lengths = [end - start + np.float32(1e-6) for start, end in zip(starts, ends)]
    iou_threshold = np.float32(iou_threshold)
    is_selected = [True] * len(order)
    for rank, index in enumerate(order):
        if not is_selected[rank]:
            continue
        for other_rank in range(rank + 1, len(order)):
            other = order[other_rank]
            if not is_selected[other_rank]:
                continue
            intersection = max(np.float32(0), min(ends[index], ends[other]) - max(starts[index], starts[other]))
            if intersection / (lengths[index] + lengths[other] - intersection) >= iou_threshold:
                is_selected[other_rank] = False
    return [(index, np.float32(scores[index])) for rank, index in enumerate(order) if is_selected[rank]]


def _reference_voting(kept_segments: list, segments: list, scores: list, threshold: float, weight: str) -> list:
    voted = []
    for kept in kept_segments:
        numerator, denominator = [0.0, 0.0], 0.0
        for segment, score in zip(segments, scores):
            intersection = max(0.0, min(kept[1], segment[1]) - max(kept[0], segment[0]))
            iou = intersection / ((kept[1] - kept[0]) + (segment[1] - segment[0]) - intersection)
            if iou >= threshold:
                neighbour_weight = score * iou if weight == "score_iou" else score
                numerator = [
                    numerator[0] + neighbour_weight * segment[0],
                    numerator[1] + neighbour_weight * segment[1],
                ]
                denominator += neighbour_weight
        voted.append([numerator[0] / denominator, numerator[1] / denominator])
    return voted


def _reference_batched_nms(
    segments: list,
    scores: list,
    class_ids: list,
    *,
    multiclass: bool,
    use_soft_nms: bool,
    sigma: float,
    min_score: float,
    iou_threshold: float,
    max_segments: int,
    voting_threshold: float,
    voting_weight: str,
):
    """ActionFormer's `batched_nms` around the two ports: classes in ascending id, each capped at `max_segments`,
    concatenated, then `torch.sort(descending=True)` (not stable) and cut to `max_segments`."""
    candidates = list(range(len(scores)))
    if not use_soft_nms:
        candidates = [index for index in candidates if np.float32(scores[index]) > np.float32(min_score)]
    groups = sorted({class_ids[index] for index in candidates}) if multiclass else [None]
    selected = []
    for group in groups:
        members = [index for index in candidates if group is None or class_ids[index] == group]
        member_segments, member_scores = [segments[index] for index in members], [scores[index] for index in members]
        if use_soft_nms:
            picks = _reference_soft_nms(member_segments, member_scores, sigma, min_score)
        else:
            picks = _reference_hard_nms(member_segments, member_scores, iou_threshold)
        selected += [(members[local_index], score) for local_index, score in picks[:max_segments]]
    final_order = torch.sort(torch.tensor([score for _, score in selected]), descending=True).indices.tolist()
    selected = [selected[position] for position in final_order[:max_segments]]

    kept_segments = [segments[index] for index, _ in selected]
    if not multiclass and voting_threshold > 0:
        kept_segments = _reference_voting(kept_segments, segments, scores, voting_threshold, voting_weight)
    return kept_segments, [score for _, score in selected], [class_ids[index] for index, _ in selected]


def _random_candidates(
    seed: int, num_candidates: int, num_classes: int, ties: str, score_offset: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random candidates; `ties`: "none" (all scores different), "duplicates" (repeated candidates and groups of
    disjoint segments with one score, as after multi-level decoding) or "quantized" (scores on a 1/16 grid, as with
    low-precision scores, plus the duplicates)."""
    generator = torch.Generator().manual_seed(seed)
    starts = torch.rand(num_candidates, generator=generator) * 60
    lengths = torch.rand(num_candidates, generator=generator) * 10 + 0.05
    segments = torch.stack((starts, starts + lengths), dim=-1)
    scores = torch.randperm(num_candidates, generator=generator).float().add(1).div(num_candidates + 1)
    class_ids = torch.randint(0, num_classes, (num_candidates,), generator=generator)
    if ties == "quantized":
        scores = (scores * 16).ceil() / 16
    if ties != "none":
        # duplicated candidates (same segment and score)
        segments[1::17], scores[1::17], class_ids[1::17] = segments[::17][: len(segments[1::17])], 0.5, 2
        segments[2::17] = segments[::17][: len(segments[2::17])]
        # disjoint short segments with one score keep ties alive through many steps
        disjoint_starts = torch.arange(len(segments[3::23]), dtype=torch.float32) * 100 + 1e3
        segments[3::23] = torch.stack((disjoint_starts, disjoint_starts + 1), dim=-1)
        scores[3::23] = 0.25
    return segments, scores + score_offset, class_ids


def assert_within_one_ulp(actual: torch.Tensor, expected: list) -> None:
    expected = torch.tensor(expected, dtype=torch.float32)
    assert actual.shape == expected.shape and actual.dtype == torch.float32
    # neighbouring float32 values of the same sign have neighbouring bit patterns
    distance = (actual.view(torch.int32).long() - expected.view(torch.int32).long()).abs()
    assert int(distance.max()) <= 1, (actual, expected)


NMS_OPTIONS = [
    {"multiclass": True, "use_soft_nms": True, "sigma": 0.5, "min_score": 0.001, "max_segments": 1000},
    {"multiclass": True, "use_soft_nms": True, "sigma": 0.5, "min_score": 0.05, "max_segments": 25},
    {"multiclass": True, "use_soft_nms": True, "sigma": 0.3, "min_score": 0.01, "max_segments": 120},
    {"multiclass": True, "use_soft_nms": True, "sigma": 0.5, "min_score": 0.2, "max_segments": 7},
    {"multiclass": True, "use_soft_nms": False, "iou_threshold": 0.1, "min_score": 0.001, "max_segments": 1000},
    {"multiclass": True, "use_soft_nms": False, "iou_threshold": 0.5, "min_score": 0.1, "max_segments": 30},
    {"multiclass": False, "use_soft_nms": True, "sigma": 0.75, "min_score": 0.001, "max_segments": 100},
    {"multiclass": False, "use_soft_nms": True, "sigma": 0.75, "min_score": 0.001, "max_segments": 1000},
    {"multiclass": False, "use_soft_nms": True, "sigma": 0.5, "min_score": 0.1, "max_segments": 1000},
    # decays of heavily overlapping segments underflow to 0
    {"multiclass": False, "use_soft_nms": True, "sigma": 0.008, "min_score": 0.001, "max_segments": 1000},
    {"multiclass": False, "use_soft_nms": False, "iou_threshold": 0.3, "min_score": 0.2, "max_segments": 1000},
    {"multiclass": False, "voting_threshold": 0.9, "voting_weight": "score_iou", "max_segments": 100},
    {"multiclass": False, "voting_threshold": 0.75, "voting_weight": "score", "max_segments": 100},
    {"multiclass": False, "use_soft_nms": False, "voting_threshold": 0.5, "min_score": 0.3},
]


@pytest.fixture(params=["lockstep", "best_first_or_block"])
def selection_strategy(request, monkeypatch):
    """Force every call through lockstep selection, or none through it: then one group of Soft-NMS with non-negative
    scores goes through block selection, anything else through best-first selection (each fast path falls back to the
    working-order path on a tie)."""
    use_lockstep = request.param == "lockstep"
    monkeypatch.setattr(segment_utils, "_LOCKSTEP_MIN_GROUPS", 1 if use_lockstep else 1 << 30)
    monkeypatch.setattr(segment_utils, "_LOCKSTEP_MIN_FILL", 0.0)
    return request.param


@pytest.mark.parametrize("options", NMS_OPTIONS)
@pytest.mark.parametrize("ties", ["none", "duplicates", "quantized"])
@pytest.mark.parametrize("seed", [0, 1])
def test_batched_nms_matches_actionformer_oracle(options, ties, seed, selection_strategy):
    segments, scores, class_ids = _random_candidates(
        seed=seed + 10 * len(str(options)), num_candidates=300, num_classes=5, ties=ties
    )
    check_against_oracle(segments, scores, class_ids, options, min_kept=min(20, options.get("max_segments", 200)))


@pytest.mark.parametrize("multiclass", [True, False])
def test_batched_nms_matches_actionformer_oracle_with_negative_scores(multiclass, selection_strategy):
    # negative scores grow under a decay: the selections of a class are no longer sorted, no early stop
    segments, scores, class_ids = _random_candidates(
        seed=3, num_candidates=200, num_classes=4, ties="quantized", score_offset=-0.5
    )
    options = {"multiclass": multiclass, "min_score": -0.4, "max_segments": 40}
    check_against_oracle(segments, scores, class_ids, options, min_kept=40)


@pytest.mark.parametrize("use_soft_nms", [True, False])
@pytest.mark.parametrize("num_classes", [1, 3, 12])
def test_selection_paths_agree(use_soft_nms, num_classes):
    # both fast paths and the working-order path give the same final list; the fast paths give up on a tie
    segments, scores, class_ids = _random_candidates(
        seed=num_classes, num_candidates=400, num_classes=num_classes, ties="none"
    )
    _, group_ids = np.unique(class_ids.numpy(), return_inverse=True)
    inputs = (segments[:, 0].numpy(), segments[:, 1].numpy(), scores.numpy(), group_ids, int(group_ids.max()) + 1)
    options = {"use_soft_nms": use_soft_nms, "sigma": 0.5, "min_score": 0.01, "iou_threshold": 0.3}
    block_options = {"sigma": 0.5, "min_score": 0.01}
    for max_selections in (1, 10, 60, 1000):
        results = [
            segment_utils._lockstep_selection(*inputs, max_selections=max_selections, **options),
            *(
                [segment_utils._block_selection(*inputs[:3], max_selections=max_selections, **block_options)]
                if num_classes == 1 and use_soft_nms
                else []
            ),
            segment_utils._best_first_selection(
                *inputs, max_selections=max_selections, track_working_order=False, **options
            ),
            segment_utils._best_first_selection(
                *inputs, max_selections=max_selections, track_working_order=True, **options
            ),
        ]
        final_lists = []
        for selected, selected_scores in results:
            order = torch.sort(torch.from_numpy(selected_scores), descending=True).indices[:max_selections].numpy()
            final_lists.append((selected[order].tolist(), selected_scores[order].tolist()))
        assert all(final_list == final_lists[0] for final_list in final_lists[1:])
    # a class whose candidates all share the highest score
    tied_scores = inputs[2].copy()
    tied_scores[group_ids == group_ids[0]] = 1.0
    tied_inputs = (*inputs[:2], tied_scores, *inputs[3:])
    assert segment_utils._lockstep_selection(*tied_inputs, max_selections=10, **options) is None
    assert (
        segment_utils._best_first_selection(*tied_inputs, max_selections=10, track_working_order=False, **options)
        is None
    )
    if num_classes == 1 and use_soft_nms:
        assert segment_utils._block_selection(*tied_inputs[:3], max_selections=10, **block_options) is None


def test_block_selection_ties_at_the_block_boundary_and_scores_below_min_score():
    block_size = segment_utils._BLOCK_SIZE
    # disjoint segments with distinct scores fill the block but for its last member; that member and the best score
    # outside the block tie at 0.3 on two overlapping segments; then a segment below `min_score` that overlaps nothing
    starts = [10.0 * index for index in range(block_size - 1)] + [5000.0, 5001.0, 6000.0]
    scores = [0.9 - 0.01 * index for index in range(block_size - 1)] + [0.3, 0.3, 0.005]
    segments = [[start, start + 1.0] if start < 5000 else [start, start + 10.0] for start in starts]
    for order in ([block_size - 1, block_size], [block_size, block_size - 1]):
        # both orders of the tied pair: the reference selects the first in its working order
        permutation = [*range(block_size - 1), *order, block_size + 1]
        inputs = (
            np.array([segments[index][0] for index in permutation], dtype=np.float32),
            np.array([segments[index][1] for index in permutation], dtype=np.float32),
            np.array([scores[index] for index in permutation], dtype=np.float32),
        )
        # the tie straddles the block boundary: block selection leaves it to the working order
        assert segment_utils._block_selection(*inputs, max_selections=100, sigma=0.5, min_score=0.01) is None
        check_against_oracle(
            torch.tensor([segments[index] for index in permutation]),
            torch.tensor([scores[index] for index in permutation]),
            torch.zeros(len(permutation), dtype=torch.long),
            {"multiclass": False, "sigma": 0.5, "min_score": 0.01},
            min_kept=block_size + 1,
        )
    # without the tie (0.3 and 0.31), and with the score below `min_score` dropped at the first selection, it decides
    # every selection itself: the reference's list, without the segment below `min_score`
    untied_scores = np.array(scores[:-3] + [0.31, 0.3, 0.005], dtype=np.float32)
    starts_array = np.array(starts, dtype=np.float32)
    ends_array = np.array([segment[1] for segment in segments], dtype=np.float32)
    selected, selected_scores = segment_utils._block_selection(
        starts_array, ends_array, untied_scores, max_selections=100, sigma=0.5, min_score=0.01
    )
    expected = _reference_soft_nms(segments, untied_scores.tolist(), sigma=0.5, min_score=0.01)
    assert selected.tolist() == [index for index, _ in expected] and block_size + 1 not in selected.tolist()
    assert_within_one_ulp(torch.from_numpy(selected_scores), [score for _, score in expected])


@pytest.mark.parametrize("pairs_per_update", [0, segment_utils._PAIRS_PER_UPDATE])
def test_block_selection_of_short_segments_behind_a_long_one(pairs_per_update, monkeypatch):
    # a long first segment widens every window (slots from the first whose running maximum end passes a start), so
    # the windows of a round's selections overlap; decaying their span at once computes many empty pairs, and with
    # `pairs_per_update=0` they are decayed one selection at a time instead; with the long one gone, far-apart
    # selections are decayed together
    monkeypatch.setattr(segment_utils, "_PAIRS_PER_UPDATE", pairs_per_update)
    generator = torch.Generator().manual_seed(5)
    starts = torch.rand(3000, generator=generator) * 600
    ends = starts + torch.rand(3000, generator=generator) * 2 + 0.05
    starts[0], ends[0] = 0.0, 400.0
    scores = torch.randperm(3000, generator=generator).float().add(1).div(3001)
    inputs = (starts.numpy(), ends.numpy(), scores.numpy())
    for max_selections in (100, 3000):
        options = {"max_selections": max_selections, "sigma": 0.5, "min_score": 0.001}
        selected, selected_scores = segment_utils._block_selection(*inputs, **options)
        expected, expected_scores = segment_utils._best_first_selection(
            *inputs,
            np.zeros(3000, dtype=np.int64),
            1,
            **options,
            use_soft_nms=True,
            iou_threshold=0.1,
            track_working_order=True,
        )
        assert selected.tolist() == expected.tolist()
        assert selected_scores.tobytes() == expected_scores.tobytes()


def check_against_oracle(segments, scores, class_ids, options: dict, min_kept: int) -> None:
    out_segments, out_scores, out_class_ids = batched_nms(segments, scores, class_ids, **options)
    defaults = {"use_soft_nms": True, "sigma": 0.5, "min_score": 0.001, "iou_threshold": 0.1, "max_segments": 200}
    defaults.update({"voting_threshold": 0.0, "voting_weight": "score_iou"})
    expected_segments, expected_scores, expected_class_ids = _reference_batched_nms(
        segments.tolist(), scores.tolist(), class_ids.tolist(), **{**defaults, **options}
    )
    assert len(expected_scores) >= min_kept
    assert out_class_ids.tolist() == expected_class_ids
    assert_within_one_ulp(out_scores, expected_scores)
    if options.get("voting_threshold", 0) > 0:
        torch.testing.assert_close(out_segments, torch.tensor(expected_segments), rtol=0, atol=1e-4)
    else:
        # NMS returns input segments untouched: identical selection and order
        assert out_segments.tolist() == expected_segments


@pytest.mark.parametrize("multiclass", [True, False])
def test_early_stop_matches_full_run(multiclass):
    # without tied scores, stopping after `max_segments` selections gives the top of the full result
    segments, scores, class_ids = _random_candidates(seed=7, num_candidates=400, num_classes=4, ties="none")
    full = batched_nms(segments, scores, class_ids, multiclass=multiclass, max_segments=10_000)
    for max_segments in (1, 5, 50):
        capped = batched_nms(segments, scores, class_ids, multiclass=multiclass, max_segments=max_segments)
        for capped_tensor, full_tensor in zip(capped, full):
            torch.testing.assert_close(capped_tensor, full_tensor[:max_segments])
