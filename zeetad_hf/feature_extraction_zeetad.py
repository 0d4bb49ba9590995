"""Video-side preprocessing of ZEETAD: CLIP frame preprocessing in batches, feature padding, fixed-length resizing,
temporal windows."""

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import FeatureExtractionMixin

from .segment_utils import grid_to_seconds, seconds_to_grid
from .video_utils import resize_rgb_frames, validate_sampling_fps


# OpenAI CLIP's normalisation statistics (the values of `transformers.image_utils.OPENAI_CLIP_MEAN/STD`).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _check_window_overlap(window_overlap: float) -> None:
    """Raise a `ValueError` naming `window_overlap` unless it is a number in `[0, 1)` (not a string or a `bool`)."""
    # `not 0 <= x < 1` rejects NaN too; the type check comes first so that a string ("0.5") is named, not compared
    if (
        isinstance(window_overlap, bool)
        or not isinstance(window_overlap, numbers.Real)
        or not 0.0 <= window_overlap < 1.0
    ):
        raise ValueError(f"`window_overlap` must be a number in [0, 1), got {window_overlap!r}.")


def resample_units(features: torch.Tensor, num_units: int) -> torch.Tensor:
    r"""
    Linearly resample `(T, D)` features of one video to `(num_units, D)`, unit centres onto unit centres
    (`align_corners=False`, as ActionFormer's fixed-length ActivityNet features); both sequences span the same time.

    Args:
        features (`torch.Tensor` of shape `(T, D)`):
            The features, `T >= 1`.
        num_units (`int`):
            The new length.

    Returns:
        `torch.Tensor` of shape `(num_units, D)`: `features` itself when it already has that length, else float32.
    """
    if features.shape[0] == num_units:
        return features
    # 1, D, T -> 1, D, num_units
    resized = F.interpolate(features.T[None].float(), size=num_units, mode="linear", align_corners=False)
    return resized[0].T.contiguous()


def window_core_boundaries(windows: Sequence[tuple[int, int]]) -> list[float]:
    r"""
    The cores of overlapping windows: window `i` owns the unit positions in `[boundaries[i], boundaries[i + 1])`,
    i.e. the part of it closer to it than to a neighbour (half-way through each overlap; the first and last cores
    extend to the video ends). An action is reported by (and counted for) the window whose core holds its centre.

    Args:
        windows (`Sequence[tuple[int, int]]`):
            `(start, end)` unit indices of the windows, in order (see [`ZeetadFeatureExtractor.temporal_windows`]).

    Returns:
        `list[float]`: `len(windows) + 1` boundaries in units, from `-inf` to `inf`.
    """
    middles = [(next_start + end) / 2 for (_, end), (next_start, _) in zip(windows[:-1], windows[1:])]
    return [float("-inf"), *middles, float("inf")]


