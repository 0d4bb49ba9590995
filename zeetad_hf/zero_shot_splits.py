"""Zero-shot class splits (seen / unseen) and ground-truth restriction helpers.

The split lists shipped in `zeetad_hf/zero_shot_splits/` are the 10 random class splits per setting introduced by
EffPrompt (ECCV 2022) and reused by STALE, ZEETAD and later zero-shot temporal action detection papers:
`train_{75,50}_test_{25,50}/{THUMOS14,ActivityNet}/{train,test}/split_{0..9}.list`, where `train/` holds the *seen*
classes and `test/` the *unseen* classes, one class name per line, spelled exactly as in the annotation files.

Protocol: a model is trained on the seen classes only ([`restrict_to_seen`]) and evaluated on the unseen classes only
([`restrict_ground_truth`] before the mAP evaluator), and results are reported as the mean over the 10 splits.
"""

import copy
from collections.abc import Iterable, Mapping
from importlib.resources import files
from typing import Any

from transformers.utils import logging


logger = logging.get_logger(__name__)

# Public argument value -> directory name inside `zeetad_hf/zero_shot_splits/`.
_DATASET_DIRS = {"thumos14": "THUMOS14", "activitynet": "ActivityNet"}
_SETTING_DIRS = {"75_25": "train_75_test_25", "50_50": "train_50_test_50"}
_NUM_SPLITS = 10


