"""Streaming PyAV decoding: one frame per temporal unit at a chosen sampling rate, never the whole video in memory.

Time model (used everywhere in ZEETAD's raw-video path): at sampling rate `r` units per second, unit `i` covers
`[i / r, (i + 1) / r)` seconds of the source and is represented by the decoded frame whose presentation time is
nearest to the unit centre `(i + 0.5) / r` (ties go to the earlier frame). A video lasting `d` seconds has
`ceil(d * r)` units. Times come from the stream's own time base and presentation time stamps (pts), never from
frame counts times a nominal frame rate, so they are right for any source frame rate and for variable frame rate
files; time 0 is the stream's start time. Non-reference frames that no unit can be given are not decoded at all
(FFmpeg's `skip_frame`): sampling 30 fps H.264 at 1 unit per second decodes about half of its frames, with the same
result as decoding all of them.

Frames are shown upright: a stream's display matrix (the rotation phones record instead of rotating the pixels,
e.g. -90 degrees for a portrait video, and mirror flags) is applied to every decoded frame, as players and the
`ffmpeg` command line apply it, and [`probe_video`] reports the displayed width and height.

Frames can be resized while they are decoded (`frame_size` of [`~VideoFrameSampler.iter_chunks`]) with FFmpeg's own
scaler, [`resize_rgb_frames`], the one resize of the package: the feature extractor uses it as well, so a video gives
the same pixels whether it is resized by the decoder or afterwards.
"""

import math
import numbers
import os
import queue
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, BinaryIO

import numpy as np


# A video given as a path, an open binary file, or raw frames `{"frames": (T, H, W, 3) uint8, "fps": float}`.
VideoInput = str | os.PathLike | BinaryIO | dict

# A file that decodes to less than its declared duration by more than this (and more than one sampling step) is
# reported as truncated. Declared and decoded ends of healthy files differ by at most a frame or two.
TRUNCATION_TOLERANCE_SECONDS = 0.5

# Right-angle rotations and mirrors give display matrices with exact zeros; entries further from zero than this
# (relative to the largest one) mean another angle.
_DISPLAY_MATRIX_TOLERANCE = 1e-3

# Packets before and after the one being decided that its skip decision reads (see [`_frames_around_sampled_times`]).
# Neighbours outside the window only make a decision more cautious; the window exceeds H.264's deepest frame
# reordering (16 frames) so that a packet without a time stamp, whose frame is timed from the frame shown before it,
# is always seen before that frame could be left out.
_SKIP_DECISION_WINDOW = 20

# swscale's bicubic filter, widened when shrinking, so antialiased like the PIL bicubic of CLIP's reference
# preprocessing. On decoded video it stays within 3 (320x240 source) to 6 (1280x720) uint8 levels of antialiased
# bicubic in torch/PIL, 0.3-0.6 levels on average (tests/test_feature_extraction_zeetad.py).
RESIZE_INTERPOLATION = "BICUBIC"


@dataclass(frozen=True)
class VideoInfo:
    r"""
    What [`probe_video`] learns about a video without decoding it.

    Args:
        name (`str`):
            How errors and warnings refer to the input (its path, the file object's name, or `"raw frames"`).
        duration (`float`, *optional*):
            Declared duration in seconds, `None` when the container does not say.
        fps (`float`, *optional*):
            Average frame rate in frames per second, `None` when unknown.
        num_frames (`int`, *optional*):
            Declared number of frames, `None` when unknown.
        width (`int`):
            Width in pixels of the frames as displayed (after the display rotation, so the decoded frames' height
            when it is 90 or -90 degrees).
        height (`int`):
            Height in pixels of the frames as displayed.
        display_rotation (`int`, *optional*, defaults to 0):
            Counter-clockwise rotation in degrees, in `[-180, 180]`, by which the stream's display matrix turns the
            decoded frames upright (FFmpeg's `av_display_rotation_get`, the `rotation` of PyAV's frames; -90 for a
            typical portrait phone video). Decoded frames are returned already turned (and mirrored, if the matrix
            also flips them).
    """

    name: str
    duration: float | None
    fps: float | None
    num_frames: int | None
    width: int
    height: int
    display_rotation: int = 0


