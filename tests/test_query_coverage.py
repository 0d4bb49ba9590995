"""Query coverage: hand-counted windows, fixed-length resizing, and the shipped recipes on the real annotation files
(100% of the actions of every split setting; the old recipe shown to fail the same check)."""

import json
import math
from pathlib import Path

import pytest

from zeetad_hf.data import BENCHMARKS, load_benchmark_ground_truth
from zeetad_hf.query_coverage import query_coverage, recipe_coverage, videos_from_ground_truth
from zeetad_hf.zero_shot_splits import load_zero_shot_split, restrict_ground_truth


REPO = Path(__file__).resolve().parents[1]
ANNOTATIONS = REPO.parent / "shared" / "data" / "annotations"
RECIPES = REPO / "examples" / "configs"


def one_second_units_video(num_units: int, actions: list[tuple[float, float]]) -> dict:
    """fps 1, stride 1, window 1: unit i is centred at i + 0.5 s, so unit-edge coordinates are seconds."""
    return {
        "num_units": num_units,
        "fps": 1.0,
        "feature_stride": 1.0,
        "window_size": 1.0,
        "annotations": [{"label": "a", "start": start, "end": end} for start, end in actions],
    }


# 100 units in windows of 40 with overlap 0.25 (stride 30): (0, 40), (30, 70), (60, 100); cores split at 35 and 65.
FIRST_ONLY = [(1.0, 3.0), (5.0, 7.0), (9.0, 11.0), (13.0, 15.0), (17.0, 19.0)]  # centres 2 ... 18: window 0 only
SHARED = [(30.0, 32.0), (31.5, 33.5), (33.0, 35.0)]  # centres 31, 32.5, 34: windows 0 and 1, core of window 0
MIDDLE = [(48.0, 52.0)]  # centre 50: window 1
LAST = [(89.0, 91.0)]  # centre 90: window 2


def test_actions_count_in_every_window_that_holds_their_centre_and_risk_follows_the_core():
    video = one_second_units_video(100, FIRST_ONLY + SHARED + MIDDLE + LAST)
    # window 0 holds 5 + 3 = 8 actions, window 1 holds 3 + 1 = 4, window 2 holds 1
    crowded = query_coverage([video], num_queries=7, max_units=40, window_overlap=0.25)
    assert crowded.num_queries == 7 and crowded.num_videos == 1 and crowded.num_instances == 10
    assert crowded.max_instances_per_window == 8
    assert crowded.num_instances_at_risk == 8  # the 8 actions whose centre lies in window 0's core
    assert crowded.covered_fraction == pytest.approx(0.2)
    assert crowded.shortest_instance_units == 2.0 and crowded.median_instance_units == 2.0
    # one more query, or windows that split the crowd, cover everything
    assert query_coverage([video], num_queries=8, max_units=40, window_overlap=0.25).num_instances_at_risk == 0
    split = query_coverage([video], num_queries=7, max_units=20, window_overlap=0.0)
    assert split.num_instances_at_risk == 0 and split.max_instances_per_window == 5
    # one window: all 10 actions share 7 queries
    whole = query_coverage([video], num_queries=7)
    assert whole.num_instances_at_risk == 10 and whole.max_instances_per_window == 10


def test_the_owning_window_decides_a_shared_action():
    # 6 actions in window 1's core, and one on each side of the core boundary at 35
    video = one_second_units_video(
        100, [(33.0, 35.0), (35.5, 37.5)] + [(40.0 + 3 * k, 42.0 + 3 * k) for k in range(6)]
    )
    coverage = query_coverage([video], num_queries=7, max_units=40, window_overlap=0.25)
    # window 1 (30-70) holds all 8; window 0 (0-40) holds the first two: only the 7 actions window 1 owns are at risk
    assert coverage.max_instances_per_window == 8
    assert coverage.num_instances_at_risk == 7


def test_fixed_length_resizing_rescales_action_lengths_and_keeps_whole_videos():
    video = one_second_units_video(100, FIRST_ONLY + SHARED + MIDDLE + LAST + [(60.0, 70.0)])
    coverage = query_coverage([video], num_queries=20, fixed_num_units=50)
    # 50 new units tile the 100 one-second units: every length halves
    assert coverage.shortest_instance_units == 1.0 and coverage.median_instance_units == 1.0
    assert coverage.max_instances_per_window == 11 and coverage.num_instances_at_risk == 0