class ZeetadFeatureExtractor(FeatureExtractionMixin):
    r"""
    Video-side preprocessing for [`ZeetadForTemporalActionDetection`].

    - Raw video: frames are sampled at `sampling_fps` temporal units per second (see
      [`~zeetad_hf.video_utils.VideoFrameSampler`]) and preprocessed like CLIP's image processor: bicubic resize of
      the shortest edge to `size["shortest_edge"]` (antialiased, on uint8), center crop to `crop_size`, rescale by
      `rescale_factor`, normalise with `image_mean` / `image_std`. The resize is FFmpeg's scaler
      ([`~zeetad_hf.video_utils.resize_rgb_frames`]), which the video decoder can apply while decoding (the raw-video
      pipeline does, so only small frames leave the decoder and this class then only crops and normalises); the
      result is the same either way. It differs from transformers' per-image `CLIPImageProcessorPil` (PIL bicubic)
      by at most 3 (320x240 source) to 6 (1280x720) uint8 levels (1/255 each, before normalisation), 0.3-0.6 levels
      on average, on decoded video frames: a twentieth of the error H.264 itself leaves in them (see
      tests/test_feature_extraction_zeetad.py).
    - Pre-computed features: [`~ZeetadFeatureExtractor.pad_features`] right-pads `(num_units, dim)` features into a
      batch with a `feature_attention_mask`.
    - Fixed length (optional): [`~ZeetadFeatureExtractor.resize_to_fixed_units`] resamples every video to
      `fixed_num_units` units, as the TAD methods evaluated on ActivityNet do (ActionFormer: 192 units), and gives the
      timing of the new units, so that seconds stay exact.
    - Long videos: [`~ZeetadFeatureExtractor.temporal_windows`] splits a video into overlapping windows of at most
      `max_units` units.

    Args:
        sampling_fps (`float`, *optional*, defaults to 1.0):
            Temporal units per second of raw video, a finite number `> 0`; unit `i` covers `[i / r, (i + 1) / r)`
            seconds. 1 unit per second matches the granularity of action boundaries in THUMOS14/ActivityNet well
            enough while keeping the CLIP vision cost at one image per second of video.
        size (`dict[str, int]`, *optional*, defaults to `{"shortest_edge": 224}`):
            Target of the aspect-preserving resize (the longer edge becomes `int(shortest_edge * long / short)`).
        crop_size (`dict[str, int]`, *optional*, defaults to `{"height": 224, "width": 224}`):
            Size of the center crop; must match the vision tower's `image_size` and fit inside the resized frame.
        rescale_factor (`float`, *optional*, defaults to `1 / 255`):
            Factor that maps uint8 pixel values to `[0, 1]`.
        image_mean (`list[float]`, *optional*, defaults to OpenAI CLIP's mean):
            Per-channel mean subtracted after rescaling.
        image_std (`list[float]`, *optional*, defaults to OpenAI CLIP's std):
            Per-channel standard deviation divided by after subtracting the mean.
        max_units (`int`, *optional*, defaults to 2304):
            Longest sequence of units run through the model at once; longer videos are cut into overlapping windows
            (2304 units = 38.4 minutes at 1 unit per second).
        window_overlap (`float`, *optional*, defaults to 0.25):
            Fraction of `max_units` shared by consecutive windows, a number in `[0, 1)`.
        padding_value (`float`, *optional*, defaults to 0.0):
            Value of padded feature positions.
        fixed_num_units (`int`, *optional*):
            Resize every video to this many units before the model (training collate and pipeline alike); `None`
            keeps each video's own length. Saved with the processor, so a model trained on resized videos is run on
            resized videos.
    """

    model_input_names = ["input_features", "feature_attention_mask"]

    def __init__(
        self,
        sampling_fps: float = 1.0,
        size: dict[str, int] | None = None,
        crop_size: dict[str, int] | None = None,
        rescale_factor: float = 1 / 255,
        image_mean: list[float] | tuple[float, ...] = CLIP_MEAN,
        image_std: list[float] | tuple[float, ...] = CLIP_STD,
        max_units: int = 2304,
        window_overlap: float = 0.25,
        padding_value: float = 0.0,
        fixed_num_units: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.sampling_fps = sampling_fps
        self.size = dict(size) if size is not None else {"shortest_edge": 224}
        self.crop_size = dict(crop_size) if crop_size is not None else {"height": 224, "width": 224}
        self.rescale_factor = rescale_factor
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)
        self.max_units = max_units
        self.window_overlap = window_overlap
        self.padding_value = padding_value
        self.fixed_num_units = fixed_num_units
        self.validate()

    def validate(self) -> None:
        """Check every field; raises `ValueError` naming the field and its value."""
        validate_sampling_fps(self.sampling_fps)
        if set(self.size) != {"shortest_edge"} or not self.size["shortest_edge"] >= 1:
            raise ValueError(f"`size` must be {{'shortest_edge': positive int}}, got {self.size!r}.")
        if set(self.crop_size) != {"height", "width"} or min(self.crop_size.values()) < 1:
            raise ValueError(f"`crop_size` must be {{'height': int, 'width': int}} > 0, got {self.crop_size!r}.")
        if max(self.crop_size.values()) > self.size["shortest_edge"]:
            raise ValueError(
                f"`crop_size` {self.crop_size} must fit inside frames resized to shortest edge "
                f"{self.size['shortest_edge']}."
            )
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ValueError(
                f"`image_mean` and `image_std` need 3 values (std > 0), got {self.image_mean} and {self.image_std}."
            )
        if isinstance(self.max_units, bool) or not isinstance(self.max_units, int) or self.max_units < 1:
            raise ValueError(f"`max_units` must be a positive integer, got {self.max_units!r}.")
        _check_window_overlap(self.window_overlap)
        if self.fixed_num_units is not None and (
            isinstance(self.fixed_num_units, bool)
            or not isinstance(self.fixed_num_units, int)
            or self.fixed_num_units < 1
        ):
            raise ValueError(f"`fixed_num_units` must be a positive integer or None, got {self.fixed_num_units!r}.")

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """`(height, width)` after resizing the shortest edge, rounded like transformers' CLIP image processor."""
        shortest_edge = self.size["shortest_edge"]
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(shortest_edge * long / short)
        return (shortest_edge, new_long) if height <= width else (new_long, shortest_edge)

    def preprocess_frames(
        self, frames: np.ndarray | torch.Tensor, out: torch.FloatTensor | None = None
    ) -> torch.FloatTensor:
        r"""
        Resize, center-crop, rescale and normalise a chunk of RGB frames as CLIP does.

        Frames already at [`~ZeetadFeatureExtractor.resized_size`] (e.g. resized by the video decoder) are only
        cropped and normalised.

        Args:
            frames (`np.ndarray` or `torch.Tensor` of shape `(num_frames, height, width, 3)`, uint8):
                RGB frames of one video.
            out (`torch.FloatTensor` of shape `(num_frames, 3, crop_height, crop_width)`, *optional*):
                Contiguous float32 CPU tensor to write the result into (e.g. a buffer reused for every chunk of a
                video); a new tensor by default.

        Returns:
            `torch.FloatTensor` of shape `(num_frames, 3, crop_height, crop_width)`: the `pixel_values` of the CLIP
            vision tower (`out` when given).
        """
        pixels = torch.as_tensor(frames)
        if pixels.ndim != 4 or pixels.shape[-1] != 3 or pixels.dtype != torch.uint8:
            raise ValueError(
                f"`frames` must be a (num_frames, height, width, 3) uint8 array, got shape {tuple(pixels.shape)} "
                f"and dtype {pixels.dtype}."
            )
        num_frames, height, width = pixels.shape[:3]
        new_height, new_width = self.resized_size(height, width)
        if (new_height, new_width) != (height, width):
            pixels = torch.from_numpy(resize_rgb_frames(pixels.cpu().numpy(), new_height, new_width))
        crop_height, crop_width = self.crop_size["height"], self.crop_size["width"]
        output_shape = (num_frames, 3, crop_height, crop_width)
        if out is None:
            out = torch.empty(output_shape, dtype=torch.float32)
        elif tuple(out.shape) != output_shape or out.dtype != torch.float32 or not out.is_contiguous():
            raise ValueError(
                f"`out` must be a contiguous float32 tensor of shape {output_shape}, got shape {tuple(out.shape)} "
                f"and dtype {out.dtype}."
            )
        top, left = (new_height - crop_height) // 2, (new_width - crop_width) // 2
        # num_frames, 3, crop_height, crop_width: a channels-first view of the channels-last frames
        out.copy_(pixels[:, top : top + crop_height, left : left + crop_width].permute(0, 3, 1, 2))
        mean = torch.tensor(self.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.image_std, dtype=torch.float32).view(1, 3, 1, 1)
        return out.mul_(self.rescale_factor).sub_(mean).div_(std)

    def pad_features(self, features: list[np.ndarray | torch.Tensor]) -> tuple[torch.FloatTensor, torch.LongTensor]:
        r"""
        Right-pad per-video features into one batch.

        Args:
            features (`list` of `np.ndarray` or `torch.Tensor`, each of shape `(num_units_i, dim)`):
                Features of every video; all share `dim` and have at least one unit.

        Returns:
            `tuple[torch.FloatTensor, torch.LongTensor]`: `input_features` of shape `(batch_size, max_units_i, dim)`
            (float32, padded with `padding_value`) and `feature_attention_mask` of shape
            `(batch_size, max_units_i)` (1 for real units, 0 for padding).
        """
        if len(features) == 0:
            raise ValueError("`features` is empty: pass at least one (num_units, dim) array.")
        tensors = [torch.as_tensor(np.asarray(item) if not torch.is_tensor(item) else item) for item in features]
        for index, tensor in enumerate(tensors):
            if tensor.ndim != 2 or tensor.shape[0] == 0:
                raise ValueError(
                    f"`features[{index}]` must have shape (num_units >= 1, dim), got {tuple(tensor.shape)}."
                )
            if tensor.shape[1] != tensors[0].shape[1]:
                raise ValueError(
                    f"`features[{index}]` has dimension {tensor.shape[1]}, `features[0]` has {tensors[0].shape[1]}."
                )
        lengths = torch.tensor([tensor.shape[0] for tensor in tensors])
        input_features = torch.full(
            (len(tensors), int(lengths.max()), tensors[0].shape[1]), self.padding_value, dtype=torch.float32
        )
        for index, tensor in enumerate(tensors):
            input_features[index, : tensor.shape[0]] = tensor.to(torch.float32)
        feature_attention_mask = (torch.arange(input_features.shape[1])[None] < lengths[:, None]).long()
        return input_features, feature_attention_mask

    def resize_to_fixed_units(
        self, features: torch.Tensor, clip_features: torch.Tensor | None, timing: Mapping[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
        r"""
        Resample one video to `fixed_num_units` units (nothing changes when it is `None`).

        The `T` units of the video cover the frames `[0, (T - 1) * feature_stride + window_size]`; the new units
        tile that span, so each new unit has `feature_stride = window_size = span / fixed_num_units` frames, and the
        package's seconds conversion ([`~zeetad_hf.segment_utils.normalized_segments_to_seconds`]) with the returned
        timing maps positions on the new grid to the same seconds as on the old one. Each new unit's features are
        interpolated linearly at the time of its centre between the two old units around it (held constant beyond
        the first and last old centres); where `feature_stride == window_size` (e.g. TSP, CLIP frames) this is
        ActionFormer's `F.interpolate(..., align_corners=False)`. `clip_features`, assumed to span the same time,
        are resampled with [`resample_units`].

        Args:
            features (`torch.Tensor` of shape `(T, D)`):
                The video's features (localization features, or CLIP features in CLIP-only mode).
            clip_features (`torch.Tensor` of shape `(T_clip, D_clip)`, *optional*):
                Second features spanning the same time (any length), resampled to the same `fixed_num_units`.
            timing (`Mapping[str, Any]`):
                The video's `fps`, `feature_stride` and `window_size` (other keys are passed through).

        Returns:
            `tuple`: `(features, clip_features, timing)`, `(fixed_num_units, D)` features and the timing of the new
            units.
        """
        if self.fixed_num_units is None:
            return features, clip_features, dict(timing)
        if features.ndim != 2 or features.shape[0] == 0:
            raise ValueError(f"`features` must have shape (num_units >= 1, dim), got {tuple(features.shape)}.")
        num_units = features.shape[0]
        new_timing = self.fixed_units_timing(num_units, timing)
        # the position of every new unit's centre on the video's own grid: fixed_num_units
        centers = grid_to_seconds(
            torch.arange(self.fixed_num_units, dtype=torch.float64),
            new_timing["fps"],
            new_timing["feature_stride"],
            new_timing["window_size"],
        )
        positions = seconds_to_grid(centers, timing["fps"], timing["feature_stride"], timing["window_size"])
        positions = positions.clamp(0, num_units - 1)
        # linear interpolation between the two units around each position (values beyond the end units are held)
        lower = positions.floor().long().clamp(max=max(num_units - 2, 0))
        weight = (positions - lower).clamp(0, 1).to(torch.float32)[:, None]
        upper = (lower + 1).clamp(max=num_units - 1)
        values = features.float()
        resized = values[lower] * (1 - weight) + values[upper] * weight
        if clip_features is not None:
            clip_features = resample_units(clip_features, self.fixed_num_units)
        return resized, clip_features, new_timing

    def fixed_units_timing(self, num_units: int, timing: Mapping[str, Any]) -> dict[str, Any]:
        r"""
        The timing of a video of `num_units` units once resized to `fixed_num_units` (see
        [`~ZeetadFeatureExtractor.resize_to_fixed_units`]): `timing` itself when `fixed_num_units` is `None`.

        Args:
            num_units (`int`):
                The video's own number of units.
            timing (`Mapping[str, Any]`):
                Its `fps`, `feature_stride` and `window_size` (other keys are passed through).

        Returns:
            `dict[str, Any]`: the timing, with `feature_stride = window_size = span / fixed_num_units` frames.
        """
        if self.fixed_num_units is None:
            return dict(timing)
        # frames covered by the video's units: the new units tile them
        span = (num_units - 1) * timing["feature_stride"] + timing["window_size"]
        unit = span / self.fixed_num_units
        return {**timing, "feature_stride": unit, "window_size": unit}

    def temporal_windows(
        self, num_units: int, max_units: int | None = None, window_overlap: float | None = None
    ) -> list[tuple[int, int]]:
        r"""
        Cut `num_units` units into overlapping windows of `max_units` units.

        Windows start every `max_units - round(window_overlap * max_units)` units; the last one is aligned to the
        end of the video so that every window has the full length (a video of at most `max_units` units is one
        window).

        Args:
            num_units (`int`):
                Number of units of the video, at least 1.
            max_units (`int`, *optional*):
                Window length; defaults to `self.max_units`.
            window_overlap (`float`, *optional*):
                Overlap fraction in `[0, 1)`; defaults to `self.window_overlap`.

        Returns:
            `list[tuple[int, int]]`: `(start, end)` unit indices of every window (end exclusive), in order.
        """
        max_units = self.max_units if max_units is None else max_units
        window_overlap = self.window_overlap if window_overlap is None else window_overlap
        if isinstance(max_units, bool) or not isinstance(max_units, int) or max_units < 1:
            raise ValueError(f"`max_units` must be a positive integer, got {max_units!r}.")
        _check_window_overlap(window_overlap)
        if num_units < 1:
            raise ValueError(f"`num_units` must be at least 1, got {num_units}.")
        if num_units <= max_units:
            return [(0, num_units)]
        stride = max(1, max_units - round(window_overlap * max_units))
        num_windows = math.ceil((num_units - max_units) / stride) + 1
        starts = [min(index * stride, num_units - max_units) for index in range(num_windows)]
        return [(start, start + max_units) for start in starts]


__all__ = ["ZeetadFeatureExtractor", "resample_units", "window_core_boundaries"]
