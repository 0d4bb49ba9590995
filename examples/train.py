# Copyright 2026 The zeetad_hf authors. Licensed under the MIT license.
"""Train ZEETAD on the seen classes of one zero-shot split and evaluate it on the unseen classes after every epoch (or
every `--eval_every_n_epochs`-th and the last).

Usage: `python examples/train.py [config.json] [--flag value ...]`. The optional first argument is a JSON object of
flags (e.g. examples/configs/thumos14_i3d_clip.json); the flags after it override its values (see examples/README.md).
It runs in one process, several CPU processes (this launch line, with no GPU) or several GPUs:

    accelerate launch --multi_gpu --num_processes 2 --main_process_port 0 examples/train.py \\
        examples/configs/thumos14_i3d_clip.json --split 3 --output_dir runs/thumos14_75_25_split3
    python examples/train.py --dataset thumos14 --annotations thumos14.json --features i3d/ --clip_features clip/ \\
        --split_setting 75_25 --split 0 --output_dir runs/thumos14_75_25_split0

Errors are one line on stderr (`train.py: error: ...`), exit status 2 for the command line, 1 for anything else;
`--debug` adds the traceback. The output folder, the model folders and every feature file are checked before
training starts.
"""

# First, before anything loads torch: `import zeetad_hf` sets the package's thread policy (README "Threads").
import zeetad_hf  # noqa: F401


# isort: split
import dataclasses
import json
import logging
import sys
from dataclasses import dataclass, field
from typing import Literal

import datasets
import transformers
from transformers import AutoTokenizer, set_seed

from zeetad_hf import ZeetadConfig, ZeetadFeatureExtractor, ZeetadForTemporalActionDetection, ZeetadProcessor
from zeetad_hf.cli_errors import CommandLineHfArgumentParser, UsageError, run_command
from zeetad_hf.data import BENCHMARKS, filter_to_classes, load_benchmark, read_feature_shape
from zeetad_hf.file_utils import TOKENIZER_FILES, check_model_folder, check_writable_directory
from zeetad_hf.training import ZeetadTrainingArguments, create_hub_repo, parse_arguments, train
from zeetad_hf.zero_shot_splits import load_zero_shot_split


DESCRIPTION = "Train ZEETAD on the seen classes of one zero-shot split and evaluate the unseen ones after every epoch."


@dataclass
class DataArguments:
    dataset: Literal["thumos14", "activitynet"] = field(
        default="thumos14", metadata={"help": "Benchmark: thumos14 or activitynet."}
    )
    annotations: str | None = field(
        default=None,
        metadata={"help": "Annotation file: ActionFormer's thumos14.json, or ActivityNet's anet_anno_action.json."},
    )
    features: str | None = field(
        default=None, metadata={"help": "Folder of localization feature files (I3D, TSP, ...)."}
    )
    clip_features: str | None = field(
        default=None,
        metadata={"help": "Folder of CLIP frame features, same file names; omit when `features` are CLIP."},
    )
    video_info: str | None = field(default=None, metadata={"help": "ActivityNet only: the video information CSV."})
    feature_extension: str = field(
        default=".npy", metadata={"help": "Feature file extension: .npy, .pt, .safetensors."}
    )
    feature_fps: float | None = field(
        default=None, metadata={"help": "Frame rate of the features; default: the loader's (per-video / 15 fps)."}
    )
    feature_stride: float | None = field(
        default=None, metadata={"help": "Frames between units; default: the loader's (THUMOS 4, ANet tiling)."}
    )
    window_size: float | None = field(
        default=None, metadata={"help": "Frames per unit; default: the loader's (THUMOS 16, ANet tiling)."}
    )
    split_setting: Literal["75_25", "50_50"] = field(
        default="75_25", metadata={"help": "Zero-shot setting: 75_25 or 50_50."}
    )
    split: int = field(default=0, metadata={"help": "Zero-shot class split, 0-9."})
    check_feature_values: bool = field(
        default=True,
        metadata={"help": "Read every feature file once before training and refuse NaN or infinite values."},
    )

    def __post_init__(self):
        if not 0 <= self.split <= 9:
            raise ValueError(f"`split` must be in [0, 9], got {self.split}.")


@dataclass
class ModelArguments:
    clip_model: str = field(
        default="openai/clip-vit-base-patch16",
        metadata={"help": "CLIP checkpoint (Hub id or folder) whose text encoder and tokenizer ZEETAD starts from."},
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Continue from a saved ZEETAD model and processor instead of `clip_model`."}
    )
    config_overrides: str | None = field(
        default=None, metadata={"help": "ZeetadConfig fields as JSON for a new model, e.g. '{\"num_queries\": 40}'."}
    )
    prompt_templates: list[str] | None = field(
        default=None, metadata={"help": "Prompt templates with one {} for the class name (new processor only)."}
    )


def parse_config_overrides(text: str | None) -> dict:
    """The `--config_overrides` JSON object, every key a `ZeetadConfig` field (a usage error otherwise)."""
    try:
        overrides = json.loads(text or "{}")
    except json.JSONDecodeError as error:
        raise UsageError(f"--config_overrides is not valid JSON ({error}): {text!r}") from None
    if not isinstance(overrides, dict):
        raise UsageError(f"--config_overrides must be a JSON object, got {text!r}")
    unknown = sorted(set(overrides) - {config_field.name for config_field in dataclasses.fields(ZeetadConfig)})
    if unknown:
        raise UsageError(f"--config_overrides: {unknown} are not ZeetadConfig fields")
    return overrides


