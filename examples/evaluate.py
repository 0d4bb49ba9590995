# Copyright 2026 The zeetad_hf authors. Licensed under the MIT license.
"""Zero-shot mAP@tIoU on the unseen classes of one split, or mean ± std over the 10 splits, written as JSON + Markdown.

Usage: `python examples/evaluate.py [config.json] [--flag value ...]`. The optional first argument is a JSON object of
flags; the flags after it override its values (as for examples/train.py).

Scores either saved detections (`--predictions`, e.g. the `eval_predictions.json` of examples/train.py) or a trained
model run on the evaluation videos (`--model_name_or_path`). With `--all_splits`, put `{split}` in the path:

    python examples/evaluate.py --dataset thumos14 --annotations thumos14.json --split_setting 75_25 --all_splits \\
        --predictions "runs/thumos14_75_25_split{split}/eval_predictions.json" --output_dir results/thumos14_75_25

The ground truth is read from the annotation file itself (evaluation subset, restricted to the split's unseen
classes), so the numbers are those of the official ActivityNet evaluator on the raw files. Every split is scored on
two sets of videos, both in the same table (its `video set` column) and JSON file:

- `all`: every video of the evaluation subset; detections on videos without unseen-class ground truth count as false
  positives (the strict protocol, and the numbers of the top-level `splits` / `mean` / `std` of the JSON file);
- `with unseen GT`: only the evaluation videos holding unseen-class ground truth; detections on the other videos are
  left out (the JSON file's `videos_with_unseen_ground_truth`). Same classes and instances, fewer false positives,
  so never lower.

With `--all_splits` both are summarised as mean ± std over the 10 splits, std being the sample standard deviation
(ddof = 1).

Unlike the official evaluator, predictions on videos that are not in the ground truth and video ids given twice are
refused unless `--unknown_videos false_positive` / `--duplicate_videos keep_last` restore the official behaviour.

Errors are one line on stderr (`evaluate.py: error: ...`), exit status 2 for the command line, 1 for anything else
(e.g. a predictions file in another format); `--debug` adds the traceback. The output folder and the model folders
are checked before anything is scored.
"""

# First, before anything loads torch: `import zeetad_hf` sets the package's thread policy (README "Threads").
import zeetad_hf  # noqa: F401


# isort: split
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import transformers
from accelerate import Accelerator
from torch.utils.data import DataLoader

from zeetad_hf import ZeetadForTemporalActionDetection, ZeetadProcessor
from zeetad_hf.cli_errors import CommandLineHfArgumentParser, run_command
from zeetad_hf.data import BENCHMARKS, load_benchmark, load_benchmark_ground_truth
from zeetad_hf.evaluation import (
    load_predictions,
    restrict_to_videos_with_ground_truth,
    score_predictions,
    validate_tiou_thresholds,
)
from zeetad_hf.file_utils import (
    atomic_write,
    check_model_folder,
    check_writable_directory,
    read_json,
    write_json_atomic,
)
from zeetad_hf.post_processing_zeetad import evaluation_protocol
from zeetad_hf.training import (
    ZeetadDataCollator,
    encode_class_prompts,
    has_accelerator,
    parse_arguments,
    predict,
)
from zeetad_hf.zero_shot_splits import load_zero_shot_split, restrict_ground_truth


NUM_SPLITS = 10
# Protocol of a predictions file that does not record one (e.g. from another code base).
UNKNOWN_PROTOCOL = "unknown"
DESCRIPTION = (
    "Zero-shot mAP@tIoU on the unseen classes of one split, or mean ± sample std (ddof 1) over the 10 splits; on all "
    "evaluation videos and on those holding unseen-class ground truth."
)
# Sample standard deviation over the splits (`ddof=1`), as `statistics.stdev`.
STD_DDOF = 1
# The two sets of evaluation videos: table label and the description written into the JSON file.
ALL_VIDEOS = (
    "all",
    "every video of the evaluation subset; detections on videos without unseen-class ground truth count as false "
    "positives",
)
VIDEOS_WITH_UNSEEN = (
    "with unseen GT",
    "the evaluation videos that hold unseen-class ground truth; detections on the other videos are left out",
)
logger = logging.getLogger(__name__)


