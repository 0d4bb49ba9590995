"""Tiny offline CLIP/ZEETAD builders shared by the tests (no environment side effects: safe in child processes)."""

from pathlib import Path

from transformers import CLIPConfig, CLIPModel

from zeetad_hf import ZeetadConfig, ZeetadFeatureExtractor, ZeetadForTemporalActionDetection, ZeetadProcessor


PROMPT_WORDS = ("a", "video", "of", "person", "jumping", "running", "diving", "swimming", "throwing", "the")

# Detector settings of every tiny ZEETAD in the tests (hidden sizes of 32 and below, well under 1M parameters).
TINY_DETECTOR = {
    "d_model": 32,
    "num_attention_heads": 4,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "num_feature_levels": 3,
    "encoder_layers": 1,
    "decoder_layers": 2,
    "num_queries": 8,
    "semantic_adapter_dim": 8,
    "text_adapter_bottleneck_dim": 8,
    "lora_rank": 4,
    "dropout": 0.0,
    # The sigmoid head starts SigLIP-style at sigmoid(-10) for every prompt, which Soft-NMS's minimum score would
    # drop entirely; untrained tiny models in pipeline and CLI tests must still produce detections.
    "logit_bias_init_value": 0.0,
}

TINY_VISION_CONFIG = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 8,
    "projection_dim": 16,
}


# Sizes of every tiny CLIP text tower in the tests (the vocabulary and special tokens come from the tokenizer).
TINY_TEXT_SHAPE = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 16,
    "projection_dim": 16,
}


def tiny_text_config(tokenizer) -> dict:
    return {
        "vocab_size": len(tokenizer),
        **TINY_TEXT_SHAPE,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def tiny_zeetad_config(tokenizer, **overrides) -> ZeetadConfig:
    """A tiny ZEETAD config with 24-d localization features (override `localization_feature_dim=None` for CLIP-only)."""
    settings = {"text_config": tiny_text_config(tokenizer), "localization_feature_dim": 24, **TINY_DETECTOR}
    settings.update(overrides)
    return ZeetadConfig(**settings)


def save_tiny_clip(folder: Path, tokenizer, projection_dim: int = 16, **vision_overrides) -> tuple[CLIPModel, Path]:
    """A random tiny CLIP (text + 32x32 vision tower, 16-d joint space unless `projection_dim` says otherwise) saved
    with its tokenizer to `folder`."""
    vision_config = {**TINY_VISION_CONFIG, **vision_overrides, "projection_dim": projection_dim}
    text_config = {**tiny_text_config(tokenizer), "projection_dim": projection_dim}
    clip_config = CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=projection_dim)
    clip = CLIPModel(clip_config).eval()
    clip.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return clip, Path(folder)


def save_tiny_video_detector(folder: Path, tokenizer) -> Path:
    """A tiny CLIP-only ZEETAD with a 32x32 vision tower and its processor (4 units per second of video), saved to
    `folder / "zeetad"` (its CLIP under `folder / "clip"`); returns the model folder."""
    save_tiny_clip(folder / "clip", tokenizer)
    model = ZeetadForTemporalActionDetection.from_clip(
        str(folder / "clip"), load_vision=True, **{**TINY_DETECTOR, "num_feature_levels": 2, "decoder_layers": 1}
    )
    model.save_pretrained(folder / "zeetad")
    feature_extractor = ZeetadFeatureExtractor(
        sampling_fps=4, size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    ZeetadProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(folder / "zeetad")
    return folder / "zeetad"
