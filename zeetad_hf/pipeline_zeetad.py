"""The "zero-shot-temporal-action-detection" pipeline: a video (or its features) and free-text labels in, segments out."""

import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from transformers import Pipeline

from .feature_extraction_zeetad import window_core_boundaries
from .frame_embedding import embed_video_frames
from .modeling_zeetad import ZeetadTemporalActionDetectionOutput
from .post_processing_zeetad import TUNED_ACTIONNESS_WEIGHTS
from .processing_zeetad import (
    ZeetadProcessor,
    sampled_video_metadata,
    validate_labels,
    validate_prompt_templates,
)
from .video_utils import VideoFrameSampler, validate_sampling_fps


# The outputs of one window that merging and post-processing read.
WINDOW_OUTPUT_KEYS = (
    "logits",
    "class_probabilities",
    "actionness_logits",
    "pred_segments",
    "feature_lengths",
    "unit_embeds",
    "text_embeds",
)


def merge_window_outputs(
    window_outputs: Sequence[Mapping[str, torch.Tensor]], windows: Sequence[tuple[int, int]], num_units: int
) -> ZeetadTemporalActionDetectionOutput:
    r"""
    Merge the outputs of overlapping temporal windows of one video into a single output over the whole video.

    Each window's queries are kept only where they belong: a query whose segment centre lies in the window's *core*
    (the part of the window closer to it than to a neighbouring window; the first and last cores extend to the video
    ends) is kept, the others are dropped, so an action inside an overlap is reported by one window only, and an
    action straddling a window boundary by the window that sees it whole (when the overlap is at least as long as the
    action). The kept segments are re-normalised from the window to the whole video, so a single call of
    [`~zeetad_hf.post_process_temporal_action_detection`] converts them to seconds and runs one Soft-NMS over all
    windows together. (Soft-NMS per window followed by another across windows would decay in-window neighbours twice.)

    Args:
        window_outputs (`Sequence[Mapping[str, torch.Tensor]]`):
            Per window, the model outputs `logits` and `class_probabilities` `(1, num_queries, num_classes)`,
            `actionness_logits`
            `(1, num_queries)`, `pred_segments` `(1, num_queries, 2)` (normalised `(center, width)` relative to the
            window), `feature_lengths` `(1,)`, `unit_embeds` `(1, window_units, dim)` and `text_embeds`
            `(num_classes, dim)`.
        windows (`Sequence[tuple[int, int]]`):
            `(start, end)` unit indices of every window, in order (see
            [`~ZeetadFeatureExtractor.temporal_windows`]).
        num_units (`int`):
            Number of units of the whole video.

    Returns:
        [`ZeetadTemporalActionDetectionOutput`] with batch size 1, the kept queries of all windows, `pred_segments`
        normalised over the whole video, `feature_lengths = [num_units]`, each unit's `unit_embeds` from the window
        whose core holds it, and the `text_embeds`.
    """
    if len(window_outputs) != len(windows) or not windows:
        raise ValueError(f"Got {len(window_outputs)} window outputs for {len(windows)} windows (need >= 1 each).")
    boundaries = window_core_boundaries(windows)
    logits, class_probabilities, actionness_logits, segments = [], [], [], []
    for index, (output, (start, end)) in enumerate(zip(window_outputs, windows)):
        window_length = int(output["feature_lengths"][0])
        if window_length != end - start:
            raise ValueError(f"Window {index} covers {end - start} units but its output has {window_length}.")
        # num_queries, 2 in units of the whole video
        centers = output["pred_segments"][0, :, 0] * window_length + start
        widths = output["pred_segments"][0, :, 1] * window_length
        keep = (centers >= boundaries[index]) & (centers < boundaries[index + 1])
        logits.append(output["logits"][0, keep])
        class_probabilities.append(output["class_probabilities"][0, keep])
        actionness_logits.append(output["actionness_logits"][0, keep])
        segments.append(torch.stack((centers[keep], widths[keep]), dim=-1) / num_units)
    unit_embeds = None
    if all(output.get("unit_embeds") is not None for output in window_outputs):
        # every unit's embedding from the window whose core holds its centre (the cores split the units into
        # consecutive runs): num_units, dim
        unit_centers = torch.arange(num_units, dtype=torch.float64) + 0.5
        owners = torch.bucketize(unit_centers, torch.tensor(boundaries[1:-1], dtype=torch.float64), right=True)
        ends = torch.bincount(owners, minlength=len(windows)).cumsum(0).tolist()
        unit_embeds = torch.cat(
            [
                output["unit_embeds"][0, first - start : last - start]
                for output, (start, _), first, last in zip(window_outputs, windows, [0, *ends[:-1]], ends)
            ]
        )[None]
    return ZeetadTemporalActionDetectionOutput(
        logits=torch.cat(logits)[None],
        class_probabilities=torch.cat(class_probabilities)[None],
        actionness_logits=torch.cat(actionness_logits)[None],
        pred_segments=torch.cat(segments)[None],
        feature_lengths=torch.tensor([num_units]),
        unit_embeds=unit_embeds,
        text_embeds=window_outputs[0].get("text_embeds"),
    )


