"""Zero-shot training of ZEETAD with 🤗 Accelerate: collate, train loop, per-epoch unseen-class evaluation, checkpoints.

The loop has the shape of the `*_no_trainer` examples of transformers/accelerate (one `Accelerator`, `accumulate`,
`save_state` / `load_state`, `gather_for_metrics`), so it runs unchanged on one CPU, several CPU processes
(`accelerate launch --multi_gpu --num_processes 2 ...` with no GPU: the `Accelerator` is built with `cpu=True` when no
accelerator is present) and several GPUs. `examples/train.py` is a thin command line around [`train`].

Zero-shot protocol (strict, see the package README):

- training batches hold seen-class annotations only and the class prompts are the seen-class names; [`train`] refuses
  a training set with any other label;
- every `eval_every_n_epochs`-th epoch and the last end with an evaluation on the unseen classes (prompts =
  unseen-class names, ground truth restricted to them, every video of the evaluation set scored). It is reported only:
  nothing in the loop reads it;
- the saved model is the one of the last epoch, or, with `heldout_percentage > 0`, the epoch with the best mAP on a
  held-out part of the *training* videos, scored on the *seen* classes (no test data in the selection).

Determinism (CPU; identical weights after a kill and `resume_from_checkpoint="latest"`):

- the data order is a function of `(seed, epoch)` (Accelerate's seedable sampler with `data_seed=seed`), shared by all
  processes, which each take their shard of every batch;
- the random crop of a video is a function of `(seed, epoch, video_id)`, never of a global generator, because the
  data loader collates one batch ahead of the training step and a checkpoint taken between the two would otherwise
  shift every later crop;
- dropout draws from the global torch generator, seeded per process by `set_seed(seed, device_specific=True)`,
  saved in every checkpoint and restored by `load_state`; the data loaders have generators of their own, so that
  building a loader mid-epoch (on resume) draws nothing from the global one;
- not reproducible: kernels with non-deterministic reductions (e.g. CUDA `grid_sample` backward, which uses atomics),
  and feature readers with randomness of their own in `dataloader_num_workers > 0` workers. Resuming with another
  number of processes, batch size, accumulation or dataset is refused when it changes the steps per epoch.
"""

import errno
import json
import math
import os
import re
import shutil
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.logging import get_logger
from accelerate.tracking import get_available_trackers
from accelerate.utils import LoggerType, broadcast_object_list, set_seed
from datasets import Dataset
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import HfArgumentParser, get_scheduler
from transformers.utils import logging

from .data import THUMOS14_TIOU_THRESHOLDS, check_feature_files, load_features, to_ground_truth
from .evaluation import open_vocabulary_report, score_predictions, validate_tiou_thresholds
from .export import export_for_remote_code
from .feature_extraction_zeetad import ZeetadFeatureExtractor, resample_units
from .file_utils import (
    TEMPORARY_PREFIX,
    check_safetensors_file,
    check_writable_directory,
    disk_full_error,
    is_weights_file,
    link_missing_entries,
    read_json,
    remove_interrupted_writes,
    replace_directory,
    temporary_sibling,
    write_json_atomic,
)
from .modelcard import build_model_card, save_model_card
from .pipeline_zeetad import WINDOW_OUTPUT_KEYS, merge_window_outputs
from .post_processing_zeetad import (
    STRICT_PROTOCOL,
    TUNED_ACTIONNESS_WEIGHTS,
    evaluation_protocol,
    post_process_temporal_action_detection,
)
from .processing_zeetad import ZeetadProcessor
from .segment_utils import seconds_to_normalized_segments, segment_se_to_cw


logger = get_logger(__name__)
# for the checkpoint helpers, which run without an Accelerate state too (Accelerate's logger needs one)
checkpoint_logger = logging.get_logger(__name__)

# A checkpoint folder is complete iff it has this name pattern and holds TRAINER_STATE_NAME and complete weights: they
# appear only through the final rename of a fully written temporary folder (prefixed TEMPORARY_PREFIX, which the
# pattern never matches).
CHECKPOINT_PATTERN = re.compile(r"(step|epoch)_(\d+)")
TRAINER_STATE_NAME = "trainer_state.json"
# The model weights in a checkpoint, as `Accelerator.save_state` names them (safetensors, or torch's format).
CHECKPOINT_WEIGHTS_NAMES = ("model.safetensors", "pytorch_model.bin")
RESULTS_NAME = "all_results.json"
PREDICTIONS_NAME = "eval_predictions.json"
BEST_MODEL_DIR = "best_model"
DEBUG_DIR = "debug"
# Model inputs a collated batch holds; the other keys (ids, timing) are for post-processing and bookkeeping.
MODEL_INPUT_NAMES = ("input_features", "feature_attention_mask", "clip_features", "labels")
# `mixed_precision` values that Accelerate knows (None: the launcher's or the Accelerate config's choice).
MIXED_PRECISION_MODES = (None, "no", "fp16", "bf16", "fp8")
# A random crop is redrawn this many times when it keeps no action (ActionFormer redraws too); then the last is used.
MAX_CROP_TRIALS = 10


def check_tracker(report_to: str) -> None:
    r"""
    Refuse a tracker that the run could not log to. Accelerate itself skips a tracker whose package is missing with
    only a debug message, so a run with `--with_tracking` would otherwise record nothing without a word.

    Args:
        report_to (`str`):
            An Accelerate tracker name (`tensorboard`, `wandb`, ...), or `all` for every installed one.

    Raises:
        `ValueError`: if `report_to` is not a tracker name, or if the tracker's package is not installed (naming the
        install command).
    """
    try:
        tracker = LoggerType(report_to)
    except ValueError:
        trackers = [tracker.value for tracker in LoggerType]
        raise ValueError(f"`--report_to` must be one of {trackers}, got {report_to!r}.") from None
    if tracker is LoggerType.ALL or tracker in get_available_trackers():
        return
    # tensorboard is the tracker this package tests and installs with its `tracking` extra
    install = 'pip install -e ".[tracking]"' if tracker is LoggerType.TENSORBOARD else f"pip install {report_to}"
    raise ValueError(
        f"`--with_tracking --report_to {report_to}` needs the {report_to} package, which is not installed: "
        f"`{install}`."
    )


