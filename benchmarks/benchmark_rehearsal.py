"""Scale rehearsal: one THUMOS14 and one ActivityNet zero-shot split, trained for one epoch and evaluated, on random
features of the real shapes and lengths: time per epoch, evaluation time and peak memory on this CPU, and an ESTIMATE
of the same on one GPU.

What runs: `examples/train.py` itself (its `main`, unchanged) with the shipped recipe of each benchmark
(`examples/configs/thumos14_i3d_clip.json`, `examples/configs/activitynet_tsp_clip.json`, read at run time: batch
sizes, crops, windows, `fixed_num_units`, `config_overrides`, prompt templates, NMS, tIoU thresholds, checkpointing),
split 0 of the 75_25 setting and `--num_train_epochs 1`, so `zeetad_hf.training.train` trains one epoch on the seen
classes and then evaluates the unseen classes, as a real run's first epoch does. Apart from that (and
`--max_train_steps`, below) only paths differ from a real run: features, CLIP folder, output folder.

Data: every video of the training and evaluation subsets of the real annotation files (`--annotation_dir`:
`thumos14.json`; `anet_anno_action.json` + `anet_video_info.csv`) gets a random float16 `.npy` feature file with its
real id and the number of units that the real features have, estimated from the annotations by
`zeetad_hf.query_coverage.videos_from_ground_truth` (THUMOS14 I3D: per-video fps, stride 4, window 16, 2048-d;
ActivityNet TSP: 15 fps, stride 16, window 16, 512-d), plus a 512-d CLIP feature file of the same length. The
loader reads float16 files as float32, as it reads real ones.

Model: `ZeetadForTemporalActionDetection.from_clip` on a randomly initialised CLIP text tower of ViT-B/16 size
(transformers' `CLIPTextConfig` defaults: 12 layers, width 512, 8 heads, projection 512, 49,408-token embedding; no
vision tower), with an offline tokenizer (`zeetad_hf.offline_tokenizer.build_clip_tokenizer`) over the words of the
class names and templates, so a prompt has about as many tokens as with CLIP's tokenizer. **Weights and features
are random: only time and memory mean anything; the mAP printed in the logs is meaningless.**

Measured, each benchmark in a fresh subprocess (so that peak memory is its own). The `train` that `main` calls is
wrapped to install hooks for the duration of the call: forward pre- and post-hooks on the model and its text encoder,
torch's global optimizer step hook, and a handler for `train()`'s per-epoch log line; the library is not changed:

- load: `main()` up to the `train()` call (annotation parsing, the loader's check of every feature value, the split
  filter, the model build);
- time/epoch: from the first training forward to the last optimizer step (the first batch's loading is not in it);
- eval time: from the last optimizer step to `train()`'s log line of the epoch (unseen-class prompts, every
  evaluation video loaded, run and post-processed with the recipe's windows and Soft-NMS, and the mAP);
- the rest of `train()` (checks before the loop, the epoch checkpoint, the final save) is reported as "other";
- peak RSS: the process's `VmHWM` after `train()` returns.

With `--max_steps DATASET=N` only N steps run and the epoch time is EXTRAPOLATED, printed with its formula: first
step + (steps per epoch - 1) x mean of the later steps. It is the default for ActivityNet (2 steps): every step of its
recipe runs all 150 seen-class prompts x 8 templates through the text tower (about 5.5 TFLOP, over a minute and
~14 GiB on 2 cores), so its ~450-step epoch would take hours here; its steps all have one shape (16 videos x 192
units), so a few steps give the per-step time. THUMOS14 trains its full epoch. Evaluation always covers every video.
Caveat: how long Soft-NMS takes depends on how many candidates pass the score threshold, and a model trained on
random features scores differently from a real one; `benchmarks/benchmark_nms.py` times Soft-NMS alone.

GPU ESTIMATE (never measured here): per training step (the first one, counted while it runs) and per evaluation
forward, the FLOPs counted by `torch.utils.flop_counter.FlopCounterMode` (matmuls, convolutions and attention only:
the deformable-attention sampling and element-wise ops are not counted, so this is a lower bound) divided by an
assumed sustained throughput (`--gpu_tflops`, default 20 TFLOP/s: the recipes train in float32, about 30% of an
H100's 67 TFLOP/s float32 peak), plus an assumed fixed cost per dispatched ATen op (`--gpu_op_us`, default 10 us:
kernel launch and small-kernel latency in eager mode), plus the host-side time measured here (data loading and
collation between steps; feature loading, post-processing, Soft-NMS and mAP during evaluation), which a GPU does not
speed up.

Usage:
    python benchmarks/benchmark_rehearsal.py                      # both benchmarks (~12 min on 2 idle cores)
    python benchmarks/benchmark_rehearsal.py --quick              # a few videos per benchmark (development)
    python benchmarks/benchmark_rehearsal.py --datasets thumos14 --max_steps thumos14=5
"""