def _candidate_labels(labels: str | Sequence[str]) -> list[str]:
    """Validated candidate labels; a string is a comma-separated list."""
    if isinstance(labels, str):
        labels = [label.strip() for label in labels.split(",")]
    return validate_labels(labels)


def _is_row(video: Any) -> bool:
    """Whether a pipeline input is a `{"video": ..., "candidate_labels": ...}` row."""
    return isinstance(video, Mapping) and "video" in video


# keys of a `{"video": ..., "candidate_labels": ...}` row
ROW_KEYS = {"video", "candidate_labels"}


class NoDefaultModel(dict):
    """The task's `default` entry in transformers' pipeline registry: there is no default model to download, so
    `pipeline(task)` without `model=` gets this error instead of a bare `KeyError: 'default'`."""

    def __init__(self, task: str):
        super().__init__()
        self.task = task

    def __contains__(self, key) -> bool:
        # `register_pipeline` and `pipeline()` look for a "model" entry before reading it
        return key == "model"

    def __getitem__(self, key):
        raise ValueError(
            f"The {self.task} pipeline has no default model: pass `model=` a checkpoint folder (e.g. "
            "zeetad-quickstart/runs/bottleneck after `zeetad quickstart`, or the output_dir of examples/train.py) or "
            "a Hub repo id."
        )