@dataclass
class ZeetadTrainingArguments:
    """Arguments of [`train`]; every field is also a command-line flag of `examples/train.py`."""

    output_dir: str = field(
        metadata={"help": "Where checkpoints, the final model, processor and results are written."}
    )
    per_device_train_batch_size: int = field(default=2, metadata={"help": "Videos per training batch per process."})
    per_device_eval_batch_size: int = field(default=1, metadata={"help": "Videos per evaluation batch per process."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak AdamW learning rate (after warm-up)."})
    text_adapter_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Learning rate of the CLIP text adapters (`text_encoder.*`); defaults to `learning_rate`."},
    )
    weight_decay: float = field(
        default=0.05, metadata={"help": "AdamW weight decay of matrices; biases, norms and scalars get none."}
    )
    num_train_epochs: int = field(default=30, metadata={"help": "Number of passes over the training videos."})
    max_train_steps: int | None = field(
        default=None, metadata={"help": "Total optimizer steps; overrides `num_train_epochs` when set."}
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Batches accumulated before each optimizer step."}
    )
    lr_scheduler_type: str = field(
        default="cosine", metadata={"help": "A `transformers.get_scheduler` name: cosine, linear, constant, ..."}
    )
    num_warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up optimizer steps."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm; 0 disables clipping."})
    seed: int = field(default=42, metadata={"help": "Seed of the data order, random crops and dropout."})
    max_units: int | None = field(
        default=None,
        metadata={
            "help": "Training crop length in feature units: longer videos are cut to a random window of this many "
            "units (ActionFormer's `max_seq_len`). None trains on whole videos."
        },
    )
    crop_overlap_threshold: float = field(
        default=0.5,
        metadata={
            "help": "A cropped action is kept when at least this fraction of it lies inside the crop "
            "(ActionFormer's `trunc_thresh`); kept actions are clipped to the crop."
        },
    )
    eval_max_units: int | None = field(
        default=None,
        metadata={
            "help": "Evaluation runs longer videos as overlapping windows of this many units, merged before NMS "
            "(as the pipeline does). None evaluates whole videos."
        },
    )
    eval_window_overlap: float = field(default=0.25, metadata={"help": "Overlap fraction of evaluation windows."})
    fixed_num_units: int | None = field(
        default=None,
        metadata={
            "help": "Resize every video (training and evaluation) to this many units by linear interpolation, as TAD "
            "methods on ActivityNet do (e.g. 192); detections map back to exact seconds. Saved with the processor. "
            "None keeps each video's own length (or the length a continued model's processor fixes)."
        },
    )
    tiou_thresholds: list[float] | None = field(
        default=None, metadata={"help": "tIoU thresholds of the mAP; default 0.3:0.1:0.7 (THUMOS14)."}
    )
    max_segments_per_video: int = field(default=200, metadata={"help": "Detections kept per video after Soft-NMS."})
    nms_sigma: float = field(default=0.5, metadata={"help": "Gaussian Soft-NMS sigma."})
    multiclass_nms: bool = field(
        default=True,
        metadata={
            "help": "Soft-NMS per class (THUMOS14, the default); --no_multiclass_nms runs one class-agnostic Soft-NMS "
            "(ActivityNet)."
        },
    )
    voting_threshold: float = field(
        default=0.0, metadata={"help": "Class-agnostic NMS only: segment voting IoU (0 disables voting)."}
    )
    actionness_weight: float | None = field(
        default=None,
        metadata={
            "help": "Exponent of the actionness in the detection score sigmoid(actionness)^w * p(class)^(1 - w); "
            "default: the value tuned for the model's classification head (0 sigmoid, 0.5 softmax)."
        },
    )
    video_fusion_top_k: int | None = field(
        default=None,
        metadata={
            "help": "Video-level fusion (off by default: the strict protocol): keep each video's k classes with the "
            "highest zero-shot video-level score of the same model (mean frame embedding against the prompts) and "
            "multiply every detection's score by its class's video-level score. Results are labelled with the "
            "protocol 'video-level fusion'; no external classifier is ever used."
        },
    )
    prompts_per_step: int | None = field(
        default=None,
        metadata={
            "help": "Class prompts per training step: the classes annotated in the batch plus negatives drawn at random "
            "from the other seen classes, up to this number (every seen class when None or larger). The text encoder "
            "runs on every prompt at every step, so with many seen classes (ActivityNet: 100-150) it dominates a step."
        },
    )
    open_vocabulary_evaluation: bool = field(
        default=False,
        metadata={
            "help": "Also measure the selected model's open-vocabulary behaviour on the evaluation videos: unseen-class "
            "mAP on the videos holding unseen classes only, generalized zero-shot mAP (seen + unseen candidates: "
            "per-group mAP and harmonic mean) and the off-list detection rate (each unseen class left out of the "
            "candidates in turn). Costs one more evaluation pass over every video, plus one per unseen class over the "
            "videos holding it; needs the evaluation set with its seen-class annotations."
        },
    )
    eval_every_n_epochs: int = field(
        default=1,
        metadata={
            "help": "Evaluate after every N-th epoch and after the last one; the other epochs only record their "
            "training loss, and `heldout_percentage` selects among the evaluated epochs. Evaluating draws no random "
            "numbers, so the training and the last epoch's results are the same for every N."
        },
    )
    heldout_percentage: float = field(
        default=0.0,
        metadata={
            "help": "Percentage of the training videos held out to select the best epoch by seen-class mAP. 0 keeps "
            "the last epoch. Unseen-class results never select anything."
        },
    )
    checkpointing_steps: str | None = field(
        default=None, metadata={"help": "Save a resumable checkpoint every N optimizer steps, or 'epoch'."}
    )
    checkpoints_total_limit: int | None = field(default=None, metadata={"help": "Keep only the newest N checkpoints."})
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "A checkpoint folder, or 'latest' for the newest complete one in `output_dir` (a fresh start "
            "when there is none)."
        },
    )
    mixed_precision: str | None = field(
        default=None,
        metadata={
            "help": "no, fp16 or bf16 (fp16 is ignored on CPU). Default: what `accelerate launch --mixed_precision` "
            "or the Accelerate config says, else no."
        },
    )
    use_cpu: bool = field(default=False, metadata={"help": "Train on CPU even when an accelerator is available."})
    dataloader_num_workers: int = field(default=0, metadata={"help": "Data loader worker processes per process."})
    with_tracking: bool = field(default=False, metadata={"help": "Log metrics to the trackers of `report_to`."})
    report_to: str = field(
        default="all", metadata={"help": "Tracker: tensorboard, wandb, ... or 'all' (with `with_tracking`)."}
    )
    debug_data_log: bool = field(
        default=False,
        metadata={
            "help": "Write debug/rank_<i>.json: world size, mixed precision, the training video ids each process saw "
            "per epoch and (main process) the video ids gathered by each evaluation."
        },
    )
    disable_tqdm: bool = field(
        default=False, metadata={"help": "Do not show the training progress bar (as transformers' Trainer)."}
    )
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the final model folder to the Hub."})
    hub_model_id: str | None = field(
        default=None, metadata={"help": "Hub repository id; defaults to the name of `output_dir`."}
    )
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the Hub repository as private."})

    @property
    def hub_repo_id(self) -> str:
        """The repository of `push_to_hub`: `hub_model_id`, or the name of `output_dir`."""
        return self.hub_model_id or os.path.basename(os.path.abspath(self.output_dir))

    def __post_init__(self):
        for name in (
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "eval_every_n_epochs",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be at least 1, got {getattr(self, name)}.")
        for name in (
            "max_units",
            "eval_max_units",
            "fixed_num_units",
            "video_fusion_top_k",
            "max_train_steps",
            "checkpoints_total_limit",
            "prompts_per_step",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"`{name}` must be None or at least 1, got {value}.")
        if self.num_train_epochs < 1 and self.max_train_steps is None:
            raise ValueError(f"`num_train_epochs` must be at least 1, got {self.num_train_epochs}.")
        if not 0.0 <= self.crop_overlap_threshold <= 1.0:
            raise ValueError(f"`crop_overlap_threshold` must be in [0, 1], got {self.crop_overlap_threshold}.")
        if not 0.0 <= self.heldout_percentage < 100.0:
            raise ValueError(f"`heldout_percentage` must be in [0, 100), got {self.heldout_percentage}.")
        if self.tiou_thresholds is not None:
            # found now, not at the end of the first epoch
            validate_tiou_thresholds(self.tiou_thresholds)
        try:
            ZeetadFeatureExtractor().temporal_windows(1, 1, self.eval_window_overlap)
        except ValueError as error:
            raise ValueError(f"`eval_window_overlap`: {error}") from None
        if self.mixed_precision not in MIXED_PRECISION_MODES:
            raise ValueError(
                f"`mixed_precision` must be one of {[mode for mode in MIXED_PRECISION_MODES if mode]} (or unset), "
                f"got {self.mixed_precision!r}."
            )
        if self.checkpointing_steps is not None and not (
            self.checkpointing_steps == "epoch"
            or (self.checkpointing_steps.isdigit() and int(self.checkpointing_steps))
        ):
            raise ValueError(
                f"`checkpointing_steps` must be a positive integer or 'epoch', got {self.checkpointing_steps!r}."
            )
        if self.with_tracking:
            # found before any data is read, not after the Accelerator silently dropped the tracker
            check_tracker(self.report_to)

    @property
    def post_processing_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of [`post_process_temporal_action_detection`] used by every evaluation."""
        kwargs = {
            "max_segments": self.max_segments_per_video,
            "nms_sigma": self.nms_sigma,
            "multiclass_nms": self.multiclass_nms,
            "voting_threshold": self.voting_threshold,
        }
        if self.actionness_weight is not None:
            kwargs["actionness_weight"] = self.actionness_weight
        if self.video_fusion_top_k is not None:
            kwargs["video_fusion_top_k"] = self.video_fusion_top_k
        return kwargs


# ---------------------------------------------------------------------------------------------------------------------
# Command line and benchmark data (shared by examples/train.py and examples/evaluate.py)
# ---------------------------------------------------------------------------------------------------------------------


def parse_arguments(parser: HfArgumentParser, argv: Sequence[str] | None = None) -> tuple:
    r"""
    Parse `[config.json] [--flag value ...]` into the parser's dataclasses: the JSON file's values first, then the
    flags, which override them (e.g. one config for the 10 splits: `config.json --split 3 --output_dir runs/split3`).

    JSON values become flags: `null` is skipped, booleans become `true`/`false`, lists become several values and
    objects become a JSON string (e.g. `config_overrides`).

    Raises:
        `FileNotFoundError`: if the config file does not exist.
        `ValueError`: naming the config file, if it is not a JSON object.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    config_argv = []
    if argv and argv[0].endswith(".json"):
        config_path = argv.pop(0)
        config = read_json(config_path, "config")
        if not isinstance(config, Mapping):
            raise ValueError(
                f"`config` file {config_path} must hold a JSON object of flags, got {type(config).__name__}."
            )
        for key, value in config.items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = [str(value).lower()]
            elif isinstance(value, list):
                value = [str(item) for item in value]
            elif isinstance(value, dict):
                value = [json.dumps(value)]
            else:
                value = [str(value)]
            config_argv += [f"--{key}", *value]
    # argparse keeps the last occurrence of an option: the command-line flags win.
    return parser.parse_args_into_dataclasses(config_argv + argv)


# ---------------------------------------------------------------------------------------------------------------------
# Benchmark data
# ---------------------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------------------
# Collate
# ---------------------------------------------------------------------------------------------------------------------


class ZeetadDataCollator:
    r"""
    Turn rows of a video dataset (the features of [`zeetad_hf.data.VIDEO_FEATURES`]) into a model batch.

    Per video: the features are read with [`~zeetad_hf.data.load_features`]; CLIP features of another length than the
    localization features are linearly resampled onto their `num_units` grid (both are assumed to span the whole
    video). With `max_units`, a video longer than that is cut to a random window of `max_units` units (ActionFormer
    style); the window is drawn from a generator seeded with `(seed, epoch, video_id)`, so it depends neither on the
    order of the batches nor on the process that loads the video. Annotations in seconds become normalised
    `(center, width)` targets over the (cropped) valid units through
    [`~zeetad_hf.segment_utils.seconds_to_normalized_segments`], the package's only seconds-to-units conversion:
    segments are clipped to the window (an uncropped video: to its feature coverage), a cropped segment is kept only
    when at least `crop_overlap_threshold` of it lies inside the window, and segments left without length are dropped.

    Args:
        class_names (`Sequence[str]`, *optional*):
            The class prompts of the batch, in prompt order; an annotation's class index is the position of its label
            here. `None` builds no `labels` (evaluation).
        max_units (`int`, *optional*):
            Crop length in units; `None` keeps whole videos.
        crop_overlap_threshold (`float`, *optional*, defaults to 0.5):
            Minimum fraction of a segment inside the crop for it to be kept.
        seed (`int`, *optional*, defaults to 0):
            Seed of the random crops.
        feature_extractor ([`ZeetadFeatureExtractor`], *optional*):
            Pads the features into a batch; defaults to a [`ZeetadFeatureExtractor`] with zero padding.

    Returns (`__call__`):
        `dict` with `input_features` `(batch_size, num_units, dim)` float32, `feature_attention_mask`
        `(batch_size, num_units)` (1 = valid, right padding), `clip_features` `(batch_size, num_units, clip_dim)` when
        the rows have a `clip_feature_path`, `labels` (with `class_names`: per video `{"class_labels": LongTensor[n],
        "segments": FloatTensor[n, 2]}`), `video_ids` (`list[str]`) and `video_metadata` (per video `fps`,
        `feature_stride`, `window_size`, `duration` and `unit_offset`, the index of the first kept unit).

    Raises:
        `ValueError`: an annotation label not in `class_names` (the training set must be filtered to the seen classes
            first), a feature file whose length differs from the row's `num_units`, or a batch mixing rows with and
            without `clip_feature_path`.
    """

    def __init__(
        self,
        class_names: Sequence[str] | None = None,
        max_units: int | None = None,
        crop_overlap_threshold: float = 0.5,
        seed: int = 0,
        feature_extractor: ZeetadFeatureExtractor | None = None,
    ):
        self.class_index = None if class_names is None else {name: index for index, name in enumerate(class_names)}
        self.max_units = max_units
        self.crop_overlap_threshold = crop_overlap_threshold
        self.seed = seed
        self.epoch = 0
        self.feature_extractor = feature_extractor if feature_extractor is not None else ZeetadFeatureExtractor()

    def set_epoch(self, epoch: int) -> None:
        """Select the crops of `epoch` (call before iterating the data loader of that epoch)."""
        self.epoch = epoch

    def _crop_window(self, video_id: str, num_units: int, edges: torch.Tensor) -> tuple[int, int]:
        """`(start, length)` in units of the window to keep; `edges` are the segments in unit-edge coordinates."""
        if self.max_units is None or num_units <= self.max_units:
            return 0, num_units
        generator = np.random.default_rng([self.seed, self.epoch, zlib.crc32(video_id.encode("utf-8"))])
        for _ in range(MAX_CROP_TRIALS):
            start = int(generator.integers(0, num_units - self.max_units + 1))
            if self._keep_mask(edges, start, self.max_units, cropped=True).any():
                break
        return start, self.max_units

    def _keep_mask(self, edges: torch.Tensor, start: int, length: int, cropped: bool) -> torch.Tensor:
        inside = (edges.clamp(start, start + length) - start).diff(dim=-1)[:, 0]
        keep = inside > 0
        if cropped:
            keep &= inside >= self.crop_overlap_threshold * edges.diff(dim=-1)[:, 0]
        return keep

    def _video_labels(self, row: Mapping[str, Any], edges: torch.Tensor, start: int, length: int) -> dict:
        cropped = length < row["num_units"]
        keep = self._keep_mask(edges, start, length, cropped).tolist()
        class_labels, segments = [], []
        for annotation, video_edges, kept in zip(row["annotations"], edges, keep):
            if annotation["label"] not in self.class_index:
                raise ValueError(
                    f"Video {row['video_id']!r} has an annotation of {annotation['label']!r}, which is not one of the "
                    f"{len(self.class_index)} class prompts; filter the dataset to these classes first "
                    "(`zeetad_hf.data.filter_to_classes`)."
                )
            if kept:
                class_labels.append(self.class_index[annotation["label"]])
                segments.append((video_edges.clamp(start, start + length) - start) / length)
        segments = torch.stack(segments) if segments else torch.zeros(0, 2, dtype=torch.float64)
        return {
            "class_labels": torch.tensor(class_labels, dtype=torch.long),
            "segments": segment_se_to_cw(segments).to(torch.float32),
        }

    def __call__(self, rows: list[Mapping[str, Any]]) -> dict[str, Any]:
        has_clip = [row["clip_feature_path"] is not None for row in rows]
        if any(has_clip) and not all(has_clip):
            raise ValueError("A batch mixes videos with and without `clip_feature_path`.")
        features, clip_features, labels, video_metadata = [], [], [], []
        for row in rows:
            localization = torch.from_numpy(load_features(row["feature_path"]))
            if localization.shape[0] != row["num_units"]:
                raise ValueError(
                    f"Video {row['video_id']!r}: {row['feature_path']} has {localization.shape[0]} units, the dataset "
                    f"row says {row['num_units']}; rebuild the dataset."
                )
            clip = None
            if row["clip_feature_path"] is not None:
                clip = torch.from_numpy(load_features(row["clip_feature_path"]))
            timing = {key: row[key] for key in ("fps", "feature_stride", "window_size")}
            # num_units, dim: the feature extractor's fixed length, or the video's own
            localization, clip, timing = self.feature_extractor.resize_to_fixed_units(localization, clip, timing)
            num_units = localization.shape[0]
            seconds = torch.tensor(
                [[annotation["start"], annotation["end"]] for annotation in row["annotations"]], dtype=torch.float64
            ).reshape(-1, 2)
            # Unit-edge coordinates: unit i spans [i, i + 1].
            edges = seconds_to_normalized_segments(seconds, num_units=num_units, **timing) * num_units
            start, length = self._crop_window(row["video_id"], num_units, edges)
            features.append(localization[start : start + length])
            if clip is not None:
                clip_features.append(resample_units(clip, num_units)[start : start + length])
            if self.class_index is not None:
                labels.append(self._video_labels(row, edges, start, length))
            video_metadata.append({**timing, "duration": row["duration"], "unit_offset": start})
        input_features, feature_attention_mask = self.feature_extractor.pad_features(features)
        batch = {
            "input_features": input_features,
            "feature_attention_mask": feature_attention_mask,
            "video_ids": [row["video_id"] for row in rows],
            "video_metadata": video_metadata,
        }
        if clip_features:
            batch["clip_features"] = self.feature_extractor.pad_features(clip_features)[0]
        if self.class_index is not None:
            batch["labels"] = labels
        return batch


# ---------------------------------------------------------------------------------------------------------------------
# Inference and evaluation (shared with examples/evaluate.py)
# ---------------------------------------------------------------------------------------------------------------------


def encode_class_prompts(processor: ZeetadProcessor, class_names: Sequence[str], device: torch.device) -> dict:
    """`input_ids` / `attention_mask` of the processor's prompt templates filled with `class_names`, on `device`."""
    encoded = processor(text=list(class_names))
    return {"input_ids": encoded["input_ids"].to(device), "attention_mask": encoded["attention_mask"].to(device)}


def _windowed_outputs(model, batch: Mapping[str, Any], index: int, text_embeds, windows) -> Any:
    """Outputs of one video run window by window and merged over the whole video (as the pipeline does)."""
    length = int(batch["feature_attention_mask"][index].sum())
    window_outputs = []
    for start, end in windows:
        clip_features = batch.get("clip_features")
        outputs = model(
            input_features=batch["input_features"][index : index + 1, start:end],
            clip_features=None if clip_features is None else clip_features[index : index + 1, start:end],
            text_embeds=text_embeds,
        )
        window_outputs.append({key: getattr(outputs, key) for key in WINDOW_OUTPUT_KEYS})
    return merge_window_outputs(window_outputs, windows, length)


def predict(
    model: torch.nn.Module,
    dataloader: DataLoader,
    class_names: Sequence[str],
    prompt_inputs: Mapping[str, torch.Tensor],
    accelerator: Accelerator,
    post_processing_kwargs: Mapping[str, Any] | None = None,
    max_units: int | None = None,
    window_overlap: float = 0.25,
    gathered_video_ids: list | None = None,
) -> dict[str, list[dict]]:
    r"""
    Detect `class_names` in every video of a prepared evaluation data loader, on all processes.

    Each process post-processes its own videos; the per-video results are gathered with
    `accelerator.gather_for_metrics(..., use_gather_object=True)`, which drops the samples Accelerate repeats to give
    every process an equal number of batches, so each video is counted once.

    Args:
        model (`torch.nn.Module`):
            A (possibly wrapped) [`ZeetadForTemporalActionDetection`]; put in eval mode here.
        dataloader (`DataLoader`):
            Prepared data loader whose batches come from [`ZeetadDataCollator`] without class names.
        class_names (`Sequence[str]`):
            Candidate classes, in the order of `prompt_inputs`.
        prompt_inputs (`Mapping[str, torch.Tensor]`):
            `input_ids` and `attention_mask` of the class prompts (see [`encode_class_prompts`]).
        accelerator (`Accelerator`):
            The accelerator that prepared `model` and `dataloader`.
        post_processing_kwargs (`Mapping[str, Any]`, *optional*):
            Extra arguments of [`post_process_temporal_action_detection`] (NMS settings, `actionness_weight`, which
            defaults to the value tuned for the model's classification head).
        max_units (`int`, *optional*):
            Run videos longer than this as overlapping windows; `None` runs whole videos.
        window_overlap (`float`, *optional*, defaults to 0.25):
            Overlap fraction of the windows.
        gathered_video_ids (`list`, *optional*):
            When given, the video ids of the gathered results are appended to it in gathering order (debugging).

    Returns:
        `dict[str, list[dict]]`: ActivityNet-style results `{video_id: [{"label", "score", "segment": [start, end]}]}`
        in seconds, identical on every process.
    """
    unwrapped = accelerator.unwrap_model(model)
    feature_extractor = ZeetadFeatureExtractor()
    post_processing_kwargs = dict(post_processing_kwargs or {})
    post_processing_kwargs.setdefault(
        "actionness_weight", TUNED_ACTIONNESS_WEIGHTS[unwrapped.config.classification_head]
    )
    model.eval()
    results = {}
    with torch.no_grad():
        text_embeds = unwrapped.get_text_features(**prompt_inputs).pooler_output
        for batch in dataloader:
            lengths = batch["feature_attention_mask"].sum(-1).tolist()
            if max_units is None or max(lengths) <= max_units:
                outputs = model(
                    **{key: batch[key] for key in MODEL_INPUT_NAMES if key in batch and key != "labels"},
                    text_embeds=text_embeds,
                )
                detections = post_process_temporal_action_detection(
                    outputs, batch["video_metadata"], text_labels=class_names, **post_processing_kwargs
                )
            else:
                detections = []
                for index, (length, metadata) in enumerate(zip(lengths, batch["video_metadata"])):
                    windows = feature_extractor.temporal_windows(int(length), max_units, window_overlap)
                    detections += post_process_temporal_action_detection(
                        _windowed_outputs(model, batch, index, text_embeds, windows),
                        [metadata],
                        text_labels=class_names,
                        **post_processing_kwargs,
                    )
            records = [
                (
                    video_id,
                    [
                        {"label": label, "score": score, "segment": segment}
                        for label, score, segment in zip(
                            video["text_labels"], video["scores"].tolist(), video["segments"].tolist()
                        )
                    ],
                )
                for video_id, video in zip(batch["video_ids"], detections)
            ]
            for video_id, detections in accelerator.gather_for_metrics(records, use_gather_object=True):
                if gathered_video_ids is not None:
                    gathered_video_ids.append(video_id)
                results[video_id] = detections
    return results


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints and atomic files
# ---------------------------------------------------------------------------------------------------------------------


def _checkpoint_steps(path: str) -> int | None:
    """The completed steps of the checkpoint folder `path`, or `None` (with a warning) when it is incomplete."""
    try:
        with open(os.path.join(path, TRAINER_STATE_NAME), encoding="utf-8") as handle:
            completed_steps = json.load(handle)["completed_steps"]
        if not isinstance(completed_steps, int):
            raise ValueError(f"`completed_steps` is {completed_steps!r}")
        weights = [os.path.join(path, name) for name in CHECKPOINT_WEIGHTS_NAMES]
        if not any(os.path.isfile(weights_path) for weights_path in weights):
            raise FileNotFoundError(f"no weights ({' or '.join(CHECKPOINT_WEIGHTS_NAMES)})")
        if os.path.isfile(weights[0]):
            check_safetensors_file(weights[0])
    except (OSError, ValueError, KeyError, TypeError) as error:
        checkpoint_logger.warning(f"{path} is not a complete checkpoint and is not resumed from ({error}).")
        return None
    return completed_steps


def list_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, str]]:
    """Complete checkpoints of `output_dir` as `(completed_steps, path)`, oldest first.

    A folder counts only if its name is `step_<n>` or `epoch_<n>`, it holds a readable `trainer_state.json` and its
    model weights are complete (`model.safetensors` with a header that covers the file, or `pytorch_model.bin`);
    temporary folders of an interrupted save (`.tmp-...`) never match. A folder with the name of a checkpoint that
    fails these checks is skipped with a warning.
    """
    if not os.path.isdir(output_dir):
        return []
    checkpoints = []
    for entry in os.scandir(output_dir):
        if entry.is_dir() and CHECKPOINT_PATTERN.fullmatch(entry.name):
            completed_steps = _checkpoint_steps(entry.path)
            if completed_steps is not None:
                checkpoints.append((completed_steps, entry.path))
    return sorted(checkpoints)


