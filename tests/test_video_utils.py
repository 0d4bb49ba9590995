"""Streaming frame sampling with PyAV on real files written in the test: exact unit times, every bad input."""

import io
import math
from fractions import Fraction

import av
import numpy as np
import pytest

from zeetad_hf.video_utils import VideoFrameSampler, probe_video, units_for_duration


CODE_BITS = 10
FRAME_WIDTH, FRAME_HEIGHT = 80, 48
BAR_WIDTH = FRAME_WIDTH // CODE_BITS


def coded_frame(index: int) -> np.ndarray:
    """An RGB frame showing `index` in binary as black/white vertical bars (robust to H.264 compression)."""
    frame = np.zeros((FRAME_HEIGHT, FRAME_WIDTH, 3), dtype=np.uint8)
    for bit in range(CODE_BITS):
        if (index >> bit) & 1:
            frame[:, bit * BAR_WIDTH : (bit + 1) * BAR_WIDTH] = 255
    return frame


def read_code(frame: np.ndarray) -> int:
    """Inverse of `coded_frame` (reads the inner part of every bar)."""
    bars = [frame[:, bit * BAR_WIDTH + 2 : (bit + 1) * BAR_WIDTH - 2].mean() for bit in range(CODE_BITS)]
    return sum(1 << bit for bit, value in enumerate(bars) if value > 128)