def describe_video_input(video: VideoInput) -> str:
    """A short name of a video input for error messages: the path, the file object's name, or `"raw frames"`."""
    if isinstance(video, (str, os.PathLike)):
        return os.fspath(video)
    if isinstance(video, dict):
        return "raw frames"
    return str(getattr(video, "name", f"<{type(video).__name__} file object>"))


def validate_sampling_fps(sampling_fps: float) -> float:
    r"""
    Check a sampling rate of temporal units per second and return it as a `float`.

    Args:
        sampling_fps (`float`):
            Units per second; a finite number `> 0` (not a `bool`).

    Returns:
        `float`: `sampling_fps`.

    Raises:
        `ValueError`: naming `sampling_fps`, for anything else (`0`, negative numbers, NaN, infinity, strings).
    """
    # `not x > 0` instead of `x <= 0` so that NaN is rejected too; an infinite rate has no time step
    if (
        isinstance(sampling_fps, bool)
        or not isinstance(sampling_fps, numbers.Real)
        or not sampling_fps > 0
        or not math.isfinite(sampling_fps)
    ):
        raise ValueError(f"`sampling_fps` must be a finite positive number, got {sampling_fps!r}.")
    return float(sampling_fps)


def _raw_frames(video: dict) -> tuple[np.ndarray, float]:
    """Validate a raw-frames dict and return its `(T, H, W, 3)` uint8 array and frame rate."""
    if "frames" not in video or "fps" not in video:
        raise ValueError(
            f"A raw video must be a dict with 'frames' ((T, H, W, 3) uint8) and 'fps', got keys {sorted(video)}."
        )
    frames, fps = video["frames"], video["fps"]
    # torch tensors are accepted as well
    frames = np.asarray(frames.detach().cpu() if hasattr(frames, "detach") else frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"raw frames must be a (T, H, W, 3) uint8 array, got shape {frames.shape} and dtype {frames.dtype}."
        )
    if frames.shape[0] == 0:
        raise ValueError("raw frames: the video has zero frames.")
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not fps > 0:
        raise ValueError(f"raw frames: `fps` must be a positive number, got {fps!r}.")
    return frames, fps


def _file_position(video: VideoInput, name: str) -> int | None:
    """Current position of a file-object input (restored before every read), `None` for paths and raw frames."""
    if isinstance(video, (str, os.PathLike, dict)) or not hasattr(video, "read"):
        return None
    if hasattr(video, "seekable") and not video.seekable():
        raise ValueError(f"{name!r}: the file object must be seekable (it is read twice: probe, then decode).")
    return video.tell()


def _open_container(video: VideoInput, name: str):
    """Open a path or binary file object with PyAV, turning PyAV's errors into messages that name the input."""
    import av

    if isinstance(video, (str, os.PathLike)):
        path = os.fspath(video)
        if not os.path.exists(path):
            raise FileNotFoundError(f"Video file not found: {path!r}.")
        if os.path.isdir(path):
            raise ValueError(f"{path!r} is a directory, not a video file.")
        source = path
    elif hasattr(video, "read"):
        source = video
    else:
        raise ValueError(
            "A video must be a path, an open binary file, or a dict {'frames': (T, H, W, 3) uint8, 'fps': float}, "
            f"got {type(video).__name__}."
        )
    try:
        container = av.open(source, mode="r")
    except av.error.FileNotFoundError as error:
        raise FileNotFoundError(f"Video file not found: {name!r}.") from error
    except av.error.FFmpegError as error:
        raise ValueError(
            f"{name!r} could not be opened as a video (not a video, corrupt or truncated): {error}"
        ) from error
    if not container.streams.video:
        container.close()
        raise ValueError(
            f"{name!r} has no video stream (an audio-only file, or a video without any frame); nothing to decode."
        )
    return container


@dataclass(frozen=True)
class _DisplayOrientation:
    """How to turn a decoded frame upright: swap its axes, then flip its rows and/or its columns."""

    rotation: int
    transpose: bool
    flip_rows: bool
    flip_columns: bool

    def apply(self, array: np.ndarray) -> np.ndarray:
        """The `(H, W, 3)` frame as displayed (a view: no pixel is copied)."""
        if self.transpose:
            array = array.transpose(1, 0, 2)
        if self.flip_rows:
            array = array[::-1]
        if self.flip_columns:
            array = array[:, ::-1]
        return array