@dataclass
class EvaluationArguments:
    output_dir: str = field(metadata={"help": "Where evaluation_results.json and evaluation_results.md are written."})
    dataset: Literal["thumos14", "activitynet"] = field(
        default="thumos14", metadata={"help": "Benchmark: thumos14 or activitynet."}
    )
    annotations: str | None = field(
        default=None, metadata={"help": "Annotation file: thumos14.json, or ActivityNet's anet_anno_action.json."}
    )
    video_info: str | None = field(default=None, metadata={"help": "ActivityNet only: the video information CSV."})
    split_setting: Literal["75_25", "50_50"] = field(
        default="75_25", metadata={"help": "Zero-shot setting: 75_25 or 50_50."}
    )
    split: int = field(default=0, metadata={"help": "Zero-shot class split, 0-9 (ignored with --all_splits)."})
    all_splits: bool = field(
        default=False,
        metadata={
            "help": "Evaluate the 10 splits and report mean ± std over them (std: sample standard deviation, ddof 1), "
            "on all evaluation videos and on those holding unseen-class ground truth."
        },
    )
    predictions: str | None = field(
        default=None, metadata={"help": "Detections in the ActivityNet submission format; may contain {split}."}
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A trained ZEETAD model + processor folder (or Hub id); may contain {split}."}
    )
    tiou_thresholds: list[float] | None = field(
        default=None,
        metadata={"help": "tIoU thresholds in (0, 1]; default: the benchmark's (THUMOS 0.3:0.7, ANet 0.5:0.95)."},
    )
    unknown_videos: Literal["error", "false_positive"] = field(
        default="error",
        metadata={
            "help": "Predictions on videos that the ground truth does not hold (e.g. ids with a .mp4 suffix): error, "
            "or false_positive (the official evaluator's scoring)."
        },
    )
    duplicate_videos: Literal["error", "keep_last"] = field(
        default="error",
        metadata={
            "help": "A video id given twice in the predictions or annotation file: error, or keep_last (what JSON "
            "readers, the official evaluator among them, keep)."
        },
    )

    def __post_init__(self):
        if not 0 <= self.split <= 9:
            raise ValueError(f"`split` must be in [0, 9], got {self.split}.")


@dataclass
class InferenceArguments:
    features: str | None = field(default=None, metadata={"help": "Model mode: folder of localization features."})
    clip_features: str | None = field(default=None, metadata={"help": "Model mode: folder of CLIP frame features."})
    feature_extension: str = field(default=".npy", metadata={"help": "Feature file extension."})
    feature_fps: float | None = field(default=None, metadata={"help": "Frame rate of the features (loader default)."})
    feature_stride: float | None = field(default=None, metadata={"help": "Frames between units (loader default)."})
    window_size: float | None = field(default=None, metadata={"help": "Frames per unit (loader default)."})
    per_device_eval_batch_size: int = field(default=1, metadata={"help": "Videos per batch per process."})
    eval_max_units: int | None = field(default=None, metadata={"help": "Window length for long videos (None: whole)."})
    eval_window_overlap: float = field(default=0.25, metadata={"help": "Overlap fraction of the windows."})
    max_segments_per_video: int = field(default=200, metadata={"help": "Detections kept per video after Soft-NMS."})
    nms_sigma: float = field(default=0.5, metadata={"help": "Gaussian Soft-NMS sigma."})
    multiclass_nms: bool = field(
        default=True,
        metadata={"help": "Soft-NMS per class (default); --no_multiclass_nms runs one class-agnostic Soft-NMS."},
    )
    voting_threshold: float = field(default=0.0, metadata={"help": "Class-agnostic NMS: voting IoU (0 = off)."})
    video_fusion_top_k: int | None = field(
        default=None,
        metadata={
            "help": "Video-level fusion with the model's own zero-shot video scores, top k classes per video (off: the "
            "strict protocol); the results say which protocol they used."
        },
    )


def summarize(per_split: dict[str, dict]) -> tuple[dict | None, dict | None]:
    """Mean and sample standard deviation (ddof 1) over the splits of the mAP per threshold and of the average mAP;
    `(None, None)` for a single split."""
    if len(per_split) < 2:
        return None, None
    maps = np.array([result["mAP"] for result in per_split.values()])
    averages = np.array([result["average_mAP"] for result in per_split.values()])
    mean = {"mAP": maps.mean(axis=0).tolist(), "average_mAP": float(averages.mean())}
    std = {"mAP": maps.std(axis=0, ddof=STD_DDOF).tolist(), "average_mAP": float(averages.std(ddof=STD_DDOF))}
    return mean, std


