"""embed_video_frames: the background decoder gives the serial result, one preallocated embedding buffer (grown when
the length is unknown), one reused pixel buffer, and a clean stop when the caller's code raises."""

import dataclasses
import threading

import numpy as np
import pytest
import torch
from test_video_utils import write_video

from zeetad_hf import VideoFrameSampler, ZeetadFeatureExtractor, frame_embedding
from zeetad_hf.frame_embedding import embed_video_frames


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """10 seconds at 25 fps, 80x48."""
    return write_video(tmp_path_factory.mktemp("videos") / "video.mp4", 25, 250)


@pytest.fixture
def extractor():
    return ZeetadFeatureExtractor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


class RecordingTower:
    """A fixed random projection of the pixels to 6-d embeddings, recording the buffer it is handed each call."""

    def __init__(self, dtype: torch.dtype = torch.float32):
        self.projection = torch.randn(3 * 32 * 32, 6, generator=torch.Generator().manual_seed(0)).to(dtype)
        self.data_pointers = []

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        self.data_pointers.append(pixels.data_ptr())
        # num_frames, 3 * 32 * 32
        return pixels.flatten(1).to(self.projection.dtype) @ self.projection


def reference_embeddings(video, extractor, tower, sampling_fps: float) -> torch.Tensor:
    """Everything sampled at once, resized after decoding, one tower call."""
    frames = np.concatenate([frames for frames, _ in VideoFrameSampler(video, sampling_fps).iter_chunks(1000)])
    return tower(extractor.preprocess_frames(frames))


@pytest.mark.parametrize("num_prefetched_chunks", [0, 1, 2])
def test_embeddings_equal_the_all_at_once_computation(video, extractor, num_prefetched_chunks):
    tower = RecordingTower()
    batch_sizes = []
    embeddings = embed_video_frames(
        VideoFrameSampler(video, 2.0), extractor, tower, 4, batch_sizes.append, num_prefetched_chunks
    )
    assert batch_sizes == [4, 4, 4, 4, 4]
    torch.testing.assert_close(embeddings, reference_embeddings(video, extractor, RecordingTower(), 2.0))
    # the tower got the same pixel buffer every time
    assert len(set(tower.data_pointers)) == 1


def test_the_embedding_buffer_takes_the_towers_dtype_and_grows_for_unknown_lengths(video, extractor, monkeypatch):
    monkeypatch.setattr(frame_embedding, "UNKNOWN_LENGTH_CAPACITY", 2)
    sampler = VideoFrameSampler(video, 2.5)
    # a container that declares no duration: the buffer starts at 3 units and doubles
    sampler.info = dataclasses.replace(sampler.info, duration=None)
    assert sampler.num_units is None
    embeddings = embed_video_frames(sampler, extractor, RecordingTower(torch.float64), 4)
    assert embeddings.shape == (25, 6) and embeddings.dtype == torch.float64
    expected = reference_embeddings(video, extractor, RecordingTower(torch.float64), 2.5)
    torch.testing.assert_close(embeddings, expected)


@pytest.mark.parametrize("failing", ["tower", "progress_callback"])
def test_an_error_in_the_callers_code_stops_the_decoder_thread_before_it_propagates(video, extractor, failing):
    threads_before = threading.enumerate()
    calls = []

    def fail_on_second_call(value):
        calls.append(value)
        if len(calls) == 2:
            raise KeyError("stop here")
        return RecordingTower()(value) if failing == "tower" else None

    tower = fail_on_second_call if failing == "tower" else RecordingTower()
    callback = fail_on_second_call if failing == "progress_callback" else None
    with pytest.raises(KeyError, match="stop here"):
        embed_video_frames(VideoFrameSampler(video, 5.0), extractor, tower, 4, callback)
    assert threading.enumerate() == threads_before