def _display_orientation(frame, name: str) -> _DisplayOrientation | None:
    r"""
    The display matrix of a decoded PyAV frame as a [`_DisplayOrientation`], `None` without one (or for the identity).

    FFmpeg's matrix `[[a, b, u], [c, d, v], [x, y, w]]` (16.16 fixed point) maps the pixel `(p, q)` (column, row) of
    the decoded frame to `(a p + c q + x, b p + d q + y)` on the display. A right-angle rotation with mirrors has
    either `b = c = 0` (columns flip when `a < 0`, rows when `d < 0`) or `a = d = 0` (axes swap; then columns flip
    when `c < 0`, rows when `b < 0`), which are the filters that the `ffmpeg` command line inserts. Any other angle
    raises `ValueError`.
    """
    side_data = frame.side_data.get("DISPLAYMATRIX")
    if side_data is None:
        return None
    matrix = np.frombuffer(bytes(side_data), dtype="<i4", count=9).astype(np.float64)
    a, b, c, d = matrix[0], matrix[1], matrix[3], matrix[4]
    # av_display_rotation_get: the counter-clockwise angle, as PyAV's `VideoFrame.rotation` reports it
    rotation = -round(math.degrees(math.atan2(b, a))) if (a or b) else 0
    tolerance = _DISPLAY_MATRIX_TOLERANCE * max(abs(a), abs(b), abs(c), abs(d), 1.0)
    if abs(b) <= tolerance and abs(c) <= tolerance and abs(a) > tolerance and abs(d) > tolerance:
        orientation = _DisplayOrientation(rotation, transpose=False, flip_rows=d < 0, flip_columns=a < 0)
    elif abs(a) <= tolerance and abs(d) <= tolerance and abs(b) > tolerance and abs(c) > tolerance:
        orientation = _DisplayOrientation(rotation, transpose=True, flip_rows=b < 0, flip_columns=c < 0)
    else:
        raise ValueError(
            f"{name!r}: its display matrix rotates the frames by {rotation} degrees; only multiples of 90 degrees "
            "are supported. Re-encode it upright (e.g. `ffmpeg -i in.mp4 out.mp4`, which applies the rotation)."
        )
    if not (orientation.transpose or orientation.flip_rows or orientation.flip_columns):
        return None
    return orientation


def _first_frame_orientation(container, stream, name: str) -> _DisplayOrientation | None:
    """The display orientation of a stream, read from its first decoded frame (the matrix is stream-wide)."""
    import av

    try:
        frame = next(iter(container.decode(stream)), None)
    except av.error.FFmpegError:
        # decoding reports this, with the time it failed at; a frame that does not decode is never shown
        return None
    return None if frame is None else _display_orientation(frame, name)


def _declared_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        # container durations are in microseconds (AV_TIME_BASE)
        return container.duration / 1_000_000
    return None


def probe_video(video: VideoInput) -> VideoInfo:
    r"""
    Read a video's declared duration, frame rate, frame count and displayed size, decoding only its first frame.

    The first frame carries the stream's display matrix: a video recorded with a display rotation of 90 or -90
    degrees (portrait phone videos) reports the width and height of its upright frames.

    Args:
        video (`str`, `os.PathLike`, binary file object or `dict`):
            A path, an open seekable binary file (its position is restored), or raw frames
            `{"frames": (T, H, W, 3) uint8 array, "fps": float}`.

    Returns:
        [`VideoInfo`]

    Raises:
        `FileNotFoundError`: the path does not exist.
        `ValueError`: the input is not a video, is corrupt or truncated beyond opening, has no video stream
            (audio-only, zero frames), has a display rotation that is not a multiple of 90 degrees, or raw frames
            are malformed or have `fps <= 0`.
    """
    name = describe_video_input(video)
    if isinstance(video, dict):
        frames, fps = _raw_frames(video)
        return VideoInfo(
            name=name,
            duration=frames.shape[0] / float(fps),
            fps=float(fps),
            num_frames=frames.shape[0],
            width=frames.shape[2],
            height=frames.shape[1],
        )
    position = _file_position(video, name)
    container = _open_container(video, name)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        width, height = stream.codec_context.width, stream.codec_context.height
        # the declared values, read before the first frame is decoded for its display matrix
        duration, num_frames = _declared_duration(container, stream), stream.frames or None
        orientation = _first_frame_orientation(container, stream, name)
        if orientation is not None and orientation.transpose:
            width, height = height, width
        return VideoInfo(
            name=name,
            duration=duration,
            fps=float(rate) if rate else None,
            num_frames=num_frames,
            width=width,
            height=height,
            display_rotation=0 if orientation is None else orientation.rotation,
        )
    finally:
        container.close()
        if position is not None:
            video.seek(position)


