"""Model cards for ZEETAD checkpoints: the zero-shot protocol, the split(s) and measured mAP as `model-index` metadata.

The card text comes from `zeetad_hf/model_card_template.md` (shipped with the package; `model_cards/TEMPLATE.md` in
the repository is a copy of it). Only numbers passed in `results`, i.e. measured on the checkpoint, become metrics;
the paper's published numbers appear in the text as a labelled reference, never as results of the model.
"""

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from numbers import Real
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .configuration_zeetad import CLASSIFICATION_HEADS
from .file_utils import atomic_write
from .zero_shot_splits import load_zero_shot_split


TAGS = ["zero-shot-temporal-action-detection", "temporal-action-detection", "zero-shot", "video"]
TASK_TYPE = "zero-shot-temporal-action-detection"
TASK_NAME = "Zero-Shot Temporal Action Detection"
TEMPLATE_NAME = "model_card_template.md"

PROTOCOLS = {
    "strict": "no external closed-set classifier scores at test time, no model selection on the test set, class text "
    "only from the split lists",
    "paper": "fuses external video-level classifier scores as most published zero-shot numbers do; those classifiers "
    "were trained on all classes, so unseen-class supervision leaks in and results are not comparable with `strict`",
    "video-level fusion": "each detection's score multiplied by a zero-shot video-level class score of the same model "
    "(its mean frame embedding against the prompts; top-k classes per video), like the fusion of published numbers "
    "but with no external classifier and nothing trained on the unseen classes",
}
SPLIT_SETTINGS = {"75_25": "75% seen / 25% unseen classes", "50_50": "50% seen / 50% unseen classes"}


@dataclass(frozen=True)
class _Dataset:
    label: str
    hub_type: str
    domain: str
    train_subset: str
    eval_subset: str
    # True: class splits are indices into the split lists shipped in `zeetad_hf` (`split_setting` + `split_indices`).
    # False: the dataset draws one seeded split of its own, passed as `seen_classes` + `unseen_classes`.
    shipped_splits: bool = True


DATASETS = {
    "thumos14": _Dataset("THUMOS14", "thumos14", "20 sports classes", "Validation", "Test"),
    "activitynet": _Dataset(
        "ActivityNet-1.3",
        "activitynet",
        "200 everyday, household and sport activities on YouTube",
        "training",
        "validation",
    ),
    # The quickstart's generated world (`zeetad_hf.synthetic_world`).
    "synthetic_world": _Dataset(
        "zeetad_hf synthetic world",
        "synthetic_world",
        "generated videos of moving coloured shapes; every class is a colour x object x movement composition such as "
        '"red ball bouncing"',
        "training",
        "validation",
        shipped_splits=False,
    ),
}

# Average mAP (%) the ZEETAD paper reports, mean over the 10 splits (TF-CADE, CVPR 2026, Table 1, which collects each
# method's own numbers). Quoted in the card text only, labelled as published; never turned into metadata.
PUBLISHED_AVERAGE_MAP = {
    ("thumos14", "75_25"): 43.2,
    ("thumos14", "50_50"): 30.2,
    ("activitynet", "75_25"): 32.5,
    ("activitynet", "50_50"): 24.9,
}


def _is_fraction(value: Any) -> bool:
    # bool is a numbers.Real subclass, but `True` as an mAP is a bug upstream
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1