def check_model_arguments(model_args: ModelArguments) -> None:
    """The folders named by the model arguments hold what will be loaded (Hub ids are left to the loader)."""
    if model_args.model_name_or_path is not None:
        check_model_folder(model_args.model_name_or_path, "--model_name_or_path")
    else:
        check_model_folder(model_args.clip_model, "--clip_model", TOKENIZER_FILES)


def build_model_and_processor(model_args: ModelArguments, localization_feature_dim: int | None):
    """A new ZEETAD from CLIP (or a saved one) and its processor."""
    if model_args.model_name_or_path is not None:
        model = ZeetadForTemporalActionDetection.from_pretrained(model_args.model_name_or_path)
        return model, ZeetadProcessor.from_pretrained(model_args.model_name_or_path)
    overrides = {"localization_feature_dim": localization_feature_dim}
    overrides.update(parse_config_overrides(model_args.config_overrides))
    model = ZeetadForTemporalActionDetection.from_clip(model_args.clip_model, **overrides)
    templates = {"prompt_templates": model_args.prompt_templates} if model_args.prompt_templates else {}
    tokenizer = AutoTokenizer.from_pretrained(model_args.clip_model)
    return model, ZeetadProcessor(feature_extractor=ZeetadFeatureExtractor(), tokenizer=tokenizer, **templates)


def main(argv: list[str] | None = None):
    # 1. Arguments (`[config.json] [--flag value ...]`, flags override the file), the checks that need no data (the
    # tracker of `--with_tracking` is installed, the output folder is writable, the model folders hold config,
    # complete weights and tokenizer), and logging
    parser = CommandLineHfArgumentParser(
        (DataArguments, ModelArguments, ZeetadTrainingArguments), takes_json_config=True, description=DESCRIPTION
    )
    data_args, model_args, training_args = parse_arguments(parser, argv)
    if data_args.annotations is None or data_args.features is None:
        parser.error("--annotations and --features are required.")
    parse_config_overrides(model_args.config_overrides)
    check_writable_directory(training_args.output_dir, "--output_dir")
    check_model_arguments(model_args)
    if training_args.push_to_hub:
        # A missing token or network fails now, not after training (train() checks again, for API callers). Every
        # process asks (the process group does not exist yet); creating with exist_ok is idempotent.
        create_hub_repo(training_args.hub_repo_id, training_args.hub_private_repo)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    datasets.utils.logging.disable_progress_bar()
    if training_args.tiou_thresholds is None:
        training_args.tiou_thresholds = list(BENCHMARKS[data_args.dataset][2])

    # 2. Zero-shot split and data: seen-class annotations for training, every evaluation video for evaluation
    seen, unseen = load_zero_shot_split(data_args.dataset, data_args.split_setting, data_args.split)
    loader_kwargs = {
        "feature_extension": data_args.feature_extension,
        "check_feature_values": data_args.check_feature_values,
    }
    timing = {
        "fps": data_args.feature_fps,
        "feature_stride": data_args.feature_stride,
        "window_size": data_args.window_size,
    }
    # Unset timing flags keep the loader's defaults for the benchmark's usual features.
    loader_kwargs.update({name: value for name, value in timing.items() if value is not None})
    train_videos, eval_videos = load_benchmark(
        data_args.dataset,
        data_args.annotations,
        data_args.features,
        data_args.clip_features,
        data_args.video_info,
        **loader_kwargs,
    )
    train_dataset = filter_to_classes(train_videos, seen, drop_empty=True, excluded_classes=unseen)

    # 3. Model and processor (seeded: the initialisation is part of the run)
    set_seed(training_args.seed)
    localization_dim = None
    if data_args.clip_features is not None:
        localization_dim = read_feature_shape(train_dataset[0]["feature_path"])[1]
    model, processor = build_model_and_processor(model_args, localization_dim)

    # 4. Train, evaluate on the unseen classes every epoch, save the selected model with its results and model card
    features = f"{data_args.features} (localization)"
    if data_args.clip_features is not None:
        features += f" + {data_args.clip_features} (CLIP frame embeddings)"
    model_card = {
        "model_name": training_args.hub_model_id
        or f"zeetad-{data_args.dataset}-{data_args.split_setting}-split{data_args.split}",
        "base_model": model_args.clip_model
        if model_args.model_name_or_path is None
        else model_args.model_name_or_path,
        "dataset_name": data_args.dataset,
        "split_setting": data_args.split_setting,
        "split_indices": [data_args.split],
        "features": features,
        "repo_id": training_args.hub_model_id,
    }
    # every evaluation video with all its annotations: the unseen-class mAP restricts the ground truth itself, and
    # --open_vocabulary_evaluation needs the seen-class ones
    train(model, processor, train_dataset, eval_videos, seen, unseen, training_args, model_card=model_card)


if __name__ == "__main__":
    sys.exit(run_command(main, "train.py"))
