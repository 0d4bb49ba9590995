"""Hand-computed cases for `zeetad_hf.evaluation.temporal_action_map` and its `evaluate` wrapper.

AP below is the all-point interpolated AP of the official ActivityNet evaluator: with `prec`/`rec` the cumulative
precision/recall in score order, AP = sum over recall steps of (recall increase) x (max precision at or after the step).
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

import zeetad_hf
from zeetad_hf.evaluation import (
    harmonic_mean,
    instance_detection_rate,
    load_predictions,
    open_vocabulary_report,
    score_predictions,
    temporal_action_map,
    validate_tiou_thresholds,
    videos_holding_only,
)


METRIC_DIR = Path(__file__).resolve().parents[1] / "zeetad_hf" / "metrics" / "temporal_action_map"


def make_ground_truth(videos: dict, subset: str = "Test") -> dict:
    """`videos` maps a video id to `[(label, start, end), ...]`."""
    return {
        "database": {
            video_id: {
                "subset": subset,
                "duration": 100.0,
                "annotations": [{"label": label, "segment": [start, end]} for label, start, end in annotations],
            }
            for video_id, annotations in videos.items()
        }
    }


def make_predictions(videos: dict) -> dict:
    """`videos` maps a video id to `[(label, score, start, end), ...]`."""
    return {
        "results": {
            video_id: [
                {"label": label, "score": score, "segment": [start, end]} for label, score, start, end in detections
            ]
            for video_id, detections in videos.items()
        }
    }


def test_perfect_predictions_give_ap_one():
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0), ("B", 20.0, 30.0)], "v2": [("A", 5.0, 15.0)]})
    predictions = make_predictions(
        {"v1": [("A", 0.9, 0.0, 10.0), ("B", 0.3, 20.0, 30.0)], "v2": [("A", 0.2, 5.0, 15.0)]}
    )
    # tIoU is exactly 1, which still matches at threshold 1.0 (inclusive comparison)
    result = temporal_action_map(ground_truth, predictions, [0.5, 0.95, 1.0], subset="Test")
    assert result == {
        "tiou_thresholds": [0.5, 0.95, 1.0],
        "mAP": [1.0, 1.0, 1.0],
        "average_mAP": 1.0,
        "per_class_ap": {"A": [1.0, 1.0, 1.0], "B": [1.0, 1.0, 1.0]},
    }


@pytest.mark.parametrize(
    "listed_first, expected_ap",
    [
        # input order [TP, FP]: argsort([s, s]) = [0, 1], reversed -> the FP (listed second) is ranked first:
        # prec = [0, 1/2], rec = [0, 1] -> AP = 1 x 1/2. A stable descending sort would rank the TP first (AP 1).
        ("true_positive", 0.5),
        # input order [FP, TP]: the TP is ranked first: prec = [1, 1/2], rec = [1, 1] -> AP = 1
        ("false_positive", 1.0),
    ],
)
def test_tied_scores_follow_official_argsort_order(listed_first, expected_ap):
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0)], "v2": []})
    true_positive = ("v1", [("A", 0.5, 0.0, 10.0)])
    false_positive = ("v2", [("A", 0.5, 0.0, 10.0)])  # v2 has no ground truth
    ordered = [true_positive, false_positive] if listed_first == "true_positive" else [false_positive, true_positive]
    result = temporal_action_map(ground_truth, make_predictions(dict(ordered)), [0.5])
    assert result["per_class_ap"]["A"] == [expected_ap]


def test_duplicate_predictions_of_one_ground_truth_are_false_positives():
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0), ("A", 20.0, 30.0)]})
    predictions = make_predictions({"v1": [("A", 0.9, 0.0, 10.0), ("A", 0.8, 0.0, 10.0), ("A", 0.7, 20.0, 30.0)]})
    # TP, FP (duplicate), TP: prec = [1, 1/2, 2/3], rec = [1/2, 1/2, 1] -> AP = 1/2 x 1 + 1/2 x 2/3 = 5/6
    result = temporal_action_map(ground_truth, predictions, [0.5])
    assert math.isclose(result["per_class_ap"]["A"][0], 5 / 6)


@pytest.mark.parametrize(
    "num_predictions, dedup_ground_truth, expected_ap",
    [
        # the duplicated ground truth counts twice in npos: one TP -> rec = 1/2 -> AP = 1/2
        (1, False, 0.5),
        # the second identical prediction falls back to the duplicate ground truth: 2 TPs -> AP = 1
        (2, False, 1.0),
        # ActionFormer rule: npos = 1 -> AP = 1
        (1, True, 1.0),
        # npos = 1: TP then FP -> prec = [1, 1/2], rec = [1, 1] -> AP = 1
        (2, True, 1.0),
    ],
)
def test_duplicate_ground_truth(num_predictions, dedup_ground_truth, expected_ap):
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0), ("A", 0.0, 10.0)]})
    predictions = make_predictions({"v1": [("A", 0.9, 0.0, 10.0)] * num_predictions})
    result = temporal_action_map(ground_truth, predictions, [0.5], dedup_ground_truth=dedup_ground_truth)
    assert result["per_class_ap"]["A"] == [expected_ap]


def test_fallback_to_second_best_ground_truth():
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0), ("A", 4.0, 14.0)]})
    # p1 = [0, 10]: tIoU 1 with g0, 6/14 with g1 -> TP on g0.
    # p2 = [1, 11]: tIoU 9/11 = 0.82 with g0 (locked), 7/13 = 0.54 with g1.
    predictions = make_predictions({"v1": [("A", 0.9, 0.0, 10.0), ("A", 0.8, 1.0, 11.0)]})
    result = temporal_action_map(ground_truth, predictions, [0.5, 0.6])
    # at 0.5, p2 falls back to g1 -> 2 TPs -> AP 1 (VOC-style matching would give 1/2);
    # at 0.6, 0.54 < 0.6 stops the walk -> TP, FP: prec = [1, 1/2], rec = [1/2, 1/2] -> AP = 1/2
    assert result["per_class_ap"]["A"] == [1.0, 0.5]


def test_classes_without_predictions_count_as_zero():
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0), ("B", 20.0, 30.0)], "v2": [("C", 0.0, 5.0)]})
    predictions = make_predictions({"v1": [("A", 0.9, 0.0, 10.0)]})
    result = temporal_action_map(ground_truth, predictions, [0.5, 0.7])
    assert result["per_class_ap"] == {"A": [1.0, 1.0], "B": [0.0, 0.0], "C": [0.0, 0.0]}
    # (1 + 0 + 0) / 3 at every threshold
    assert result["mAP"] == pytest.approx([1 / 3, 1 / 3])
    assert result["average_mAP"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "subset, expected_ap",
    [
        # ranked: v3 (not in GT, FP), v2 (outside "Test", FP), v1 (TP):
        # prec = [0, 0, 1/3], rec = [0, 0, 1] -> AP = 1/3
        ("Test", 1 / 3),
        # all videos evaluated, npos = 2: FP, TP, TP: prec = [0, 1/2, 2/3], rec = [0, 1/2, 1]
        # -> AP = 1/2 x 2/3 + 1/2 x 2/3 = 2/3
        (None, 2 / 3),
    ],
)
def test_predictions_on_videos_without_ground_truth_are_false_positives(subset, expected_ap):
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0)]})
    ground_truth["database"]["v2"] = {"subset": "Validation", "annotations": [{"label": "A", "segment": [0.0, 10.0]}]}
    predictions = make_predictions(
        {"v1": [("A", 0.8, 0.0, 10.0)], "v2": [("A", 0.9, 0.0, 10.0)], "v3": [("A", 0.95, 0.0, 10.0)]}
    )
    # v3 is in no subset of the ground truth: scored as officially only when asked for
    result = temporal_action_map(ground_truth, predictions, [0.5], subset=subset, unknown_videos="false_positive")
    assert result["per_class_ap"]["A"] == pytest.approx([expected_ap])


def test_video_without_ground_truth_in_subset_gives_false_positives():
    # restrict_ground_truth keeps such videos: a prediction there is a FP ranked first -> prec = [0, 1/2] -> AP 1/2
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0)], "v2": []})
    predictions = make_predictions({"v1": [("A", 0.5, 0.0, 10.0)], "v2": [("A", 0.9, 0.0, 10.0)]})
    assert temporal_action_map(ground_truth, predictions, [0.5])["per_class_ap"]["A"] == [0.5]


@pytest.mark.parametrize("threshold, expected_ap", [(0.5, 1.0), (np.nextafter(0.5, 1.0), 0.0)])
def test_threshold_is_inclusive(threshold, expected_ap):
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0)]})
    # tIoU = 5 / 10 = 0.5 exactly
    predictions = make_predictions({"v1": [("A", 0.9, 0.0, 5.0)]})
    assert temporal_action_map(ground_truth, predictions, [threshold])["mAP"] == [expected_ap]


@pytest.mark.parametrize(
    "dedup_ground_truth, expected_ap_a, expected_classes",
    [
        # npos(A) = 3 (the near-duplicate and the 0.5 ms instance count): one TP -> AP = 1/3
        (False, 1 / 3, ["A", "B"]),
        # near-duplicate (both ends within 1e-3) and < 1e-3 s instance dropped: npos(A) = 1 -> AP = 1;
        # B has the same segment as A but another label, so it is kept
        (True, 1.0, ["A", "B"]),
    ],
)
def test_dedup_ground_truth(dedup_ground_truth, expected_ap_a, expected_classes):
    ground_truth = make_ground_truth(
        {"v1": [("A", 0.0, 10.0), ("A", 0.0005, 10.0005), ("A", 20.0, 20.0005), ("B", 0.0, 10.0)]}
    )
    predictions = make_predictions({"v1": [("A", 0.9, 0.0, 10.0)]})
    result = temporal_action_map(ground_truth, predictions, [0.5], dedup_ground_truth=dedup_ground_truth)
    assert list(result["per_class_ap"]) == expected_classes
    assert result["per_class_ap"]["A"] == pytest.approx([expected_ap_a])
    assert result["per_class_ap"]["B"] == [0.0]


def test_unknown_label_raises_by_default():
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0)]})
    predictions = make_predictions({"v1": [("A", 0.9, 0.0, 10.0), ("HighJump", 0.8, 0.0, 10.0)]})
    with pytest.raises(ValueError, match=r"'v1'.*'HighJump'"):
        temporal_action_map(ground_truth, predictions, [0.5])


def test_unknown_label_ignore_drops_the_prediction():
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0)]})
    # without the drop the unknown-label prediction would be ranked first
    predictions = make_predictions({"v1": [("HighJump", 0.99, 0.0, 10.0), ("A", 0.9, 0.0, 10.0)]})
    result = temporal_action_map(ground_truth, predictions, [0.5], unknown_label="ignore")
    assert result["per_class_ap"] == {"A": [1.0]}


def test_ignore_labels_drop_ambiguous_ground_truth_and_predictions():
    ground_truth = make_ground_truth({"v1": [("Ambiguous", 0.0, 3.0), ("A", 0.0, 10.0)]})
    predictions = make_predictions({"v1": [("A", 0.9, 0.0, 10.0), ("Ambiguous", 0.8, 0.0, 3.0)]})
    assert temporal_action_map(ground_truth, predictions, [0.5])["per_class_ap"] == {"A": [1.0]}
    # without ignored labels Ambiguous is one more class, first in appearance order, matched here too
    result = temporal_action_map(ground_truth, predictions, [0.5], ignore_labels=None)
    assert result["per_class_ap"] == {"Ambiguous": [1.0], "A": [1.0]}


def test_path_inputs_match_dict_inputs(tmp_path):
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0), ("A", 4.0, 14.0)], "v2": [("B", 1.0, 2.0)]})
    predictions = make_predictions(
        {"v1": [("A", 0.9, 0.0, 10.0), ("A", 0.8, 1.0, 11.0)], "v2": [("B", 0.1, 1.0, 3.0)]}
    )
    ground_truth_path, predictions_path = tmp_path / "gt.json", tmp_path / "pred.json"
    ground_truth_path.write_text(json.dumps(ground_truth))
    predictions_path.write_text(json.dumps(predictions))
    expected = temporal_action_map(ground_truth, predictions, [0.3, 0.5, 0.7])
    assert temporal_action_map(ground_truth_path, predictions_path, [0.3, 0.5, 0.7]) == expected
    assert temporal_action_map(str(ground_truth_path), str(predictions_path), [0.3, 0.5, 0.7]) == expected


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        temporal_action_map(tmp_path / "missing.json", {"results": {}}, [0.5])


def test_inputs_are_not_modified():
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0), ("A", 0.0, 10.0)]})
    predictions = make_predictions({"v1": [("A", 0.9, 0.0, 10.0)], "v2": [("A", 0.8, 3.0, 4.0)]})
    ground_truth_copy, predictions_copy = json.loads(json.dumps(ground_truth)), json.loads(json.dumps(predictions))
    temporal_action_map(ground_truth, predictions, [0.5], dedup_ground_truth=True, unknown_videos="false_positive")
    assert ground_truth == ground_truth_copy and predictions == predictions_copy


def _set_prediction_field(field, value):
    def edit(ground_truth, predictions):
        predictions["results"]["v1"][0][field] = value

    return edit


def _delete(container_getter, key):
    def edit(ground_truth, predictions):
        del container_getter(ground_truth, predictions)[key]

    return edit


@pytest.mark.parametrize(
    "edit, message",
    [
        (_delete(lambda gt, pred: gt, "database"), '"database"'),
        (_delete(lambda gt, pred: pred, "results"), '"results"'),
        (_delete(lambda gt, pred: gt["database"]["v1"]["annotations"][0], "segment"), r"'v1'.*\"segment\""),
        (_delete(lambda gt, pred: gt["database"]["v1"]["annotations"][0], "label"), r"'v1'.*\"label\""),
        (_delete(lambda gt, pred: gt["database"]["v1"], "subset"), r"'v1'.*\"subset\""),
        (_delete(lambda gt, pred: pred["results"]["v1"][0], "score"), r"'v1'.*\"score\""),
        (_delete(lambda gt, pred: pred["results"]["v1"][0], "segment"), r"'v1'.*\"segment\""),
        (
            lambda gt, pred: gt["database"]["v1"]["annotations"][0].update(segment=[5.0, 2.0]),
            r"'v1'.*\"segment\".*end >= start",
        ),
        (_set_prediction_field("segment", [5.0, 2.0]), r"'v1', entry 0.*\"segment\".*end >= start"),
        (_set_prediction_field("segment", [1.0]), r"'v1', entry 0.*\"segment\""),
        (_set_prediction_field("segment", [1.0, float("nan")]), r"'v1', entry 0.*\"segment\".*finite"),
        (_set_prediction_field("segment", ["1.0", "2.0"]), r"'v1', entry 0.*\"segment\""),
        (_set_prediction_field("score", "high"), r"'v1', entry 0.*\"score\""),
        (_set_prediction_field("score", None), r"'v1', entry 0.*\"score\""),
        (_set_prediction_field("score", float("nan")), r"'v1', entry 0.*\"score\""),
        (lambda gt, pred: pred["results"].update(v1="A"), r"'v1'.*list"),
    ],
)
def test_bad_inputs_raise_value_error_naming_video_and_field(edit, message):
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0)]})
    predictions = make_predictions({"v1": [("A", 0.9, 0.0, 10.0)]})
    edit(ground_truth, predictions)
    with pytest.raises(ValueError, match=message):
        temporal_action_map(ground_truth, predictions, [0.5], subset="Test")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tiou_thresholds": []}, "tiou_thresholds"),
        ({"tiou_thresholds": 0.5}, "tiou_thresholds"),
        ({"unknown_label": "skip"}, "unknown_label"),
        ({"unknown_videos": "ignore"}, r"`unknown_videos` must be one of \('error', 'false_positive'\)"),
        ({"duplicate_videos": "first"}, r"`duplicate_videos` must be one of \('error', 'keep_last'\)"),
        ({"ignore_labels": "Ambiguous"}, "ignore_labels"),
        ({"subset": "Validation"}, "no ground-truth annotations"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    arguments = {"tiou_thresholds": [0.5], "subset": "Test", **kwargs}
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0)]})
    with pytest.raises(ValueError, match=message):
        temporal_action_map(ground_truth, make_predictions({}), **arguments)


@pytest.mark.parametrize(
    "tiou_thresholds, shown",
    [
        ([1.5, -1], r"got \[1\.5, -1\.0\] among \[1\.5, -1\.0\]"),
        ([30, 50, 70], r"0\.5 rather than 50\), got \[30\.0, 50\.0, 70\.0\]"),
        ([0.5, 0.0], r"got \[0\.0\] among \[0\.5, 0\.0\]"),
        (np.array([0.3, 1.0000001]), r"got \[1\.0000001\]"),
    ],
)
def test_tiou_thresholds_outside_zero_one_are_refused(tiou_thresholds, shown):
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0)]})
    predictions = make_predictions({"v1": [("A", 0.9, 0.0, 10.0)]})
    message = r"`tiou_thresholds` must lie in \(0, 1\] .*" + shown
    with pytest.raises(ValueError, match=message):
        temporal_action_map(ground_truth, predictions, tiou_thresholds)
    with pytest.raises(ValueError, match=message):
        score_predictions(ground_truth, predictions["results"], ["A"], tiou_thresholds)
    # the edges: 1.0 is a legal (exact-match) threshold, the smallest positive number too
    assert validate_tiou_thresholds([1.0, 1e-9]).tolist() == [1.0, 1e-9]


def test_prediction_videos_missing_from_the_ground_truth_are_named_with_a_hint():
    ground_truth = make_ground_truth({"video_1": [("A", 0.0, 10.0)], "v_abc": [("A", 0.0, 10.0)]})
    predictions = make_predictions(
        {
            "videos/video_1.mp4": [("A", 0.9, 0.0, 10.0)],
            "abc": [("A", 0.8, 0.0, 10.0)],
            "video_9": [("A", 0.7, 0.0, 10.0)],
        }
    )
    with pytest.raises(ValueError) as raised:
        temporal_action_map(ground_truth, predictions, [0.5])
    message = str(raised.value)
    assert "3 of 3 prediction videos are not in the ground truth (e.g. ['videos/video_1.mp4', 'abc', 'video_9'])" in (
        message
    )
    assert "2 of them match a ground-truth video once spelled differently" in message
    assert "'videos/video_1.mp4' is 'video_1' without its folder and file extension" in message
    assert "'abc' is 'v_abc' with the `v_` prefix" in message
    assert 'unknown_videos="false_positive"' in message
    with pytest.raises(ValueError, match=r"1 of 1 prediction videos .*\['video_9'\]"):
        score_predictions(ground_truth, {"video_9": []}, ["A"], [0.5])

    # the official scoring, on request: every prediction is a false positive
    result = temporal_action_map(ground_truth, predictions, [0.5], unknown_videos="false_positive")
    assert result["mAP"] == [0.0]


def test_a_video_id_given_twice_in_a_json_file_is_refused_unless_the_last_is_kept(tmp_path):
    ground_truth = make_ground_truth({"v1": [("A", 0.0, 10.0)], "v2": [("A", 20.0, 30.0)]})
    # json.load keeps the second v1 entry (a false positive) and silently drops the first one (a true positive)
    first, last = (
        [{"label": "A", "score": 0.9, "segment": [0.0, 10.0]}],
        [{"label": "A", "score": 0.9, "segment": [50, 60]}],
    )
    predictions_path = tmp_path / "predictions.json"
    predictions_path.write_text(
        '{"version": "x", "results": {"v1": ' + json.dumps(first) + ', "v2": [], "v1": ' + json.dumps(last) + "}}"
    )
    with pytest.raises(
        ValueError, match=r"predictions\.json: 1 video ids occur more than once in \"results\" .*\['v1'\]"
    ):
        temporal_action_map(ground_truth, predictions_path, [0.5])
    with pytest.raises(ValueError, match=r"predictions\.json.*\['v1'\].*duplicate_videos=\"keep_last\""):
        load_predictions(predictions_path)
    kept = temporal_action_map(ground_truth, predictions_path, [0.5], duplicate_videos="keep_last")
    assert kept == temporal_action_map(ground_truth, make_predictions({"v1": [("A", 0.9, 50, 60)], "v2": []}), [0.5])
    assert load_predictions(predictions_path, duplicate_videos="keep_last") == {"v1": last, "v2": []}

    ground_truth_path = tmp_path / "ground_truth.json"
    video = json.dumps(ground_truth["database"]["v1"])
    ground_truth_path.write_text('{"database": {"v1": ' + video + ', "v1": ' + video + "}}")
    with pytest.raises(ValueError, match=r"`ground_truth` file .*ground_truth\.json: 1 video ids .*\"database\""):
        temporal_action_map(ground_truth_path, make_predictions({}), [0.5])
    with pytest.raises(ValueError, match=r"ground_truth\.json: 1 video ids"):
        videos_holding_only(ground_truth_path, ["A"])


@pytest.mark.parametrize(
    "content, found",
    [
        ([{"video": "v1", "label": "A", "score": 0.9, "segment": [0, 10]}], "got a list"),
        ({"v1": [{"label": "A", "score": 0.9, "segment": [0, 10]}]}, r"got a mapping with the keys \['v1'\]"),
    ],
)
def test_a_predictions_file_in_another_format_names_the_file_and_the_format(tmp_path, content, found):
    path = tmp_path / "detections.json"
    path.write_text(json.dumps(content))
    message = (
        r"`predictions` file .*detections\.json must be .* in the ActivityNet format "
        r'\{"results": \{video_id: \[\{"label": str, "score": float, "segment": \[start, end\]\}\]\}\}, ' + found
    )
    with pytest.raises(ValueError, match=message):
        load_predictions(path)
    with pytest.raises(ValueError, match=message):
        temporal_action_map(make_ground_truth({"v1": [("A", 0.0, 10.0)]}), path, [0.5])


def test_evaluate_metric_matches_function(tmp_path, monkeypatch):
    evaluate = pytest.importorskip("evaluate")
    # the installed path works from any working directory
    assert Path(zeetad_hf.TEMPORAL_ACTION_MAP_METRIC) == METRIC_DIR
    monkeypatch.chdir(tmp_path)
    metric = evaluate.load(zeetad_hf.TEMPORAL_ACTION_MAP_METRIC, keep_in_memory=True)
    references = [
        {"video_id": "v1", "segments": [[0.0, 10.0], [4.0, 14.0]], "labels": ["A", "A"]},
        {"video_id": "v2", "segments": [[20.0, 30.0]], "labels": ["B"]},
        {"video_id": "v3", "segments": [], "labels": []},
    ]
    predictions = [
        {"segments": [[0.0, 10.0], [1.0, 11.0]], "scores": [0.9, 0.8], "labels": ["A", "A"]},
        {"segments": [[21.2, 30.0]], "scores": [0.7], "labels": ["B"]},
        {"segments": [[0.0, 1.0]], "scores": [0.95], "labels": ["B"]},
    ]
    ground_truth = {
        "database": {
            reference["video_id"]: {
                "annotations": [
                    {"label": label, "segment": segment}
                    for label, segment in zip(reference["labels"], reference["segments"])
                ]
            }
            for reference in references
        }
    }
    results = {
        reference["video_id"]: [
            {"label": label, "score": score, "segment": segment}
            for label, score, segment in zip(prediction["labels"], prediction["scores"], prediction["segments"])
        ]
        for reference, prediction in zip(references, predictions)
    }
    expected = temporal_action_map(ground_truth, {"results": results}, np.linspace(0.5, 0.95, 10))
    assert metric.compute(predictions=predictions, references=references) == expected
    # B: FP on v3 ranked first, then tIoU 8.8 / 10 = 0.88: prec = [0, 1/2], rec = [0, 1] -> AP 1/2 at the 8
    # thresholds 0.5 ... 0.85, and 0 at 0.9 and 0.95; A: AP 1 at 0.5 (fallback to the second ground truth)
    assert expected["per_class_ap"]["B"] == [0.5] * 8 + [0.0, 0.0]
    assert expected["per_class_ap"]["A"][0] == 1.0


# ---------------------------------------------------------------------------------------------------------------------
# Open-vocabulary measures


def test_videos_holding_only_the_given_classes():
    ground_truth = make_ground_truth(
        {
            "only_unseen": [("U1", 0, 5), ("U2", 10, 20)],
            "mixed": [("U1", 0, 5), ("S1", 10, 20)],
            "only_seen": [("S1", 0, 5)],
            "empty": [],
        }
    )
    assert videos_holding_only(ground_truth, ["U1", "U2"]) == ["only_unseen"]
    assert videos_holding_only(ground_truth, ["U1", "U2", "S1"]) == ["only_unseen", "mixed", "only_seen"]


def test_instance_detection_rate_hand_computed():
    # Three instances of the left-out class X; the candidates were A and B.
    ground_truth = make_ground_truth({"v1": [("X", 0, 10), ("X", 20, 30), ("A", 40, 50)], "v2": [("X", 0, 10)]})
    predictions = make_predictions(
        {
            # v1, first X: covered by a confident A (tIoU 8/10 = 0.8) -> detected
            # v1, second X: a confident B with tIoU 5/15 (below 0.5) and a close B with score 0.4 -> not detected
            "v1": [("A", 0.9, 2, 10), ("B", 0.8, 25, 35), ("B", 0.4, 20, 30), ("A", 0.95, 40, 50)],
            # v2: exactly at both thresholds (score 0.5, tIoU 5/10) -> detected (inclusive)
            "v2": [("B", 0.5, 0, 5)],
            # predictions on a video without X do not count
            "v3": [("A", 0.99, 0, 10)],
        }
    )
    result = instance_detection_rate(ground_truth, predictions, "X")
    assert result == {"instances": 3, "detected": 2, "rate": 2 / 3}
    strict = instance_detection_rate(ground_truth, predictions, "X", score_threshold=0.6, tiou_threshold=0.5)
    assert strict["detected"] == 1
    # only predictions labelled B: the v2 one
    assert instance_detection_rate(ground_truth, predictions, "X", label="B")["detected"] == 1
    # on-list use: A's own instance is found under its own label
    assert instance_detection_rate(ground_truth, predictions, "A", label="A")["rate"] == 1.0
    assert instance_detection_rate(ground_truth, predictions, "Y")["rate"] is None
    with pytest.raises(ValueError, match=r"`tiou_threshold` must be in \(0, 1\]"):
        instance_detection_rate(ground_truth, predictions, "X", tiou_threshold=0.0)


def test_harmonic_mean():
    assert harmonic_mean(0.5, 0.25) == pytest.approx(1 / 3)
    assert harmonic_mean(0.0, 0.9) == 0.0


def test_open_vocabulary_report_uses_the_right_videos_and_classes():
    ground_truth = make_ground_truth(
        {"only_unseen": [("U1", 0, 10)], "mixed": [("U2", 0, 10), ("S1", 20, 30)], "only_seen": [("S1", 0, 10)]}
    )
    unseen_predictions = {
        "only_unseen": [{"label": "U1", "score": 0.9, "segment": [0, 10]}],
        # a confident false U1 on the seen-only video: it hurts the all-videos mAP, not the unseen-only one
        "only_seen": [{"label": "U1", "score": 0.95, "segment": [0, 10]}],
    }
    generalized = {
        "only_unseen": [{"label": "U1", "score": 0.9, "segment": [0, 10]}],
        "mixed": [
            {"label": "S1", "score": 0.8, "segment": [20, 30]},
            {"label": "U2", "score": 0.3, "segment": [40, 50]},
        ],
        "only_seen": [{"label": "S1", "score": 0.7, "segment": [0, 10]}],
    }
    off_list = {
        "U1": {"only_unseen": [{"label": "U2", "score": 0.9, "segment": [0, 10]}]},
        "U2": {"mixed": [{"label": "U1", "score": 0.2, "segment": [0, 10]}]},
    }
    report = open_vocabulary_report(
        ground_truth,
        unseen_predictions,
        generalized,
        off_list,
        ["S1"],
        ["U1", "U2"],
        [0.5],
        score_thresholds=[0.1, 0.5],
    )
    # unseen-only videos: the single U1 instance found, the false U1 on "only_seen" is outside -> AP 1 (U2 absent)
    assert report["unseen_only_videos"] == {"mAP": [1.0], "average_mAP": 1.0, "num_videos": 1}
    # generalized: S1 found twice (AP 1); U1 found (AP 1), U2 missed (AP 0) -> unseen 0.5; harmonic mean 2/3
    assert report["generalized"]["seen_average_mAP"] == 1.0
    assert report["generalized"]["unseen_average_mAP"] == 0.5
    assert report["generalized"]["harmonic_mean"] == pytest.approx(2 / 3)
    # off-list: U1's instance named U2 at 0.9 (counted at both thresholds); U2's instance named U1 at 0.2 (at 0.1 only)
    assert report["off_list"]["per_class"] == {"U1": [1.0, 1.0], "U2": [1.0, 0.0]}
    assert report["off_list"]["mean"] == [1.0, 0.5]
    # on-list: U1 found under its own label at 0.9; U2's instance has no U2 prediction
    assert report["on_list"]["per_class"] == {"U1": [1.0, 1.0], "U2": [0.0, 0.0]}
    assert report["on_list"]["mean"] == [0.5, 0.5]
