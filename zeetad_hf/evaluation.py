"""Temporal action detection mAP at temporal IoU thresholds, bit-identical to the official ActivityNet evaluator.

[`temporal_action_map`] reproduces `ANETdetection` of activitynet/ActivityNet (`Evaluation/eval_detection.py`) with
numpy-only, vectorised code (the official implementation walks a pandas DataFrame row by row and takes minutes on the
ActivityNet validation set). The official semantics, all kept here:

- the class set is the set of ground-truth labels of the evaluated subset, in order of first appearance; mAP is the
  plain mean over these classes and a class without predictions has AP 0;
- per class, predictions are ranked with `np.argsort(scores)[::-1]` on the scores in input order. This is not a stable
  sort: the order of tied scores is whatever numpy's default sort kernel produces on this machine, so the same call is
  made on the same array as the official code;
- matching is greedy and independent per threshold: in score order, a prediction walks the ground truth of its class
  in its video by decreasing tIoU (same `argsort` call), stops with a false positive at the first tIoU below the
  threshold (the comparison is inclusive, `tIoU >= threshold` matches), skips ground truth already matched at that
  threshold, and otherwise becomes a true positive and locks it. Predictions on a video without ground truth of their
  class, including videos outside the evaluated subset, are false positives;
- AP is the all-point interpolated area under the precision envelope (VOC 2010+), with recall over every ground-truth
  instance of the class (duplicates included).

Inputs that the official evaluator scores without a word but that are almost always mistakes raise a `ValueError` by
default, each with an opt-out that restores the official behaviour: predictions on video ids that are not in the
ground truth (e.g. `"video_test_0000004.mp4"`; `unknown_videos="false_positive"`), and a JSON file that gives a video
id twice (`json.load` keeps the last entry only; `duplicate_videos="keep_last"`). tIoU thresholds outside `(0, 1]`
are always an error.
"""

import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from transformers.utils import logging

from .file_utils import read_json, repeated_json_keys
from .zero_shot_splits import restrict_ground_truth


logger = logging.get_logger(__name__)


# Tolerance (seconds) of the optional ActionFormer-style ground-truth de-duplication.
_DEDUP_TOLERANCE = 1e-3
# (prediction, ground truth) pairs materialised at once during matching: ~100 MB of temporaries.
_PAIRS_PER_CHUNK = 1_000_000
# Video ids quoted in an error message; the total count is always given.
_MAX_LISTED = 5
# The ActivityNet structures, quoted when an input has another shape.
_EXPECTED_FORMATS = {
    "database": '{"database": {video_id: {"subset": str, "annotations": [{"label": str, "segment": [start, end]}]}}}',
    "results": '{"results": {video_id: [{"label": str, "score": float, "segment": [start, end]}]}}',
}


def _is_number(value: Any) -> bool:
    # bool is a numbers.Real subclass, but `True` as a score or a boundary is a bug upstream
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}, got {value!r}")


def _load_videos(
    data: Mapping[str, Any] | str | os.PathLike, name: str, key: str, duplicate_videos: str = "error"
) -> Mapping[str, Any]:
    """Return `data[key]` (the per-video mapping) from a loaded structure or from a JSON file, whose video ids must
    not repeat unless `duplicate_videos="keep_last"`."""
    _check_choice("duplicate_videos", duplicate_videos, ("error", "keep_last"))
    source = f"`{name}`"
    if isinstance(data, (str, os.PathLike)):
        source = f"`{name}` file {os.fspath(data)}"
        data = read_json(data, name)
    if not isinstance(data, Mapping) or not isinstance(data.get(key), Mapping):
        if isinstance(data, Mapping):
            found = f"a mapping with the keys {sorted(map(str, data))[:10]}"
        else:
            found = f"a {type(data).__name__}"
        raise ValueError(
            f"{source} must be a mapping (or a path to a JSON file) in the ActivityNet format "
            f"{_EXPECTED_FORMATS[key]}, got {found}"
        )
    repeated = repeated_json_keys(data[key])
    if repeated:
        where = f'{source}: {len(repeated)} video ids occur more than once in "{key}" (e.g. {repeated[:_MAX_LISTED]})'
        if duplicate_videos == "error":
            raise ValueError(
                f"{where}; JSON keeps only the last entry of each, so the others would be silently discarded. Fix the "
                'file, or pass `duplicate_videos="keep_last"` to keep the last entries (as the official evaluator '
                "does)."
            )
        logger.warning(f"{where}; kept the last entry of each.")
    return data[key]


def load_predictions(
    predictions: Mapping[str, Any] | str | os.PathLike,
    *,
    duplicate_videos: Literal["error", "keep_last"] = "error",
) -> Mapping[str, Any]:
    r"""
    The per-video detections `{video_id: [{"label", "score", "segment"}, ...]}` of an ActivityNet submission.

    Args:
        predictions (`Mapping[str, Any]` or `str` or `os.PathLike`):
            `{"results": {video_id: [{"label": str, "score": float, "segment": [start, end]}, ...]}}`, or the path of
            a JSON file holding it (other top-level keys such as `"version"` are ignored).
        duplicate_videos (`str`, *optional*, defaults to `"error"`):
            `"error"` raises a `ValueError` naming the video ids that the file gives more than once (JSON keeps only
            the last entry of each); `"keep_last"` keeps the last entry of each, as the official evaluator does.

    Returns:
        `Mapping[str, Any]`: the `"results"` mapping.

    Raises:
        `FileNotFoundError`: if the file does not exist.
        `ValueError`: naming the file, if it is not JSON, is not a mapping with a `"results"` mapping (e.g. a JSON
        list of detections), or repeats a video id.
    """
    return _load_videos(predictions, "predictions", "results", duplicate_videos)