def _resize_rgb_frame(frame: np.ndarray, height: int, width: int, reformatter) -> np.ndarray:
    """One `(H, W, 3)` uint8 RGB frame resized by swscale to `(height, width, 3)` (a view into PyAV's frame buffer)."""
    import av

    source = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
    resized = reformatter.reformat(source, width=width, height=height, interpolation=RESIZE_INTERPOLATION)
    return resized.to_ndarray()


def resize_rgb_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    r"""
    Resize RGB frames with FFmpeg's scaler (swscale, bicubic, antialiased when shrinking).

    This is the resize of every decoded frame that [`VideoFrameSampler`] resizes and of
    [`~ZeetadFeatureExtractor.preprocess_frames`], so both give identical pixels.

    Args:
        frames (`np.ndarray` of shape `(num_frames, H, W, 3)`, uint8):
            RGB frames.
        height (`int`):
            Output height in pixels.
        width (`int`):
            Output width in pixels.

    Returns:
        `np.ndarray` of shape `(num_frames, height, width, 3)`, uint8.
    """
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()
    resized = np.empty((len(frames), height, width, 3), dtype=np.uint8)
    for index, frame in enumerate(frames):
        resized[index] = _resize_rgb_frame(frame, height, width, reformatter)
    return resized


class _TimedFrame:
    """A decoded frame, its presentation interval in seconds, and its RGB array converted at most once."""

    __slots__ = ("_array", "_source", "duration", "orientation", "time")

    def __init__(
        self, source: Any, time: Fraction, duration: Fraction, orientation: _DisplayOrientation | None = None
    ):
        self._source = source
        self._array = None
        self.time = time
        self.duration = duration
        self.orientation = orientation

    def to_rgb(self, frame_size: tuple[int, int] | None, reformatter) -> np.ndarray:
        """The frame as displayed, `(height, width, 3)` uint8 RGB, resized to `frame_size` when given and different."""
        if self._array is None:
            source = self._source
            array = source if isinstance(source, np.ndarray) else source.to_ndarray(format="rgb24")
            # upright before any resize, so that `frame_size` is the displayed (height, width)
            if self.orientation is not None:
                array = self.orientation.apply(array)
            if frame_size is not None and array.shape[:2] != frame_size:
                array = _resize_rgb_frame(array, *frame_size, reformatter)
            self._array = array
            self._source = None
        return self._array


class _DecodingStopped(Exception):
    """Raised inside the decoder thread when the consumer has stopped iterating."""


# what the decoder thread puts in the queue after the last chunk
_END_OF_VIDEO = object()


