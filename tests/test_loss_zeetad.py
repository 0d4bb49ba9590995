import itertools
import math
import re

import pytest
import torch

from zeetad_hf.configuration_zeetad import ZeetadConfig
from zeetad_hf.loss_zeetad import ZeetadLoss, foreground_targets, hungarian_match, sigmoid_focal_loss


TINY_TEXT_CONFIG = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 1,
    "num_attention_heads": 4,
    "projection_dim": 16,
    "vocab_size": 99,
    "max_position_embeddings": 16,
    "bos_token_id": 97,
    "eos_token_id": 98,
    "pad_token_id": 98,
}
HEADS = ("sigmoid", "softmax")
MATCHER_COSTS = {
    "class_cost": 1.0,
    "actionness_cost": 2.0,
    "l1_cost": 5.0,
    "giou_cost": 2.0,
    "focal_alpha": 0.25,
    "focal_gamma": 2.0,
}
LOSS_KEYS = {"loss_actionness", "loss_class", "loss_l1", "loss_giou"}
LOSS_INPUT_KEYS = ("class_logits", "actionness_logits", "pred_segments")


def get_config(**kwargs) -> ZeetadConfig:
    return ZeetadConfig(text_config=TINY_TEXT_CONFIG, **kwargs)


def make_labels(class_labels: list[int], segments: list[list[float]]) -> dict[str, torch.Tensor]:
    return {
        "class_labels": torch.tensor(class_labels, dtype=torch.long),
        "segments": torch.tensor(segments, dtype=torch.float32).reshape(-1, 2),
    }


def random_labels(generator: torch.Generator, num_targets: int, num_classes: int) -> dict[str, torch.Tensor]:
    centers = torch.rand(num_targets, generator=generator) * 0.6 + 0.2
    widths = torch.rand(num_targets, generator=generator) * 0.3 + 0.02
    return {
        "class_labels": torch.randint(num_classes, (num_targets,), generator=generator),
        "segments": torch.stack((centers, widths), dim=-1),
    }


def random_outputs(generator: torch.Generator, batch_size: int, num_queries: int, num_classes: int, num_units: int):
    return {
        "class_logits": torch.randn(batch_size, num_queries, num_classes, generator=generator) * 3,
        "actionness_logits": torch.randn(batch_size, num_queries, generator=generator) * 2,
        "pred_segments": torch.rand(batch_size, num_queries, 2, generator=generator) * 0.5 + 0.1,
        "foreground_logits": torch.randn(batch_size, num_units, generator=generator),
    }


# ---------------------------------------------------------------------------------------------------------------------
# sigmoid_focal_loss


def hand_focal(logit: float, target: int, alpha: float, gamma: float) -> float:
    probability = 1 / (1 + math.exp(-logit))
    if target == 1:
        return -alpha * (1 - probability) ** gamma * math.log(probability)
    return -(1 - alpha) * probability**gamma * math.log(1 - probability)


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (0.5, 0.0), (0.9, 1.5)])
def test_sigmoid_focal_loss_matches_formula(alpha, gamma):
    logits = [-3.0, -0.7, 0.0, 0.4, 2.5, 6.0]
    targets = [0, 1, 1, 0, 1, 0]
    expected = torch.tensor([hand_focal(x, t, alpha, gamma) for x, t in zip(logits, targets)], dtype=torch.float64)
    got = sigmoid_focal_loss(
        torch.tensor(logits, dtype=torch.float64), torch.tensor(targets, dtype=torch.float64), alpha, gamma
    )
    assert got.shape == (6,)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_sigmoid_focal_loss_is_finite_for_extreme_logits():
    logits = torch.tensor([-200.0, 200.0], requires_grad=True)
    loss = sigmoid_focal_loss(logits, torch.tensor([1.0, 0.0]), 0.25, 2.0)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(logits.grad).all()
    assert loss[0] > 40 and loss[1] > 100  # confidently wrong: large loss, not clipped to 0


# ---------------------------------------------------------------------------------------------------------------------
# hungarian_match


def run_match(outputs, labels, head="sigmoid"):
    return hungarian_match(
        outputs["class_logits"],
        outputs["actionness_logits"],
        outputs["pred_segments"],
        labels,
        classification_head=head,
        **MATCHER_COSTS,
    )