def _read_class_list(setting_dir: str, dataset_dir: str, part: str, split: int) -> list[str]:
    resource = files("zeetad_hf") / "zero_shot_splits" / setting_dir / dataset_dir / part / f"split_{split}.list"
    return [line.strip() for line in resource.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_zero_shot_split(
    dataset: str = "thumos14", setting: str = "75_25", split: int = 0
) -> tuple[list[str], list[str]]:
    """Load the seen and unseen class names of one zero-shot split.

    Args:
        dataset (`str`, *optional*, defaults to `"thumos14"`):
            `"thumos14"` or `"activitynet"` (case-insensitive).
        setting (`str`, *optional*, defaults to `"75_25"`):
            `"75_25"` (75% seen / 25% unseen classes) or `"50_50"`.
        split (`int`, *optional*, defaults to 0):
            Index of the random class split, in `[0, 9]`.

    Returns:
        `tuple[list[str], list[str]]`: `(seen, unseen)` class names in file order. Sizes: THUMOS14 15/5 (75_25) and 10/10
        (50_50); ActivityNet 150/50 and 100/100.

    Example:

    ```python
    >>> from zeetad_hf.zero_shot_splits import load_zero_shot_split

    >>> seen, unseen = load_zero_shot_split("thumos14", "75_25", split=0)
    >>> unseen
    ['BaseballPitch', 'HammerThrow', 'PoleVault', 'SoccerPenalty', 'ThrowDiscus']
    ```
    """
    dataset_dir = _DATASET_DIRS.get(dataset.lower()) if isinstance(dataset, str) else None
    if dataset_dir is None:
        raise ValueError(f"`dataset` must be one of {sorted(_DATASET_DIRS)} (case-insensitive), got {dataset!r}")
    setting_dir = _SETTING_DIRS.get(setting) if isinstance(setting, str) else None
    if setting_dir is None:
        raise ValueError(f"`setting` must be one of {sorted(_SETTING_DIRS)}, got {setting!r}")
    # bool is an int subclass; `split=True` is a bug, not split 1
    if isinstance(split, bool) or not isinstance(split, int) or not 0 <= split < _NUM_SPLITS:
        raise ValueError(f"`split` must be an integer in [0, {_NUM_SPLITS - 1}], got {split!r}")
    seen = _read_class_list(setting_dir, dataset_dir, "train", split)
    unseen = _read_class_list(setting_dir, dataset_dir, "test", split)
    return seen, unseen


def _check_arguments(ground_truth: Mapping[str, Any], classes: Iterable[str]) -> set[str]:
    if not isinstance(ground_truth, Mapping) or not isinstance(ground_truth.get("database"), Mapping):
        raise ValueError('`ground_truth` must be a mapping with a "database" mapping of videos')
    # a bare string would silently become a set of characters
    if isinstance(classes, str):
        raise ValueError(f"`classes` must be an iterable of class names, not the string {classes!r}")
    return set(classes)


def _filter_database(
    ground_truth: Mapping[str, Any], classes: set[str], subset: str | None, drop_empty_videos: bool
) -> tuple[dict[str, Any], int, int]:
    """Shared body of the two public helpers; returns the new ground truth and the dropped instance/video counts."""
    database = {}
    num_dropped_instances = num_dropped_videos = 0
    for video_id, video in ground_truth["database"].items():
        if not isinstance(video, Mapping) or "annotations" not in video:
            raise ValueError(f'video {video_id!r}: missing field "annotations"')
        if subset is not None and video.get("subset") != subset:
            continue
        kept = []
        for index, annotation in enumerate(video["annotations"]):
            if not isinstance(annotation, Mapping) or "label" not in annotation:
                raise ValueError(f'video {video_id!r}: annotation {index} has no field "label"')
            if annotation["label"] in classes:
                kept.append(copy.deepcopy(annotation))
        num_dropped_instances += len(video["annotations"]) - len(kept)
        if drop_empty_videos and not kept:
            num_dropped_videos += 1
            continue
        new_video = {key: copy.deepcopy(value) for key, value in video.items() if key != "annotations"}
        new_video["annotations"] = kept
        database[video_id] = new_video
    # keep "version", "taxonomy", ... so that the result is still a valid ground-truth file
    restricted = {key: copy.deepcopy(value) for key, value in ground_truth.items() if key != "database"}
    restricted["database"] = database
    return restricted, num_dropped_instances, num_dropped_videos


def restrict_ground_truth(
    ground_truth: Mapping[str, Any], classes: Iterable[str], subset: str | None = None
) -> dict[str, Any]:
    """Keep only the ground-truth instances of `classes`, e.g. the unseen classes of a split before evaluation.

    Videos left without annotations are kept: under the default protocol every video of the evaluation subset is scored
    and predictions on a video without ground truth of the predicted class count as false positives. The class set of
    the evaluator is built from the ground truth, so classes of `classes` without any instance are simply absent.

    Args:
        ground_truth (`Mapping[str, Any]`):
            ActivityNet-style ground truth `{"database": {video_id: {"subset": str, "duration": float, "annotations":
            [{"label": str, "segment": [start, end]}, ...]}}}`. Not modified.
        classes (`Iterable[str]`):
            Class names to keep, spelled exactly as the annotation labels.
        subset (`str`, *optional*):
            If given, only videos whose `"subset"` equals it (exact, case-sensitive match) are kept.

    Returns:
        `dict[str, Any]`: a new ground-truth dict (deep copy) with the same top-level keys.
    """
    class_set = _check_arguments(ground_truth, classes)
    restricted, _, _ = _filter_database(ground_truth, class_set, subset, drop_empty_videos=False)
    return restricted


def restrict_to_seen(
    ground_truth: Mapping[str, Any], classes: Iterable[str], subset: str | None = None
) -> dict[str, Any]:
    """Select the training ground truth of a split: seen-class instances only, on videos that still have one.

    Every instance whose label is not in `classes` is dropped, then every video left without annotations is dropped, so
    no unseen-class segment (nor a video containing only unseen actions) reaches training. The numbers of dropped
    instances and videos are logged at INFO level.

    Args:
        ground_truth (`Mapping[str, Any]`):
            ActivityNet-style ground truth, see [`restrict_ground_truth`]. Not modified.
        classes (`Iterable[str]`):
            The seen class names of the split.
        subset (`str`, *optional*):
            If given, only videos whose `"subset"` equals it (exact, case-sensitive match) are considered, e.g.
            `"Validation"` for THUMOS14 or `"training"` for ActivityNet.

    Returns:
        `dict[str, Any]`: a new ground-truth dict (deep copy) with the same top-level keys.
    """
    class_set = _check_arguments(ground_truth, classes)
    restricted, num_dropped_instances, num_dropped_videos = _filter_database(
        ground_truth, class_set, subset, drop_empty_videos=True
    )
    logger.info(
        f"Training ground truth restricted to {len(class_set)} seen classes: dropped {num_dropped_instances} non-seen "
        f"instances and {num_dropped_videos} videos left without seen instances; kept {len(restricted['database'])} "
        "videos."
    )
    return restricted
