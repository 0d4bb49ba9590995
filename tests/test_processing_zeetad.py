"""ZeetadProcessor: class prompts, label validation, features, videos, post-processing, save/load."""

import numpy as np
import pytest
import torch
from test_video_utils import write_video
from transformers import AutoProcessor

from zeetad_hf import (
    ZeetadConfig,
    ZeetadFeatureExtractor,
    ZeetadForTemporalActionDetection,
    ZeetadProcessor,
    post_process_temporal_action_detection,
    processing_zeetad,
)


def make_processor(tokenizer, **kwargs) -> ZeetadProcessor:
    extractor = ZeetadFeatureExtractor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return ZeetadProcessor(extractor, tokenizer, **kwargs)


def test_one_template_gives_class_by_token_ids_padded_to_the_longest_prompt(tokenizer):
    processor = make_processor(tokenizer)
    encoded = processor(text=["jumping", "swimming fast"])
    expected = tokenizer(["a video of a person jumping.", "a video of a person swimming fast."], padding=True)
    assert encoded["input_ids"].tolist() == expected["input_ids"]
    assert encoded["attention_mask"].tolist() == expected["attention_mask"]
    assert encoded["input_ids"].shape[1] < tokenizer.model_max_length


def test_several_templates_give_a_template_dimension(tokenizer):
    templates = ("a video of a person {}.", "the person {}")
    processor = make_processor(tokenizer, prompt_templates=templates)
    encoded = processor(text=["jumping", "diving", "running"])
    assert encoded["input_ids"].shape[:2] == (3, 2)
    single = tokenizer("the person diving")["input_ids"]
    assert encoded["input_ids"][1, 1, : len(single)].tolist() == single
    assert encoded["attention_mask"][1, 1].sum() == len(single)
    # a call-time override replaces the stored templates
    assert processor(text=["jumping"], prompt_templates=["{}"])["input_ids"].shape == (1, 3)


def test_too_long_prompts_are_truncated_with_a_warning(tokenizer, monkeypatch):
    warnings = []
    monkeypatch.setattr(processing_zeetad.logger, "warning", warnings.append)
    long_label = "jumping and running and diving and swimming and throwing"
    encoded = make_processor(tokenizer)(text=["diving", long_label])
    assert encoded["input_ids"].shape == (2, tokenizer.model_max_length)
    assert encoded["input_ids"][1, -1] == tokenizer.eos_token_id
    assert len(warnings) == 1 and long_label in warnings[0] and "diving'" not in warnings[0]


@pytest.mark.parametrize(
    "labels, message",
    [
        ([], "non-empty list"),
        (["jumping", "jumping"], r"Duplicate candidate labels \['jumping'\]"),
        (["High Jump", "high  jump "], "Duplicate candidate labels"),
        (["jumping", 3], "Candidate label 1 is a int"),
        (["jumping", None], "Candidate label 1 is a NoneType"),
        (["jumping", "  "], "Candidate label 1 is blank"),
    ],
)
def test_bad_label_lists_raise(tokenizer, labels, message):
    with pytest.raises(ValueError, match=message):
        make_processor(tokenizer)(text=labels)


@pytest.mark.parametrize("templates", [["a video of"], ["{} and {}"], [], ["{0} video"]])
def test_templates_need_exactly_one_placeholder(tokenizer, templates):
    with pytest.raises(ValueError, match="prompt_templates|Prompt template"):
        make_processor(tokenizer, prompt_templates=templates)


def test_clip_only_features_are_padded_with_their_time_metadata(tokenizer):
    processor = make_processor(tokenizer)
    first = {"clip_features": np.ones((6, 16), np.float32), "fps": 30, "feature_stride": 4, "duration": 0.9}
    second = {"clip_features": torch.randn(4, 16), "fps": 25.0, "feature_stride": 8, "window_size": 16}
    batch = processor(features=[first, second], text=["jumping"])
    assert batch["input_features"].shape == (2, 6, 16) and "clip_features" not in batch
    assert batch["feature_attention_mask"].tolist() == [[1] * 6, [1] * 4 + [0] * 2]
    assert batch["video_metadata"] == [
        {"fps": 30.0, "feature_stride": 4.0, "window_size": 4.0, "duration": 0.9},
        {"fps": 25.0, "feature_stride": 8.0, "window_size": 16.0},
    ]
    assert batch["input_ids"].shape[0] == 1