# First, before anything loads torch: `import zeetad_hf` sets the package's thread policy (README "Threads").
import zeetad_hf  # noqa: F401


# isort: split
import argparse
import csv
import importlib.util
import json
import logging
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from memory import peak_rss_mib
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode
from transformers import CLIPTextConfig, CLIPTextModelWithProjection

from zeetad_hf import normalize_class_name
from zeetad_hf.data import ACTIVITYNET_TSP_FPS, BENCHMARKS, load_benchmark_ground_truth
from zeetad_hf.offline_tokenizer import build_clip_tokenizer
from zeetad_hf.query_coverage import videos_from_ground_truth
from zeetad_hf.zero_shot_splits import load_zero_shot_split


REPOSITORY = Path(__file__).resolve().parent.parent
RECIPES = {
    "thumos14": REPOSITORY / "examples" / "configs" / "thumos14_i3d_clip.json",
    "activitynet": REPOSITORY / "examples" / "configs" / "activitynet_tsp_clip.json",
}
# Per benchmark: annotation file, video-information CSV, width of the localization features and their raw timing
# (fps None: each video's own, from the annotation file) as `videos_from_ground_truth` takes it.
BENCHMARK_FILES = {
    "thumos14": {
        "annotations": "thumos14.json",
        "video_info": None,
        "feature_dim": 2048,
        "timing": {"feature_stride": 4.0, "window_size": 16.0},
    },
    "activitynet": {
        "annotations": "anet_anno_action.json",
        "video_info": "anet_video_info.csv",
        "feature_dim": 512,
        "timing": {"feature_stride": 16.0, "window_size": 16.0, "fps": ACTIVITYNET_TSP_FPS},
    },
}
# CLIP ViT-B/16 frame embeddings
CLIP_FEATURE_DIM = 512
# train()'s log line at the end of each epoch's evaluation
EPOCH_LOG = re.compile(r"\bepoch \d+: train loss")
SPLIT_SETTING = "75_25"
SPLIT = 0
# --quick: training batches per benchmark (at least 2, so that a later step is timed) and evaluation videos
QUICK_TRAIN_BATCHES = 2
QUICK_EVAL_VIDEOS = 4
# Steps run on ActivityNet unless --max_steps says otherwise (its full epoch does not fit in the 15-minute budget).
DEFAULT_MAX_STEPS = {"activitynet": 2}


# ---------------------------------------------------------------------------------------------------------------------
# Parent process: random CLIP, random features, one child per benchmark, tables
# ---------------------------------------------------------------------------------------------------------------------


def read_recipe(dataset: str) -> dict:
    with open(RECIPES[dataset], encoding="utf-8") as handle:
        return json.load(handle)


def prompt_words(recipes: dict[str, dict]) -> list[str]:
    """The words of every class name (as the processor writes them into prompts) and of every template."""
    texts = []
    for dataset, recipe in recipes.items():
        seen, unseen = load_zero_shot_split(dataset, SPLIT_SETTING, SPLIT)
        texts += [normalize_class_name(name) for name in seen + unseen]
        texts += recipe.get("prompt_templates") or []
    # CLIP's pre-tokenizer splits letters from digits and punctuation; the tokenizer lower-cases
    return sorted({word for text in texts for word in re.findall(r"[^\W\d_]+", text.lower())})


