"""Training objective of ZEETAD: Hungarian matching between queries and ground-truth actions, and the set criterion.

The criterion follows the DETR recipe adapted to 1-D time and to an open vocabulary:

- every video's ground-truth actions are matched one-to-one to queries by minimising a cost built from a class cost
  over this batch's class prompts (sigmoid head: the focal cost of Deformable DETR on the per-prompt probability;
  softmax head: minus the probability), a focal cost on class-agnostic actionness, the L1 distance between
  `(center, width)` segments and the negative 1-D generalised IoU;
- classification: with the sigmoid head, a sigmoid focal loss over every (query, prompt) pair (matched query: one-hot
  target on its ground-truth class, unmatched queries: all zeros); with the softmax head, cross-entropy over the
  prompts for matched queries;
- matched queries are trained with L1 and `1 - gIoU`; all queries are trained with a sigmoid focal loss on actionness
  (matched = 1, unmatched = 0);
- every query loss is divided by the number of ground-truth segments per process averaged over the processes, and the
  foreground loss by the number of foreground units averaged the same way, so that one process and several processes
  (whose gradients DDP averages) train the same objective on the same data;
- the encoder's per-unit foreground logits (the paper's segment mask) are trained with a sigmoid focal loss against
  targets derived from the ground-truth segments;
- with `config.auxiliary_loss`, the four query losses are added for every intermediate decoder layer, each layer being
  matched on its own.
"""

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_zeetad import CLASSIFICATION_HEADS, ZeetadConfig
from .segment_utils import pairwise_generalized_segment_iou, segment_cw_to_se


LABEL_KEYS = ("class_labels", "segments")


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """
    Elementwise sigmoid focal loss of RetinaNet (Lin et al., 2017), without reduction:
    `-alpha_t * (1 - p_t) ** gamma * log(p_t)` with `p_t = p` for positives and `1 - p` for negatives.

    Args:
        logits (`torch.Tensor` of any shape):
            Raw scores; the probability is `sigmoid(logits)`.
        targets (`torch.Tensor` of the same shape as `logits`):
            Binary targets in `{0, 1}` (soft targets in `[0, 1]` are interpolated linearly).
        alpha (`float`):
            Weight of the positives in `[0, 1]`; negatives get `1 - alpha`.
        gamma (`float`):
            Focusing exponent (`0` gives the alpha-weighted binary cross-entropy).

    Returns:
        `torch.Tensor` of the same shape as `logits`: the loss of every element.
    """
    probabilities = logits.sigmoid()
    # binary_cross_entropy_with_logits is the numerically stable form of -log(p_t)
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = probabilities * targets + (1 - probabilities) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * (1 - p_t) ** gamma * cross_entropy


