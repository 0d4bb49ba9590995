"""Query coverage: whether a recipe's windows and queries leave room for every ground-truth action.

A ZEETAD window answers with at most `num_queries` segments. An action in a window that holds more actions than that
cannot all be found, whatever the training: [`query_coverage`] counts, on an annotation file and for a recipe (the
video length the model sees, its windows and its number of queries), the actions at such a risk. Videos come as the
rows of [`zeetad_hf.data.VIDEO_FEATURES`] (a loaded dataset), or, where no feature file is at hand, as rows whose
length is estimated from the annotations ([`videos_from_ground_truth`]).
"""

import json
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .configuration_zeetad import ZeetadConfig
from .data import ACTIVITYNET_TSP_FPS, THUMOS14_I3D_FEATURE_STRIDE, THUMOS14_I3D_WINDOW_SIZE
from .feature_extraction_zeetad import ZeetadFeatureExtractor, window_core_boundaries
from .segment_utils import seconds_to_normalized_segments


# Raw timing of each benchmark's usual features, for recipes that leave it unset: THUMOS14 ActionFormer I3D (per-video
# fps from the annotation file, 4 frames between units, 16-frame windows) and ActivityNet TSP before any resizing
# (15 fps, 16-frame snippets every 16 frames).
RECIPE_FEATURE_TIMING = {
    "thumos14": {"fps": None, "feature_stride": THUMOS14_I3D_FEATURE_STRIDE, "window_size": THUMOS14_I3D_WINDOW_SIZE},
    "activitynet": {"fps": ACTIVITYNET_TSP_FPS, "feature_stride": 16.0, "window_size": 16.0},
}
# Window overlap whose stride is one unit: every training crop position.
EVERY_CROP_POSITION = 0.9999


@dataclass(frozen=True)
class QueryCoverage:
    r"""
    What [`query_coverage`] found.

    Args:
        num_queries (`int`):
            The queries per window counted against.
        num_videos (`int`):
            Videos counted.
        num_instances (`int`):
            Ground-truth actions with a positive length inside their video.
        num_instances_at_risk (`int`):
            Actions whose window (the one whose core holds the action's centre) holds more actions than queries.
        max_instances_per_window (`int`):
            The most actions one window holds (centres inside the window, overlaps included).
        shortest_instance_units (`float`):
            The shortest action, in units of the model's input (`nan` without actions).
        median_instance_units (`float`):
            The median action length, in units (`nan` without actions).
    """

    num_queries: int
    num_videos: int
    num_instances: int
    num_instances_at_risk: int
    max_instances_per_window: int
    shortest_instance_units: float
    median_instance_units: float

    @property
    def covered_fraction(self) -> float:
        """`float`: the share of actions not at risk (1.0 without actions)."""
        return 1.0 - self.num_instances_at_risk / self.num_instances if self.num_instances else 1.0


def _instance_edges(video: Mapping[str, Any], feature_extractor: ZeetadFeatureExtractor) -> np.ndarray:
    """`(num_instances, 2)` unit-edge coordinates (unit `i` spans `[i, i + 1]`) of the video's actions, clipped to the
    units the model sees, zero-length ones dropped."""
    timing = {key: video[key] for key in ("fps", "feature_stride", "window_size")}
    timing = feature_extractor.fixed_units_timing(video["num_units"], timing)
    num_units = feature_extractor.fixed_num_units or video["num_units"]
    seconds = np.array([[item["start"], item["end"]] for item in video["annotations"]], dtype=np.float64)
    # num_instances, 2 in unit-edge coordinates, as the training collate computes its targets
    edges = np.clip(seconds_to_normalized_segments(seconds, num_units=num_units, **timing) * num_units, 0, num_units)
    return edges[edges[:, 1] > edges[:, 0]]


