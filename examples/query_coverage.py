# Copyright 2026 The zeetad_hf authors. Licensed under the MIT license.
"""Query coverage of a training recipe on its benchmark's annotation file: can every action be reported?

Usage: `python examples/query_coverage.py RECIPE.json [--annotations FILE] [--video_info CSV]`, e.g.

    python examples/query_coverage.py examples/configs/thumos14_i3d_clip.json \\
        --annotations ../shared/data/annotations/thumos14.json

A window of the model answers with at most `num_queries` segments, so an action in a window holding more actions than
that may never be found. For the recipe's model input (`fixed_num_units`, evaluation windows `eval_max_units` /
`eval_window_overlap`, training crops `max_units`, `num_queries` from `config_overrides`), this prints one Markdown
table per split setting: the evaluation videos with all classes, then with the unseen classes of each of the 10
splits, and the training videos' worst crop (every crop position; all classes). Columns: actions, the share covered
(not at risk), the most actions one window holds, and the action lengths in units. Video lengths are estimated from
the annotations (no feature file is needed; see `zeetad_hf.query_coverage.videos_from_ground_truth`).

Errors are one line on stderr (`query_coverage.py: error: ...`), exit status 2 for the command line, 1 for anything
else.
"""

# First, before anything loads torch: `import zeetad_hf` sets the package's thread policy (README "Threads").
import zeetad_hf  # noqa: F401


# isort: split
import json
import sys

from zeetad_hf import ZeetadConfig
from zeetad_hf.cli_errors import ArgumentParser, UsageError, run_command
from zeetad_hf.data import ACTIVITYNET_TSP_FPS, BENCHMARKS, load_benchmark_ground_truth
from zeetad_hf.file_utils import read_json
from zeetad_hf.query_coverage import QueryCoverage, query_coverage, videos_from_ground_truth
from zeetad_hf.zero_shot_splits import load_zero_shot_split, restrict_ground_truth


# Raw feature timing of each benchmark's recipe features when the recipe leaves it unset: THUMOS14 ActionFormer I3D
# (per-video fps from the file, 4 frames between units, 16-frame windows), ActivityNet TSP before resizing (15 fps,
# 16-frame snippets every 16 frames).
FEATURE_TIMING = {
    "thumos14": {"fps": None, "feature_stride": 4.0, "window_size": 16.0},
    "activitynet": {"fps": ACTIVITYNET_TSP_FPS, "feature_stride": 16.0, "window_size": 16.0},
}
SPLIT_SETTINGS = ("75_25", "50_50")
NUM_SPLITS = 10
# Overlap whose window stride is one unit: every training crop position.
EVERY_POSITION = 0.9999


def num_queries(recipe: dict) -> int:
    """`num_queries` of the recipe's model: its `config_overrides` (a JSON string), else the `ZeetadConfig` default."""
    overrides = recipe.get("config_overrides") or "{}"
    try:
        overrides = json.loads(overrides) if isinstance(overrides, str) else overrides
    except json.JSONDecodeError as error:
        raise ValueError(f"the recipe's config_overrides is not valid JSON ({error})") from None
    return int(overrides.get("num_queries", ZeetadConfig().num_queries))


def table_row(name: str, coverage: QueryCoverage) -> str:
    return (
        f"| {name} | {coverage.num_instances} | {100 * coverage.covered_fraction:.1f}% | "
        f"{coverage.max_instances_per_window} | {coverage.shortest_instance_units:.2f} | "
        f"{coverage.median_instance_units:.1f} |"
    )


def main(argv: list[str]) -> None:
    parser = ArgumentParser(prog="query_coverage.py", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="A training recipe, e.g. examples/configs/thumos14_i3d_clip.json.")
    parser.add_argument("--annotations", help="The annotation file (default: the recipe's `annotations`).")
    parser.add_argument("--video_info", help="ActivityNet's video CSV (default: the recipe's `video_info`).")
    parser.add_argument("--debug", action="store_true", help="Print the traceback of an error.")
    args = parser.parse_args(argv)
    recipe = read_json(args.recipe, "recipe")
    if not isinstance(recipe, dict):
        raise UsageError(f"{args.recipe}: a recipe is a JSON object of flags")
    dataset = recipe.get("dataset", "thumos14")
    if dataset not in BENCHMARKS:
        raise UsageError(f"{args.recipe}: `dataset` must be one of {sorted(BENCHMARKS)}, got {dataset!r}")
    annotations = args.annotations or recipe.get("annotations")
    video_info = args.video_info or recipe.get("video_info")
    if annotations is None:
        raise UsageError(f"{args.recipe} names no `annotations`: pass --annotations")
    timing = dict(FEATURE_TIMING[dataset])
    timing.update(
        {
            name: recipe[key]
            for name, key in (("fps", "feature_fps"), ("feature_stride", "feature_stride"))
            if recipe.get(key) is not None
        }
    )
    if recipe.get("window_size") is not None:
        timing["window_size"] = recipe["window_size"]
    queries = num_queries(recipe)
    model_input = {
        "num_queries": queries,
        "fixed_num_units": recipe.get("fixed_num_units"),
        "window_overlap": recipe.get("eval_window_overlap", 0.25),
    }

    train_subset, eval_subset, _ = BENCHMARKS[dataset]
    eval_truth = load_benchmark_ground_truth(dataset, annotations, video_info)
    train_truth = load_benchmark_ground_truth(dataset, annotations, video_info, subset=train_subset)
    crops = query_coverage(
        videos_from_ground_truth(train_truth, **timing),
        queries,
        recipe.get("max_units"),
        EVERY_POSITION,
        recipe.get("fixed_num_units"),
    )
    windows = recipe.get("eval_max_units")
    windows = f"windows of {windows} units (overlap {model_input['window_overlap']})" if windows else "whole videos"
    crop = recipe.get("max_units")
    crop = f"training crops of {crop} units" if crop else "whole training videos"
    print(
        f"{args.recipe}: {dataset}, {queries} queries, fixed_num_units {model_input['fixed_num_units']}, {windows}, "
        f"{crop}; video lengths estimated from {annotations}"
    )
    for setting in SPLIT_SETTINGS:
        print(f"\n{setting} — evaluation subset {eval_subset!r} unless noted\n")
        print("| classes | actions | covered | most per window | shortest (units) | median (units) |")
        print("|---|---|---|---|---|---|")
        rows = [("all", eval_truth)]
        for split in range(NUM_SPLITS):
            _, unseen = load_zero_shot_split(dataset, setting, split)
            rows.append((f"unseen, split {split}", restrict_ground_truth(eval_truth, unseen)))
        for name, truth in rows:
            coverage = query_coverage(
                videos_from_ground_truth(truth, **timing),
                queries,
                recipe.get("eval_max_units"),
                model_input["window_overlap"],
                model_input["fixed_num_units"],
            )
            print(table_row(name, coverage))
        print(table_row(f"all, {train_subset!r} (training), its worst crop", crops))


if __name__ == "__main__":
    sys.exit(run_command(main, "query_coverage.py"))
