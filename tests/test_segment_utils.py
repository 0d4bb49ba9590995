"""Tests for `zeetad_hf.segment_utils`: segment formats, IoU / GIoU, time conversion and (Soft-)NMS."""

import math
import struct

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
    # equal scores: the candidate listed first is selected first, and the other one is decayed
    segments, scores, _ = run_nms([[1.0, 3.0], [0.0, 2.0]], [0.5, 0.5])
    assert segments.tolist() == [[1.0, 3.0], [0.0, 2.0]]
    assert scores[0] == 0.5 and scores[1] < 0.5
    # equal scores after the final sort keep the selection order, and the class order across classes
    segments, scores, class_ids = run_nms([[5.0, 6.0], [0.0, 1.0], [8.0, 9.0]], [0.5, 0.5, 0.5], [3, 1, 3])
    assert class_ids.tolist() == [1, 3, 3]
    assert segments.tolist() == [[0.0, 1.0], [5.0, 6.0], [8.0, 9.0]]


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
# Soft-NMS: randomized comparison with a naive pure-Python reference
# ---------------------------------------------------------------------------------------------------------------------


def _f32(value: float) -> float:
    """Round a Python float to float32, to replay the reference's float32 arithmetic operation by operation."""
    return struct.unpack("f", struct.pack("f", value))[0]


def _reference_iou(segment_a: list[float], segment_b: list[float]) -> float:
    length_a = _f32(_f32(segment_a[1] - segment_a[0]) + _f32(1e-6))
    length_b = _f32(_f32(segment_b[1] - segment_b[0]) + _f32(1e-6))
    intersection = max(0.0, _f32(min(segment_a[1], segment_b[1]) - max(segment_a[0], segment_b[0])))
    return _f32(intersection / _f32(_f32(length_a + length_b) - intersection))


def _reference_soft_nms(candidates: list[list], sigma: float, min_score: float) -> list[tuple[int, float]]:
    """candidates: [index, segment, score] in input order -> [(index, final score)] in selection order."""
    remaining = [list(candidate) for candidate in candidates]
    selected = []
    while remaining:
        best = 0
        for position in range(1, len(remaining)):
            if remaining[position][2] > remaining[best][2]:
                best = position
        index, segment, score = remaining.pop(best)
        selected.append((index, score))
        survivors = []
        for candidate in remaining:
            iou = _reference_iou(segment, candidate[1])
            decay = _f32(math.exp(-_f32(_f32(iou * iou) / _f32(sigma))))
            candidate[2] = _f32(candidate[2] * decay)
            if not candidate[2] < _f32(min_score):
                survivors.append(candidate)
        remaining = survivors
    return selected


def _reference_hard_nms(candidates: list[list], iou_threshold: float, min_score: float) -> list[tuple[int, float]]:
    remaining = [candidate for candidate in candidates if candidate[2] > _f32(min_score)]
    remaining = sorted(remaining, key=lambda candidate: -candidate[2])
    selected, suppressed = [], set()
    for position, (index, segment, score) in enumerate(remaining):
        if index in suppressed:
            continue
        selected.append((index, score))
        for other_index, other_segment, _ in remaining[position + 1 :]:
            if _reference_iou(segment, other_segment) >= iou_threshold:
                suppressed.add(other_index)
    return selected


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
    candidates = [[index, segments[index], scores[index]] for index in range(len(scores))]
    groups = sorted(set(class_ids)) if multiclass else [None]
    selected = []
    for group in groups:
        members = [candidate for candidate in candidates if group is None or class_ids[candidate[0]] == group]
        if use_soft_nms:
            selected += _reference_soft_nms(members, sigma, min_score)
        else:
            selected += _reference_hard_nms(members, iou_threshold, min_score)
    selected = sorted(selected, key=lambda item: -item[1])[:max_segments]

    kept_segments = [segments[index] for index, _ in selected]
    if not multiclass and voting_threshold > 0:
        voted = []
        for kept in kept_segments:
            numerator, denominator = [0.0, 0.0], 0.0
            for segment, score in zip(segments, scores):
                intersection = max(0.0, min(kept[1], segment[1]) - max(kept[0], segment[0]))
                iou = intersection / ((kept[1] - kept[0]) + (segment[1] - segment[0]) - intersection)
                if iou >= voting_threshold:
                    weight = score * iou if voting_weight == "score_iou" else score
                    numerator = [numerator[0] + weight * segment[0], numerator[1] + weight * segment[1]]
                    denominator += weight
            voted.append([numerator[0] / denominator, numerator[1] / denominator])
        kept_segments = voted
    return kept_segments, [score for _, score in selected], [class_ids[index] for index, _ in selected]


