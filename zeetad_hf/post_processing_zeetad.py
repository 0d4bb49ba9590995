"""From model outputs to scored, labelled `(start, end)` segments in seconds."""

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from .segment_utils import batched_nms, normalized_segments_to_seconds, segment_cw_to_se


REQUIRED_TIMING_KEYS = ("fps", "feature_stride", "window_size")
# Exponent of the actionness in the fused score, per classification head, chosen on held-out videos of seen classes
# (benchmarks/tune_score_fusion.py): the sigmoid head's probability already says whether a proposal is one of the
# candidates, and weighing in the class-agnostic actionness only lowered the mAP; the softmax head needs it to say
# whether a proposal is an action at all.
TUNED_ACTIONNESS_WEIGHTS = {"sigmoid": 0.0, "softmax": 0.5}
# CLIP's zero-shot classifier: cosine similarities times exp(learned temperature), 100 in the released checkpoints.
CLIP_LOGIT_SCALE = 100.0
# How results record the evaluation protocol: detection scores as the model gives them, or fused with video-level
# class scores of the same model (never an external classifier).
STRICT_PROTOCOL = "strict"
VIDEO_FUSION_PROTOCOL = "video-level fusion"


def evaluation_protocol(video_fusion_top_k: int | None) -> str:
    """The protocol name results are labelled with: `"strict"`, or `"video-level fusion"` with `video_fusion_top_k`."""
    return STRICT_PROTOCOL if video_fusion_top_k is None else VIDEO_FUSION_PROTOCOL


