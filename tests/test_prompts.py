"""Class prompts people would write: class-name normalisation over every THUMOS14 and ActivityNet class, the prompt
ensemble of the recipes, and that only the prompts change (labels in outputs stay as given)."""

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny_models import PROMPT_WORDS, save_tiny_clip, tiny_zeetad_config
from transformers import AutoProcessor, pipeline

from zeetad_hf import (
    VIDEO_PROMPT_TEMPLATES,
    ZeetadConfig,
    ZeetadFeatureExtractor,
    ZeetadForTemporalActionDetection,
    ZeetadProcessor,
    build_clip_tokenizer,
    normalize_class_name,
)
from zeetad_hf.cli_errors import CommandLineHfArgumentParser
from zeetad_hf.processing_zeetad import DEFAULT_PROMPT_TEMPLATES, validate_prompt_templates
from zeetad_hf.training import ZeetadTrainingArguments, encode_class_prompts, parse_arguments
from zeetad_hf.zero_shot_splits import load_zero_shot_split


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RECIPES = [EXAMPLES / "configs" / "thumos14_i3d_clip.json", EXAMPLES / "configs" / "activitynet_tsp_clip.json"]

# Written by hand: what a person would type for each THUMOS14 class.
EXPECTED_THUMOS14 = {
    "BaseballPitch": "baseball pitch",
    "BasketballDunk": "basketball dunk",
    "Billiards": "billiards",
    "CleanAndJerk": "clean and jerk",
    "CliffDiving": "cliff diving",
    "CricketBowling": "cricket bowling",
    "CricketShot": "cricket shot",
    "Diving": "diving",
    "FrisbeeCatch": "frisbee catch",
    "GolfSwing": "golf swing",
    "HammerThrow": "hammer throw",
    "HighJump": "high jump",
    "JavelinThrow": "javelin throw",
    "LongJump": "long jump",
    "PoleVault": "pole vault",
    "Shotput": "shotput",
    "SoccerPenalty": "soccer penalty",
    "TennisSwing": "tennis swing",
    "ThrowDiscus": "throw discus",
    "VolleyballSpiking": "volleyball spiking",
}


def all_class_names(dataset: str, settings=("75_25",), splits=(0,)) -> list[str]:
    """The seen + unseen classes of the given splits of `dataset`, sorted."""
    return sorted(
        {
            name
            for setting in settings
            for split in splits
            for part in load_zero_shot_split(dataset, setting, split)
            for name in part
        }
    )


THUMOS14 = all_class_names("thumos14")
ACTIVITYNET = all_class_names("activitynet")


def words_of(*texts: str) -> tuple[str, ...]:
    """The words of `texts` as CLIP's tokenizer splits them (lower-case letter runs), for a tiny vocabulary."""
    return tuple(sorted({word for text in texts for word in re.findall(r"[a-z]+", text.lower())}))


# The labels of the model tests below: every word gets its own token of the tiny vocabulary, so that each prompt of
# the ensemble fits the tiny text tower's 16 positions (a larger vocabulary breaks words apart: build_clip_tokenizer's
# merges are shared between words).
MODEL_TEST_PHRASES = "baseball pitch cliff diving pole vault applying sunscreen bmx clean and jerk high jump"


@pytest.fixture(scope="module")
def prompt_tokenizer():
    """A tiny offline CLIP tokenizer knowing the words of the templates and of `MODEL_TEST_PHRASES`."""
    words = words_of(*PROMPT_WORDS, *VIDEO_PROMPT_TEMPLATES, MODEL_TEST_PHRASES)
    return build_clip_tokenizer(words, model_max_length=16)


