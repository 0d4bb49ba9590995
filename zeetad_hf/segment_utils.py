"""Pure functions on 1-D temporal segments: format conversion, IoU / generalised IoU, Soft-NMS, time conversion.

Conventions used throughout the package:

- A *normalised* segment lives in `[0, 1]`, where 0 is the start and 1 the end of the valid (unpadded) feature sequence
  of one video. Inside the model segments are `(center, width)`; everywhere else they are `(start, end)`.
- A *grid* position is a continuous feature index: `i` is the centre of the i-th feature unit.
"""

from typing import NamedTuple

import numpy as np
import torch


def segment_cw_to_se(segments: torch.Tensor) -> torch.Tensor:
    """Convert `(..., 2)` segments from `(center, width)` to `(start, end)`."""
    center, width = segments.unbind(-1)
    return torch.stack((center - 0.5 * width, center + 0.5 * width), dim=-1)


def segment_se_to_cw(segments: torch.Tensor) -> torch.Tensor:
    """Convert `(..., 2)` segments from `(start, end)` to `(center, width)`."""
    start, end = segments.unbind(-1)
    return torch.stack((0.5 * (start + end), end - start), dim=-1)


def _pairwise_intersection_union_hull(
    segments_a: torch.Tensor, segments_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # segments_a: (N, 2) start/end, segments_b: (M, 2) start/end -> three (N, M) tensors
    start_a, end_a = segments_a[:, None, 0], segments_a[:, None, 1]
    start_b, end_b = segments_b[None, :, 0], segments_b[None, :, 1]
    intersection = (torch.minimum(end_a, end_b) - torch.maximum(start_a, start_b)).clamp(min=0)
    union = (end_a - start_a) + (end_b - start_b) - intersection
    hull = torch.maximum(end_a, end_b) - torch.minimum(start_a, start_b)
    return intersection, union, hull


def pairwise_segment_iou(segments_a: torch.Tensor, segments_b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Temporal IoU between every pair of `(start, end)` segments: `(N, 2), (M, 2) -> (N, M)`.

    The union is clamped at `eps` so that two zero-length segments give 0 instead of NaN.
    """
    intersection, union, _ = _pairwise_intersection_union_hull(segments_a, segments_b)
    return intersection / union.clamp(min=eps)


def pairwise_generalized_segment_iou(
    segments_a: torch.Tensor, segments_b: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """1-D generalised IoU `IoU - (hull - union) / hull` for every pair of `(start, end)` segments, in `[-1, 1]`."""
    intersection, union, hull = _pairwise_intersection_union_hull(segments_a, segments_b)
    iou = intersection / union.clamp(min=eps)
    return iou - (hull - union) / hull.clamp(min=eps)


# ---------------------------------------------------------------------------------------------------------------------
# Time conversion: the one place where feature positions become seconds
# ---------------------------------------------------------------------------------------------------------------------


def _check_time_arguments(fps: float, feature_stride: float, window_size: float) -> None:
    # `not x > 0` instead of `x <= 0` so that NaN is rejected too
    if not fps > 0:
        raise ValueError(f"`fps` must be positive, got {fps}")
    if not feature_stride > 0:
        raise ValueError(f"`feature_stride` must be positive, got {feature_stride}")
    if not window_size >= 0:
        raise ValueError(f"`window_size` must be non-negative, got {window_size}")


def _check_num_units(num_units: int) -> None:
    if not num_units >= 1:
        raise ValueError(f"`num_units` must be at least 1, got {num_units}")


def _check_segment_shape(segments: torch.Tensor) -> None:
    if segments.ndim == 0 or segments.shape[-1] != 2:
        raise ValueError(f"`segments` must have shape (..., 2), got {tuple(segments.shape)}")


def grid_to_seconds(
    grid_positions: torch.Tensor | float, fps: float, feature_stride: float, window_size: float
) -> torch.Tensor | float:
    """Convert continuous feature indices to seconds.

    A feature at index `idx` is computed from the frames `[idx * feature_stride, idx * feature_stride + window_size)`,
    so its time stamp is the centre of that window:

        `t = (idx * feature_stride + 0.5 * window_size) / fps`

    (ActionFormer convention). Example, THUMOS14 I3D features (stride 4, window 16) at 30 fps: index 10 is
    `(10 * 4 + 0.5 * 16) / 30 = 1.6` seconds.

    Args:
        grid_positions (`torch.Tensor` or `float`):
            Continuous feature indices of any shape; `i` is the centre of the i-th feature unit.
        fps (`float`):
            Frame rate the features were extracted at, in frames per second. Must be positive.
        feature_stride (`float`):
            Number of frames between two consecutive features. Must be positive.
        window_size (`float`):
            Number of frames covered by one feature window. Must be non-negative.

    Returns:
        `torch.Tensor` or `float`: Time stamps in seconds, same shape (and type) as `grid_positions`.
    """
    _check_time_arguments(fps, feature_stride, window_size)
    return (grid_positions * feature_stride + 0.5 * window_size) / fps


def seconds_to_grid(
    seconds: torch.Tensor | float, fps: float, feature_stride: float, window_size: float
) -> torch.Tensor | float:
    """Convert seconds to continuous feature indices, the exact inverse of [`grid_to_seconds`]:

        `idx = (t * fps - 0.5 * window_size) / feature_stride`

    Args:
        seconds (`torch.Tensor` or `float`):
            Time stamps in seconds, any shape.
        fps (`float`):
            Frame rate the features were extracted at, in frames per second. Must be positive.
        feature_stride (`float`):
            Number of frames between two consecutive features. Must be positive.
        window_size (`float`):
            Number of frames covered by one feature window. Must be non-negative.

    Returns:
        `torch.Tensor` or `float`: Continuous feature indices, same shape (and type) as `seconds`.
    """
    _check_time_arguments(fps, feature_stride, window_size)
    return (seconds * fps - 0.5 * window_size) / feature_stride


def normalized_segments_to_seconds(
    segments: torch.Tensor,
    num_units: int,
    fps: float,
    feature_stride: float,
    window_size: float,
    duration: float | None = None,
    unit_offset: int = 0,
) -> torch.Tensor:
    """Convert normalised `(start, end)` segments of one video (or one window of it) to seconds.

    A normalised position `u` in `[0, 1]` maps to the continuous grid index `u * num_units - 0.5 + unit_offset`: the
    centre of unit `i` is `u = (i + 0.5) / num_units` and `u = 0` is the left edge of unit 0; `unit_offset` is the index
    of the window's first unit in the whole video. The grid index is then converted with
    [`grid_to_seconds`], i.e. `t = (idx * feature_stride + 0.5 * window_size) / fps`, and finally clamped to
    `[0, duration]` when `duration` is given.

    Args:
        segments (`torch.Tensor` of shape `(..., 2)`):
            Normalised `(start, end)` segments, usually in `[0, 1]`.
        num_units (`int`):
            Number of valid (unpadded) feature units of the video. Must be at least 1.
        fps (`float`):
            Frame rate the features were extracted at, in frames per second. Must be positive.
        feature_stride (`float`):
            Number of frames between two consecutive features. Must be positive.
        window_size (`float`):
            Number of frames covered by one feature window. Must be non-negative.
        duration (`float`, *optional*, defaults to `None`):
            Video duration in seconds. When given, the result is clamped to `[0, duration]`. Must be non-negative.
        unit_offset (`int`, *optional*, defaults to 0):
            Index, in the whole video, of the first unit the segments are normalised over (windowed inference).

    Returns:
        `torch.Tensor` of shape `(..., 2)`: `(start, end)` segments in seconds.
    """
    _check_segment_shape(segments)
    _check_num_units(num_units)
    if duration is not None and not duration >= 0:
        raise ValueError(f"`duration` must be non-negative, got {duration}")
    if not unit_offset >= 0:
        raise ValueError(f"`unit_offset` must be non-negative, got {unit_offset}")
    grid_positions = segments * num_units - 0.5 + unit_offset
    seconds = grid_to_seconds(grid_positions, fps, feature_stride, window_size)
    if duration is not None:
        seconds = seconds.clamp(min=0.0, max=duration)
    return seconds


def seconds_to_normalized_segments(
    segments: torch.Tensor, num_units: int, fps: float, feature_stride: float, window_size: float
) -> torch.Tensor:
    """Convert `(start, end)` segments in seconds to normalised positions, the exact inverse of
    [`normalized_segments_to_seconds`] (without clamping). Used to build training targets.

    The time stamp `t` becomes the grid index `idx = (t * fps - 0.5 * window_size) / feature_stride` (see
    [`seconds_to_grid`]) and then the normalised position `u = (idx + 0.5) / num_units`. Values are not clamped, so
    segments that reach beyond the feature coverage fall outside `[0, 1]`.

    Args:
        segments (`torch.Tensor` of shape `(..., 2)`):
            `(start, end)` segments in seconds.
        num_units (`int`):
            Number of valid (unpadded) feature units of the video. Must be at least 1.
        fps (`float`):
            Frame rate the features were extracted at, in frames per second. Must be positive.
        feature_stride (`float`):
            Number of frames between two consecutive features. Must be positive.
        window_size (`float`):
            Number of frames covered by one feature window. Must be non-negative.

    Returns:
        `torch.Tensor` of shape `(..., 2)`: normalised `(start, end)` segments.
    """
    _check_segment_shape(segments)
    _check_num_units(num_units)
    grid_positions = seconds_to_grid(segments, fps, feature_stride, window_size)
    return (grid_positions + 0.5) / num_units


# ---------------------------------------------------------------------------------------------------------------------
# Soft-NMS / NMS / segment voting
# ---------------------------------------------------------------------------------------------------------------------

# Added to every segment length inside NMS, as in the ActionFormer reference, so that zero-length segments never give a
# zero union.
_NMS_LENGTH_EPS = np.float32(1e-6)
_NEGATIVE_INFINITY = np.float32(-np.inf)
# Advancing all groups together ([`_lockstep_selection`]) beats selecting one segment at a time
# ([`_best_first_selection`]) from 4 groups on (1k-5k candidates: 1.3x faster at 4 groups, 3-8x at 20-100), as long as
# the padded layout is at least a quarter full; with one dominant group it is up to 3x slower.
_LOCKSTEP_MIN_GROUPS = 4
_LOCKSTEP_MIN_FILL = 0.25
# Soft-NMS of a single group selects from blocks of this many highest scores ([`_block_selection`]): the fastest of
# 32 / 48 / 64 / 96 on class-agnostic candidates like the benchmark's, seeds 10 and 11 (1k-5k candidates; the benchmark
# reports seeds 0-2).
_BLOCK_SIZE = 48
# One more array operation over a window costs about as much as computing this many more (selection, slot) pairs in
# one (~30 us of NumPy calls at ~10 ns per pair).
_PAIRS_PER_UPDATE = 3000


def _nms_iou(
    start: np.float32 | np.ndarray,
    end: np.float32 | np.ndarray,
    length: np.float32 | np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    lengths: np.ndarray,
) -> np.ndarray:
    """IoU of one segment (or of one segment per row, shape `(num_rows, 1)`) with an array of segments, in float32
    and in the operation order of the reference (lengths already include the `1e-6`)."""
    intersection = np.minimum(ends, end)
    intersection -= np.maximum(starts, start)
    np.maximum(intersection, 0, out=intersection)
    # (length_a + length_b) - intersection, as the reference
    union = lengths + length
    union -= intersection
    intersection /= union
    return intersection


def _gaussian_decay(iou: np.ndarray, sigma: np.float32) -> np.ndarray:
    """`exp(-iou**2 / sigma)` rounded like the reference's float32 `std::exp`: the exponent in float32, the exponential
    in float64, rounded once to float32 (numpy's own float32 `exp` is an ulp off for ~40% of inputs). Overwrites
    `iou`."""
    np.square(iou, out=iou)
    iou /= -sigma
    return np.exp(iou, dtype=np.float64).astype(np.float32)


def _processing_positions(
    scores: np.ndarray, group_ids: np.ndarray, group_begins: np.ndarray, group_ends: np.ndarray, use_soft_nms: bool
) -> np.ndarray:
    """Position of every candidate in the order in which the reference first scans its group: the input order for
    Soft-NMS (its working array starts as the input), the order of `torch.sort(scores, descending=True)` for hard
    NMS."""
    # candidates grouped by group id, input order inside a group
    by_group = np.argsort(group_ids, kind="stable")
    positions = np.empty(scores.shape[0], dtype=np.int64)
    for group_begin, group_end in zip(group_begins.tolist(), group_ends.tolist()):
        members = by_group[group_begin:group_end]
        if not use_soft_nms:
            # torch's sort is not stable: the reference processes tied scores in the order it happens to return
            members = members[torch.sort(torch.from_numpy(scores[members]), descending=True).indices.numpy()]
        positions[members] = np.arange(group_end - group_begin)
    return positions


def _remove_from_working_order(
    working_slots: np.ndarray,
    slot_positions: np.ndarray,
    is_alive: np.ndarray,
    dropped_slots: np.ndarray,
    group_begin: int,
    working_size: int,
) -> int:
    """Remove dropped slots from the working array of one group exactly as the reference does, and return its new
    size.

    The reference scans the working array once and overwrites every dropped element with the current last element,
    which it then examines in turn. The outcome: the survivors among the first `new_size` positions stay where they
    are, and the holes among them are filled, in ascending order, with the survivors behind them taken from the back.
    """
    new_size = working_size - dropped_slots.size
    dropped_positions = slot_positions[dropped_slots]
    hole_positions = np.sort(dropped_positions[dropped_positions < new_size])
    if hole_positions.size:
        tail_slots = working_slots[group_begin + new_size : group_begin + working_size]
        moved_slots = tail_slots[is_alive[tail_slots]][::-1]
        working_slots[group_begin + hole_positions] = moved_slots
        slot_positions[moved_slots] = hole_positions
    return new_size


class _SlotLayout(NamedTuple):
    """Candidates of [`_best_first_selection`] in slot order (grouped by group id, by start inside a group)."""

    candidates: np.ndarray
    groups: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    # `end - start + 1e-6` in float32, as the reference
    lengths: np.ndarray
    # running maximum of the ends inside every group
    running_max_ends: np.ndarray
    group_begins: list[int]
    group_ends: list[int]


def _slot_layout(
    slot_candidates: np.ndarray, group_ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, num_groups: int
) -> _SlotLayout:
    """Gather the slot arrays for candidates already in slot order."""
    slot_groups = group_ids[slot_candidates]
    slot_starts, slot_ends = starts[slot_candidates], ends[slot_candidates]
    group_ends = np.cumsum(np.bincount(slot_groups, minlength=num_groups)).tolist()
    group_begins = [0, *group_ends[:-1]]
    running_max_ends = np.empty_like(slot_ends)
    for group_begin, group_end in zip(group_begins, group_ends):
        np.maximum.accumulate(slot_ends[group_begin:group_end], out=running_max_ends[group_begin:group_end])
    slot_lengths = (slot_ends - slot_starts) + _NMS_LENGTH_EPS
    return _SlotLayout(
        slot_candidates, slot_groups, slot_starts, slot_ends, slot_lengths, running_max_ends, group_begins, group_ends
    )


def _best_first_selection(
    starts: np.ndarray,
    ends: np.ndarray,
    scores: np.ndarray,
    group_ids: np.ndarray,
    num_groups: int,
    *,
    max_selections: int,
    use_soft_nms: bool,
    sigma: float,
    min_score: float,
    iou_threshold: float,
    track_working_order: bool,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Run the reference's (soft-)NMS loop of every group, one selection per step, in global best-first order.

    Returns the selected candidate indices and their final scores in the order in which the reference concatenates
    them before its final sort: group by group (ascending group id), each group in selection order and capped at
    `max_selections` selections. Without `track_working_order`, returns `None` as soon as a group holds two equal
    highest scores (only the working order decides between them).

    - *Slots*: the candidates sorted by group and, inside a group, by start. A selected segment can only overlap the
      slots of its group between the first one whose running maximum end exceeds its start and the first one whose
      start reaches its end, so a step decays (or suppresses) only that window. Everything outside has IoU 0, i.e. a
      decay of exactly 1, and was tested against `min_score` at the first selection of the group, which decays the
      whole group. Without `track_working_order`, removed slots are compacted away once they are the majority.
    - *Best first*: every step selects the highest current score over all groups, which is the next selection of its
      group; groups are independent, so each still gets its own sequence. A group's selected scores never increase
      (hard NMS; Soft-NMS with non-negative scores), so the first `max_selections + 1` selections are the top of the
      final sort; if none of them are tied, the final order is unique and the loop stops there. Otherwise it runs
      until every group is exhausted or capped, so that the final (unstable) sort sees exactly the reference's list.
    - *Ties* (`track_working_order`): inside a group the reference selects the first maximum of its working array.
      Soft-NMS swaps each selection with the front of that array and overwrites dropped elements with the last one
      ([`_remove_from_working_order`]); both moves are replayed on `slot_positions` / `working_slots`. Hard NMS scans
      the group in `torch.sort` order.
    """
    num_candidates = scores.shape[0]
    negative_infinity = _NEGATIVE_INFINITY
    min_score, sigma, iou_threshold = np.float32(min_score), np.float32(sigma), np.float32(iou_threshold)

    # 1. slots: grouped by group id (stable sort of the start order), sorted by start inside a group
    slot_candidates = np.argsort(starts)
    if num_groups > 1:
        slot_candidates = slot_candidates[np.argsort(group_ids[slot_candidates], kind="stable")]
    layout = _slot_layout(slot_candidates, group_ids, starts, ends, num_groups)
    slot_scores, slot_group_list = scores[slot_candidates], layout.groups.tolist()
    is_alive, num_alive = np.ones(num_candidates, dtype=bool), num_candidates

    # 2. tie-break state: position of every slot in its group's working array, and the slot at every position
    if track_working_order:
        group_begins, group_ends = np.array(layout.group_begins), np.array(layout.group_ends)
        slot_positions = _processing_positions(scores, group_ids, group_begins, group_ends, use_soft_nms)
        slot_positions = slot_positions[slot_candidates]
        working_slots = np.empty(num_candidates, dtype=np.int64)
        working_slots[group_begins[layout.groups] + slot_positions] = np.arange(num_candidates)
        working_sizes = (group_ends - group_begins).tolist()

    # 3. best-first selection loop
    num_selected = [0] * num_groups
    # hard NMS with a non-positive threshold also suppresses segments that do not overlap
    decay_whole_group = not use_soft_nms and not iou_threshold > 0
    early_stop = max_selections + 1 if not use_soft_nms or scores.min() >= 0 else None
    selected_candidates, selected_groups, selected_scores = [], [], []
    while num_alive > 0:
        slot = int(slot_scores.argmax())
        best_score = slot_scores[slot]
        group = slot_group_list[slot]
        group_begin, group_end = layout.group_begins[group], layout.group_ends[group]
        # argmax returns the first maximum in slot order, the reference takes the first in its working order
        tied_slots = (slot_scores[slot:group_end] == best_score).nonzero()[0]
        if tied_slots.size > 1:
            if not track_working_order:
                return None
            tied_slots += slot
            slot = int(tied_slots[slot_positions[tied_slots].argmin()])
        selected_candidates.append(layout.candidates[slot])
        selected_groups.append(group)
        selected_scores.append(best_score)
        slot_scores[slot] = negative_infinity
        is_alive[slot] = False
        num_alive -= 1
        step = num_selected[group]
        num_selected[group] = step + 1
        if track_working_order and use_soft_nms:
            # the reference swaps the selected element with the front of its working array
            front_slot = working_slots[group_begin + step]
            position = slot_positions[slot]
            slot_positions[front_slot] = position
            working_slots[group_begin + position] = front_slot

        if step + 1 == max_selections:
            # the reference keeps the first `max_selections` selections of a group: the rest can no longer enter
            num_alive -= int(np.count_nonzero(is_alive[group_begin:group_end]))
            slot_scores[group_begin:group_end] = negative_infinity
            is_alive[group_begin:group_end] = False
        else:
            start, end, length = layout.starts[slot], layout.ends[slot], layout.lengths[slot]
            if decay_whole_group or (use_soft_nms and step == 0):
                # the first Soft-NMS step of a group tests every remaining score against `min_score`
                window_begin, window_end = group_begin, group_end
            else:
                group_running_max_ends = layout.running_max_ends[group_begin:group_end]
                window_begin = group_begin + int(group_running_max_ends.searchsorted(start, side="right"))
                window_end = group_begin + int(layout.starts[group_begin:group_end].searchsorted(end))
            if window_begin < window_end:
                window = slice(window_begin, window_end)
                iou = _nms_iou(start, end, length, layout.starts[window], layout.ends[window], layout.lengths[window])
                window_alive = is_alive[window]
                if use_soft_nms:
                    window_scores = slot_scores[window]
                    np.multiply(window_scores, _gaussian_decay(iou, sigma), out=window_scores, where=window_alive)
                    is_dropped = window_scores < min_score
                else:
                    is_dropped = iou >= iou_threshold
                is_dropped &= window_alive
                dropped_slots = is_dropped.nonzero()[0]
                if dropped_slots.size:
                    dropped_slots += window_begin
                    slot_scores[dropped_slots] = negative_infinity
                    is_alive[dropped_slots] = False
                    num_alive -= dropped_slots.size
                    if track_working_order and use_soft_nms:
                        working_sizes[group] = _remove_from_working_order(
                            working_slots, slot_positions, is_alive, dropped_slots, group_begin, working_sizes[group]
                        )

        if len(selected_scores) == early_stop:
            if (np.diff(np.array(selected_scores)) < 0).all():
                break
            # tied scores: their final order depends on the complete lists
            early_stop = None
        if not track_working_order and num_alive < slot_scores.size // 2:
            # windows would mostly hold removed slots: drop them (slot order is kept)
            layout = _slot_layout(layout.candidates[is_alive], group_ids, starts, ends, num_groups)
            slot_scores, slot_group_list = slot_scores[is_alive], layout.groups.tolist()
            is_alive = np.ones(num_alive, dtype=bool)

    # the reference concatenates the groups in ascending order, each in selection order
    concatenation_order = np.argsort(np.array(selected_groups, dtype=np.int64), kind="stable")
    selected_candidates = np.array(selected_candidates, dtype=np.int64)[concatenation_order]
    return selected_candidates, np.array(selected_scores, dtype=np.float32)[concatenation_order]


def _lockstep_selection(
    starts: np.ndarray,
    ends: np.ndarray,
    scores: np.ndarray,
    group_ids: np.ndarray,
    num_groups: int,
    *,
    max_selections: int,
    use_soft_nms: bool,
    sigma: float,
    min_score: float,
    iou_threshold: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Same contract as [`_best_first_selection`] without `track_working_order`, advancing every group by one
    selection per step on a padded `(num_groups, max_group_size)` layout (dense, no windows).

    With many small groups this needs far fewer steps: the loop stops once the best `max_selections + 1` selections
    so far are all different and no group's next selection can beat the last of them, or when every group is
    exhausted or capped. Returns `None` as soon as a group holds two equal highest scores.
    """
    num_candidates = scores.shape[0]
    negative_infinity = _NEGATIVE_INFINITY
    min_score, sigma, iou_threshold = np.float32(min_score), np.float32(sigma), np.float32(iou_threshold)
    group_sizes = np.bincount(group_ids, minlength=num_groups)
    max_group_size = int(group_sizes.max())
    # slot of every candidate in the flattened padded layout: grouped by group id, input order inside a group
    by_group = np.argsort(group_ids, kind="stable")
    sorted_groups = group_ids[by_group]
    group_begins = np.cumsum(group_sizes) - group_sizes
    slots = sorted_groups * max_group_size + np.arange(num_candidates) - group_begins[sorted_groups]
    # start / end / length / score of every slot; padding is the segment [0, 0] with score -inf
    padded = np.zeros((4, num_groups * max_group_size), dtype=np.float32)
    padded[:2, slots] = starts[by_group], ends[by_group]
    padded[2] = (padded[1] - padded[0]) + _NMS_LENGTH_EPS
    padded[3] = negative_infinity
    padded[3, slots] = scores[by_group]
    slot_candidates = np.empty(num_groups * max_group_size, dtype=np.int64)
    slot_candidates[slots] = by_group
    # 4, num_groups, max_group_size
    segment_starts, segment_ends, segment_lengths, current_scores = padded.reshape(4, num_groups, max_group_size)

    # the rows still selecting (exhausted groups are dropped, so that a step works on whole arrays, not copies)
    row_groups = np.arange(num_groups)
    rows = np.arange(num_groups)
    selected_slots, selected_scores = [], []
    num_selected = 0
    # the best-first argument of [`_best_first_selection`]: it needs selections that never increase inside a group
    can_stop_early = not use_soft_nms or scores.min() >= 0
    for _ in range(max_selections):
        best_columns = current_scores.argmax(axis=1)
        best_scores = current_scores[rows, best_columns]
        if can_stop_early and num_selected > max_selections:
            top_scores = np.sort(
                np.partition(np.concatenate(selected_scores), -max_selections - 1)[-max_selections - 1 :]
            )
            if np.maximum.reduce(best_scores) < top_scores[0]:
                if not np.count_nonzero(top_scores[1:] == top_scores[:-1]):
                    break
                # tied scores: their final order depends on the complete lists
                can_stop_early = False
        if np.minimum.reduce(best_scores) == negative_infinity:
            is_active = best_scores != negative_infinity
            if not np.count_nonzero(is_active):
                break
            row_groups, best_columns, best_scores = (
                row_groups[is_active],
                best_columns[is_active],
                best_scores[is_active],
            )
            segment_starts, segment_ends = segment_starts[is_active], segment_ends[is_active]
            segment_lengths, current_scores = segment_lengths[is_active], current_scores[is_active]
            rows = np.arange(row_groups.size)
        # num_rows, max_group_size
        current_scores[rows, best_columns] = negative_infinity
        if np.count_nonzero(np.maximum.reduce(current_scores, axis=1) == best_scores):
            return None
        selected_slots.append(row_groups * max_group_size + best_columns)
        selected_scores.append(best_scores)
        num_selected += rows.size

        # num_rows, 1 against num_rows, max_group_size
        iou = _nms_iou(
            segment_starts[rows, best_columns, None],
            segment_ends[rows, best_columns, None],
            segment_lengths[rows, best_columns, None],
            segment_starts,
            segment_ends,
            segment_lengths,
        )
        if use_soft_nms:
            current_scores *= _gaussian_decay(iou, sigma)
            # `>=` is False for NaN: -inf (removed) times a decay that underflowed to 0
            current_scores[~(current_scores >= min_score)] = negative_infinity
        else:
            current_scores[iou >= iou_threshold] = negative_infinity

    selected_slots, selected_scores = np.concatenate(selected_slots), np.concatenate(selected_scores)
    # the reference concatenates the groups in ascending order, each in selection order
    concatenation_order = np.argsort(selected_slots // max_group_size, kind="stable")
    return slot_candidates[selected_slots[concatenation_order]], selected_scores[concatenation_order]


def _cheaper_together(num_selections: int, span: int, own_pairs: int) -> bool:
    """Whether one dense update of `num_selections` selections over `span` slots costs less than one update per
    selection over its own window (`own_pairs` pairs in all)."""
    return num_selections * span <= own_pairs + _PAIRS_PER_UPDATE * (num_selections - 1)


def _window_updates(begins: np.ndarray, ends: np.ndarray) -> tuple[list[tuple[list[int] | slice, slice]], list[int]]:
    """Plan the decays of a round's selections, whose slot windows are `[begin, end)`, so that every slot is decayed by
    the selections whose window holds it, in the order they were made (ascending).

    Returns `(dense, alone)`. Each entry of `dense` is `(selections, window)`: one dense array operation. With long
    segments that is usually one update of all selections over the window spanning theirs (a slot outside a
    selection's own window takes a decay of exactly 1). Otherwise, selections whose windows overlap form a group: one
    update over the window spanning theirs or, when that would compute far more pairs than their own windows hold
    (short segments in a long span), one update per selection, in order. `alone` lists the selections whose window
    overlaps no other's: each of their slots takes one decay, so they can all be applied at once. Groups share no
    slot; selections with an empty window join none.
    """
    span = slice(int(np.minimum.reduce(begins)), int(np.maximum.reduce(ends)))
    if span.start >= span.stop:
        return [], []
    num_selections, span_size = begins.size, span.stop - span.start
    # (the first test, with no own pairs, spares counting them: it holds for every span of up to ~1.5 *
    # `_PAIRS_PER_UPDATE` slots)
    if _cheaper_together(num_selections, span_size, 0) or _cheaper_together(
        num_selections, span_size, int(np.maximum(ends - begins, 0).sum())
    ):
        return [(slice(None), span)], []
    begins, ends = begins.tolist(), ends.tolist()
    groups = []
    for index in sorted(range(len(begins)), key=begins.__getitem__):
        begin, end = begins[index], ends[index]
        if begin >= end:
            continue
        if groups and begin < groups[-1][2]:
            groups[-1][0].append(index)
            groups[-1][2] = max(groups[-1][2], end)
        else:
            groups.append([[index], begin, end])
    dense, alone = [], []
    for rows, begin, end in groups:
        rows.sort()
        if len(rows) == 1:
            alone.append(rows[0])
        elif _cheaper_together(len(rows), end - begin, sum(ends[row] - begins[row] for row in rows)):
            dense.append((rows, slice(begin, end)))
        else:
            dense.extend(([row], slice(begins[row], ends[row])) for row in rows)
    return dense, alone


def _decay_window(
    slot_scores: np.ndarray,
    slot_segments: tuple[np.ndarray, np.ndarray, np.ndarray],
    selected_segments: tuple[np.ndarray, np.ndarray, np.ndarray],
    window: slice,
    sigma: np.float32,
    min_score: np.float32,
) -> None:
    """Decay the slots of `window` by every selected segment (`(starts, ends, lengths)`, in selection order) and remove
    those that fall below `min_score` (in place)."""
    slot_starts, slot_ends, slot_lengths = slot_segments
    window_segments = (slot_starts[window], slot_ends[window], slot_lengths[window])
    selected_starts, selected_ends, selected_lengths = selected_segments
    if selected_starts.size == 1:
        # one selection: scalars against the window (NumPy's broadcasting of a `(1, 1)` array is slower)
        iou = _nms_iou(selected_starts[0], selected_ends[0], selected_lengths[0], *window_segments)
        window_scores = slot_scores[window] * _gaussian_decay(iou, sigma)
    else:
        # num_selected, window_size
        iou = _nms_iou(selected_starts[:, None], selected_ends[:, None], selected_lengths[:, None], *window_segments)
        decays = _gaussian_decay(iou, sigma)
        # in selection order, as the reference: a reduction over the first axis multiplies one row after the other
        decays[0] *= slot_scores[window]
        window_scores = np.multiply.reduce(decays, axis=0)
    # `>=` is False for NaN: a removed slot times a decay that underflowed to 0
    window_scores[~(window_scores >= min_score)] = _NEGATIVE_INFINITY
    slot_scores[window] = window_scores


def _decay_separate_windows(
    slot_scores: np.ndarray,
    slot_segments: tuple[np.ndarray, np.ndarray, np.ndarray],
    selected_segments: tuple[np.ndarray, np.ndarray, np.ndarray],
    begins: np.ndarray,
    ends: np.ndarray,
    sigma: np.float32,
    min_score: np.float32,
) -> None:
    """[`_decay_window`] for selections whose windows `[begins, ends)` do not overlap, all at once: one decay per slot,
    gathered into one array of (selection, slot) pairs."""
    sizes = ends - begins
    # num_pairs: the selection and the slot of every pair
    pair_selections = np.repeat(np.arange(sizes.size), sizes)
    pair_slots = np.arange(pair_selections.size) + np.repeat(begins - (np.cumsum(sizes) - sizes), sizes)
    slot_starts, slot_ends, slot_lengths = slot_segments
    selected_starts, selected_ends, selected_lengths = selected_segments
    iou = _nms_iou(
        selected_starts[pair_selections],
        selected_ends[pair_selections],
        selected_lengths[pair_selections],
        slot_starts[pair_slots],
        slot_ends[pair_slots],
        slot_lengths[pair_slots],
    )
    pair_scores = slot_scores[pair_slots] * _gaussian_decay(iou, sigma)
    pair_scores[~(pair_scores >= min_score)] = _NEGATIVE_INFINITY
    slot_scores[pair_slots] = pair_scores


def _block_selection(
    starts: np.ndarray,
    ends: np.ndarray,
    scores: np.ndarray,
    *,
    max_selections: int,
    sigma: float,
    min_score: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Soft-NMS of one group with non-negative scores, several selections per round of array operations.

    Same contract as [`_best_first_selection`] without `track_working_order`, for a single group: the first
    `max_selections` selections with their scores, in selection order, or `None` as soon as two current scores tie for
    the highest.

    Every round takes the `_BLOCK_SIZE` highest current scores (the *block*) and the highest score left outside it.
    Decays only lower non-negative scores, so nothing outside the block can rise above that score: as long as the best
    decayed score inside the block is strictly higher, it is the next selection, and the block's own pairwise decays
    are all that is needed to find it. The round's selections then decay every slot they can overlap (candidates
    sorted by start, windows planned by [`_window_updates`]), in selection order, which makes every score exact again.
    About 10 rounds make 100 selections, where [`_best_first_selection`] runs one iteration per selection.
    """
    sigma, min_score = np.float32(sigma), np.float32(min_score)
    highest = np.maximum.reduce
    slot_candidates = np.argsort(starts)
    slot_starts, slot_ends = starts[slot_candidates], ends[slot_candidates]
    slot_lengths = (slot_ends - slot_starts) + _NMS_LENGTH_EPS
    running_max_ends = np.maximum.accumulate(slot_ends)
    slot_scores = scores[slot_candidates]
    # the first selection tests every other score against `min_score`; scores equal to the first selection's stay, to
    # be found as a tie
    slot_scores[slot_scores < min(min_score, highest(slot_scores))] = _NEGATIVE_INFINITY
    num_alive = int(np.count_nonzero(slot_scores > _NEGATIVE_INFINITY))
    selected_candidates, selected_scores = [], []
    while num_alive > 0:
        num_slots = slot_scores.size
        block_size = min(_BLOCK_SIZE, num_alive)
        if block_size < num_slots:
            by_score = np.argpartition(slot_scores, num_slots - block_size - 1)
            block = by_score[num_slots - block_size :]
            outside_best = slot_scores[by_score[num_slots - block_size - 1]]
        else:
            block, outside_best = np.arange(num_slots), _NEGATIVE_INFINITY
        block_scores = slot_scores[block]
        block_segments = (slot_starts[block], slot_ends[block], slot_lengths[block])
        # block_size, block_size: row i decays every block member when member i is selected
        block_iou = _nms_iou(*(coordinates[:, None] for coordinates in block_segments), *block_segments)
        block_decays = _gaussian_decay(block_iou, sigma)
        round_selections = []
        while True:
            best = int(block_scores.argmax())
            best_score = block_scores[best]
            # a block score that fell below `min_score` is removed by the reference; it can only decay further, so the
            # round ends before it would be selected (NaN, a selected score times a decay that underflowed to 0, too)
            if not best_score > outside_best or (best_score < min_score and selected_scores):
                break
            block_scores[best] = _NEGATIVE_INFINITY
            if highest(block_scores) == best_score:
                return None
            round_selections.append(best)
            selected_scores.append(best_score)
            if len(selected_scores) == max_selections:
                break
            block_scores *= block_decays[best]
        if not round_selections:
            # every score left is exact and at least `min_score` at the start of a round: the best one equals the best
            # outside the block
            return None
        round_slots = block[round_selections]
        selected_candidates.append(slot_candidates[round_slots])
        slot_scores[round_slots] = _NEGATIVE_INFINITY
        if len(selected_scores) == max_selections:
            break
        # slots that can overlap a selection: from the first whose running maximum end passes its start to the last
        # that starts before its end
        round_segments = (slot_starts[round_slots], slot_ends[round_slots], slot_lengths[round_slots])
        window_begins = running_max_ends.searchsorted(round_segments[0], side="right")
        window_ends = slot_starts.searchsorted(round_segments[1])
        slot_segments = (slot_starts, slot_ends, slot_lengths)
        dense, alone = _window_updates(window_begins, window_ends)
        for rows, window in dense:
            selected = tuple(coordinates[rows] for coordinates in round_segments)
            _decay_window(slot_scores, slot_segments, selected, window, sigma, min_score)
        if alone:
            selected = tuple(coordinates[alone] for coordinates in round_segments)
            _decay_separate_windows(
                slot_scores, slot_segments, selected, window_begins[alone], window_ends[alone], sigma, min_score
            )
        num_alive = int(np.count_nonzero(slot_scores > _NEGATIVE_INFINITY))
        if num_alive < num_slots // 2:
            # windows would mostly hold removed slots: drop them (start order is kept)
            is_alive = slot_scores > _NEGATIVE_INFINITY
            slot_candidates, slot_starts, slot_ends, slot_lengths, slot_scores = (
                array[is_alive] for array in (slot_candidates, slot_starts, slot_ends, slot_lengths, slot_scores)
            )
            running_max_ends = np.maximum.accumulate(slot_ends)
    return np.concatenate(selected_candidates), np.array(selected_scores, dtype=np.float32)


def _vote_segments(
    kept_segments: np.ndarray,
    all_segments: np.ndarray,
    all_scores: np.ndarray,
    voting_threshold: float,
    voting_weight: str,
) -> np.ndarray:
    """Replace every kept segment by the weighted mean of all pre-NMS segments overlapping it with IoU >= threshold.

    Only candidates that can reach the threshold are visited. For a kept segment `[start, end]` of length `length`,
    IoU >= t needs `intersection >= t * length` and `union >= end - other_start`, i.e. the other segment starts in
    `[end - length / t, end - t * length]`; with the candidates sorted by start, that is an index range (widened by a
    relative margin far above float32 rounding). The IoU is computed in float32, the weighted sums in float64.
    """
    num_kept = kept_segments.shape[0]
    by_start = np.argsort(all_segments[:, 0])
    sorted_starts = all_segments[by_start, 0]
    kept_starts, kept_ends = kept_segments[:, 0].astype(np.float64), kept_segments[:, 1].astype(np.float64)
    kept_lengths = kept_ends - kept_starts
    margin = 1e-4 * (np.abs(kept_ends) + kept_lengths / voting_threshold)
    range_begins = sorted_starts.searchsorted(kept_ends - kept_lengths / voting_threshold - margin)
    range_ends = sorted_starts.searchsorted(kept_ends - voting_threshold * kept_lengths + margin, side="right")
    range_sizes = np.maximum(range_ends - range_begins, 0)
    # one entry per (kept segment, candidate) pair: num_pairs
    pair_kept = np.repeat(np.arange(num_kept), range_sizes)
    pair_offsets = np.arange(pair_kept.size) - np.repeat(np.cumsum(range_sizes) - range_sizes, range_sizes)
    pair_candidates = by_start[range_begins[pair_kept] + pair_offsets]

    pair_kept_segments, pair_segments = kept_segments[pair_kept], all_segments[pair_candidates]
    intersection = np.minimum(pair_kept_segments[:, 1], pair_segments[:, 1])
    intersection -= np.maximum(pair_kept_segments[:, 0], pair_segments[:, 0])
    np.maximum(intersection, 0, out=intersection)
    union = (pair_kept_segments[:, 1] - pair_kept_segments[:, 0]) + (pair_segments[:, 1] - pair_segments[:, 0])
    union -= intersection
    iou = intersection / np.maximum(union, np.float32(1e-8))
    weights = np.where(iou >= np.float32(voting_threshold), all_scores[pair_candidates], np.float32(0))
    if voting_weight == "score_iou":
        weights *= iou
    weights = weights.astype(np.float64)
    weight_sums = np.bincount(pair_kept, weights=weights, minlength=num_kept)
    # num_kept, 2
    weighted_sums = np.stack(
        [np.bincount(pair_kept, weights=weights * pair_segments[:, side], minlength=num_kept) for side in (0, 1)], -1
    )
    # a kept segment always overlaps itself with IoU 1, so the sum is only 0 for degenerate input (zero-length segment
    # or zero score): keep the NMS segment there instead of producing NaN
    has_weight = weight_sums != 0
    voted = weighted_sums / np.where(has_weight, weight_sums, 1.0)[:, None]
    return np.where(has_weight[:, None], voted.astype(np.float32), kept_segments)


def _rank_of_class(class_ids: np.ndarray) -> tuple[np.ndarray, int]:
    """The rank of every candidate's class among the classes present (0 for the lowest id) and the number of classes:
    `np.unique(..., return_inverse=True)`, by counting when the ids span a small range (no sort)."""
    # int64: differences of narrow integer ids (e.g. int8 -128 and 127) would overflow
    class_ids = class_ids.astype(np.int64, copy=False)
    lowest, highest = int(class_ids.min()), int(class_ids.max())
    if highest - lowest >= max(4 * class_ids.size, 1024):
        unique_classes, ranks = np.unique(class_ids, return_inverse=True)
        return ranks, unique_classes.size
    is_present = np.bincount(class_ids - lowest) > 0
    rank_of_id = np.cumsum(is_present) - 1
    return rank_of_id[class_ids - lowest], int(rank_of_id[-1]) + 1


def batched_nms(
    segments: torch.Tensor,
    scores: torch.Tensor,
    class_ids: torch.Tensor,
    *,
    min_score: float = 0.001,
    max_segments: int = 200,
    use_soft_nms: bool = True,
    sigma: float = 0.5,
    iou_threshold: float = 0.1,
    multiclass: bool = True,
    voting_threshold: float = 0.0,
    voting_weight: str = "score_iou",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft-NMS (or hard NMS) on 1-D segments, per class or class-agnostic, with optional segment voting.

    NumPy re-implementation of ActionFormer's `batched_nms` and its C++ op `nms_1d_cpu` (no compiled extension) that
    keeps the same segments in the same order, with the same float32 arithmetic (the decay's exponential is rounded
    correctly; glibc's `expf`, which the C++ op calls, is an ulp off for ~0.1% of inputs, so scores may differ from it
    in the last bits):

    - **Soft-NMS** (`use_soft_nms=True`, always Gaussian): repeatedly select the candidate with the highest current
      score; multiply the score of every remaining candidate by `exp(-iou**2 / sigma)` and discard those whose decayed
      score is `< min_score`. `iou_threshold` is unused. As in the reference, scores are only tested after a decay, so
      the first selection of a class is kept even when its score is below `min_score`.
    - **Hard NMS** (`use_soft_nms=False`): keep candidates with score `> min_score`, then greedily select in score
      order and suppress every remaining candidate with `iou >= iou_threshold`. Scores are unchanged.
    - IoU inside NMS uses segment lengths `end - start + 1e-6` and float32 arithmetic, as the reference.
    - `multiclass=True` runs NMS independently for every class and ignores voting; `multiclass=False` runs one
      class-agnostic NMS, then, if `voting_threshold > 0`, replaces every kept segment by the weighted mean of **all**
      input segments (before any score filtering) whose IoU with it is `>= voting_threshold`; the weights use the input
      scores and the plain IoU (no `1e-6`).
    - Each class keeps at most `max_segments` selections; the classes' lists (ascending class id, each in selection
      order) are concatenated, sorted by score with `torch.sort(descending=True)` and cut to `max_segments`.

    Ties are broken as in the reference:

    - Soft-NMS keeps a working array per class, initially its candidates in input order. Step `i` selects the *first*
      maximum among positions `i..n-1`, **swaps** it with position `i`, then decays positions `i+1..n-1`; a candidate
      that falls below `min_score` is overwritten by the current last one. Among equal scores the first in this working
      order wins, which is not the lowest input index once an element has been swapped. Example: segments
      `[[0, 10], [1, 11], [50, 60]]`, scores `[0.5, 0.5, 0.9]`: `[50, 60]` is selected and swapped with `[0, 10]`,
      giving the order `[50, 60], [1, 11], [0, 10]`; neither 0.5 overlaps `[50, 60]`, so with `max_segments=2` the
      result is `[50, 60], [1, 11]`.
    - Hard NMS scans a class in the order of `torch.sort(scores, descending=True)`.
    - The final sort is torch's unstable sort, as in the reference: from 17 detections on, tied scores come out in the
      order that sort produces for the reference's list (reproduced exactly whenever a tie can matter).

    Speed: no Python loop runs per candidate; each iteration is a few NumPy operations on the segments that can
    overlap a selection. Only about `max_segments + 1` selections are made (the reference makes all of them): when none
    of them are tied, the final order is already decided. With 4 or more classes of similar size, all classes advance
    together, one selection each per step, so the loop runs about as often as the largest contribution of one class
    to the result. Soft-NMS of a single class (or class-agnostic) with non-negative scores selects in rounds: while the
    best decayed score among the 48 highest stays above every score outside them, it is the next selection, so one
    round of array operations makes about 10 selections. Otherwise one iteration makes one selection. The path that
    replays the working order only runs when a class holds two equal highest scores. No torch operator runs inside the
    loops, so torch's thread count and a busy machine do not slow them down.

    Args:
        segments (`torch.Tensor` of shape `(num_candidates, 2)`):
            Candidate `(start, end)` segments, finite, with `start <= end`, in any unit (grid units or seconds).
        scores (`torch.Tensor` of shape `(num_candidates,)`):
            Candidate confidence scores, finite.
        class_ids (`torch.Tensor` of shape `(num_candidates,)`):
            Integer class index of every candidate.
        min_score (`float`, *optional*, defaults to 0.001):
            Soft-NMS discards candidates whose decayed score falls below this value; hard NMS keeps only candidates
            with a score above it.
        max_segments (`int`, *optional*, defaults to 200):
            Maximum number of returned detections. Must be at least 1.
        use_soft_nms (`bool`, *optional*, defaults to `True`):
            Gaussian Soft-NMS if `True`, greedy hard NMS otherwise.
        sigma (`float`, *optional*, defaults to 0.5):
            Width of the Gaussian decay of Soft-NMS. Must be positive.
        iou_threshold (`float`, *optional*, defaults to 0.1):
            IoU at or above which hard NMS suppresses a candidate. Unused by Soft-NMS.
        multiclass (`bool`, *optional*, defaults to `True`):
            Run NMS independently per class (`True`) or once over all candidates (`False`).
        voting_threshold (`float`, *optional*, defaults to 0.0):
            IoU threshold of segment voting, in `[0, 1]`; 0 disables voting. Only used when `multiclass=False`.
        voting_weight (`str`, *optional*, defaults to `"score_iou"`):
            Weight of a neighbour in segment voting: `"score_iou"` (score times IoU, ActionFormer) or `"score"`
            (TriDet / OpenTAD).

    Returns:
        `tuple[torch.Tensor, torch.Tensor, torch.Tensor]`: `(segments, scores, class_ids)` of the kept detections,
        of shapes `(num_kept, 2)` (float32, same unit as the input), `(num_kept,)` (float32, decayed Soft-NMS scores)
        and `(num_kept,)` (dtype of `class_ids`), sorted by score descending, with `num_kept <= max_segments`, on the
        device of the inputs.
    """
    if segments.ndim != 2 or segments.shape[1] != 2:
        raise ValueError(f"`segments` must have shape (num_candidates, 2), got {tuple(segments.shape)}")
    num_candidates = segments.shape[0]
    if scores.shape != (num_candidates,):
        raise ValueError(f"`scores` must have shape ({num_candidates},), got {tuple(scores.shape)}")
    if class_ids.shape != (num_candidates,):
        raise ValueError(f"`class_ids` must have shape ({num_candidates},), got {tuple(class_ids.shape)}")
    if class_ids.dtype.is_floating_point or class_ids.dtype.is_complex or class_ids.dtype == torch.bool:
        raise ValueError(f"`class_ids` must have an integer dtype, got {class_ids.dtype}")
    if not sigma > 0:
        raise ValueError(f"`sigma` must be positive, got {sigma}")
    if not max_segments >= 1:
        raise ValueError(f"`max_segments` must be at least 1, got {max_segments}")
    if not 0 <= voting_threshold <= 1:
        raise ValueError(f"`voting_threshold` must be in [0, 1], got {voting_threshold}")
    if voting_weight not in ("score_iou", "score"):
        raise ValueError(f"`voting_weight` must be 'score_iou' or 'score', got {voting_weight!r}")

    # the reference works in float32, on the CPU
    device = segments.device
    all_segments = segments.detach().to(device="cpu", dtype=torch.float32).numpy()
    all_scores = scores.detach().to(device="cpu", dtype=torch.float32).numpy()
    if not np.isfinite(all_scores).all():
        raise ValueError("`scores` must be finite")
    if not np.isfinite(all_segments).all():
        raise ValueError("`segments` must be finite")
    if not (all_segments[:, 0] <= all_segments[:, 1]).all():
        raise ValueError("`segments` must have start <= end")
    # hard NMS never changes scores, so its score filter can run first; voting still averages over every candidate
    if use_soft_nms:
        candidates, candidate_segments, candidate_scores = np.arange(num_candidates), all_segments, all_scores
    else:
        candidates = np.flatnonzero(all_scores > np.float32(min_score))
        candidate_segments, candidate_scores = all_segments[candidates], all_scores[candidates]
    if candidates.size == 0:
        empty_segments = torch.zeros((0, 2), dtype=torch.float32, device=device)
        return empty_segments, torch.zeros((0,), dtype=torch.float32, device=device), class_ids.new_zeros((0,))

    if multiclass:
        # groups are processed (and concatenated) in ascending class id, as the reference
        group_ids, num_groups = _rank_of_class(class_ids.detach().cpu().numpy()[candidates])
    else:
        group_ids, num_groups = np.zeros(candidates.size, dtype=np.int64), 1
    selection_inputs = (
        np.ascontiguousarray(candidate_segments[:, 0]),
        np.ascontiguousarray(candidate_segments[:, 1]),
        candidate_scores,
        group_ids,
        num_groups,
    )
    selection_options = {
        "max_selections": max_segments,
        "use_soft_nms": use_soft_nms,
        "sigma": sigma,
        "min_score": min_score,
        "iou_threshold": iou_threshold,
    }
    # the fast paths give up on a group with two equal highest scores: only the working order decides between them
    # with a small `sigma` a decay can underflow to 0: a removed score (-inf) times 0 is NaN, which the paths treat as
    # removed
    with np.errstate(invalid="ignore"):
        if num_groups >= _LOCKSTEP_MIN_GROUPS and candidates.size >= _LOCKSTEP_MIN_FILL * num_groups * int(
            np.bincount(group_ids).max()
        ):
            selection = _lockstep_selection(*selection_inputs, **selection_options)
        elif num_groups == 1 and use_soft_nms and candidate_scores.min() >= 0:
            selection = _block_selection(
                *selection_inputs[:3], max_selections=max_segments, sigma=sigma, min_score=min_score
            )
        else:
            selection = _best_first_selection(*selection_inputs, **selection_options, track_working_order=False)
    if selection is None:
        selection = _best_first_selection(*selection_inputs, **selection_options, track_working_order=True)
    selected, selected_scores = selection

    # the reference's final sort (not stable) on the same list reproduces its order of tied scores; without ties every
    # sort gives that order
    order = np.argsort(-selected_scores)
    if np.count_nonzero(selected_scores[order[1:]] == selected_scores[order[:-1]]):
        order = torch.sort(torch.from_numpy(selected_scores), descending=True).indices.numpy()
    order = order[:max_segments]
    kept_candidates, kept_scores = candidates[selected[order]], selected_scores[order]
    kept_segments = all_segments[kept_candidates]
    if not multiclass and voting_threshold > 0:
        kept_segments = _vote_segments(kept_segments, all_segments, all_scores, voting_threshold, voting_weight)
    kept_class_ids = class_ids[torch.from_numpy(kept_candidates).to(class_ids.device)]
    return torch.from_numpy(kept_segments).to(device), torch.from_numpy(kept_scores).to(device), kept_class_ids