def hand_giou(segment_a: list[float], segment_b: list[float]) -> float:
    """1-D generalised IoU of two (center, width) segments, in plain Python."""
    (center_a, width_a), (center_b, width_b) = segment_a, segment_b
    start_a, end_a = center_a - width_a / 2, center_a + width_a / 2
    start_b, end_b = center_b - width_b / 2, center_b + width_b / 2
    intersection = max(0.0, min(end_a, end_b) - max(start_a, start_b))
    union = width_a + width_b - intersection
    hull = max(end_a, end_b) - min(start_a, start_b)
    return intersection / union - (hull - union) / hull


def hand_focal_cost(logit: float, alpha: float, gamma: float) -> float:
    """Deformable DETR's focal matching cost of one logit (positive minus negative focal term), in plain Python."""
    probability = 1 / (1 + math.exp(-logit))
    positive = alpha * (1 - probability) ** gamma * -math.log(probability)
    negative = (1 - alpha) * probability**gamma * -math.log(1 - probability)
    return positive - negative


def pair_cost(class_logits, actionness_logit, pred_segment, target_class, target_segment, costs, head) -> float:
    """Matching cost of one (query, target) pair, computed in plain Python independently of the library."""
    alpha, gamma = costs["focal_alpha"], costs["focal_gamma"]
    if head == "sigmoid":
        class_term = hand_focal_cost(class_logits[target_class], alpha, gamma)
    else:
        exps = [math.exp(value) for value in class_logits]
        class_term = -exps[target_class] / sum(exps)
    (center_a, width_a), (center_b, width_b) = pred_segment, target_segment
    l1 = abs(center_a - center_b) + abs(width_a - width_b)
    return (
        costs["class_cost"] * class_term
        + costs["actionness_cost"] * hand_focal_cost(actionness_logit, alpha, gamma)
        + costs["l1_cost"] * l1
        + costs["giou_cost"] * -hand_giou(pred_segment, target_segment)
    )


def brute_force_minimum(cost_matrix: list[list[float]]) -> float:
    num_queries, num_targets = len(cost_matrix), len(cost_matrix[0])
    if num_queries >= num_targets:
        return min(
            sum(cost_matrix[query][target] for target, query in enumerate(queries))
            for queries in itertools.permutations(range(num_queries), num_targets)
        )
    return min(
        sum(cost_matrix[query][target] for query, target in enumerate(targets))
        for targets in itertools.permutations(range(num_targets), num_queries)
    )


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("seed", range(4))
def test_hungarian_match_equals_brute_force(seed, head):
    generator = torch.Generator().manual_seed(seed)
    num_queries, num_classes = 5, 4
    target_counts = [3, 5, 1, 6]  # 6 > num_queries: only num_queries targets can be matched
    outputs = random_outputs(generator, len(target_counts), num_queries, num_classes, num_units=8)
    labels = [random_labels(generator, count, num_classes) for count in target_counts]
    indices = run_match(outputs, labels, head)
    assert len(indices) == len(target_counts)
    for video, ((query_indices, target_indices), video_labels) in enumerate(zip(indices, labels)):
        cost_matrix = [
            [
                pair_cost(
                    outputs["class_logits"][video, query].tolist(),
                    outputs["actionness_logits"][video, query].item(),
                    outputs["pred_segments"][video, query].tolist(),
                    video_labels["class_labels"][target].item(),
                    video_labels["segments"][target].tolist(),
                    MATCHER_COSTS,
                    head,
                )
                for target in range(len(video_labels["class_labels"]))
            ]
            for query in range(num_queries)
        ]
        num_pairs = min(num_queries, target_counts[video])
        assert query_indices.dtype == torch.long and target_indices.dtype == torch.long
        assert len(query_indices) == len(target_indices) == num_pairs
        assert len(set(query_indices.tolist())) == num_pairs and len(set(target_indices.tolist())) == num_pairs
        matched_cost = sum(cost_matrix[q][t] for q, t in zip(query_indices.tolist(), target_indices.tolist()))
        assert matched_cost == pytest.approx(brute_force_minimum(cost_matrix), abs=1e-5)


