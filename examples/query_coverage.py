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
import sys

from zeetad_hf.cli_errors import ArgumentParser, UsageError, run_command
from zeetad_hf.data import BENCHMARKS, load_benchmark_ground_truth
from zeetad_hf.file_utils import read_json
from zeetad_hf.query_coverage import QueryCoverage, recipe_coverage
from zeetad_hf.zero_shot_splits import load_zero_shot_split, restrict_ground_truth


SPLIT_SETTINGS = ("75_25", "50_50")
NUM_SPLITS = 10


def table_row(name: str, coverage: QueryCoverage) -> str:
    return (
        f"| {name} | {coverage.num_instances} | {100 * coverage.covered_fraction:.1f}% | "
        f"{coverage.max_instances_per_window} | {coverage.shortest_instance_units:.2f} | "
        f"{coverage.median_instance_units:.1f} |"
    )


def describe(recipe: dict) -> str:
    """The model input a recipe sets, in words."""
    overlap = recipe.get("eval_window_overlap", 0.25)
    windows = recipe.get("eval_max_units")
    windows = f"windows of {windows} units (overlap {overlap})" if windows else "whole videos"
    crop = recipe.get("max_units")
    crop = f"training crops of {crop} units" if crop else "whole training videos"
    return f"fixed_num_units {recipe.get('fixed_num_units')}, {windows}, {crop}"


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
    train_subset, eval_subset, _ = BENCHMARKS[dataset]
    eval_truth = load_benchmark_ground_truth(dataset, annotations, video_info)
    train_truth = load_benchmark_ground_truth(dataset, annotations, video_info, subset=train_subset)
    crops = recipe_coverage(recipe, train_truth, training_crops=True)
    print(
        f"{args.recipe}: {dataset}, {crops.num_queries} queries, {describe(recipe)}; video lengths estimated from "
        f"{annotations}"
    )
    for setting in SPLIT_SETTINGS:
        print(f"\n{setting} — evaluation subset {eval_subset!r} unless noted\n")
        print("| classes | actions | covered | most per window | shortest (units) | median (units) |")
        print("|---|---|---|---|---|---|")
        print(table_row("all", recipe_coverage(recipe, eval_truth)))
        for split in range(NUM_SPLITS):
            _, unseen = load_zero_shot_split(dataset, setting, split)
            coverage = recipe_coverage(recipe, restrict_ground_truth(eval_truth, unseen))
            print(table_row(f"unseen, split {split}", coverage))
        print(table_row(f"all, {train_subset!r} (training), its worst crop", crops))


if __name__ == "__main__":
    sys.exit(run_command(main, "query_coverage.py"))