def test_actions_outside_the_units_are_clipped_or_left_out_and_empty_videos_count():
    video = one_second_units_video(10, [(-3.0, 2.0), (8.0, 14.0), (12.0, 13.0)])
    coverage = query_coverage([video, one_second_units_video(5, [])], num_queries=1)
    assert coverage.num_videos == 2 and coverage.num_instances == 2  # (12, 13) lies after the last unit
    assert coverage.shortest_instance_units == 2.0  # (-3, 2) clipped to (0, 2); (8, 14) to (8, 10)
    assert coverage.num_instances_at_risk == 2
    empty = query_coverage([], num_queries=1)
    assert empty.num_instances == 0 and empty.covered_fraction == 1.0 and math.isnan(empty.median_instance_units)
    with pytest.raises(ValueError, match="`num_queries`"):
        query_coverage([video], num_queries=0)


def test_estimated_units_follow_the_sliding_window_count():
    truth = {"database": {"v": {"duration": 10.0, "fps": 30.0, "annotations": [{"label": "a", "segment": [1, 2]}]}}}
    (row,) = videos_from_ground_truth(truth, feature_stride=4, window_size=16)
    assert row["num_units"] == (300 - 16) // 4 + 1 and row["fps"] == 30.0
    assert row["annotations"] == [{"label": "a", "start": 1, "end": 2}]
    assert videos_from_ground_truth(truth, 4, 16, fps=10.0)[0]["num_units"] == (100 - 16) // 4 + 1
    del truth["database"]["v"]["fps"]
    with pytest.raises(ValueError, match="'v' has no frame rate"):
        videos_from_ground_truth(truth, 4, 16)


# ---------------------------------------------------------------------------------------------------------------------
# The shipped recipes on the real annotations
# ---------------------------------------------------------------------------------------------------------------------

needs_annotations = pytest.mark.skipif(
    not (ANNOTATIONS / "thumos14.json").is_file(), reason="needs ../shared/data/annotations (not in a user's clone)"
)


def benchmark_truth(dataset: str, subset: str | None = None) -> dict:
    if dataset == "thumos14":
        return load_benchmark_ground_truth(dataset, ANNOTATIONS / "thumos14.json", subset=subset)
    return load_benchmark_ground_truth(
        dataset, ANNOTATIONS / "anet_anno_action.json", ANNOTATIONS / "anet_video_info.csv", subset=subset
    )


@needs_annotations
@pytest.mark.parametrize("recipe_name", ["thumos14_i3d_clip.json", "activitynet_tsp_clip.json"])
def test_shipped_recipes_cover_every_action_of_every_split_on_the_real_annotations(recipe_name):
    recipe = json.loads((RECIPES / recipe_name).read_text())
    truth = benchmark_truth(recipe["dataset"])
    counted = {"all": recipe_coverage(recipe, truth)}
    for setting in ("75_25", "50_50"):
        for split in range(10):
            _, unseen = load_zero_shot_split(recipe["dataset"], setting, split)
            counted[f"{setting} split {split}"] = recipe_coverage(recipe, restrict_ground_truth(truth, unseen))
    # every crop position of the training videos (all classes): the matcher needs a query per action too
    train_truth = benchmark_truth(recipe["dataset"], BENCHMARKS[recipe["dataset"]][0])
    counted["training crops"] = recipe_coverage(recipe, train_truth, training_crops=True)
    for name, coverage in counted.items():
        print(f"{recipe_name} {name}: {coverage}")
    assert all(coverage.num_instances_at_risk == 0 for coverage in counted.values()), counted
    # the real files: THUMOS14 Test 3,358 actions, ActivityNet validation 7,293 (a few lie outside their video)
    assert counted["all"].num_instances > {"thumos14": 3300, "activitynet": 7280}[recipe["dataset"]]


@needs_annotations
def test_the_former_thumos14_recipe_loses_actions_on_the_real_annotations():
    # 2,304-unit windows (ActionFormer's training length) with 40 queries: the recipe shipped before the coverage check
    former = {"dataset": "thumos14", "eval_max_units": 2304, "eval_window_overlap": 0.25}
    coverage = recipe_coverage(former, benchmark_truth("thumos14"))
    assert coverage.max_instances_per_window > 100
    assert 0.2 < coverage.num_instances_at_risk / coverage.num_instances < 0.3
