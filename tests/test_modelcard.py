"""Model cards: sections and YAML checked against a regex pattern, model-index metrics, save/load round trip."""

import re
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard

from zeetad_hf import modelcard
from zeetad_hf.modelcard import build_model_card, save_model_card


REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
THUMOS_THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7]
# Made-up measurements (fractions), deliberately unlike any published number.
THUMOS_MAP = [0.5123, 0.4, 0.3107, 0.2, 0.0999]
ARGUMENTS = {
    "model_name": "zeetad-test",
    "base_model": "openai/clip-vit-base-patch16",
    "dataset_name": "thumos14",
    "split_setting": "50_50",
    "split_indices": range(10),
    "features": "I3D (localization) + CLIP ViT-B/16 frame embeddings",
    "training_hyperparameters": {"learning_rate": 0.0001, "num_epochs": 30},
    "repo_id": "user/zeetad-test",
}

YAML_HEAD = (
    r"---\n"
    r"base_model: openai/clip-vit-base-patch16\n"
    r"library_name: transformers\n"
    r"license: mit\n"
    r"tags:\n"
    r"- zero-shot-temporal-action-detection\n"
    r"- temporal-action-detection\n"
    r"- zero-shot\n"
    r"- video\n"
)
MODEL_INDEX = (
    r"model-index:\n- name: zeetad-test\n  results:\n  - task:\n      type: zero-shot-temporal-action-detection\n"
    r".*    dataset:\n      name: THUMOS14 \(50% seen / 50% unseen classes\)\n      type: thumos14\n"
    r"      config: '50_50'\n      split: Test\n"
    r".*    metrics:\n    - type: mAP\n      value: 51\.23\n      name: mAP@0\.3\n      config: strict\n"
    r".*    - type: mAP\n      value: 30\.46\n      name: average mAP\n      config: strict\n"
)
RESULTS_TABLE = (
    r"\| THUMOS14 50_50, 10 split\(s\), strict \| mAP@0\.3 \| mAP@0\.4 \| mAP@0\.5 \| mAP@0\.6 \| mAP@0\.7 \| "
    r"average mAP \|\n"
    r"\|---\|---\|---\|---\|---\|---\|---\|\n"
    r"\| zeetad-test \(measured\) \| 51\.23 \| 40\.00 \| 31\.07 \| 20\.00 \| 9\.99 \| 30\.46 \|\n"
)
NOT_EVALUATED = (
    r"Evaluation was not run for this checkpoint: it has no measured results, and this card's metadata holds no "
    r"metrics\.\n"
)


def body_pattern(results: str) -> str:
    """The card body: title, then the template's sections in order, with the run-specific parts where they belong."""
    fragments = [
        r"\n# Model Card for zeetad-test\n",
        r"\n## Model Details\n",
        r"\n### Model Description\n",
        r"\n## Uses\n",
        r"\n### Direct Use\n",
        r"\n### Out-of-Scope Use\n",
        r"\n## Bias, Risks, and Limitations\n",
        r"\n## How to Get Started with the Model\n",
        r'pipeline\("zero-shot-temporal-action-detection", model="user/zeetad-test"\)',
        r"\n## Training Details\n",
        r"\n### Training Data\n",
        r"\n#### Training Hyperparameters\n\n- \*\*learning_rate:\*\* 0\.0001\n- \*\*num_epochs:\*\* 30\n",
        r"\n## Evaluation\n",
        r"\n#### Testing Data\n",
        r"\n#### Metrics\n",
        r"\n### Results\n\n" + results,
        r"\n## Technical Specifications\n",
        r"\n## Citation\n",
    ]
    return r".*".join(fragments) + r".*"


# YAML head, then the sections in order; `pipeline_tag` nowhere; measured values in the model-index and the table.
CARD_WITH_RESULTS_PATTERN = re.compile(
    r"(?!.*pipeline_tag)" + YAML_HEAD + MODEL_INDEX + r".*\n---\n" + body_pattern(RESULTS_TABLE), re.DOTALL
)
# Without results: no model-index (nor the `model_name` only it needs) and no measured row.
CARD_WITHOUT_RESULTS_PATTERN = re.compile(
    r"(?!.*(pipeline_tag|model-index|model_name|\(measured\)))" + YAML_HEAD + r"---\n" + body_pattern(NOT_EVALUATED),
    re.DOTALL,
)


