"""Pure functions on 1-D temporal segments: format conversion, IoU / generalised IoU, Soft-NMS, time conversion.

Conventions used throughout the package:

- A *normalised* segment lives in `[0, 1]`, where 0 is the start and 1 the end of the valid (unpadded) feature sequence
  of one video. Inside the model segments are `(center, width)`; everywhere else they are `(start, end)`.
- A *grid* position is a continuous feature index: `i` is the centre of the i-th feature unit.
"""

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
_NMS_LENGTH_EPS = 1e-6
# NMS can precompute a (num_classes, max_candidates, max_candidates) table of pairwise updates. On CPU, building one
# entry costs ~2 ns while every selection step that gathers from the table instead of recomputing its IoU row saves
# ~25 us of operator overhead, so the table pays off below ~10k entries per step. It is also capped at 16 MiB.
_NMS_TABLE_MAX_ELEMENTS = 1 << 22
_NMS_TABLE_ELEMENTS_PER_STEP = 10_000


def _pad_by_group(
    segments: torch.Tensor, scores: torch.Tensor, group_ids: torch.Tensor, num_groups: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scatter the candidates into a padded `(num_groups, max_group_size)` layout, keeping the input order inside each
    group (so that "first maximum" means "lowest input index"). Padding has score `-inf`."""
    num_candidates = scores.shape[0]
    counts = torch.bincount(group_ids, minlength=num_groups)
    max_group_size = int(counts.max())
    # stable sort groups the candidates while keeping their input order within a group
    order = torch.argsort(group_ids, stable=True)
    sorted_groups = group_ids[order]
    group_offsets = torch.cumsum(counts, dim=0) - counts
    position_in_group = torch.arange(num_candidates, device=scores.device) - group_offsets[sorted_groups]
    flat_positions = sorted_groups * max_group_size + position_in_group

    num_slots = num_groups * max_group_size
    padded_scores = scores.new_full((num_slots,), float("-inf"))
    padded_scores[flat_positions] = scores[order]
    # padding gets the segment [0, 0]: its IoU is well defined and its score is -inf anyway
    padded_segments = segments.new_zeros((num_slots, 2))
    padded_segments[flat_positions] = segments[order]
    slot_to_candidate = torch.full((num_slots,), -1, dtype=torch.long, device=scores.device)
    slot_to_candidate[flat_positions] = order

    starts = padded_segments[:, 0].view(num_groups, max_group_size)
    ends = padded_segments[:, 1].view(num_groups, max_group_size)
    # num_groups, max_group_size
    padded_scores = padded_scores.view(num_groups, max_group_size)
    return starts, ends, padded_scores, slot_to_candidate, counts


def _nms_iou(
    starts_a: torch.Tensor,
    ends_a: torch.Tensor,
    lengths_a: torch.Tensor,
    starts_b: torch.Tensor,
    ends_b: torch.Tensor,
    lengths_b: torch.Tensor,
) -> torch.Tensor:
    """IoU as the NMS reference computes it (lengths already include the `1e-6`), broadcasting `a` against `b`."""
    intersection = (torch.minimum(ends_a, ends_b) - torch.maximum(starts_a, starts_b)).clamp_(min=0)
    # same operation order as the reference: (length_a + length_b) - intersection
    return intersection.div_((lengths_a + lengths_b).sub_(intersection))


def _greedy_selection(
    segments: torch.Tensor,
    scores: torch.Tensor,
    group_ids: torch.Tensor,
    num_groups: int,
    *,
    max_selections: int,
    use_soft_nms: bool,
    sigma: float,
    min_score: float,
    iou_threshold: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run (soft-)NMS independently inside every group, all groups at once.

    Every iteration selects the current maximum of each group row, then decays (soft) or suppresses (hard) the rest of
    that row according to its IoU with the selected segment. The loop runs at most `max_selections` times: the caller
    keeps only the best `max_selections` detections overall, and selections within a group come out with
    non-increasing scores, so later selections can never enter the final top list.

    Returns the selected candidate indices (into the input) and their final scores, ordered group by group (ascending
    group id) and by selection order within a group.
    """
    starts, ends, current_scores, slot_to_candidate, counts = _pad_by_group(segments, scores, group_ids, num_groups)
    max_group_size = starts.shape[1]
    num_steps = min(max_selections, int(counts.max()))
    # the reference computes lengths in float32 as `end - start + 1e-6`
    lengths = ends - starts + _NMS_LENGTH_EPS
    row_offsets = torch.arange(num_groups, device=scores.device) * max_group_size
    negative_infinity = float("-inf")

    # Per step, each group row needs the "update row" of its selected slot: the decay factor `exp(-iou**2 / sigma)`
    # (soft) or the suppression mask `iou >= iou_threshold` (hard) against every slot of the row. The selected slot's
    # own entry is NaN (soft) / True (hard) so that the update also removes it. Precomputing all update rows once turns
    # every step into a single gather; it only pays off when the table is small compared with the number of steps
    # (not e.g. for one class-agnostic group of thousands of candidates capped at a hundred selections).
    table_size = num_groups * max_group_size * max_group_size
    use_table = table_size <= min(_NMS_TABLE_MAX_ELEMENTS, _NMS_TABLE_ELEMENTS_PER_STEP * num_steps)

    def update_rows_from_iou(iou: torch.Tensor) -> torch.Tensor:
        if use_soft_nms:
            return torch.exp(iou.mul_(iou).div_(-sigma))
        return iou >= iou_threshold

    if use_table:
        # num_groups, max_group_size (selected), max_group_size (other)
        iou = _nms_iou(
            starts[:, :, None], ends[:, :, None], lengths[:, :, None], starts[:, None], ends[:, None], lengths[:, None]
        )
        update_table = update_rows_from_iou(iou)
        update_table.diagonal(dim1=1, dim2=2).fill_(float("nan") if use_soft_nms else True)
        # num_groups * max_group_size, max_group_size
        update_table = update_table.view(-1, max_group_size)
    else:
        # num_groups * max_group_size, 3: start / end / length of every slot, fetched for the selection in one gather
        slot_table = torch.stack((starts, ends, lengths), dim=-1).view(-1, 3)

    selected_scores, selected_slots = [], []
    for step in range(num_steps):
        # torch.max returns the first maximal index on ties -> lowest input index inside the group
        best_scores, best_positions = current_scores.max(dim=1)
        # checking for exhausted rows costs a synchronisation, so only do it every few steps
        if step % 8 == 7 and best_scores.max() == negative_infinity:
            break
        best_slots = best_positions + row_offsets
        selected_scores.append(best_scores)
        selected_slots.append(best_slots)

        if use_table:
            update_rows = update_table.index_select(0, best_slots)
        else:
            # each of shape (num_groups, 1)
            best_start, best_end, best_length = slot_table.index_select(0, best_slots).unsqueeze(-1).unbind(1)
            update_rows = update_rows_from_iou(_nms_iou(best_start, best_end, best_length, starts, ends, lengths))
            # update_rows has the (num_groups, max_group_size) layout of the slots: mark each selected slot
            update_rows.view(-1).index_fill_(0, best_slots, float("nan") if use_soft_nms else True)

        if use_soft_nms:
            # decay, then discard what fell below `min_score`; `>=` is False for NaN, which removes the selected slot
            # and slots already removed (-inf) whose decay underflowed to 0 (-inf * 0 = NaN)
            current_scores = current_scores.mul_(update_rows)
            current_scores = torch.where(current_scores >= min_score, current_scores, negative_infinity)
        else:
            current_scores.masked_fill_(update_rows, negative_infinity)

    # num_groups, num_steps (the first step always runs: the input is not empty)
    selected_scores = torch.stack(selected_scores, dim=1)
    selected_slots = torch.stack(selected_slots, dim=1)
    # an exhausted group row returns -inf; boolean indexing keeps the row-major (group, selection) order
    is_valid = selected_scores != negative_infinity
    return slot_to_candidate[selected_slots[is_valid]], selected_scores[is_valid]


def _vote_segments(
    kept_segments: torch.Tensor,
    all_segments: torch.Tensor,
    all_scores: torch.Tensor,
    voting_threshold: float,
    voting_weight: str,
) -> torch.Tensor:
    """Replace every kept segment by the weighted mean of all pre-NMS segments overlapping it with IoU >= threshold."""
    # num_kept, num_all
    iou = pairwise_segment_iou(kept_segments, all_segments)
    weights = all_scores[None, :] * (iou >= voting_threshold)
    if voting_weight == "score_iou":
        weights = weights * iou
    # num_kept, 1
    weight_sums = weights.sum(dim=1, keepdim=True)
    # a kept segment always overlaps itself with IoU 1, so the sum is only 0 for degenerate input (zero-length segment
    # or zero score): keep the NMS segment there instead of producing NaN
    has_weight = weight_sums != 0
    voted = (weights @ all_segments) / torch.where(has_weight, weight_sums, 1.0)
    return torch.where(has_weight, voted, kept_segments)


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

    Pure-torch, vectorised re-implementation of the ActionFormer `batched_nms` semantics (no compiled extension):

    - **Soft-NMS** (`use_soft_nms=True`, always Gaussian): repeatedly select the candidate with the highest current
      score (the first one in input order on ties); multiply the score of every remaining candidate by
      `exp(-iou**2 / sigma)` and discard those whose decayed score is `< min_score`. `iou_threshold` is unused. As in
      the reference, scores are only tested after a decay, so the first selection of a class is kept even when its
      score is below `min_score`.
    - **Hard NMS** (`use_soft_nms=False`): keep candidates with score `> min_score`, then greedily select in score
      order and suppress every remaining candidate with `iou >= iou_threshold`. Scores are unchanged.
    - IoU inside NMS uses segment lengths `end - start + 1e-6` and float32 arithmetic, as the reference.
    - `multiclass=True` runs NMS independently for every class and ignores voting; `multiclass=False` runs one
      class-agnostic NMS, then, if `voting_threshold > 0`, replaces every kept segment by the weighted mean of **all**
      input segments (before any score filtering) whose IoU with it is `>= voting_threshold`; the weights use the input
      scores and the plain IoU (no `1e-6`).
    - Finally detections are sorted by score (descending; ties keep class then selection order) and the best
      `max_segments` are returned.

    All classes are processed together in a padded `(num_classes, max_candidates_per_class)` layout, so the Python
    loop runs once per selection step, at most `max_segments` times.

    Args:
        segments (`torch.Tensor` of shape `(num_candidates, 2)`):
            Candidate `(start, end)` segments with `start <= end`, in any unit (grid units or seconds).
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
        and `(num_kept,)` (dtype of `class_ids`), sorted by score descending, with `num_kept <= max_segments`.
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

    # the reference works in float32
    segments = segments.to(torch.float32)
    scores = scores.to(torch.float32)
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("`scores` must be finite")
    # voting averages over every input candidate, including those the hard-NMS score filter below drops
    all_segments, all_scores = segments, scores
    if not use_soft_nms:
        # hard NMS never changes scores, so the score filter can run first
        keep = scores > min_score
        segments, scores, class_ids = segments[keep], scores[keep], class_ids[keep]
    if scores.numel() == 0:
        return segments.new_zeros((0, 2)), scores.new_zeros((0,)), class_ids.new_zeros((0,))

    if multiclass:
        # sorted unique classes: groups are processed (and tie-ordered) in ascending class id, as the reference
        unique_classes, group_ids = torch.unique(class_ids, return_inverse=True)
        num_groups = unique_classes.numel()
    else:
        group_ids = torch.zeros_like(class_ids, dtype=torch.long)
        num_groups = 1
    kept_indices, kept_scores = _greedy_selection(
        segments,
        scores,
        group_ids,
        num_groups,
        max_selections=max_segments,
        use_soft_nms=use_soft_nms,
        sigma=sigma,
        min_score=min_score,
        iou_threshold=iou_threshold,
    )

    # a stable sort keeps (class, selection) order among equal scores, which also makes the early stop exact
    order = torch.sort(kept_scores, descending=True, stable=True).indices[:max_segments]
    kept_indices, kept_scores = kept_indices[order], kept_scores[order]
    kept_segments = segments[kept_indices]
    if not multiclass and voting_threshold > 0:
        kept_segments = _vote_segments(kept_segments, all_segments, all_scores, voting_threshold, voting_weight)
    return kept_segments, kept_scores, class_ids[kept_indices]
