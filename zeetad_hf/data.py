"""Untrimmed-video datasets: annotation files + one feature file per video -> a `datasets.DatasetDict`.

Two annotation formats are read:

- the ActivityNet `database` format (e.g. ActionFormer's `thumos14.json`): [`load_activitynet_style`];
- the BMN format, `anet_anno_action.json` + `anet_video_info.csv` (subset taken from the CSV): [`load_bmn_style`].

Both give a [`~datasets.DatasetDict`] keyed by subset, spelled as in the files (THUMOS14 `"Validation"` / `"Test"`,
ActivityNet `"training"` / `"validation"` / `"testing"`), with one row per video and the features [`VIDEO_FEATURES`]:

| column | type | meaning |
|---|---|---|
| `video_id` | `string` | video id, also the feature file name without extension |
| `subset` | `string` | subset of the video (= the split name) |
| `duration` | `float64` | video duration in seconds |
| `fps` | `float64` | frame rate the features were extracted at |
| `feature_stride` | `float64` | frames between two consecutive feature units |
| `window_size` | `float64` | frames covered by one feature unit |
| `feature_path` | `string` | localization feature file, `(num_units, dim)` |
| `clip_feature_path` | `string` or `None` | second (CLIP) feature file; `None` when `feature_path` serves both |
| `num_units` | `int64` | number of units (rows) of the localization feature file |
| `annotations` | `List({"label": string, "start": float64, "end": float64})` | ground truth in seconds |

Features are referenced by path and read with [`load_features`] in the training collate. Loading checks every feature
file first ([`check_feature_files`]): its header (a non-empty 2-D real-valued array; the files of one folder all of
one width) and, unless `check_feature_values=False`, its values (finite), in a streaming pass over memory-mapped
chunks, several files at a time, so that a bad file stops the loader rather than a training run in the middle of an
epoch. Seconds become feature units
only through [`~zeetad_hf.segment_utils.seconds_to_normalized_segments`] with the per-video `num_units`, `fps`,
`feature_stride` and `window_size` of the row (a unit `idx` is centred at `(idx * feature_stride + 0.5 * window_size) /
fps` seconds).

Timing of the common features (protocol notes, section 5):

- THUMOS14, ActionFormer I3D: per-video `fps` from the annotation file, `feature_stride=4`, `window_size=16` (the
  defaults of [`load_activitynet_style`]).
- ActivityNet, ActionFormer TSP resized to a fixed number of units (192): after resizing, one unit spans
  `s' = ((T_raw - 1) * 16 + 16) / 192` frames at 15 fps, with `T_raw` the length before resizing, which the resized
  file no longer holds. The loaders therefore represent resized features as units that exactly tile the video:
  `feature_stride = window_size = duration * fps / num_units` (pass `feature_stride=None, window_size=None`, the
  defaults of [`load_bmn_style`]), i.e. unit `idx` is centred at `(idx + 0.5) * duration / num_units` seconds. This
  equals ActionFormer's `s'` whenever the raw features cover the video, and `fps` cancels out.
- CLIP frame features sampled at `r` frames per second: `fps=r, feature_stride=1, window_size=1`.

Validation (nothing is dropped without a count in the log of this module, `zeetad_hf.data`):

- segments reaching outside `[0, duration]` are clipped to it, with one warning that counts them;
- a segment with `start >= end` after clipping (zero-length, reversed, or lying entirely outside the video) raises a
  `ValueError` naming the videos and segments, unless `invalid_segments="drop"`, which drops them with a warning that
  counts them. The real files hold such segments (THUMOS14: 30 annotated after the end of 5 videos; ActivityNet: 12
  zero-length ones), so load them with `invalid_segments="drop"`;
- videos without a feature file raise a `ValueError` listing their ids, unless `missing_features="skip"`, which drops
  them with a warning that counts them; feature files without an annotation entry are counted in a warning;
- a video id given twice in the annotation file (or in the video information CSV) raises a `ValueError` naming the
  ids, unless `duplicate_videos="keep_last"`, which keeps the last entry of each (all that `json.load` would keep)
  with a warning that counts them;
- a feature file that cannot be read, is not a non-empty 2-D real-valued array, is not as wide as the other files of
  its folder, or holds NaN or infinite values raises a `ValueError` naming the files and the problem (the value pass
  is skipped with `check_feature_values=False`).

Zero-shot protocol on the loaded datasets: [`filter_to_classes`] (seen classes for training, unseen classes for
evaluation; an annotation label that is in neither class list, e.g. a misspelling, raises a `ValueError` unless
`unknown_labels="drop"`) and [`to_ground_truth`], which gives the ground-truth dict of
[`~zeetad_hf.evaluation.temporal_action_map`] and of the helpers in [`zeetad_hf.zero_shot_splits`].
"""

import csv
import math
import numbers
import os
import pickle
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from datasets import Dataset, DatasetDict, Features, List, Value
from safetensors import SafetensorError, safe_open
from transformers.utils import logging

from .file_utils import read_json, repeated_json_keys


logger = logging.get_logger(__name__)

VIDEO_FEATURES = Features(
    {
        "video_id": Value("string"),
        "subset": Value("string"),
        "duration": Value("float64"),
        "fps": Value("float64"),
        "feature_stride": Value("float64"),
        "window_size": Value("float64"),
        "feature_path": Value("string"),
        "clip_feature_path": Value("string"),
        "num_units": Value("int64"),
        "annotations": List({"label": Value("string"), "start": Value("float64"), "end": Value("float64")}),
    }
)
"""The features of every dataset built by this module, one row per video (see the module docstring)."""

FEATURE_EXTENSIONS = (".npy", ".pt", ".pth", ".safetensors")

# ActionFormer I3D features of THUMOS14 (`configs/thumos_i3d.yaml`): 4 frames between units, 16-frame windows.
THUMOS14_I3D_FEATURE_STRIDE = 4.0
THUMOS14_I3D_WINDOW_SIZE = 16.0
# ActionFormer `default_fps` of the ActivityNet TSP features (the BMN files carry no feature frame rate).
ACTIVITYNET_TSP_FPS = 15.0
# Key read from a feature file that holds several tensors.
FEATURES_KEY = "features"
# Ids quoted in an error or warning message; the total count is always given.
_MAX_LISTED = 10
# Values per chunk of the streaming pass that looks for non-finite values (16 MiB of float32).
_CHUNK_VALUES = 1 << 22
# Files checked at the same time by [`check_feature_files`] (reads and NumPy/torch reductions release the GIL).
_MAX_CHECK_WORKERS = 8


# ---------------------------------------------------------------------------------------------------------------------
# Feature files
# ---------------------------------------------------------------------------------------------------------------------


def _select_tensor(keys: list[str]) -> str:
    """The key to read from a file holding the tensors `keys`: the only one, else `FEATURES_KEY`."""
    if len(keys) == 1:
        return keys[0]
    if FEATURES_KEY in keys:
        return FEATURES_KEY
    raise ValueError(
        f'holds {len(keys)} tensors {sorted(keys)[:_MAX_LISTED]}; expected one, or one named "{FEATURES_KEY}"'
    )