def focal_cost(logits: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """
    Focal matching cost of Deformable DETR, elementwise: the focal loss of calling each logit positive minus that of
    calling it negative, `alpha (1 - p)^gamma (-log p) - (1 - alpha) p^gamma (-log(1 - p))` with `p = sigmoid(logits)`.
    Low for confident positives; `logsigmoid` keeps the logarithms finite for any logit.
    """
    probabilities = logits.sigmoid()
    positive_cost = alpha * (1 - probabilities) ** gamma * -F.logsigmoid(logits)
    negative_cost = (1 - alpha) * probabilities**gamma * -F.logsigmoid(-logits)
    return positive_cost - negative_cost


def _validate_labels(labels: Sequence[Mapping[str, torch.Tensor]], batch_size: int, num_classes: int) -> None:
    # User input: raise a ValueError that names the offending video instead of failing deep inside the matcher.
    if not isinstance(labels, (list, tuple)) or len(labels) != batch_size:
        got = f"a list of length {len(labels)}" if isinstance(labels, (list, tuple)) else type(labels).__name__
        raise ValueError(f"`labels` must be a list of {batch_size} dicts (one per video), got {got}.")
    for video_index, video_labels in enumerate(labels):
        name = f"`labels[{video_index}]`"
        if not isinstance(video_labels, Mapping):
            raise ValueError(f"{name} must be a dict with keys {LABEL_KEYS}, got {type(video_labels).__name__}.")
        missing = [key for key in LABEL_KEYS if key not in video_labels]
        if missing:
            raise ValueError(f"{name} is missing the key(s) {missing}.")
        class_labels, segments = video_labels["class_labels"], video_labels["segments"]
        if not isinstance(class_labels, torch.Tensor) or class_labels.ndim != 1:
            raise ValueError(
                f"{name}['class_labels'] must be a 1-D tensor of shape (n,), got {_describe(class_labels)}."
            )
        if class_labels.is_floating_point() or class_labels.is_complex() or class_labels.dtype == torch.bool:
            raise ValueError(f"{name}['class_labels'] must be an integer tensor, got dtype {class_labels.dtype}.")
        if not isinstance(segments, torch.Tensor) or segments.ndim != 2 or segments.shape[1] != 2:
            raise ValueError(f"{name}['segments'] must be a tensor of shape (n, 2), got {_describe(segments)}.")
        if not segments.is_floating_point():
            raise ValueError(f"{name}['segments'] must be a floating-point tensor, got dtype {segments.dtype}.")
        if class_labels.shape[0] != segments.shape[0]:
            raise ValueError(
                f"{name} has {class_labels.shape[0]} class labels but {segments.shape[0]} segments; "
                "they must describe the same n actions."
            )
        if class_labels.numel() > 0 and (class_labels.min() < 0 or class_labels.max() >= num_classes):
            raise ValueError(
                f"{name}['class_labels'] must index the {num_classes} class prompts of this batch, i.e. lie in "
                f"[0, {num_classes}), got values in [{class_labels.min().item()}, {class_labels.max().item()}]."
            )
        if not torch.isfinite(segments).all():
            raise ValueError(f"{name}['segments'] contains NaN or infinite values.")
        if (segments[:, 1] <= 0).any():
            raise ValueError(f"{name}['segments'] must have positive widths (column 1 of (center, width)).")


def _check_classification_head(classification_head: str) -> None:
    if classification_head not in CLASSIFICATION_HEADS:
        raise ValueError(f"`classification_head` must be one of {CLASSIFICATION_HEADS}, got {classification_head!r}.")


def _describe(value: object) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__


def _check_query_outputs(
    class_logits: torch.Tensor, actionness_logits: torch.Tensor, pred_segments: torch.Tensor, name: str
) -> None:
    # The three per-query outputs of one decoder layer must agree on (batch_size, num_queries).
    if class_logits.ndim != 3:
        raise ValueError(
            f"{name} `class_logits` must be (batch_size, num_queries, num_classes), got {_describe(class_logits)}."
        )
    batch_size, num_queries, _ = class_logits.shape
    if tuple(actionness_logits.shape) != (batch_size, num_queries):
        raise ValueError(
            f"{name} `actionness_logits` must have shape {(batch_size, num_queries)}, got {_describe(actionness_logits)}."
        )
    if tuple(pred_segments.shape) != (batch_size, num_queries, 2):
        raise ValueError(
            f"{name} `pred_segments` must have shape {(batch_size, num_queries, 2)}, got {_describe(pred_segments)}."
        )


@torch.no_grad()
def _match(
    class_logits: torch.Tensor,
    actionness_logits: torch.Tensor,
    pred_segments: torch.Tensor,
    labels: Sequence[Mapping[str, torch.Tensor]],
    *,
    classification_head: str,
    class_cost: float,
    actionness_cost: float,
    l1_cost: float,
    giou_cost: float,
    focal_alpha: float,
    focal_gamma: float,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    # `hungarian_match` without label validation: `ZeetadLoss` validates once per batch and matches once per layer.
    device = pred_segments.device
    indices = []
    for video_index, video_labels in enumerate(labels):
        target_classes = video_labels["class_labels"].to(device=device, dtype=torch.long)  # num_targets
        target_segments = video_labels["segments"].to(device=device, dtype=torch.float32)  # num_targets, 2
        if target_classes.numel() == 0:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            indices.append((empty, empty.clone()))
            continue

        # 1. Class cost of every query for every target's class (num_queries, num_targets): the focal cost of the
        #    per-prompt sigmoid, or -p(target class) with the softmax running over this batch's class prompts.
        video_class_logits = class_logits[video_index].float()  # num_queries, num_classes
        if classification_head == "sigmoid":
            cost_class = focal_cost(video_class_logits[:, target_classes], focal_alpha, focal_gamma)
        else:
            cost_class = -video_class_logits.softmax(-1)[:, target_classes]

        # 2. Actionness cost: the same focal cost, so that the matcher prefers queries the actionness head already
        #    rates high; num_queries, 1 (the same for every target).
        cost_actionness = focal_cost(actionness_logits[video_index].float(), focal_alpha, focal_gamma)[:, None]

        # 3. Localisation costs: L1 on (center, width) and -gIoU on (start, end).
        predicted = pred_segments[video_index].float()  # num_queries, 2
        cost_l1 = torch.cdist(predicted, target_segments, p=1)  # num_queries, num_targets
        cost_giou = -pairwise_generalized_segment_iou(segment_cw_to_se(predicted), segment_cw_to_se(target_segments))

        cost = class_cost * cost_class + actionness_cost * cost_actionness + l1_cost * cost_l1 + giou_cost * cost_giou
        if not torch.isfinite(cost).all():
            raise ValueError(
                f"The matching cost of video {video_index} is not finite: the predictions contain NaN or inf."
            )

        # 4. Optimal one-to-one assignment (min(num_queries, num_targets) pairs), rows = queries sorted ascending.
        # imported here, inside try (which transformers' remote-code import check skips): only training needs scipy
        try:
            from scipy.optimize import linear_sum_assignment
        except ImportError as error:
            raise ImportError("Training ZEETAD (its Hungarian matching) needs scipy: `pip install scipy`.") from error

        query_indices, target_indices = linear_sum_assignment(cost.cpu().numpy())
        indices.append(
            (
                torch.as_tensor(query_indices, dtype=torch.long, device=device),
                torch.as_tensor(target_indices, dtype=torch.long, device=device),
            )
        )
    return indices


def hungarian_match(
    class_logits: torch.Tensor,
    actionness_logits: torch.Tensor,
    pred_segments: torch.Tensor,
    labels: Sequence[Mapping[str, torch.Tensor]],
    *,
    classification_head: str,
    class_cost: float,
    actionness_cost: float,
    l1_cost: float,
    giou_cost: float,
    focal_alpha: float,
    focal_gamma: float,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """
    One-to-one matching of queries to ground-truth actions, video by video, minimising

    `class_cost * C_class + actionness_cost * focal_cost(actionness) + l1_cost * L1(c, w) + giou_cost * -gIoU(s, e)`

    with `scipy.optimize.linear_sum_assignment`, where `C_class` is the [`focal_cost`] of the ground-truth class's
    logit (sigmoid head) or `-softmax(logits)[class]` (softmax head). Runs without gradient.

    Args:
        class_logits (`torch.Tensor` of shape `(batch_size, num_queries, num_classes)`):
            Query/prompt class logits of the head named by `classification_head`.
        actionness_logits (`torch.Tensor` of shape `(batch_size, num_queries)`):
            Class-agnostic actionness logits (sigmoid).
        pred_segments (`torch.Tensor` of shape `(batch_size, num_queries, 2)`):
            Predicted normalised `(center, width)` segments.
        labels (`list[dict]` of length `batch_size`):
            Per video, `"class_labels"` (`torch.LongTensor` of shape `(n,)`, indices into the prompts) and
            `"segments"` (`torch.FloatTensor` of shape `(n, 2)`, normalised `(center, width)`); `n` may be 0.
        classification_head (`str`):
            `"sigmoid"` or `"softmax"` (see [`ZeetadConfig.classification_head`]).
        class_cost (`float`):
            Weight of the class cost.
        actionness_cost (`float`):
            Weight of the focal actionness cost.
        l1_cost (`float`):
            Weight of the L1 distance between `(center, width)` segments.
        giou_cost (`float`):
            Weight of the negative 1-D generalised IoU.
        focal_alpha (`float`):
            Alpha of the focal costs.
        focal_gamma (`float`):
            Gamma of the focal costs.

    Returns:
        `list[tuple[torch.LongTensor, torch.LongTensor]]`: per video, `(query_indices, target_indices)` of length
        `min(num_queries, n)` on the device of `pred_segments`, query indices ascending; empty for videos with
        `n = 0`.

    Raises:
        `ValueError`: if `labels` is malformed (the message names the video), or the cost is not finite.
    """
    _check_query_outputs(class_logits, actionness_logits, pred_segments, name="hungarian_match:")
    _check_classification_head(classification_head)
    _validate_labels(labels, batch_size=class_logits.shape[0], num_classes=class_logits.shape[-1])
    return _match(
        class_logits,
        actionness_logits,
        pred_segments,
        labels,
        classification_head=classification_head,
        class_cost=class_cost,
        actionness_cost=actionness_cost,
        l1_cost=l1_cost,
        giou_cost=giou_cost,
        focal_alpha=focal_alpha,
        focal_gamma=focal_gamma,
    )


def foreground_targets(labels: Sequence[Mapping[str, torch.Tensor]], feature_mask: torch.Tensor) -> torch.Tensor:
    """
    Per-unit foreground targets for the encoder's segment mask.

    Unit `t` of a video with `V` valid units has the normalised centre `(t + 0.5) / V`; it is foreground iff that centre
    lies in `[start, end]` of any ground-truth segment of the video. A segment that covers no unit centre (shorter than
    a unit) marks the unit whose centre is nearest to its own centre, so that short actions are never lost. Padded
    units (and every unit of a video without valid units) are 0.

    Args:
        labels (`list[dict]` of length `batch_size`):
            Per video, `"segments"` (`torch.FloatTensor` of shape `(n, 2)`, normalised `(center, width)`).
        feature_mask (`torch.Tensor` of shape `(batch_size, num_units)`):
            True (or 1) for valid units; the valid units must be a prefix of each row.

    Returns:
        `torch.FloatTensor` of shape `(batch_size, num_units)` with values in `{0, 1}`, on the device of
        `feature_mask`.
    """
    batch_size, num_units = feature_mask.shape
    targets = torch.zeros(batch_size, num_units, dtype=torch.float32, device=feature_mask.device)
    valid_lengths = feature_mask.bool().sum(-1).tolist()
    for video_index, (video_labels, num_valid) in enumerate(zip(labels, valid_lengths)):
        segments = video_labels["segments"].to(device=feature_mask.device, dtype=torch.float32)  # num_targets, 2
        if num_valid == 0 or segments.shape[0] == 0:
            continue
        # 1. Normalised centres of the valid units, in the same [0, 1] frame as the segments.
        unit_centers = (torch.arange(num_valid, device=feature_mask.device, dtype=torch.float32) + 0.5) / num_valid
        start, end = segment_cw_to_se(segments).unbind(-1)  # num_targets each
        # 2. Containment of every unit centre in every segment.
        inside = (unit_centers[:, None] >= start[None, :]) & (unit_centers[:, None] <= end[None, :])  # V, num_targets
        foreground = inside.any(dim=1)  # V
        # 3. Segments that contain no unit centre still mark the unit nearest to their centre.
        uncovered = ~inside.any(dim=0)  # num_targets
        distances = (unit_centers[:, None] - segments[None, :, 0]).abs()  # V, num_targets
        foreground[distances.argmin(dim=0)[uncovered]] = True
        targets[video_index, :num_valid] = foreground.float()
    return targets


def average_across_processes(value: float) -> float:
    """Mean of `value` over the processes of an initialised `torch.distributed` group (the value itself otherwise).

    Normalising by the average number of segments per process, rather than this process's own count, gives every
    segment of the global batch the same weight once DDP averages the gradients (the DETR convention).
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return float(value)
    total = torch.tensor([float(value)], dtype=torch.float64)
    if torch.distributed.get_backend() == "nccl":
        total = total.cuda()
    torch.distributed.all_reduce(total)
    return total.item() / torch.distributed.get_world_size()


class ZeetadLoss(nn.Module):
    """
    Set criterion of [`ZeetadForTemporalActionDetection`]: Hungarian matching, then actionness, class, L1, gIoU and
    foreground losses (plus the query losses of every intermediate decoder layer when `config.auxiliary_loss`).

    Args:
        config ([`ZeetadConfig`]):
            Provides the matching costs (`matcher_*_cost`), the loss coefficients (`*_loss_coefficient`),
            `focal_alpha`, `focal_gamma` and `auxiliary_loss`.
    """

    def __init__(self, config: ZeetadConfig):
        super().__init__()
        self.classification_head = config.classification_head
        self.matcher_costs = {
            "classification_head": config.classification_head,
            "class_cost": config.matcher_class_cost,
            "actionness_cost": config.matcher_actionness_cost,
            "l1_cost": config.matcher_l1_cost,
            "giou_cost": config.matcher_giou_cost,
            "focal_alpha": config.focal_alpha,
            "focal_gamma": config.focal_gamma,
        }
        self.loss_coefficients = {
            "loss_actionness": config.actionness_loss_coefficient,
            "loss_class": config.class_loss_coefficient,
            "loss_l1": config.l1_loss_coefficient,
            "loss_giou": config.giou_loss_coefficient,
            "loss_foreground": config.foreground_loss_coefficient,
        }
        self.focal_alpha = config.focal_alpha
        self.focal_gamma = config.focal_gamma
        self.auxiliary_loss = config.auxiliary_loss

    def _query_losses(
        self,
        class_logits: torch.Tensor,
        actionness_logits: torch.Tensor,
        pred_segments: torch.Tensor,
        labels: Sequence[Mapping[str, torch.Tensor]],
        num_segments: float,
    ) -> dict[str, torch.Tensor]:
        # Match this layer's queries, then score them; `num_segments` is the batch's GT count (at least 1).
        indices = _match(class_logits, actionness_logits, pred_segments, labels, **self.matcher_costs)
        device = pred_segments.device
        batch_indices = torch.cat([torch.full_like(query, video) for video, (query, _) in enumerate(indices)])
        query_indices = torch.cat([query for query, _ in indices])  # num_matched
        target_classes = torch.cat(
            [video_labels["class_labels"].to(device)[target] for video_labels, (_, target) in zip(labels, indices)]
        ).long()  # num_matched
        target_segments = torch.cat(
            [video_labels["segments"].to(device)[target] for video_labels, (_, target) in zip(labels, indices)]
        ).to(pred_segments.dtype)  # num_matched, 2

        # Actionness: every query is trained, positives are the matched ones.
        actionness_targets = torch.zeros_like(actionness_logits)  # batch_size, num_queries
        actionness_targets[batch_indices, query_indices] = 1.0
        actionness = sigmoid_focal_loss(actionness_logits, actionness_targets, self.focal_alpha, self.focal_gamma)

        # Class. Sigmoid head: focal loss over every (query, prompt) pair, positives = each matched query's class.
        # Softmax head: cross-entropy over the prompts for matched queries (a sum over none is a 0 that stays
        # attached to the graph, as DDP expects every output to receive a gradient).
        if self.classification_head == "sigmoid":
            class_targets = torch.zeros_like(class_logits)  # batch_size, num_queries, num_classes
            class_targets[batch_indices, query_indices, target_classes] = 1.0
            class_losses = sigmoid_focal_loss(class_logits, class_targets, self.focal_alpha, self.focal_gamma)
            loss_class = class_losses.sum() / num_segments
        else:
            matched_class_logits = class_logits[batch_indices, query_indices]  # num_matched, num_classes
            loss_class = F.cross_entropy(matched_class_logits, target_classes, reduction="sum") / num_segments

        # Localisation on matched queries: L1 on (center, width), 1 - gIoU on (start, end).
        matched_segments = pred_segments[batch_indices, query_indices]  # num_matched, 2
        loss_l1 = F.l1_loss(matched_segments, target_segments, reduction="sum") / num_segments
        giou = torch.diagonal(
            pairwise_generalized_segment_iou(segment_cw_to_se(matched_segments), segment_cw_to_se(target_segments))
        )  # num_matched (pair i of the matrix is the i-th matched pair)
        loss_giou = (1 - giou).sum() / num_segments

        return {
            "loss_actionness": actionness.sum() / num_segments,
            "loss_class": loss_class,
            "loss_l1": loss_l1,
            "loss_giou": loss_giou,
        }

    def forward(
        self,
        class_logits: torch.Tensor,
        actionness_logits: torch.Tensor,
        pred_segments: torch.Tensor,
        foreground_logits: torch.Tensor,
        feature_mask: torch.Tensor,
        labels: Sequence[Mapping[str, torch.Tensor]],
        auxiliary_outputs: list[dict[str, torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """
        Args:
            class_logits (`torch.Tensor` of shape `(batch_size, num_queries, num_classes)`):
                Class logits of the configured head between queries and this batch's class prompts.
            actionness_logits (`torch.Tensor` of shape `(batch_size, num_queries)`):
                Class-agnostic actionness logits (sigmoid).
            pred_segments (`torch.Tensor` of shape `(batch_size, num_queries, 2)`):
                Predicted `(center, width)` in `(0, 1)`, relative to each video's valid length.
            foreground_logits (`torch.Tensor` of shape `(batch_size, num_units)`):
                Per-unit foreground logits of the encoder (the segment mask).
            feature_mask (`torch.Tensor` of shape `(batch_size, num_units)`):
                True (or 1) for valid units, a prefix of each row.
            labels (`list[dict]` of length `batch_size`):
                Per video, `"class_labels"` (`torch.LongTensor` of shape `(n,)`, indices into the `num_classes`
                prompts) and `"segments"` (`torch.FloatTensor` of shape `(n, 2)`, normalised `(center, width)` with
                positive widths); `n` may be 0.
            auxiliary_outputs (`list[dict]`, *optional*):
                One dict per intermediate decoder layer with `"logits"`, `"actionness_logits"` and
                `"pred_segments"` shaped as above. Used only when `config.auxiliary_loss` is True.

        Returns:
            `tuple[torch.Tensor, dict[str, torch.Tensor]]`: the weighted total loss (scalar) and the unweighted
            components `loss_actionness`, `loss_class`, `loss_l1`, `loss_giou`, `loss_foreground`, plus
            `loss_actionness_{i}`, `loss_class_{i}`, `loss_l1_{i}`, `loss_giou_{i}` for auxiliary layer `i`.
            `loss_actionness`, `loss_class`, `loss_l1` and `loss_giou` are divided by the number of ground-truth
            segments of this process's batch averaged over the processes, `loss_foreground` by the number of
            foreground units averaged the same way (each at least 1).

        Raises:
            `ValueError`: on mismatched output shapes or malformed `labels` (the message names the video).
        """
        # 1. Validate shapes and labels once; the per-layer matching below trusts them.
        _check_query_outputs(class_logits, actionness_logits, pred_segments, name="ZeetadLoss:")
        batch_size, _, num_classes = class_logits.shape
        if foreground_logits.ndim != 2 or tuple(feature_mask.shape) != tuple(foreground_logits.shape):
            raise ValueError(
                f"`foreground_logits` and `feature_mask` must both have shape (batch_size, num_units), got "
                f"{_describe(foreground_logits)} and {_describe(feature_mask)}."
            )
        if foreground_logits.shape[0] != batch_size:
            raise ValueError(
                f"`foreground_logits` has batch size {foreground_logits.shape[0]}, `class_logits` has {batch_size}."
            )
        _validate_labels(labels, batch_size=batch_size, num_classes=num_classes)

        # 2. Normaliser: number of ground-truth segments in the batch, known from shapes (no device sync).
        num_segments = average_across_processes(sum(video_labels["class_labels"].shape[0] for video_labels in labels))
        num_segments = max(num_segments, 1.0)

        # 3. Query losses of the final decoder layer.
        loss_dict = self._query_losses(class_logits, actionness_logits, pred_segments, labels, num_segments)

        # 4. Foreground (segment mask) loss over valid units, normalised by the number of foreground units per
        #    process averaged over the processes (as the segment count).
        valid = feature_mask.bool()
        unit_targets = foreground_targets(labels, feature_mask).to(foreground_logits.dtype)  # batch_size, num_units
        unit_losses = sigmoid_focal_loss(foreground_logits, unit_targets, self.focal_alpha, self.focal_gamma)
        num_foreground_units = max(average_across_processes(unit_targets.sum().item()), 1.0)
        loss_dict["loss_foreground"] = unit_losses[valid].sum() / num_foreground_units

        # 5. Auxiliary decoder layers, each matched on its own, weighted like the final layer.
        weighted = [self.loss_coefficients[name] * value for name, value in loss_dict.items()]
        if self.auxiliary_loss and auxiliary_outputs is not None:
            for layer_index, layer_outputs in enumerate(auxiliary_outputs):
                layer_logits = (
                    layer_outputs["logits"],
                    layer_outputs["actionness_logits"],
                    layer_outputs["pred_segments"],
                )
                _check_query_outputs(*layer_logits, name=f"ZeetadLoss: `auxiliary_outputs[{layer_index}]`")
                if layer_logits[0].shape != class_logits.shape:
                    raise ValueError(
                        f"`auxiliary_outputs[{layer_index}]['logits']` must have shape "
                        f"{tuple(class_logits.shape)}, got {tuple(layer_logits[0].shape)}."
                    )
                layer_losses = self._query_losses(*layer_logits, labels, num_segments)
                for name, value in layer_losses.items():
                    loss_dict[f"{name}_{layer_index}"] = value
                    weighted.append(self.loss_coefficients[name] * value)

        # 6. Weighted total (a plain sum so that components of different dtypes still add up).
        loss = sum(weighted)
        return loss, loss_dict


__all__ = ["ZeetadLoss", "focal_cost", "foreground_targets", "hungarian_match", "sigmoid_focal_loss"]