def validate_tiou_thresholds(tiou_thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    r"""
    Check temporal IoU thresholds and return them as an array.

    Args:
        tiou_thresholds (`Sequence[float]` or `np.ndarray`):
            The thresholds, each in `(0, 1]` (a tIoU is a fraction: 0.5, not 50).

    Returns:
        `np.ndarray` of shape `(num_thresholds,)`, float64, in the given order.

    Raises:
        `ValueError`: naming `tiou_thresholds`, if they are empty, not a 1-D sequence of finite numbers, or if some lie
        outside `(0, 1]` (the message lists those): with a threshold above 1 nothing can match, so every AP would be
        0; with one at or below 0 every overlap would match.
    """
    try:
        thresholds = np.array(tiou_thresholds, dtype=np.float64)
    except (TypeError, ValueError):
        thresholds = None
    if thresholds is None or thresholds.ndim != 1 or len(thresholds) == 0 or not np.isfinite(thresholds).all():
        raise ValueError(
            f"`tiou_thresholds` must be a non-empty 1-D sequence of finite numbers, got {tiou_thresholds!r}"
        )
    outside = thresholds[~((thresholds > 0) & (thresholds <= 1))]
    if len(outside):
        raise ValueError(
            f"`tiou_thresholds` must lie in (0, 1] (a temporal IoU is a fraction, e.g. 0.5 rather than 50), got "
            f"{outside.tolist()} among {thresholds.tolist()}"
        )
    return thresholds


def _spelling_hint(video_id: str, database: Mapping[str, Any]) -> str | None:
    """How `video_id` matches a ground-truth video id, when a common spelling difference is all that separates them."""
    stem = os.path.splitext(os.path.basename(video_id))[0]
    candidates = [(stem, "without its folder and file extension")]
    candidates.append((f"v_{video_id}", "with the `v_` prefix of ActivityNet ids"))
    if video_id.startswith("v_"):
        candidates.append((video_id[2:], "without the `v_` prefix"))
    for candidate, change in candidates:
        if candidate != video_id and candidate in database:
            return f"{video_id!r} is {candidate!r} {change}"
    return None


def _check_prediction_videos(results: Mapping[str, Any], database: Mapping[str, Any], unknown_videos: str) -> None:
    """Raise, unless `unknown_videos="false_positive"`, when predictions name videos that the ground truth lacks."""
    _check_choice("unknown_videos", unknown_videos, ("error", "false_positive"))
    if unknown_videos == "false_positive":
        return
    unknown = [video_id for video_id in results if video_id not in database]
    if not unknown:
        return
    message = (
        f"{len(unknown)} of {len(results)} prediction videos are not in the ground truth (e.g. "
        f"{unknown[:_MAX_LISTED]}), so every prediction on them would be a false positive."
    )
    hints = [hint for hint in (_spelling_hint(str(video_id), database) for video_id in unknown) if hint]
    if hints:
        message += (
            f" {len(hints)} of them match a ground-truth video once spelled differently ("
            + "; ".join(hints[:3])
            + "): name predictions by the ground truth's video ids."
        )
    raise ValueError(
        message + ' Pass `unknown_videos="false_positive"` to score them as false positives, as the official '
        "evaluator does."
    )


def _segment_error(segment: Any) -> str | None:
    """Why `segment` is not a valid `[start, end]` pair, or `None` if it is."""
    if not isinstance(segment, (list, tuple, np.ndarray)) or len(segment) != 2 or not all(map(_is_number, segment)):
        return f"must be a [start, end] pair of numbers, got {segment!r}"
    start, end = float(segment[0]), float(segment[1])
    if not (np.isfinite(start) and np.isfinite(end)):
        return f"must be finite, got {segment!r}"
    # zero-length segments are legal (ActivityNet has a few); reversed ones are corrupt
    if end < start:
        return f"must have end >= start, got {segment!r}"
    return None


def _remove_duplicate_annotations(
    labels: list[str], segments: list[tuple[float, float]]
) -> tuple[list[str], list[tuple[float, float]]]:
    """ActionFormer rule: drop instances shorter than the tolerance, and same-label instances whose start and end are
    both within the tolerance of an instance kept earlier in the same video."""
    kept_labels: list[str] = []
    kept_segments: list[tuple[float, float]] = []
    for label, (start, end) in zip(labels, segments):
        if end - start < _DEDUP_TOLERANCE:
            continue
        is_duplicate = any(
            kept_label == label
            and abs(start - kept_start) <= _DEDUP_TOLERANCE
            and abs(end - kept_end) <= _DEDUP_TOLERANCE
            for kept_label, (kept_start, kept_end) in zip(kept_labels, kept_segments)
        )
        if not is_duplicate:
            kept_labels.append(label)
            kept_segments.append((start, end))
    return kept_labels, kept_segments


def _parse_ground_truth(
    database: Mapping[str, Any], subset: str | None, ignore_labels: set[str], dedup_ground_truth: bool
) -> tuple[dict[str, int], dict[str, int], np.ndarray, np.ndarray, np.ndarray]:
    """Flatten the ground truth of the evaluated videos.

    Returns `(video_index, class_index, gt_video, gt_class, gt_segments)`; both indexes follow first appearance, and
    the flat arrays keep the file order (video order, then annotation order) that the official evaluator uses.
    """
    video_index: dict[str, int] = {}
    class_index: dict[str, int] = {}
    gt_video: list[int] = []
    gt_class: list[int] = []
    gt_segments: list[tuple[float, float]] = []
    for video_id, video in database.items():
        if not isinstance(video, Mapping):
            raise ValueError(f"ground truth video {video_id!r}: expected a mapping, got {type(video).__name__}")
        if subset is not None:
            if "subset" not in video:
                raise ValueError(f'ground truth video {video_id!r}: missing field "subset"')
            if video["subset"] != subset:
                continue
        if not isinstance(video.get("annotations"), (list, tuple)):
            raise ValueError(
                f'ground truth video {video_id!r}: missing or invalid field "annotations" (expected a list)'
            )
        labels: list[str] = []
        segments: list[tuple[float, float]] = []
        for index, annotation in enumerate(video["annotations"]):
            where = f"ground truth video {video_id!r}, annotation {index}"
            if not isinstance(annotation, Mapping):
                raise ValueError(f"{where}: expected a mapping, got {type(annotation).__name__}")
            for field in ("label", "segment"):
                if field not in annotation:
                    raise ValueError(f'{where}: missing field "{field}"')
            if not isinstance(annotation["label"], str):
                raise ValueError(f'{where}: field "label" must be a string, got {annotation["label"]!r}')
            if annotation["label"] in ignore_labels:
                continue
            error = _segment_error(annotation["segment"])
            if error is not None:
                raise ValueError(f'{where}: field "segment" {error}')
            labels.append(annotation["label"])
            segments.append((float(annotation["segment"][0]), float(annotation["segment"][1])))
        if dedup_ground_truth:
            labels, segments = _remove_duplicate_annotations(labels, segments)
        video_idx = video_index.setdefault(video_id, len(video_index))
        for label, segment in zip(labels, segments):
            gt_video.append(video_idx)
            gt_class.append(class_index.setdefault(label, len(class_index)))
            gt_segments.append(segment)
    return (
        video_index,
        class_index,
        np.asarray(gt_video, dtype=np.int64),
        np.asarray(gt_class, dtype=np.int64),
        np.asarray(gt_segments, dtype=np.float64).reshape(-1, 2),
    )


def _describe_invalid_prediction(results: Mapping[str, Any]) -> str:
    """Slow path, only run once the vectorised checks failed: name the first malformed prediction."""
    for video_id, items in results.items():
        for index, item in enumerate(items):
            where = f"predictions video {video_id!r}, entry {index}"
            if not isinstance(item, Mapping):
                return f"{where}: expected a mapping, got {type(item).__name__}"
            for field in ("label", "score", "segment"):
                if field not in item:
                    return f'{where}: missing field "{field}"'
            if not _is_number(item["score"]) or not np.isfinite(float(item["score"])):
                return f'{where}: field "score" must be a finite number, got {item["score"]!r}'
            error = _segment_error(item["segment"])
            if error is not None:
                return f'{where}: field "segment" {error}'
            try:
                hash(item["label"])
            except TypeError:
                return f'{where}: field "label" must be a string, got {item["label"]!r}'
    return "predictions are malformed"


def _parse_predictions(
    results: Mapping[str, Any],
    video_index: Mapping[str, int],
    class_index: Mapping[str, int],
    ignore_labels: set[str],
    unknown_label: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flatten the predictions in file order (video order, then list order), as the official DataFrame is built.

    Returns `(pred_video, pred_class, pred_score, pred_segments)`; `pred_video` is -1 for videos that are not evaluated
    ground-truth videos (their predictions can only be false positives).
    """
    video_ids: list[str] = []
    counts: list[int] = []
    labels: list[Any] = []
    scores: list[Any] = []
    segments: list[Any] = []
    for video_id, items in results.items():
        if not isinstance(items, (list, tuple)):
            raise ValueError(
                f"predictions video {video_id!r}: expected a list of predictions, got {type(items).__name__}"
            )
        try:
            labels.extend([item["label"] for item in items])
            scores.extend([item["score"] for item in items])
            segments.extend([item["segment"] for item in items])
        except (KeyError, TypeError):
            raise ValueError(_describe_invalid_prediction({video_id: items})) from None
        video_ids.append(video_id)
        counts.append(len(items))
    num_predictions = len(labels)
    video_offsets = np.cumsum(counts)

    def where(flat_index: int) -> str:
        video = int(np.searchsorted(video_offsets, flat_index, side="right"))
        entry = flat_index - (int(video_offsets[video - 1]) if video > 0 else 0)
        return f"predictions video {video_ids[video]!r}, entry {entry}"

    # Numeric conversion without dtype: strings or None give a non-numeric array instead of being parsed.
    try:
        score_array = np.asarray(scores)
        segment_array = np.asarray(segments)
    except ValueError:
        # ragged segments
        raise ValueError(_describe_invalid_prediction(results)) from None
    if num_predictions == 0:
        score_array, segment_array = score_array.reshape(0), segment_array.reshape(0, 2)
    if (
        score_array.dtype.kind not in "iuf"
        or segment_array.dtype.kind not in "iuf"
        or segment_array.shape != (num_predictions, 2)
    ):
        raise ValueError(_describe_invalid_prediction(results))
    score_array = score_array.astype(np.float64)
    segment_array = segment_array.astype(np.float64)
    invalid = ~np.isfinite(score_array) | ~np.isfinite(segment_array).all(axis=1)
    invalid |= segment_array[:, 1] < segment_array[:, 0]
    if invalid.any():
        first = int(np.argmax(invalid))
        if not np.isfinite(score_array[first]):
            raise ValueError(f'{where(first)}: field "score" must be a finite number, got {scores[first]!r}')
        raise ValueError(f'{where(first)}: field "segment" {_segment_error(segments[first])}')

    try:
        label_ids = np.fromiter(
            (class_index.get(label, -1) for label in labels), dtype=np.int64, count=num_predictions
        )
    except TypeError:
        # unhashable label
        raise ValueError(_describe_invalid_prediction(results)) from None
    keep = label_ids >= 0
    if unknown_label == "error":
        for flat_index in np.flatnonzero(~keep):
            if labels[flat_index] not in ignore_labels:
                raise ValueError(
                    f"{where(int(flat_index))}: label {labels[flat_index]!r} is not a ground-truth class of the "
                    'evaluated videos; pass `unknown_label="ignore"` to drop such predictions'
                )
    video_of_prediction = np.repeat(np.asarray([video_index.get(video_id, -1) for video_id in video_ids]), counts)
    return (
        video_of_prediction.astype(np.int64)[keep],
        label_ids[keep],
        score_array[keep],
        segment_array[keep],
    )


def _interpolated_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """All-point interpolated AP; the exact operations (and summation order) of the official `interpolated_prec_rec`."""
    envelope = np.concatenate(([0.0], precision, [0.0]))
    envelope = np.maximum.accumulate(envelope[::-1])[::-1]
    recall_points = np.concatenate(([0.0], recall, [1.0]))
    changes = np.flatnonzero(recall_points[1:] != recall_points[:-1]) + 1
    return float(np.sum((recall_points[changes] - recall_points[changes - 1]) * envelope[changes]))


def _reachable_pairs(
    first_gt: np.ndarray,
    num_gt: np.ndarray,
    pred_start: np.ndarray,
    pred_end: np.ndarray,
    gt_start: np.ndarray,
    gt_end: np.ndarray,
    min_threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prediction, ground truth) pairs that some threshold's walk can reach, each prediction's pairs in walk order.

    Prediction `i` faces the ground truth `first_gt[i] : first_gt[i] + num_gt[i]` (indices into `gt_start`/`gt_end`,
    which are grouped by (class, video)). Returns `(pair_prediction, pair_gt, pair_tiou)`, grouped by prediction.
    """
    # 1. One row per (prediction, ground truth of its group).
    pair_offsets = np.concatenate(([0], np.cumsum(num_gt)))
    pair_prediction = np.repeat(np.arange(len(num_gt)), num_gt)
    pair_gt = np.repeat(first_gt - pair_offsets[:-1], num_gt) + np.arange(pair_offsets[-1])

    # tIoU with the official operation order (no epsilon: two zero-length segments give NaN, as officially).
    pair_pred_start, pair_pred_end = np.repeat(pred_start, num_gt), np.repeat(pred_end, num_gt)
    pair_gt_start, pair_gt_end = gt_start[pair_gt], gt_end[pair_gt]
    intersection = (np.minimum(pair_pred_end, pair_gt_end) - np.maximum(pair_pred_start, pair_gt_start)).clip(0)
    union = (pair_gt_end - pair_gt_start) + (pair_pred_end - pair_pred_start) - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        pair_tiou = intersection / union

    # 2. Walk order of the ground truth for each prediction: the official `tiou.argsort()[::-1]`. A row-wise argsort
    #    of a (n, k) matrix gives the same permutation as k-element 1-D calls, so predictions are bucketed by size.
    for size in np.unique(num_gt[num_gt > 1]):
        rows = pair_offsets[:-1][num_gt == size][:, None] + np.arange(size)
        walk = np.argsort(pair_tiou[rows], axis=1)[:, ::-1]
        reordered = np.take_along_axis(rows, walk, axis=1)
        pair_tiou[rows], pair_gt[rows] = pair_tiou[reordered], pair_gt[reordered]

    # 3. No walk goes past the first tIoU below the smallest threshold, so that tail is dropped. Only after sorting:
    #    the tie order of numpy's unstable sort may depend on the dropped values.
    reachable = ~(pair_tiou < min_threshold)
    return pair_prediction[reachable], pair_gt[reachable], pair_tiou[reachable]


def _match(
    pred_video: np.ndarray,
    pred_class: np.ndarray,
    pred_segments: np.ndarray,
    gt_video: np.ndarray,
    gt_class: np.ndarray,
    gt_segments: np.ndarray,
    num_videos: int,
    tiou_thresholds: np.ndarray,
) -> np.ndarray:
    """Greedy matching of predictions already in per-class score order; returns the `(num_predictions, T)` TP mask.

    Predictions only compete with predictions of the same (class, video) group, so the k-th prediction of every group
    is processed in the same vectorised round; the number of rounds is the largest number of predictions of one group
    that overlap a ground truth of the group by at least the smallest threshold.
    """
    num_predictions, num_thresholds = len(pred_class), len(tiou_thresholds)
    true_positive = np.zeros((num_predictions, num_thresholds), dtype=bool)

    # Ground truth grouped by (class, video), keeping file order inside a group like the official per-video groupby.
    gt_key = gt_class * num_videos + gt_video
    gt_order = np.argsort(gt_key, kind="stable")
    gt_key_sorted = gt_key[gt_order]
    gt_start, gt_end = gt_segments[gt_order, 0], gt_segments[gt_order, 1]
    pred_key = pred_class * num_videos + pred_video
    group_start = np.searchsorted(gt_key_sorted, pred_key, side="left")
    group_size = np.searchsorted(gt_key_sorted, pred_key, side="right") - group_start
    group_size[pred_video < 0] = 0
    candidates = np.flatnonzero(group_size > 0)

    # Pairs are built in chunks of candidates to bound the memory of videos with many predictions and ground truth.
    chunk_bounds = np.unique(
        np.searchsorted(np.cumsum(group_size[candidates]), np.arange(0, group_size.sum(), _PAIRS_PER_CHUNK))
    )
    chunks = []
    for chunk in np.split(candidates, chunk_bounds[1:]):
        pair_prediction, pair_gt, pair_tiou = _reachable_pairs(
            group_start[chunk],
            group_size[chunk],
            pred_segments[chunk, 0],
            pred_segments[chunk, 1],
            gt_start,
            gt_end,
            tiou_thresholds.min(),
        )
        chunks.append((chunk[pair_prediction], gt_order[pair_gt], pair_tiou))
    pair_prediction, pair_gt, pair_tiou = (np.concatenate(arrays) for arrays in zip(*chunks))
    if len(pair_prediction) == 0:
        return true_positive

    # 4. Rank of each prediction inside its group (pairs are grouped by prediction in ranked order, and a stable sort
    #    keeps that order within a group), then pairs regrouped by round.
    is_new_prediction = np.concatenate(([True], pair_prediction[1:] != pair_prediction[:-1]))
    active = pair_prediction[is_new_prediction]
    num_pairs = np.diff(np.concatenate((np.flatnonzero(is_new_prediction), [len(pair_prediction)])))
    pair_offsets = np.concatenate(([0], np.cumsum(num_pairs)))
    active_keys = pred_key[active]
    by_group = np.argsort(active_keys, kind="stable")
    sorted_keys = active_keys[by_group]
    positions = np.arange(len(active))
    is_first = np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1]))
    rank = np.empty(len(active), dtype=np.int64)
    rank[by_group] = positions - np.maximum.accumulate(np.where(is_first, positions, 0))
    by_round = np.argsort(rank, kind="stable")
    round_predictions = active[by_round]
    round_bounds = np.searchsorted(rank[by_round], np.arange(rank.max() + 2))
    round_num_pairs = num_pairs[by_round]
    round_offsets = np.concatenate(([0], np.cumsum(round_num_pairs)))
    gather = np.repeat(pair_offsets[by_round] - round_offsets[:-1], round_num_pairs) + np.arange(round_offsets[-1])
    pair_gt, pair_tiou, pair_offsets = pair_gt[gather], pair_tiou[gather], round_offsets

    locked = np.zeros((len(gt_class), num_thresholds), dtype=bool)
    for round_index in range(len(round_bounds) - 1):
        first_prediction, end_prediction = round_bounds[round_index], round_bounds[round_index + 1]
        first_pair, end_pair = pair_offsets[first_prediction], pair_offsets[end_prediction]
        segment_starts = pair_offsets[first_prediction:end_prediction] - first_pair
        gt_ids = pair_gt[first_pair:end_pair]
        # num_pairs, num_thresholds
        below = pair_tiou[first_pair:end_pair, None] < tiou_thresholds[None, :]
        free = ~below & ~locked[gt_ids]
        local = np.arange(end_pair - first_pair)[:, None]
        sentinel = end_pair - first_pair
        # The walk stops at the first tIoU below the threshold; a free ground truth before that point is a TP.
        first_below = np.minimum.reduceat(np.where(below, local, sentinel), segment_starts, axis=0)
        first_free = np.minimum.reduceat(np.where(free, local, sentinel), segment_starts, axis=0)
        hit = first_free < first_below
        hit_rows, hit_thresholds = np.nonzero(hit)
        locked[gt_ids[first_free[hit_rows, hit_thresholds]], hit_thresholds] = True
        true_positive[round_predictions[first_prediction:end_prediction]] = hit
    return true_positive


