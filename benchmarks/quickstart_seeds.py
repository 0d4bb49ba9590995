"""The README's table across worlds: mean (lowest-highest) over finished `zeetad quickstart --seed N` runs.

Reads each run's `results.json` (nothing is recomputed) and prints, per variant, the strict protocol's unseen-class
average mAP over all validation videos and over the unseen-only videos, the generalized zero-shot harmonic mean, and
the on-list / off-list instance detection rates at scores 0.3 and 0.5, in %; then each run's default-model and
softmax-head numbers.

Usage: python benchmarks/quickstart_seeds.py RUN_DIR [RUN_DIR ...]   (e.g. the output folders of seeds 0, 1, 2)
"""

import argparse
import json
from pathlib import Path

import numpy as np

from zeetad_hf.quickstart import MODEL_VARIANT, RESULT_COLUMNS, detection_rate


COLUMNS = {
    "unseen mAP, all videos": RESULT_COLUMNS["unseen mAP, all videos"],
    "unseen-only videos": RESULT_COLUMNS["unseen mAP, unseen-only videos"],
    "GZSL harmonic mean": RESULT_COLUMNS["GZSL harmonic mean"],
    **{
        f"{name} @{threshold}": lambda result, kind=kind, threshold=threshold: detection_rate(result, kind, threshold)
        for threshold in (0.3, 0.5)
        for name, kind in (("on-list found", "on_list"), ("off-list named", "off_list"))
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", help="output folders of finished quickstart runs")
    args = parser.parse_args()
    runs = [json.loads((Path(folder) / "results.json").read_text())["variants"] for folder in args.run_dirs]
    print(f"Mean over {len(runs)} runs (lowest-highest), in %, strict protocol:\n")
    print("| variant | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for variant in runs[0]:
        cells = []
        for read in COLUMNS.values():
            values = 100 * np.array([read(run[variant]) for run in runs])
            cells.append(f"{values.mean():.1f} ({values.min():.1f}–{values.max():.1f})")
        print(f"| {variant} | " + " | ".join(cells) + " |")
    print()
    for variant in (MODEL_VARIANT, "bottleneck_softmax"):
        values = [100 * COLUMNS["unseen mAP, all videos"](run[variant]) for run in runs]
        print(f"{variant}, unseen mAP, all videos, per run: " + " / ".join(f"{value:.1f}" for value in values))


if __name__ == "__main__":
    main()