def find_latest_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The complete checkpoint of `output_dir` with the most completed steps, or `None`."""
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1][1] if checkpoints else None


def _kept_checkpoint(output_dir: str) -> str:
    """What a failed save leaves to resume from, for its error message."""
    latest = find_latest_checkpoint(output_dir)
    return "no checkpoint (none was complete yet)" if latest is None else f"{latest} (the last complete checkpoint)"


def save_checkpoint(
    accelerator: Accelerator,
    output_dir: str,
    name: str,
    trainer_state: dict,
    total_limit: int | None = None,
    predictions: Mapping[str, list] | None = None,
    protocol: str = STRICT_PROTOCOL,
) -> None:
    r"""
    Save a resumable checkpoint `output_dir/name` (all processes call it): `accelerator.save_state` into the temporary
    folder `.tmp-<name>`, then `trainer_state.json` (and `eval_predictions.json`, the last evaluation's unseen-class
    detections), then one rename publishes it. A full disk raises an `OSError` ("No space left on device while writing
    ...; kept: <the last complete checkpoint>") after the temporary folder is deleted.

    Args:
        accelerator (`Accelerator`):
            The run's accelerator.
        output_dir (`str`):
            The run's output folder.
        name (`str`):
            `step_<n>` or `epoch_<n>`.
        trainer_state (`dict`):
            The loop's counters, written as `trainer_state.json`.
        total_limit (`int`, *optional*):
            Keep only the newest `total_limit` complete checkpoints.
        predictions (`Mapping[str, list]`, *optional*):
            The last evaluation's detections `{video_id: [...]}`, restored on resume.
        protocol (`str`, *optional*, defaults to `"strict"`):
            The protocol the detections were made under, recorded in their file.
    """
    final = os.path.join(output_dir, name)
    temporary = os.path.join(output_dir, f"{TEMPORARY_PREFIX}{name}")
    if accelerator.is_main_process:
        # A leftover of a killed save has the same name; it is never a checkpoint, so it can go.
        shutil.rmtree(temporary, ignore_errors=True)
        os.makedirs(temporary)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(temporary)
        # Every process writes its own random states into the folder: wait for all before publishing it.
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            write_json_atomic(os.path.join(temporary, TRAINER_STATE_NAME), trainer_state)
            if predictions is not None:
                write_json_atomic(os.path.join(temporary, PREDICTIONS_NAME), _submission(predictions, protocol))
            replace_directory(temporary, final)
    except Exception as error:
        shutil.rmtree(temporary, ignore_errors=True)
        disk_full = disk_full_error(error, temporary, _kept_checkpoint(output_dir))
        if disk_full is not None:
            raise disk_full from error
        raise
    if accelerator.is_main_process:
        if total_limit is not None:
            for _, path in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(path)
        logger.info(f"Saved checkpoint {final}")
    accelerator.wait_for_everyone()


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------


def has_accelerator() -> bool:
    """Whether a GPU (or other torch accelerator) is present.

    Without one, build the `Accelerator` with `cpu=True`: under `accelerate launch --multi_gpu --num_processes N` that
    is what makes the N CPU processes form one gloo process group; without it each process silently trains alone.
    """
    if hasattr(torch, "accelerator"):  # torch >= 2.6: CUDA, MPS, XPU, ...
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def _start_run(
    model,
    train_dataset: Dataset,
    eval_dataset: Dataset,
    seen_classes: Sequence[str],
    unseen_classes: Sequence[str],
    args: ZeetadTrainingArguments,
) -> Accelerator:
    """The run's accelerator (seeded), after the checks that would otherwise fail late: the protocol, every feature
    file's header, a writable `output_dir`, which is cleaned of what interrupted saves left in and next to it
    (see [`~zeetad_hf.file_utils.remove_interrupted_writes`]) and created, and with `push_to_hub` the Hub repository
    (created now, so that a missing token or network fails before training)."""
    accelerator = Accelerator(
        cpu=args.use_cpu or not has_accelerator(),
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=args.report_to if args.with_tracking else None,
        project_dir=args.output_dir,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
    )
    set_seed(args.seed, device_specific=True)
    _check_protocol(train_dataset, eval_dataset, seen_classes, unseen_classes, args.open_vocabulary_evaluation)
    _check_feature_files(model.config, {"train_dataset": train_dataset, "eval_dataset": eval_dataset})
    check_writable_directory(args.output_dir, "`output_dir`")
    if accelerator.is_main_process:
        cleaned = remove_interrupted_writes(args.output_dir)
        if cleaned:
            logger.info(f"Removed what interrupted saves left behind: {cleaned}")
        os.makedirs(args.output_dir, exist_ok=True)
        if args.push_to_hub:
            create_hub_repo(args.hub_repo_id, args.hub_private_repo)
    accelerator.wait_for_everyone()
    return accelerator


def _check_feature_files(config, datasets: Mapping[str, Dataset]) -> None:
    """Read the header of every feature file of `datasets` (`{name: dataset}`): present, 2-D, as many units as its row
    says, and as wide as the model takes (`config.localization_feature_dim`, CLIP features `clip_embedding_dim`)."""
    input_dim = config.localization_feature_dim or config.clip_embedding_dim
    for dataset_name, dataset in datasets.items():
        rows = dataset.select_columns(["video_id", "feature_path", "clip_feature_path", "num_units"])[:]
        shapes = check_feature_files(
            rows["feature_path"], f"`{dataset_name}` feature_path", feature_dim=input_dim, check_values=False
        )
        wrong_length = [
            f"{video_id}: {path} has {shape[0]} units, the row says {num_units}"
            for video_id, path, shape, num_units in zip(
                rows["video_id"], rows["feature_path"], shapes, rows["num_units"]
            )
            if shape[0] != num_units
        ]
        if wrong_length:
            raise ValueError(
                f"`{dataset_name}`: {len(wrong_length)} feature files changed since the dataset was built (e.g. "
                f"{wrong_length[:3]}); rebuild the dataset."
            )
        clip_paths = [path for path in rows["clip_feature_path"] if path is not None]
        if clip_paths:
            check_feature_files(
                clip_paths,
                f"`{dataset_name}` clip_feature_path",
                feature_dim=config.clip_embedding_dim,
                check_values=False,
            )


def _check_protocol(
    train_dataset: Dataset,
    eval_dataset: Dataset,
    seen_classes: Sequence[str],
    unseen_classes: Sequence[str],
    open_vocabulary_evaluation: bool,
) -> None:
    overlap = sorted(set(seen_classes) & set(unseen_classes))
    if overlap:
        raise ValueError(f"Seen and unseen classes must be disjoint; both hold {overlap}.")
    seen = set(seen_classes)
    foreign = sorted(
        {item["label"] for video in train_dataset["annotations"] for item in video if item["label"] not in seen}
    )
    if foreign:
        raise ValueError(
            f"The training set holds annotations of {len(foreign)} classes that are not seen classes (e.g. "
            f"{foreign[:5]}); the zero-shot protocol trains on seen classes only: filter it with "
            "`zeetad_hf.data.filter_to_classes(dataset, seen_classes, drop_empty=True, excluded_classes=unseen_classes)`."
        )
    unseen = set(unseen_classes)
    if not any(item["label"] in unseen for video in eval_dataset["annotations"] for item in video):
        # Found now rather than after the first epoch: the evaluator has no class to score.
        raise ValueError("The evaluation set holds no annotation of the unseen classes: there is nothing to score.")
    if open_vocabulary_evaluation and not any(
        item["label"] in seen for video in eval_dataset["annotations"] for item in video
    ):
        raise ValueError(
            "`open_vocabulary_evaluation` needs the evaluation videos with their seen-class annotations (for the "
            "generalized zero-shot mAP and to find the videos holding unseen classes only), but the evaluation set "
            "holds none: pass it unfiltered."
        )


def _optimizer(model: torch.nn.Module, args: ZeetadTrainingArguments) -> torch.optim.AdamW:
    """AdamW over the trainable parameters: no weight decay on biases, norms and scalars; own LR for text adapters."""
    groups: dict[tuple[bool, bool], list] = {}
    # By role first (CLIP's pretrained weights are never optimised, whatever their `requires_grad`), then only what
    # the caller left trainable.
    for name, parameter in model.named_trainable_parameters():
        if parameter.requires_grad:
            groups.setdefault((name.startswith("text_encoder."), parameter.ndim >= 2), []).append(parameter)
    text_learning_rate = args.text_adapter_learning_rate or args.learning_rate
    return torch.optim.AdamW(
        [
            {
                "params": parameters,
                "lr": text_learning_rate if is_text else args.learning_rate,
                "weight_decay": args.weight_decay if decays else 0.0,
            }
            for (is_text, decays), parameters in sorted(groups.items())
        ],
        lr=args.learning_rate,
    )


def _dataloader(dataset, collator, batch_size: int, shuffle: bool, args: ZeetadTrainingArguments) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=collator,
        num_workers=args.dataloader_num_workers,
        # An own generator: creating an iterator (e.g. the skipping loader of a resumed epoch) draws its base seed
        # from it instead of from the global generator that dropout uses.
        generator=torch.Generator().manual_seed(args.seed),
    )


def _model_inputs(
    batch: Mapping[str, Any], prompt_inputs: Mapping[str, torch.Tensor], args: ZeetadTrainingArguments, epoch: int
) -> dict[str, Any]:
    inputs = {**{key: batch[key] for key in MODEL_INPUT_NAMES if key in batch}, **prompt_inputs}
    if args.prompts_per_step is None:
        return inputs
    # seeded by the batch's videos (as the crops), so a resumed run draws the same prompts
    video_key = zlib.crc32("\n".join(batch["video_ids"]).encode("utf-8"))
    generator = np.random.default_rng([args.seed, epoch, video_key])
    return {**inputs, **sample_training_prompts(inputs["labels"], prompt_inputs, args.prompts_per_step, generator)}


def sample_training_prompts(
    labels: Sequence[Mapping[str, torch.Tensor]],
    prompt_inputs: Mapping[str, torch.Tensor],
    num_prompts: int,
    generator: np.random.Generator,
) -> dict[str, Any]:
    r"""
    A subset of the class prompts for one training step: every class annotated in the batch (positives are never
    dropped, even when they alone exceed `num_prompts`) plus negatives drawn without replacement from the other
    classes until there are `num_prompts`, in the original class order; the labels are re-indexed into the subset.

    Args:
        labels (`Sequence[Mapping[str, torch.Tensor]]`):
            Per video, `"class_labels"` (indices into the full prompt list) and `"segments"`.
        prompt_inputs (`Mapping[str, torch.Tensor]`):
            `input_ids` and `attention_mask` of every class, first dimension `num_classes`.
        num_prompts (`int`):
            Number of prompts to keep.
        generator (`np.random.Generator`):
            Draws the negatives.

    Returns:
        `dict`: `input_ids` and `attention_mask` of the kept classes and `labels` with re-indexed `class_labels`.
    """
    num_classes = prompt_inputs["input_ids"].shape[0]
    present = sorted({int(index) for video_labels in labels for index in video_labels["class_labels"].tolist()})
    others = np.setdiff1d(np.arange(num_classes), present)
    num_negatives = min(max(num_prompts - len(present), 0), len(others))
    negatives = generator.choice(others, size=num_negatives, replace=False).tolist()
    kept = sorted(present + negatives)
    kept_tensor = torch.tensor(kept, device=prompt_inputs["input_ids"].device)
    new_index = torch.full((num_classes,), -1, dtype=torch.long)
    new_index[kept] = torch.arange(len(kept))
    remapped = [
        {
            **video_labels,
            "class_labels": new_index[video_labels["class_labels"].cpu()].to(video_labels["class_labels"].device),
        }
        for video_labels in labels
    ]
    return {
        "input_ids": prompt_inputs["input_ids"][kept_tensor],
        "attention_mask": prompt_inputs["attention_mask"][kept_tensor],
        "labels": remapped,
    }


def _write_debug_log(args: ZeetadTrainingArguments, accelerator: Accelerator, debug_log: dict) -> None:
    directory = os.path.join(args.output_dir, DEBUG_DIR)
    os.makedirs(directory, exist_ok=True)
    write_json_atomic(os.path.join(directory, f"rank_{accelerator.process_index}.json"), debug_log)


def train(
    model: torch.nn.Module,
    processor: ZeetadProcessor,
    train_dataset: Dataset,
    eval_dataset: Dataset,
    seen_classes: Sequence[str],
    unseen_classes: Sequence[str],
    args: ZeetadTrainingArguments,
    model_card: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    r"""
    Train ZEETAD on the seen classes of a zero-shot split and evaluate it on the unseen classes after every epoch (or
    every `args.eval_every_n_epochs`-th and the last).

    Writes to `args.output_dir`: resumable checkpoints `step_<n>` / `epoch_<n>` (published atomically), the selected
    model (`save_pretrained`) with the processor, `all_results.json` (per-epoch training loss, the evaluated epochs'
    unseen-class mAP, the selected epoch and its results) and `eval_predictions.json` (the selected model's
    unseen-class detections, in the ActivityNet submission format, for `examples/evaluate.py`). The model, processor,
    results, detections and card appear together at the end, in one rename of the whole folder (its other content,
    e.g. the checkpoints, is carried over by hard links): until then the folder holds the previous run's files, if
    any, unchanged, and a kill at any moment leaves the previous folder or the new one. The last evaluation's
    detections travel in the checkpoints instead.

    Checked before the first step: the feature files' headers (present, 2-D, as many units as their rows say, as
    wide as the model takes) and that `output_dir` is writable; what interrupted saves left there (`.tmp-*`) is
    removed.

    Args:
        model ([`ZeetadForTemporalActionDetection`]):
            The model to train (e.g. from `ZeetadForTemporalActionDetection.from_clip`). Seed before building it for a
            reproducible initialisation.
        processor ([`ZeetadProcessor`] or a CLIP tokenizer):
            Its prompt templates and tokenizer encode the class names; saved with the model. A bare tokenizer is
            wrapped into a [`ZeetadProcessor`] with a default [`ZeetadFeatureExtractor`]. Its feature extractor
            takes `args.fixed_num_units` and, with `args.eval_max_units`, the evaluation windows (`max_units`,
            `window_overlap`), and sizes every video of training and evaluation.
        train_dataset ([`~datasets.Dataset`]):
            Training videos with seen-class annotations only (see [`~zeetad_hf.data.filter_to_classes`]).
        eval_dataset ([`~datasets.Dataset`]):
            Evaluation videos; every one is scored, against its annotations of `unseen_classes` only.
        seen_classes (`Sequence[str]`):
            Seen class names, the training prompts.
        unseen_classes (`Sequence[str]`):
            Unseen class names, the evaluation prompts.
        args ([`ZeetadTrainingArguments`]):
            Training settings.
        model_card (`Mapping[str, Any]`, *optional*):
            Arguments of [`~zeetad_hf.modelcard.build_model_card`] other than `results` and
            `training_hyperparameters` (e.g. `model_name`, `base_model`, `dataset_name`, `split_setting`,
            `split_indices`, `features`). When given, the card is filled with the selected epoch's unseen-class results
            and this run's hyper-parameters and written to `output_dir/README.md` (before any push to the Hub).

    Returns:
        `dict[str, Any]`: the content of `all_results.json`.
    """
    # 1. Accelerator, seeds, checks of the protocol, the feature files and the output folder
    accelerator = _start_run(model, train_dataset, eval_dataset, seen_classes, unseen_classes, args)
    if not isinstance(processor, ZeetadProcessor):
        processor = ZeetadProcessor(feature_extractor=ZeetadFeatureExtractor(), tokenizer=processor)
    seen_prompts = encode_class_prompts(processor, seen_classes, accelerator.device)
    unseen_prompts = encode_class_prompts(processor, unseen_classes, accelerator.device)

    tiou_thresholds = list(args.tiou_thresholds or THUMOS14_TIOU_THRESHOLDS)
    protocol = evaluation_protocol(args.video_fusion_top_k)

    # 2. Data: the training loader, the evaluation sets (unseen classes; optionally held-out training videos). The
    # processor saved with the model keeps the video length and the evaluation windows, so that the pipeline and
    # examples/evaluate.py run the model on inputs shaped as here.
    feature_extractor = processor.feature_extractor
    if args.fixed_num_units is not None:
        feature_extractor.fixed_num_units = args.fixed_num_units
    if args.eval_max_units is not None:
        feature_extractor.max_units, feature_extractor.window_overlap = args.eval_max_units, args.eval_window_overlap
    train_collator = ZeetadDataCollator(
        seen_classes, args.max_units, args.crop_overlap_threshold, args.seed, feature_extractor
    )
    train_dataloader, evaluation_sets = _data_loaders(
        accelerator,
        args,
        train_collator,
        (train_dataset, seen_classes, seen_prompts),
        (eval_dataset, unseen_classes, unseen_prompts),
    )

    # 3. Optimizer and schedule, prepared; a resume restores them, the model, the random states and the loop's state
    run = _prepare_run(accelerator, args, model, len(train_dataloader))
    model, steps_per_epoch, max_train_steps = run.model, run.steps_per_epoch, run.max_train_steps
    state = _resume(accelerator, args, steps_per_epoch)
    starting_epoch, resume_batches = divmod(state.completed_steps, steps_per_epoch)
    resume_batches *= args.gradient_accumulation_steps

    # 4. Train; evaluate after every `eval_every_n_epochs`-th epoch and after the last
    debug_log = {
        "num_processes": accelerator.num_processes,
        "process_index": accelerator.process_index,
        "mixed_precision": accelerator.mixed_precision,
    }
    debug_log.update(train_video_ids={}, eval_gathered_video_ids={})
    # closed on any error too, so that an error message is the last line on the terminal
    with tqdm(
        range(max_train_steps),
        initial=state.completed_steps,
        disable=args.disable_tqdm or not accelerator.is_local_main_process,
    ) as progress_bar:
        for epoch in range(starting_epoch, run.num_epochs):
            if state.completed_steps >= max_train_steps:
                break
            model.train()
            train_collator.set_epoch(epoch)
            train_dataloader.set_epoch(epoch)
            batches = train_dataloader
            if epoch == starting_epoch and resume_batches:
                batches = accelerator.skip_first_batches(train_dataloader, resume_batches)
            _train_epoch(run, state, epoch, batches, seen_prompts, progress_bar, debug_log)
            _end_epoch(run, state, epoch, evaluation_sets, processor, seen_classes, tiou_thresholds, debug_log)

    # 5. Final model, processor, predictions, results and card, published at once (then the Hub)
    history, best = state.history, state.best
    selected_epoch = (history[-1]["epoch"] if history else None) if best is None else best["epoch"]
    results = _results(
        history,
        best,
        selected_epoch,
        state.completed_steps,
        seen_classes,
        unseen_classes,
        tiou_thresholds,
        args.video_fusion_top_k,
    )
    write_results = _results_writer(results, accelerator.unwrap_model(model).config, args, model_card)
    # the selected epoch: the model in memory (the last epoch) or the saved best one
    source = None if best is None else os.path.join(args.output_dir, BEST_MODEL_DIR)
    predictions = state.last_predictions if best is None else None
    _save_model(accelerator, model, processor, args.output_dir, predictions, source, write_results, protocol)
    if args.push_to_hub and accelerator.is_main_process:
        push_folder_to_hub(args.output_dir, args.hub_repo_id, args.hub_private_repo)
    if args.debug_data_log:
        _write_debug_log(args, accelerator, debug_log)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return results


class _Run(NamedTuple):
    """The prepared training objects and the schedule's sizes, fixed for the whole run."""

    accelerator: Accelerator
    args: ZeetadTrainingArguments
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: Any
    # optimizer steps
    steps_per_epoch: int
    max_train_steps: int
    num_epochs: int


