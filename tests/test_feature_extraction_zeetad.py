"""ZeetadFeatureExtractor: CLIP preprocessing vs transformers' PIL CLIP processor and the previous torch resize on
decoded video, resizing by the decoder vs afterwards, padding, windows, saving."""

import math

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoFeatureExtractor, CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

from zeetad_hf import VideoFrameSampler, ZeetadConfig, ZeetadFeatureExtractor


# One uint8 level after CLIP normalisation: 1 / 255 / the smallest CLIP std.
ONE_LEVEL = 1 / 255 / min(CLIPImageProcessorPil().image_std)


def natural_looking_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """Smooth random images plus noise: resizing them exercises interpolation like real video frames do."""
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(num_frames, 3, height // 8 + 1, width // 8 + 1, generator=generator) * 255
    frames = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    frames = frames + 12 * torch.randn(frames.shape, generator=generator)
    return frames.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def write_h264(path, frames: np.ndarray, fps: int = 8):
    """Encode `(T, H, W, 3)` RGB frames as an H.264 mp4 (yuv420p, libx264 defaults: crf 23)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def torch_bicubic_preprocessing(extractor: ZeetadFeatureExtractor, frames: np.ndarray) -> torch.Tensor:
    """The package's preprocessing before FFmpeg's scaler replaced it: torch's antialiased bicubic on uint8 (itself
    within one uint8 level of PIL), center crop, normalisation."""
    # num_frames, 3, height, width
    pixels = torch.from_numpy(frames).permute(0, 3, 1, 2)
    new_height, new_width = extractor.resized_size(*frames.shape[1:3])
    pixels = F.interpolate(pixels, size=(new_height, new_width), mode="bicubic", antialias=True)
    crop_height, crop_width = extractor.crop_size["height"], extractor.crop_size["width"]
    top, left = (new_height - crop_height) // 2, (new_width - crop_width) // 2
    pixels = pixels[..., top : top + crop_height, left : left + crop_width]
    mean = torch.tensor(extractor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(extractor.image_std).view(1, 3, 1, 1)
    return (pixels.float() * extractor.rescale_factor - mean) / std


@pytest.mark.parametrize("height, width", [(240, 320), (300, 200), (96, 128), (224, 224), (225, 301)])
def test_preprocess_frames_stays_close_to_clip_image_processor(height, width):
    frames = natural_looking_frames(3, height, width)
    expected = CLIPImageProcessorPil()(list(frames), return_tensors="pt")["pixel_values"]
    got = ZeetadFeatureExtractor().preprocess_frames(frames)
    assert got.shape == expected.shape == (3, 3, 224, 224) and got.dtype == torch.float32
    difference = (got - expected).abs()
    if (height, width) == (224, 224):
        # no resize: the crop and normalisation are exact
        assert difference.max() <= 1e-6
    # FFmpeg's bicubic (a = -0.6, 14-bit fixed-point taps) vs PIL's (a = -0.5): measured at most 5 uint8 levels and
    # 0.34-0.37 on average on these frames, whose per-pixel noise (sigma 12 levels) is the worst case for a change
    # of kernel; on decoded video the gap is smaller (next test)
    assert difference.max() <= 5 * ONE_LEVEL + 1e-5
    assert difference.mean() <= 0.5 * ONE_LEVEL


@pytest.mark.parametrize("height, width", [(240, 320), (720, 1280)])
def test_decoder_side_resize_stays_within_tolerance_of_the_previous_preprocessing(tmp_path, height, width):
    # The tolerance is set against what the video codec itself does to the frames: swapping the resize kernel must
    # change pixels and CLIP embeddings by a small fraction of the H.264 encoding error they already carry.
    # Measured (320x240 / 1280x720), in uint8 levels of each channel: at most 3 / 6, on average 0.30 / 0.62 (99% of
    # values within 2 levels), vs about 10 levels of mean codec error; embeddings of a tiny random CLIP tower move by
    # 0.17% / 0.28% (relative), vs 5.0% / 1.4% for the codec.
    source = natural_looking_frames(8, height, width)
    path = write_h264(tmp_path / "video.mp4", source)
    extractor = ZeetadFeatureExtractor()
    sampler = VideoFrameSampler(path, sampling_fps=8.0)
    decoded = np.concatenate([frames for frames, _ in sampler.iter_chunks(4)])
    resized = [
        extractor.preprocess_frames(frames)
        for frames, _ in sampler.iter_chunks(4, extractor.resized_size(height, width), num_prefetched_chunks=1)
    ]
    new = torch.cat(resized)
    previous = torch_bicubic_preprocessing(extractor, decoded)
    # back from normalised values to uint8 levels of each channel
    level_difference = (new - previous).abs() * torch.tensor(extractor.image_std).view(1, 3, 1, 1) * 255
    codec_error = np.abs(decoded.astype(np.float32) - source).mean()
    assert codec_error > 5
    assert level_difference.mean() <= min(1.0, 0.1 * codec_error)
    assert level_difference.max() <= 8.0

    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=224,
        patch_size=32, projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    tower = CLIPVisionModelWithProjection(config).eval()
    with torch.no_grad():
        embeddings = {
            name: tower(pixel_values=pixels).image_embeds
            for name, pixels in (
                ("new", new),
                ("previous", previous),
                ("source", torch_bicubic_preprocessing(extractor, source)),
            )
        }

    def relative_difference(first: torch.Tensor, second: torch.Tensor) -> float:
        return ((first - second).norm(dim=-1) / second.norm(dim=-1)).max().item()

    resize_change = relative_difference(embeddings["new"], embeddings["previous"])
    assert resize_change <= 0.01
    assert resize_change <= 0.5 * relative_difference(embeddings["previous"], embeddings["source"])


def test_resizing_in_the_decoder_or_in_preprocess_frames_gives_identical_pixels(tmp_path):
    path = write_h264(tmp_path / "video.mp4", natural_looking_frames(6, 96, 160))
    extractor = ZeetadFeatureExtractor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    sampler = VideoFrameSampler(path, sampling_fps=8.0)
    frame_size = extractor.resized_size(96, 160)
    after_decoding = [extractor.preprocess_frames(frames) for frames, _ in sampler.iter_chunks(4)]
    by_the_decoder = [extractor.preprocess_frames(frames) for frames, _ in sampler.iter_chunks(4, frame_size)]
    assert frame_size == (64, 106)
    torch.testing.assert_close(torch.cat(by_the_decoder), torch.cat(after_decoding), rtol=0, atol=0)


def test_preprocess_frames_writes_into_a_given_buffer():
    extractor = ZeetadFeatureExtractor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    frames = natural_looking_frames(3, 48, 80)
    buffer = torch.full((4, 3, 32, 32), float("nan"))
    result = extractor.preprocess_frames(frames, out=buffer[:3])
    assert result.data_ptr() == buffer.data_ptr()
    torch.testing.assert_close(result, extractor.preprocess_frames(frames), rtol=0, atol=0)
    assert buffer[3].isnan().all()
    with pytest.raises(ValueError, match=r"`out` must be a contiguous float32 tensor of shape \(3, 3, 32, 32\)"):
        extractor.preprocess_frames(frames, out=buffer)
    with pytest.raises(ValueError, match="`out`"):
        extractor.preprocess_frames(frames, out=buffer[:3].double())


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
    # a string from a config file or a command line is named, not compared (it used to be a TypeError deep inside)
    for window_overlap in ("0.5", True, math.nan):
        with pytest.raises(ValueError, match=r"`window_overlap` must be a number in \[0, 1\), got"):
            extractor.temporal_windows(10, window_overlap=window_overlap)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("sampling_fps", 0.0, "sampling_fps"),
        ("sampling_fps", -2.0, "sampling_fps"),
        ("sampling_fps", math.inf, "`sampling_fps` must be a finite positive number, got inf"),
        ("sampling_fps", "1", "`sampling_fps` must be a finite positive number, got '1'"),
        ("size", {"height": 224}, "size"),
        ("crop_size", {"height": 256, "width": 256}, "fit inside"),
        ("image_std", [0.2, 0.0, 0.2], "image_std"),
        ("max_units", 0, "max_units"),
        ("window_overlap", 1.5, "window_overlap"),
        ("window_overlap", "0.5", "`window_overlap` must be a number in"),
        ("fixed_num_units", 0, "`fixed_num_units` must be a positive integer or None, got 0"),
        ("fixed_num_units", 19.5, "`fixed_num_units` must be a positive integer or None, got 19.5"),
    ],
)
def test_invalid_fields_raise(field, value, message):
    with pytest.raises(ValueError, match=message):
        ZeetadFeatureExtractor(**{field: value})


def test_save_and_auto_feature_extractor_round_trip(tmp_path):
    extractor = ZeetadFeatureExtractor(
        sampling_fps=2.5,
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
        max_units=64,
        fixed_num_units=100,
    )
    extractor.save_pretrained(tmp_path)
    ZeetadConfig().save_pretrained(tmp_path)
    for loader in (ZeetadFeatureExtractor, AutoFeatureExtractor):
        reloaded = loader.from_pretrained(tmp_path)
        assert isinstance(reloaded, ZeetadFeatureExtractor)
        assert reloaded.to_dict() == extractor.to_dict()


# ---------------------------------------------------------------------------------------------------------------------
# Fixed-length resizing
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "num_units, stride, window, fps",
    [(137, 16.0, 16.0, 15.0), (250, 4.0, 16.0, 29.97), (9, 1.0, 1.0, 2.0)],
    ids=["tsp", "i3d", "short"],
)
@pytest.mark.parametrize("fixed_num_units", [50, 192])
def test_fixed_length_units_sample_the_features_at_their_centre_times(num_units, stride, window, fps, fixed_num_units):
    # features linear in time: [t, 2t + 1] at each unit's centre t = (i * stride + window / 2) / fps
    old_centers = (np.arange(num_units) * stride + window / 2) / fps
    features = torch.tensor(np.stack([old_centers, 2 * old_centers + 1], axis=1), dtype=torch.float32)
    timing = {"fps": fps, "feature_stride": stride, "window_size": window, "duration": 123.0}
    extractor = ZeetadFeatureExtractor(fixed_num_units=fixed_num_units)
    resized, clip, new_timing = extractor.resize_to_fixed_units(features, None, timing)
    # the new units tile the frames the old ones cover, [0, (T - 1) * stride + window]
    unit = ((num_units - 1) * stride + window) / fixed_num_units
    assert new_timing == {"fps": fps, "feature_stride": unit, "window_size": unit, "duration": 123.0}
    assert resized.shape == (fixed_num_units, 2) and clip is None
    new_centers = (np.arange(fixed_num_units) + 0.5) * unit / fps
    expected = np.stack([new_centers, 2 * new_centers + 1], axis=1)
    inside = (new_centers >= old_centers[0]) & (new_centers <= old_centers[-1])
    np.testing.assert_allclose(resized[inside].numpy(), expected[inside], rtol=1e-5, atol=1e-4)
    # beyond the first and last old centres the end values are held
    before, after = new_centers < old_centers[0], new_centers > old_centers[-1]
    np.testing.assert_array_equal(resized[before].numpy(), np.repeat(features[:1].numpy(), before.sum(), axis=0))
    np.testing.assert_array_equal(resized[after].numpy(), np.repeat(features[-1:].numpy(), after.sum(), axis=0))


def test_fixed_length_resizing_with_equal_stride_and_window_is_actionformers_interpolation():
    features = torch.randn(137, 8)
    timing = {"fps": 15.0, "feature_stride": 16.0, "window_size": 16.0}
    resized, clip, _ = ZeetadFeatureExtractor(fixed_num_units=192).resize_to_fixed_units(features, features, timing)
    reference = F.interpolate(features.T[None], size=192, mode="linear", align_corners=False)[0].T
    # float32 rounding of the interpolation weights apart
    torch.testing.assert_close(resized, reference, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(clip, reference, rtol=1e-4, atol=1e-4)


def test_without_a_fixed_length_nothing_is_resized():
    features = torch.randn(37, 4)
    timing = {"fps": 15.0, "feature_stride": 16.0, "window_size": 16.0}
    resized, clip, new_timing = ZeetadFeatureExtractor().resize_to_fixed_units(features, None, timing)
    assert resized is features and clip is None and new_timing == timing
