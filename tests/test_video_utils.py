"""Streaming frame sampling with PyAV on real files written in the test: exact unit times, every bad input, the
background decoder thread (same frames, clean stops)."""

import io
import math
import re
import threading
from contextlib import closing
from fractions import Fraction

import av
import numpy as np
import pytest

from zeetad_hf.video_utils import (
    VideoFrameSampler,
    _frames_around_sampled_times,
    probe_video,
    resize_rgb_frames,
    units_for_duration,
)


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


def write_video(path, fps, num_frames: int, times=None, faststart: bool = False, codec: str = "libx264"):
    """Write a video (H.264 mp4 unless the suffix and `codec` say otherwise) whose frame `k` shows `k`; `times`
    (Fractions of a second) give a variable frame rate."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
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


def decode_every_frame(path) -> dict[int, np.ndarray]:
    """pts -> RGB frame of a plain PyAV decode of every frame (the reference for frame skipping)."""
    with av.open(str(path)) as container:
        return {frame.pts: frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)}


@pytest.mark.parametrize("sampling_fps", [0.5, 1.0, 2.5, 7.5, 30.0])
def test_frames_no_unit_can_get_are_left_undecoded_and_the_others_are_unchanged(tmp_path, sampling_fps):
    # x264's default B-frames: at low sampling rates many frames are non-reference frames that no unit needs
    fps, num_frames = 30, 300
    path = write_video(tmp_path / "video.mp4", fps, num_frames)
    every_frame = decode_every_frame(path)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # as the sampler decodes: the skip setting must reach FFmpeg's frame threads
        frames = list(_frames_around_sampled_times(container, stream, Fraction(sampling_fps)))
        frame_times = {frame.pts: (frame.pts - stream.start_time) * stream.time_base for frame in frames}
    # every decoded frame is the full decode's frame at that time, in presentation order
    assert list(frame_times) == sorted(frame_times)
    for frame in frames:
        np.testing.assert_array_equal(frame.to_ndarray(format="rgb24"), every_frame[frame.pts])
    # the two frames around every unit centre (the only ones the nearest-frame rule compares) were decoded
    all_times = [Fraction(index, fps) for index in range(num_frames)]
    for unit in range(math.ceil(Fraction(num_frames, fps) * Fraction(sampling_fps))):
        centre = (2 * unit + 1) / (2 * Fraction(sampling_fps))
        before = [time for time in all_times if time < centre][-1:]
        after = [time for time in all_times if time >= centre][:1]
        assert set(before + after) <= set(frame_times.values()), unit
    # the last frame (it sets the decoded duration); and the skipping is real at low rates
    assert max(frame_times.values()) == all_times[-1]
    if sampling_fps == fps:
        assert len(frames) == num_frames
    else:
        assert len(frames) < (0.7 if sampling_fps <= 2.5 else 1) * num_frames
    # through the sampler: each unit's frame is the nearest one, as with every frame decoded
    units, codes = sampled_codes(VideoFrameSampler(path, sampling_fps))
    assert codes == [nearest_frame(all_times, (2 * unit + 1) / (2 * Fraction(sampling_fps))) for unit in units]


@pytest.mark.parametrize(
    ("file_name", "codec"),
    [("video.mkv", "libx264"), ("video.ts", "libx264"), ("video.mkv", "libx265"), ("video.webm", "libvpx-vp9")],
    ids=["h264-matroska", "h264-mpegts", "hevc-matroska", "vp9-webm"],
)
def test_frame_skipping_in_other_containers_and_codecs(tmp_path, file_name, codec):
    fps, num_frames, sampling_fps = 30, 240, 1.0
    path = write_video(tmp_path / file_name, fps, num_frames, codec=codec)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        num_decoded = sum(1 for _ in _frames_around_sampled_times(container, stream, Fraction(sampling_fps)))
    # B-frames (H.264, HEVC) are left out where no unit needs them; VP9 as written here has none to leave out
    assert num_decoded == num_frames if codec == "libvpx-vp9" else num_decoded < 0.7 * num_frames
    all_times = [Fraction(index, fps) for index in range(num_frames)]
    units, codes = sampled_codes(VideoFrameSampler(path, sampling_fps))
    assert units == list(range(8))
    assert codes == [nearest_frame(all_times, (2 * unit + 1) / (2 * Fraction(sampling_fps))) for unit in units]


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


# What a player shows for each display matrix, as the `ffmpeg` command line turns it (fftools: -90 -> transpose=clock,
# 90 -> transpose=cclock, 180 -> hflip + vflip, -90 mirrored -> transpose=cclock_flip, a plain transpose).
DISPLAYED = {
    (-90, False): lambda stored: np.rot90(stored, -1),
    (90, False): lambda stored: np.rot90(stored, 1),
    (180, False): lambda stored: np.rot90(stored, 2),
    (-90, True): lambda stored: stored.transpose(1, 0, 2),
}
requires_display_matrix_writer = pytest.mark.skipif(
    not hasattr(av.video.stream.VideoStream, "set_display_rotation"),
    reason="writing a display matrix needs PyAV's VideoStream.set_display_rotation",
)


def quadrants_frame() -> np.ndarray:
    """A 32x48 frame with four grey levels in its four quadrants: every rotation and mirror of it looks different."""
    frame = np.zeros((32, 48, 3), dtype=np.uint8)
    frame[:16, :24], frame[:16, 24:], frame[16:, :24], frame[16:, 24:] = 255, 160, 0, 80
    return frame


@requires_display_matrix_writer
@pytest.mark.parametrize("rotation, mirrored", list(DISPLAYED), ids=["-90", "90", "180", "-90-mirrored"])
def test_display_rotation_is_applied_to_frames_and_size(tmp_path, rotation, mirrored):
    stored = quadrants_frame()
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = stored.shape[1], stored.shape[0], "yuv420p"
        stream.set_display_rotation(rotation, hflip=mirrored)
        for _ in range(16):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")))
        container.mux(stream.encode())
    # the file really carries the matrix: PyAV's own decoder reports it, and decodes the frames as stored
    with av.open(str(path)) as container:
        first = next(container.decode(video=0))
        # (FFmpeg reads a half turn back as -180)
        assert first.rotation % 360 == rotation % 360 and first.to_ndarray(format="rgb24").shape == stored.shape
    displayed = DISPLAYED[rotation, mirrored](stored)

    info = probe_video(path)
    assert (info.height, info.width, info.display_rotation) == (*displayed.shape[:2], first.rotation)
    for num_prefetched_chunks in (0, 2):
        frames = np.concatenate(
            [chunk for chunk, _ in all_chunks(VideoFrameSampler(path, 2.0), 3, None, num_prefetched_chunks)]
        )
        assert frames.shape == (4, *displayed.shape)
        assert np.abs(frames.astype(int) - displayed).max() <= 8  # H.264 leaves a few levels at the quadrant edges
    # resized while decoding: the frame size is the displayed one, the picture stays upright
    height, width = displayed.shape[0] // 2, displayed.shape[1] // 2
    frames, _ = next(VideoFrameSampler(path, 2.0).iter_chunks(4, frame_size=(height, width)))
    expected = resize_rgb_frames(displayed[None], height, width)[0]
    assert frames.shape[1:3] == (height, width) and np.abs(frames[0].astype(int) - expected).mean() < 2


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
        ({"frames": np.zeros((4, 8, 8, 3), np.uint8), "fps": 4}, 0.0, "`sampling_fps` must be a finite positive"),
        ({"frames": np.zeros((4, 8, 8, 3), np.uint8), "fps": 4}, -1.0, "`sampling_fps` must be a finite positive"),
        ({"frames": np.zeros((4, 8, 8, 3), np.uint8), "fps": 4}, math.inf, "`sampling_fps` must be a finite positive"),
        ({"frames": np.zeros((4, 8, 8, 3), np.uint8), "fps": 4}, math.nan, "`sampling_fps` must be a finite positive"),
        ({"frames": np.zeros((4, 8, 8, 3), np.uint8), "fps": 4}, "2", "`sampling_fps` must be a finite positive"),
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


def decoder_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("zeetad-decoder")]


def all_chunks(sampler: VideoFrameSampler, chunk_size: int, frame_size=None, num_prefetched_chunks: int = 0):
    """Every chunk as `(frames copy, unit indices)`: prefetched chunks live in reused buffers."""
    return [
        (frames.copy(), units) for frames, units in sampler.iter_chunks(chunk_size, frame_size, num_prefetched_chunks)
    ]


@pytest.mark.parametrize("num_prefetched_chunks", [1, 3])
@pytest.mark.parametrize("frame_size", [None, (30, 50)], ids=["source-size", "resized"])
@pytest.mark.parametrize("video_kind", ["29.97fps", "vfr", "raw-frames"])
def test_prefetched_chunks_are_the_serial_chunks(tmp_path, video_kind, frame_size, num_prefetched_chunks):
    if video_kind == "29.97fps":
        video, sampling_fps = write_video(tmp_path / "video.mp4", Fraction(30000, 1001), 130), 2.5
    elif video_kind == "vfr":
        times = [Fraction(ms, 1000) for ms in (0, 40, 80, 300, 340, 1000, 1100, 1900, 2500, 2533)]
        video, sampling_fps = write_video(tmp_path / "vfr.mp4", 30, len(times), times=times), 2.0
    else:
        video, sampling_fps = {"frames": np.stack([coded_frame(index) for index in range(4)]), "fps": 2}, 5.0
    serial_sampler, prefetched_sampler = VideoFrameSampler(video, sampling_fps), VideoFrameSampler(video, sampling_fps)
    serial = all_chunks(serial_sampler, 3, frame_size)
    prefetched = all_chunks(prefetched_sampler, 3, frame_size, num_prefetched_chunks)
    assert len(prefetched) == len(serial) > 1
    for (serial_frames, serial_units), (frames, units) in zip(serial, prefetched):
        assert frames.shape == serial_frames.shape and frames.dtype == np.uint8
        np.testing.assert_array_equal(frames, serial_frames)
        np.testing.assert_array_equal(units, serial_units)
    if frame_size is not None:
        assert prefetched[0][0].shape[1:3] == frame_size
    else:
        # the frames themselves (not only equal to the serial ones): every unit shows the right frame
        codes = [read_code(frame) for frames, _ in prefetched for frame in frames]
        assert codes == sampled_codes(VideoFrameSampler(video, sampling_fps), 3)[1]
    assert prefetched_sampler.duration == serial_sampler.duration
    assert not decoder_threads()


def test_prefetched_chunks_reuse_a_fixed_set_of_buffers(tmp_path):
    path = write_video(tmp_path / "video.mp4", 25, 250)
    chunks = list(VideoFrameSampler(path, 5.0).iter_chunks(4, num_prefetched_chunks=2))
    assert len(chunks) == 13
    # three buffers (one with the caller, two ahead) cycle: chunk k and chunk k + 3 share memory
    assert all(np.shares_memory(chunks[index][0], chunks[index + 3][0]) for index in range(len(chunks) - 3))
    assert not np.shares_memory(chunks[0][0], chunks[1][0]) and not np.shares_memory(chunks[0][0], chunks[2][0])


def iterate_until_the_error(sampler: VideoFrameSampler, num_prefetched_chunks: int) -> tuple[list[int], ValueError]:
    """The unit indices yielded before `iter_chunks` raised, and the `ValueError` it raised."""
    units = []
    with pytest.raises(ValueError) as raised:
        for _, chunk_units in sampler.iter_chunks(2, num_prefetched_chunks=num_prefetched_chunks):
            units += chunk_units.tolist()
    return units, raised.value


def test_decoding_errors_reach_the_caller_unchanged_and_stop_the_thread(tmp_path):
    threads_before = threading.enumerate()
    # decoding fails on the first frames: a file cut in half with its index up front
    path = make_bad_videos(tmp_path)["truncated_faststart"]
    _, serial_error = iterate_until_the_error(VideoFrameSampler(path, 10.0), 0)
    _, error = iterate_until_the_error(VideoFrameSampler(path, 10.0), 2)
    assert type(error) is type(serial_error) and str(error) == str(serial_error)
    assert re.search(BAD_VIDEO_ERRORS["truncated_faststart"][1], str(error)) and path.name in str(error)
    assert type(error.__cause__) is type(serial_error.__cause__) is av.error.InvalidDataError
    assert threading.enumerate() == threads_before

    # the file ends at 4.76 of its declared 6 s: the decodable chunks come first, then the error, as when serial
    data = write_video(tmp_path / "video.mp4", 25, 150, faststart=True).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.9)])
    serial_units, serial_error = iterate_until_the_error(VideoFrameSampler(cut, 2.0), 0)
    units, error = iterate_until_the_error(VideoFrameSampler(cut, 2.0), 2)
    assert units == serial_units == list(range(8))
    assert type(error) is type(serial_error) and str(error) == str(serial_error) and "is truncated" in str(error)
    assert threading.enumerate() == threads_before


def test_stopping_early_stops_the_decoder_thread(tmp_path):
    path = write_video(tmp_path / "video.mp4", 25, 250)
    threads_before = threading.enumerate()

    # the consumer breaks out of the loop: the dropped iterator joins the thread
    for frames, _ in VideoFrameSampler(path, 5.0).iter_chunks(2, num_prefetched_chunks=2):
        break
    assert threading.enumerate() == threads_before

    # the consumer raises inside the loop (e.g. a progress callback): closing() joins the thread before the caller
    # sees the error, with the error unchanged
    with pytest.raises(RuntimeError, match="progress bar closed"):
        chunks = VideoFrameSampler(path, 5.0).iter_chunks(2, num_prefetched_chunks=2)
        with closing(chunks):
            for frames, _ in chunks:
                assert len(decoder_threads()) == 1
                raise RuntimeError("progress bar closed")
    assert threading.enumerate() == threads_before

    # close() in the middle, while the decoder waits for a free buffer or decodes
    chunks = VideoFrameSampler(path, 25.0).iter_chunks(1, num_prefetched_chunks=1)
    next(chunks)
    next(chunks)
    chunks.close()
    assert threading.enumerate() == threads_before
    # an iterator that was never started has no thread
    VideoFrameSampler(path, 5.0).iter_chunks(2, num_prefetched_chunks=2).close()
    assert threading.enumerate() == threads_before


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"frame_size": (32,)}, "`frame_size`"),
        ({"frame_size": (32, 0)}, "`frame_size`"),
        ({"num_prefetched_chunks": -1}, "`num_prefetched_chunks`"),
        ({"num_prefetched_chunks": 1.5}, "`num_prefetched_chunks`"),
    ],
)
def test_bad_iteration_options_raise(kwargs, message):
    sampler = VideoFrameSampler({"frames": np.zeros((4, 8, 8, 3), np.uint8), "fps": 4}, 1.0)
    with pytest.raises(ValueError, match=message):
        sampler.iter_chunks(2, **kwargs)


def test_resize_rgb_frames_matches_pyav_reformat():
    frames = np.stack([coded_frame(index) for index in range(3)])
    resized = resize_rgb_frames(frames, 24, 40)
    assert resized.shape == (3, 24, 40, 3) and resized.dtype == np.uint8
    expected = av.VideoFrame.from_ndarray(frames[1], format="rgb24").reformat(40, 24, interpolation="BICUBIC")
    np.testing.assert_array_equal(resized[1], expected.to_ndarray())
    # the bars still read the same after halving the size
    assert [read_code(np.repeat(np.repeat(frame, 2, 0), 2, 1)) for frame in resized] == [0, 1, 2]