@dataclass
class _LoopState:
    """What the training loop carries from step to step: saved in every checkpoint, restored on resume."""

    completed_steps: int = 0
    # one record per finished epoch: training loss and, for evaluated epochs, their scores
    history: list[dict] = field(default_factory=list)
    # the epoch selected on held-out seen videos so far: `{"epoch", "metric"}`
    best: dict | None = None
    # this process's (loss sum, batches) in the current epoch
    loss_totals: torch.Tensor = field(default_factory=lambda: torch.zeros(2, dtype=torch.float64))
    # the last evaluation's unseen-class detections
    last_predictions: dict | None = None


def _prepare_run(accelerator: Accelerator, args: ZeetadTrainingArguments, model, num_batches: int) -> _Run:
    """Optimizer and learning-rate schedule, counted in optimizer steps of the sharded training loader (`num_batches`
    batches per epoch on this process), prepared with the model; trackers started when asked for."""
    steps_per_epoch = math.ceil(num_batches / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    optimizer = _optimizer(model, args)
    # The prepared scheduler steps once per process at every optimizer step, hence the factors.
    lr_scheduler = get_scheduler(
        args.lr_scheduler_type,
        optimizer=optimizer,
        num_warmup_steps=args.num_warmup_steps * accelerator.num_processes,
        num_training_steps=max_train_steps * accelerator.num_processes,
    )
    model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
    if args.with_tracking:
        accelerator.init_trackers("zeetad", config={k: v for k, v in asdict(args).items() if not isinstance(v, list)})
    return _Run(accelerator, args, model, optimizer, lr_scheduler, steps_per_epoch, max_train_steps, num_epochs)


def _train_epoch(
    run: _Run,
    state: _LoopState,
    epoch: int,
    batches: Iterable[dict],
    seen_prompts: Mapping[str, torch.Tensor],
    progress_bar: tqdm,
    debug_log: dict,
) -> None:
    """Train on one epoch's `batches` (those left of it after a resume) until the epoch or `max_train_steps` ends,
    checkpointing at the steps asked for, except a step that ends the epoch (see [`_end_epoch`])."""
    accelerator, args, model = run.accelerator, run.args, run.model
    for batch in batches:
        if args.debug_data_log:
            debug_log["train_video_ids"].setdefault(str(epoch), []).extend(batch["video_ids"])
        with accelerator.accumulate(model):
            loss = model(**_model_inputs(batch, seen_prompts, args, epoch)).loss
            accelerator.backward(loss)
            if accelerator.sync_gradients and args.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            run.optimizer.step()
            run.lr_scheduler.step()
            run.optimizer.zero_grad()
        state.loss_totals += torch.tensor([loss.item(), 1.0], dtype=torch.float64)
        if not accelerator.sync_gradients:
            continue
        state.completed_steps += 1
        progress_bar.update(1)
        progress_bar.set_postfix(loss=f"{loss.item():.4f}")
        if args.with_tracking:
            accelerator.log(
                {"train_loss": loss.item(), "lr": run.lr_scheduler.get_last_lr()[0]}, step=state.completed_steps
            )
        if state.completed_steps >= run.max_train_steps:
            break
        # A step that ends the epoch is checkpointed after the epoch's evaluation.
        if _is_checkpoint_step(args, state.completed_steps) and state.completed_steps % run.steps_per_epoch:
            _save_loop_checkpoint(run, state, f"step_{state.completed_steps}", epoch)


def _end_epoch(
    run: _Run,
    state: _LoopState,
    epoch: int,
    evaluation_sets: list["_EvaluationSet"],
    processor: ZeetadProcessor,
    seen_classes: Sequence[str],
    tiou_thresholds: list[float],
    debug_log: dict,
) -> None:
    """Close an epoch: its record (mean training loss; scores and model selection when it is evaluated: every
    `eval_every_n_epochs`-th epoch and the last), its log line, and its checkpoint when one is due."""
    accelerator, args = run.accelerator, run.args
    loss_sum, num_batches = _collective(accelerator, state.loss_totals, accelerator.reduce).tolist()
    record = {"epoch": epoch, "completed_steps": state.completed_steps, "train_loss": loss_sum / max(num_batches, 1)}
    last_epoch = epoch == run.num_epochs - 1 or state.completed_steps >= run.max_train_steps
    if last_epoch or (epoch + 1) % args.eval_every_n_epochs == 0:
        predictions = _evaluate_epoch(
            run.model, evaluation_sets, accelerator, args, tiou_thresholds, record, debug_log
        )
        state.last_predictions = predictions["eval_unseen"]
        state.best = _select_epoch(
            record,
            predictions,
            state.best,
            last_epoch,
            run.model,
            processor,
            evaluation_sets[0],
            seen_classes,
            accelerator,
            args,
        )
    _log_epoch(record, accelerator, args)
    state.history.append(record)
    state.loss_totals.zero_()
    if args.checkpointing_steps == "epoch":
        _save_loop_checkpoint(run, state, f"epoch_{epoch}", epoch + 1)
    elif _is_checkpoint_step(args, state.completed_steps):
        _save_loop_checkpoint(run, state, f"step_{state.completed_steps}", epoch + 1)


def _save_loop_checkpoint(run: _Run, state: _LoopState, name: str, next_epoch: int) -> None:
    """Save the checkpoint `name` (see [`save_checkpoint`]) with the loop's state; a resume starts at `next_epoch`."""
    accelerator, args = run.accelerator, run.args
    trainer_state = {
        "completed_steps": state.completed_steps,
        "epoch": next_epoch,
        "steps_per_epoch": run.steps_per_epoch,
        "num_processes": accelerator.num_processes,
        "history": state.history,
        "best": state.best,
        # one (loss sum, batches) row per process, restored by each on resume
        "epoch_loss_totals": _collective(accelerator, state.loss_totals[None], accelerator.gather).tolist(),
    }
    protocol = evaluation_protocol(args.video_fusion_top_k)
    save_checkpoint(
        accelerator,
        args.output_dir,
        name,
        trainer_state,
        args.checkpoints_total_limit,
        state.last_predictions,
        protocol,
    )


def _data_loaders(
    accelerator: Accelerator,
    args: ZeetadTrainingArguments,
    train_collator: "ZeetadDataCollator",
    seen: tuple[Dataset, Sequence[str], Mapping[str, torch.Tensor]],
    unseen: tuple[Dataset, Sequence[str], Mapping[str, torch.Tensor]],
) -> tuple[DataLoader, list["_EvaluationSet"]]:
    """The prepared training loader and evaluation sets from `(dataset, classes, prompt inputs)` of the training
    videos and of the evaluation videos: the unseen classes on the evaluation videos, and with `heldout_percentage`
    the seen classes on that share of the training videos (held out from training)."""
    (train_dataset, seen_classes, seen_prompts), (eval_dataset, unseen_classes, unseen_prompts) = seen, unseen
    heldout_dataset = None
    if args.heldout_percentage > 0:
        split = train_dataset.train_test_split(test_size=args.heldout_percentage / 100, seed=args.seed, shuffle=True)
        train_dataset, heldout_dataset = split["train"], split["test"]
    train_dataloader = accelerator.prepare(
        _dataloader(train_dataset, train_collator, args.per_device_train_batch_size, True, args)
    )
    evaluation_sets = [_EvaluationSet("eval_unseen", eval_dataset, unseen_classes, unseen_prompts)]
    if heldout_dataset is not None:
        evaluation_sets.append(_EvaluationSet("heldout_seen", heldout_dataset, seen_classes, seen_prompts))
    for evaluation in evaluation_sets:
        collator = ZeetadDataCollator(feature_extractor=train_collator.feature_extractor)
        loader = _dataloader(evaluation.dataset, collator, args.per_device_eval_batch_size, False, args)
        evaluation.dataloader = accelerator.prepare(loader)
    return train_dataloader, evaluation_sets


def _select_epoch(
    record: dict,
    predictions: Mapping[str, dict],
    best: dict | None,
    last_epoch: bool,
    model,
    processor: ZeetadProcessor,
    unseen_evaluation: "_EvaluationSet",
    seen_classes: Sequence[str],
    accelerator: Accelerator,
    args: ZeetadTrainingArguments,
) -> dict | None:
    """Save the model when the evaluated epoch's held-out seen-class mAP is the best so far, and measure the
    open-vocabulary behaviour of an epoch that may end up selected. Returns the (possibly new) best epoch."""
    new_best = "heldout_seen" in record and (best is None or record["heldout_seen"]["average_mAP"] > best["metric"])
    if new_best:
        best = {"epoch": record["epoch"], "metric": record["heldout_seen"]["average_mAP"]}
        best_dir = os.path.join(args.output_dir, BEST_MODEL_DIR)
        _save_model(
            accelerator,
            model,
            processor,
            best_dir,
            predictions["eval_unseen"],
            protocol=evaluation_protocol(args.video_fusion_top_k),
        )
    # measured on the epoch that may end up selected: every new best, or the last epoch without selection
    if args.open_vocabulary_evaluation and (new_best or (last_epoch and "heldout_seen" not in record)):
        record["open_vocabulary"] = _open_vocabulary_record(
            model, unseen_evaluation, predictions["eval_unseen"], seen_classes, processor, accelerator, args
        )
    return best


def _log_epoch(record: dict, accelerator: Accelerator, args: ZeetadTrainingArguments) -> None:
    """Log an epoch's training loss and, when it was evaluated, its unseen-class average mAP."""
    logged = {"epoch_train_loss": record["train_loss"]}
    message = f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}"
    if "eval_unseen" in record:
        logged["eval_unseen_average_mAP"] = record["eval_unseen"]["average_mAP"]
        message += f", unseen-class average mAP {logged['eval_unseen_average_mAP']:.4f}"
    logger.info(message)
    if args.with_tracking:
        accelerator.log(logged, step=record["completed_steps"])


