"""The offline quickstart: a generated video world, a small CLIP pretrained on it, zero-shot ZEETAD training on the seen
classes and evaluation on the unseen ones (strict protocol), beside baselines trained and scored the same way.

Stages, each cached in its own folder of `output_dir` under the hash of the settings it depends on (a changed
setting rebuilds that stage and every later one; `force=True` rebuilds everything):

1. `world/`: mp4 videos, ActivityNet-style `annotations.json`, `split.json` ([`~zeetad_hf.synthetic_world`]).
2. `clip/`: a small CLIP pretrained on captioned still images of the world ([`~zeetad_hf.clip_pretraining`]; each
   step's batch in `gradient_shards` parts computed side by side, same results on any number of cores); it renders
   its own images, so with more cores than `num_threads` it pretrains in a thread while stage 1 writes the videos
   (same results as one after the other).
3. `features/`: CLIP frame embeddings of every video through the processor's frame preprocessing and the model's
   vision tower ([`~zeetad_hf.frame_embedding.extract_video_features`]), one video per `num_threads` cores at a
   time (each embedded as alone).
4. `runs/<variant>/`: [`~zeetad_hf.training.train`] on the seen classes, evaluated on the unseen classes with the
   open-vocabulary measures of [`~zeetad_hf.evaluation.open_vocabulary_report`], for each variant of `VARIANTS`:
   `random_text` (fixed random class embeddings in place of the text encoder: chance), `frozen` (CLIP text encoder,
   no adapters), `lora`, `bottleneck`, and the ablations `bottleneck_softmax` (softmax head) and
   `bottleneck_detached` (no classification gradient into localization); then `results.json` / `results.md`, the
   table. With more cores than `num_threads`, the variants train side by side in worker processes (one per
   `num_threads` cores; same numbers as one after another).
5. `detections.json` / `timeline.png`: `pipeline("zero-shot-temporal-action-detection")` with the `bottleneck` model
   (the paper's adapters, fixed in advance: no variant is chosen by its unseen-class score) on a held-out video that
   holds unseen-class actions, with the unseen class names as candidate labels, plotted beside the ground truth.

`runs/bottleneck/` is a Hub-ready model folder: model, processor and a model card (`README.md`) filled with its
measured unseen-class results; [`push_quickstart_model`] uploads it (`push_to_hub=True` does so after the run, and
`zeetad quickstart --push_to_hub` after printing the results; cached stages are not rebuilt for that).
[`quickstart_summary`] says where every artefact is and sets each demo detection beside its ground truth.
"""

import hashlib
import json
import multiprocessing
import os
import shutil
import threading
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import CLIPTokenizer
from transformers.modeling_outputs import BaseModelOutputWithPooling

from . import __version__
from .clip_pretraining import (
    FAST_CLIP_PRETRAINING,
    ClipPretrainingConfig,
    frame_feature_extractor,
    run_clip_pretraining,
)
from .data import filter_to_classes, load_activitynet_style, to_ground_truth
from .evaluation import score_predictions
from .file_utils import atomic_write, write_json_atomic
from .frame_embedding import extract_video_features
from .modeling_zeetad import ZeetadForTemporalActionDetection
from .post_processing_zeetad import evaluation_protocol
from .processing_zeetad import ZeetadProcessor
from .segment_utils import pairwise_segment_iou
from .synthetic_world import (
    PROMPT_TEMPLATE,
    RENDERING_VERSION,
    WorldConfig,
    fast_world_config,
    generate_world,
    run_in_threads,
)
from .training import (
    ZeetadDataCollator,
    ZeetadTrainingArguments,
    encode_class_prompts,
    predict,
    push_folder_to_hub,
    train,
)
from .video_utils import units_for_duration
from .visualization import plot_timeline, validate_ground_truth


# The [`ZeetadConfig`] fields of each variant of the comparison, on top of `QuickstartSettings.model_overrides` (the
# random-text baseline never runs its text encoder: fixed random class embeddings stand in for the prompts).
VARIANTS = {
    "random_text": {"text_adapter_type": None},
    "frozen": {"text_adapter_type": None},
    "lora": {"text_adapter_type": "lora"},
    "bottleneck": {"text_adapter_type": "bottleneck"},
    # ablations of the bottleneck model: the softmax head; classification detached from localization
    "bottleneck_softmax": {"text_adapter_type": "bottleneck", "classification_head": "softmax"},
    "bottleneck_detached": {"text_adapter_type": "bottleneck", "classification_segment_gradient": False},
}
STAGE_SETTINGS_NAME = "stage_settings.json"
# The variant of the pipeline demo, whose run folder gets a model card and is the one pushed to the Hub.
MODEL_VARIANT = "bottleneck"
# Classes per video kept by the video-level fusion line of the table (a round number, not tuned).
FUSION_TOP_K = 2
MODEL_NAME = "zeetad-quickstart-bottleneck"
# Epochs of every variant's training (`--fast`: fewer); also the evaluation interval, so that a training evaluates
# after its last epoch only.
TRAINING_EPOCHS = 12