def video_level_class_scores(outputs) -> torch.Tensor:
    r"""
    Zero-shot video-level class scores from the model's own embeddings, as CLIP classifies an image: the mean of the
    video's unit embeddings (its CLIP frame embeddings through the model's semantic adapter, over the valid units),
    L2-normalised, against every class embedding, times CLIP's logit scale (100), softmax over the candidates.

    Args:
        outputs ([`ZeetadTemporalActionDetectionOutput`]):
            With `unit_embeds` `(batch_size, num_units, dim)`, `text_embeds` `(num_classes, dim)` and
            `feature_lengths`.

    Returns:
        `torch.FloatTensor` of shape `(batch_size, num_classes)`: per video, probabilities over the candidates.
    """
    if outputs.unit_embeds is None or outputs.text_embeds is None:
        raise ValueError("Video-level scores need the outputs' `unit_embeds` and `text_embeds`.")
    unit_embeds = outputs.unit_embeds.detach().float()
    # batch, units: valid units (padding is zero in `unit_embeds` already; the mask makes the mean exact)
    valid = torch.arange(unit_embeds.shape[1], device=unit_embeds.device) < outputs.feature_lengths[:, None]
    mean = (unit_embeds * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
    # batch, classes
    similarity = F.normalize(mean, dim=-1) @ F.normalize(outputs.text_embeds.detach().float(), dim=-1).T
    return (CLIP_LOGIT_SCALE * similarity).softmax(-1)


def post_process_temporal_action_detection(
    outputs,
    video_metadata: Sequence[Mapping[str, float]],
    text_labels: Sequence[str] | None = None,
    threshold: float = 0.0,
    top_k: int = 2000,
    max_segments: int = 200,
    min_score: float = 0.001,
    use_soft_nms: bool = True,
    nms_sigma: float = 0.5,
    iou_threshold: float = 0.1,
    multiclass_nms: bool = True,
    voting_threshold: float = 0.0,
    voting_weight: str = "score_iou",
    actionness_weight: float = TUNED_ACTIONNESS_WEIGHTS["sigmoid"],
    video_fusion_top_k: int | None = None,
) -> list[dict]:
    r"""
    Turn [`ZeetadTemporalActionDetectionOutput`] into detections in seconds, one dict per video.

    Per video, the score of a (query, class) pair fuses the class-agnostic actionness with the class probability,
    `sigmoid(actionness) ** w * p(class) ** (1 - w)` with `w = actionness_weight` (a weighted geometric mean: with the
    sigmoid head both factors are absolute, so the score stays comparable across candidate lists and a proposal that
    fits no candidate scores low; with the softmax head `p(class)` is relative to the candidates). The `top_k` best
    pairs are converted to seconds with [`~zeetad_hf.segment_utils.normalized_segments_to_seconds`] (the one place
    where time conversion happens), de-duplicated with (Soft-)NMS ([`~zeetad_hf.segment_utils.batched_nms`], the
    ActionFormer semantics), and those scoring at least `threshold` are returned.

    Args:
        outputs ([`ZeetadTemporalActionDetectionOutput`]):
            Model outputs with `logits`, `actionness_logits`, `pred_segments` and `feature_lengths`.
        video_metadata (`Sequence[Mapping[str, float]]`):
            One mapping per video with `fps` (frames per second the features were extracted from),
            `feature_stride` (frames between consecutive units), `window_size` (frames seen by one unit) and
            optionally `duration` (seconds; segments are clamped to `[0, duration]`) and `unit_offset` (index of
            the first unit when the outputs cover a window of a longer video). CLIP frame embeddings sampled at `r`
            frames per second are `{"fps": r, "feature_stride": 1, "window_size": 1}`.
        text_labels (`Sequence[str]`, *optional*):
            Names of the candidate classes, in prompt order; adds `"text_labels"` to every result.
        threshold (`float`, *optional*, defaults to 0.0):
            Minimum final score of a returned detection, in `[0, 1]`.
        top_k (`int`, *optional*, defaults to 2000):
            Number of best (query, class) pairs per video that enter NMS.
        max_segments (`int`, *optional*, defaults to 200):
            Maximum number of detections per video after NMS.
        min_score (`float`, *optional*, defaults to 0.001):
            Soft-NMS drops candidates whose decayed score falls below this.
        use_soft_nms (`bool`, *optional*, defaults to `True`):
            Gaussian Soft-NMS (default) or hard NMS.
        nms_sigma (`float`, *optional*, defaults to 0.5):
            Gaussian Soft-NMS decay `exp(-iou**2 / sigma)`.
        iou_threshold (`float`, *optional*, defaults to 0.1):
            Suppression IoU of hard NMS (unused by Soft-NMS).
        multiclass_nms (`bool`, *optional*, defaults to `True`):
            NMS per class (THUMOS14 protocol) or class-agnostic (ActivityNet protocol, allows voting).
        voting_threshold (`float`, *optional*, defaults to 0.0):
            Class-agnostic only: IoU above which pre-NMS segments vote for a kept segment's boundaries (0 = off).
        voting_weight (`str`, *optional*, defaults to `"score_iou"`):
            Voting weights, `"score_iou"` (ActionFormer) or `"score"` (TriDet/OpenTAD).
        actionness_weight (`float`, *optional*, defaults to 0.0):
            Exponent `w` in `[0, 1]` of the actionness in the score (`1 - w` goes to the class probability). Chosen
            per head on held-out videos of seen classes only (`benchmarks/tune_score_fusion.py`, see
            `TUNED_ACTIONNESS_WEIGHTS`): 0 for the (default) sigmoid head, 0.5 for the softmax head, which the
            pipeline and training pick from the model's config.
        video_fusion_top_k (`int`, *optional*):
            Video-level fusion (off by default, the `strict` protocol): only the `k` classes with the highest
            zero-shot video-level score ([`video_level_class_scores`]) are detected in each video, each detection's
            score multiplied by its class's video-level score, the way published ActivityNet numbers fuse video-level
            classifier scores — but from the same model, never from a classifier trained on the test classes.
            Results made with it are the `"video-level fusion"` protocol (see [`evaluation_protocol`]).

    Returns:
        `list[dict]`: per video `{"scores": FloatTensor[N], "labels": LongTensor[N] (class indices),
        "segments": FloatTensor[N, 2] (start, end) in seconds}` sorted by score, plus `"text_labels": list[str]`
        when `text_labels` is given.
    """
    class_probabilities, actionness_logits = outputs.class_probabilities, outputs.actionness_logits
    batch_size, _, num_classes = class_probabilities.shape
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"`threshold` must be in [0, 1], got {threshold}.")
    if not 0.0 <= actionness_weight <= 1.0:
        raise ValueError(f"`actionness_weight` must be in [0, 1], got {actionness_weight}.")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"`top_k` must be a positive integer, got {top_k!r}.")
    if len(video_metadata) != batch_size:
        raise ValueError(f"`video_metadata` has {len(video_metadata)} entries for a batch of {batch_size} videos.")
    for index, metadata in enumerate(video_metadata):
        missing = [key for key in REQUIRED_TIMING_KEYS if key not in metadata]
        if missing:
            raise ValueError(f"`video_metadata[{index}]` lacks {missing}; needed to convert feature units to seconds.")
    if text_labels is not None and len(text_labels) != num_classes:
        raise ValueError(f"`text_labels` has {len(text_labels)} names for {num_classes} classes in the outputs.")

    if video_fusion_top_k is not None and (
        isinstance(video_fusion_top_k, bool) or not isinstance(video_fusion_top_k, int) or video_fusion_top_k < 1
    ):
        raise ValueError(f"`video_fusion_top_k` must be a positive integer or None, got {video_fusion_top_k!r}.")

    # batch, queries, classes
    actionness = actionness_logits.detach().float().sigmoid()[..., None]
    scores = actionness**actionness_weight * class_probabilities.detach().float() ** (1 - actionness_weight)
    num_candidates = scores.shape[1] * num_classes
    if video_fusion_top_k is not None:
        video_scores = video_level_class_scores(outputs).to(scores.device)
        # batch, classes: the video-level score of each video's top-k classes; the other classes are not detected
        top = video_scores.topk(min(video_fusion_top_k, num_classes), dim=-1).indices
        kept_classes = torch.zeros_like(video_scores, dtype=torch.bool).scatter(-1, top, True)
        scores = (scores * video_scores[:, None, :]).masked_fill(~kept_classes[:, None, :], float("-inf"))
        num_candidates = scores.shape[1] * top.shape[1]
    segments = segment_cw_to_se(outputs.pred_segments.detach().float())
    results = []
    for index, metadata in enumerate(video_metadata):
        # with fusion the -inf pairs (classes outside the video's top k) come last and are never taken
        video_scores, flat_indices = scores[index].flatten().topk(min(top_k, num_candidates))
        query_indices, class_indices = flat_indices // num_classes, flat_indices % num_classes
        video_segments = normalized_segments_to_seconds(
            segments[index, query_indices],
            num_units=int(outputs.feature_lengths[index]),
            fps=metadata["fps"],
            feature_stride=metadata["feature_stride"],
            window_size=metadata["window_size"],
            duration=metadata.get("duration"),
            unit_offset=metadata.get("unit_offset", 0),
        )
        kept_segments, kept_scores, kept_classes = batched_nms(
            video_segments.cpu(),
            video_scores.cpu(),
            class_indices.cpu(),
            min_score=min_score,
            max_segments=max_segments,
            use_soft_nms=use_soft_nms,
            sigma=nms_sigma,
            iou_threshold=iou_threshold,
            multiclass=multiclass_nms,
            voting_threshold=voting_threshold,
            voting_weight=voting_weight,
        )
        keep = kept_scores >= threshold
        result = {"scores": kept_scores[keep], "labels": kept_classes[keep], "segments": kept_segments[keep]}
        if text_labels is not None:
            result["text_labels"] = [text_labels[label] for label in result["labels"].tolist()]
        results.append(result)
    return results


__all__ = [
    "TUNED_ACTIONNESS_WEIGHTS",
    "evaluation_protocol",
    "post_process_temporal_action_detection",
    "video_level_class_scores",
]