def _results_writer(results: dict[str, Any], config, args: ZeetadTrainingArguments, model_card) -> Callable:
    """The writer of `all_results.json` and of the model card (when asked) into a folder (see [`_save_model`])."""

    def write(folder: str) -> None:
        write_json_atomic(os.path.join(folder, RESULTS_NAME), results)
        if model_card is not None:
            # a checkpoint with its CLIP vision tower takes video files: the card says so unless told otherwise
            described = {
                "reads_video": config.vision_config is not None,
                "classification_head": config.classification_head,
            }
            _write_model_card({**described, **model_card}, results, args, folder)

    return write


def _resume(accelerator: Accelerator, args: ZeetadTrainingArguments, steps_per_epoch: int) -> _LoopState:
    """Load `args.resume_from_checkpoint` (model, optimizer, scheduler, random states) and return the loop's state
    saved with it (with the last evaluation's unseen-class detections); a fresh state without a checkpoint."""
    checkpoint = args.resume_from_checkpoint
    if checkpoint == "latest":
        checkpoint = find_latest_checkpoint(args.output_dir)
        if checkpoint is None:
            logger.info(f"No checkpoint in {args.output_dir}: starting from scratch.")
    if checkpoint is None:
        return _LoopState()
    state = read_json(os.path.join(checkpoint, TRAINER_STATE_NAME), "resume_from_checkpoint")
    if state["steps_per_epoch"] != steps_per_epoch or state["num_processes"] != accelerator.num_processes:
        raise ValueError(
            f"Checkpoint {checkpoint} was written with {state['steps_per_epoch']} steps per epoch on "
            f"{state['num_processes']} processes, this run has {steps_per_epoch} on {accelerator.num_processes}: "
            "resume with the same data, batch size, accumulation and number of processes."
        )
    accelerator.load_state(checkpoint)
    predictions_path = os.path.join(checkpoint, PREDICTIONS_NAME)
    predictions = None
    if os.path.isfile(predictions_path):
        predictions = read_json(predictions_path, "resume_from_checkpoint")["results"]
    logger.info(f"Resumed from {checkpoint} at step {state['completed_steps']}.")
    return _LoopState(
        completed_steps=state["completed_steps"],
        history=state["history"],
        best=state["best"],
        loss_totals=torch.tensor(state["epoch_loss_totals"][accelerator.process_index], dtype=torch.float64),
        last_predictions=predictions,
    )


