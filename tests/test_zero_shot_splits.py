"""Shipped zero-shot split lists and the ground-truth restriction helpers."""

import copy
import csv
import json
import logging
from importlib.resources import files
from pathlib import Path

import pytest

from zeetad_hf.zero_shot_splits import load_zero_shot_split, restrict_ground_truth, restrict_to_seen


# The shared annotation files live next to the repository in the development workspace only; a clone has no copy.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
requires_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "annotations").is_dir(), reason=f"shared annotation files not found under {SHARED_DATA}"
)

SPLIT_SIZES = {
    ("thumos14", "75_25"): (15, 5),
    ("thumos14", "50_50"): (10, 10),
    ("activitynet", "75_25"): (150, 50),
    ("activitynet", "50_50"): (100, 100),
}


def _thumos_ground_truth() -> dict:
    return json.loads((SHARED_DATA / "annotations" / "thumos14.json").read_text(encoding="utf-8"))


def _activitynet_ground_truth() -> dict:
    """ActivityNet-style ground truth built as in protocol.md section 6: subset from the CSV, duration_second."""
    annotations = json.loads((SHARED_DATA / "annotations" / "anet_anno_action.json").read_text(encoding="utf-8"))
    with (SHARED_DATA / "annotations" / "anet_video_info.csv").open(encoding="utf-8", newline="") as handle:
        subsets = {row["video"]: row["subset"] for row in csv.DictReader(handle)}
    return {
        "database": {
            video_id: {
                "subset": subsets[video_id],
                "duration": video["duration_second"],
                "annotations": video["annotations"],
            }
            for video_id, video in annotations.items()
        }
    }


@pytest.mark.parametrize("split", range(10))
@pytest.mark.parametrize("dataset, setting", list(SPLIT_SIZES))
def test_split_sizes_and_disjointness(dataset, setting, split):
    seen, unseen = load_zero_shot_split(dataset, setting, split)
    assert (len(seen), len(unseen)) == SPLIT_SIZES[dataset, setting]
    assert len(set(seen)) == len(seen) and len(set(unseen)) == len(unseen)
    assert not set(seen) & set(unseen)
    assert all(name and name == name.strip() for name in seen + unseen)


def test_shipped_files_are_exactly_the_80_lists():
    root = files("zeetad_hf") / "zero_shot_splits"
    lists = sorted(
        f"{setting.name}/{dataset.name}/{part.name}/{path.name}"
        for setting in root.iterdir()
        if setting.is_dir()
        for dataset in setting.iterdir()
        for part in dataset.iterdir()
        for path in part.iterdir()
    )
    expected = sorted(
        f"train_{setting}/{dataset}/{part}/split_{split}.list"
        for setting in ("75_test_25", "50_test_50")
        for dataset in ("THUMOS14", "ActivityNet")
        for part in ("train", "test")
        for split in range(10)
    )
    assert lists == expected