def save_random_clip(folder: Path, words: list[str]) -> dict:
    """A random CLIP text tower of ViT-B/16 size with an offline tokenizer over `words`, saved to `folder`."""
    tokenizer = build_clip_tokenizer(words)
    defaults = CLIPTextConfig()
    config = CLIPTextConfig(
        # the real embedding size (its ids are a superset of this tokenizer's)
        vocab_size=max(defaults.vocab_size, len(tokenizer)),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = CLIPTextModelWithProjection(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    shape = {key: getattr(config, key) for key in ("num_hidden_layers", "hidden_size", "projection_dim", "vocab_size")}
    return {**shape, "parameters": sum(parameter.numel() for parameter in model.parameters())}


def benchmark_videos(dataset: str, annotation_dir: Path) -> dict[str, list[dict]]:
    """Per subset (training, evaluation): the video rows with the number of units of the real features."""
    files = BENCHMARK_FILES[dataset]
    annotations = annotation_dir / files["annotations"]
    video_info = annotation_dir / files["video_info"] if files["video_info"] else None
    rows = {}
    for subset in BENCHMARKS[dataset][:2]:
        truth = load_benchmark_ground_truth(dataset, annotations, video_info, subset=subset)
        rows[subset] = videos_from_ground_truth(truth, **files["timing"])
    return rows


def quick_selection(dataset: str, rows: dict[str, list[dict]], recipe: dict) -> set[str]:
    """--quick: the first videos holding a seen class (two training batches) and an unseen one (evaluation)."""
    seen, unseen = load_zero_shot_split(dataset, SPLIT_SETTING, SPLIT)
    train_subset, eval_subset, _ = BENCHMARKS[dataset]
    wanted = {
        train_subset: (set(seen), QUICK_TRAIN_BATCHES * recipe.get("per_device_train_batch_size", 2)),
        eval_subset: (set(unseen), QUICK_EVAL_VIDEOS),
    }
    selected = set()
    for subset, (classes, count) in wanted.items():
        holding = [row["video_id"] for row in rows[subset] if any(a["label"] in classes for a in row["annotations"])]
        selected.update(holding[:count])
    return selected


def write_quick_annotations(dataset: str, annotation_dir: Path, selected: set[str], folder: Path) -> dict:
    """The annotation files restricted to `selected` (same formats), for --quick; returns the paths."""
    files = BENCHMARK_FILES[dataset]
    folder.mkdir(parents=True)
    with open(annotation_dir / files["annotations"], encoding="utf-8") as handle:
        content = json.load(handle)
    if "database" in content:
        content = {
            **content,
            "database": {key: value for key, value in content["database"].items() if key in selected},
        }
    else:
        content = {key: value for key, value in content.items() if key in selected}
    paths = {"annotations": folder / files["annotations"], "video_info": None}
    with open(paths["annotations"], "w", encoding="utf-8") as handle:
        json.dump(content, handle)
    if files["video_info"]:
        paths["video_info"] = folder / files["video_info"]
        with open(annotation_dir / files["video_info"], encoding="utf-8", newline="") as source:
            reader = csv.DictReader(source)
            kept = [row for row in reader if row["video"] in selected]
            fieldnames = reader.fieldnames
        with open(paths["video_info"], "w", encoding="utf-8", newline="") as target:
            writer = csv.DictWriter(target, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(kept)
    return paths


def write_random_features(rows: list[dict], folders: dict[str, tuple[Path, int]], seed: int = 0) -> int:
    """One float16 `(num_units, dim)` file per video and folder (`{name: (folder, dim)}`): slices at random offsets
    of one random pool per folder (the values only need to be finite). Returns the bytes written."""
    generator = np.random.default_rng(seed)
    longest = max(row["num_units"] for row in rows)
    written = 0
    for folder, dim in folders.values():
        folder.mkdir(parents=True)
        pool = generator.standard_normal((2 * longest, dim), dtype=np.float32).astype(np.float16)
        for row in rows:
            offset = int(generator.integers(0, len(pool) - row["num_units"] + 1))
            np.save(folder / f"{row['video_id']}.npy", pool[offset : offset + row["num_units"]])
            written += row["num_units"] * dim * 2
    return written


def prepare_benchmark(dataset: str, args, root: Path, clip_folder: Path) -> dict:
    """Features (and, with --quick, the reduced annotation files) of one benchmark; the child's specification."""
    recipe = read_recipe(dataset)
    files = BENCHMARK_FILES[dataset]
    rows = benchmark_videos(dataset, args.annotation_dir)
    paths = {
        "annotations": args.annotation_dir / files["annotations"],
        "video_info": args.annotation_dir / files["video_info"] if files["video_info"] else None,
    }
    if args.quick:
        selected = quick_selection(dataset, rows, recipe)
        rows = {
            subset: [row for row in subset_rows if row["video_id"] in selected] for subset, subset_rows in rows.items()
        }
        paths = write_quick_annotations(dataset, args.annotation_dir, selected, root / dataset / "annotations")
    start = time.perf_counter()
    every_video = [row for subset_rows in rows.values() for row in subset_rows]
    features = {
        "features": (root / dataset / "localization", files["feature_dim"]),
        "clip_features": (root / dataset / "clip", CLIP_FEATURE_DIM),
    }
    written = write_random_features(every_video, features)
    # steps of the epoch (one process): the training videos holding a seen class, in batches
    seen, _ = load_zero_shot_split(dataset, SPLIT_SETTING, SPLIT)
    train_rows = rows[BENCHMARKS[dataset][0]]
    num_train = sum(any(item["label"] in seen for item in row["annotations"]) for row in train_rows)
    batches = math.ceil(num_train / recipe.get("per_device_train_batch_size", 2))
    steps_per_epoch = math.ceil(batches / recipe.get("gradient_accumulation_steps", 1))
    max_steps = args.max_steps.get(dataset)
    return {
        "dataset": dataset,
        "recipe": str(RECIPES[dataset]),
        "annotations": str(paths["annotations"]),
        "video_info": None if paths["video_info"] is None else str(paths["video_info"]),
        "features": str(features["features"][0]),
        "clip_features": str(features["clip_features"][0]),
        "clip_model": str(clip_folder),
        "output_dir": str(root / dataset / "run"),
        # more steps than the epoch has would run more epochs
        "max_steps": max_steps if max_steps is not None and max_steps < steps_per_epoch else None,
        "threads": args.threads,
        "result": str(root / dataset / "result.json"),
        "feature_gib": written / 2**30,
        "feature_seconds": time.perf_counter() - start,
    }


def parse_max_steps(text: str | None) -> dict[str, int | None]:
    """`DATASET=N,...` (N = 0 or `epoch`: the full epoch) over the defaults."""
    steps = dict(DEFAULT_MAX_STEPS)
    for item in filter(None, (text or "").split(",")):
        name, _, value = item.partition("=")
        if name not in RECIPES or not (value.isdigit() or value == "epoch"):
            raise argparse.ArgumentTypeError(f"want DATASET=N or DATASET=epoch, got {item!r}")
        steps[name] = None if value in ("0", "epoch") else int(value)
    return steps


# ---------------------------------------------------------------------------------------------------------------------
# Child process: examples/train.py's main() under timing hooks, then FLOPs
# ---------------------------------------------------------------------------------------------------------------------


def load_train_example():
    """`examples/train.py` as a module (its `main`, argument dataclasses and the `train` it calls)."""
    spec = importlib.util.spec_from_file_location("zeetad_train_example", REPOSITORY / "examples" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class OpCounter:
    """Counts the ATen ops dispatched inside the block (each is at least one kernel on a GPU)."""

    def __enter__(self):
        counter = self
        self.count = 0

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                counter.count += 1
                return func(*args, **(kwargs or {}))

        self._mode = Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc_info):
        self._mode.__exit__(*exc_info)


class CostCounter:
    """`FlopCounterMode` and an [`OpCounter`] entered and left from hooks, around one piece of `train()`'s work."""

    def __init__(self):
        self.flops = self.ops = None
        self._modes = None

    def start(self) -> None:
        self._modes = (FlopCounterMode(display=False), OpCounter())
        for mode in self._modes:
            mode.__enter__()

    @property
    def running(self) -> bool:
        return self._modes is not None

    def stop(self) -> None:
        flop_mode, op_mode = self._modes
        op_mode.__exit__(None, None, None)
        flop_mode.__exit__(None, None, None)
        self.flops, self.ops, self._modes = flop_mode.get_total_flops(), op_mode.count, None


def count_flops_and_ops(function) -> tuple[int, int]:
    counter = CostCounter()
    counter.start()
    try:
        function()
    finally:
        counter.stop()
    return counter.flops, counter.ops


class TrainTimer:
    """Timestamps of one `train()` call from public hooks: the model's forward pre- and post-hooks (training forwards,
    evaluation forwards and their input shapes), the text encoder's (prompt encoding during evaluation), torch's
    global optimizer step hook (step ends) and `train()`'s per-epoch log line (end of the evaluation).

    The FLOPs and ATen ops of the first training step (forward, backward, clipping, optimizer step) and of the
    evaluation's prompt encoding are counted while they run, so that counting costs no extra step; the counting
    slows the first step a little, which the extrapolation keeps apart from the later steps."""

    def __init__(self, real_train):
        self.real_train = real_train
        self.train_forward_starts = []
        self.step_ends = []
        self.eval_forward_shapes = []
        self.eval_compute_seconds = 0.0
        self.epoch_logged = None
        self.train_called = self.train_returned = None
        self.model = self.inputs = None
        self.first_step = CostCounter()
        self.first_step_shapes = None
        self.eval_prompts = CostCounter()
        self._starts = {}

    def _pre_hook(self, module, args, kwargs):
        now = time.perf_counter()
        self._starts[id(module)] = now
        if module is self.model and module.training:
            self.train_forward_starts.append(now)
            if len(self.train_forward_starts) == 1:
                self.first_step_shapes = {key: list(kwargs[key].shape) for key in ("input_features", "input_ids")}
                self.first_step.start()
        elif module is self.model:
            self.eval_forward_shapes.append(tuple(kwargs["input_features"].shape))
        elif not module.training and self.eval_prompts.flops is None and not self.eval_prompts.running:
            self.eval_prompts.start()

    def _post_hook(self, module, args, kwargs, output):
        if module is not self.model and self.eval_prompts.running:
            self.eval_prompts.stop()
        if not module.training:
            self.eval_compute_seconds += time.perf_counter() - self._starts[id(module)]

    def _step_hook(self, optimizer, args, kwargs):
        if self.first_step.running:
            self.first_step.stop()
        self.step_ends.append(time.perf_counter())

    def __call__(self, model, processor, train_dataset, eval_dataset, seen, unseen, args, **kwargs):
        self.model = model
        self.inputs = (model, processor, train_dataset, eval_dataset, seen, unseen, args)
        handles = [register_optimizer_step_post_hook(self._step_hook)]
        for module in (model, model.text_encoder):
            handles.append(module.register_forward_pre_hook(self._pre_hook, with_kwargs=True))
            handles.append(module.register_forward_hook(self._post_hook, with_kwargs=True))
        timer = self

        class EpochLogHandler(logging.Handler):
            def emit(self, record):
                if timer.epoch_logged is None and EPOCH_LOG.search(record.getMessage()):
                    timer.epoch_logged = time.perf_counter()

        training_logger = logging.getLogger("zeetad_hf.training")
        log_handler = EpochLogHandler(logging.INFO)
        training_logger.addHandler(log_handler)
        # counting starts inside the model's forward, so the module tracker of FlopCounterMode logs (at INFO) that
        # it leaves a module it never entered; the count is not affected
        logging.getLogger("torch.utils.module_tracker").setLevel(logging.WARNING)
        self.train_called = time.perf_counter()
        try:
            return self.real_train(model, processor, train_dataset, eval_dataset, seen, unseen, args, **kwargs)
        finally:
            self.train_returned = time.perf_counter()
            training_logger.removeHandler(log_handler)
            for handle in handles:
                handle.remove()


def step_costs(timer: TrainTimer) -> dict:
    """The costs counted during `train()` (first training step, evaluation prompts) and those of one evaluation forward
    at the most frequent evaluation shape, counted here on random inputs of that shape (the counts depend on shapes
    only)."""
    model, _, _, _, _, unseen, _ = timer.inputs
    model.eval()
    batch_size, num_units, dim = shape = Counter(timer.eval_forward_shapes).most_common(1)[0][0]
    eval_inputs = {
        "input_features": torch.randn(batch_size, num_units, dim),
        "clip_features": torch.randn(batch_size, num_units, CLIP_FEATURE_DIM),
        "feature_attention_mask": torch.ones(batch_size, num_units, dtype=torch.long),
        # class embeddings as the prompt encoding gives them: one unit vector per unseen class
        "text_embeds": torch.nn.functional.normalize(
            torch.randn(len(unseen), model.config.clip_embedding_dim), dim=-1
        ),
    }
    # counted with autograd on (the same ops and FLOPs): FlopCounterMode's module tracker fails under no_grad
    eval_flops, eval_ops = count_flops_and_ops(lambda: model(**eval_inputs))
    return {
        "train_step_shape": timer.first_step_shapes["input_features"],
        "train_step_prompts": timer.first_step_shapes["input_ids"],
        "train_step_flops": timer.first_step.flops,
        "train_step_ops": timer.first_step.ops,
        "eval_forward_shape": list(shape),
        "eval_forward_flops": eval_flops,
        "eval_forward_ops": eval_ops,
        "eval_prompt_flops": timer.eval_prompts.flops,
        "eval_prompt_ops": timer.eval_prompts.ops,
    }


def units_seen(timer: TrainTimer) -> dict:
    """Units per video as the model sees them: training (resized, cropped), evaluation (resized, whole video)."""
    _, processor, train_dataset, eval_dataset, _, _, args = timer.inputs
    fixed = processor.feature_extractor.fixed_num_units

    def lengths(dataset, crop):
        units = [fixed or num_units for num_units in dataset["num_units"]]
        return [min(value, crop) if crop else value for value in units]

    train_units, eval_units = lengths(train_dataset, args.max_units), lengths(eval_dataset, None)
    return {
        "train_units_median": statistics.median(train_units),
        "train_units_max": max(train_units),
        "eval_units_median": statistics.median(eval_units),
        "eval_units_max": max(eval_units),
        "eval_window_units": args.eval_max_units,
    }


def run_case(spec: dict) -> dict:
    """One benchmark in this (fresh) process: `examples/train.py` for one epoch (or `max_steps`), then FLOPs."""
    torch.set_num_threads(spec["threads"])
    example = load_train_example()
    timer = TrainTimer(example.train)
    example.train = timer
    argv = [spec["recipe"], "--annotations", spec["annotations"], "--features", spec["features"]]
    argv += ["--clip_features", spec["clip_features"], "--clip_model", spec["clip_model"]]
    argv += ["--output_dir", spec["output_dir"], "--num_train_epochs", "1"]
    if spec["video_info"] is not None:
        argv += ["--video_info", spec["video_info"]]
    if spec["max_steps"] is not None:
        argv += ["--max_train_steps", str(spec["max_steps"])]
    started = time.perf_counter()
    example.main(argv)
    peak = peak_rss_mib()
    if timer.epoch_logged is None or not timer.step_ends or not timer.train_forward_starts:
        raise RuntimeError(
            "No training step or no per-epoch log line of train() ('epoch N: train loss ...') was seen: the hooks "
            "of this benchmark no longer match zeetad_hf.training.train."
        )
    _, _, train_dataset, eval_dataset, _, _, args = timer.inputs
    steps = timer.step_ends
    # the interval before each step's forward, after the previous step: data loading, collation, bookkeeping
    host_gaps = [forward - end for forward, end in zip(timer.train_forward_starts[1:], steps)]
    result = {
        "dataset": spec["dataset"],
        "train_videos": len(train_dataset),
        "eval_videos": len(eval_dataset),
        "batch_size": args.per_device_train_batch_size,
        "steps_per_epoch": math.ceil(
            math.ceil(len(train_dataset) / args.per_device_train_batch_size) / args.gradient_accumulation_steps
        ),
        "steps_run": len(steps),
        "load_seconds": timer.train_called - started,
        "first_step_seconds": steps[0] - timer.train_forward_starts[0],
        "later_step_seconds": [after - before for before, after in zip(steps, steps[1:])],
        "host_seconds_per_step": statistics.median(host_gaps) if host_gaps else 0.0,
        "trained_seconds": steps[-1] - timer.train_forward_starts[0],
        "eval_seconds": timer.epoch_logged - steps[-1],
        "eval_compute_seconds": timer.eval_compute_seconds,
        "eval_forwards": len(timer.eval_forward_shapes),
        "train_call_seconds": timer.train_returned - timer.train_called,
        "peak_rss_mib": peak,
        **units_seen(timer),
    }
    result["other_seconds"] = result["train_call_seconds"] - result["trained_seconds"] - result["eval_seconds"]
    result.update(step_costs(timer))
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------------


def mean_later_step(result: dict) -> float:
    """Mean seconds of the steps after the first (the first, with warm-up and FLOP counting, when it is alone)."""
    later = result["later_step_seconds"]
    return statistics.fmean(later) if later else result["first_step_seconds"]


def epoch_seconds(result: dict) -> tuple[float, str | None]:
    """The measured epoch, or its extrapolation from the steps run and the formula used."""
    if result["steps_run"] >= result["steps_per_epoch"]:
        return result["trained_seconds"], None
    estimate = result["first_step_seconds"] + (result["steps_per_epoch"] - 1) * mean_later_step(result)
    later = f"mean of steps 2-{result['steps_run']}" if result["later_step_seconds"] else "no later step: the first"
    formula = (
        f"{result['dataset']}: EXTRAPOLATED epoch = first step {result['first_step_seconds']:.1f} s + "
        f"({result['steps_per_epoch']} - 1) steps x {mean_later_step(result):.2f} s ({later}) = {estimate:.0f} s"
    )
    return estimate, formula


def duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def gpu_estimate(result: dict, tflops: float, op_microseconds: float) -> dict:
    """ESTIMATED seconds on one GPU: FLOPs / throughput + ops x per-op cost, plus the host-side time measured here."""

    def device_seconds(flops: float, ops: float) -> float:
        return flops / (tflops * 1e12) + ops * op_microseconds * 1e-6

    step = device_seconds(result["train_step_flops"], result["train_step_ops"])
    # every evaluation forward at the most frequent shape (the last window of a video is shorter: an upper bound)
    forward = device_seconds(result["eval_forward_flops"], result["eval_forward_ops"])
    prompts = device_seconds(result["eval_prompt_flops"] or 0, result["eval_prompt_ops"] or 0)
    train_host = result["steps_per_epoch"] * result["host_seconds_per_step"]
    eval_host = max(result["eval_seconds"] - result["eval_compute_seconds"], 0.0)
    return {
        "epoch": result["steps_per_epoch"] * step + train_host,
        "train_host": train_host,
        "eval": result["eval_forwards"] * forward + prompts + eval_host,
        "eval_host": eval_host,
    }


def shape_text(shape: list[int]) -> str:
    return "x".join(map(str, shape))


def report(results: list[dict], prepared: list[dict], clip_shape: dict, args, wall_seconds: float) -> None:
    print(
        f"\ntorch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs; split {SPLIT} of "
        f"{SPLIT_SETTING}; random CLIP text tower ({clip_shape['num_hidden_layers']} layers, width "
        f"{clip_shape['hidden_size']}, projection {clip_shape['projection_dim']}, "
        f"{clip_shape['parameters'] / 1e6:.1f}M parameters){'; --quick: a few videos each' if args.quick else ''}"
    )
    print("RANDOM weights and features: only time and memory are measured; the mAP in the logs means nothing.\n")
    print(
        "| dataset | videos train / eval | steps/epoch (batch) | units/video train, median / max | "
        "units/video eval, median / max | eval forwards | load | s/step | time/epoch | eval time | other | peak RSS |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    formulas = []
    for result in results:
        epoch, formula = epoch_seconds(result)
        if formula:
            formulas.append(formula)
        steps = f"{result['steps_per_epoch']:,} ({result['batch_size']})"
        windows = f" (windows of {result['eval_window_units']})" if result["eval_window_units"] else ""
        if result["steps_run"] < result["steps_per_epoch"]:
            steps += f", {result['steps_run']} run"
        print(
            f"| {result['dataset']} | {result['train_videos']:,} / {result['eval_videos']:,} | {steps} "
            f"| {result['train_units_median']:g} / {result['train_units_max']:g} "
            f"| {result['eval_units_median']:g} / {result['eval_units_max']:g}{windows} | {result['eval_forwards']:,} "
            f"| {duration(result['load_seconds'])} | {mean_later_step(result):.2f} "
            f"| {duration(epoch)}{' (extrapolated)' if formula else ''} | {duration(result['eval_seconds'])} "
            f"| {duration(result['other_seconds'])} | {result['peak_rss_mib'] / 1024:.2f} GiB |"
        )
    for formula in formulas:
        print(f"\n{formula}")
    print(
        "\nunits/video: as the model sees them (train: resized to `fixed_num_units`, cropped to `max_units`; eval: "
        "resized, whole video, run in windows of `eval_max_units`). load = examples/train.py main() before train() "
        "(annotations, value check of every feature file, split filter, model). s/step = mean of the steps after the "
        "first (the first one also counts FLOPs). time/epoch = first training forward -> last optimizer step. eval "
        "time = last step -> train()'s epoch log line. other = the rest of train() (checks, epoch checkpoint, final "
        "save). peak RSS = VmHWM of the benchmark's own process."
    )
    for spec in prepared:
        print(
            f"setup, not timed above: {spec['dataset']} random features, {spec['feature_gib']:.2f} GiB written in "
            f"{spec['feature_seconds']:.0f} s"
        )

    print(
        f"\nExpected on one GPU: ESTIMATE, NOT MEASURED. Device time = FLOPs / {args.gpu_tflops:g} TFLOP/s (assumed "
        "sustained float32 throughput, the recipes' precision: ~30% of an H100's 67 TFLOP/s float32 peak) + ATen ops "
        f"x {args.gpu_op_us:g} us (assumed launch/latency cost per op, eager mode; ops counted on this CPU, where "
        "AdamW runs one op per parameter tensor rather than foreach kernels); plus the host-side time measured on "
        "this CPU, which a GPU does not speed up (training: data loading and collation between steps; evaluation: "
        "feature loading, window merging, post-processing, Soft-NMS and the mAP). FlopCounterMode counts matmuls, "
        "convolutions and attention only (not the deformable-attention sampling): FLOPs are a lower bound.\n"
    )
    print(
        "| dataset | train step input; prompts | GFLOP / ATen ops per step | eval forward input | "
        "GFLOP / ATen ops per forward | epoch ESTIMATE (host part) | eval ESTIMATE (host part) |"
    )
    print("|---|---|---|---|---|---|---|")
    for result in results:
        estimate = gpu_estimate(result, args.gpu_tflops, args.gpu_op_us)
        print(
            f"| {result['dataset']} | {shape_text(result['train_step_shape'])}; "
            f"{shape_text(result['train_step_prompts'])} tokens "
            f"| {result['train_step_flops'] / 1e9:,.0f} / {result['train_step_ops']:,} "
            f"| {shape_text(result['eval_forward_shape'])} "
            f"| {result['eval_forward_flops'] / 1e9:,.1f} / {result['eval_forward_ops']:,} "
            f"| ~{duration(estimate['epoch'])} ({duration(estimate['train_host'])}) "
            f"| ~{duration(estimate['eval'])} ({duration(estimate['eval_host'])}) |"
        )
    print(
        "\nprompts: classes x templates x tokens of the first step (every seen class unless the recipe sets "
        "`prompts_per_step`); the evaluation encodes the unseen classes once, which the eval ESTIMATE includes."
    )
    print(f"\nwall time of this benchmark, setup included: {duration(wall_seconds)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="thumos14,activitynet", help="comma-separated: thumos14, activitynet")
    parser.add_argument(
        "--annotation_dir",
        type=Path,
        default=REPOSITORY.parent / "shared" / "data" / "annotations",
        help="folder of thumos14.json, anet_anno_action.json and anet_video_info.csv",
    )
    parser.add_argument("--quick", action="store_true", help="a few videos per benchmark (development)")
    parser.add_argument(
        "--max_steps",
        type=parse_max_steps,
        default=parse_max_steps(None),
        help=f"DATASET=N,...: run N steps and extrapolate the epoch (DATASET=epoch: all); default {DEFAULT_MAX_STEPS}",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--gpu_tflops", type=float, default=20.0, help="assumed sustained GPU throughput, TFLOP/s")
    parser.add_argument("--gpu_op_us", type=float, default=10.0, help="assumed GPU cost per ATen op, microseconds")
    parser.add_argument("--work_dir", help="where the temporary features and runs go (default: the system's)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary features and runs")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.case is not None:
        with open(args.case, encoding="utf-8") as handle:
            spec = json.load(handle)
        result = run_case(spec)
        with open(spec["result"], "w", encoding="utf-8") as handle:
            json.dump(result, handle)
        return

    datasets = [name for name in args.datasets.split(",") if name]
    unknown = sorted(set(datasets) - set(RECIPES))
    if unknown:
        parser.error(f"--datasets: unknown {unknown}, expected some of {sorted(RECIPES)}")
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="zeetad-rehearsal-", dir=args.work_dir))
    try:
        recipes = {dataset: read_recipe(dataset) for dataset in datasets}
        clip_shape = save_random_clip(root / "clip", prompt_words(recipes))
        prepared, results = [], []
        for dataset in datasets:
            # written here, so that generating them does not count in the measured process's memory
            spec = prepare_benchmark(dataset, args, root, root / "clip")
            prepared.append(spec)
            spec_path = root / dataset / "spec.json"
            with open(spec_path, "w", encoding="utf-8") as handle:
                json.dump(spec, handle)
            print(f"{dataset}: {spec['feature_gib']:.2f} GiB of random features; training ...", file=sys.stderr)
            subprocess.run([sys.executable, __file__, "--case", str(spec_path)], check=True)
            with open(spec["result"], encoding="utf-8") as handle:
                results.append(json.load(handle))
            # the next benchmark's files need the disk and page cache more than these
            if not args.keep:
                shutil.rmtree(root / dataset)
        report(results, prepared, clip_shape, args, time.perf_counter() - started)
    finally:
        if args.keep:
            print(f"\nkept: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