def _unit_centre_between(earlier: int, later: int, half_unit: Fraction) -> bool:
    """Whether a unit centre `(2u + 1) * half_unit` (`u >= 0`) lies in `(earlier, later]`, all in pts from the origin
    (exact integer arithmetic: this runs once per packet)."""
    numerator, denominator = half_unit.numerator, half_unit.denominator
    # the smallest odd multiple of half a unit after `earlier`
    odd = max(1, earlier * denominator // numerator + 1)
    odd += 1 - odd % 2
    return odd * numerator <= later * denominator


def _frames_around_sampled_times(container, stream, rate: Fraction) -> Iterator:
    """Decode `stream`, in presentation order, leaving out non-reference frames that no unit can be given.

    Unit `u` gets the nearer of the last frame before its centre and the first frame at or after it, so a frame at
    time `t` can only be picked when a unit centre lies in `(t_previous, t_next]`, between its neighbours in time. A
    packet whose neighbours (read from the packets up to `_SKIP_DECISION_WINDOW` before and after it in decode order)
    enclose no centre is decoded with FFmpeg's `skip_frame="NONREF"`: dropped if nothing refers to it, decoded as usual
    otherwise. Unknown neighbours only widen the interval, so this never drops a frame the sampling could pick; the
    decoded frames and their pixels are those of a full decode (a reference frame is never dropped, and a dropped
    frame is referred to by none). At 1 unit per second from 30 fps H.264 with B-frames about half of the frames are
    not decoded. Without a stream start time, or around packets without a time stamp, every packet is decoded.
    """
    codec = stream.codec_context
    origin = stream.start_time
    # half a unit in pts: unit u is centred (2u + 1) half units after the origin
    half_unit = 1 / (2 * rate * stream.time_base)
    # packets read but not decoded yet with their pts, and the pts of the last decided ones (None: no usable time)
    ahead: deque = deque()
    behind: deque = deque(maxlen=_SKIP_DECISION_WINDOW)
    packets = iter(container.demux(stream))
    exhausted = False
    while True:
        while not exhausted and len(ahead) <= _SKIP_DECISION_WINDOW:
            packet = next(packets, None)
            if packet is None:
                exhausted = True
            else:
                usable = origin is not None and packet.pts is not None and packet.size > 0
                ahead.append((packet, packet.pts if usable else None))
        if not ahead:
            break
        packet, pts = ahead.popleft()
        skip = False
        if pts is not None:
            neighbours = [*behind, *(other for _, other in ahead)]
            if None not in neighbours and pts not in neighbours:
                earlier = max((other for other in neighbours if other < pts), default=None)
                later = min((other for other in neighbours if other > pts), default=None)
                skip = (
                    earlier is not None
                    and later is not None
                    and not _unit_centre_between(earlier - origin, later - origin, half_unit)
                )
        behind.append(pts)
        codec.skip_frame = "NONREF" if skip else "DEFAULT"
        yield from codec.decode(packet)


class VideoFrameSampler:
    r"""
    Stream the frames that represent the temporal units of one video at `sampling_fps` units per second.

    Construction probes the input, so missing files, non-videos, audio-only files and malformed raw frames fail
    here, before any decoding. Iterating with [`~VideoFrameSampler.iter_chunks`] decodes the video once, front to
    back, converts only the selected frames to RGB (optionally resizing them in FFmpeg's scaler) and yields them in
    chunks, either decoding in the calling thread (at most one chunk of frames alive at a time) or in a background
    thread a few chunks ahead, into reused buffers. After a complete iteration [`~VideoFrameSampler.duration`] and
    [`~VideoFrameSampler.num_units`] hold the decoded values.

    See the module docstring for the time model (unit `i` covers `[i / r, (i + 1) / r)`, represented by the frame
    nearest to its centre).

    Errors:
        - a video shorter than one sampling step (`duration < 1 / sampling_fps`, e.g. a 0.1 s clip at 1 unit per
          second) raises `ValueError`: it would give a single unit mostly made of time the video does not have.
          Sample at a higher rate or pass a longer video.
        - a file that fails to decode part-way, or that ends more than `max(1 / sampling_fps, 0.5)` seconds before
          its declared duration, is treated as truncated/corrupt and raises `ValueError` (no partial result: a
          half-decoded video would silently drop actions). Re-muxing it, e.g. `ffmpeg -i in.mp4 -c copy out.mp4`,
          keeps the decodable part.
        - a stream that decodes to zero frames raises `ValueError`.
        - a display matrix that rotates by an angle other than a multiple of 90 degrees raises `ValueError`
          (right-angle rotations and mirrors are applied: frames come out as displayed, see [`VideoInfo`]).

    Args:
        video (`str`, `os.PathLike`, binary file object or `dict`):
            A path, an open seekable binary file, or raw frames `{"frames": (T, H, W, 3) uint8, "fps": float}`
            (frame `k` is shown at `k / fps` seconds).
        sampling_fps (`float`, *optional*, defaults to 1.0):
            Temporal units per second of video, a finite number `> 0`.
    """

    def __init__(self, video: VideoInput, sampling_fps: float = 1.0):
        self.video = video
        self.sampling_fps = validate_sampling_fps(sampling_fps)
        # file objects are re-read from the position they had when handed over
        self._start_position = _file_position(video, describe_video_input(video))
        self.info = probe_video(video)
        self._decoded_duration = None
        if self.info.duration is not None:
            self._check_long_enough(self.info.duration)

    @property
    def name(self) -> str:
        """`str`: how errors refer to the input."""
        return self.info.name

    @property
    def duration(self) -> float | None:
        """`float`: duration in seconds from the decoded pts once iterated, else the declared one (may be `None`)."""
        return self._decoded_duration if self._decoded_duration is not None else self.info.duration

    @property
    def num_units(self) -> int | None:
        """`int`: number of temporal units, `ceil(duration * sampling_fps)` (an estimate until iterated)."""
        return None if self.duration is None else units_for_duration(self.duration, self.sampling_fps)

    def _check_long_enough(self, duration: float) -> None:
        step = 1.0 / self.sampling_fps
        # a tiny tolerance: a 1 s clip at 1 unit/s must pass despite float rounding of pts * time_base
        if duration < step - 1e-6:
            raise ValueError(
                f"{self.name!r} is {duration:.3f} s long, shorter than one sampling step ({step:.3f} s at "
                f"sampling_fps={self.sampling_fps:g}); sample at sampling_fps >= {1.0 / max(duration, 1e-9):.3g} "
                "or pass a longer video."
            )

    def _timed_frames(self) -> Iterator[_TimedFrame]:
        """Every frame of the video with its time relative to the stream start, in presentation order."""
        if isinstance(self.video, dict):
            frames, fps = _raw_frames(self.video)
            frame_duration = 1 / Fraction(fps)
            for index in range(frames.shape[0]):
                yield _TimedFrame(frames[index], index * frame_duration, frame_duration)
            return

        import av

        if self._start_position is not None:
            self.video.seek(self._start_position)
        container = _open_container(self.video, self.name)
        try:
            stream = container.streams.video[0]
            # Frame + slice threading: 720p H.264 (one slice per frame) decodes 1.25x faster in wall time for 1.13x
            # the CPU time of one thread (1.3x faster on a textured 224x224 clip). In the background decoder of
            # `iter_chunks` that extra CPU competes with a CPU vision tower that already uses every core (overlapped
            # runs with and without decoder threads were within measurement noise on 2 cores), while it speeds up
            # decoding wherever decoding is the bottleneck: with idle cores or a vision tower on an accelerator.
            stream.thread_type = "AUTO"
            time_base = stream.time_base
            rate = stream.average_rate or stream.guessed_rate
            nominal_duration = 1 / Fraction(rate) if rate else None
            origin = stream.start_time
            previous_time = None
            orientation = None
            try:
                for frame in _frames_around_sampled_times(container, stream, Fraction(self.sampling_fps)):
                    if previous_time is None:
                        # the display matrix is stream-wide: read it once, from the first frame
                        orientation = _display_orientation(frame, self.name)
                    if frame.pts is None:
                        if previous_time is None or nominal_duration is None:
                            raise ValueError(f"{self.name!r}: frames carry no presentation time stamps.")
                        time = previous_time + nominal_duration
                    else:
                        if origin is None:
                            origin = frame.pts
                        time = (frame.pts - origin) * time_base
                    duration = frame.duration * time_base if frame.duration else nominal_duration
                    if duration is None:
                        duration = time - previous_time if previous_time is not None else Fraction(0)
                    previous_time = time
                    yield _TimedFrame(frame, time, duration, orientation)
            except av.error.FFmpegError as error:
                decoded = f"{float(previous_time):.3f} s" if previous_time is not None else "the first frame"
                raise ValueError(
                    f"{self.name!r} is corrupt or truncated: decoding failed after {decoded} ({error}). Re-mux it "
                    "(e.g. `ffmpeg -i in.mp4 -c copy out.mp4`) to keep the decodable part."
                ) from error
        finally:
            container.close()

    def iter_chunks(
        self, chunk_size: int = 32, frame_size: tuple[int, int] | None = None, num_prefetched_chunks: int = 0
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        r"""
        Decode the video once and yield the frames of consecutive units.

        With `num_prefetched_chunks > 0` decoding, RGB conversion and resizing run in a background thread that stays
        up to that many chunks ahead of the caller (so they overlap with whatever the caller does with a chunk, such
        as running a vision tower), and the chunks are written into `num_prefetched_chunks + 1` buffers allocated
        once and reused: a yielded array is valid until the next chunk is requested (copy what must outlive that).
        Frames, their order and every error are exactly those of the serial iteration; an error raised while
        decoding reaches the caller as the same exception. Stopping early (`break`, an exception in the loop, or
        `close()` on the iterator) stops and joins the thread; wrap the iterator in `contextlib.closing` when the
        loop can raise, so that this happens at once rather than when the iterator is garbage-collected.

        Args:
            chunk_size (`int`, *optional*, defaults to 32):
                Maximum number of frames per chunk (the last one may be shorter).
            frame_size (`tuple[int, int]`, *optional*):
                `(height, width)` to which every frame is resized by FFmpeg's scaler while decoding (see
                [`resize_rgb_frames`]), e.g. `feature_extractor.resized_size(info.height, info.width)`; by default
                frames keep the source size.
            num_prefetched_chunks (`int`, *optional*, defaults to 0):
                How many chunks the background decoder may prepare ahead; 0 decodes in the calling thread and yields
                a fresh array per chunk.

        Yields:
            `tuple[np.ndarray, np.ndarray]`: `frames` of shape `(n, height, width, 3)` (uint8 RGB) and their unit
            indices of shape `(n,)` (int64, consecutive, starting at 0 for the first chunk).
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"`chunk_size` must be a positive integer, got {chunk_size!r}.")
        if frame_size is not None:
            if len(frame_size) != 2 or not all(isinstance(side, int) and side >= 1 for side in frame_size):
                raise ValueError(f"`frame_size` must be (height, width) in positive pixels, got {frame_size!r}.")
            frame_size = tuple(frame_size)
        if (
            isinstance(num_prefetched_chunks, bool)
            or not isinstance(num_prefetched_chunks, int)
            or num_prefetched_chunks < 0
        ):
            raise ValueError(f"`num_prefetched_chunks` must be a non-negative integer, got {num_prefetched_chunks!r}.")
        if num_prefetched_chunks == 0:
            return self._iter_serial_chunks(chunk_size, frame_size)
        return self._iter_prefetched_chunks(chunk_size, frame_size, num_prefetched_chunks)

    def _iter_unit_frames(
        self, frame_size: tuple[int, int] | None, stop: threading.Event | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """`(unit index, (height, width, 3) uint8 RGB frame)` for every unit in order; checks the decoded end."""
        from av.video.reformatter import VideoReformatter

        # one scaler for the whole video: swscale re-initialises only when the frame geometry changes
        reformatter = VideoReformatter()
        rate = Fraction(self.sampling_fps)
        next_unit = 0
        previous = None
        last = None
        with closing(self._timed_frames()) as timed_frames:
            for current in timed_frames:
                if stop is not None and stop.is_set():
                    raise _DecodingStopped
                # units whose centre lies at or before this frame are settled: the nearest frame is this or the
                # previous one
                while (2 * next_unit + 1) / (2 * rate) <= current.time:
                    centre = (2 * next_unit + 1) / (2 * rate)
                    nearest = (
                        previous
                        if previous is not None and centre - previous.time <= current.time - centre
                        else current
                    )
                    yield next_unit, nearest.to_rgb(frame_size, reformatter)
                    next_unit += 1
                previous = last = current
        if last is None:
            raise ValueError(f"{self.name!r} contains no decodable video frame (zero-frame video).")

        decoded_duration = float(last.time + last.duration)
        self._check_long_enough(decoded_duration)
        declared = self.info.duration
        tolerance = max(1.0 / self.sampling_fps, TRUNCATION_TOLERANCE_SECONDS)
        if declared is not None and declared - decoded_duration > tolerance:
            raise ValueError(
                f"{self.name!r} is truncated: it declares {declared:.3f} s but only {decoded_duration:.3f} s decode. "
                "Re-mux it (e.g. `ffmpeg -i in.mp4 -c copy out.mp4`) to keep the decodable part."
            )
        self._decoded_duration = decoded_duration
        # units after the last frame's time stamp (but starting before the video ends) show the last frame
        for unit in range(next_unit, units_for_duration(decoded_duration, self.sampling_fps)):
            yield unit, last.to_rgb(frame_size, reformatter)

    def _iter_serial_chunks(
        self, chunk_size: int, frame_size: tuple[int, int] | None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        frames, indices = [], []
        with closing(self._iter_unit_frames(frame_size)) as unit_frames:
            for unit, frame in unit_frames:
                frames.append(frame)
                indices.append(unit)
                if len(frames) == chunk_size:
                    yield np.stack(frames), np.asarray(indices, dtype=np.int64)
                    frames, indices = [], []
        if frames:
            yield np.stack(frames), np.asarray(indices, dtype=np.int64)

    def _iter_prefetched_chunks(
        self, chunk_size: int, frame_size: tuple[int, int] | None, num_prefetched_chunks: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        # a frame whose size differs from the probed one (a mid-stream resolution change) is resized to it
        frame_size = frame_size or (self.info.height, self.info.width)
        # num_buffers, chunk_size, height, width, 3: one buffer with the caller, the others filled ahead
        buffers = np.empty((num_prefetched_chunks + 1, chunk_size, *frame_size, 3), dtype=np.uint8)
        free_buffers, ready_chunks, stop = queue.SimpleQueue(), queue.SimpleQueue(), threading.Event()
        for buffer_index in range(len(buffers)):
            free_buffers.put(buffer_index)
        decoder = threading.Thread(
            target=self._decode_into_buffers,
            args=(buffers, frame_size, free_buffers, ready_chunks, stop),
            name=f"zeetad-decoder-{self.name}",
            daemon=True,
        )
        decoder.start()
        try:
            while True:
                item = ready_chunks.get()
                if item is _END_OF_VIDEO:
                    return
                if isinstance(item, BaseException):
                    raise item
                buffer_index, num_frames, first_unit = item
                yield (
                    buffers[buffer_index, :num_frames],
                    np.arange(first_unit, first_unit + num_frames, dtype=np.int64),
                )
                free_buffers.put(buffer_index)
        finally:
            stop.set()
            # wakes the decoder if it waits for a free buffer
            free_buffers.put(None)
            decoder.join()

    def _decode_into_buffers(
        self,
        buffers: np.ndarray,
        frame_size: tuple[int, int],
        free_buffers: queue.SimpleQueue,
        ready_chunks: queue.SimpleQueue,
        stop: threading.Event,
    ) -> None:
        """Decoder thread: fill free buffers with consecutive units; then the end marker, or the error raised."""
        chunk_size = buffers.shape[1]
        try:
            buffer_index, num_frames, first_unit = None, 0, 0
            with closing(self._iter_unit_frames(frame_size, stop)) as unit_frames:
                for unit, frame in unit_frames:
                    if buffer_index is None:
                        buffer_index = free_buffers.get()
                        if stop.is_set():
                            return
                        num_frames, first_unit = 0, unit
                    buffers[buffer_index, num_frames] = frame
                    num_frames += 1
                    if num_frames == chunk_size:
                        ready_chunks.put((buffer_index, num_frames, first_unit))
                        buffer_index = None
            if buffer_index is not None:
                ready_chunks.put((buffer_index, num_frames, first_unit))
            ready_chunks.put(_END_OF_VIDEO)
        except _DecodingStopped:
            return
        except BaseException as error:
            ready_chunks.put(error)


def units_for_duration(duration: float, sampling_fps: float) -> int:
    """Number of temporal units of a `duration`-second video at `sampling_fps`: `max(1, ceil(duration * fps))`."""
    # the small slack keeps e.g. 10.000000001 s at 1 unit/s (float rounding of pts * time_base) at 10 units
    return max(1, math.ceil(duration * sampling_fps - 1e-6))


__all__ = [
    "VideoFrameSampler",
    "VideoInfo",
    "describe_video_input",
    "probe_video",
    "resize_rgb_frames",
    "units_for_duration",
    "validate_sampling_fps",
]