def temporal_action_map(
    ground_truth: Mapping[str, Any] | str | os.PathLike,
    predictions: Mapping[str, Any] | str | os.PathLike,
    tiou_thresholds: Sequence[float] | np.ndarray,
    subset: str | None = None,
    *,
    dedup_ground_truth: bool = False,
    unknown_label: Literal["error", "ignore"] = "error",
    ignore_labels: Iterable[str] | None = ("Ambiguous",),
    unknown_videos: Literal["error", "false_positive"] = "error",
    duplicate_videos: Literal["error", "keep_last"] = "error",
) -> dict[str, Any]:
    """Detection mAP at temporal IoU thresholds with the semantics of the official ActivityNet evaluator.

    The numbers are bit-identical to `ANETdetection(...).evaluate()` of activitynet/ActivityNet
    (`Evaluation/eval_detection.py`, without blocked videos) on the same inputs and numpy build; see the module
    docstring for the exact rules.

    Args:
        ground_truth (`Mapping[str, Any]` or `str` or `os.PathLike`):
            ActivityNet ground truth `{"database": {video_id: {"subset": str, "annotations": [{"label": str,
            "segment": [start, end]}, ...]}}}` (other keys such as `"duration"` or `"version"` are ignored), or the path
            of a JSON file holding it. Segments are in seconds with `end >= start`.
        predictions (`Mapping[str, Any]` or `str` or `os.PathLike`):
            ActivityNet submission `{"results": {video_id: [{"label": str, "score": float, "segment": [start, end]},
            ...]}}`, or the path of a JSON file holding it. Video ids must be spelled as in the ground truth (ActivityNet
            ids with or without the `v_` prefix, consistently).
        tiou_thresholds (`Sequence[float]` or `np.ndarray`):
            Temporal IoU thresholds in `(0, 1]`, e.g. `[0.3, 0.4, 0.5, 0.6, 0.7]` for THUMOS14 or
            `np.linspace(0.5, 0.95, 10)` for ActivityNet. A prediction matches a ground-truth segment when
            `tIoU >= threshold`. Values outside `(0, 1]` (e.g. percentages) raise a `ValueError` naming them.
        subset (`str`, *optional*):
            Evaluate only the ground-truth videos whose `"subset"` equals this string (exact, case-sensitive:
            `"Test"` for THUMOS14, `"validation"` for ActivityNet). `None` evaluates every video. Predictions on other
            videos are kept and count as false positives, as officially.
        dedup_ground_truth (`bool`, *optional*, defaults to `False`):
            Apply the ActionFormer rule before evaluation: drop ground truth shorter than 1e-3 s and same-label ground
            truth whose start and end are both within 1e-3 s of an instance kept earlier in the video. The official
            evaluator counts duplicates separately.
        unknown_label (`str`, *optional*, defaults to `"error"`):
            What to do with a prediction whose label is not a ground-truth class of the evaluated videos: `"error"`
            raises a `ValueError` naming the label and the video (the official evaluator raises `KeyError`);
            `"ignore"` drops the prediction (OpenTAD behaviour).
        ignore_labels (`Iterable[str]`, *optional*, defaults to `("Ambiguous",)`):
            Labels removed from the ground truth before the class set is built (THUMOS14 `Ambiguous`); predictions with
            these labels are dropped silently. `None` keeps every label.
        unknown_videos (`str`, *optional*, defaults to `"error"`):
            What to do with predictions on video ids that the ground truth does not hold at all (videos of another
            subset of the ground truth are not unknown): `"error"` raises a `ValueError` naming a few of them, with a
            hint when removing a file extension (`"video_test_0000004.mp4"`) or adding/removing ActivityNet's `v_`
            prefix would match; `"false_positive"` scores them as false positives, as the official evaluator does.
        duplicate_videos (`str`, *optional*, defaults to `"error"`):
            For inputs given as JSON files: `"error"` raises a `ValueError` naming the video ids that a file gives
            more than once (JSON keeps only the last entry of a repeated key); `"keep_last"` keeps the last entry, as
            the official evaluator does.

    Returns:
        `dict[str, Any]` with
        - `"tiou_thresholds"` (`list[float]`): the thresholds, in the given order;
        - `"mAP"` (`list[float]`): mean AP over the classes at each threshold, in `[0, 1]`;
        - `"average_mAP"` (`float`): mean of `"mAP"` over the thresholds, the number usually reported;
        - `"per_class_ap"` (`dict[str, list[float]]`): AP per threshold of each ground-truth class, in order of first
          appearance in the ground truth.

    Example:

    ```python
    >>> from zeetad_hf.evaluation import temporal_action_map

    >>> ground_truth = {"database": {"video_1": {"subset": "Test", "annotations": [{"label": "HighJump", "segment": [2.0, 6.0]}]}}}
    >>> predictions = {"results": {"video_1": [{"label": "HighJump", "score": 0.9, "segment": [2.5, 6.0]}]}}
    >>> result = temporal_action_map(ground_truth, predictions, tiou_thresholds=[0.5, 0.9], subset="Test")
    >>> result["mAP"], result["average_mAP"]
    ([1.0, 0.0], 0.5)
    ```
    """
    thresholds = validate_tiou_thresholds(tiou_thresholds)
    if unknown_label not in ("error", "ignore"):
        raise ValueError(f'`unknown_label` must be "error" or "ignore", got {unknown_label!r}')
    if isinstance(ignore_labels, str):
        raise ValueError(f"`ignore_labels` must be an iterable of labels, not the string {ignore_labels!r}")
    ignored = set(ignore_labels) if ignore_labels is not None else set()

    database = _load_videos(ground_truth, "ground_truth", "database", duplicate_videos)
    results = _load_videos(predictions, "predictions", "results", duplicate_videos)
    _check_prediction_videos(results, database, unknown_videos)
    video_index, class_index, gt_video, gt_class, gt_segments = _parse_ground_truth(
        database, subset, ignored, dedup_ground_truth
    )
    if not class_index:
        where = f"subset {subset!r}" if subset is not None else "the ground truth"
        raise ValueError(f"no ground-truth annotations in {where}: the class set is empty")
    pred_video, pred_class, pred_score, pred_segments = _parse_predictions(
        results, video_index, class_index, ignored, unknown_label
    )

    # Per class, the official ranking: the class's predictions in file order, then `argsort()[::-1]`.
    num_classes = len(class_index)
    by_class = np.argsort(pred_class, kind="stable")
    class_bounds = np.searchsorted(pred_class[by_class], np.arange(num_classes + 1))
    ranked = np.empty_like(by_class)
    for class_idx in range(num_classes):
        rows = by_class[class_bounds[class_idx] : class_bounds[class_idx + 1]]
        ranked[class_bounds[class_idx] : class_bounds[class_idx + 1]] = rows[np.argsort(pred_score[rows])[::-1]]

    true_positive = _match(
        pred_video[ranked],
        pred_class[ranked],
        pred_segments[ranked],
        gt_video,
        gt_class,
        gt_segments,
        len(video_index),
        thresholds,
    )

    num_positives = np.bincount(gt_class, minlength=num_classes).astype(np.float64)
    # num_thresholds, num_classes: the official layout, so that the means below sum in the same order
    average_precision = np.zeros((len(thresholds), num_classes))
    for class_idx in range(num_classes):
        # num_thresholds, num_class_predictions
        class_tp = true_positive[class_bounds[class_idx] : class_bounds[class_idx + 1]].T.astype(np.float64)
        if class_tp.shape[1] == 0:
            continue
        tp_cumsum = np.cumsum(class_tp, axis=1)
        fp_cumsum = np.cumsum(1.0 - class_tp, axis=1)
        recall = tp_cumsum / num_positives[class_idx]
        precision = tp_cumsum / (tp_cumsum + fp_cumsum)
        for threshold_idx in range(len(thresholds)):
            average_precision[threshold_idx, class_idx] = _interpolated_average_precision(
                precision[threshold_idx], recall[threshold_idx]
            )

    mean_average_precision = average_precision.mean(axis=1)
    return {
        "tiou_thresholds": thresholds.tolist(),
        "mAP": mean_average_precision.tolist(),
        "average_mAP": float(mean_average_precision.mean()),
        "per_class_ap": {label: average_precision[:, idx].tolist() for label, idx in class_index.items()},
    }


