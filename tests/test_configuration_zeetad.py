"""ZeetadConfig: defaults, sub-configs, JSON round trip, validation messages."""

import pytest
from huggingface_hub.errors import StrictDataclassFieldValidationError
from transformers import AutoConfig, CLIPTextConfig, CLIPVisionConfig

from zeetad_hf import ZeetadConfig


def test_defaults_follow_clip_vit_b16_text_tower():
    config = ZeetadConfig()
    assert isinstance(config.text_config, CLIPTextConfig)
    assert config.text_config.hidden_size == 512 and config.clip_embedding_dim == 512
    assert config.vision_config is None
    assert config.localization_feature_dim is None
    assert config.hidden_size == config.d_model == 256
    assert config.text_adapter_type == "bottleneck"


def test_sub_configs_from_dicts_and_json_round_trip(tmp_path):
    config = ZeetadConfig(
        text_config={"hidden_size": 64, "projection_dim": 32, "num_attention_heads": 4},
        vision_config={"hidden_size": 48, "num_attention_heads": 4, "projection_dim": 32},
        localization_feature_dim=2048,
        lora_target_modules=["q_proj", "k_proj"],
        text_adapter_type="lora",
    )
    assert isinstance(config.vision_config, CLIPVisionConfig)
    config.save_pretrained(tmp_path)
    for loader in (ZeetadConfig, AutoConfig):
        reloaded = loader.from_pretrained(tmp_path)
        assert isinstance(reloaded, ZeetadConfig)
        assert reloaded.text_config.hidden_size == 64 and reloaded.clip_embedding_dim == 32
        assert reloaded.vision_config.hidden_size == 48
        assert list(reloaded.lora_target_modules) == ["q_proj", "k_proj"]
        assert reloaded.text_adapter_type == "lora" and reloaded.localization_feature_dim == 2048


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"d_model": 30, "num_attention_heads": 8},
            r"`d_model` \(30\) must be divisible by `num_attention_heads` \(8\)",
        ),
        ({"num_queries": 0}, r"`num_queries` must be a positive integer, got 0"),
        ({"num_feature_levels": 0}, r"`num_feature_levels` must be a positive integer"),
        ({"encoder_layers": -1}, r"`encoder_layers` must be >= 0, got -1"),
        ({"localization_feature_dim": 0}, r"`localization_feature_dim` must be a positive integer or None, got 0"),
        ({"text_adapter_type": "prefix"}, r"`text_adapter_type` must be one of .* got 'prefix'"),
        ({"text_adapter_type": "lora", "lora_target_modules": []}, r"`lora_target_modules` must name at least one"),
        ({"dropout": 1.5}, r"`dropout` must be in \[0, 1\), got 1.5"),
        ({"focal_alpha": 2.0}, r"`focal_alpha` must be in \[0, 1\], got 2.0"),
        ({"giou_loss_coefficient": -1.0}, r"`giou_loss_coefficient` must be >= 0, got -1.0"),
        ({"matcher_l1_cost": -0.5}, r"`matcher_l1_cost` must be >= 0"),
    ],
)
def test_invalid_values_raise_value_error_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        ZeetadConfig(**overrides)


def test_wrong_types_are_rejected_by_the_strict_dataclass():
    with pytest.raises(StrictDataclassFieldValidationError, match="d_model"):
        ZeetadConfig(d_model="wide")
