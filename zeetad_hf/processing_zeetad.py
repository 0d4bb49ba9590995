"""ZEETAD processor: class prompts through the CLIP tokenizer, videos or pre-computed features, post-processing."""

import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin
from transformers.utils import logging

from .post_processing_zeetad import post_process_temporal_action_detection
from .video_utils import VideoFrameSampler, VideoInput


logger = logging.get_logger(__name__)

DEFAULT_PROMPT_TEMPLATES = ("a video of a person {}.",)

# A prompt ensemble for videos of human actions (the recipes in examples/configs/ use it): the class embedding is the
# L2-normalised mean of the L2-normalised embeddings of these prompts, as in CLIP's zero-shot evaluation. The
# templates mix sentences that read well with a verb phrase ("cliff diving", "applying sunscreen") and with a noun
# ("billiards", "BMX"); each costs one more pass of the text tower per class.
VIDEO_PROMPT_TEMPLATES = (
    "a video of a person {}.",
    "a video showing {}.",
    "a clip of someone {}.",
    "footage of people {}.",
    "a short video of the action {}.",
    "a person in the middle of {}.",
    "a low-quality video of {}.",
    "a close-up video of {}.",
)


def _split_camel_case(token: str) -> list[str]:
    """`"CleanAndJerk"` -> `["Clean", "And", "Jerk"]`, `"BMXRacing"` -> `["BMX", "Racing"]`, `"Top10Moves"` ->
    `["Top10", "Moves"]`: a word starts at an upper-case letter after a lower-case one, and at the last capital of a
    run of capitals or digits that a lower-case letter follows."""
    words, start = [], 0
    for index in range(1, len(token)):
        previous, current = token[index - 1], token[index]
        following = token[index + 1] if index + 1 < len(token) else ""
        if current.isupper() and (
            previous.islower() or ((previous.isupper() or previous.isdigit()) and following.islower())
        ):
            words.append(token[start:index])
            start = index
    words.append(token[start:])
    return words


def _is_acronym(word: str) -> bool:
    """`"BMX"`, `"TV"`, `"3D"`: at least two characters, an upper-case letter and no lower-case one."""
    return len(word) >= 2 and any(map(str.isupper, word)) and not any(map(str.islower, word))


def normalize_class_name(name: str) -> str:
    r"""
    The phrase that stands for a class name in prompts: dataset identifiers become the words people write.

    - A name with whitespace inside is already a phrase and is returned unchanged (ActivityNet's `"Applying
      sunscreen"`, free-text labels such as `"pole vault"`).
    - A name without whitespace is read as an identifier: underscores separate words, CamelCase boundaries separate
      words, and each word is lower-cased unless it is an acronym (two or more characters, capitals and digits
      only), which is kept as written: `"BaseballPitch"` -> `"baseball pitch"`, `"CleanAndJerk"` ->
      `"clean and jerk"`, `"pole_vault"` -> `"pole vault"`, `"Shotput"` -> `"shotput"`, `"BMXRacing"` ->
      `"BMX racing"`, `"BMX"` -> `"BMX"`, `"Ping-pong"` -> `"ping-pong"` (hyphens stay).

    Letter case changes only what is printed: CLIP's tokenizer lower-cases its input, so `"Archery"` and
    `"archery"` are the same tokens. Nothing but underscores and surrounding whitespace is removed, and a name
    that would become empty (`"__"`) is returned unchanged.

    Args:
        name (`str`):
            A class name, e.g. a THUMOS14 or ActivityNet label.

    Returns:
        `str`: the phrase to put in the prompt templates.

    Raises:
        `ValueError`: if `name` is not a string.
    """
    if not isinstance(name, str):
        raise ValueError(f"A class name must be a string, got {type(name).__name__} ({name!r}).")
    if len(name.split()) > 1:
        return name
    words = [word for part in name.replace("_", " ").split() for word in _split_camel_case(part)]
    if not words:
        return name
    return " ".join(word if _is_acronym(word) else word.lower() for word in words)