def _check_results(results: Mapping[str, Any]) -> tuple[list[float], list[float], float]:
    """Validate `results` and return `(thresholds, mAP per threshold, average mAP)`, mAP as fractions."""
    if not isinstance(results, Mapping) or "tiou_thresholds" not in results or "mAP" not in results:
        raise ValueError(
            '`results` must be a mapping with "tiou_thresholds" and "mAP" (as returned by '
            f"`zeetad_hf.evaluation.temporal_action_map`), got {results!r}"
        )
    thresholds, map_values = list(results["tiou_thresholds"]), list(results["mAP"])
    if not thresholds or len(thresholds) != len(map_values):
        raise ValueError(
            f'`results["tiou_thresholds"]` ({len(thresholds)} values) and `results["mAP"]` ({len(map_values)} values) '
            "must be non-empty and of the same length"
        )
    if not all(_is_fraction(value) for value in thresholds):
        raise ValueError(f'`results["tiou_thresholds"]` must be numbers in [0, 1], got {thresholds!r}')
    if not all(_is_fraction(value) for value in map_values):
        raise ValueError(f'`results["mAP"]` must be fractions in [0, 1] (not percent), got {map_values!r}')
    # The average given by the evaluator wins: it is the number that was reported.
    average = results.get("average_mAP", sum(map_values) / len(map_values))
    if not _is_fraction(average):
        raise ValueError(f'`results["average_mAP"]` must be a fraction in [0, 1] (not percent), got {average!r}')
    return [float(value) for value in thresholds], [float(value) for value in map_values], float(average)


def _percent(fraction: float) -> float:
    return round(100 * fraction, 2)


@dataclass(frozen=True)
class _ClassSplit:
    """The class split(s) a checkpoint was trained and evaluated on, as the card describes them."""

    setting_label: str  # e.g. "75% seen / 25% unseen classes"
    seen: list[str]  # seen classes (of the first split, for shipped split lists)
    unseen: list[str]
    indices: list[int] | None  # indices into the shipped split lists; None for a dataset's own seeded split

    @property
    def num_splits(self) -> int:
        return 1 if self.indices is None else len(self.indices)

    @property
    def dataset_args(self) -> dict[str, Any]:
        """The split part of the model-index `dataset.args`."""
        if self.indices is None:
            # One seeded draw: the class lists are the only record of it.
            return {"num_splits": 1, "seen_classes": self.seen, "unseen_classes": self.unseen}
        return {"splits": self.indices, "num_splits": self.num_splits}


def _shipped_split(
    dataset_key: str, split_setting: Any, split_indices: Sequence[int] | None, seen_classes: Any, unseen_classes: Any
) -> _ClassSplit:
    """Validate the split arguments of a dataset with shipped split lists and load the first split's classes."""
    if seen_classes is not None or unseen_classes is not None:
        raise ValueError(
            f"`seen_classes` and `unseen_classes` are read from the split lists shipped for {dataset_key!r}: pass "
            f"`split_indices` instead, got seen_classes={seen_classes!r}, unseen_classes={unseen_classes!r}"
        )
    if split_setting not in SPLIT_SETTINGS:
        raise ValueError(f"`split_setting` must be one of {sorted(SPLIT_SETTINGS)}, got {split_setting!r}")
    splits = sorted(set(split_indices or ()))
    if not splits:
        raise ValueError("`split_indices` must name at least one split")
    # Loading every split validates the indices and gives the class counts the card reports.
    class_splits = [load_zero_shot_split(dataset_key, split_setting, split) for split in splits]
    seen, unseen = class_splits[0]
    return _ClassSplit(SPLIT_SETTINGS[split_setting], list(seen), list(unseen), splits)


def _class_names(name: str, classes: Any) -> list[str]:
    if (
        isinstance(classes, str)
        or not isinstance(classes, Sequence)
        or not classes
        or not all(isinstance(item, str) and item.strip() for item in classes)
    ):
        raise ValueError(f"`{name}` must be a non-empty list of class names, got {classes!r}")
    repeated = sorted({item for item in classes if classes.count(item) > 1})
    if repeated:
        raise ValueError(f"`{name}` lists {repeated} more than once")
    return list(classes)


def _drawn_split(
    dataset_key: str, split_setting: Any, split_indices: Any, seen_classes: Any, unseen_classes: Any
) -> _ClassSplit:
    """Validate the class lists of a dataset that draws its own seeded split (no shipped lists to index)."""
    if split_setting is not None or split_indices is not None:
        raise ValueError(
            f"{dataset_key!r} has no shipped split lists: its split is one seeded draw, given by `seen_classes` and "
            f"`unseen_classes`; got split_setting={split_setting!r}, split_indices={split_indices!r}"
        )
    seen, unseen = _class_names("seen_classes", seen_classes), _class_names("unseen_classes", unseen_classes)
    overlap = sorted(set(seen) & set(unseen))
    if overlap:
        raise ValueError(f"`seen_classes` and `unseen_classes` must be disjoint, both hold {overlap}")
    return _ClassSplit(f"{len(seen)} seen / {len(unseen)} unseen classes", seen, unseen, None)