def make_processor(tokenizer, **kwargs) -> ZeetadProcessor:
    return ZeetadProcessor(ZeetadFeatureExtractor(), tokenizer, **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# The class names of the benchmarks, printed with their phrases


@pytest.mark.parametrize("dataset, names", [("thumos14", THUMOS14), ("activitynet", ACTIVITYNET)])
def test_one_split_holds_every_class(dataset, names):
    assert all_class_names(dataset, ("75_25", "50_50"), range(10)) == names


def test_every_benchmark_class_name_becomes_a_natural_phrase(capsys):
    table = [("THUMOS14", name, normalize_class_name(name)) for name in THUMOS14]
    table += [("ActivityNet", name, normalize_class_name(name)) for name in ACTIVITYNET]
    # printed past pytest's capture: the issue wants the list visible in every test run
    with capsys.disabled():
        print(f"\n{len(THUMOS14)} THUMOS14 + {len(ACTIVITYNET)} ActivityNet class names -> prompt phrases:")
        for dataset, name, phrase in table:
            print(f"  {dataset:<11} {name!r:<40} -> {phrase!r}")
    assert (len(THUMOS14), len(ACTIVITYNET)) == (20, 200)
    for dataset, name, phrase in table:
        assert "_" not in phrase, (dataset, name, phrase)
        # no CamelCase left: no lower-case letter followed by a capital inside a word
        assert not re.search(r"[a-z][A-Z]", phrase), (dataset, name, phrase)
        if " " not in name:
            # an identifier: every word lower-case or an acronym (capitals and digits only, e.g. BMX)
            assert all(word in (word.lower(), word.upper()) for word in phrase.split()), (dataset, name, phrase)
        # nothing lost: the same characters, only spaces added and letter case changed
        assert "".join(phrase.split()).lower() == "".join(name.replace("_", " ").split()).lower(), (name, phrase)
        assert phrase == phrase.strip() and "  " not in phrase
    for names in (THUMOS14, ACTIVITYNET):
        phrases = [" ".join(normalize_class_name(name).lower().split()) for name in names]
        assert len(set(phrases)) == len(names)


def test_thumos14_names_are_split_into_lower_case_words():
    assert {name: normalize_class_name(name) for name in THUMOS14} == EXPECTED_THUMOS14


def test_activitynet_names_are_kept_as_they_are():
    for name in ACTIVITYNET:
        phrase = normalize_class_name(name)
        if " " in name:
            assert phrase == name
        else:
            # one-word names ("Archery", "BMX") are identifiers of one word: at most the case changes
            assert phrase.lower() == name.lower()
    assert normalize_class_name("BMX") == "BMX"
    # the model sees exactly the prompts of the names as written: CLIP's tokenizer lower-cases its input
    tokenizer = build_clip_tokenizer(words_of(*PROMPT_WORDS, *ACTIVITYNET), model_max_length=77)
    encoded = make_processor(tokenizer, prompt_templates=VIDEO_PROMPT_TEMPLATES)(text=ACTIVITYNET)
    written = [template.format(name) for name in ACTIVITYNET for template in VIDEO_PROMPT_TEMPLATES]
    expected = tokenizer(written, padding=True, return_tensors="pt")["input_ids"]
    assert encoded["input_ids"].tolist() == expected.view(len(ACTIVITYNET), len(VIDEO_PROMPT_TEMPLATES), -1).tolist()


@pytest.mark.parametrize(
    "name, phrase",
    [
        ("CleanAndJerk", "clean and jerk"),
        ("Shotput", "shotput"),
        ("BMXRacing", "BMX racing"),
        ("TVWatching", "TV watching"),
        ("3DPrinting", "3D printing"),
        ("Top10Moves", "top10 moves"),
        ("AFrameHouse", "a frame house"),
        ("pole_vault", "pole vault"),
        ("Pole_Vault", "pole vault"),
        ("__private__Name", "private name"),
        ("Ping-pong", "ping-pong"),
        ("ÜberJump", "über jump"),
        (" HighJump ", "high jump"),
        ("pole vault", "pole vault"),
        ("Pole Vault", "Pole Vault"),
        ("red circle bouncing", "red circle bouncing"),
        ("a HighJump attempt", "a HighJump attempt"),
        ("__", "__"),
        ("jumping", "jumping"),
    ],
)
def test_normalize_class_name(name, phrase):
    assert normalize_class_name(name) == phrase


def test_normalize_class_name_refuses_non_strings():
    with pytest.raises(ValueError, match=r"must be a string, got int"):
        normalize_class_name(3)


# ---------------------------------------------------------------------------------------------------------------------
# The prompt ensemble of the recipes


def test_the_recipes_ship_the_video_prompt_ensemble(capsys):
    with capsys.disabled():
        print(f"\nVIDEO_PROMPT_TEMPLATES ({len(VIDEO_PROMPT_TEMPLATES)}):")
        for template in VIDEO_PROMPT_TEMPLATES:
            print(f"  {template!r} -> {template.format(normalize_class_name('CliffDiving'))!r}")
    assert 8 <= len(VIDEO_PROMPT_TEMPLATES) <= 16
    assert validate_prompt_templates(VIDEO_PROMPT_TEMPLATES) == VIDEO_PROMPT_TEMPLATES
    assert len(set(VIDEO_PROMPT_TEMPLATES)) == len(VIDEO_PROMPT_TEMPLATES)
    for recipe in RECIPES:
        assert json.loads(recipe.read_text())["prompt_templates"] == list(VIDEO_PROMPT_TEMPLATES), recipe.name


def test_the_default_template_stays_the_single_one(prompt_tokenizer):
    # the offline quickstart's published numbers were measured with it
    assert DEFAULT_PROMPT_TEMPLATES == ("a video of a person {}.",)
    assert make_processor(prompt_tokenizer).prompt_templates == DEFAULT_PROMPT_TEMPLATES


def load_train_script():
    spec = importlib.util.spec_from_file_location("zeetad_examples_train", EXAMPLES / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.stem)
def test_train_script_takes_the_templates_of_a_recipe(recipe, prompt_tokenizer, tmp_path):
    train_script = load_train_script()
    parser = CommandLineHfArgumentParser(
        (train_script.DataArguments, train_script.ModelArguments, ZeetadTrainingArguments), takes_json_config=True
    )
    clip_folder = save_tiny_clip(tmp_path / "clip", prompt_tokenizer)[1]
    argv = [str(recipe), "--clip_model", str(clip_folder), "--output_dir", str(tmp_path / "run")]
    _, model_args, _ = parse_arguments(parser, argv)
    assert model_args.prompt_templates == list(VIDEO_PROMPT_TEMPLATES)
    _, processor = train_script.build_model_and_processor(model_args, None)
    assert processor.prompt_templates == VIDEO_PROMPT_TEMPLATES and processor.normalize_class_names
    # a flag after the file replaces the file's list
    _, model_args, _ = parse_arguments(parser, [*argv, "--prompt_templates", "the person {}", "a clip of {}"])
    assert model_args.prompt_templates == ["the person {}", "a clip of {}"]


# ---------------------------------------------------------------------------------------------------------------------
# The processor: prompts hold the phrase, the setting is saved, the ensemble is CLIP's


def test_prompts_hold_the_phrase_unless_turned_off(prompt_tokenizer):
    labels = ["BaseballPitch", "pole vault", "CleanAndJerk"]
    templates = ["a video of a person {}.", "footage of people {}."]
    encoded = make_processor(prompt_tokenizer, prompt_templates=templates)(text=labels)
    prompts = [t.format(phrase) for phrase in ("baseball pitch", "pole vault", "clean and jerk") for t in templates]
    expected = prompt_tokenizer(prompts, padding=True, return_tensors="pt")["input_ids"].view(3, 2, -1)
    assert encoded["input_ids"].tolist() == expected.tolist()
    as_given = make_processor(prompt_tokenizer, prompt_templates=templates, normalize_class_names=False)(text=labels)
    prompts = [template.format(label) for label in labels for template in templates]
    expected = prompt_tokenizer(prompts, padding=True, return_tensors="pt")["input_ids"].view(3, 2, -1)
    assert as_given["input_ids"].tolist() == expected.tolist()
    assert as_given["input_ids"][0].tolist() != encoded["input_ids"][0].tolist()
    # the training and evaluation scripts encode their class names through the same processor
    training_prompts = encode_class_prompts(make_processor(prompt_tokenizer), ["BaseballPitch"], torch.device("cpu"))
    assert (
        training_prompts["input_ids"].tolist()
        == prompt_tokenizer(["a video of a person baseball pitch."], return_tensors="pt")["input_ids"].tolist()
    )


def test_labels_that_meet_after_normalisation_raise(prompt_tokenizer):
    with pytest.raises(ValueError, match=r"'HighJump' and 'high jump' \(both 'high jump'\).*normalize_class_names"):
        make_processor(prompt_tokenizer)(text=["HighJump", "high jump"])
    # as given they are two different prompts
    make_processor(prompt_tokenizer, normalize_class_names=False)(text=["HighJump", "high jump"])


def test_normalize_class_names_must_be_a_bool(prompt_tokenizer):
    with pytest.raises(ValueError, match=r"`normalize_class_names` must be True or False, got 'yes'"):
        make_processor(prompt_tokenizer, normalize_class_names="yes")


@pytest.mark.parametrize("normalize", [True, False])
def test_normalize_class_names_is_saved_and_loaded(prompt_tokenizer, tmp_path, normalize):
    processor = make_processor(
        prompt_tokenizer, prompt_templates=VIDEO_PROMPT_TEMPLATES, normalize_class_names=normalize
    )
    processor.save_pretrained(tmp_path)
    ZeetadConfig().save_pretrained(tmp_path)
    assert json.loads((tmp_path / "processor_config.json").read_text())["normalize_class_names"] is normalize
    labels = ["BaseballPitch", "CliffDiving"]
    for loader in (ZeetadProcessor, AutoProcessor):
        reloaded = loader.from_pretrained(tmp_path)
        assert reloaded.normalize_class_names is normalize
        assert reloaded.prompt_templates == VIDEO_PROMPT_TEMPLATES
        assert reloaded(text=labels)["input_ids"].tolist() == processor(text=labels)["input_ids"].tolist()


def test_a_processor_saved_before_the_setting_existed_normalises(prompt_tokenizer, tmp_path):
    make_processor(prompt_tokenizer).save_pretrained(tmp_path)
    config_path = tmp_path / "processor_config.json"
    saved = json.loads(config_path.read_text())
    del saved["normalize_class_names"]
    config_path.write_text(json.dumps(saved))
    assert ZeetadProcessor.from_pretrained(tmp_path).normalize_class_names is True


def test_the_ensemble_embedding_is_the_normalised_mean_of_normalised_prompt_embeddings(prompt_tokenizer):
    model = ZeetadForTemporalActionDetection(tiny_zeetad_config(prompt_tokenizer, localization_feature_dim=None))
    model.eval()
    labels = ["BaseballPitch", "CliffDiving", "Applying sunscreen", "BMX"]
    phrases = ["baseball pitch", "cliff diving", "Applying sunscreen", "BMX"]
    encoded = make_processor(prompt_tokenizer, prompt_templates=VIDEO_PROMPT_TEMPLATES)(text=labels)
    assert encoded["input_ids"].shape[:2] == (len(labels), len(VIDEO_PROMPT_TEMPLATES))
    with torch.no_grad():
        ensembled = model.get_text_features(**encoded).pooler_output
        # each prompt alone, unpadded, through the text tower and projection
        expected = []
        for phrase in phrases:
            per_template = []
            for template in VIDEO_PROMPT_TEMPLATES:
                input_ids = prompt_tokenizer([template.format(phrase)], return_tensors="pt")["input_ids"]
                pooled = model.text_encoder(input_ids=input_ids).pooler_output
                per_template.append(F.normalize(model.text_projection(pooled)[0], dim=-1))
            expected.append(F.normalize(torch.stack(per_template).mean(0), dim=-1))
    torch.testing.assert_close(ensembled, torch.stack(expected), rtol=1e-5, atol=1e-5)
    # not what the first template alone gives: the ensemble is used
    with torch.no_grad():
        single = model.get_text_features(**make_processor(prompt_tokenizer)(text=labels)).pooler_output
    assert not torch.allclose(ensembled, single, atol=1e-3)


# ---------------------------------------------------------------------------------------------------------------------
# Labels in outputs stay as given


def test_the_pipeline_returns_the_labels_as_given(prompt_tokenizer):
    model = ZeetadForTemporalActionDetection(tiny_zeetad_config(prompt_tokenizer, localization_feature_dim=None))
    model.eval()
    features = {"clip_features": torch.randn(30, 16), "fps": 30, "feature_stride": 4, "window_size": 16}
    labels = ["BaseballPitch", "CliffDiving", "pole vault"]
    phrases = ["baseball pitch", "cliff diving", "pole vault"]

    def detect(candidate_labels, **processor_kwargs):
        processor = make_processor(prompt_tokenizer, prompt_templates=VIDEO_PROMPT_TEMPLATES, **processor_kwargs)
        detector = pipeline("zero-shot-temporal-action-detection", model=model, processor=processor)
        return detector(features, candidate_labels=candidate_labels, threshold=0.0)

    given = detect(labels)
    assert len(given) > 0 and {detection["label"] for detection in given} <= set(labels)
    # the same prompts as the phrases themselves: the same detections, under the names as given
    as_phrases = detect(phrases)
    rename = dict(zip(phrases, labels))
    assert [{**detection, "label": rename[detection["label"]]} for detection in as_phrases] == given
    # and not the prompts of the names as written
    as_written = detect(labels, normalize_class_names=False)
    assert {detection["label"] for detection in as_written} <= set(labels)
    assert [detection["score"] for detection in as_written] != [detection["score"] for detection in given]