def _results(
    history: list[dict],
    best: dict | None,
    selected_epoch: int | None,
    completed_steps: int,
    seen_classes: Sequence[str],
    unseen_classes: Sequence[str],
    tiou_thresholds: list[float],
    video_fusion_top_k: int | None,
) -> dict[str, Any]:
    """The content of `all_results.json`: the selected epoch's results and the per-epoch history, with the protocol
    that every mAP of the file was measured under."""
    selected = next((record for record in history if record["epoch"] == selected_epoch), None)
    return {
        "protocol": evaluation_protocol(video_fusion_top_k),
        "video_fusion_top_k": video_fusion_top_k,
        "model_selection": "heldout_seen_average_mAP" if best is not None else "last_epoch",
        "selected_epoch": selected_epoch,
        "completed_steps": completed_steps,
        "seen_classes": list(seen_classes),
        "unseen_classes": list(unseen_classes),
        "tiou_thresholds": tiou_thresholds,
        "train_loss": selected["train_loss"] if selected else None,
        "eval_unseen_mAP": selected["eval_unseen"]["mAP"] if selected else None,
        "eval_unseen_average_mAP": selected["eval_unseen"]["average_mAP"] if selected else None,
        "open_vocabulary": selected.get("open_vocabulary") if selected else None,
        "epochs": history,
    }


