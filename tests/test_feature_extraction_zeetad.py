"""ZeetadFeatureExtractor: batched CLIP preprocessing vs transformers' PIL CLIP processor, padding, windows, saving."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoFeatureExtractor, CLIPImageProcessorPil

from zeetad_hf import ZeetadConfig, ZeetadFeatureExtractor


# One uint8 level after CLIP normalisation: 1 / 255 / the smallest CLIP std.
ONE_LEVEL = 1 / 255 / min(CLIPImageProcessorPil().image_std)


def natural_looking_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """Smooth random images plus noise: resizing them exercises interpolation like real video frames do."""
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(num_frames, 3, height // 8 + 1, width // 8 + 1, generator=generator) * 255
    frames = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    frames = frames + 12 * torch.randn(frames.shape, generator=generator)
    return frames.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


@pytest.mark.parametrize("height, width", [(240, 320), (300, 200), (96, 128), (224, 224), (225, 301)])
def test_preprocess_frames_matches_clip_image_processor_within_one_level(height, width):
    frames = natural_looking_frames(3, height, width)
    expected = CLIPImageProcessorPil()(list(frames), return_tensors="pt")["pixel_values"]
    got = ZeetadFeatureExtractor().preprocess_frames(frames)
    assert got.shape == expected.shape == (3, 3, 224, 224) and got.dtype == torch.float32
    difference = (got - expected).abs()
    # downscaling: at most one uint8 level on a few pixels; upscaling (96x128) can reach two levels
    assert difference.max() <= 2 * ONE_LEVEL + 1e-5
    assert difference.mean() <= 0.01 * ONE_LEVEL
    if height > 224 and width > 224:
        assert difference.max() <= ONE_LEVEL + 1e-5


def test_preprocess_frames_accepts_torch_and_rejects_other_layouts():
    extractor = ZeetadFeatureExtractor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 24})
    frames = natural_looking_frames(2, 48, 80)
    torch.testing.assert_close(
        extractor.preprocess_frames(torch.from_numpy(frames)), extractor.preprocess_frames(frames)
    )
    assert extractor.preprocess_frames(frames).shape == (2, 3, 32, 24)
    assert extractor.resized_size(48, 80) == (32, 53) and extractor.resized_size(80, 48) == (53, 32)
    with pytest.raises(ValueError, match="uint8"):
        extractor.preprocess_frames(frames.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(num_frames, height, width, 3\)"):
        extractor.preprocess_frames(frames[0])


def test_pad_features_pads_on_the_right_with_a_mask():
    extractor = ZeetadFeatureExtractor(padding_value=-1.0)
    first, second = torch.randn(5, 4), np.random.default_rng(0).normal(size=(3, 4))
    features, mask = extractor.pad_features([first, second])
    assert features.shape == (2, 5, 4) and features.dtype == torch.float32
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    torch.testing.assert_close(features[0], first)
    torch.testing.assert_close(features[1, :3], torch.from_numpy(second).float())
    assert (features[1, 3:] == -1.0).all()
    with pytest.raises(ValueError, match="empty"):
        extractor.pad_features([])
    with pytest.raises(ValueError, match=r"features\[1\]` has dimension 3"):
        extractor.pad_features([first, torch.randn(3, 3)])
    with pytest.raises(ValueError, match=r"num_units >= 1"):
        extractor.pad_features([torch.randn(0, 4)])


@pytest.mark.parametrize("num_units", [1, 99, 100, 101, 176, 250, 1000])
def test_temporal_windows_cover_the_video_with_full_length_overlapping_windows(num_units):
    windows = ZeetadFeatureExtractor(max_units=100, window_overlap=0.25).temporal_windows(num_units)
    if num_units <= 100:
        assert windows == [(0, num_units)]
        return
    assert windows[0][0] == 0 and windows[-1][1] == num_units
    assert all(end - start == 100 for start, end in windows)
    for (start, end), (next_start, _) in zip(windows[:-1], windows[1:]):
        # consecutive windows overlap by at least 25 units and advance
        assert start < next_start <= end - 25


def test_temporal_windows_overrides_and_validation():
    extractor = ZeetadFeatureExtractor()
    assert extractor.temporal_windows(250, max_units=100, window_overlap=0.0) == [(0, 100), (100, 200), (150, 250)]
    with pytest.raises(ValueError, match="`max_units`"):
        extractor.temporal_windows(10, max_units=0)
    with pytest.raises(ValueError, match="`window_overlap`"):
        extractor.temporal_windows(10, window_overlap=1.0)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("sampling_fps", 0.0, "sampling_fps"),
        ("sampling_fps", -2.0, "sampling_fps"),
        ("size", {"height": 224}, "size"),
        ("crop_size", {"height": 256, "width": 256}, "fit inside"),
        ("image_std", [0.2, 0.0, 0.2], "image_std"),
        ("max_units", 0, "max_units"),
        ("window_overlap", 1.5, "window_overlap"),
    ],
)
def test_invalid_fields_raise(field, value, message):
    with pytest.raises(ValueError, match=message):
        ZeetadFeatureExtractor(**{field: value})


def test_save_and_auto_feature_extractor_round_trip(tmp_path):
    extractor = ZeetadFeatureExtractor(
        sampling_fps=2.5, size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, max_units=64
    )
    extractor.save_pretrained(tmp_path)
    ZeetadConfig().save_pretrained(tmp_path)
    for loader in (ZeetadFeatureExtractor, AutoFeatureExtractor):
        reloaded = loader.from_pretrained(tmp_path)
        assert isinstance(reloaded, ZeetadFeatureExtractor)
        assert reloaded.to_dict() == extractor.to_dict()
