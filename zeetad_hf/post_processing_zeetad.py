"""From model outputs to scored, labelled `(start, end)` segments in seconds."""

from collections.abc import Mapping, Sequence

from .segment_utils import batched_nms, normalized_segments_to_seconds, segment_cw_to_se


REQUIRED_TIMING_KEYS = ("fps", "feature_stride", "window_size")
# Exponent of the actionness in the fused score, per classification head, chosen on held-out videos of seen classes
# (benchmarks/tune_score_fusion.py): the sigmoid head's probability already says whether a proposal is one of the
# candidates, and weighing in the class-agnostic actionness only lowered the mAP; the softmax head needs it to say
# whether a proposal is an action at all.
TUNED_ACTIONNESS_WEIGHTS = {"sigmoid": 0.0, "softmax": 0.5}


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

    # batch, queries, classes
    actionness = actionness_logits.detach().float().sigmoid()[..., None]
    scores = actionness**actionness_weight * class_probabilities.detach().float() ** (1 - actionness_weight)
    segments = segment_cw_to_se(outputs.pred_segments.detach().float())
    results = []
    for index, metadata in enumerate(video_metadata):
        video_scores, flat_indices = scores[index].flatten().topk(min(top_k, scores[index].numel()))
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


__all__ = ["TUNED_ACTIONNESS_WEIGHTS", "post_process_temporal_action_detection"]