# ---------------------------------------------------------------------------------------------------------------------
# Open-vocabulary behaviour: what mAP on the unseen classes alone does not show
# ---------------------------------------------------------------------------------------------------------------------


def videos_holding_only(
    ground_truth: Mapping[str, Any] | str | os.PathLike,
    classes: Iterable[str],
    *,
    duplicate_videos: Literal["error", "keep_last"] = "error",
) -> list[str]:
    """Ids of the ground-truth videos that hold at least one annotation and only annotations of `classes`.

    With the unseen classes of a split these are the videos on which "none of the candidates" never happens: the
    unseen-class mAP restricted to them measures zero-shot recognition without the off-list actions of other videos.
    A ground-truth JSON file that gives a video id twice raises a `ValueError` unless `duplicate_videos="keep_last"`.
    """
    class_set = set(classes)
    database = _load_videos(ground_truth, "ground_truth", "database", duplicate_videos)
    return [
        video_id
        for video_id, video in database.items()
        if video["annotations"] and all(annotation["label"] in class_set for annotation in video["annotations"])
    ]


def instance_detection_rate(
    ground_truth: Mapping[str, Any] | str | os.PathLike,
    predictions: Mapping[str, Any] | str | os.PathLike,
    target_class: str,
    label: str | None = None,
    score_threshold: float = 0.5,
    tiou_threshold: float = 0.5,
    *,
    duplicate_videos: Literal["error", "keep_last"] = "error",
) -> dict[str, Any]:
    r"""
    The fraction of the ground-truth instances of `target_class` that some prediction on the same video covers with a
    score of at least `score_threshold` and a temporal IoU of at least `tiou_threshold` (both inclusive).

    Two uses: with `label=target_class`, how many instances a detector finds under their own name at that score
    (on-list recall); with `label=None` (any label) on predictions whose candidate labels left `target_class` out, how
    many instances of an action that is *not* on the list the detector still names as something (off-list detections,
    lower is better: a detector with absolute scores leaves such actions below the threshold, one whose scores are
    relative to the candidate list gives them to the nearest candidate).

    Args:
        ground_truth (`Mapping[str, Any]` or `str` or `os.PathLike`):
            ActivityNet-style ground truth (or its JSON file); only the instances of `target_class` are read.
        predictions (`Mapping[str, Any]` or `str` or `os.PathLike`):
            ActivityNet submission `{"results": {video_id: [{"label", "score", "segment": [start, end]}]}}`.
        target_class (`str`):
            The class whose instances are counted.
        label (`str`, *optional*):
            Only predictions with this label count; `None` counts every prediction.
        score_threshold (`float`, *optional*, defaults to 0.5):
            Score from which a prediction counts as a detection, in `[0, 1]`.
        tiou_threshold (`float`, *optional*, defaults to 0.5):
            Temporal IoU from which a prediction covers an instance, in `(0, 1]`.
        duplicate_videos (`str`, *optional*, defaults to `"error"`):
            For JSON file inputs: `"error"` raises on a video id given twice, `"keep_last"` keeps the last entry.

    Returns:
        `dict[str, Any]`: `{"instances": int, "detected": int, "rate": float | None}` (`rate` is
        `detected / instances`, `None` without instances).
    """
    if not 0.0 <= score_threshold <= 1.0:
        raise ValueError(f"`score_threshold` must be in [0, 1], got {score_threshold!r}.")
    if not 0.0 < tiou_threshold <= 1.0:
        raise ValueError(f"`tiou_threshold` must be in (0, 1], got {tiou_threshold!r}.")
    database = _load_videos(ground_truth, "ground_truth", "database", duplicate_videos)
    results = _load_videos(predictions, "predictions", "results", duplicate_videos)
    instances = detected = 0
    for video_id, video in database.items():
        targets = np.array(
            [annotation["segment"] for annotation in video["annotations"] if annotation["label"] == target_class],
            dtype=np.float64,
        ).reshape(-1, 2)
        if len(targets) == 0:
            continue
        instances += len(targets)
        confident = [
            prediction["segment"]
            for prediction in results.get(video_id, [])
            if prediction["score"] >= score_threshold and (label is None or prediction["label"] == label)
        ]
        if not confident:
            continue
        segments = np.asarray(confident, dtype=np.float64).reshape(-1, 2)
        # instances, predictions
        intersection = (
            np.minimum(targets[:, None, 1], segments[None, :, 1])
            - np.maximum(targets[:, None, 0], segments[None, :, 0])
        ).clip(min=0)
        union = (targets[:, 1] - targets[:, 0])[:, None] + (segments[:, 1] - segments[:, 0])[None, :] - intersection
        tiou = intersection / np.maximum(union, 1e-12)
        detected += int((tiou >= tiou_threshold).any(axis=1).sum())
    return {"instances": instances, "detected": detected, "rate": detected / instances if instances else None}