def test_localization_features_travel_with_clip_features(tokenizer):
    processor = make_processor(tokenizer)
    video = {"clip_features": torch.randn(5, 16), "input_features": torch.randn(5, 24), "fps": 30, "feature_stride": 4}
    batch = processor(features=video)
    assert batch["input_features"].shape == (1, 5, 24) and batch["clip_features"].shape == (1, 5, 16)
    torch.testing.assert_close(batch["clip_features"][0], video["clip_features"])


@pytest.mark.parametrize(
    "features, message",
    [
        ({"clip_features": torch.randn(5, 16), "feature_stride": 4}, r"lacks \['fps'\]"),
        ({"clip_features": torch.randn(5, 16), "fps": 0, "feature_stride": 4}, r"features\[0\]\['fps'\]` must be"),
        ({"clip_features": torch.randn(5, 16), "fps": -30, "feature_stride": 4}, r"\['fps'\]` must be a number > 0"),
        ({"clip_features": torch.randn(5, 16), "fps": 30, "feature_stride": 0}, "feature_stride"),
        ({"clip_features": torch.randn(0, 16), "fps": 30, "feature_stride": 4}, "num_units >= 1"),
        (
            {
                "clip_features": torch.randn(5, 16),
                "input_features": torch.randn(4, 24),
                "fps": 30,
                "feature_stride": 4,
            },
            "has 4 units",
        ),
        ({"features": torch.randn(5, 16)}, "'clip_features'"),
    ],
)
def test_bad_feature_dicts_raise(tokenizer, features, message):
    with pytest.raises(ValueError, match=message):
        make_processor(tokenizer)(features=features)


def test_videos_are_sampled_and_preprocessed_per_video(tokenizer, tmp_path):
    processor = make_processor(tokenizer)
    path = write_video(tmp_path / "video.mp4", 25, 60)
    frames = np.full((5, 40, 60, 3), 128, np.uint8)
    batch = processor(videos=[path, {"frames": frames, "fps": 2.5}], sampling_fps=2.0)
    assert [tuple(pixels.shape) for pixels in batch["pixel_values"]] == [(5, 3, 32, 32), (4, 3, 32, 32)]
    assert batch["video_metadata"][0] == {"fps": 2.0, "feature_stride": 1, "window_size": 1, "duration": 2.4}
    torch.testing.assert_close(batch["pixel_values"][1], processor.feature_extractor.preprocess_frames(frames[:4]))
    with pytest.raises(ValueError, match="either `videos` or `features`"):
        processor(videos=path, features={"clip_features": torch.randn(2, 16), "fps": 1, "feature_stride": 1})
    with pytest.raises(ValueError, match="at least one"):
        processor()


def test_post_processing_delegates_to_the_package_function(make_config, tokenizer):
    processor = make_processor(tokenizer)
    model = ZeetadForTemporalActionDetection(make_config(localization_feature_dim=None)).eval()
    video = {"clip_features": torch.randn(12, 16), "fps": 30, "feature_stride": 4, "window_size": 16, "duration": 1.7}
    inputs = processor(features=video, text=["jumping", "diving"])
    video_metadata = inputs.pop("video_metadata")
    with torch.no_grad():
        outputs = model(**inputs)
    got = processor.post_process_temporal_action_detection(
        outputs, video_metadata, text_labels=["jumping", "diving"], threshold=0.001, top_k=50, max_segments=5
    )
    expected = post_process_temporal_action_detection(
        outputs, video_metadata, text_labels=["jumping", "diving"], threshold=0.001, top_k=50, max_segments=5
    )
    assert len(got) == 1 and got[0]["text_labels"] == expected[0]["text_labels"]
    for key in ("scores", "labels", "segments"):
        torch.testing.assert_close(got[0][key], expected[0][key])
    assert got[0]["segments"].min() >= 0 and got[0]["segments"].max() <= 1.7


def test_save_and_auto_processor_round_trip(tokenizer, tmp_path):
    processor = make_processor(tokenizer, prompt_templates=["a video of a person {}.", "the person {}"])
    processor.feature_extractor.sampling_fps = 2.0
    processor.save_pretrained(tmp_path)
    ZeetadConfig().save_pretrained(tmp_path)
    for loader in (ZeetadProcessor, AutoProcessor):
        reloaded = loader.from_pretrained(tmp_path)
        assert isinstance(reloaded, ZeetadProcessor)
        assert reloaded.prompt_templates == processor.prompt_templates
        assert reloaded.feature_extractor.to_dict() == processor.feature_extractor.to_dict()
        labels = ["jumping", "diving"]
        assert reloaded(text=labels)["input_ids"].tolist() == processor(text=labels)["input_ids"].tolist()