@pytest.mark.parametrize("head", HEADS)
def test_hungarian_match_obvious_case(head):
    # Query 2 sits exactly on target 0 with its class, query 0 exactly on target 1 with its class, query 1 is far away
    # and predicts a third class. Greedy-by-query would still get this right, but any other assignment costs more.
    class_logits = torch.tensor([[[-5.0, 5.0, -5.0], [-5.0, -5.0, 5.0], [5.0, -5.0, -5.0]]])
    actionness_logits = torch.tensor([[3.0, -3.0, 3.0]])
    pred_segments = torch.tensor([[[0.7, 0.2], [0.05, 0.02], [0.2, 0.1]]])
    labels = [make_labels([0, 1], [[0.2, 0.1], [0.7, 0.2]])]
    [(query_indices, target_indices)] = hungarian_match(
        class_logits, actionness_logits, pred_segments, labels, classification_head=head, **MATCHER_COSTS
    )
    assert query_indices.tolist() == [0, 2]
    assert target_indices.tolist() == [1, 0]


def test_hungarian_match_empty_targets():
    generator = torch.Generator().manual_seed(0)
    outputs = random_outputs(generator, batch_size=3, num_queries=4, num_classes=2, num_units=5)
    labels = [make_labels([], []), make_labels([1], [[0.5, 0.2]]), make_labels([], [])]
    indices = run_match(outputs, labels)
    for video in (0, 2):
        query_indices, target_indices = indices[video]
        assert query_indices.shape == (0,) and target_indices.shape == (0,)
        assert query_indices.dtype == torch.long and target_indices.dtype == torch.long
    assert len(indices[1][0]) == 1 and indices[1][1].tolist() == [0]


# ---------------------------------------------------------------------------------------------------------------------
# foreground_targets


def test_foreground_targets_hand_computed():
    num_units = 12
    feature_mask = torch.zeros(3, num_units, dtype=torch.bool)
    feature_mask[0, :10] = True  # centres 0.05, 0.15, ..., 0.95
    feature_mask[1, :4] = True  # centres 0.125, 0.375, 0.625, 0.875
    feature_mask[2, :6] = True
    labels = [
        # [0.22, 0.48] covers the centres 0.25, 0.35, 0.45 (units 2-4); [0.70, 0.72] covers no centre, the nearest
        # centre to 0.71 is 0.75 (unit 7), not 0.65 (unit 6).
        make_labels([0, 1], [[0.35, 0.26], [0.71, 0.02]]),
        # [0.0, 0.3] covers 0.125 (unit 0); [0.55, 0.95] covers 0.625 and 0.875 (units 2-3).
        make_labels([0, 0], [[0.15, 0.3], [0.75, 0.4]]),
        make_labels([], []),
    ]
    expected = torch.zeros(3, num_units)
    expected[0, [2, 3, 4, 7]] = 1
    expected[1, [0, 2, 3]] = 1
    got = foreground_targets(labels, feature_mask)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected)


def test_foreground_targets_segment_beyond_valid_length_never_marks_padding():
    feature_mask = torch.tensor([[True, True, False, False]])
    # A segment that sticks out past the end of the valid part covers unit 1 only; padded units stay 0.
    got = foreground_targets([make_labels([0], [[0.9, 0.6]])], feature_mask)
    torch.testing.assert_close(got, torch.tensor([[0.0, 1.0, 0.0, 0.0]]))


# ---------------------------------------------------------------------------------------------------------------------
# ZeetadLoss


def loss_inputs(seed: int = 0, batch_size: int = 3, num_queries: int = 6, num_classes: int = 4, num_layers: int = 2):
    generator = torch.Generator().manual_seed(seed)
    num_units = 10
    outputs = random_outputs(generator, batch_size, num_queries, num_classes, num_units)
    feature_mask = torch.ones(batch_size, num_units, dtype=torch.bool)
    feature_mask[1, 7:] = False
    labels = [random_labels(generator, count, num_classes) for count in [2, 3, 0, 1][:batch_size]]
    # Auxiliary layers use the model's output names: "logits" for the class logits.
    auxiliary_outputs = [
        {
            ("logits" if key == "class_logits" else key): random_outputs(
                generator, batch_size, num_queries, num_classes, num_units
            )[key]
            for key in LOSS_INPUT_KEYS
        }
        for _ in range(num_layers)
    ]
    return outputs, feature_mask, labels, auxiliary_outputs