def _evaluate_epoch(
    model,
    evaluation_sets: list,
    accelerator: Accelerator,
    args: ZeetadTrainingArguments,
    tiou_thresholds,
    record,
    debug_log,
) -> dict[str, dict]:
    """Predict on every evaluation set (all processes) and add the scores to `record` (every process gets them);
    returns the predictions of each set."""
    predictions = {}
    for evaluation in evaluation_sets:
        gathered_ids = [] if args.debug_data_log and evaluation.name == "eval_unseen" else None
        predictions[evaluation.name] = predict(
            model,
            evaluation.dataloader,
            evaluation.classes,
            evaluation.prompt_inputs,
            accelerator,
            args.post_processing_kwargs,
            args.eval_max_units,
            args.eval_window_overlap,
            gathered_ids,
        )
        if gathered_ids is not None:
            debug_log["eval_gathered_video_ids"][str(record["epoch"])] = gathered_ids
        if accelerator.is_main_process:
            record[evaluation.name] = score_predictions(
                evaluation.ground_truth, predictions[evaluation.name], evaluation.classes, tiou_thresholds
            )
    # Every process needs the scores (model selection): they were computed on the main process only.
    record.update(broadcast_object_list([record], from_process=0)[0])
    return predictions


def _open_vocabulary_record(
    model,
    evaluation: "_EvaluationSet",
    unseen_predictions: Mapping[str, list],
    seen_classes: Sequence[str],
    processor: ZeetadProcessor,
    accelerator: Accelerator,
    args: ZeetadTrainingArguments,
) -> dict[str, Any]:
    """The `open_vocabulary` metrics of [`ZeetadTrainingArguments`] on the unseen-class evaluation set (all processes
    predict, the main process scores, every process gets the result)."""
    unseen_classes = list(evaluation.classes)
    thresholds = list(args.tiou_thresholds or THUMOS14_TIOU_THRESHOLDS)

    def detect(classes: Sequence[str], dataloader: DataLoader) -> dict[str, list]:
        prompts = encode_class_prompts(processor, classes, accelerator.device)
        return predict(
            model,
            dataloader,
            classes,
            prompts,
            accelerator,
            args.post_processing_kwargs,
            args.eval_max_units,
            args.eval_window_overlap,
        )

    generalized = detect(list(seen_classes) + unseen_classes, evaluation.dataloader)
    off_list = {}
    # with a single unseen class, leaving it out leaves no candidate
    if len(unseen_classes) >= 2:
        for left_out, loader in _class_dataloaders(evaluation, accelerator, args).items():
            candidates = [name for name in unseen_classes if name != left_out]
            off_list[left_out] = detect(candidates, loader) if loader is not None else {}
    report = None
    if accelerator.is_main_process:
        report = open_vocabulary_report(
            evaluation.ground_truth,
            unseen_predictions,
            generalized,
            off_list,
            seen_classes,
            unseen_classes,
            thresholds,
        )
    return broadcast_object_list([report], from_process=0)[0]


@dataclass
class _EvaluationSet:
    """One per-epoch evaluation: videos, candidate classes and their prompts; the loader is added once prepared."""

    name: str
    dataset: Dataset
    classes: Sequence[str]
    prompt_inputs: Mapping[str, torch.Tensor]
    dataloader: DataLoader | None = None
    ground_truth: dict[str, Any] = field(init=False)
    # per candidate class, a prepared loader of the videos holding it (None: no video does); built on first use
    class_dataloaders: dict[str, DataLoader | None] | None = None

    def __post_init__(self):
        self.ground_truth = to_ground_truth(self.dataset)


def _class_dataloaders(
    evaluation: _EvaluationSet, accelerator: Accelerator, args: ZeetadTrainingArguments
) -> dict[str, DataLoader | None]:
    """Per class of `evaluation`, a prepared loader of the videos annotated with it (`None` without any): an off-list
    rate counts the left-out class's instances only, so its pass needs just those videos. Prepared once per training."""
    if evaluation.class_dataloaders is None:
        # the ground truth lists the videos in dataset order
        videos = evaluation.ground_truth["database"].values()
        video_labels = [{item["label"] for item in video["annotations"]} for video in videos]
        evaluation.class_dataloaders = {}
        for name in evaluation.classes:
            holding = [index for index, labels in enumerate(video_labels) if name in labels]
            loader = _dataloader(
                evaluation.dataset.select(holding),
                evaluation.dataloader.collate_fn,
                args.per_device_eval_batch_size,
                False,
                args,
            )
            evaluation.class_dataloaders[name] = accelerator.prepare(loader) if holding else None
    return evaluation.class_dataloaders


def _is_checkpoint_step(args: ZeetadTrainingArguments, completed_steps: int) -> bool:
    every = args.checkpointing_steps
    return every not in (None, "epoch") and completed_steps % int(every) == 0