def markdown_table(
    video_sets: list[tuple[str, dict[str, dict], dict | None, dict | None]],
    tiou_thresholds: list[float],
    title: str,
) -> str:
    """A caption, then mAP in percent: per split one row per video set, then mean ± std per video set (two splits or
    more); one column per threshold and the average. `video_sets` holds `(label, per_split, mean, std)`."""
    caption = (
        f"{title}: mAP (%) on the unseen classes. Video set `{ALL_VIDEOS[0]}`: {ALL_VIDEOS[1]}; "
        f"`{VIDEOS_WITH_UNSEEN[0]}`: {VIDEOS_WITH_UNSEEN[1]}."
    )
    num_splits = len(video_sets[0][1])
    if num_splits > 1:
        caption += f" mean ± std over the {num_splits} splits, std = sample standard deviation (ddof {STD_DDOF})."
    columns = ["split", "video set", "#videos", *(f"mAP@{threshold:g}" for threshold in tiou_thresholds), "average"]
    lines = [caption, "", "| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for split in video_sets[0][1]:
        for label, per_split, _, _ in video_sets:
            result = per_split[split]
            cells = [f"{100 * value:.2f}" for value in [*result["mAP"], result["average_mAP"]]]
            lines.append(f"| {split} | {label} | {result['num_videos']} | " + " | ".join(cells) + " |")
    for label, _, mean, std in video_sets:
        if mean is not None:
            values = zip([*mean["mAP"], mean["average_mAP"]], [*std["mAP"], std["average_mAP"]])
            cells = [f"{100 * value:.2f} ± {100 * deviation:.2f}" for value, deviation in values]
            lines.append(f"| mean ± std | {label} |  | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def read_predictions(path: str, unseen: list[str], duplicate_videos: str) -> tuple[dict, str]:
    """The detections of a submission file (`{"results": {video_id: [...]}}`) and the protocol it records
    (`"protocol"`, written by examples/train.py; `"unknown"` for files that do not say); errors name the file and the
    format."""
    results = load_predictions(path, duplicate_videos=duplicate_videos)
    # a mapping (load_predictions refuses anything else), read again for its top-level keys
    protocol = read_json(path, "predictions").get("protocol", UNKNOWN_PROTOCOL)
    foreign = {item.get("label") for video in results.values() for item in video if isinstance(item, dict)}
    foreign -= set(unseen)
    if foreign:
        logger.warning(f"{path}: ignoring detections of {len(foreign)} classes that are not unseen in this split.")
    return results, str(protocol)


def check_arguments(parser, args: EvaluationArguments, inference: InferenceArguments) -> list[float]:
    """Usage errors of flags that go together (one line, exit status 2); returns the tIoU thresholds."""
    if args.annotations is None or (args.predictions is None) == (args.model_name_or_path is None):
        parser.error("pass --annotations and exactly one of --predictions or --model_name_or_path.")
    if args.all_splits and "{split}" not in (args.predictions or args.model_name_or_path):
        parser.error("with --all_splits the predictions / model path must contain {split} (one model per split).")
    if args.model_name_or_path is not None and inference.features is None:
        parser.error("--model_name_or_path needs --features (and --clip_features for localization features).")
    if args.predictions is not None and inference.video_fusion_top_k is not None:
        parser.error("--video_fusion_top_k applies to a model run (--model_name_or_path), not to saved --predictions.")
    tiou_thresholds = args.tiou_thresholds or list(BENCHMARKS[args.dataset][2])
    try:
        validate_tiou_thresholds(tiou_thresholds)
    except ValueError as error:
        parser.error(f"--tiou_thresholds: {error}")
    return tiou_thresholds


def main(argv: list[str] | None = None):
    # 1. Arguments (`[config.json] [--flag value ...]`, flags override the file), then what can be checked before any
    # work: the output folder is writable, every model folder holds config, complete weights and processor
    parser = CommandLineHfArgumentParser(
        (EvaluationArguments, InferenceArguments), takes_json_config=True, description=DESCRIPTION
    )
    args, inference = parse_arguments(parser, argv)
    tiou_thresholds = check_arguments(parser, args, inference)
    source = args.predictions or args.model_name_or_path
    splits = range(NUM_SPLITS) if args.all_splits else [args.split]
    check_writable_directory(args.output_dir, "--output_dir")
    if args.model_name_or_path is not None:
        for split in splits:
            check_model_folder(args.model_name_or_path.format(split=split), "--model_name_or_path")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()

    # 2. Ground truth of the evaluation subset; in model mode also the videos, their loader and the processes
    try:
        ground_truth = load_benchmark_ground_truth(
            args.dataset, args.annotations, args.video_info, duplicate_videos=args.duplicate_videos
        )
    except (OSError, ValueError) as error:
        # a runtime error (exit status 1) that names the flag and the file
        raise ValueError(f"--annotations {args.annotations}: {error}") from error
    accelerator = eval_dataloader = None
    if args.model_name_or_path is not None:
        accelerator = Accelerator(cpu=not has_accelerator())
        timing = {
            "fps": inference.feature_fps,
            "feature_stride": inference.feature_stride,
            "window_size": inference.window_size,
        }
        _, eval_videos = load_benchmark(
            args.dataset,
            args.annotations,
            inference.features,
            inference.clip_features,
            args.video_info,
            include_train=False,
            feature_extension=inference.feature_extension,
            duplicate_videos=args.duplicate_videos,
            **{name: value for name, value in timing.items() if value is not None},
        )
        # each split's model sizes the videos as its processor says (`fixed_num_units`): set per split below
        collator = ZeetadDataCollator()
        loader = DataLoader(eval_videos, batch_size=inference.per_device_eval_batch_size, collate_fn=collator)
        eval_dataloader = accelerator.prepare(loader)

    # 3. Score every split on its unseen classes, on all evaluation videos and on those holding unseen ground truth
    per_split, per_split_with_unseen, protocols = {}, {}, set()
    for split in splits:
        _, unseen = load_zero_shot_split(args.dataset, args.split_setting, split)
        split_ground_truth = restrict_ground_truth(ground_truth, unseen)
        if args.predictions is not None:
            path = args.predictions.format(split=split)
            try:
                results, protocol = read_predictions(path, unseen, args.duplicate_videos)
                metrics = score_predictions(
                    split_ground_truth, results, unseen, tiou_thresholds, unknown_videos=args.unknown_videos
                )
            except (OSError, ValueError) as error:
                # a runtime error (exit status 1) in one message that names the flag and the file
                raise ValueError(f"--predictions {path}: {error}") from error
        else:
            path = args.model_name_or_path.format(split=split)
            model = ZeetadForTemporalActionDetection.from_pretrained(path).to(accelerator.device)
            processor = ZeetadProcessor.from_pretrained(path)
            collator.feature_extractor = processor.feature_extractor
            post_processing = {
                "max_segments": inference.max_segments_per_video,
                "nms_sigma": inference.nms_sigma,
                "multiclass_nms": inference.multiclass_nms,
                "voting_threshold": inference.voting_threshold,
                "video_fusion_top_k": inference.video_fusion_top_k,
            }
            protocol = evaluation_protocol(inference.video_fusion_top_k)
            prompts = encode_class_prompts(processor, unseen, accelerator.device)
            results = predict(
                model,
                eval_dataloader,
                unseen,
                prompts,
                accelerator,
                post_processing,
                inference.eval_max_units,
                inference.eval_window_overlap,
            )
        if accelerator is None or accelerator.is_main_process:
            if args.predictions is None:
                metrics = score_predictions(split_ground_truth, results, unseen, tiou_thresholds)
            protocols.add(protocol)
            per_split[str(split)] = {**metrics, "num_videos": len(split_ground_truth["database"])}
            with_unseen_truth, with_unseen_results = restrict_to_videos_with_ground_truth(split_ground_truth, results)
            with_unseen = score_predictions(with_unseen_truth, with_unseen_results, unseen, tiou_thresholds)
            per_split_with_unseen[str(split)] = {**with_unseen, "num_videos": len(with_unseen_truth["database"])}
            logger.info(
                f"split {split}: average mAP {100 * metrics['average_mAP']:.2f} on all "
                f"{len(split_ground_truth['database'])} evaluation videos, {100 * with_unseen['average_mAP']:.2f} on "
                f"the {len(with_unseen_truth['database'])} holding unseen-class ground truth"
            )

    # 4. Mean ± sample std over the splits, JSON + Markdown (main process only). The top-level `splits`, `mean` and
    # `std` are those of all evaluation videos (the keys of earlier versions); the other video set has its own block.
    if accelerator is not None and not accelerator.is_main_process:
        return
    if len(protocols) > 1:
        raise ValueError(f"--predictions: the splits' files were made under different protocols {sorted(protocols)}")
    (protocol,) = protocols
    mean, std = summarize(per_split)
    mean_with_unseen, std_with_unseen = summarize(per_split_with_unseen)
    os.makedirs(args.output_dir, exist_ok=True)
    report = {
        "dataset": args.dataset,
        "split_setting": args.split_setting,
        "num_splits": len(per_split),
        "source": source,
        "protocol": protocol,
        "tiou_thresholds": tiou_thresholds,
        "video_set": ALL_VIDEOS[1],
        "std_ddof": STD_DDOF,
        "splits": per_split,
        "mean": mean,
        "std": std,
        "videos_with_unseen_ground_truth": {
            "video_set": VIDEOS_WITH_UNSEEN[1],
            "splits": per_split_with_unseen,
            "mean": mean_with_unseen,
            "std": std_with_unseen,
        },
    }
    write_json_atomic(os.path.join(args.output_dir, "evaluation_results.json"), report)
    video_sets = [
        (ALL_VIDEOS[0], per_split, mean, std),
        (VIDEOS_WITH_UNSEEN[0], per_split_with_unseen, mean_with_unseen, std_with_unseen),
    ]
    table = markdown_table(video_sets, tiou_thresholds, f"{args.dataset} {args.split_setting}, protocol {protocol}")
    with atomic_write(os.path.join(args.output_dir, "evaluation_results.md")) as handle:
        handle.write(table)
    print(table, end="")


if __name__ == "__main__":
    sys.exit(run_command(main, "evaluate.py"))