def run_loss(criterion, outputs, feature_mask, labels, auxiliary_outputs=None):
    return criterion(
        outputs["class_logits"],
        outputs["actionness_logits"],
        outputs["pred_segments"],
        outputs["foreground_logits"],
        feature_mask,
        labels,
        auxiliary_outputs=auxiliary_outputs,
    )


def test_loss_keys_finite_and_weighted_total():
    # Distinct coefficients so that a component weighted with the wrong coefficient changes the total.
    config = get_config(
        actionness_loss_coefficient=2.0,
        class_loss_coefficient=0.7,
        l1_loss_coefficient=5.0,
        giou_loss_coefficient=3.0,
        foreground_loss_coefficient=1.3,
    )
    outputs, feature_mask, labels, auxiliary_outputs = loss_inputs(num_layers=2)
    loss, loss_dict = run_loss(ZeetadLoss(config), outputs, feature_mask, labels, auxiliary_outputs)

    expected_keys = LOSS_KEYS | {"loss_foreground"} | {f"{key}_{i}" for key in LOSS_KEYS for i in range(2)}
    assert set(loss_dict) == expected_keys
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(torch.isfinite(value) and value.ndim == 0 for value in loss_dict.values())

    coefficients = {
        "loss_actionness": config.actionness_loss_coefficient,
        "loss_class": config.class_loss_coefficient,
        "loss_l1": config.l1_loss_coefficient,
        "loss_giou": config.giou_loss_coefficient,
        "loss_foreground": config.foreground_loss_coefficient,
    }
    expected_total = sum(coefficients[re.sub(r"_\d+$", "", key)] * value for key, value in loss_dict.items())
    torch.testing.assert_close(loss, expected_total)


def test_loss_without_auxiliary_loss_ignores_auxiliary_outputs():
    outputs, feature_mask, labels, auxiliary_outputs = loss_inputs()
    loss_with, dict_with = run_loss(
        ZeetadLoss(get_config(auxiliary_loss=False)), outputs, feature_mask, labels, auxiliary_outputs
    )
    loss_without, dict_without = run_loss(ZeetadLoss(get_config()), outputs, feature_mask, labels)
    assert set(dict_with) == set(dict_without) == LOSS_KEYS | {"loss_foreground"}
    torch.testing.assert_close(loss_with, loss_without)


@pytest.mark.parametrize("head", HEADS)
def test_loss_matches_hand_reduction(head):
    # Recompute the final-layer components from the matcher's indices with the documented normalisations.
    config = get_config(classification_head=head)
    outputs, feature_mask, labels, _ = loss_inputs(seed=3)
    _, loss_dict = run_loss(ZeetadLoss(config), outputs, feature_mask, labels)
    indices = hungarian_match(
        outputs["class_logits"],
        outputs["actionness_logits"],
        outputs["pred_segments"],
        labels,
        classification_head=head,
        class_cost=config.matcher_class_cost,
        actionness_cost=config.matcher_actionness_cost,
        l1_cost=config.matcher_l1_cost,
        giou_cost=config.matcher_giou_cost,
        focal_alpha=config.focal_alpha,
        focal_gamma=config.focal_gamma,
    )
    num_segments = 5
    actionness_targets = torch.zeros_like(outputs["actionness_logits"])
    class_targets = torch.zeros_like(outputs["class_logits"])
    l1, giou, cross_entropy = 0.0, 0.0, []
    for video, (query_indices, target_indices) in enumerate(indices):
        for query, target in zip(query_indices.tolist(), target_indices.tolist()):
            actionness_targets[video, query] = 1
            class_targets[video, query, labels[video]["class_labels"][target]] = 1
            predicted = outputs["pred_segments"][video, query].tolist()
            target_segment = labels[video]["segments"][target].tolist()
            l1 += abs(predicted[0] - target_segment[0]) + abs(predicted[1] - target_segment[1])
            giou += 1 - hand_giou(predicted, target_segment)
            log_probabilities = outputs["class_logits"][video, query].log_softmax(-1)
            cross_entropy.append(-log_probabilities[labels[video]["class_labels"][target]].item())
    actionness = sigmoid_focal_loss(outputs["actionness_logits"], actionness_targets, 0.25, 2.0).sum() / num_segments
    torch.testing.assert_close(loss_dict["loss_actionness"], actionness)
    assert loss_dict["loss_l1"].item() == pytest.approx(l1 / num_segments, rel=1e-5)
    assert loss_dict["loss_giou"].item() == pytest.approx(giou / num_segments, rel=1e-5)
    if head == "sigmoid":
        # every (query, prompt) pair: matched queries have a one-hot target, the others all zeros
        focal = sigmoid_focal_loss(outputs["class_logits"], class_targets, 0.25, 2.0).sum() / num_segments
        torch.testing.assert_close(loss_dict["loss_class"], focal)
    else:
        assert loss_dict["loss_class"].item() == pytest.approx(sum(cross_entropy) / num_segments, rel=1e-5)

    unit_targets = foreground_targets(labels, feature_mask)
    unit_losses = sigmoid_focal_loss(outputs["foreground_logits"], unit_targets, 0.25, 2.0)
    expected_foreground = (unit_losses * feature_mask).sum() / unit_targets.sum()
    torch.testing.assert_close(loss_dict["loss_foreground"], expected_foreground)