def harmonic_mean(first: float, second: float) -> float:
    """Harmonic mean of two non-negative scores (0 when either is 0), e.g. seen and unseen mAP of generalized
    zero-shot detection."""
    return 0.0 if first <= 0 or second <= 0 else 2 * first * second / (first + second)


def score_predictions(
    ground_truth: Mapping[str, Any],
    results: Mapping[str, list],
    classes: Sequence[str],
    tiou_thresholds,
    *,
    unknown_videos: Literal["error", "false_positive"] = "error",
) -> dict[str, Any]:
    r"""
    mAP of `results` against the ground truth restricted to `classes` (every video of `ground_truth` is scored).

    Classes of `classes` without any ground-truth instance in these videos are not part of the official class set;
    their predictions are ignored (the official evaluator would raise) and the classes are listed in
    `"classes_without_ground_truth"`. Predictions on videos that `ground_truth` does not hold raise a `ValueError`
    unless `unknown_videos="false_positive"` (see [`~zeetad_hf.evaluation.temporal_action_map`]).

    Returns:
        `dict`: the output of [`~zeetad_hf.evaluation.temporal_action_map`] plus `"classes_without_ground_truth"`.
    """
    restricted = restrict_ground_truth(ground_truth, classes)
    present = {item["label"] for video in restricted["database"].values() for item in video["annotations"]}
    metrics = temporal_action_map(
        restricted,
        {"results": dict(results)},
        tiou_thresholds=list(tiou_thresholds),
        unknown_label="ignore",
        unknown_videos=unknown_videos,
    )
    metrics["classes_without_ground_truth"] = [name for name in classes if name not in present]
    return metrics