# The quickstart's generated world: one seeded split, given as class lists; no shipped split lists, no published numbers.
WORLD_SEEN = ["red ball bouncing", "blue box sliding", "green ring circling"]
WORLD_UNSEEN = ["red box circling", "blue ball sliding"]
WORLD_ARGUMENTS = {
    **{key: ARGUMENTS[key] for key in ("model_name", "training_hyperparameters", "repo_id")},
    "base_model": None,
    "base_model_description": "a small CLIP pretrained from scratch",
    "dataset_name": "synthetic_world",
    "seen_classes": WORLD_SEEN,
    "unseen_classes": WORLD_UNSEEN,
    "features": "small CLIP frame embeddings at 2 fps",
}
WORLD_MODEL_INDEX = (
    r"model-index:\n- name: zeetad-test\n  results:\n  - task:\n      type: zero-shot-temporal-action-detection\n"
    r".*    dataset:\n      name: zeetad_hf synthetic world \(3 seen / 2 unseen classes\)\n      type: synthetic_world\n"
    r"      split: validation\n      args:\n        num_splits: 1\n"
    r"        seen_classes:\n        - red ball bouncing\n        - blue box sliding\n        - green ring circling\n"
    r"        unseen_classes:\n        - red box circling\n        - blue ball sliding\n"
    r"        features: small CLIP frame embeddings at 2 fps\n"
    r"    metrics:\n    - type: mAP\n      value: 51\.23\n      name: mAP@0\.3\n      config: strict\n"
    r".*    - type: mAP\n      value: 30\.46\n      name: average mAP\n      config: strict\n"
)
WORLD_RESULTS_TABLE = RESULTS_TABLE.replace(r"THUMOS14 50_50, 10 split", r"zeetad_hf synthetic world, 1 split")
# No base model id, no dataset config, no shipped split lists and no published number anywhere in the card.
CARD_FOR_WORLD_PATTERN = re.compile(
    r"(?!.*(pipeline_tag|base_model:|config: '|EffPrompt|paper reports \d))"
    + YAML_HEAD.replace(r"base_model: openai/clip-vit-base-patch16\n", "")
    + WORLD_MODEL_INDEX
    + r".*\n---\n"
    + body_pattern(WORLD_RESULTS_TABLE),
    re.DOTALL,
)


def card_with_results(arguments=ARGUMENTS, **overrides) -> ModelCard:
    results = {"tiou_thresholds": THUMOS_THRESHOLDS, "mAP": THUMOS_MAP, "average_mAP": 0.30458}
    return build_model_card(**{**arguments, "results": results, **overrides})


def test_card_with_results_matches_pattern():
    assert CARD_WITH_RESULTS_PATTERN.fullmatch(str(card_with_results())), str(card_with_results())


def test_card_without_results_matches_pattern_and_has_no_metrics():
    card = build_model_card(**ARGUMENTS, results=None)
    assert CARD_WITHOUT_RESULTS_PATTERN.fullmatch(str(card)), str(card)
    assert card.data.eval_results is None
    assert "model-index" not in card.data.to_dict()


def test_model_index_metrics():
    eval_results = card_with_results().data.eval_results
    names = [f"mAP@{threshold}" for threshold in THUMOS_THRESHOLDS] + ["average mAP"]
    assert [result.metric_name for result in eval_results] == names
    assert [result.metric_value for result in eval_results] == [51.23, 40.0, 31.07, 20.0, 9.99, 30.46]
    for result in eval_results:
        assert result.task_type == "zero-shot-temporal-action-detection"
        assert result.metric_type == "mAP"
        assert result.metric_config == "strict"
        assert (result.dataset_type, result.dataset_config, result.dataset_split) == ("thumos14", "50_50", "Test")
        assert result.dataset_args == {
            "splits": list(range(10)),
            "num_splits": 10,
            "features": ARGUMENTS["features"],
        }
        assert result.source_url is None
    assert eval_results[0].metric_args == {"tiou_threshold": 0.3}
    assert eval_results[-1].metric_args == {"tiou_thresholds": THUMOS_THRESHOLDS}