@dataclass(frozen=True)
class QuickstartSettings:
    r"""
    Every setting of a quickstart run.

    Args:
        world ([`WorldConfig`]):
            The generated world.
        clip ([`ClipPretrainingConfig`]):
            The small CLIP and its pretraining.
        sampling_fps (`float`, *optional*, defaults to 2.0):
            Temporal units per second of video (frames embedded per second).
        model_overrides (`dict`, *optional*):
            [`ZeetadConfig`] fields of the ZEETAD model built with `from_clip`.
        training (`dict`, *optional*):
            [`ZeetadTrainingArguments`] fields (other than `output_dir`).
        variants (`tuple[str, ...]`, *optional*, defaults to all of `VARIANTS`):
            Variants to train and score (keys of `VARIANTS`).
        num_threads (`int`, *optional*, defaults to 1):
            torch's intra-op threads during the run (restored afterwards). The numbers depend on it, since it sets
            the summation order of every reduction: a fixed count gives the same table on machines with any number
            of cores. One thread was about as fast as two on 2 cores and does not slow down when another process
            shares the CPU.
    """

    world: WorldConfig = field(default_factory=WorldConfig)
    clip: ClipPretrainingConfig = field(default_factory=ClipPretrainingConfig)
    sampling_fps: float = 2.0
    model_overrides: dict[str, Any] = field(
        default_factory=lambda: {
            "d_model": 64,
            "num_attention_heads": 4,
            "num_feature_levels": 3,
            "encoder_layers": 2,
            "decoder_layers": 2,
            "encoder_ffn_dim": 128,
            "decoder_ffn_dim": 128,
            "num_queries": 16,
            "semantic_adapter_dim": 32,
            "text_adapter_bottleneck_dim": 16,
            "lora_rank": 4,
            "lora_alpha": 8,
            "dropout": 0.0,
        }
    )
    training: dict[str, Any] = field(
        default_factory=lambda: {
            "per_device_train_batch_size": 4,
            # 8 padded (masked) videos per forward pass: evaluation 2.4x faster than one at a time, the same detections
            # but for the last float bits (seed 0: scores within 2e-6, every mAP equal to all digits)
            "per_device_eval_batch_size": 8,
            "learning_rate": 1e-3,
            "num_train_epochs": TRAINING_EPOCHS,
            # evaluated after the last epoch only (the table reads the last epoch): the same models and table as with
            # an evaluation after every epoch (evaluating draws no random numbers), ~15% less CPU per variant
            "eval_every_n_epochs": TRAINING_EPOCHS,
            "num_warmup_steps": 10,
            "weight_decay": 0.01,
            "use_cpu": True,
            "seed": 0,
            "open_vocabulary_evaluation": True,
        }
    )
    variants: tuple[str, ...] = tuple(VARIANTS)
    num_threads: int = 1

    def __post_init__(self):
        unknown = [variant for variant in self.variants if variant not in VARIANTS]
        if unknown or not self.variants:
            raise ValueError(f"`variants` must be a non-empty subset of {list(VARIANTS)}, got {list(self.variants)}.")
        if isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int) or self.num_threads < 1:
            raise ValueError(f"`num_threads` must be a positive integer, got {self.num_threads!r}.")


def fast_settings() -> QuickstartSettings:
    """Settings of `--fast` (the test suite's run): the small world, a short CLIP pretraining, 8 epochs per variant,
    and three variants: chance and the bottleneck model with each classification head."""
    clip = replace(FAST_CLIP_PRETRAINING, num_images=1024, num_steps=150)
    settings = QuickstartSettings(
        world=fast_world_config(), clip=clip, variants=("random_text", "bottleneck", "bottleneck_softmax")
    )
    return replace(settings, training={**settings.training, "num_train_epochs": 8})


def with_seed(settings: QuickstartSettings, seed: int) -> QuickstartSettings:
    """`settings` with every seed set to `seed`: the world (videos and seen/unseen split), the CLIP pretraining and
    the ZEETAD training (initialisation, data order, crops)."""
    return replace(
        settings,
        world=replace(settings.world, seed=seed),
        clip=replace(settings.clip, seed=seed),
        training={**settings.training, "seed": seed},
    )