def hub_base_model(name_or_path: str | None) -> str | None:
    """`name_or_path` when it names a Hub repository (`owner/name` or `name`, not a folder on this machine), else
    `None`: a card's `base_model` must be a Hub id, and a local path would mean nothing to readers on the Hub."""
    if name_or_path is None or os.path.exists(name_or_path):
        return None
    parts = name_or_path.split("/")
    if len(parts) > 2 or name_or_path.startswith((".", "~")) or not all(parts):
        return None
    return name_or_path


def build_model_card(
    *,
    model_name: str,
    base_model: str | None,
    dataset_name: str,
    split_setting: str | None = None,
    split_indices: Sequence[int] | None = None,
    seen_classes: Sequence[str] | None = None,
    unseen_classes: Sequence[str] | None = None,
    features: str,
    protocol: str = "strict",
    results: Mapping[str, Any] | None = None,
    training_hyperparameters: Mapping[str, Any],
    repo_id: str | None = None,
    license: str = "mit",
    reads_video: bool = False,
    classification_head: str = "sigmoid",
    **template_kwargs: Any,
) -> ModelCard:
    """Build the model card of a ZEETAD checkpoint trained and evaluated under the zero-shot protocol.

    The YAML metadata has `library_name: transformers`, the zero-shot temporal action detection tags and no
    `pipeline_tag` (the Hub has none for this task). When `results` is given, each mAP@tIoU and the average mAP become
    a `model-index` metric (in percent, rounded to 2 decimals) whose dataset entry records the split setting
    (`config`), the evaluated subset (`split`), the splits and the features (`args`), and whose `config` is the
    protocol. Without `results` the card states that evaluation was not run and the metadata holds no metrics.

    The class split is given one of two ways, depending on the dataset: for `"thumos14"` and `"activitynet"` by
    `split_setting` + `split_indices` into the split lists shipped in `zeetad_hf`; for `"synthetic_world"` (the
    quickstart's generated world, which draws one seeded split of its own) by `seen_classes` + `unseen_classes`, which
    the card then lists. The paper's published numbers are quoted only for the shipped split lists.

    Args:
        model_name (`str`):
            Name of the model, used as the card title and as the `model-index` name.
        base_model (`str`, *optional*):
            Hub id of the CLIP checkpoint the text encoder comes from, e.g. `"openai/clip-vit-base-patch16"`. A local
            folder (see [`hub_base_model`]) is left out of the metadata and named in the card's text instead.
        dataset_name (`str`):
            `"thumos14"`, `"activitynet"` (ActivityNet-1.3) or `"synthetic_world"` (the quickstart's generated world).
        split_setting (`str`, *optional*):
            Zero-shot setting of the shipped split lists, `"75_25"` (75% seen / 25% unseen classes) or `"50_50"`.
            Required for `"thumos14"` and `"activitynet"`, must be `None` for `"synthetic_world"`.
        split_indices (`Sequence[int]`, *optional*):
            Shipped class splits (in `[0, 9]`) the model was trained and evaluated on; the results are their mean.
            The published protocol uses all 10. Required for `"thumos14"` and `"activitynet"`, must be `None` for
            `"synthetic_world"`.
        seen_classes (`Sequence[str]`, *optional*):
            The seen (training) classes of a dataset's own seeded split. Required for `"synthetic_world"`, must be
            `None` otherwise (the shipped lists name the classes).
        unseen_classes (`Sequence[str]`, *optional*):
            The unseen (evaluation) classes of that split, disjoint from `seen_classes`; same rules.
        features (`str`):
            The input features, e.g. `"I3D (localization) + CLIP ViT-B/16 frame embeddings, 4-frame stride"`.
        protocol (`str`, *optional*, defaults to `"strict"`):
            `"strict"` (no external classifier scores, no model selection on the test set), `"video-level fusion"`
            (detection scores times the same model's zero-shot video-level class scores) or `"paper"` (external
            video-level classifier scores fused, as in most published numbers). Stored as each metric's `config`.
        results (`Mapping[str, Any]`, *optional*):
            Measured results, mean over `split_indices`, in the format of
            [`~zeetad_hf.evaluation.temporal_action_map`]: `"tiou_thresholds"` (`list[float]`), `"mAP"`
            (`list[float]`, fractions in `[0, 1]`) and optionally `"average_mAP"` (`float`, defaults to the mean of
            `"mAP"`). `None` means evaluation was not run.
        training_hyperparameters (`Mapping[str, Any]`):
            Hyper-parameters of the training run (name to value), listed in the card in the given order.
        repo_id (`str`, *optional*):
            Hub repository of the checkpoint, used in the "How to Get Started" code.
        license (`str`, *optional*, defaults to `"mit"`):
            License identifier of the checkpoint.
        reads_video (`bool`, *optional*, defaults to `False`):
            Whether the checkpoint holds its CLIP vision tower (`config.vision_config` is set) and so takes video
            files directly; the card's uses and example then show video input instead of pre-extracted features.
        classification_head (`str`, *optional*, defaults to `"sigmoid"`):
            The checkpoint's `config.classification_head`, `"sigmoid"` or `"softmax"`; the card describes its scores.
        template_kwargs (`dict[str, Any]`, *optional*):
            Further template variables: `developers`, `compute_infrastructure`, `base_model_description` (what the
            text encoder comes from when it is no Hub checkpoint, so `base_model` is `None`).

    Returns:
        [`huggingface_hub.ModelCard`]: the rendered card; save it with [`save_model_card`] or push it with
        `card.push_to_hub(repo_id)`.

    Example:

    ```python
    >>> from zeetad_hf.modelcard import build_model_card

    >>> card = build_model_card(
    ...     model_name="zeetad-thumos14-75-25",
    ...     base_model="openai/clip-vit-base-patch16",
    ...     dataset_name="thumos14",
    ...     split_setting="75_25",
    ...     split_indices=range(10),
    ...     features="I3D + CLIP ViT-B/16 frame embeddings",
    ...     results={"tiou_thresholds": [0.3, 0.5, 0.7], "mAP": [0.42, 0.3, 0.12]},
    ...     training_hyperparameters={"learning_rate": 1e-4, "num_epochs": 30},
    ... )
    >>> card.data.eval_results[-1].metric_name, card.data.eval_results[-1].metric_value
    ('average mAP', 28.0)
    ```
    """
    if not isinstance(model_name, str) or not model_name.strip():
        raise ValueError(f"`model_name` must be a non-empty string, got {model_name!r}")
    dataset_key = dataset_name.lower() if isinstance(dataset_name, str) else None
    dataset = DATASETS.get(dataset_key)
    if dataset is None:
        raise ValueError(f"`dataset_name` must be one of {sorted(DATASETS)}, got {dataset_name!r}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {sorted(PROTOCOLS)}, got {protocol!r}")
    if classification_head not in CLASSIFICATION_HEADS:
        raise ValueError(f"`classification_head` must be one of {CLASSIFICATION_HEADS}, got {classification_head!r}")
    if not isinstance(features, str) or not features.strip():
        raise ValueError(f"`features` must describe the input features, got {features!r}")
    if not isinstance(training_hyperparameters, Mapping):
        raise ValueError(f"`training_hyperparameters` must be a mapping, got {training_hyperparameters!r}")
    resolve_split = _shipped_split if dataset.shipped_splits else _drawn_split
    class_split = resolve_split(dataset_key, split_setting, split_indices, seen_classes, unseen_classes)

    eval_results = None
    eval_rows = None
    average_map = None
    if results is not None:
        thresholds, map_values, average = _check_results(results)
        # np.linspace thresholds such as 0.6499999999999999 would otherwise reach the metadata.
        thresholds = [round(threshold, 4) for threshold in thresholds]
        common = {
            "task_type": TASK_TYPE,
            "task_name": TASK_NAME,
            "dataset_type": dataset.hub_type,
            "dataset_name": f"{dataset.label} ({class_split.setting_label})",
            "dataset_config": split_setting,
            "dataset_split": dataset.eval_subset,
            "dataset_args": {**class_split.dataset_args, "features": features},
            "metric_type": "mAP",
            "metric_config": protocol,
        }
        eval_results = [
            EvalResult(
                metric_name=f"mAP@{threshold:g}",
                metric_value=_percent(value),
                metric_args={"tiou_threshold": threshold},
                **common,
            )
            for threshold, value in zip(thresholds, map_values)
        ]
        eval_results.append(
            EvalResult(
                metric_name="average mAP",
                metric_value=_percent(average),
                metric_args={"tiou_thresholds": thresholds},
                **common,
            )
        )
        eval_rows = [
            {"threshold": f"{threshold:g}", "value": f"{_percent(value):.2f}"}
            for threshold, value in zip(thresholds, map_values)
        ]
        average_map = f"{_percent(average):.2f}"

    if base_model is not None and hub_base_model(base_model) is None:
        # a local CLIP folder: named in the text only, since the metadata's `base_model` links a Hub repository
        template_kwargs.setdefault(
            "base_model_description", f"a CLIP checkpoint from a local folder (`{Path(base_model).name}`)"
        )
        base_model = None
    card_data = ModelCardData(
        # Only the model-index needs the name; without results it would be a stray `model_name` YAML key.
        model_name=model_name if eval_results is not None else None,
        base_model=base_model,
        library_name="transformers",
        license=license,
        tags=TAGS,
        eval_results=eval_results,
    )
    template = (files("zeetad_hf") / TEMPLATE_NAME).read_text(encoding="utf-8")
    return ModelCard.from_template(
        card_data,
        template_str=template,
        # `ModelCardData.to_dict` moves `model_name` into the model-index when there are results: pass it explicitly.
        model_name=model_name,
        repo_id=repo_id,
        dataset_label=dataset.label,
        dataset_domain=dataset.domain,
        train_subset=dataset.train_subset,
        eval_subset=dataset.eval_subset,
        split_setting=split_setting,
        setting_label=class_split.setting_label,
        # None for a dataset's own seeded split: the template then describes that split instead of shipped lists.
        split_list=None if class_split.indices is None else ", ".join(map(str, class_split.indices)),
        num_splits=class_split.num_splits,
        num_seen=len(class_split.seen),
        num_unseen=len(class_split.unseen),
        seen_classes=class_split.seen if class_split.indices is None else None,
        # Naming the unseen classes is useful for a single split; ten lists would drown the card.
        unseen_classes=class_split.unseen if class_split.num_splits == 1 else None,
        features=features,
        reads_video=reads_video,
        classification_head=classification_head,
        protocol=protocol,
        protocol_description=PROTOCOLS[protocol],
        hyperparameters=list(training_hyperparameters.items()),
        eval_rows=eval_rows,
        average_map=average_map,
        published_average_map=PUBLISHED_AVERAGE_MAP.get((dataset_key, split_setting)),
        **template_kwargs,
    )


def save_model_card(card: ModelCard, save_directory: str | os.PathLike) -> Path:
    """Write `card` to `save_directory/README.md` atomically.

    The card goes to a temporary file in the same directory that then replaces `README.md`, so a crash never leaves a
    half-written card next to a checkpoint.

    Args:
        card ([`huggingface_hub.ModelCard`]):
            The card, e.g. from [`build_model_card`].
        save_directory (`str` or `os.PathLike`):
            Directory of the checkpoint; created if missing.

    Returns:
        `Path`: the path of the written `README.md`.
    """
    path = Path(save_directory) / "README.md"
    with atomic_write(path) as handle:
        handle.write(str(card))
    return path


__all__ = ["build_model_card", "hub_base_model", "save_model_card"]