def _collective(accelerator: Accelerator, tensor: torch.Tensor, operation) -> torch.Tensor:
    """`operation` (`accelerator.gather` or `accelerator.reduce`) of a CPU float64 tensor, result on the CPU."""
    if accelerator.num_processes == 1:
        # Nothing to exchange (this also spares MPS, which has no float64, a copy).
        return tensor
    return operation(tensor.to(accelerator.device)).cpu()


def _submission(results: Mapping[str, list], protocol: str) -> dict[str, Any]:
    """The ActivityNet submission format, with the protocol the detections were made under (read by evaluate.py)."""
    return {"version": "zeetad_hf", "protocol": protocol, "external_data": {"used": False}, "results": dict(results)}


def _staging_folder(accelerator: Accelerator, directory: str) -> tuple[str, bool]:
    """The folder that [`_save_model`] writes the new files to, the same on every process, and whether it can be
    published by one rename: `.tmp-<name>` next to `directory`, or `directory/.tmp-save` (files published one by one)
    where `directory` cannot be renamed (a mount point, e.g. a volume) or no folder can be created next to it."""
    staging, atomic = temporary_sibling(directory), True
    if accelerator.is_main_process:
        reason = f"{directory} is a mount point" if os.path.ismount(directory) else None
        if reason is None:
            shutil.rmtree(staging, ignore_errors=True)
            try:
                os.makedirs(staging)
            except OSError as error:
                reason = f"cannot create {staging} ({error.strerror or error})"
        if reason is not None:
            logger.warning(
                f"{reason}: {directory} is written file by file, not atomically; a kill during the save can leave it "
                "with a mix of old and new files."
            )
            staging, atomic = os.path.join(directory, f"{TEMPORARY_PREFIX}save"), False
            shutil.rmtree(staging, ignore_errors=True)
            os.makedirs(staging)
    if accelerator.num_processes > 1:
        staging, atomic = broadcast_object_list([staging, atomic], from_process=0)
    return staging, atomic


def _publish_model_files(staging: str, directory: str, atomic: bool) -> None:
    """Make the new files of `staging` the content of `directory`, keeping what else `directory` holds."""
    new_entries = os.listdir(staging)
    if atomic:
        new_weights = any(is_weights_file(name) for name in new_entries)

        def belongs_to_the_old_model(name: str) -> bool:
            # weights of another layout (e.g. shards), and detections that the new model did not make
            return name == PREDICTIONS_NAME or (new_weights and is_weights_file(name))

        if os.path.isdir(directory):
            # checkpoints, best_model/, logs, ...: hard links, so nothing is copied
            link_missing_entries(directory, staging, skip=belongs_to_the_old_model)
        try:
            replace_directory(staging, directory)
            return
        except OSError as error:
            # a folder that cannot be renamed (e.g. a bind mount of the same file system)
            if error.errno not in (errno.EBUSY, errno.EXDEV):
                raise
            logger.warning(
                f"{directory} cannot be renamed ({error.strerror}): it is written file by file, not atomically; a "
                "kill during the save can leave it with a mix of old and new files."
            )
    # the fallback: new files replace old ones one by one (each rename is atomic, the whole is not)
    for name in new_entries:
        shutil.move(os.path.join(staging, name), os.path.join(directory, name))
    shutil.rmtree(staging)


def _save_model(
    accelerator: Accelerator,
    model,
    processor: ZeetadProcessor,
    directory: str,
    predictions: Mapping[str, list] | None = None,
    source: str | None = None,
    write_extra: Callable[[str], None] | None = None,
    protocol: str = STRICT_PROTOCOL,
) -> None:
    r"""
    Publish a model folder (all processes call it; the main one writes): the final model in `output_dir` or
    `best_model/`. The new files (the unwrapped model exported with its code and `auto_map`
    ([`~zeetad_hf.export_for_remote_code`]), or the files of the folder `source`, then
    the processor, `eval_predictions.json` and what `write_extra(folder)` writes) go to the empty folder `.tmp-<name>`
    next to `directory`; everything else `directory` holds (checkpoints, `best_model/`, logs) is carried over by hard
    links; then the complete folder replaces `directory` in one rename ([`replace_directory`]). A reader, or a kill at
    any moment, sees the previous folder or the new one. A full disk raises an `OSError` naming what was kept.

    Args:
        accelerator (`Accelerator`):
            The run's accelerator.
        model:
            The (possibly wrapped) model, saved unless `source` is given.
        processor ([`ZeetadProcessor`]):
            Saved with the model (unless `source` is given, whose files include it).
        directory (`str`):
            The folder to publish.
        predictions (`Mapping[str, list]`, *optional*):
            Unseen-class detections, written as `eval_predictions.json` (a previous one is never carried over: it
            belongs to another model).
        source (`str`, *optional*):
            A saved model folder (`best_model/`) whose files are published instead of the in-memory model.
        write_extra (`Callable[[str], None]`, *optional*):
            Writes more files into the folder it is given (results, model card).
        protocol (`str`, *optional*, defaults to `"strict"`):
            The protocol `predictions` were made under, recorded in their file.
    """
    accelerator.wait_for_everyone()
    staging, atomic = _staging_folder(accelerator, directory)
    accelerator.wait_for_everyone()
    try:
        if source is None:
            # with its code and `auto_map`: the folder (and its push) also loads where zeetad_hf is not installed
            export_for_remote_code(
                accelerator.unwrap_model(model), processor, staging, is_main_process=accelerator.is_main_process
            )
        if accelerator.is_main_process:
            if source is not None:
                link_missing_entries(source, staging)
            if predictions is not None:
                write_json_atomic(os.path.join(staging, PREDICTIONS_NAME), _submission(predictions, protocol))
            if write_extra is not None:
                write_extra(staging)
            _publish_model_files(staging, directory, atomic)
    except Exception as error:
        if accelerator.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
        kept = f"the previous {directory} (unchanged)" if atomic else f"{directory} (partly rewritten)"
        disk_full = disk_full_error(error, staging, kept)
        if disk_full is not None:
            raise disk_full from error
        raise
    accelerator.wait_for_everyone()


def _write_model_card(card_arguments: Mapping[str, Any], results: Mapping[str, Any], args, folder: str) -> None:
    """Fill the model card from this run's selected unseen-class results and hyper-parameters; write it to `folder`."""
    measured = None
    if results["eval_unseen_mAP"] is not None:
        measured = {
            "tiou_thresholds": results["tiou_thresholds"],
            "mAP": results["eval_unseen_mAP"],
            "average_mAP": results["eval_unseen_average_mAP"],
        }
    hyperparameters = {
        name: getattr(args, name)
        for name in (
            "learning_rate",
            "weight_decay",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "num_train_epochs",
            "lr_scheduler_type",
            "num_warmup_steps",
            "max_grad_norm",
            "max_units",
            "seed",
        )
    }
    hyperparameters["model_selection"] = results["model_selection"]
    card = build_model_card(
        **card_arguments, results=measured, training_hyperparameters=hyperparameters, protocol=results["protocol"]
    )
    save_model_card(card, folder)


@contextmanager
def _hub_errors_as_oserror(failure: str) -> Iterator[None]:
    """Turn what a failed Hub request raises into one `OSError` that starts with `failure`."""
    from huggingface_hub.errors import HfHubHTTPError

    # huggingface_hub's own errors (an HTTP error status, no token, offline mode) are `OSError`s, but a connection
    # that fails (refused, unknown host, timeout) raises its HTTP library's error, which is not. That library is httpx
    # or httpx2 depending on the huggingface_hub version; `HfHubHTTPError` derives from its base error.
    try:
        yield
    except (OSError, HfHubHTTPError.__bases__[0]) as error:
        raise OSError(f"{failure} ({type(error).__name__}: {error})") from error


def create_hub_repo(repo_id: str, private: bool = False) -> str:
    r"""
    Create the Hub repository of a push, or find it if it exists. [`train`] calls it before the first step when
    `push_to_hub` is set, so that a missing token or network fails at once rather than after training.

    Args:
        repo_id (`str`):
            Repository id, with or without the namespace.
        private (`bool`, *optional*, defaults to `False`):
            Create the repository as private.

    Returns:
        `str`: the full repository id.

    Raises:
        `OSError`: naming the repository, when the Hub cannot be reached or refuses (no token or a rejected one).
    """
    from huggingface_hub import HfApi

    with _hub_errors_as_oserror(f"could not create or find the Hub repository {repo_id!r}"):
        return HfApi().create_repo(repo_id, private=private, exist_ok=True).repo_id


def push_folder_to_hub(folder: str | os.PathLike, repo_id: str | None = None, private: bool = False) -> str:
    r"""
    Upload a finished model folder to the Hub (created if needed), without its checkpoints and scratch folders.

    Args:
        folder (`str` or `os.PathLike`):
            The model folder (what [`train`] leaves in `output_dir`).
        repo_id (`str`, *optional*):
            Hub repository; defaults to the folder's name in your namespace.
        private (`bool`, *optional*, defaults to `False`):
            Create the repository as private.

    Returns:
        `str`: the full repository id.

    Raises:
        `OSError`: naming the folder and the repository, when the upload fails (no network, no token or a rejected
        one, ...); the folder is left as it is.
    """
    from huggingface_hub import HfApi

    api = HfApi()
    repo_id = repo_id or os.path.basename(os.path.abspath(folder))
    with _hub_errors_as_oserror(f"could not push {folder} to the Hub repository {repo_id!r}; the folder is kept"):
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            commit_message="End of training",
            ignore_patterns=["step_*", "epoch_*", f"{TEMPORARY_PREFIX}*", f"{BEST_MODEL_DIR}/*", f"{DEBUG_DIR}/*"],
        )
    return repo_id


__all__ = [
    "ZeetadDataCollator",
    "ZeetadTrainingArguments",
    "check_tracker",
    "create_hub_repo",
    "encode_class_prompts",
    "find_latest_checkpoint",
    "has_accelerator",
    "list_checkpoints",
    "parse_arguments",
    "predict",
    "push_folder_to_hub",
    "sample_training_prompts",
    "save_checkpoint",
    "train",
]