def _check_integer(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
    return int(value)


class ZeroShotTemporalActionDetectionPipeline(Pipeline):
    r"""
    Zero-shot temporal action detection with [`ZeetadForTemporalActionDetection`]: find when actions named by free-text
    labels happen in a video. Registered as `"zero-shot-temporal-action-detection"` on `import zeetad_hf`.

    ```python
    >>> import zeetad_hf
    >>> from transformers import pipeline

    >>> detector = pipeline("zero-shot-temporal-action-detection", model="path/to/zeetad")
    >>> detector("match.mp4", candidate_labels=["high jump", "pole vault"], threshold=0.2)
    [{'score': 0.83, 'label': 'pole vault', 'segment': {'start': 12.4, 'end': 17.9}}, ...]
    ```

    Videos are decoded as a stream: frames flow in chunks of `frame_batch_size` through the CLIP preprocessing and the
    model's frozen vision tower, and only one embedding per temporal unit is kept, so memory does not grow with the
    frame count. Videos longer than `max_units` units run in overlapping windows whose detections are merged (see
    [`merge_window_outputs`]). Every time in the output is in seconds of the source video.

    Raw videos need a model with a CLIP vision tower (`from_clip(..., load_vision=True)`) in CLIP-only mode
    (`localization_feature_dim=None`); models with separate localization features take pre-computed features.

    Bad input raises before any model work where possible, naming the input: `FileNotFoundError` for a missing file;
    `ValueError` for a file that is not a video, corrupt or truncated (no partial results), audio-only, without frames
    or shorter than one sampling step, and for invalid labels or parameters (see [`~zeetad_hf.VideoFrameSampler`]
    and [`~zeetad_hf.processing_zeetad.validate_labels`]).
    """

    # None: load the processor of a model given by path or repo id when there is one, without failing when there is
    # none (a model instance with `tokenizer=` and `feature_extractor=` objects); __init__ then says what is missing
    _load_processor = None
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.processor is None and self.tokenizer is not None and self.feature_extractor is not None:
            self.processor = ZeetadProcessor(feature_extractor=self.feature_extractor, tokenizer=self.tokenizer)
        if self.processor is None or not hasattr(self.processor, "feature_extractor"):
            source = getattr(self.model, "name_or_path", "") or "the model"
            raise ValueError(
                f"The zero-shot-temporal-action-detection pipeline found no `ZeetadProcessor` for {source}: a "
                "checkpoint folder needs processor_config.json with the tokenizer files (written by "
                "`processor.save_pretrained`); with a model instance pass `processor=ZeetadProcessor(...)`, or "
                "`tokenizer=` and `feature_extractor=` (a ZeetadFeatureExtractor)."
            )
        if self._batch_size not in (None, 1):
            raise ValueError(self._batch_size_message(self._batch_size))
        # (input_ids, attention_mask, text embeddings) of the last class set: a list of videos with the same labels
        # runs the text tower once (with 200 ActivityNet prompts it is most of a short video's forward time)
        self._cached_class_embeddings = None

    def _class_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text embeddings of the class prompts, recomputed only when the prompts differ from the previous call's."""
        cached = self._cached_class_embeddings
        if cached is not None and torch.equal(cached[0], input_ids) and torch.equal(cached[1], attention_mask):
            return cached[2]
        text_embeds = self.model.get_text_features(input_ids, attention_mask).pooler_output
        self._cached_class_embeddings = (input_ids, attention_mask, text_embeds)
        return text_embeds

    @staticmethod
    def _batch_size_message(batch_size) -> str:
        return (
            f"`batch_size={batch_size}` is not supported: videos run one at a time (long ones in windows); use "
            "`frame_batch_size` to set how many frames go through the vision tower at once."
        )

    def __call__(
        self, videos: Any, candidate_labels: str | Sequence[str] | Sequence[Sequence[str]] | None = None, **kwargs
    ):
        r"""
        Detect the candidate actions in one or several videos.

        Args:
            videos (`str`, `os.PathLike`, binary file, `dict`, or a list of them):
                A video path, an open binary file, raw frames `{"frames": (T, H, W, 3) uint8 array, "fps": float}`,
                or pre-computed features `{"clip_features": (T, D), "fps": float, "feature_stride": int,
                "window_size": int (optional, defaults to `feature_stride`), "input_features": (T, D_loc) (optional),
                "duration": float (optional; segments are clamped to it)}`; or a row `{"video": <one of these>,
                "candidate_labels": [...]}` with its own labels, as `zero-shot-object-detection` takes. A list gives a
                list of results (an empty list gives an empty list).
            candidate_labels (`str`, `list[str]` or `list[list[str]]`):
                Class names to look for; a string is split on commas. With a list of videos, a list of label lists
                (one per video) gives every video its own labels.
            hypothesis_template (`str` or `list[str]`, *optional*):
                Prompt template(s) with one `{}` for the label (alias `hypothesis_templates`); defaults to the
                processor's `prompt_templates`.
            threshold (`float`, *optional*, defaults to 0.1):
                Minimum score of a returned detection, in `[0, 1]`.
            top_k (`int`, *optional*):
                Maximum number of detections returned per video (default: all above `threshold`, at most 200).
            actionness_weight (`float`, *optional*):
                Exponent `w` in `[0, 1]` of the class-agnostic actionness in the score
                `sigmoid(actionness) ** w * p(label) ** (1 - w)`; defaults to the value tuned for the model's
                classification head (0 for the sigmoid head: the score is the label's own probability).
            sampling_fps (`float`, *optional*):
                Temporal units per second for raw videos; defaults to the feature extractor's `sampling_fps`.
            frame_batch_size (`int`, *optional*, defaults to 32):
                Frames per vision-tower call (and per decoded chunk).
            max_units (`int`, *optional*):
                Window length in units; defaults to the feature extractor's `max_units`.
            window_overlap (`float`, *optional*):
                Overlap of consecutive windows as a fraction of `max_units`; defaults to the feature extractor's.
            progress_callback (`Callable[[int], None]`, *optional*):
                Called with the number of frames after every decoded and embedded chunk (e.g. a progress bar's
                `update`).
            video_fusion_top_k (`int`, *optional*):
                Keep only the `k` labels with the highest zero-shot video-level score (the video's mean frame
                embedding against the prompts) and multiply every detection's score by its label's video-level score
                (see [`~zeetad_hf.post_processing_zeetad.video_level_class_scores`]); off by default.

        Returns:
            `list[dict]` per video (a list of them for a list of videos), sorted by score, each
            `{"score": float, "label": str, "segment": {"start": float, "end": float}}` with times in seconds.
        """
        if kwargs.get("batch_size") not in (None, 1):
            raise ValueError(self._batch_size_message(kwargs["batch_size"]))
        if isinstance(videos, (list, tuple)) and len(videos) == 0:
            return []
        is_per_video = (
            isinstance(candidate_labels, (list, tuple))
            and len(candidate_labels) > 0
            and all(isinstance(labels, (list, tuple)) for labels in candidate_labels)
        )
        if is_per_video:
            if not isinstance(videos, (list, tuple)) or len(videos) != len(candidate_labels):
                count = len(videos) if isinstance(videos, (list, tuple)) else 1
                raise ValueError(
                    f"Got {len(candidate_labels)} label lists for {count} video(s): per-video `candidate_labels` "
                    "need one list per video."
                )
            if any(_is_row(video) for video in videos):
                raise ValueError("Pass per-video labels either in the rows or as `candidate_labels`, not both.")
            videos = [{"video": video, "candidate_labels": labels} for video, labels in zip(videos, candidate_labels)]
        elif candidate_labels is not None:
            kwargs["candidate_labels"] = candidate_labels
        return super().__call__(list(videos) if isinstance(videos, tuple) else videos, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs):
        r"""
        Save the model and the processor as a package checkpoint, which `pipeline(task, model=save_directory)` loads
        once `zeetad_hf` is imported. (transformers' default would also write `custom_pipelines`, which then demands
        `trust_remote_code=True`, and would leave out `processor_config.json`.) For a checkpoint usable without the
        package, use [`~zeetad_hf.export_for_remote_code`].

        Args:
            save_directory (`str` or `os.PathLike`):
                Output folder (created if needed).
            kwargs:
                Passed to the model's and processor's `save_pretrained`.
        """
        self.model.save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory, **kwargs)

    def _sanitize_parameters(
        self,
        candidate_labels: str | Sequence[str] | None = None,
        hypothesis_template: str | Sequence[str] | None = None,
        hypothesis_templates: Sequence[str] | None = None,
        threshold: float | None = None,
        top_k: int | None = None,
        actionness_weight: float | None = None,
        sampling_fps: float | None = None,
        frame_batch_size: int | None = None,
        max_units: int | None = None,
        window_overlap: float | None = None,
        progress_callback: Callable[[int], None] | None = None,
        video_fusion_top_k: int | None = None,
    ):
        preprocess_params, forward_params, postprocess_params = {}, {}, {}
        if progress_callback is not None:
            if not callable(progress_callback):
                raise ValueError(f"`progress_callback` must be callable, got {type(progress_callback).__name__}.")
            forward_params["progress_callback"] = progress_callback
        if candidate_labels is not None:
            preprocess_params["candidate_labels"] = _candidate_labels(candidate_labels)
        if hypothesis_template is not None and hypothesis_templates is not None:
            raise ValueError("Pass `hypothesis_template` or `hypothesis_templates`, not both.")
        templates = hypothesis_template if hypothesis_template is not None else hypothesis_templates
        if templates is not None:
            preprocess_params["prompt_templates"] = validate_prompt_templates(templates)
        if sampling_fps is not None:
            preprocess_params["sampling_fps"] = validate_sampling_fps(sampling_fps)
        if frame_batch_size is not None:
            forward_params["frame_batch_size"] = _check_integer(frame_batch_size, "frame_batch_size")
        if max_units is not None or window_overlap is not None:
            # validates both values now rather than after the video has been decoded
            self.processor.feature_extractor.temporal_windows(1, max_units, window_overlap)
            if max_units is not None:
                forward_params["max_units"] = max_units
            if window_overlap is not None:
                forward_params["window_overlap"] = window_overlap
        for name, value in (("threshold", threshold), ("actionness_weight", actionness_weight)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
                raise ValueError(f"`{name}` must be a number in [0, 1], got {value!r}.")
            postprocess_params[name] = float(value)
        if top_k is not None:
            postprocess_params["top_k"] = _check_integer(top_k, "top_k")
        if video_fusion_top_k is not None:
            postprocess_params["video_fusion_top_k"] = _check_integer(video_fusion_top_k, "video_fusion_top_k")
        return preprocess_params, forward_params, postprocess_params

    def preprocess(
        self,
        video: Any,
        candidate_labels: list[str] | None = None,
        prompt_templates: tuple[str, ...] | None = None,
        sampling_fps: float | None = None,
    ) -> dict[str, Any]:
        if _is_row(video):
            unknown = sorted(set(video) - ROW_KEYS)
            if unknown:
                raise ValueError(f"Unknown key(s) {unknown} in a video row; a row holds {sorted(ROW_KEYS)}.")
            if "candidate_labels" in video:
                candidate_labels = _candidate_labels(video["candidate_labels"])
            video = video["video"]
        if candidate_labels is None:
            raise ValueError("`candidate_labels` are required: the class names to look for in the video.")
        model_inputs = {"text_labels": candidate_labels}
        model_inputs.update(self.processor(text=candidate_labels, prompt_templates=prompt_templates))
        if isinstance(video, Mapping) and "clip_features" in video:
            features = self.processor(features=video)
            model_inputs["input_features"] = features["input_features"]
            model_inputs["clip_features"] = features.get("clip_features")
            model_inputs["video_metadata"] = features["video_metadata"][0]
            return model_inputs
        if not isinstance(video, (str, os.PathLike, Mapping)) and not hasattr(video, "read"):
            raise ValueError(
                "Each video must be a path, an open binary file, raw frames {'frames': (T, H, W, 3) uint8, 'fps': "
                "float} or pre-computed features {'clip_features': (T, D), 'fps', 'feature_stride'}, got "
                f"{type(video).__name__}."
            )
        self._check_raw_video_support()
        sampling_fps = self.processor.feature_extractor.sampling_fps if sampling_fps is None else sampling_fps
        # probing here reports a missing or unreadable file before any model work
        model_inputs["sampler"] = VideoFrameSampler(video, sampling_fps)
        return model_inputs

    def _check_raw_video_support(self) -> None:
        config = self.model.config
        if config.vision_config is None:
            raise ValueError(
                "This model has no CLIP vision tower, so it cannot embed video frames: pass pre-computed features "
                "{'clip_features': ..., 'fps': ..., 'feature_stride': ...} or use a model built with "
                "`ZeetadForTemporalActionDetection.from_clip(..., load_vision=True)`."
            )
        if config.localization_feature_dim is not None:
            raise ValueError(
                f"This model expects {config.localization_feature_dim}-d localization features, which raw video "
                "cannot provide: pass pre-computed features with 'input_features' and 'clip_features'."
            )
        crop_size = self.processor.feature_extractor.crop_size
        if (
            crop_size["height"] != config.vision_config.image_size
            or crop_size["width"] != config.vision_config.image_size
        ):
            raise ValueError(
                f"The feature extractor crops frames to {crop_size} but the vision tower expects "
                f"{config.vision_config.image_size}x{config.vision_config.image_size} images."
            )

    def _forward(
        self,
        model_inputs: dict[str, Any],
        frame_batch_size: int = 32,
        max_units: int | None = None,
        window_overlap: float | None = None,
        progress_callback: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        text_embeds = self._class_embeddings(model_inputs["input_ids"], model_inputs["attention_mask"])
        if "sampler" in model_inputs:
            sampler = model_inputs["sampler"]
            vision_dtype = self.model.vision_encoder.dtype
            # num_units, clip_dim: CLIP-only mode, the embeddings feed localization and classification
            input_features = embed_video_frames(
                sampler,
                self.processor.feature_extractor,
                lambda pixels: self.model.get_clip_features(pixels.to(self.device, vision_dtype)),
                frame_batch_size,
                progress_callback,
            )
            clip_features = None
            video_metadata = sampled_video_metadata(sampler)
        else:
            input_features = model_inputs["input_features"][0]
            clip_features = model_inputs["clip_features"]
            clip_features = None if clip_features is None else clip_features[0]
            video_metadata = model_inputs["video_metadata"]
        # num_units, dim (fixed_num_units when the model was trained on resized videos)
        input_features, clip_features, video_metadata = self.processor.feature_extractor.resize_to_fixed_units(
            input_features, clip_features, video_metadata
        )
        num_units = input_features.shape[0]
        windows = self.processor.feature_extractor.temporal_windows(num_units, max_units, window_overlap)
        dtype = self.model.dtype
        window_outputs = []
        for start, end in windows:
            outputs = self.model(
                input_features=input_features[None, start:end].to(self.device, dtype),
                clip_features=None if clip_features is None else clip_features[None, start:end].to(self.device, dtype),
                text_embeds=text_embeds,
            )
            window_outputs.append({key: getattr(outputs, key) for key in WINDOW_OUTPUT_KEYS})
        return {
            "window_outputs": window_outputs,
            "windows": windows,
            "num_units": num_units,
            "video_metadata": video_metadata,
            "text_labels": model_inputs["text_labels"],
        }

    def postprocess(
        self,
        model_outputs: dict[str, Any],
        threshold: float = 0.1,
        top_k: int | None = None,
        actionness_weight: float | None = None,
        video_fusion_top_k: int | None = None,
    ) -> list[dict]:
        outputs = merge_window_outputs(
            model_outputs["window_outputs"], model_outputs["windows"], model_outputs["num_units"]
        )
        nms_kwargs = {} if top_k is None else {"max_segments": top_k}
        if actionness_weight is None:
            actionness_weight = TUNED_ACTIONNESS_WEIGHTS[self.model.config.classification_head]
        (detections,) = self.processor.post_process_temporal_action_detection(
            outputs,
            [model_outputs["video_metadata"]],
            text_labels=model_outputs["text_labels"],
            threshold=threshold,
            actionness_weight=actionness_weight,
            video_fusion_top_k=video_fusion_top_k,
            **nms_kwargs,
        )
        return [
            {"score": score, "label": label, "segment": {"start": start, "end": end}}
            for score, label, (start, end) in zip(
                detections["scores"].tolist(), detections["text_labels"], detections["segments"].tolist()
            )
        ]


__all__ = ["NoDefaultModel", "ZeroShotTemporalActionDetectionPipeline", "merge_window_outputs"]