def _check_shape(shape: tuple[int, ...]) -> None:
    if len(shape) != 2:
        raise ValueError(f"expected a 2-D (num_units, feature_dim) array, got shape {shape}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"empty array of shape {shape}")


def _tensor_to_numpy(tensor: torch.Tensor) -> np.ndarray:
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise ValueError(f"expected real-valued features, got dtype {tensor.dtype}")
    return tensor.to(torch.float32).numpy()


def _read_npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    # parsing the header alone is ~3x faster than creating a memory map (19k ActivityNet files: 1.5 s instead of 4.7 s)
    with path.open("rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version in ((1, 0), (2, 0)):
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(handle)
            # a truncated file has a complete header: its size tells (object arrays have no fixed size)
            expected = handle.tell() + math.prod(shape) * dtype.itemsize
            size = os.fstat(handle.fileno()).st_size
            if not dtype.hasobject and size < expected:
                raise ValueError(f"truncated: {size} bytes, the header announces {expected}")
            return shape, dtype
    # other format versions have no public header reader
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    return array.shape, array.dtype


def _read_npy(path: Path, lazy: bool) -> tuple[tuple[int, ...], np.ndarray | None]:
    if lazy:
        shape, dtype = _read_npy_header(path)
        values = None
    else:
        # allow_pickle=False: object arrays would unpickle arbitrary code
        values = np.load(path, allow_pickle=False)
        shape, dtype = values.shape, values.dtype
    if dtype.kind not in "fiu":
        raise ValueError(f"expected real-valued features, got dtype {dtype}")
    return tuple(shape), None if values is None else values.astype(np.float32)


def _read_safetensors(path: Path, lazy: bool) -> tuple[tuple[int, ...], np.ndarray | None]:
    # the torch framework also reads bfloat16 files, which numpy cannot represent
    with safe_open(path, framework="pt") as handle:
        key = _select_tensor(list(handle.keys()))
        if lazy:
            return tuple(handle.get_slice(key).get_shape()), None
        tensor = handle.get_tensor(key)
    return tuple(tensor.shape), _tensor_to_numpy(tensor)


def _load_torch_tensor(path: Path, mmap: bool) -> torch.Tensor:
    # weights_only: a feature file is data, and unpickling arbitrary objects would run arbitrary code
    if mmap:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:
            # files written by torch < 1.6 (not zip) cannot be memory-mapped: read them whole
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    else:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(loaded, Mapping) and loaded and all(isinstance(value, torch.Tensor) for value in loaded.values()):
        loaded = loaded[_select_tensor(list(loaded))]
    if not isinstance(loaded, torch.Tensor):
        raise ValueError(f"expected a tensor or a dict of tensors, got {type(loaded).__name__}")
    return loaded


def _read_torch(path: Path, lazy: bool) -> tuple[tuple[int, ...], np.ndarray | None]:
    tensor = _load_torch_tensor(path, mmap=lazy)
    return tuple(tensor.shape), None if lazy else _tensor_to_numpy(tensor)


_READERS = {".npy": _read_npy, ".pt": _read_torch, ".pth": _read_torch, ".safetensors": _read_safetensors}


def _read(path: Path, lazy: bool) -> tuple[tuple[int, ...], np.ndarray | None]:
    """Shape of the feature array of `path`, and (unless `lazy`) the array itself as float32."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(
            f"Feature file {path}: unknown extension {path.suffix!r}, expected one of {FEATURE_EXTENSIONS}"
        )
    try:
        shape, values = reader(path, lazy)
        _check_shape(shape)
    except ValueError as error:
        raise ValueError(f"Feature file {path}: {error}") from error
    except (OSError, EOFError, RuntimeError, SafetensorError, pickle.UnpicklingError) as error:
        # corrupt, truncated or foreign files surface as one of these depending on the reader
        raise ValueError(f"Feature file {path}: cannot be read ({type(error).__name__}: {error})") from error
    return shape, values


def load_features(path: str | os.PathLike) -> np.ndarray:
    """Read the feature array of one video.

    Supported files: `.npy` (read without pickle), `.pt` / `.pth` (read with `torch.load(..., weights_only=True)`, a
    tensor or a dict of tensors) and `.safetensors`. A file holding several tensors is read at the key `"features"`.

    Args:
        path (`str` or `os.PathLike`):
            The feature file.

    Returns:
        `np.ndarray` of shape `(num_units, feature_dim)` and dtype float32.

    Raises:
        `FileNotFoundError`: if the file does not exist.
        `ValueError`: naming the file, if its extension is unknown, it cannot be parsed, it holds no usable tensor, the
            array is not 2-D, is empty, is not real-valued, or contains NaN or infinite values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Feature file not found: {path}")
    _, values = _read(path, lazy=False)
    num_non_finite = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
    if num_non_finite:
        raise ValueError(f"Feature file {path}: {num_non_finite} non-finite (NaN or infinite) values")
    return values


def read_feature_shape(path: str | os.PathLike) -> tuple[int, int]:
    r"""
    The shape `(num_units, feature_dim)` of a feature file, from its header (`.npy`, `.safetensors`) or a memory map
    (`.pt`, `.pth`); the values are not read.

    Args:
        path (`str` or `os.PathLike`):
            The feature file.

    Returns:
        `tuple[int, int]`: the number of units and the feature width.

    Raises:
        `FileNotFoundError`: if the file does not exist.
        `ValueError`: naming the file, if it cannot be parsed or does not hold a non-empty 2-D real-valued array.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Feature file not found: {path}")
    shape, _ = _read(path, lazy=True)
    return shape


def _value_chunks(path: Path) -> Iterator[np.ndarray | torch.Tensor]:
    """The values of a feature file in chunks of whole rows, read from a memory map (or a safetensors slice)."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        with safe_open(path, framework="pt") as handle:
            tensor_slice = handle.get_slice(_select_tensor(list(handle.keys())))
            num_units, feature_dim = tensor_slice.get_shape()
            rows = max(1, _CHUNK_VALUES // feature_dim)
            for start in range(0, num_units, rows):
                yield tensor_slice[start : start + rows]
        return
    if suffix == ".npy":
        values = np.load(path, mmap_mode="r", allow_pickle=False)
    else:
        values = _load_torch_tensor(path, mmap=True)
    rows = max(1, _CHUNK_VALUES // values.shape[1])
    for start in range(0, values.shape[0], rows):
        yield values[start : start + rows]


def _count_non_finite(path: Path) -> int:
    count = 0
    for chunk in _value_chunks(path):
        if isinstance(chunk, np.ndarray):
            if chunk.dtype.kind == "f":
                count += chunk.size - int(np.count_nonzero(np.isfinite(chunk)))
        elif chunk.is_floating_point():
            count += int((~torch.isfinite(chunk)).sum())
    return count


def _inspect_feature_file(path: Path, check_values: bool) -> tuple[tuple[int, int] | None, str | None]:
    """`(shape, problem)` of one feature file; `problem` (naming the file) is `None` for a usable file."""
    try:
        shape = read_feature_shape(path)
    except FileNotFoundError as error:
        return None, str(error)
    except ValueError as error:
        # "Feature file <path>: <problem>"
        return None, str(error).removeprefix("Feature file ")
    if not check_values:
        return shape, None
    try:
        num_non_finite = _count_non_finite(path)
    except (ValueError, OSError, EOFError, RuntimeError, SafetensorError, pickle.UnpicklingError) as error:
        return shape, f"{path}: cannot be read ({type(error).__name__}: {error})"
    if num_non_finite:
        return shape, f"{path}: {num_non_finite} non-finite (NaN or infinite) values"
    return shape, None


def check_feature_files(
    paths: Sequence[str | os.PathLike],
    name: str,
    *,
    feature_dim: int | None = None,
    check_values: bool = True,
) -> list[tuple[int, int]]:
    r"""
    Check feature files before they are used, several at a time: each must be readable and hold a non-empty 2-D
    real-valued array (from its header), all of one width (`feature_dim` when given), and with `check_values` only
    finite values (a streaming pass over memory-mapped chunks of 16 MiB, so memory does not grow with the file).

    Args:
        paths (`Sequence[str | os.PathLike]`):
            The feature files (e.g. one folder's, or a dataset's `feature_path` column).
        name (`str`):
            What the files are, for error messages (e.g. `` "`feature_dir` i3d/" ``).
        feature_dim (`int`, *optional*):
            The width every file must have (e.g. the model's input width); `None` only requires one common width.
        check_values (`bool`, *optional*, defaults to `True`):
            Also read the values and refuse NaN and infinite ones; `False` reads the headers only.

    Returns:
        `list[tuple[int, int]]`: the `(num_units, feature_dim)` shape of every file, in order.

    Raises:
        `ValueError`: naming `name`, the number of bad files and up to 10 of them with their problem (missing,
            unreadable, not 2-D, empty, not real-valued, non-finite values, another width).
    """
    paths = [Path(path) for path in paths]
    if not paths:
        return []
    num_workers = min(_MAX_CHECK_WORKERS, os.cpu_count() or 1, len(paths))
    with ThreadPoolExecutor(num_workers) as pool:
        inspected = list(pool.map(lambda path: _inspect_feature_file(path, check_values), paths))
    problems = [problem for _, problem in inspected if problem is not None]
    if problems:
        raise ValueError(
            f"{name}: {len(problems)} of {len(paths)} feature files are unusable: {'; '.join(problems[:_MAX_LISTED])}"
        )
    shapes = [shape for shape, _ in inspected]
    expected = feature_dim if feature_dim is not None else Counter(width for _, width in shapes).most_common(1)[0][0]
    wrong = [f"{path}: {width}-d" for path, (_, width) in zip(paths, shapes) if width != expected]
    if wrong:
        reason = (
            "the model takes"
            if feature_dim is not None
            else "like the other files, since features of one kind share a width"
        )
        raise ValueError(
            f"{name}: {len(wrong)} of {len(paths)} feature files are not {expected}-d ({reason}): "
            f"{'; '.join(wrong[:_MAX_LISTED])}"
        )
    return shapes


# ---------------------------------------------------------------------------------------------------------------------
# Annotation parsing
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class _Video:
    video_id: str
    subset: str
    duration: float
    fps: float | None  # as given by the annotation file, `None` when absent
    annotations: list[dict[str, Any]]  # {"label", "start", "end"}, seconds, not yet clipped


def _is_number(value: Any) -> bool:
    # bool is a numbers.Real subclass, but `True` as a time stamp is a bug upstream
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_duplicate_videos(repeated: list[str], where: str, duplicate_videos: str) -> None:
    """Raise on (or log) the video ids that one file gives more than once; the last entry of each is the one kept."""
    if not repeated:
        return
    if duplicate_videos == "error":
        raise ValueError(
            f"{where}: {len(repeated)} video ids occur more than once (e.g. {repeated[:_MAX_LISTED]}); only the last "
            'entry of each would be kept. Fix the file, or pass `duplicate_videos="keep_last"` to keep the last '
            "entries (the count is logged)."
        )
    logger.warning(
        f"{where}: {len(repeated)} video ids occur more than once; kept the last entry of each (e.g. "
        f"{repeated[:_MAX_LISTED]})."
    )


def _read_database(annotation_path: str | os.PathLike, duplicate_videos: str) -> Mapping[str, Any]:
    """The `"database"` object of an ActivityNet-format annotation file, its video ids checked for repeats."""
    _check_choice("duplicate_videos", duplicate_videos, ("error", "keep_last"))
    data = read_json(annotation_path, "annotation_path")
    database = data.get("database") if isinstance(data, Mapping) else None
    if not isinstance(database, Mapping):
        raise ValueError(f'`annotation_path` {annotation_path}: expected a JSON object with a "database" object')
    _check_duplicate_videos(
        repeated_json_keys(database), f'`annotation_path` {annotation_path} ("database")', duplicate_videos
    )
    return database


def _read_bmn_annotations(annotation_path: str | os.PathLike, duplicate_videos: str) -> Mapping[str, Any]:
    """The video mapping of a BMN annotation file, its video ids checked for repeats."""
    _check_choice("duplicate_videos", duplicate_videos, ("error", "keep_last"))
    annotations = read_json(annotation_path, "annotation_path")
    if not isinstance(annotations, Mapping):
        raise ValueError(f"`annotation_path` {annotation_path}: expected a JSON object mapping video ids to videos")
    _check_duplicate_videos(repeated_json_keys(annotations), f"`annotation_path` {annotation_path}", duplicate_videos)
    return annotations


def _read_video_subsets(video_info_csv: str | os.PathLike, duplicate_videos: str) -> dict[str, str]:
    """`{video_id: subset}` from the `video` and `subset` columns of a video information CSV (repeats checked)."""
    csv_path = Path(video_info_csv)
    if not csv_path.is_file():
        raise FileNotFoundError(f"`video_info_csv` file not found: {csv_path}")
    with csv_path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing_columns = {"video", "subset"} - set(reader.fieldnames or [])
        if missing_columns:
            raise ValueError(f"`video_info_csv` {csv_path}: missing columns {sorted(missing_columns)}")
        rows = [(row["video"], row["subset"]) for row in reader]
    subsets_by_id = dict(rows)
    if len(subsets_by_id) < len(rows):
        counts: dict[str, int] = {}
        for video_id, _ in rows:
            counts[video_id] = counts.get(video_id, 0) + 1
        repeated = [video_id for video_id, count in counts.items() if count > 1]
        _check_duplicate_videos(repeated, f"`video_info_csv` {csv_path}", duplicate_videos)
    return subsets_by_id


def _parse_duration(video_id: str, value: Any, field: str) -> float:
    if not _is_number(value) or not value > 0:
        raise ValueError(f'video {video_id!r}: field "{field}" must be a positive number of seconds, got {value!r}')
    return float(value)


def _parse_annotations(video_id: str, annotations: Any) -> list[dict[str, Any]]:
    if not isinstance(annotations, list):
        raise ValueError(f'video {video_id!r}: field "annotations" must be a list, got {type(annotations).__name__}')
    parsed = []
    for index, annotation in enumerate(annotations):
        where = f"video {video_id!r}, annotation {index}"
        if not isinstance(annotation, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(annotation).__name__}")
        label, segment = annotation.get("label"), annotation.get("segment")
        if not isinstance(label, str) or not label:
            raise ValueError(f'{where}: field "label" must be a non-empty string, got {label!r}')
        if not isinstance(segment, (list, tuple)) or len(segment) != 2 or not all(map(_is_number, segment)):
            raise ValueError(
                f'{where}: field "segment" must be a [start, end] pair of finite numbers, got {segment!r}'
            )
        parsed.append({"label": label, "start": float(segment[0]), "end": float(segment[1])})
    return parsed


def _clip_and_check_segments(videos: list[_Video], invalid_segments: str) -> None:
    """Clip every segment to its video in place, then raise on (or drop) the ones with `start >= end`."""
    num_clipped = 0
    clipped_videos = set()
    invalid = []  # (video, original annotation)
    for video in videos:
        kept = []
        for annotation in video.annotations:
            start = min(max(annotation["start"], 0.0), video.duration)
            end = min(max(annotation["end"], 0.0), video.duration)
            if (start, end) != (annotation["start"], annotation["end"]):
                num_clipped += 1
                clipped_videos.add(video.video_id)
            if start >= end:
                invalid.append((video, annotation))
            else:
                kept.append({"label": annotation["label"], "start": start, "end": end})
        video.annotations = kept
    if num_clipped:
        logger.warning(
            f"Clipped {num_clipped} segments reaching outside [0, duration] in {len(clipped_videos)} videos "
            f"(e.g. {sorted(clipped_videos)[:_MAX_LISTED]})."
        )
    if not invalid:
        return
    # one example per video, so that the message shows how widespread the problem is
    first_per_video = {}
    for video, annotation in invalid:
        first_per_video.setdefault(video.video_id, (video, annotation))
    examples = "; ".join(
        f"{video.video_id}: {annotation['label']} [{annotation['start']}, {annotation['end']}] (duration "
        f"{video.duration})"
        for video, annotation in list(first_per_video.values())[:_MAX_LISTED]
    )
    num_videos = len(first_per_video)
    if invalid_segments == "error":
        raise ValueError(
            f"{len(invalid)} segments in {num_videos} videos have start >= end after clipping to [0, duration]: "
            f'{examples}. Fix the annotation file, or pass `invalid_segments="drop"` to drop them (the count is '
            "logged)."
        )
    logger.warning(
        f"Dropped {len(invalid)} segments with start >= end after clipping to [0, duration] in {num_videos} videos: "
        f"{examples}."
    )


# ---------------------------------------------------------------------------------------------------------------------
# Dataset building
# ---------------------------------------------------------------------------------------------------------------------


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}, got {value!r}")


def _check_positive(name: str, value: float | None, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    # `not x > 0` so that NaN is rejected too
    if not _is_number(value) or not value > 0:
        raise ValueError(f"`{name}` must be a positive number{' or None' if allow_none else ''}, got {value!r}")


def _normalize_extension(feature_extension: str) -> str:
    extension = feature_extension if feature_extension.startswith(".") else f".{feature_extension}"
    if extension.lower() not in FEATURE_EXTENSIONS:
        raise ValueError(f"`feature_extension` must be one of {FEATURE_EXTENSIONS}, got {feature_extension!r}")
    return extension


def _select_subsets(videos: list[_Video], subsets: Iterable[str] | None) -> list[_Video]:
    if subsets is None:
        return videos
    if isinstance(subsets, str):
        raise ValueError(f"`subsets` must be an iterable of subset names, not the string {subsets!r}")
    wanted = set(subsets)
    available = {video.subset for video in videos}
    unknown = wanted - available
    if unknown:
        raise ValueError(
            f"`subsets` {sorted(unknown)} not found in the annotation file; available: {sorted(available)}"
        )
    return [video for video in videos if video.subset in wanted]


def _list_directory(directory: Path, name: str) -> set[str]:
    if not directory.is_dir():
        raise FileNotFoundError(f"`{name}` is not a directory: {directory}")
    return {entry.name for entry in os.scandir(directory) if entry.is_file()}


def _drop_missing_features(
    videos: list[_Video],
    directories: dict[str, Path],
    extension: str,
    annotated_ids: set[str],
    missing_features: str,
) -> list[_Video]:
    """Keep the videos whose feature file exists in every directory; report the others and the unannotated files."""
    missing: dict[str, list[str]] = {}
    for name, directory in directories.items():
        file_names = _list_directory(directory, name)
        unannotated = sorted(
            file_name
            for file_name in file_names
            if file_name.endswith(extension) and file_name[: -len(extension)] not in annotated_ids
        )
        if unannotated:
            logger.warning(
                f"{len(unannotated)} {extension} files in {directory} have no entry in the annotation file and are "
                f"not loaded (e.g. {unannotated[:_MAX_LISTED]})."
            )
        absent = [video.video_id for video in videos if f"{video.video_id}{extension}" not in file_names]
        if absent:
            missing[name] = absent
    if not missing:
        return videos
    description = "; ".join(
        f"{len(ids)} videos have no {extension} file in `{name}` {directories[name]} (e.g. {ids[:_MAX_LISTED]})"
        for name, ids in missing.items()
    )
    if missing_features == "error":
        raise ValueError(
            f'Missing feature files: {description}. Pass `missing_features="skip"` to drop these videos (the count '
            "is logged)."
        )
    missing_ids = {video_id for ids in missing.values() for video_id in ids}
    logger.warning(f"Skipped {len(missing_ids)} of {len(videos)} videos without feature files: {description}.")
    return [video for video in videos if video.video_id not in missing_ids]


def _build_dataset_dict(
    videos: list[_Video],
    *,
    feature_dir: str | os.PathLike,
    clip_feature_dir: str | os.PathLike | None,
    feature_extension: str,
    fps: float | None,
    default_fps: float | None,
    feature_stride: float | None,
    window_size: float | None,
    missing_features: str,
    invalid_segments: str,
    subsets: Iterable[str] | None,
    check_feature_values: bool,
) -> DatasetDict:
    """Shared second half of the two loaders: validation, feature lookup and checks, timing, and the Arrow tables."""
    _check_positive("fps", fps)
    _check_positive("default_fps", default_fps)
    _check_positive("feature_stride", feature_stride)
    if window_size is not None and (not _is_number(window_size) or not window_size >= 0):
        raise ValueError(f"`window_size` must be a non-negative number or None, got {window_size!r}")
    # a stride without a window (or the reverse) mixes the tiling and the fixed-grid conventions
    if (feature_stride is None) != (window_size is None):
        raise ValueError(
            f"`feature_stride` ({feature_stride}) and `window_size` ({window_size}) must both be numbers, or both "
            "None (units tile the video)"
        )
    _check_choice("missing_features", missing_features, ("error", "skip"))
    _check_choice("invalid_segments", invalid_segments, ("error", "drop"))
    extension = _normalize_extension(feature_extension)

    annotated_ids = {video.video_id for video in videos}
    videos = _select_subsets(videos, subsets)
    if not videos:
        raise ValueError("The annotation file holds no video")
    _clip_and_check_segments(videos, invalid_segments)
    without_fps = [video.video_id for video in videos if video.fps is None]
    if fps is None and default_fps is None and without_fps:
        raise ValueError(
            f"{len(without_fps)} videos have no frame rate in the annotation file (e.g. {without_fps[:_MAX_LISTED]}); "
            "pass `fps` or `default_fps`"
        )

    # absolute, so that the paths stay valid for a collate running from another working directory
    directories = {"feature_dir": Path(feature_dir).absolute()}
    if clip_feature_dir is not None:
        directories["clip_feature_dir"] = Path(clip_feature_dir).absolute()
    videos = _drop_missing_features(videos, directories, extension, annotated_ids, missing_features)
    if not videos:
        raise ValueError(
            f"No video left to load: none has a {extension} feature file in {sorted(map(str, directories.values()))}"
        )

    shapes = {
        name: check_feature_files(
            [directory / f"{video.video_id}{extension}" for video in videos],
            f"`{name}` {directory}",
            check_values=check_feature_values,
        )
        for name, directory in directories.items()
    }
    columns: dict[str, dict[str, list]] = {}
    for video, (num_units, _) in zip(videos, shapes["feature_dir"]):
        feature_path = directories["feature_dir"] / f"{video.video_id}{extension}"
        # precedence: the `fps` argument, then the annotation file, then `default_fps`
        video_fps = next(rate for rate in (fps, video.fps, default_fps) if rate is not None)
        if feature_stride is None:
            # resized features: the units tile the video, unit `idx` is centred at (idx + 0.5) * duration / num_units
            stride = window = video.duration * video_fps / num_units
        else:
            stride, window = feature_stride, window_size
        row = {
            "video_id": video.video_id,
            "subset": video.subset,
            "duration": video.duration,
            "fps": float(video_fps),
            "feature_stride": float(stride),
            "window_size": float(window),
            "feature_path": str(feature_path),
            "clip_feature_path": (
                str(directories["clip_feature_dir"] / f"{video.video_id}{extension}")
                if clip_feature_dir is not None
                else None
            ),
            "num_units": num_units,
            "annotations": video.annotations,
        }
        subset_columns = columns.setdefault(video.subset, {key: [] for key in VIDEO_FEATURES})
        for key, value in row.items():
            subset_columns[key].append(value)

    dataset_dict = DatasetDict(
        {
            subset: Dataset.from_dict(subset_columns, features=VIDEO_FEATURES)
            for subset, subset_columns in columns.items()
        }
    )
    for subset, dataset in dataset_dict.items():
        num_instances = sum(len(annotations) for annotations in columns[subset]["annotations"])
        logger.info(f"Subset {subset!r}: {dataset.num_rows} videos, {num_instances} action instances.")
    return dataset_dict


def load_activitynet_style(
    annotation_path: str | os.PathLike,
    feature_dir: str | os.PathLike,
    clip_feature_dir: str | os.PathLike | None = None,
    *,
    feature_extension: str = ".npy",
    fps: float | None = None,
    default_fps: float | None = None,
    feature_stride: float | None = THUMOS14_I3D_FEATURE_STRIDE,
    window_size: float | None = THUMOS14_I3D_WINDOW_SIZE,
    subsets: Iterable[str] | None = None,
    missing_features: Literal["error", "skip"] = "error",
    invalid_segments: Literal["error", "drop"] = "error",
    duplicate_videos: Literal["error", "keep_last"] = "error",
    check_feature_values: bool = True,
) -> DatasetDict:
    """Load an ActivityNet-format annotation file (e.g. ActionFormer's `thumos14.json`) and its feature files.

    The file is `{"database": {video_id: {"subset": str, "duration": float, "fps": float (optional), "annotations":
    [{"label": str, "segment": [start, end]}, ...]}}}` with segments in seconds; other keys are ignored. The feature
    file of a video is `<feature_dir>/<video_id><feature_extension>`. The defaults fit ActionFormer's THUMOS14 I3D
    features (per-video fps from the file, stride 4, window 16). See the module docstring for the schema, the timing
    conventions and the validation rules.

    Args:
        annotation_path (`str` or `os.PathLike`):
            The annotation JSON file.
        feature_dir (`str` or `os.PathLike`):
            Directory of the localization feature files, one per video.
        clip_feature_dir (`str` or `os.PathLike`, *optional*):
            Directory of a second feature source (e.g. CLIP frame embeddings) with the same file names, checked like
            `feature_dir`'s (its files may have another length). `None` (`clip_feature_path` is `None`) when
            `feature_dir` serves both.
        feature_extension (`str`, *optional*, defaults to `".npy"`):
            Extension of the feature files: `".npy"`, `".pt"`, `".pth"` or `".safetensors"`.
        fps (`float`, *optional*):
            Frame rate the features were extracted at, for every video; overrides the per-video `"fps"` of the file
            (e.g. CLIP features sampled at a fixed rate).
        default_fps (`float`, *optional*):
            Frame rate of the videos whose entry has no `"fps"` (and `fps` is not given). A video without any frame
            rate raises a `ValueError`.
        feature_stride (`float`, *optional*, defaults to 4.0):
            Frames between two consecutive feature units. `None` (together with `window_size=None`) makes the units
            tile the video: `feature_stride = window_size = duration * fps / num_units` (resized features).
        window_size (`float`, *optional*, defaults to 16.0):
            Frames covered by one feature unit, or `None` (see `feature_stride`).
        subsets (`Iterable[str]`, *optional*):
            Load only these subsets (exact names, e.g. `["Validation", "Test"]`); the others are neither validated
            nor checked for features. `None` loads every subset.
        missing_features (`str`, *optional*, defaults to `"error"`):
            `"error"` raises a `ValueError` listing the videos without a feature file; `"skip"` drops them and logs
            their count.
        invalid_segments (`str`, *optional*, defaults to `"error"`):
            `"error"` raises a `ValueError` naming the segments with `start >= end` after clipping to the video;
            `"drop"` drops them and logs their count. The shared THUMOS14 file needs `"drop"` (30 segments annotated
            after the end of their video).
        duplicate_videos (`str`, *optional*, defaults to `"error"`):
            `"error"` raises a `ValueError` naming the video ids that occur more than once in `"database"` (JSON keeps
            only the last entry of a repeated key, so the others would silently vanish); `"keep_last"` keeps the last
            entry of each and logs their count.
        check_feature_values (`bool`, *optional*, defaults to `True`):
            Read every feature file once (streaming) and refuse NaN and infinite values; `False` checks the headers
            only (see [`check_feature_files`]).

    Returns:
        [`~datasets.DatasetDict`]: one [`~datasets.Dataset`] per subset, in order of first appearance in the file, with
        the features [`VIDEO_FEATURES`] and one row per video in file order.

    Example:

    ```python
    >>> from zeetad_hf.data import load_activitynet_style

    >>> thumos = load_activitynet_style("thumos14.json", "i3d_features/", invalid_segments="drop")
    >>> list(thumos)
    ['Test', 'Validation']
    ```
    """
    database = _read_database(annotation_path, duplicate_videos)
    videos = []
    for video_id, entry in database.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"video {video_id!r}: expected a mapping, got {type(entry).__name__}")
        subset = entry.get("subset")
        if not isinstance(subset, str) or not subset:
            raise ValueError(f'video {video_id!r}: field "subset" must be a non-empty string, got {subset!r}')
        video_fps = entry.get("fps")
        if video_fps is not None and (not _is_number(video_fps) or not video_fps > 0):
            raise ValueError(f'video {video_id!r}: field "fps" must be a positive number, got {video_fps!r}')
        videos.append(
            _Video(
                video_id=video_id,
                subset=subset,
                duration=_parse_duration(video_id, entry.get("duration"), "duration"),
                fps=None if video_fps is None else float(video_fps),
                annotations=_parse_annotations(video_id, entry.get("annotations")),
            )
        )
    return _build_dataset_dict(
        videos,
        feature_dir=feature_dir,
        clip_feature_dir=clip_feature_dir,
        feature_extension=feature_extension,
        fps=fps,
        default_fps=default_fps,
        feature_stride=feature_stride,
        window_size=window_size,
        missing_features=missing_features,
        invalid_segments=invalid_segments,
        subsets=subsets,
        check_feature_values=check_feature_values,
    )


def load_bmn_style(
    annotation_path: str | os.PathLike,
    video_info_csv: str | os.PathLike,
    feature_dir: str | os.PathLike,
    clip_feature_dir: str | os.PathLike | None = None,
    *,
    feature_extension: str = ".npy",
    fps: float = ACTIVITYNET_TSP_FPS,
    feature_stride: float | None = None,
    window_size: float | None = None,
    subsets: Iterable[str] | None = None,
    missing_features: Literal["error", "skip"] = "error",
    invalid_segments: Literal["error", "drop"] = "error",
    duplicate_videos: Literal["error", "keep_last"] = "error",
    check_feature_values: bool = True,
) -> DatasetDict:
    """Load BMN-format ActivityNet annotations (`anet_anno_action.json` + `anet_video_info.csv`) and feature files.

    The JSON is `{video_id: {"duration_second": float, "annotations": [{"label": str, "segment": [start, end]}, ...]}}`
    (other keys ignored) and has no subset: it comes from the `subset` column of the CSV (`training`, `validation`,
    `testing`), whose `video` column holds the same ids. Every JSON video needs a CSV row; CSV rows without a JSON
    entry are counted in a warning and not loaded. The defaults fit ActionFormer's TSP features resized to a fixed
    number of units: units tile the video (`feature_stride = window_size = duration * fps / num_units`). See the module
    docstring for the schema, the timing conventions and the validation rules.

    Args:
        annotation_path (`str` or `os.PathLike`):
            The BMN annotation JSON file.
        video_info_csv (`str` or `os.PathLike`):
            The video information CSV with at least the columns `video` and `subset`.
        feature_dir (`str` or `os.PathLike`):
            Directory of the localization feature files, one per video (`<video_id><feature_extension>`).
        clip_feature_dir (`str` or `os.PathLike`, *optional*):
            Directory of a second feature source with the same file names, checked like `feature_dir`'s. `None` when
            `feature_dir` serves both.
        feature_extension (`str`, *optional*, defaults to `".npy"`):
            Extension of the feature files: `".npy"`, `".pt"`, `".pth"` or `".safetensors"`.
        fps (`float`, *optional*, defaults to 15.0):
            Frame rate the features were extracted at, for every video (ActionFormer's TSP `default_fps`; the nominal
            `fps` column of the CSV is the rate of the source video, not of the features). With tiling units it
            cancels out of every time stamp.
        feature_stride (`float`, *optional*):
            Frames between two consecutive feature units; `None` (together with `window_size=None`) makes the units
            tile the video. E.g. `fps=r, feature_stride=1, window_size=1` for CLIP frame features sampled at `r` fps.
        window_size (`float`, *optional*):
            Frames covered by one feature unit, or `None` (see `feature_stride`).
        subsets (`Iterable[str]`, *optional*):
            Load only these subsets (e.g. `["training", "validation"]`: `testing` has no labels). `None` loads all.
        missing_features (`str`, *optional*, defaults to `"error"`):
            `"error"` raises a `ValueError` listing the videos without a feature file; `"skip"` drops them and logs
            their count.
        invalid_segments (`str`, *optional*, defaults to `"error"`):
            `"error"` raises a `ValueError` naming the segments with `start >= end` after clipping to the video;
            `"drop"` drops them and logs their count. The shared ActivityNet file needs `"drop"` (12 zero-length
            segments).
        duplicate_videos (`str`, *optional*, defaults to `"error"`):
            `"error"` raises a `ValueError` naming the video ids that occur more than once in the JSON file or in the
            CSV (only the last entry of each would be kept); `"keep_last"` keeps the last entry of each and logs
            their count.
        check_feature_values (`bool`, *optional*, defaults to `True`):
            Read every feature file once (streaming) and refuse NaN and infinite values; `False` checks the headers
            only (see [`check_feature_files`]).

    Returns:
        [`~datasets.DatasetDict`]: one [`~datasets.Dataset`] per subset, in order of first appearance in the CSV, with
        the features [`VIDEO_FEATURES`] and one row per video in CSV order.
    """
    _check_positive("fps", fps, allow_none=False)
    annotations = _read_bmn_annotations(annotation_path, duplicate_videos)
    subsets_by_id = _read_video_subsets(video_info_csv, duplicate_videos)

    without_row = [video_id for video_id in annotations if video_id not in subsets_by_id]
    if without_row:
        raise ValueError(
            f"{len(without_row)} videos of `annotation_path` have no row in `video_info_csv`, so no subset (e.g. "
            f"{without_row[:_MAX_LISTED]})"
        )
    without_annotations = [video_id for video_id in subsets_by_id if video_id not in annotations]
    if without_annotations:
        logger.warning(
            f"{len(without_annotations)} videos of `video_info_csv` have no entry in `annotation_path` and are not "
            f"loaded (e.g. {without_annotations[:_MAX_LISTED]})."
        )

    videos = []
    for video_id, subset in subsets_by_id.items():
        entry = annotations.get(video_id)
        if entry is None:
            continue
        if not isinstance(entry, Mapping):
            raise ValueError(f"video {video_id!r}: expected a mapping, got {type(entry).__name__}")
        if not subset:
            raise ValueError(f"video {video_id!r}: empty `subset` in `video_info_csv`")
        videos.append(
            _Video(
                video_id=video_id,
                subset=subset,
                duration=_parse_duration(video_id, entry.get("duration_second"), "duration_second"),
                fps=None,
                annotations=_parse_annotations(video_id, entry.get("annotations")),
            )
        )
    return _build_dataset_dict(
        videos,
        feature_dir=feature_dir,
        clip_feature_dir=clip_feature_dir,
        feature_extension=feature_extension,
        fps=fps,
        default_fps=None,
        feature_stride=feature_stride,
        window_size=window_size,
        missing_features=missing_features,
        invalid_segments=invalid_segments,
        subsets=subsets,
        check_feature_values=check_feature_values,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Zero-shot protocol on datasets
# ---------------------------------------------------------------------------------------------------------------------


def _check_unknown_labels(
    annotations: list[list[dict[str, Any]]], video_ids: list[Any], known: set[str], unknown_labels: str
) -> None:
    """Raise on (or log) the annotations whose label is not in `known`, naming the labels and their videos."""
    videos_of_label: dict[str, list[Any]] = {}
    num_unknown = 0
    for video_id, video_annotations in zip(video_ids, annotations):
        for annotation in video_annotations:
            if annotation["label"] not in known:
                num_unknown += 1
                videos = videos_of_label.setdefault(annotation["label"], [])
                if video_id not in videos:
                    videos.append(video_id)
    if not num_unknown:
        return
    examples = "; ".join(
        f"{label!r} in {len(videos)} videos (e.g. {videos[:3]})"
        for label, videos in sorted(videos_of_label.items())[:_MAX_LISTED]
    )
    num_videos = len({video_id for videos in videos_of_label.values() for video_id in videos})
    where = f"{num_unknown} annotations in {num_videos} videos"
    labels = f"{len(videos_of_label)} labels in neither `classes` nor `excluded_classes`: {examples}"
    if unknown_labels == "error":
        raise ValueError(
            f"{where} have one of {labels}. A label in no class list is usually a misspelling. Fix the annotation "
            'file, add the classes to `excluded_classes` to drop them on purpose, or pass `unknown_labels="drop"` to '
            "drop them (the count is logged)."
        )
    logger.warning(f"Dropped {where} with one of {labels}.")


def filter_to_classes(
    dataset: Dataset | DatasetDict,
    classes: Iterable[str],
    *,
    drop_empty: bool,
    excluded_classes: Iterable[str] | None = None,
    unknown_labels: Literal["error", "drop"] = "error",
) -> Dataset | DatasetDict:
    """Keep only the annotations of `classes`, the zero-shot protocol step on a loaded dataset.

    - Training (`drop_empty=True`, `classes` = the seen classes of a split, `excluded_classes` = the unseen ones):
      every other annotation is dropped, then every video left without annotations, so that no unseen-class segment
      reaches training.
    - Evaluation (`drop_empty=False`, `classes` = the unseen classes, `excluded_classes` = the seen ones): every video
      is kept, with only its unseen-class annotations; all videos of the evaluation subset are scored and predictions
      on a video without ground truth of their class count as false positives.

    An annotation whose label is in neither list (a misspelling, or a class missing from the split's lists) raises a
    `ValueError` naming the labels and their videos, unless `unknown_labels="drop"`: without `excluded_classes`, that
    is every annotation outside `classes`. The numbers of dropped annotations and videos are logged at INFO level;
    class names that occur in no annotation (usually a misspelling) are logged as a warning. The mirror functions on
    ground-truth dicts are [`~zeetad_hf.zero_shot_splits.restrict_to_seen`] and
    [`~zeetad_hf.zero_shot_splits.restrict_ground_truth`].

    Args:
        dataset ([`~datasets.Dataset`] or [`~datasets.DatasetDict`]):
            A dataset with the features [`VIDEO_FEATURES`] (other columns are kept). A `DatasetDict` is filtered split
            by split.
        classes (`Iterable[str]`):
            Class names to keep, spelled exactly as the annotation labels.
        drop_empty (`bool`):
            Whether to drop the videos left without annotations.
        excluded_classes (`Iterable[str]`, *optional*):
            Class names whose annotations are dropped on purpose (the other side of the split), disjoint from
            `classes`. `None` means that every annotation is expected to be of `classes`.
        unknown_labels (`str`, *optional*, defaults to `"error"`):
            `"error"` raises a `ValueError` naming the labels in neither `classes` nor `excluded_classes` and their
            videos; `"drop"` drops their annotations too, with a warning that counts them.

    Returns:
        [`~datasets.Dataset`] or [`~datasets.DatasetDict`]: a new dataset of the same type and features.

    Example:

    ```python
    >>> from zeetad_hf.data import filter_to_classes, load_activitynet_style
    >>> from zeetad_hf.zero_shot_splits import load_zero_shot_split

    >>> thumos = load_activitynet_style("thumos14.json", "i3d_features/", invalid_segments="drop")
    >>> seen, unseen = load_zero_shot_split("thumos14", "75_25", split=0)
    >>> train_dataset = filter_to_classes(thumos["Validation"], seen, drop_empty=True, excluded_classes=unseen)
    >>> eval_dataset = filter_to_classes(thumos["Test"], unseen, drop_empty=False, excluded_classes=seen)
    ```
    """
    # a bare string would silently become a set of characters
    for name, value in (("classes", classes), ("excluded_classes", excluded_classes)):
        if isinstance(value, str):
            raise ValueError(f"`{name}` must be an iterable of class names, not the string {value!r}")
    _check_choice("unknown_labels", unknown_labels, ("error", "drop"))
    class_set = set(classes)
    excluded_set = set(excluded_classes) if excluded_classes is not None else set()
    both = sorted(class_set & excluded_set)
    if both:
        raise ValueError(f"`classes` and `excluded_classes` must be disjoint; both hold {both[:_MAX_LISTED]}")
    if isinstance(dataset, DatasetDict):
        return DatasetDict(
            {
                name: filter_to_classes(
                    split,
                    class_set,
                    drop_empty=drop_empty,
                    excluded_classes=excluded_set,
                    unknown_labels=unknown_labels,
                )
                for name, split in dataset.items()
            }
        )
    if not isinstance(dataset, Dataset) or "annotations" not in dataset.column_names:
        raise ValueError('`dataset` must be a `Dataset` or `DatasetDict` with an "annotations" column')

    annotations = list(dataset["annotations"])
    video_ids = list(dataset["video_id"]) if "video_id" in dataset.column_names else list(range(dataset.num_rows))
    _check_unknown_labels(annotations, video_ids, class_set | excluded_set, unknown_labels)
    present = {annotation["label"] for video_annotations in annotations for annotation in video_annotations}
    absent = sorted(class_set - present)
    if absent:
        logger.warning(f"{len(absent)} of {len(class_set)} classes occur in no annotation: {absent[:_MAX_LISTED]}")

    def keep_classes(batch: list[list[dict[str, Any]]]) -> dict[str, list]:
        return {"annotations": [[item for item in video if item["label"] in class_set] for video in batch]}

    filtered = dataset.map(
        keep_classes, input_columns="annotations", batched=True, features=dataset.features, desc="Filtering classes"
    )
    num_kept_annotations = sum(len(video) for video in filtered["annotations"])
    if drop_empty:
        filtered = filtered.filter(
            lambda batch: [len(video) > 0 for video in batch],
            input_columns="annotations",
            batched=True,
            desc="Dropping videos without annotations",
        )
    logger.info(
        f"Kept {num_kept_annotations} of {sum(map(len, annotations))} annotations of {len(class_set)} classes and "
        f"{filtered.num_rows} of {dataset.num_rows} videos (dropped {dataset.num_rows - filtered.num_rows} videos "
        "left without annotations)."
    )
    return filtered


def to_ground_truth(dataset: Dataset | DatasetDict) -> dict[str, Any]:
    """Build the ActivityNet-format ground truth of a dataset, as consumed by
    [`~zeetad_hf.evaluation.temporal_action_map`], [`~zeetad_hf.zero_shot_splits.restrict_ground_truth`] and
    [`~zeetad_hf.zero_shot_splits.restrict_to_seen`].

    Segments are those of the dataset, i.e. clipped to the video and without the segments dropped at load time. For
    numbers bit-identical to an evaluation on the raw annotation file (which keeps segments annotated after the end of
    a video as unmatchable ground truth), evaluate against that file restricted with
    [`~zeetad_hf.zero_shot_splits.restrict_ground_truth`] instead.

    Args:
        dataset ([`~datasets.Dataset`] or [`~datasets.DatasetDict`]):
            A dataset with the columns `video_id`, `subset`, `duration` and `annotations` of [`VIDEO_FEATURES`]. The
            splits of a `DatasetDict` are merged.

    Returns:
        `dict[str, Any]`: `{"database": {video_id: {"subset": str, "duration": float, "annotations": [{"label": str,
        "segment": [start, end]}, ...]}}}`, videos in dataset order.

    Raises:
        `ValueError`: if a video id occurs twice.
    """
    splits = list(dataset.values()) if isinstance(dataset, DatasetDict) else [dataset]
    database: dict[str, Any] = {}
    for split in splits:
        for row in split.select_columns(["video_id", "subset", "duration", "annotations"]):
            if row["video_id"] in database:
                raise ValueError(f"video {row['video_id']!r} occurs more than once in `dataset`")
            database[row["video_id"]] = {
                "subset": row["subset"],
                "duration": row["duration"],
                "annotations": [
                    {"label": item["label"], "segment": [item["start"], item["end"]]} for item in row["annotations"]
                ],
            }
    return {"database": database}


# Benchmark subsets and tIoU thresholds: train on the first subset, evaluate on the second (protocol.md section 2).
THUMOS14_TIOU_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
ACTIVITYNET_TIOU_THRESHOLDS = tuple(np.linspace(0.5, 0.95, 10).round(2).tolist())
# Per benchmark: (training subset, evaluation subset, tIoU thresholds). ActivityNet "testing" has no labels.
BENCHMARKS = {
    "thumos14": ("Validation", "Test", THUMOS14_TIOU_THRESHOLDS),
    "activitynet": ("training", "validation", ACTIVITYNET_TIOU_THRESHOLDS),
}


def load_benchmark(
    dataset: str,
    annotations: str | os.PathLike,
    features: str | os.PathLike,
    clip_features: str | os.PathLike | None = None,
    video_info: str | os.PathLike | None = None,
    include_train: bool = True,
    **loader_kwargs,
) -> tuple[Dataset | None, Dataset]:
    r"""
    Load the training and evaluation videos of THUMOS14 or ActivityNet-1.3 (all classes, not yet split).

    THUMOS14 reads an ActivityNet-format file (ActionFormer's `thumos14.json`) with
    [`~zeetad_hf.data.load_activitynet_style`] and trains on `Validation`, evaluates on `Test`. ActivityNet reads the
    BMN files (`anet_anno_action.json` + `video_info`, the CSV) with [`~zeetad_hf.data.load_bmn_style`] and trains on
    `training`, evaluates on `validation`. Segments with `start >= end` after clipping are dropped with a logged count
    (the shared files hold some).

    Args:
        dataset (`str`):
            `"thumos14"` or `"activitynet"`.
        annotations (`str` or `os.PathLike`):
            The annotation file.
        features (`str` or `os.PathLike`):
            Folder of the localization feature files.
        clip_features (`str` or `os.PathLike`, *optional*):
            Folder of the CLIP frame features with the same file names; `None` when `features` serves both.
        video_info (`str` or `os.PathLike`, *optional*):
            ActivityNet's video information CSV (required for `"activitynet"`).
        include_train (`bool`, *optional*, defaults to `True`):
            Also load the training subset (its feature files must then exist); `False` returns `None` for it.
        loader_kwargs:
            Forwarded to the loader (`feature_extension`, `fps`, `feature_stride`, `window_size`,
            `check_feature_values`, ...).

    Returns:
        `tuple[Dataset | None, Dataset]`: the training-subset and evaluation-subset videos.
    """
    if dataset not in BENCHMARKS:
        raise ValueError(f"`dataset` must be one of {sorted(BENCHMARKS)}, got {dataset!r}.")
    train_subset, eval_subset, _ = BENCHMARKS[dataset]
    subsets = [train_subset, eval_subset] if include_train else [eval_subset]
    loader_kwargs = {"invalid_segments": "drop", "subsets": subsets, **loader_kwargs}
    if dataset == "thumos14":
        videos = load_activitynet_style(annotations, features, clip_features, **loader_kwargs)
    elif video_info is None:
        raise ValueError("ActivityNet needs `video_info`, the CSV that gives every video its subset.")
    else:
        videos = load_bmn_style(annotations, video_info, features, clip_features, **loader_kwargs)
    return videos[train_subset] if include_train else None, videos[eval_subset]


def load_benchmark_ground_truth(
    dataset: str,
    annotations: str | os.PathLike,
    video_info: str | os.PathLike | None = None,
    *,
    duplicate_videos: Literal["error", "keep_last"] = "error",
    subset: str | None = None,
) -> dict[str, Any]:
    r"""
    The evaluation ground truth of a benchmark straight from its annotation file, as the official evaluator reads it.

    Unlike [`~zeetad_hf.data.to_ground_truth`] of a loaded dataset, segments are not clipped to the video and no video
    is dropped for a missing feature file, so the numbers are those of the raw files. THUMOS14 files are already in
    the ActivityNet format; ActivityNet's BMN JSON gets its subsets from the `video_info` CSV.

    Args:
        dataset (`str`):
            `"thumos14"` or `"activitynet"`.
        annotations (`str` or `os.PathLike`):
            The annotation file.
        video_info (`str` or `os.PathLike`, *optional*):
            ActivityNet's video information CSV (required for `"activitynet"`).
        duplicate_videos (`str`, *optional*, defaults to `"error"`):
            `"error"` raises a `ValueError` naming the video ids that occur more than once in a file (only the last
            entry of each would be kept); `"keep_last"` keeps the last entry of each and logs their count.
        subset (`str`, *optional*):
            Read this subset instead of the evaluation one (e.g. the training subset, `"Validation"` or
            `"training"`).

    Returns:
        `dict[str, Any]`: `{"database": {video_id: {"subset", "duration", "annotations": [{"label", "segment"}]}}}`
        with the videos of the evaluation subset (or `subset`) only.
    """
    if dataset not in BENCHMARKS:
        raise ValueError(f"`dataset` must be one of {sorted(BENCHMARKS)}, got {dataset!r}.")
    eval_subset = BENCHMARKS[dataset][1] if subset is None else subset
    if dataset == "thumos14":
        videos = _read_database(annotations, duplicate_videos)
    elif video_info is None:
        raise ValueError("ActivityNet needs `video_info`, the CSV that gives every video its subset.")
    else:
        data = _read_bmn_annotations(annotations, duplicate_videos)
        subsets = _read_video_subsets(video_info, duplicate_videos)
        videos = {
            video_id: {"subset": subsets[video_id], "duration": video["duration_second"], **video}
            for video_id, video in data.items()
            if video_id in subsets
        }
    database = {video_id: video for video_id, video in videos.items() if video["subset"] == eval_subset}
    return {"database": database}


__all__ = [
    "ACTIVITYNET_TIOU_THRESHOLDS",
    "BENCHMARKS",
    "FEATURE_EXTENSIONS",
    "THUMOS14_TIOU_THRESHOLDS",
    "VIDEO_FEATURES",
    "check_feature_files",
    "filter_to_classes",
    "load_activitynet_style",
    "load_bmn_style",
    "load_benchmark",
    "load_benchmark_ground_truth",
    "load_features",
    "read_feature_shape",
    "to_ground_truth",
]