def write_video(path, fps, num_frames: int, times=None, faststart: bool = False):
    """Write an H.264 mp4 whose frame `k` shows `k`; `times` (Fractions of a second) give a variable frame rate."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = FRAME_WIDTH, FRAME_HEIGHT, "yuv420p"
        if times is not None:
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(coded_frame(index), format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = int(times[index] * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for index in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.rate, frame.pts = 16000, index * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_zero_frame_video(path):
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = FRAME_WIDTH, FRAME_HEIGHT, "yuv420p"
    container.start_encoding()
    container.close()
    return path


def make_bad_videos(folder) -> dict:
    """Every kind of broken input of issue 3, as real files."""
    good = write_video(folder / "good.mp4", 30, 90)
    data = good.read_bytes()
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    # with the index up front the demuxer opens the file and decoding fails part-way instead
    faststart = write_video(folder / "faststart.mp4", 30, 90, faststart=True).read_bytes()
    (folder / "truncated_faststart.mp4").write_bytes(faststart[: len(faststart) // 2])
    (folder / "not_a_video.mp4").write_text("hello, I am a text file\n" * 20)
    return {
        "missing": folder / "missing.mp4",
        "not_a_video": folder / "not_a_video.mp4",
        "truncated": truncated,
        "truncated_faststart": folder / "truncated_faststart.mp4",
        "audio_only": write_audio_only(folder / "audio_only.m4a"),
        "zero_frames": write_zero_frame_video(folder / "zero_frames.mp4"),
        "tenth_of_a_second": write_video(folder / "tenth_of_a_second.mp4", 30, 3),
    }


# exception type and message of each broken file (the message also names the file, checked below)
BAD_VIDEO_ERRORS = {
    "missing": (FileNotFoundError, "not found"),
    "not_a_video": (ValueError, "could not be opened as a video"),
    "truncated": (ValueError, "could not be opened as a video"),
    "truncated_faststart": (ValueError, "corrupt or truncated"),
    "audio_only": (ValueError, "no video stream"),
    "zero_frames": (ValueError, "no video stream"),
    "tenth_of_a_second": (ValueError, "shorter than one sampling step"),
}


def nearest_frame(frame_times: list[Fraction], target: Fraction) -> int:
    """Index of the frame whose time is nearest to `target`, the earlier one on ties."""
    return min(range(len(frame_times)), key=lambda index: (abs(frame_times[index] - target), index))


def sampled_codes(sampler: VideoFrameSampler, chunk_size: int = 4) -> tuple[list[int], list[int]]:
    units, codes = [], []
    for frames, unit_indices in sampler.iter_chunks(chunk_size):
        assert frames.dtype == np.uint8 and frames.shape[1:] == (FRAME_HEIGHT, FRAME_WIDTH, 3)
        assert len(frames) <= chunk_size
        units += unit_indices.tolist()
        codes += [read_code(frame) for frame in frames]
    return units, codes


@pytest.mark.parametrize("fps", [24, 25, 30, Fraction(30000, 1001)], ids=["24", "25", "30", "29.97"])
def test_each_unit_gets_the_frame_nearest_its_centre(tmp_path, fps):
    num_frames = 130
    path = write_video(tmp_path / "video.mp4", fps, num_frames)
    frame_times = [Fraction(index) / Fraction(fps) for index in range(num_frames)]
    duration = num_frames / Fraction(fps)
    for sampling_fps in (1.0, 2.5):
        sampler = VideoFrameSampler(path, sampling_fps)
        units, codes = sampled_codes(sampler)
        rate = Fraction(sampling_fps)
        expected_units = math.ceil(duration * rate)
        assert units == list(range(expected_units))
        # unit i covers [i / r, (i + 1) / r): its frame is the one nearest to (i + 0.5) / r
        assert codes == [nearest_frame(frame_times, (2 * unit + 1) / (2 * rate)) for unit in units]
        assert sampler.duration == pytest.approx(float(duration), abs=1e-9)
        assert sampler.num_units == expected_units


def test_variable_frame_rate_uses_presentation_times(tmp_path):
    times = [Fraction(ms, 1000) for ms in (0, 40, 80, 300, 340, 1000, 1100, 1900, 2500, 2533)]
    path = write_video(tmp_path / "vfr.mp4", 30, len(times), times=times)
    sampler = VideoFrameSampler(path, sampling_fps=2.0)
    units, codes = sampled_codes(sampler)
    assert codes[:5] == [nearest_frame(times, Fraction(2 * unit + 1, 4)) for unit in range(5)] == [3, 5, 6, 7, 8]
    # the video ends after its last frame (2.533 s + its display time): units up to that end show the last frame
    assert units == list(range(units_for_duration(sampler.duration, 2.0))) and codes[-1] == len(times) - 1
    assert 2.533 < sampler.duration < 2.6


def test_path_file_object_and_raw_frames_agree(tmp_path):
    path = write_video(tmp_path / "video.mp4", 25, 60)
    with av.open(str(path)) as container:
        decoded = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    from_path = sampled_codes(VideoFrameSampler(path, 2.0))
    with open(path, "rb") as file:
        from_file = sampled_codes(VideoFrameSampler(file, 2.0))
    from_frames = sampled_codes(VideoFrameSampler({"frames": decoded, "fps": 25}, 2.0))
    assert from_path == from_file == from_frames
    assert from_path[0] == list(range(5))  # 2.4 s at 2 units per second


def test_probe_reports_declared_metadata_and_restores_file_position(tmp_path):
    path = write_video(tmp_path / "video.mp4", 24, 48)
    info = probe_video(path)
    assert (info.duration, info.fps, info.num_frames, info.width, info.height) == (2.0, 24.0, 48, 80, 48)
    assert info.name == str(path)
    with open(path, "rb") as file:
        assert probe_video(file).num_frames == 48 and file.tell() == 0
    raw = probe_video({"frames": np.zeros((10, 4, 6, 3), np.uint8), "fps": 5})
    assert (raw.duration, raw.width, raw.height, raw.name) == (2.0, 6, 4, "raw frames")


def test_upsampling_repeats_frames_and_chunks_stay_bounded():
    frames = np.stack([coded_frame(index) for index in range(4)])  # 4 frames at 2 fps = 2 s
    sampler = VideoFrameSampler({"frames": frames, "fps": 2}, sampling_fps=5)
    units, codes = sampled_codes(sampler, chunk_size=3)
    assert units == list(range(10))
    # unit centres 0.1, 0.3, ... 1.9 s; frames at 0, 0.5, 1.0, 1.5 s (0.25 and 1.25 would be ties: none here)
    assert codes == [0, 1, 1, 1, 2, 2, 3, 3, 3, 3]


def test_bad_video_files_raise_clear_errors_naming_the_file(tmp_path):
    for kind, path in make_bad_videos(tmp_path).items():
        error_type, message = BAD_VIDEO_ERRORS[kind]
        with pytest.raises(error_type, match=message) as raised:
            sampler = VideoFrameSampler(path, sampling_fps=1.0)
            # some problems only show while decoding
            list(sampler.iter_chunks())
        assert path.name in str(raised.value), kind


def test_tenth_of_a_second_is_fine_at_a_high_enough_sampling_rate(tmp_path):
    path = write_video(tmp_path / "short.mp4", 30, 3)
    units, codes = sampled_codes(VideoFrameSampler(path, sampling_fps=10.0))
    assert units == [0] and codes == [1]


@pytest.mark.parametrize(
    "video, sampling_fps, message",
    [
        ({"frames": np.zeros((4, 8, 8, 3), np.uint8), "fps": 0}, 1.0, "`fps` must be a positive number"),
        ({"frames": np.zeros((4, 8, 8, 3), np.uint8), "fps": -25}, 1.0, "`fps` must be a positive number"),
        ({"frames": np.zeros((4, 8, 8, 3), np.uint8), "fps": 4}, 0.0, "`sampling_fps` must be a positive number"),
        ({"frames": np.zeros((4, 8, 8, 3), np.uint8), "fps": 4}, -1.0, "`sampling_fps` must be a positive number"),
        ({"frames": np.zeros((0, 8, 8, 3), np.uint8), "fps": 4}, 1.0, "zero frames"),
        ({"frames": np.zeros((4, 8, 8, 3), np.float32), "fps": 4}, 1.0, "uint8"),
        ({"frames": np.zeros((4, 8, 8), np.uint8), "fps": 4}, 1.0, r"\(T, H, W, 3\)"),
        ({"frames": np.zeros((4, 8, 8, 3), np.uint8)}, 1.0, "'frames'"),
        (np.zeros((4, 8, 8, 3), np.uint8), 1.0, "must be a path"),
    ],
)
def test_bad_raw_frames_and_sampling_rates_raise(video, sampling_fps, message):
    with pytest.raises(ValueError, match=message):
        VideoFrameSampler(video, sampling_fps)


def test_unseekable_file_object_is_refused(tmp_path):
    path = write_video(tmp_path / "video.mp4", 30, 30)

    class Unseekable(io.RawIOBase):
        name = "stream"

        def readable(self):
            return True

        def seekable(self):
            return False

    with pytest.raises(ValueError, match="stream.*seekable"):
        VideoFrameSampler(Unseekable(), 1.0)
    with pytest.raises(ValueError, match="chunk_size"):
        next(VideoFrameSampler(path, 1.0).iter_chunks(0))