def restrict_to_videos_with_ground_truth(
    ground_truth: Mapping[str, Any], results: Mapping[str, list]
) -> tuple[dict[str, Any], dict[str, list]]:
    r"""
    Keep the videos of `ground_truth` that hold at least one annotation, and the detections of `results` on them.

    Applied to ground truth already restricted to a split's unseen classes
    ([`~zeetad_hf.zero_shot_splits.restrict_ground_truth`]), this selects the "videos with unseen-class ground truth"
    that some papers score instead of every evaluation video: detections on the other videos are left out instead of
    counting as false positives. The class set, and so each class's number of ground-truth instances, is unchanged;
    only false positives are removed, so the mAP on these videos is never lower than on all of them.

    Args:
        ground_truth (`Mapping[str, Any]`):
            ActivityNet-style ground truth `{"database": {video_id: {"annotations": [...], ...}}}`. Not modified.
        results (`Mapping[str, list]`):
            Detections `{video_id: [{"label", "score", "segment"}, ...]}` (the `"results"` of a submission).

    Returns:
        `tuple[dict[str, Any], dict[str, list]]`: the ground truth with the same top-level keys and only the videos
        that hold annotations (video entries are shared, not copied), and the detections on those videos, in the order
        of `results`.
    """
    database = {video_id: video for video_id, video in ground_truth["database"].items() if video["annotations"]}
    restricted = {**ground_truth, "database": database}
    return restricted, {video_id: items for video_id, items in results.items() if video_id in database}