def _stage_key(*parts: Any) -> str:
    """A short hash of the JSON of everything a stage depends on."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _stage_is_current(directory: Path, key: str, force: bool) -> bool:
    """Whether `directory` holds a finished stage built with `key`; otherwise it is emptied for a rebuild."""
    marker = directory / STAGE_SETTINGS_NAME
    if not force and marker.exists() and json.loads(marker.read_text())["key"] == key:
        return True
    if directory.exists():
        shutil.rmtree(directory)
    return False


def _finish_stage(directory: Path, key: str, settings: Any) -> None:
    # written last: a stage interrupted before this point is rebuilt by the next run
    write_json_atomic(directory / STAGE_SETTINGS_NAME, {"key": key, "settings": settings})


class RandomTextZeetad(ZeetadForTemporalActionDetection):
    """ZEETAD whose class embeddings are fixed random unit vectors (one per prompt): the chance baseline.

    Everything else (localization, semantic adapter, training, post-processing) is unchanged, so the gap to the
    other variants is what the pretrained text encoder contributes.
    """

    def get_text_features(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None
    ) -> BaseModelOutputWithPooling:
        # num_classes, ... -> num_classes, flattened tokens; the same prompt always gets the same vector
        flat_ids = input_ids.reshape(input_ids.shape[0], -1).cpu().numpy()
        vectors = [
            torch.from_numpy(
                np.random.default_rng(zlib.crc32(ids.tobytes())).standard_normal(self.config.clip_embedding_dim)
            )
            for ids in flat_ids
        ]
        return BaseModelOutputWithPooling(
            pooler_output=F.normalize(torch.stack(vectors).float().to(input_ids.device), dim=-1)
        )


def _extract_features(
    world_dir: Path, clip_dir: Path, feature_dir: Path, sampling_fps: float, num_workers: int
) -> None:
    """Embed every video's frames with the CLIP vision tower as loaded into ZEETAD (the pipeline's own path),
    `num_workers` videos at a time (torch computes each on its calling thread: every file is as embedded alone)."""
    clip_model = ZeetadForTemporalActionDetection.from_clip(str(clip_dir), load_vision=True)
    clip_model.eval()
    extractor = frame_feature_extractor(clip_model.config.vision_config.image_size)
    extractor.sampling_fps = sampling_fps
    videos = sorted(str(path) for path in (world_dir / "videos").glob("*.mp4"))

    def embed(path: str) -> None:
        extract_video_features([path], str(feature_dir), extractor, clip_model.get_clip_features, 256)

    progress = lambda paths: tqdm(paths, desc="3/5 frame embeddings", unit="video")  # noqa: E731
    run_in_threads(embed, videos, num_workers, progress)


def processor_for_world(clip_dir: Path, world: WorldConfig, sampling_fps: float) -> ZeetadProcessor:
    """The processor saved with every model: the world's frame size and sampling rate, the CLIP's tokenizer."""
    extractor = frame_feature_extractor(world.frame_size)
    extractor.sampling_fps = sampling_fps
    return ZeetadProcessor(extractor, CLIPTokenizer.from_pretrained(clip_dir), prompt_templates=(PROMPT_TEMPLATE,))


def _model_card_arguments(settings: QuickstartSettings, seen: list[str], unseen: list[str]) -> dict[str, Any]:
    """[`~zeetad_hf.modelcard.build_model_card`] arguments of the quickstart model (the results come from training)."""
    return {
        "model_name": MODEL_NAME,
        # The small CLIP exists only in this run's `clip/` folder: no Hub id to name as `base_model`.
        "base_model": None,
        "base_model_description": "a small CLIP pretrained from scratch by `zeetad quickstart` on captioned still "
        "images of the world that show no unseen-class action",
        "dataset_name": "synthetic_world",
        "seen_classes": seen,
        "unseen_classes": unseen,
        "features": f"small CLIP frame embeddings at {settings.sampling_fps:g} fps",
    }


def _world_datasets(settings: "QuickstartSettings", paths: dict[str, Path]):
    """The world's training and validation videos with their frame embeddings (units of `1 / sampling_fps` s)."""
    return load_activitynet_style(
        paths["world"] / "annotations.json",
        paths["features"],
        fps=settings.sampling_fps,
        feature_stride=1,
        window_size=1,
    )


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity, e.g. a container's share), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def _parallel_workers(settings: QuickstartSettings) -> int:
    """Independent jobs that fit side by side, each running torch on `settings.num_threads` threads (at least 1)."""
    return max(1, available_cores() // settings.num_threads)


def _train_variants(
    settings: QuickstartSettings,
    paths: dict[str, Path],
    seen: list[str],
    unseen: list[str],
    feature_key: str,
    force: bool,
) -> None:
    # Stage 4: train every variant whose run folder is not current. The variants are independent and each runs torch
    # on `settings.num_threads` threads, so with more cores than that they train side by side, one process per core
    # (each variant's numbers are the same either way: same code, same threads, same seeds).
    pending = []
    for variant in settings.variants:
        model_card = _model_card_arguments(settings, seen, unseen) if variant == MODEL_VARIANT else None
        # the package version too: a run trained by other model or training code must not be reused
        key_parts = (feature_key, settings.model_overrides, settings.training, variant, __version__)
        # The card is part of the folder, so its arguments are part of the key (the other variants' keys unchanged).
        run_key = _stage_key(*key_parts) if model_card is None else _stage_key(*key_parts, model_card)
        if not _stage_is_current(paths["runs"] / variant, run_key, force):
            pending.append((variant, model_card, run_key))
    done = len(settings.variants) - len(pending)
    progress = tqdm(total=len(settings.variants), initial=done, desc="4/5 training", unit="variant")
    if done:
        progress.set_postfix(cached=done)  # reused from an earlier run with the same settings
    workers = min(len(pending), _parallel_workers(settings))
    with progress:
        if workers <= 1:
            for variant, model_card, run_key in pending:
                progress.set_postfix(variant=variant)
                _train_and_finish_variant(variant, settings, paths, seen, unseen, model_card, run_key, True)
                progress.update()
            return
        progress.set_postfix(workers=workers)
        # spawned (not forked: this process holds torch's and tqdm's threads); the workers show no bars, which would
        # write over each other and over this one: training's by its argument, the libraries' (e.g. transformers'
        # weight loading) by TQDM_DISABLE, which tqdm reads when a worker imports it
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            with _environment(TQDM_DISABLE="1"):  # the workers start on submission
                futures = {
                    pool.submit(
                        _train_and_finish_variant, variant, settings, paths, seen, unseen, model_card, run_key, False
                    ): variant
                    for variant, model_card, run_key in pending
                }
            for future in as_completed(futures):
                future.result()  # a worker's error, raised here
                progress.set_postfix(variant=futures[future], workers=workers)
                progress.update()


@contextmanager
def _environment(**variables: str) -> Iterator[None]:
    """Environment variables set for the block (and the processes it starts), as before afterwards."""
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _train_and_finish_variant(
    variant: str,
    settings: QuickstartSettings,
    paths: dict[str, Path],
    seen: list[str],
    unseen: list[str],
    model_card: Mapping[str, Any] | None,
    run_key: str,
    show_progress: bool,
) -> None:
    torch.set_num_threads(settings.num_threads)  # a worker process starts with torch's default
    _train_variant(variant, settings, paths, seen, unseen, model_card, show_progress)
    _finish_stage(paths["runs"] / variant, run_key, {"model": settings.model_overrides, "training": settings.training})


def _train_variant(
    variant: str,
    settings: QuickstartSettings,
    paths: dict[str, Path],
    seen: list[str],
    unseen: list[str],
    model_card: Mapping[str, Any] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    datasets = _world_datasets(settings, paths)
    train_dataset = filter_to_classes(datasets["training"], seen, drop_empty=True, excluded_classes=unseen)
    # all annotations kept: the unseen-class mAP restricts itself, the open-vocabulary measures need the seen ones
    eval_dataset = datasets["validation"]
    torch.manual_seed(settings.training.get("seed", 0))
    model_class = RandomTextZeetad if variant == "random_text" else ZeetadForTemporalActionDetection
    model = model_class.from_clip(
        str(paths["clip"]), load_vision=True, **{**settings.model_overrides, **VARIANTS[variant]}
    )
    args = ZeetadTrainingArguments(
        output_dir=str(paths["runs"] / variant), disable_tqdm=not show_progress, **settings.training
    )
    processor = processor_for_world(paths["clip"], settings.world, settings.sampling_fps)
    return train(model, processor, train_dataset, eval_dataset, seen, unseen, args, model_card=model_card)


# The score at which the table reads the on-list and off-list detection rates.
TABLE_SCORE_THRESHOLD = 0.5


def detection_rate(result: Mapping[str, Any], kind: str, score_threshold: float = TABLE_SCORE_THRESHOLD) -> float:
    """The mean `"on_list"` or `"off_list"` instance detection rate at `score_threshold` of a variant's
    `all_results.json` (its `open_vocabulary` record)."""
    rates = result["open_vocabulary"][kind]
    return rates["mean"][rates["score_thresholds"].index(score_threshold)]


# Columns of the results table: header, and how to read the value (a fraction) from a variant's `all_results.json`.
RESULT_COLUMNS = {
    "unseen mAP, all videos": lambda result: result["eval_unseen_average_mAP"],
    "unseen mAP, unseen-only videos": lambda result: result["open_vocabulary"]["unseen_only_videos"]["average_mAP"],
    "GZSL seen mAP": lambda result: result["open_vocabulary"]["generalized"]["seen_average_mAP"],
    "GZSL unseen mAP": lambda result: result["open_vocabulary"]["generalized"]["unseen_average_mAP"],
    "GZSL harmonic mean": lambda result: result["open_vocabulary"]["generalized"]["harmonic_mean"],
    "on-list found @0.5 ↑": lambda result: detection_rate(result, "on_list"),
    "off-list named @0.5 ↓": lambda result: detection_rate(result, "off_list"),
}


def results_table(rows: dict[str, dict[str, Any]], fusion: Mapping[str, Any] | None = None) -> str:
    r"""
    A caption naming the protocol, then a Markdown table, one row per variant, in % : the unseen-class average mAP
    over all validation videos (the strict protocol's number) and over the videos holding unseen classes only; the
    generalized zero-shot average mAP of the seen and unseen classes with all classes as candidates and their harmonic
    mean; the fraction of unseen-class instances found under their own label with score >= 0.5 (tIoU >= 0.5), and the
    fraction of them still named (any label, score >= 0.5) when their class is left out of the candidates (lower is
    better). With `fusion` ([`video_fusion_result`]), a last line gives the default model's number under video-level
    fusion beside its strict one.
    """
    lines = [
        "Protocol: strict (scores as the model gives them, the last epoch; in %)",
        "",
        "| variant | head | " + " | ".join(RESULT_COLUMNS) + " |",
        "|---" * (len(RESULT_COLUMNS) + 2) + "|",
    ]
    for variant, result in rows.items():
        values = " | ".join(f"{100 * read(result):.1f}" for read in RESULT_COLUMNS.values())
        lines.append(f"| {variant} | {result['classification_head']} | {values} |")
    if fusion is not None:
        lines += [
            "",
            f"Protocol: video-level fusion ({fusion['variant']} scores times its own zero-shot video-level class "
            f"scores, top {fusion['video_fusion_top_k']} classes per video; k not tuned): unseen mAP, all videos "
            f"{100 * fusion['eval_unseen_average_mAP']:.1f} (strict: "
            f"{100 * rows[fusion['variant']]['eval_unseen_average_mAP']:.1f})",
        ]
    return "\n".join(lines)


def video_fusion_result(
    run_dir: Path,
    settings: "QuickstartSettings",
    paths: dict[str, Path],
    unseen: list[str],
    tiou_thresholds: list[float],
) -> dict[str, Any]:
    r"""
    The unseen-class mAP of the model saved in `run_dir` on every validation video under the `video-level fusion`
    protocol ([`~zeetad_hf.post_process_temporal_action_detection`] with `video_fusion_top_k=FUSION_TOP_K`), with the
    post-processing of its training run otherwise, at the run's `tiou_thresholds`.

    Returns:
        `dict`: `variant`, `protocol`, `video_fusion_top_k` and the mAP (`eval_unseen_mAP`, `eval_unseen_average_mAP`).
    """
    model = ZeetadForTemporalActionDetection.from_pretrained(run_dir)
    processor = ZeetadProcessor.from_pretrained(run_dir)
    args = ZeetadTrainingArguments(output_dir=str(run_dir), **settings.training)
    videos = _world_datasets(settings, paths)["validation"]
    loader = DataLoader(videos, batch_size=args.per_device_eval_batch_size, collate_fn=ZeetadDataCollator())
    accelerator = Accelerator(cpu=True)
    post_processing = {**args.post_processing_kwargs, "video_fusion_top_k": FUSION_TOP_K}
    prompts = encode_class_prompts(processor, unseen, accelerator.device)
    predictions = predict(model, loader, unseen, prompts, accelerator, post_processing)
    metrics = score_predictions(to_ground_truth(videos), predictions, unseen, tiou_thresholds)
    return {
        "variant": run_dir.name,
        "protocol": evaluation_protocol(FUSION_TOP_K),
        "video_fusion_top_k": FUSION_TOP_K,
        "eval_unseen_mAP": metrics["mAP"],
        "eval_unseen_average_mAP": metrics["average_mAP"],
    }


class HeldOutVideo(NamedTuple):
    """A validation video of a quickstart world that holds unseen-class actions, with their annotations."""

    video_id: str
    path: Path
    duration: float
    ground_truth: list[dict]  # the unseen-class annotations: [{"label", "segment": [start, end]}, ...]


def held_out_videos(world_dir: str | os.PathLike, unseen: list[str]) -> list[HeldOutVideo]:
    r"""
    The validation videos of a quickstart world that hold unseen-class actions, sorted by video id: the quickstart
    detects on the first, `zeetad demo` offers them as examples.

    Args:
        world_dir (`str` or `os.PathLike`):
            The `world/` folder of a quickstart run.
        unseen (`list[str]`):
            The unseen classes (`split.json`'s `"unseen"`).

    Returns:
        `list[HeldOutVideo]`: each with the video's unseen-class annotations only.
    """
    world_dir = Path(world_dir)
    database = json.loads((world_dir / "annotations.json").read_text())["database"]
    videos = []
    for video_id, entry in sorted(database.items()):
        ground_truth = [item for item in entry["annotations"] if item["label"] in unseen]
        if entry["subset"] == "validation" and ground_truth:
            path = world_dir / "videos" / f"{video_id}.mp4"
            videos.append(HeldOutVideo(video_id, path, entry["duration"], ground_truth))
    return videos


def quickstart_world(model_dir: str | os.PathLike) -> Path | None:
    r"""
    The `world/` folder of the quickstart run that trained `model_dir` (`<output_dir>/runs/<variant>`), or `None` when
    `model_dir` is not a quickstart run's model folder.
    """
    world_dir = Path(model_dir).resolve().parent.parent / "world"
    is_quickstart = Path(model_dir).resolve().parent.name == "runs" and (world_dir / "split.json").is_file()
    return world_dir if is_quickstart else None


def detect_on_held_out_video(
    model_dir: Path, world_dir: Path, unseen: list[str], output_dir: Path, threshold: float = 0.1, top_k: int = 5
) -> dict[str, Any]:
    r"""
    Run the pipeline on the first evaluation video holding unseen-class actions; write `detections.json` and
    `timeline.png` (its at most `top_k` best detections scoring at least `threshold`, the pipeline's default, and the
    unseen-class ground truth) to `output_dir`.

    Returns:
        `dict`: what `detections.json` holds: `{"video" (its path), "duration" (seconds), "candidate_labels",
        "threshold", "top_k", "detections" (the pipeline's output), "ground_truth" (the unseen-class annotations of the
        video in the world's `annotations.json`: `{"label", "segment": [start, end]}`)}`.
    """
    from transformers import pipeline

    video = held_out_videos(world_dir, unseen)[0]
    video_id, video_path, ground_truth = video.video_id, video.path, video.ground_truth
    detector = pipeline("zero-shot-temporal-action-detection", model=str(model_dir))
    total_units = units_for_duration(video.duration, detector.processor.feature_extractor.sampling_fps)
    with tqdm(total=total_units, desc="5/5 detection", unit="frame") as progress:
        detections = detector(
            str(video_path),
            candidate_labels=unseen,
            threshold=threshold,
            top_k=top_k,
            progress_callback=progress.update,
        )
    plot_timeline(
        detections,
        output_dir / "timeline.png",
        duration=video.duration,
        ground_truth=ground_truth,
        title=f"{video_id}: unseen classes",
    )
    demo = {
        "video": str(video_path),
        "duration": video.duration,
        "candidate_labels": unseen,
        "threshold": threshold,
        "top_k": top_k,
        "detections": detections,
        "ground_truth": ground_truth,
    }
    write_json_atomic(output_dir / "detections.json", demo)
    return demo


def quickstart_summary(results: Mapping[str, Any], output_dir: str | os.PathLike) -> str:
    r"""
    What `zeetad quickstart` prints after the table: where every artefact is, and the demo's detections on the held-out
    video, each beside the ground-truth instance of its label that it overlaps most (tIoU, as
    [`~zeetad_hf.segment_utils.pairwise_segment_iou`] computes it), then the ground-truth instances that no detection
    of their label overlaps.

    Args:
        results (`dict`):
            What [`run_quickstart`] returns.
        output_dir (`str` or `os.PathLike`):
            The folder of the run, as given to [`run_quickstart`] (the printed paths start with it).

    Returns:
        `str`: the summary, one artefact or detection per line.
    """
    artefacts = {
        "world/": "the generated videos (videos/*.mp4), annotations.json, split.json",
        "clip/": "the small CLIP, an ordinary CLIP model folder",
        "features/": "CLIP frame embeddings of every video",
        "runs/<variant>/": f"one trained and evaluated model per variant ({', '.join(results['variants'])})",
    }
    if "model_dir" in results:
        artefacts[f"runs/{MODEL_VARIANT}/"] = "the Hub-ready model folder: weights, processor, model card (README.md)"
    artefacts["results.json"] = "every measure of every variant"
    artefacts["results.md"] = "the table above"
    if "demo" in results:
        artefacts["detections.json"] = "the detections below, with the ground truth"
        artefacts["timeline.png"] = "the detections below, drawn beside the ground truth"
    paths = {os.path.join(output_dir, name): description for name, description in artefacts.items()}
    width = max(map(len, paths))
    lines = ["Artefacts:", *(f"  {path:<{width}}  {description}" for path, description in paths.items())]
    if "demo" not in results:
        return "\n".join(lines)

    demo = results["demo"]
    detections = demo["detections"]
    ground_truth = validate_ground_truth(demo["ground_truth"])
    lines += [
        "",
        f"Detections on the held-out video {demo['video']} ({demo['duration']:.1f} s), with the "
        f"{len(demo['candidate_labels'])} unseen classes as candidates",
        f"(score >= {demo['threshold']:g}, at most {demo['top_k']}), each beside the ground-truth instance of its label "
        "that it overlaps most:",
    ]
    # (num_detections, 2) and (num_ground_truth, 2) start/end seconds -> (num_detections, num_ground_truth) tIoU
    detected_segments = [[item["segment"]["start"], item["segment"]["end"]] for item in detections]
    true_segments = [[start, end] for _, start, end in ground_truth]
    tiou = pairwise_segment_iou(
        torch.tensor(detected_segments, dtype=torch.float64).reshape(-1, 2),
        torch.tensor(true_segments, dtype=torch.float64).reshape(-1, 2),
    ).tolist()
    spans = [f"{start:.1f}-{end:.1f} s" for start, end in detected_segments]
    label_width = max((len(item["label"]) for item in detections), default=0)
    span_width = max(map(len, spans), default=0)
    for row, (item, span) in enumerate(zip(detections, spans)):
        same_label = [column for column, (label, _, _) in enumerate(ground_truth) if label == item["label"]]
        if same_label:
            best = max(same_label, key=lambda column: tiou[row][column])
            _, start, end = ground_truth[best]
            match = f"ground truth {start:.1f}-{end:.1f} s, tIoU {tiou[row][best]:.2f}"
        else:
            match = "no ground truth of this label"
        lines.append(f"  {item['score']:.3f}  {item['label']:<{label_width}}  {span:<{span_width}}  {match}")
    if not detections:
        lines.append("  none")
    missed = [
        (label, start, end)
        for column, (label, start, end) in enumerate(ground_truth)
        if not any(tiou[row][column] > 0 for row, item in enumerate(detections) if item["label"] == label)
    ]
    lines.append(f"Ground truth that no detection of its label overlaps: {'none' if not missed else len(missed)}")
    lines += [f"  {label}  {start:.1f}-{end:.1f} s" for label, start, end in missed]
    return "\n".join(lines)


def push_quickstart_model(model_dir: str | os.PathLike, hub_model_id: str | None = None) -> str:
    r"""
    Upload the quickstart's Hub-ready model folder with [`~zeetad_hf.training.push_folder_to_hub`].

    Args:
        model_dir (`str` or `os.PathLike`):
            The model folder, `results["model_dir"]` of [`run_quickstart`] (`<output_dir>/runs/bottleneck`).
        hub_model_id (`str`, *optional*):
            Hub repository; defaults to `"zeetad-quickstart-bottleneck"` in your namespace.

    Returns:
        `str`: the full repository id.

    Raises:
        `OSError`: naming the folder and the repository, when the upload fails (no network, no token or a rejected
        one, ...); every local artefact is left as it is, and a second run reuses every stage.
    """
    return push_folder_to_hub(model_dir, hub_model_id or MODEL_NAME)


def run_quickstart(
    output_dir: str | os.PathLike,
    fast: bool = False,
    force: bool = False,
    settings: QuickstartSettings | None = None,
    seed: int | None = None,
    push_to_hub: bool = False,
    hub_model_id: str | None = None,
    num_threads: int | None = None,
) -> dict[str, Any]:
    r"""
    Run (or reuse) every stage of the quickstart in `output_dir` and return the results.

    Args:
        output_dir (`str` or `os.PathLike`):
            Folder of every artefact.
        fast (`bool`, *optional*, defaults to `False`):
            Use [`fast_settings`] (under a minute on 2 CPU cores) instead of the defaults.
        force (`bool`, *optional*, defaults to `False`):
            Rebuild every stage even when its cached settings match.
        settings ([`QuickstartSettings`], *optional*):
            Explicit settings; overrides `fast`.
        seed (`int`, *optional*):
            Set every seed of the settings to this (see [`with_seed`]): another world, split, CLIP and training.
        push_to_hub (`bool`, *optional*, defaults to `False`):
            Upload the model folder (`runs/bottleneck/`: model, processor, model card) to the Hub after the run, with
            [`push_quickstart_model`]. Needs the `bottleneck` variant. A cached run is uploaded as it is, nothing is
            rebuilt.
        hub_model_id (`str`, *optional*):
            Hub repository of the push; defaults to `"zeetad-quickstart-bottleneck"` in your namespace. Only with
            `push_to_hub=True`.
        num_threads (`int`, *optional*):
            torch's intra-op threads, instead of the settings' (1 by default): faster on idle cores, but other numbers
            (a separate cache key).

    Returns:
        `dict`: `{"seen", "unseen", "clip" (pretraining summary), "variants": {variant: training results}, "table",
        "model_dir" (the Hub-ready model folder), "demo" (the pipeline's detections on a held-out video),
        "hub_repo_id" (after a push)}`; `"model_dir"` and `"demo"` only when the bottleneck variant ran.
    """
    settings = settings or (fast_settings() if fast else QuickstartSettings())
    if seed is not None:
        settings = with_seed(settings, seed)
    if num_threads is not None:
        settings = replace(settings, num_threads=num_threads)
    # Checked before any stage runs: a push that cannot happen must not wait for the whole run to fail.
    if hub_model_id is not None and not push_to_hub:
        raise ValueError(f"`hub_model_id` ({hub_model_id!r}) names the repository of a push: set `push_to_hub` too.")
    if push_to_hub and MODEL_VARIANT not in settings.variants:
        raise ValueError(
            f"`push_to_hub` uploads the {MODEL_VARIANT!r} model, but `settings.variants` is {list(settings.variants)}."
        )
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.num_threads)
    try:
        results = _run_stages(settings, Path(output_dir), force)
    finally:
        torch.set_num_threads(previous_threads)
    # then the Hub: training's upload of the finished folder (no stage is touched, so the cache stays valid)
    if push_to_hub:
        results["hub_repo_id"] = push_quickstart_model(results["model_dir"], hub_model_id)
    return results


class _Cancelled(Exception):
    """Raised in the CLIP pretraining thread when the world's stage failed or was interrupted."""


def _cancellable(steps: Iterator, cancelled: threading.Event) -> Iterator:
    for step in steps:
        if cancelled.is_set():
            raise _Cancelled()
        yield step


def _pretrain_clip(
    settings: QuickstartSettings, clip_dir: Path, clip_key: str, cancelled: threading.Event, bar_position: int
) -> None:
    def bars(items: Iterator, desc: str) -> Iterator:
        return _cancellable(tqdm(items, desc=f"2/5 CLIP {desc}", position=bar_position), cancelled)

    run_clip_pretraining(clip_dir, settings.world, settings.clip, progress=bars)
    _finish_stage(clip_dir, clip_key, asdict(settings.clip))


def _world_and_clip(settings: QuickstartSettings, paths: dict[str, Path], force: bool) -> str:
    """Stages 1 and 2, side by side when both are to be built and a core is free; returns the CLIP stage's key.

    The small CLIP learns from still images it renders itself, not from the world's videos, so it pretrains in a
    thread (torch computes outside Python's lock, on `settings.num_threads` threads as always; its batch shards run in
    threads of their own) while the other cores write the videos. Both results are the same either way.
    """
    world_key = _stage_key(settings.world.to_dict(), RENDERING_VERSION)
    # torch's results depend on its thread count (summation order): every stage from here on is keyed on it
    clip_key = _stage_key(world_key, asdict(settings.clip), settings.num_threads)
    world_pending = not _stage_is_current(paths["world"], world_key, force)
    clip_pending = not _stage_is_current(paths["clip"], clip_key, force)
    side_by_side = world_pending and clip_pending and available_cores() > settings.num_threads
    cancelled = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        # its bar on the second line, under the world's
        pretraining = (
            pool.submit(_pretrain_clip, settings, paths["clip"], clip_key, cancelled, 1) if side_by_side else None
        )
        try:
            if world_pending:
                generate_world(
                    paths["world"],
                    settings.world,
                    progress=lambda plans: tqdm(plans, desc="1/5 world videos"),
                    num_workers=available_cores() - (settings.num_threads if side_by_side else 0),
                )
                _finish_stage(paths["world"], world_key, settings.world.to_dict())
            if pretraining is not None:
                pretraining.result()  # its error, raised here
        except BaseException:
            cancelled.set()  # an error or Ctrl-C here: the pretraining stops at its next step
            raise
    if clip_pending and not side_by_side:
        _pretrain_clip(settings, paths["clip"], clip_key, cancelled, 0)
    return clip_key


def _run_stages(settings: QuickstartSettings, output_dir: Path, force: bool) -> dict[str, Any]:
    # The stages of `run_quickstart`, in order, each reused when its settings are unchanged.
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: output_dir / name for name in ("world", "clip", "features", "runs")}

    # 1. the world and 2. the small CLIP
    clip_key = _world_and_clip(settings, paths, force)
    split = json.loads((paths["world"] / "split.json").read_text())
    seen, unseen = split["seen"], split["unseen"]
    clip_summary = json.loads((paths["clip"] / "pretraining.json").read_text())

    # 3. frame embeddings
    feature_key = _stage_key(clip_key, settings.sampling_fps)
    if not _stage_is_current(paths["features"], feature_key, force):
        _extract_features(
            paths["world"], paths["clip"], paths["features"], settings.sampling_fps, _parallel_workers(settings)
        )
        _finish_stage(paths["features"], feature_key, {"sampling_fps": settings.sampling_fps})

    # 4. ZEETAD and the baselines, trained and evaluated the same way; the demo variant's folder gets a model card
    _train_variants(settings, paths, seen, unseen, feature_key, force)
    variants = {}
    for variant in settings.variants:
        run_dir = paths["runs"] / variant
        model_config = json.loads((run_dir / "config.json").read_text())
        variants[variant] = {
            **json.loads((run_dir / "all_results.json").read_text()),
            "classification_head": model_config["classification_head"],
            "classification_segment_gradient": model_config["classification_segment_gradient"],
        }

    # the table of stage 4, with the default model also under video-level fusion (one more evaluation pass)
    fusion = None
    if MODEL_VARIANT in variants:
        run_dir, thresholds = paths["runs"] / MODEL_VARIANT, variants[MODEL_VARIANT]["tiou_thresholds"]
        fusion = video_fusion_result(run_dir, settings, paths, unseen, thresholds)
    table = results_table(variants, fusion)
    results = {"seen": seen, "unseen": unseen, "clip": clip_summary, "variants": variants, "table": table}
    results["video_level_fusion"] = fusion
    write_json_atomic(output_dir / "results.json", results)
    with atomic_write(output_dir / "results.md") as handle:
        handle.write(table + "\n")

    # 5. the pipeline on a held-out video, with the Hub-ready model
    if MODEL_VARIANT in variants:
        results["model_dir"] = str(paths["runs"] / MODEL_VARIANT)
        results["demo"] = detect_on_held_out_video(paths["runs"] / MODEL_VARIANT, paths["world"], unseen, output_dir)
    return results


__all__ = [
    "HeldOutVideo",
    "QuickstartSettings",
    "RandomTextZeetad",
    "detection_rate",
    "fast_settings",
    "held_out_videos",
    "processor_for_world",
    "push_quickstart_model",
    "quickstart_summary",
    "quickstart_world",
    "results_table",
    "run_quickstart",
    "with_seed",
]