def query_coverage(
    videos: Iterable[Mapping[str, Any]],
    num_queries: int,
    max_units: int | None = None,
    window_overlap: float = 0.25,
    fixed_num_units: int | None = None,
) -> QueryCoverage:
    r"""
    Count the ground-truth actions that a model with `num_queries` queries could not all report because their window
    holds more actions than queries.

    Each video is sized as the model sees it: resized to `fixed_num_units` units if given, then cut into the
    overlapping windows of [`ZeetadFeatureExtractor.temporal_windows`] (`max_units`, `window_overlap`; one window
    when `max_units` is `None`). A window holds the actions whose centre lies inside it (the ones its queries are
    trained to find, overlaps included); an action is at risk when the window whose core
    ([`~zeetad_hf.feature_extraction_zeetad.window_core_boundaries`], where windowed detections are kept) holds its
    centre holds more than `num_queries` actions. Seconds become units through the package's one conversion
    ([`~zeetad_hf.segment_utils.seconds_to_normalized_segments`]).

    Args:
        videos (`Iterable[Mapping[str, Any]]`):
            Rows with `num_units`, `fps`, `feature_stride`, `window_size` and `annotations` (`[{"start", "end", ...}]`
            in seconds): a [`~datasets.Dataset`] of [`zeetad_hf.data.VIDEO_FEATURES`], or
            [`videos_from_ground_truth`].
        num_queries (`int`):
            The model's queries per window (`ZeetadConfig.num_queries`).
        max_units (`int`, *optional*):
            Window length in units (the recipe's `eval_max_units`); `None` runs whole videos.
        window_overlap (`float`, *optional*, defaults to 0.25):
            Overlap of consecutive windows (the recipe's `eval_window_overlap`).
        fixed_num_units (`int`, *optional*):
            The length every video is resized to (the recipe's `fixed_num_units`).

    Returns:
        [`QueryCoverage`].
    """
    if isinstance(num_queries, bool) or not isinstance(num_queries, int) or num_queries < 1:
        raise ValueError(f"`num_queries` must be a positive integer, got {num_queries!r}.")
    feature_extractor = ZeetadFeatureExtractor(fixed_num_units=fixed_num_units, window_overlap=window_overlap)
    num_videos = at_risk = most = 0
    lengths = []
    for video in videos:
        num_videos += 1
        if not video["annotations"]:
            continue
        edges = _instance_edges(video, feature_extractor)
        lengths += (edges[:, 1] - edges[:, 0]).tolist()
        centers = np.sort(edges.mean(axis=1))
        num_units = fixed_num_units or video["num_units"]
        windows = np.array(feature_extractor.temporal_windows(num_units, max_units or num_units))
        # actions whose centre lies in [start, end) of each window: num_windows
        counts = np.searchsorted(centers, windows[:, 1]) - np.searchsorted(centers, windows[:, 0])
        # the window whose core holds each centre: num_instances
        owner = np.searchsorted(window_core_boundaries(windows.tolist())[1:-1], centers, side="right")
        at_risk += int((counts[owner] > num_queries).sum())
        most = max(most, int(counts.max()))
    return QueryCoverage(
        num_queries=num_queries,
        num_videos=num_videos,
        num_instances=len(lengths),
        num_instances_at_risk=at_risk,
        max_instances_per_window=most,
        shortest_instance_units=min(lengths, default=math.nan),
        median_instance_units=statistics.median(lengths) if lengths else math.nan,
    )