def test_loss_gradients_reach_every_input():
    outputs, feature_mask, labels, auxiliary_outputs = loss_inputs()
    leaves = [tensor.requires_grad_() for tensor in outputs.values()]
    leaves += [tensor.requires_grad_() for layer in auxiliary_outputs for tensor in layer.values()]
    loss, _ = run_loss(ZeetadLoss(get_config()), outputs, feature_mask, labels, auxiliary_outputs)
    loss.backward()
    for leaf in leaves:
        assert leaf.grad is not None
        assert torch.isfinite(leaf.grad).all()
        assert leaf.grad.abs().sum() > 0
    # Padded units get no gradient from the foreground loss.
    assert (outputs["foreground_logits"].grad[1, 7:] == 0).all()


@pytest.mark.parametrize("head", HEADS)
def test_loss_without_ground_truth(head):
    outputs, feature_mask, _, auxiliary_outputs = loss_inputs()
    labels = [make_labels([], []) for _ in range(3)]
    for tensor in outputs.values():
        tensor.requires_grad_()
    config = get_config(classification_head=head)
    loss, loss_dict = run_loss(ZeetadLoss(config), outputs, feature_mask, labels, auxiliary_outputs)
    assert torch.isfinite(loss)
    for key in ("loss_l1", "loss_giou"):
        assert loss_dict[key].item() == 0.0
    if head == "softmax":
        assert loss_dict["loss_class"].item() == 0.0
    else:
        # every (query, prompt) pair is a negative of the sigmoid head, normalised by max(num_segments, 1) = 1
        negatives = torch.zeros_like(outputs["class_logits"])
        expected_class = sigmoid_focal_loss(outputs["class_logits"], negatives, 0.25, 2.0).sum()
        torch.testing.assert_close(loss_dict["loss_class"], expected_class)
    # No foreground unit: every valid unit is a negative, normalised by max(num_foreground_units, 1) = 1.
    expected_foreground = sigmoid_focal_loss(
        outputs["foreground_logits"], torch.zeros_like(outputs["foreground_logits"]), 0.25, 2.0
    )[feature_mask].sum()
    torch.testing.assert_close(loss_dict["loss_foreground"], expected_foreground)
    # Every query is a negative, normalised by max(num_segments, 1) = 1.
    expected_actionness = sigmoid_focal_loss(
        outputs["actionness_logits"], torch.zeros_like(outputs["actionness_logits"]), 0.25, 2.0
    ).sum()
    torch.testing.assert_close(loss_dict["loss_actionness"], expected_actionness)
    loss.backward()
    assert outputs["actionness_logits"].grad.abs().sum() > 0
    assert outputs["foreground_logits"].grad.abs().sum() > 0


