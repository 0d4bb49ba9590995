"""`evaluate` metric: temporal action detection mAP at temporal IoU thresholds (official ActivityNet semantics).

Load it from its installed folder, offline, from any directory: `evaluate.load(zeetad_hf.TEMPORAL_ACTION_MAP_METRIC)`. The computation is
[`zeetad_hf.evaluation.temporal_action_map`]; this script only converts the per-video rows to the ActivityNet JSON
structures it takes.
"""

from collections.abc import Sequence

import datasets
import evaluate
import numpy as np

from zeetad_hf.evaluation import temporal_action_map


_DESCRIPTION = """\
Detection mean average precision (mAP) at temporal IoU (tIoU) thresholds for temporal action detection, bit-identical
to the official ActivityNet evaluator (activitynet/ActivityNet, Evaluation/eval_detection.py): the class set is the set
of reference labels, classes without predictions count with AP 0, per-class ranking by `np.argsort(scores)[::-1]`,
greedy matching per threshold with `tIoU >= threshold`, all-point interpolated AP. For zero-shot evaluation pass the
references restricted to the unseen classes of the split (`zeetad_hf.zero_shot_splits.restrict_ground_truth`).
"""

_KWARGS_DESCRIPTION = """\
One row per evaluated video; the i-th prediction row holds the detections on the video of the i-th reference row. A
video without reference segments is still evaluated: its predictions are false positives.

Args:
    predictions (`list[dict]`): one dict per video with
        - `"segments"` (`list[list[float]]`): detected `[start, end]` segments in seconds, `end >= start`;
        - `"scores"` (`list[float]`): one confidence per segment;
        - `"labels"` (`list[str]`): one class name per segment.
    references (`list[dict]`): one dict per video with
        - `"video_id"` (`str`): unique video identifier;
        - `"segments"` (`list[list[float]]`): ground-truth `[start, end]` segments in seconds;
        - `"labels"` (`list[str]`): one class name per ground-truth segment.
    tiou_thresholds (`list[float]`, *optional*, defaults to `np.linspace(0.5, 0.95, 10)`):
        tIoU thresholds; use `[0.3, 0.4, 0.5, 0.6, 0.7]` for THUMOS14.
    dedup_ground_truth (`bool`, *optional*, defaults to `False`):
        drop duplicate (within 1e-3 s) and shorter than 1e-3 s reference segments, as ActionFormer does.
    unknown_label (`str`, *optional*, defaults to `"error"`):
        `"error"` raises on a predicted label that is not a reference label; `"ignore"` drops such predictions.
    ignore_labels (`list[str]`, *optional*, defaults to `["Ambiguous"]`):
        reference labels removed before evaluation (THUMOS14 `Ambiguous`).

Returns:
    `tiou_thresholds` (`list[float]`), `mAP` (`list[float]`, one per threshold, in [0, 1]), `average_mAP` (`float`,
    mean over thresholds), `per_class_ap` (`dict[str, list[float]]`).

Examples:
    >>> import evaluate
    >>> import zeetad_hf
    >>> metric = evaluate.load(zeetad_hf.TEMPORAL_ACTION_MAP_METRIC)
    >>> references = [{"video_id": "video_1", "segments": [[2.0, 6.0]], "labels": ["HighJump"]}]
    >>> predictions = [{"segments": [[2.5, 6.0]], "scores": [0.9], "labels": ["HighJump"]}]
    >>> result = metric.compute(predictions=predictions, references=references, tiou_thresholds=[0.5, 0.9])
    >>> result["mAP"], result["average_mAP"]
    ([1.0, 0.0], 0.5)
"""

_CITATION = """\
@inproceedings{caba2015activitynet,
  title={ActivityNet: A Large-Scale Video Benchmark for Human Activity Understanding},
  author={Caba Heilbron, Fabian and Escorcia, Victor and Ghanem, Bernard and Niebles, Juan Carlos},
  booktitle={Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages={961--970},
  year={2015}
}
"""

_SEGMENTS = datasets.List(datasets.List(datasets.Value("float64"), length=2))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TemporalActionMap(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": {
                        "segments": _SEGMENTS,
                        "scores": datasets.List(datasets.Value("float64")),
                        "labels": datasets.List(datasets.Value("string")),
                    },
                    "references": {
                        "video_id": datasets.Value("string"),
                        "segments": _SEGMENTS,
                        "labels": datasets.List(datasets.Value("string")),
                    },
                }
            ),
            reference_urls=["https://github.com/activitynet/ActivityNet/tree/master/Evaluation"],
        )

    def _compute(
        self,
        predictions: list[dict],
        references: list[dict],
        tiou_thresholds: Sequence[float] | None = None,
        dedup_ground_truth: bool = False,
        unknown_label: str = "error",
        ignore_labels: Sequence[str] | None = ("Ambiguous",),
    ) -> dict:
        database = {}
        results = {}
        for prediction, reference in zip(predictions, references):
            video_id = reference["video_id"]
            if video_id in database:
                raise ValueError(f"`references`: video_id {video_id!r} appears in more than one row")
            if len(reference["segments"]) != len(reference["labels"]):
                raise ValueError(
                    f"`references` row of video {video_id!r}: {len(reference['segments'])} segments but "
                    f"{len(reference['labels'])} labels"
                )
            if not len(prediction["segments"]) == len(prediction["scores"]) == len(prediction["labels"]):
                raise ValueError(
                    f"`predictions` row of video {video_id!r}: {len(prediction['segments'])} segments, "
                    f"{len(prediction['scores'])} scores and {len(prediction['labels'])} labels"
                )
            database[video_id] = {
                "annotations": [
                    {"label": label, "segment": segment}
                    for label, segment in zip(reference["labels"], reference["segments"])
                ]
            }
            results[video_id] = [
                {"label": label, "score": score, "segment": segment}
                for label, score, segment in zip(prediction["labels"], prediction["scores"], prediction["segments"])
            ]
        return temporal_action_map(
            {"database": database},
            {"results": results},
            np.linspace(0.5, 0.95, 10) if tiou_thresholds is None else tiou_thresholds,
            dedup_ground_truth=dedup_ground_truth,
            unknown_label=unknown_label,
            ignore_labels=ignore_labels,
        )