def videos_from_ground_truth(
    ground_truth: Mapping[str, Any],
    feature_stride: float,
    window_size: float,
    fps: float | None = None,
    default_fps: float | None = None,
) -> list[dict[str, Any]]:
    r"""
    Video rows for [`query_coverage`] from annotations alone, for when the feature files are not at hand: each
    video's number of units is *estimated* as the feature extractors of sliding-window features count them,
    `floor((duration * fps - window_size) / feature_stride) + 1` (at least 1). Real feature files can differ by a
    unit or two; a loaded dataset gives the exact lengths.

    Args:
        ground_truth (`Mapping[str, Any]`):
            `{"database": {video_id: {"duration": float, "fps": float (optional), "annotations": [{"label",
            "segment": [start, end]}]}}}`, e.g. [`~zeetad_hf.data.load_benchmark_ground_truth`] restricted with
            [`~zeetad_hf.zero_shot_splits.restrict_ground_truth`].
        feature_stride (`float`):
            Frames between units (THUMOS14 I3D: 4; ActivityNet TSP: 16).
        window_size (`float`):
            Frames per unit (16 for both).
        fps (`float`, *optional*):
            The features' frame rate for every video; overrides the file's per-video `"fps"`.
        default_fps (`float`, *optional*):
            The frame rate of videos without one (ActivityNet TSP: 15).

    Returns:
        `list[dict[str, Any]]`: rows with `video_id`, `duration`, `fps`, `feature_stride`, `window_size`, `num_units`
        and `annotations` (`start`, `end`, `label`, in seconds).

    Raises:
        `ValueError`: naming a video without a frame rate.
    """
    rows = []
    for video_id, video in ground_truth["database"].items():
        video_fps = next((rate for rate in (fps, video.get("fps"), default_fps) if rate is not None), None)
        if video_fps is None:
            raise ValueError(f"Video {video_id!r} has no frame rate: pass `fps` or `default_fps`.")
        frames = video["duration"] * video_fps
        rows.append(
            {
                "video_id": video_id,
                "duration": video["duration"],
                "fps": float(video_fps),
                "feature_stride": float(feature_stride),
                "window_size": float(window_size),
                "num_units": max(1, math.floor((frames - window_size) / feature_stride) + 1),
                "annotations": [
                    {"label": item["label"], "start": item["segment"][0], "end": item["segment"][1]}
                    for item in video["annotations"]
                ],
            }
        )
    return rows


def recipe_coverage(
    recipe: Mapping[str, Any], ground_truth: Mapping[str, Any], training_crops: bool = False
) -> QueryCoverage:
    r"""
    [`query_coverage`] of a training recipe (the JSON flags of `examples/train.py`, e.g.
    `examples/configs/thumos14_i3d_clip.json`) on a ground truth: the model input the recipe sets (`fixed_num_units`,
    `num_queries` in `config_overrides`, else the `ZeetadConfig` default) and its evaluation windows (`eval_max_units`,
    `eval_window_overlap`), or with `training_crops` its training crops (`max_units`) at every position. Video lengths
    are estimated ([`videos_from_ground_truth`]) with the recipe's `feature_fps` / `feature_stride` / `window_size`,
    else its benchmark's usual features ([`RECIPE_FEATURE_TIMING`]).

    Args:
        recipe (`Mapping[str, Any]`):
            The recipe's flags; `dataset` is `"thumos14"` (default) or `"activitynet"`.
        ground_truth (`Mapping[str, Any]`):
            The videos to count, e.g. [`~zeetad_hf.data.load_benchmark_ground_truth`] restricted to a split's unseen
            classes.
        training_crops (`bool`, *optional*, defaults to `False`):
            Count the training crops instead of the evaluation windows.

    Returns:
        [`QueryCoverage`].

    Raises:
        `ValueError`: an unknown `dataset`, or `config_overrides` that is not a JSON object.
    """
    dataset = recipe.get("dataset", "thumos14")
    if dataset not in RECIPE_FEATURE_TIMING:
        raise ValueError(f"`dataset` must be one of {sorted(RECIPE_FEATURE_TIMING)}, got {dataset!r}")
    timing = dict(RECIPE_FEATURE_TIMING[dataset])
    for name, key in (("fps", "feature_fps"), ("feature_stride", "feature_stride"), ("window_size", "window_size")):
        if recipe.get(key) is not None:
            timing[name] = recipe[key]
    overrides = recipe.get("config_overrides") or "{}"
    try:
        overrides = json.loads(overrides) if isinstance(overrides, str) else overrides
    except json.JSONDecodeError as error:
        raise ValueError(f"`config_overrides` is not valid JSON ({error})") from None
    if not isinstance(overrides, Mapping):
        raise ValueError(f"`config_overrides` must be a JSON object, got {overrides!r}")
    if training_crops:
        windows = (recipe.get("max_units"), EVERY_CROP_POSITION)
    else:
        windows = (recipe.get("eval_max_units"), recipe.get("eval_window_overlap", 0.25))
    return query_coverage(
        videos_from_ground_truth(ground_truth, **timing),
        overrides.get("num_queries", ZeetadConfig().num_queries),
        *windows,
        fixed_num_units=recipe.get("fixed_num_units"),
    )


__all__ = ["RECIPE_FEATURE_TIMING", "QueryCoverage", "query_coverage", "recipe_coverage", "videos_from_ground_truth"]