@pytest.mark.parametrize("head", HEADS)
def test_perfect_prediction_beats_shifted_prediction(head):
    labels = [make_labels([1, 0], [[0.3, 0.2], [0.75, 0.1]]), make_labels([2], [[0.5, 0.4]])]
    num_queries, num_classes, num_units = 4, 3, 20
    feature_mask = torch.ones(2, num_units, dtype=torch.bool)
    foreground = foreground_targets(labels, feature_mask)

    def outputs_with(segment_shift: float) -> dict[str, torch.Tensor]:
        class_logits = torch.full((2, num_queries, num_classes), -10.0)
        actionness_logits = torch.full((2, num_queries), -8.0)
        pred_segments = torch.tensor([0.9, 0.05]).repeat(2, num_queries, 1)
        for video, video_labels in enumerate(labels):
            for query, (target_class, segment) in enumerate(
                zip(video_labels["class_labels"], video_labels["segments"])
            ):
                class_logits[video, query, target_class] = 10.0
                actionness_logits[video, query] = 8.0
                pred_segments[video, query] = segment + torch.tensor([segment_shift, 0.0])
        foreground_logits = foreground * 16 - 8  # +8 on foreground units, -8 elsewhere
        return {
            "class_logits": class_logits,
            "actionness_logits": actionness_logits,
            "pred_segments": pred_segments,
            "foreground_logits": foreground_logits,
        }

    criterion = ZeetadLoss(get_config(classification_head=head))
    perfect_loss, perfect_dict = run_loss(criterion, outputs_with(0.0), feature_mask, labels)
    shifted_loss, shifted_dict = run_loss(criterion, outputs_with(0.08), feature_mask, labels)
    assert perfect_dict["loss_l1"].item() == pytest.approx(0.0, abs=1e-7)
    assert perfect_dict["loss_giou"].item() == pytest.approx(0.0, abs=1e-6)
    assert perfect_dict["loss_class"].item() < 1e-3
    # Three matched segments, each off by 0.08 in centre, divided by three GT segments.
    assert shifted_dict["loss_l1"].item() == pytest.approx(0.08, rel=1e-4)
    assert shifted_dict["loss_giou"] > 0.1
    assert perfect_loss < shifted_loss


def bad_labels_cases():
    good = make_labels([0, 1], [[0.3, 0.2], [0.6, 0.1]])
    yield "not a list", {"0": good}, r"list of 2"
    yield "wrong length", [good], r"list of 2 .* got a list of length 1"
    yield "missing key", [good, {"class_labels": torch.tensor([0])}], r"labels\[1\].*missing.*segments"
    yield "not a dict", [good, torch.zeros(2)], r"labels\[1\].*dict"
    yield "class out of range", [good, make_labels([0, 3], [[0.3, 0.2], [0.6, 0.1]])], r"labels\[1\].*\[0, 3\)"
    yield "negative class", [good, make_labels([-1], [[0.3, 0.2]])], r"labels\[1\].*\[0, 3\)"
    yield (
        "float classes",
        [good, {"class_labels": torch.tensor([0.0]), "segments": torch.tensor([[0.3, 0.2]])}],
        r"labels\[1\].*integer",
    )
    yield (
        "segments not (n, 2)",
        [good, {"class_labels": torch.tensor([0]), "segments": torch.tensor([0.3, 0.2])}],
        r"labels\[1\].*\(n, 2\)",
    )
    yield (
        "segments (n, 3)",
        [good, {"class_labels": torch.tensor([0]), "segments": torch.rand(1, 3)}],
        r"labels\[1\].*\(n, 2\)",
    )
    yield "non-finite", [good, make_labels([0], [[float("nan"), 0.2]])], r"labels\[1\].*NaN"
    yield "infinite", [good, make_labels([0], [[0.5, float("inf")]])], r"labels\[1\].*infinite"
    yield "zero width", [good, make_labels([0], [[0.5, 0.0]])], r"labels\[1\].*positive widths"
    yield "negative width", [good, make_labels([0], [[0.5, -0.1]])], r"labels\[1\].*positive widths"
    yield (
        "count mismatch",
        [good, {"class_labels": torch.tensor([0, 1]), "segments": torch.rand(3, 2)}],
        r"labels\[1\].*2 class labels but 3 segments",
    )