def validate_labels(labels: str | Sequence[str]) -> list[str]:
    r"""
    Check candidate class names: a non-empty list of distinct, non-empty strings (a single string is one label).

    Duplicates are compared case-insensitively and with runs of whitespace collapsed, because CLIP's tokenizer maps
    such variants to the same prompt: they would be two identical classes competing in the softmax, each getting
    half of the score. They raise instead of being silently merged, since the caller's label list (and the indices
    of `labels` in the outputs) would no longer match.

    Args:
        labels (`str` or `Sequence[str]`):
            Candidate class names.

    Returns:
        `list[str]`: the labels, unchanged.

    Raises:
        `ValueError`: empty list, a non-string or blank label, or duplicates (the message names them).
    """
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, Sequence) or len(labels) == 0:
        raise ValueError(f"The candidate labels must be a non-empty list of strings, got {labels!r}.")
    seen: dict[str, str] = {}
    duplicates = []
    for index, label in enumerate(labels):
        if not isinstance(label, str):
            raise ValueError(
                f"Candidate label {index} is a {type(label).__name__} ({label!r}); every label must be a string."
            )
        key = " ".join(label.lower().split())
        if not key:
            raise ValueError(f"Candidate label {index} is blank ({label!r}).")
        if key in seen:
            duplicates.append(label)
        seen.setdefault(key, label)
    if duplicates:
        raise ValueError(
            f"Duplicate candidate labels {duplicates} in {list(labels)} (case and spacing ignored): every class must "
            "appear once, otherwise identical prompts split the score between them."
        )
    return list(labels)


def validate_prompt_templates(prompt_templates: str | Sequence[str]) -> tuple[str, ...]:
    """Check prompt templates: a non-empty list of strings, each with exactly one `{}` for the label."""
    if isinstance(prompt_templates, str):
        prompt_templates = [prompt_templates]
    if not isinstance(prompt_templates, Sequence) or len(prompt_templates) == 0:
        raise ValueError(f"`prompt_templates` must be a non-empty list of strings, got {prompt_templates!r}.")
    for template in prompt_templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(
                f"Prompt template {template!r} must be a string with exactly one '{{}}' where the label goes, "
                "e.g. 'a video of a person {}.'."
            )
    return tuple(prompt_templates)


def _to_float_tensor(value, name: str) -> torch.FloatTensor:
    tensor = value if torch.is_tensor(value) else torch.from_numpy(np.asarray(value))
    if tensor.ndim != 2 or tensor.shape[0] == 0:
        raise ValueError(f"`{name}` must have shape (num_units >= 1, dim), got {tuple(tensor.shape)}.")
    if not tensor.is_floating_point():
        tensor = tensor.float()
    return tensor