# Score thresholds of the on-list and off-list detection rates of `open_vocabulary_report`.
DETECTION_RATE_SCORE_THRESHOLDS = (0.1, 0.3, 0.5)


def _mean_rates(rates: Mapping[str, list[float | None]]) -> list[float | None]:
    """Per score threshold, the mean over the classes that have instances (`None` when none has)."""
    means = []
    for column in zip(*rates.values()):
        measured = [rate for rate in column if rate is not None]
        means.append(sum(measured) / len(measured) if measured else None)
    return means


def open_vocabulary_report(
    ground_truth: Mapping[str, Any],
    unseen_predictions: Mapping[str, list],
    generalized_predictions: Mapping[str, list],
    off_list_predictions: Mapping[str, Mapping[str, list]],
    seen_classes: Sequence[str],
    unseen_classes: Sequence[str],
    tiou_thresholds: Sequence[float],
    score_thresholds: Sequence[float] = DETECTION_RATE_SCORE_THRESHOLDS,
    tiou_threshold: float = 0.5,
) -> dict[str, Any]:
    r"""
    Score a detector's open-vocabulary behaviour on one set of evaluation videos.

    Args:
        ground_truth (`Mapping[str, Any]`):
            ActivityNet-style ground truth of the evaluation videos with *all* their annotations (seen and unseen).
        unseen_predictions (`Mapping[str, list]`):
            Results `{video_id: [{"label", "score", "segment"}]}` with the unseen classes as candidates.
        generalized_predictions (`Mapping[str, list]`):
            Results with the seen and the unseen classes as candidates.
        off_list_predictions (`Mapping[str, Mapping[str, list]]`):
            Per unseen class, the results with the other unseen classes as candidates (may be empty).
        seen_classes, unseen_classes (`Sequence[str]`):
            The split.
        tiou_thresholds (`Sequence[float]`):
            Thresholds of the mAPs.
        score_thresholds (`Sequence[float]`, *optional*, defaults to `(0.1, 0.3, 0.5)`):
            Scores at which the on-list and off-list detection rates are measured
            ([`instance_detection_rate`]).
        tiou_threshold (`float`, *optional*, defaults to 0.5):
            tIoU from which a prediction covers an instance in those rates.

    Returns:
        `dict[str, Any]`:
        - `unseen_only_videos`: mAP of `unseen_predictions` on the videos holding unseen classes only (`mAP`,
          `average_mAP`, `num_videos`), `None` when there is no such video;
        - `generalized`: `seen_average_mAP`, `unseen_average_mAP` and their `harmonic_mean`;
        - `on_list`: per score threshold, the fraction of unseen-class instances found under their own label in
          `unseen_predictions` (`score_thresholds`, `tiou_threshold`, `per_class`, `mean` over classes);
        - `off_list`: the same for the instances of each unseen class detected under *any* label when that class is
          left out of the candidates (lower is better); `None` without off-list predictions.
    """
    only_unseen = set(videos_holding_only(ground_truth, unseen_classes))
    if not only_unseen:
        unseen_only = None
    else:
        subset_truth = {"database": {key: ground_truth["database"][key] for key in sorted(only_unseen)}}
        # every one of these videos holds annotations: only the detections are restricted
        subset_truth, subset_predictions = restrict_to_videos_with_ground_truth(subset_truth, unseen_predictions)
        scored = score_predictions(subset_truth, subset_predictions, unseen_classes, tiou_thresholds)
        unseen_only = {"mAP": scored["mAP"], "average_mAP": scored["average_mAP"], "num_videos": len(only_unseen)}
    seen_map = score_predictions(ground_truth, generalized_predictions, seen_classes, tiou_thresholds)["average_mAP"]
    unseen_map = score_predictions(ground_truth, generalized_predictions, unseen_classes, tiou_thresholds)[
        "average_mAP"
    ]

    def rates(results_of: Mapping[str, Mapping[str, list]], own_label: bool) -> dict[str, Any]:
        per_class = {
            name: [
                instance_detection_rate(
                    ground_truth,
                    {"results": dict(results)},
                    name,
                    name if own_label else None,
                    threshold,
                    tiou_threshold,
                )["rate"]
                for threshold in score_thresholds
            ]
            for name, results in results_of.items()
        }
        return {
            "score_thresholds": list(score_thresholds),
            "tiou_threshold": tiou_threshold,
            "per_class": per_class,
            "mean": _mean_rates(per_class),
        }

    return {
        "unseen_only_videos": unseen_only,
        "generalized": {
            "seen_average_mAP": seen_map,
            "unseen_average_mAP": unseen_map,
            "harmonic_mean": harmonic_mean(seen_map, unseen_map),
        },
        "on_list": rates(dict.fromkeys(unseen_classes, unseen_predictions), own_label=True),
        "off_list": rates(off_list_predictions, own_label=False) if off_list_predictions else None,
    }