def test_average_defaults_to_the_mean_and_protocol_is_recorded():
    card = build_model_card(
        **{**ARGUMENTS, "dataset_name": "activitynet", "split_indices": [3]},
        protocol="paper",
        results={"tiou_thresholds": np.linspace(0.5, 0.95, 10).tolist(), "mAP": [0.25] * 5 + [0.15] * 5},
    )
    eval_results = card.data.eval_results
    assert eval_results[-1].metric_value == 20.0
    assert [result.metric_name for result in eval_results[:3]] == ["mAP@0.5", "mAP@0.55", "mAP@0.6"]
    assert eval_results[-1].metric_args["tiou_thresholds"][3] == 0.65
    assert {result.metric_config for result in eval_results} == {"paper"}
    assert {result.dataset_split for result in eval_results} == {"validation"}
    assert "external video-level classifier scores" in card.text


def test_published_numbers_are_quoted_as_published_never_as_results():
    for card in (card_with_results(), build_model_card(**ARGUMENTS, results=None)):
        # ZEETAD's published THUMOS14 50/50 average mAP, labelled as not measured on this checkpoint.
        assert re.search(r"The ZEETAD paper reports 30\.2 average mAP.*\*\*not\*\* measured", card.text, re.DOTALL)
        assert "30.2" not in str(card.data)


def test_single_split_names_its_unseen_classes():
    card = build_model_card(**{**ARGUMENTS, "split_setting": "75_25", "split_indices": [0]})
    assert "BaseballPitch, HammerThrow, PoleVault, SoccerPenalty, ThrowDiscus" in card.text
    assert "15 seen / 5\nunseen classes per split" in card.text


def test_synthetic_world_card_matches_pattern():
    card = card_with_results(WORLD_ARGUMENTS)
    assert CARD_FOR_WORLD_PATTERN.fullmatch(str(card)), str(card)
    eval_results = card.data.eval_results
    assert [result.metric_value for result in eval_results] == [51.23, 40.0, 31.07, 20.0, 9.99, 30.46]
    for result in eval_results:
        assert (result.dataset_type, result.dataset_split) == ("synthetic_world", "validation")
        assert result.dataset_config is None
        assert result.dataset_args == {
            "num_splits": 1,
            "seen_classes": WORLD_SEEN,
            "unseen_classes": WORLD_UNSEEN,
            "features": WORLD_ARGUMENTS["features"],
        }


def test_synthetic_world_card_describes_its_own_split_and_quotes_no_published_number():
    card = build_model_card(**WORLD_ARGUMENTS, results=None)
    assert "Seen classes: red ball bouncing, blue box sliding, green ring circling." in card.text
    assert "Unseen classes: red box circling, blue ball sliding." in card.text
    assert "one seeded class split drawn with the dataset" in card.text
    assert "**Finetuned from model:** a small CLIP pretrained from scratch (CLIP text encoder" in card.text
    assert re.search(r"Published numbers\.\*\* None apply", card.text)
    for published in modelcard.PUBLISHED_AVERAGE_MAP.values():
        assert f"{published} average mAP" not in card.text
    assert card.data.base_model is None and "model-index" not in card.data.to_dict()


@pytest.mark.parametrize("reads_video", [False, True])
def test_card_says_whether_the_checkpoint_takes_video_files(reads_video):
    text = card_with_results(reads_video=reads_video).text
    direct_use = text[text.index("### Direct Use") : text.index("### Downstream Use")]
    started = text[text.index("## How to Get Started") : text.index("## Training Details")]
    assert ("untrimmed\nvideo files, which the checkpoint's own CLIP vision tower embeds" in direct_use) == reads_video
    assert ("videos represented by pre-extracted features (I3D" in direct_use) != reads_video
    assert ("Raw video without the matching feature extractor" in text) != reads_video
    assert ('detector("video.mp4", candidate_labels=' in started) == reads_video
    # features work either way
    assert '"clip_features": clip_features' in started