def _positive_number(value, name: str, allow_zero: bool = False) -> float:
    valid = isinstance(value, numbers.Real) and not isinstance(value, bool)
    # `not x > 0` instead of `x <= 0` so that NaN is rejected too
    if not valid or not (value >= 0 if allow_zero else value > 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be a number {bound}, got {value!r}.")
    return float(value)


class ZeetadProcessor(ProcessorMixin):
    r"""
    Processor of [`ZeetadForTemporalActionDetection`]: a [`ZeetadFeatureExtractor`] (video side) and a CLIP
    tokenizer (class prompts), plus the post-processing that turns model outputs into detections in seconds.

    Args:
        feature_extractor ([`ZeetadFeatureExtractor`]):
            Frame sampling rate, CLIP frame preprocessing, feature padding and windowing.
        tokenizer ([`CLIPTokenizer`]):
            Tokenizer of the CLIP text encoder.
        prompt_templates (`Sequence[str]`, *optional*, defaults to `("a video of a person {}.",)`):
            Templates turning a class name into a prompt; each contains `{}` once. With several templates the text
            embeddings of a class are averaged (CLIP prompt ensembling: the L2-normalised mean of the L2-normalised
            embeddings of its prompts), e.g. `prompt_templates=VIDEO_PROMPT_TEMPLATES`. Saved in
            `processor_config.json`.
        normalize_class_names (`bool`, *optional*, defaults to `True`):
            Put [`normalize_class_name`]'s phrase in the prompts (`"BaseballPitch"` -> `"a video of a person
            baseball pitch."`) instead of the name as given. Only the prompts change: the labels returned by
            post-processing, the pipeline and training's predictions are the names as given. Saved in
            `processor_config.json`.
    """

    def __init__(
        self,
        feature_extractor,
        tokenizer,
        prompt_templates: Sequence[str] = DEFAULT_PROMPT_TEMPLATES,
        normalize_class_names: bool = True,
        **kwargs,
    ):
        self.prompt_templates = validate_prompt_templates(prompt_templates)
        if not isinstance(normalize_class_names, bool):
            raise ValueError(f"`normalize_class_names` must be True or False, got {normalize_class_names!r}.")
        self.normalize_class_names = normalize_class_names
        super().__init__(feature_extractor, tokenizer, **kwargs)

    def __call__(
        self,
        videos: VideoInput | list[VideoInput] | None = None,
        features: Mapping | list[Mapping] | None = None,
        text: str | Sequence[str] | None = None,
        prompt_templates: Sequence[str] | None = None,
        sampling_fps: float | None = None,
    ) -> BatchFeature:
        r"""
        Prepare class prompts and/or videos for the model.

        Args:
            videos (`str`, `os.PathLike`, binary file, `dict` or a list of them, *optional*):
                Videos to sample at `sampling_fps` and preprocess for the CLIP vision tower: paths, open binary files
                or raw frames `{"frames": (T, H, W, 3) uint8, "fps": float}`. Every sampled frame of every video is
                returned at once, so use this for short clips; the pipeline streams long videos instead.
            features (`dict` or `list[dict]`, *optional*):
                Pre-computed features, one dict per video: `"clip_features"` (`(num_units, clip_dim)` CLIP frame
                embeddings), `"fps"` (frame rate the features were extracted at), `"feature_stride"` (frames between
                consecutive units), optionally `"window_size"` (frames seen by one unit, defaults to
                `feature_stride`), `"input_features"` (`(num_units, localization_dim)` localization features for
                models with `localization_feature_dim`) and `"duration"` (seconds).
            text (`str` or `Sequence[str]`, *optional*):
                Candidate class names (see [`validate_labels`]); with `normalize_class_names`, their
                [`normalize_class_name`] phrases fill the templates.
            prompt_templates (`Sequence[str]`, *optional*):
                Overrides the processor's `prompt_templates` for this call.
            sampling_fps (`float`, *optional*):
                Overrides `feature_extractor.sampling_fps` for `videos`.

        Returns:
            [`BatchFeature`] with, depending on the inputs:

            - `input_ids`, `attention_mask`: `(num_classes, sequence_length)` with one template, else
              `(num_classes, num_templates, sequence_length)`, padded to the longest prompt and truncated to the
              tokenizer's `model_max_length` (with a warning naming the labels).
            - `input_features` (`(batch_size, num_units, dim)`), `feature_attention_mask` (`(batch_size, num_units)`)
              and, when the features carry separate localization features, `clip_features`; `video_metadata`.
            - `pixel_values`: a list with one `(num_units_i, 3, height, width)` tensor per video; `video_metadata`.

            `video_metadata` holds one dict per video with `fps`, `feature_stride`, `window_size` and `duration`
            (when known): what [`~ZeetadProcessor.post_process_temporal_action_detection`] needs to produce seconds.
        """
        if videos is None and features is None and text is None:
            raise ValueError("Pass at least one of `videos`, `features` or `text`.")
        if videos is not None and features is not None:
            raise ValueError("Pass either `videos` or `features`, not both.")
        data = {}
        if text is not None:
            data.update(self._encode_labels(text, prompt_templates))
        if features is not None:
            data.update(self._prepare_features([features] if isinstance(features, Mapping) else list(features)))
        if videos is not None:
            single = isinstance(videos, (str, Mapping)) or not isinstance(videos, (list, tuple))
            data.update(self._prepare_videos([videos] if single else list(videos), sampling_fps))
        return BatchFeature(data=data)

    def _encode_labels(self, text: str | Sequence[str], prompt_templates: Sequence[str] | None) -> dict:
        labels = validate_labels(text)
        templates = self.prompt_templates if prompt_templates is None else validate_prompt_templates(prompt_templates)
        phrases = [normalize_class_name(label) for label in labels] if self.normalize_class_names else labels
        if phrases is not labels:
            self._check_distinct_phrases(labels, phrases)
        # num_classes * num_templates prompts, class-major
        prompts = [template.replace("{}", phrase) for phrase in phrases for template in templates]
        max_length = self.tokenizer.model_max_length
        lengths = [len(ids) for ids in self.tokenizer(prompts)["input_ids"]]
        too_long = sorted(
            {labels[index // len(templates)] for index, length in enumerate(lengths) if length > max_length}
        )
        if too_long:
            logger.warning(
                f"Prompts of the labels {too_long} are longer than the tokenizer's maximum of {max_length} tokens and "
                "were truncated; shorten those labels or templates if the cut-off words matter."
            )
        encoded = self.tokenizer(
            prompts, padding="longest", truncation=True, max_length=max_length, return_tensors="pt"
        )
        if len(templates) > 1:
            # num_classes, num_templates, sequence_length
            encoded = {key: value.view(len(labels), len(templates), -1) for key, value in encoded.items()}
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    @staticmethod
    def _check_distinct_phrases(labels: list[str], phrases: list[str]) -> None:
        """Distinct labels whose phrases are the same prompt (case and spacing ignored, as in [`validate_labels`])
        would split one class's score between them: raise, naming them."""
        first_label: dict[str, str] = {}
        clashes = []
        for label, phrase in zip(labels, phrases):
            key = " ".join(phrase.lower().split())
            if key in first_label:
                clashes.append(f"{first_label[key]!r} and {label!r} (both {phrase!r})")
            first_label.setdefault(key, label)
        if clashes:
            raise ValueError(
                f"Candidate labels give the same prompt once class names are normalised: {', '.join(clashes)}. Pass "
                "each class once, or build the processor with `normalize_class_names=False`."
            )

    def _prepare_features(self, features: list[Mapping]) -> dict:
        if len(features) == 0:
            raise ValueError("`features` is an empty list.")
        clip_features, localization_features, video_metadata = [], [], []
        for index, item in enumerate(features):
            if not isinstance(item, Mapping) or "clip_features" not in item:
                raise ValueError(
                    f"`features[{index}]` must be a dict with 'clip_features', got {type(item).__name__}."
                )
            missing = [key for key in ("fps", "feature_stride") if key not in item]
            if missing:
                raise ValueError(f"`features[{index}]` lacks {missing}; they are needed to convert units to seconds.")
            clip = _to_float_tensor(item["clip_features"], f"features[{index}]['clip_features']")
            feature_stride = _positive_number(item["feature_stride"], f"features[{index}]['feature_stride']")
            metadata = {
                "fps": _positive_number(item["fps"], f"features[{index}]['fps']"),
                "feature_stride": feature_stride,
                "window_size": _positive_number(
                    item.get("window_size", feature_stride), f"features[{index}]['window_size']", allow_zero=True
                ),
            }
            if item.get("duration") is not None:
                metadata["duration"] = _positive_number(item["duration"], f"features[{index}]['duration']")
            clip_features.append(clip)
            video_metadata.append(metadata)
            if item.get("input_features") is not None:
                localization = _to_float_tensor(item["input_features"], f"features[{index}]['input_features']")
                if localization.shape[0] != clip.shape[0]:
                    raise ValueError(
                        f"`features[{index}]`: 'input_features' has {localization.shape[0]} units but "
                        f"'clip_features' has {clip.shape[0]}."
                    )
                localization_features.append(localization)
        if localization_features and len(localization_features) != len(features):
            raise ValueError("Either every or no entry of `features` must carry 'input_features'.")
        input_features, feature_attention_mask = self.feature_extractor.pad_features(
            localization_features or clip_features
        )
        data = {
            "input_features": input_features,
            "feature_attention_mask": feature_attention_mask,
            "video_metadata": video_metadata,
        }
        if localization_features:
            data["clip_features"] = self.feature_extractor.pad_features(clip_features)[0]
        return data

    def _prepare_videos(self, videos: list[VideoInput], sampling_fps: float | None) -> dict:
        sampling_fps = self.feature_extractor.sampling_fps if sampling_fps is None else sampling_fps
        pixel_values, video_metadata = [], []
        for video in videos:
            sampler = VideoFrameSampler(video, sampling_fps)
            chunks = [self.feature_extractor.preprocess_frames(frames) for frames, _ in sampler.iter_chunks()]
            pixel_values.append(torch.cat(chunks))
            video_metadata.append(sampled_video_metadata(sampler))
        return {"pixel_values": pixel_values, "video_metadata": video_metadata}

    def post_process_temporal_action_detection(
        self,
        outputs,
        video_metadata: Sequence[Mapping[str, float]],
        text_labels: Sequence[str] | None = None,
        threshold: float = 0.0,
        top_k: int = 2000,
        **kwargs,
    ) -> list[dict]:
        r"""
        Turn model outputs into detections in seconds; see
        [`~zeetad_hf.post_processing_zeetad.post_process_temporal_action_detection`] for every argument.

        Args:
            outputs ([`ZeetadTemporalActionDetectionOutput`]):
                Model outputs.
            video_metadata (`Sequence[Mapping[str, float]]`):
                One dict per video, e.g. the `video_metadata` returned by [`~ZeetadProcessor.__call__`].
            text_labels (`Sequence[str]`, *optional*):
                Candidate class names in prompt order; adds `"text_labels"` to every result.
            threshold (`float`, *optional*, defaults to 0.0):
                Minimum score of a returned detection, in `[0, 1]`.
            top_k (`int`, *optional*, defaults to 2000):
                Number of best (query, class) pairs per video that enter NMS.
            kwargs:
                NMS settings (`max_segments`, `use_soft_nms`, `nms_sigma`, ...).

        Returns:
            `list[dict]`: per video `{"scores", "labels", "segments" (seconds), "text_labels"}`.
        """
        return post_process_temporal_action_detection(
            outputs, video_metadata, text_labels=text_labels, threshold=threshold, top_k=top_k, **kwargs
        )


def sampled_video_metadata(sampler: VideoFrameSampler) -> dict[str, float]:
    """Time metadata of a video sampled by `sampler` (after iteration): one unit per frame at `sampling_fps`."""
    return {"fps": sampler.sampling_fps, "feature_stride": 1, "window_size": 1, "duration": sampler.duration}


__all__ = [
    "VIDEO_PROMPT_TEMPLATES",
    "ZeetadProcessor",
    "normalize_class_name",
    "validate_labels",
    "validate_prompt_templates",
]