def test_known_split_and_case_insensitive_dataset():
    seen, unseen = load_zero_shot_split("THUMOS14", "75_25", 0)
    assert unseen == ["BaseballPitch", "HammerThrow", "PoleVault", "SoccerPenalty", "ThrowDiscus"]
    assert (seen, unseen) == load_zero_shot_split()
    assert load_zero_shot_split("ActivityNet", "50_50", 3) == load_zero_shot_split("activitynet", "50_50", 3)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"dataset": "kinetics"}, "dataset"),
        ({"dataset": None}, "dataset"),
        ({"setting": "25_75"}, "setting"),
        ({"setting": "75/25"}, "setting"),
        ({"split": 10}, "split"),
        ({"split": -1}, "split"),
        ({"split": "0"}, "split"),
        ({"split": True}, "split"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}` must be"):
        load_zero_shot_split(**kwargs)


@requires_shared_data
@pytest.mark.parametrize("setting", ["75_25", "50_50"])
@pytest.mark.parametrize("dataset", ["thumos14", "activitynet"])
def test_splits_cover_all_annotated_classes(dataset, setting):
    if dataset == "thumos14":
        database = _thumos_ground_truth()["database"]
    else:
        database = json.loads((SHARED_DATA / "annotations" / "anet_anno_action.json").read_text(encoding="utf-8"))
    all_classes = {annotation["label"] for video in database.values() for annotation in video["annotations"]}
    for split in range(10):
        seen, unseen = load_zero_shot_split(dataset, setting, split)
        assert set(seen) | set(unseen) == all_classes


def _toy_ground_truth() -> dict:
    return {
        "version": "toy",
        "database": {
            "v1": {"subset": "Test", "duration": 30.0, "annotations": [{"label": "A", "segment": [1.0, 2.0]}]},
            "v2": {
                "subset": "Test",
                "duration": 30.0,
                "annotations": [{"label": "B", "segment": [1.0, 2.0]}, {"label": "A", "segment": [3.0, 4.0]}],
            },
            "v3": {"subset": "Validation", "duration": 30.0, "annotations": [{"label": "A", "segment": [0.0, 5.0]}]},
        },
    }


def test_restrict_ground_truth_keeps_videos_without_annotations():
    ground_truth = _toy_ground_truth()
    original = copy.deepcopy(ground_truth)
    restricted = restrict_ground_truth(ground_truth, ["B"], subset="Test")
    assert ground_truth == original
    assert restricted["version"] == "toy"
    assert {video_id: video["annotations"] for video_id, video in restricted["database"].items()} == {
        "v1": [],
        "v2": [{"label": "B", "segment": [1.0, 2.0]}],
    }
    # the result shares nothing mutable with the input
    restricted["database"]["v2"]["annotations"][0]["segment"][0] = 99.0
    assert ground_truth == original


def test_restrict_to_seen_drops_instances_and_empty_videos(caplog):
    ground_truth = _toy_ground_truth()
    original = copy.deepcopy(ground_truth)
    with caplog.at_level(logging.INFO, logger="zeetad_hf.zero_shot_splits"):
        restricted = restrict_to_seen(ground_truth, {"B"})
    assert ground_truth == original
    assert {video_id: video["annotations"] for video_id, video in restricted["database"].items()} == {
        "v2": [{"label": "B", "segment": [1.0, 2.0]}]
    }
    assert restricted["database"]["v2"]["duration"] == 30.0
    assert "dropped 3 non-seen instances and 2 videos" in caplog.text


@pytest.mark.parametrize("helper", [restrict_ground_truth, restrict_to_seen])
def test_restrict_helpers_reject_bad_arguments(helper):
    with pytest.raises(ValueError, match="`classes`"):
        helper(_toy_ground_truth(), "A")
    with pytest.raises(ValueError, match='"database"'):
        helper({"results": {}}, ["A"])


@requires_shared_data
def test_thumos_split_0_counts():
    # protocol.md section 1: THUMOS 75/25 split_0 trains on 151 videos / 2,472 instances, evaluates 818 instances on
    # 52 of the 212 Test videos
    ground_truth = _thumos_ground_truth()
    seen, unseen = load_zero_shot_split("thumos14", "75_25", 0)
    train = restrict_to_seen(ground_truth, seen, subset="Validation")
    assert len(train["database"]) == 151
    assert sum(len(video["annotations"]) for video in train["database"].values()) == 2472
    evaluation = restrict_ground_truth(ground_truth, unseen, subset="Test")
    assert len(evaluation["database"]) == 212
    assert sum(bool(video["annotations"]) for video in evaluation["database"].values()) == 52
    assert sum(len(video["annotations"]) for video in evaluation["database"].values()) == 818


@requires_shared_data
def test_activitynet_split_0_counts():
    # protocol.md section 1: ANet 75/25 split_0 trains on 7,191 videos / 11,149 instances, evaluates 1,772 instances
    # on 1,178 of the 4,728 validation videos
    ground_truth = _activitynet_ground_truth()
    seen, unseen = load_zero_shot_split("activitynet", "75_25", 0)
    train = restrict_to_seen(ground_truth, seen, subset="training")
    assert len(train["database"]) == 7191
    assert sum(len(video["annotations"]) for video in train["database"].values()) == 11149
    evaluation = restrict_ground_truth(ground_truth, unseen, subset="validation")
    assert len(evaluation["database"]) == 4728
    assert sum(bool(video["annotations"]) for video in evaluation["database"].values()) == 1178
    assert sum(len(video["annotations"]) for video in evaluation["database"].values()) == 1772