@pytest.mark.parametrize(
    "labels, message", [case[1:] for case in bad_labels_cases()], ids=[case[0] for case in bad_labels_cases()]
)
def test_bad_labels_raise_value_error(labels, message):
    outputs, feature_mask, _, _ = loss_inputs(batch_size=2, num_classes=3)
    with pytest.raises(ValueError, match=message):
        run_loss(ZeetadLoss(get_config()), outputs, feature_mask, labels)
    with pytest.raises(ValueError, match=message):
        run_match(outputs, labels)


def test_unknown_classification_head_is_refused():
    outputs, _, labels, _ = loss_inputs()
    with pytest.raises(ValueError, match=r"`classification_head` must be one of \('sigmoid', 'softmax'\), got 'tanh'"):
        run_match(outputs, labels, "tanh")


def test_mismatched_output_shapes_raise_value_error():
    outputs, feature_mask, labels, auxiliary_outputs = loss_inputs()
    criterion = ZeetadLoss(get_config())
    with pytest.raises(ValueError, match="actionness_logits"):
        run_loss(
            criterion, {**outputs, "actionness_logits": outputs["actionness_logits"][:, :-1]}, feature_mask, labels
        )
    with pytest.raises(ValueError, match="feature_mask"):
        run_loss(criterion, outputs, feature_mask[:, :-1], labels)
    auxiliary_outputs[1]["pred_segments"] = auxiliary_outputs[1]["pred_segments"][..., :1]
    with pytest.raises(ValueError, match=r"auxiliary_outputs\[1\].*pred_segments"):
        run_loss(criterion, outputs, feature_mask, labels, auxiliary_outputs)


def _average_in_process(rank: int, port: int, values: list[float], results) -> None:
    import torch.distributed as dist

    from zeetad_hf.loss_zeetad import average_across_processes

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=len(values))
    try:
        results[rank] = average_across_processes(values[rank])
    finally:
        dist.destroy_process_group()


def test_segment_count_is_averaged_across_processes():
    import socket

    import torch.multiprocessing as mp

    from zeetad_hf.loss_zeetad import average_across_processes

    assert average_across_processes(5) == 5.0  # no process group: the local value
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_average_in_process, args=(port, [2.0, 4.0], results), nprocs=2, join=True)
    assert dict(results) == {0: 3.0, 1: 3.0}


def _half_batch_losses(rank: int, port: int, head: str, results) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        outputs, feature_mask, labels, auxiliary_outputs = loss_inputs(seed=5, batch_size=4)
        half = slice(2 * rank, 2 * rank + 2)
        _, loss_dict = run_loss(
            ZeetadLoss(get_config(classification_head=head)),
            {key: value[half] for key, value in outputs.items()},
            feature_mask[half],
            labels[half],
            [{key: value[half] for key, value in layer.items()} for layer in auxiliary_outputs],
        )
        results[rank] = {key: value.item() for key, value in loss_dict.items()}
    finally:
        dist.destroy_process_group()


# the softmax head (an ablation) shares every distributed code path with the default sigmoid head: RUN_SLOW=1
@pytest.mark.parametrize("head", [HEADS[0], pytest.param(HEADS[1], marks=pytest.mark.slow)])
def test_two_processes_train_the_objective_of_one(head):
    # DDP averages the gradients of the processes, so each loss component averaged over two processes holding half a
    # batch must equal the component of one process holding the whole batch: every normaliser is a count averaged
    # over the processes, never a local one (the halves hold 2 + 3 and 0 + 1 segments).
    import socket

    import torch.multiprocessing as mp

    outputs, feature_mask, labels, auxiliary_outputs = loss_inputs(seed=5, batch_size=4)
    assert [len(video_labels["class_labels"]) for video_labels in labels] == [2, 3, 0, 1]
    _, whole = run_loss(
        ZeetadLoss(get_config(classification_head=head)), outputs, feature_mask, labels, auxiliary_outputs
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_half_batch_losses, args=(port, head, results), nprocs=2, join=True)
    for key, value in whole.items():
        assert (results[0][key] + results[1][key]) / 2 == pytest.approx(value.item(), rel=1e-5), key