@pytest.mark.parametrize("head", ["sigmoid", "softmax"])
def test_card_describes_the_classification_head(head):
    text = card_with_results(classification_head=head).text
    section = text[text.index("### Model Architecture and Objective") : text.index("### Compute Infrastructure")]
    assert "\n\n" not in section.split("\n", 1)[1].strip()  # one paragraph, whatever the head
    architecture = " ".join(section.split())
    assert ("independent sigmoid probability per (proposal, label) pair" in architecture) == (head == "sigmoid")
    assert ("sigmoid focal loss over every (query, prompt) pair" in architecture) == (head == "sigmoid")
    assert ("a softmax over the candidate labels" in architecture) == (head == "softmax")
    assert ("cross-entropy over the prompts" in architecture) == (head == "softmax")


def test_save_and_load_round_trip(tmp_path):
    card = card_with_results()
    path = save_model_card(card, tmp_path / "checkpoint")
    assert path == tmp_path / "checkpoint" / "README.md"
    assert [entry.name for entry in path.parent.iterdir()] == ["README.md"]
    loaded = ModelCard.load(path)
    assert loaded.data.to_dict() == card.data.to_dict()
    assert loaded.data.eval_results == card.data.eval_results
    assert str(loaded) == str(card)


def test_failed_save_keeps_the_previous_card(tmp_path, monkeypatch):
    (tmp_path / "README.md").write_text("previous card", encoding="utf-8")

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(modelcard.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_model_card(card_with_results(), tmp_path)
    assert [entry.name for entry in tmp_path.iterdir()] == ["README.md"]
    assert (tmp_path / "README.md").read_text(encoding="utf-8") == "previous card"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"dataset_name": "ucf101"}, "`dataset_name`"),
        ({"split_setting": "60_40"}, "`split_setting`"),
        ({"protocol": "loose"}, "`protocol`"),
        ({"split_indices": []}, "`split_indices`"),
        ({"split_indices": [10]}, "`split`"),
        ({"features": " "}, "`features`"),
        ({"model_name": ""}, "`model_name`"),
        ({"results": {"tiou_thresholds": [0.3], "mAP": [45.2]}}, "not percent"),
        ({"results": {"tiou_thresholds": [0.3, 0.5], "mAP": [0.4]}}, "same length"),
        ({"results": {"mAP": [0.4]}}, "tiou_thresholds"),
    ],
)
def test_invalid_arguments_raise_value_error(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_model_card(**{**ARGUMENTS, **overrides})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"split_indices": [0]}, "no shipped split lists"),
        ({"split_setting": "75_25"}, "no shipped split lists"),
        ({"seen_classes": None}, "`seen_classes` must be a non-empty list"),
        ({"unseen_classes": "red box circling"}, "`unseen_classes` must be a non-empty list"),
        ({"unseen_classes": ["red box circling", " "]}, "`unseen_classes` must be a non-empty list"),
        ({"seen_classes": WORLD_SEEN + WORLD_SEEN[:1]}, "['red ball bouncing'] more than once"),
        ({"unseen_classes": WORLD_UNSEEN + WORLD_SEEN[:1]}, "must be disjoint"),
    ],
)
def test_invalid_world_split_raises_value_error(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_model_card(**{**WORLD_ARGUMENTS, **overrides})


def test_shipped_split_lists_take_no_class_lists():
    with pytest.raises(ValueError, match=re.escape("read from the split lists shipped for 'thumos14'")):
        build_model_card(**ARGUMENTS, seen_classes=WORLD_SEEN, unseen_classes=WORLD_UNSEEN)


def test_repository_template_is_the_packaged_template():
    packaged = (REPOSITORY_ROOT / "zeetad_hf" / "model_card_template.md").read_bytes()
    assert (REPOSITORY_ROOT / "model_cards" / "TEMPLATE.md").read_bytes() == packaged


def test_a_local_clip_folder_never_becomes_the_cards_base_model(tmp_path):
    clip_folder = tmp_path / "my-local-clip"
    clip_folder.mkdir()
    card = card_with_results(base_model=str(clip_folder))
    assert card.data.base_model is None and "base_model:" not in str(card).split("---")[1]
    assert "a CLIP checkpoint from a local folder (`my-local-clip`)" in card.text
    assert modelcard.hub_base_model("openai/clip-vit-base-patch16") == "openai/clip-vit-base-patch16"
    for not_a_hub_id in (str(clip_folder), "./clip", "../runs/clip", "~/clip", "a/b/c", "user/"):
        assert modelcard.hub_base_model(not_a_hub_id) is None, not_a_hub_id