def _random_candidates(seed: int, num_candidates: int, num_classes: int, quantize_scores: bool):
    generator = torch.Generator().manual_seed(seed)
    starts = torch.rand(num_candidates, generator=generator) * 60
    lengths = torch.rand(num_candidates, generator=generator) * 10 + 0.05
    segments = torch.stack((starts, starts + lengths), dim=-1)
    scores = torch.rand(num_candidates, generator=generator)
    if quantize_scores:
        # many exact ties, to check the first-occurrence rule
        scores = (scores * 32).ceil() / 32
    class_ids = torch.randint(0, num_classes, (num_candidates,), generator=generator)
    # duplicated candidates (same segment and score) are common after multi-level decoding
    segments[1::17], scores[1::17], class_ids[1::17] = segments[::17][: len(segments[1::17])], 0.5, 2
    segments[2::17] = segments[::17][: len(segments[2::17])]
    return segments, scores, class_ids


@pytest.mark.parametrize("use_table", [False, True])
@pytest.mark.parametrize(
    "options",
    [
        {"multiclass": True, "use_soft_nms": True, "sigma": 0.5, "min_score": 0.001, "max_segments": 1000},
        {"multiclass": True, "use_soft_nms": True, "sigma": 0.5, "min_score": 0.05, "max_segments": 25},
        {"multiclass": True, "use_soft_nms": True, "sigma": 0.3, "min_score": 0.01, "max_segments": 120},
        {"multiclass": True, "use_soft_nms": False, "iou_threshold": 0.1, "min_score": 0.001, "max_segments": 1000},
        {"multiclass": False, "use_soft_nms": True, "sigma": 0.75, "min_score": 0.001, "max_segments": 100},
        {"multiclass": False, "use_soft_nms": True, "sigma": 0.75, "min_score": 0.001, "max_segments": 1000},
        {"multiclass": False, "use_soft_nms": False, "iou_threshold": 0.3, "min_score": 0.2, "max_segments": 1000},
        {"multiclass": False, "voting_threshold": 0.9, "voting_weight": "score_iou", "max_segments": 100},
        {"multiclass": False, "voting_threshold": 0.75, "voting_weight": "score", "max_segments": 100},
        {"multiclass": False, "use_soft_nms": False, "voting_threshold": 0.5, "min_score": 0.3},
    ],
)
@pytest.mark.parametrize("quantize_scores", [False, True])
def test_batched_nms_matches_naive_reference(options, quantize_scores, use_table, monkeypatch):
    # both the precomputed-table path and the on-the-fly path must give the same result
    monkeypatch.setattr(segment_utils, "_NMS_TABLE_MAX_ELEMENTS", 1 << 30 if use_table else 0)
    monkeypatch.setattr(segment_utils, "_NMS_TABLE_ELEMENTS_PER_STEP", 1 << 30)
    segments, scores, class_ids = _random_candidates(
        seed=len(str(options)), num_candidates=300, num_classes=5, quantize_scores=quantize_scores
    )
    out_segments, out_scores, out_class_ids = batched_nms(segments, scores, class_ids, **options)

    defaults = {"use_soft_nms": True, "sigma": 0.5, "min_score": 0.001, "iou_threshold": 0.1, "max_segments": 200}
    defaults.update({"voting_threshold": 0.0, "voting_weight": "score_iou"})
    expected_segments, expected_scores, expected_class_ids = _reference_batched_nms(
        segments.tolist(), scores.tolist(), class_ids.tolist(), **{**defaults, **options}
    )
    assert len(expected_scores) > 20
    assert out_class_ids.tolist() == expected_class_ids
    torch.testing.assert_close(out_scores, torch.tensor(expected_scores), rtol=0, atol=1e-6)
    if options.get("voting_threshold", 0) > 0:
        torch.testing.assert_close(out_segments, torch.tensor(expected_segments), rtol=0, atol=1e-4)
    else:
        # NMS returns input segments untouched: identical selection and order
        assert out_segments.tolist() == expected_segments


@pytest.mark.parametrize("multiclass", [True, False])
def test_early_stop_matches_full_run(multiclass):
    # stopping after `max_segments` selections per class must give the top of the full result
    segments, scores, class_ids = _random_candidates(seed=7, num_candidates=400, num_classes=4, quantize_scores=True)
    full = batched_nms(segments, scores, class_ids, multiclass=multiclass, max_segments=10_000)
    for max_segments in (1, 5, 50):
        capped = batched_nms(segments, scores, class_ids, multiclass=multiclass, max_segments=max_segments)
        for capped_tensor, full_tensor in zip(capped, full):
            torch.testing.assert_close(capped_tensor, full_tensor[:max_segments])
