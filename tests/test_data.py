"""Dataset loading from annotation + feature files, feature readers, and the zero-shot protocol helpers on datasets."""

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict, Features, List, Value
from safetensors.torch import save_file

from zeetad_hf.data import (
    VIDEO_FEATURES,
    filter_to_classes,
    load_activitynet_style,
    load_benchmark_ground_truth,
    load_bmn_style,
    load_features,
    to_ground_truth,
)
from zeetad_hf.evaluation import temporal_action_map
from zeetad_hf.segment_utils import grid_to_seconds, seconds_to_normalized_segments
from zeetad_hf.zero_shot_splits import load_zero_shot_split, restrict_ground_truth, restrict_to_seen


# The shared annotation files live next to the repository in the development workspace only; a clone has no copy.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
requires_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "annotations").is_dir(), reason=f"shared annotation files not found under {SHARED_DATA}"
)

LOGGER_NAME = "zeetad_hf.data"
FEATURE_DIM = 4

EXPECTED_FEATURES = Features(
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

# ActivityNet-format file in the THUMOS14 style: subsets "Validation" / "Test", per-video fps (absent for video_c).
THUMOS_STYLE = {
    "version": "test",
    "database": {
        "video_a": {
            "subset": "Validation",
            "duration": 20.0,
            "fps": 30.0,
            "annotations": [
                {"label": "HighJump", "segment": [1.0, 4.0], "segment(frames)": [30, 120], "label_id": 0},
                {"label": "LongJump", "segment": [-0.5, 2.5]},  # clipped to [0, 2.5]
            ],
        },
        "video_b": {
            "subset": "Test",
            "duration": 10.0,
            "fps": 25.0,
            "annotations": [
                {"label": "HighJump", "segment": [6.0, 12.0]},  # clipped to [6, 10]
                {"label": "PoleVault", "segment": [2.0, 3.0]},
            ],
        },
        "video_c": {
            "subset": "Validation",
            "duration": 8.0,
            "annotations": [{"label": "PoleVault", "segment": [0.5, 7.5]}],
        },
    },
}
THUMOS_UNITS = {"video_a": 150, "video_b": 60, "video_c": 16}

# BMN format: no subset in the JSON (it comes from the CSV), `duration_second`, an unlabelled "testing" video.
BMN_ANNOTATIONS = {
    "v_train": {
        "duration_second": 30.0,
        "duration_frame": 900,
        "feature_frame": 896,
        "annotations": [{"segment": [3.0, 12.0], "label": "Ballet"}, {"segment": [20.0, 31.0], "label": "Surfing"}],
    },
    "v_val": {
        "duration_second": 12.0,
        "duration_frame": 300,
        "feature_frame": 288,
        "annotations": [{"segment": [1.0, 5.0], "label": "Surfing"}],
    },
    "v_test": {"duration_second": 9.5, "duration_frame": 285, "feature_frame": 272, "annotations": []},
}
BMN_CSV_ROWS = [
    ("v_train", 900, 30.0, 30.0, 30.0, "training", 896),
    ("v_val", 300, 12.0, 25.0, 25.0, "validation", 288),
    ("v_test", 285, 9.5, 30.0, 30.0, "testing", 272),
]
BMN_UNITS = {"v_train": 192, "v_val": 192, "v_test": 100}


class _RunsCodeWhenUnpickled:
    """Unpickling calls `_mark_file(path)`: a stand-in for a malicious pickle."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return _mark_file, (self.marker,)


def _mark_file(path: str) -> None:
    Path(path).write_text("unpickled", encoding="utf-8")


def write_features(path: Path, array: np.ndarray, key: str | None = None) -> Path:
    """Write `array` in the format given by the extension of `path` (under `key` for dict-like formats)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, array)
    elif path.suffix in (".pt", ".pth"):
        tensor = torch.from_numpy(array)
        torch.save(tensor if key is None else {key: tensor}, path)
    else:
        save_file({key or "features": torch.from_numpy(array)}, path)
    return path


def write_feature_dir(directory: Path, units: dict[str, int], extension: str = ".npy") -> Path:
    rng = np.random.default_rng(0)
    for video_id, num_units in units.items():
        write_features(directory / f"{video_id}{extension}", rng.standard_normal((num_units, FEATURE_DIM), "float32"))
    return directory


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[tuple]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "numFrame", "seconds", "fps", "rfps", "subset", "featureFrame"])
        writer.writerows(rows)
    return path


@pytest.fixture
def thumos_files(tmp_path):
    """(annotation file, feature dir) in the ActivityNet/THUMOS14 format."""
    return write_json(tmp_path / "thumos.json", THUMOS_STYLE), write_feature_dir(tmp_path / "i3d", THUMOS_UNITS)


@pytest.fixture
def bmn_files(tmp_path):
    """(annotation file, CSV, feature dir) in the BMN format."""
    return (
        write_json(tmp_path / "anet_anno_action.json", BMN_ANNOTATIONS),
        write_csv(tmp_path / "anet_video_info.csv", BMN_CSV_ROWS),
        write_feature_dir(tmp_path / "tsp", BMN_UNITS),
    )


@pytest.fixture
def data_logs(caplog):
    """caplog at INFO for this module's logger, which propagates to the root logger caplog listens on."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    return caplog


# ---------------------------------------------------------------------------------------------------------------------
# load_features
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "file_name, key",
    [
        ("a.npy", None),
        ("a.pt", None),
        ("a.pth", None),
        ("a.pt", "only_tensor"),
        ("a.safetensors", "only_tensor"),
        ("a.safetensors", "features"),
    ],
)
def test_load_features_formats(tmp_path, file_name, key):
    array = np.arange(12, dtype=np.float64).reshape(6, 2)
    features = load_features(write_features(tmp_path / file_name, array, key))
    assert features.dtype == np.float32 and features.shape == (6, 2)
    np.testing.assert_array_equal(features, array.astype(np.float32))


def test_load_features_reads_the_features_key_of_multi_tensor_files(tmp_path):
    features, other = torch.ones(3, 2), torch.zeros(5, 5)
    torch.save({"features": features, "mask": other}, tmp_path / "a.pt")
    save_file({"features": features, "mask": other}, tmp_path / "a.safetensors")
    for file_name in ("a.pt", "a.safetensors"):
        np.testing.assert_array_equal(load_features(tmp_path / file_name), np.ones((3, 2), np.float32))


def test_load_features_converts_half_precision(tmp_path):
    save_file({"features": torch.full((4, 3), 0.5, dtype=torch.bfloat16)}, tmp_path / "a.safetensors")
    np.save(tmp_path / "b.npy", np.full((4, 3), 0.5, dtype=np.float16))
    for file_name in ("a.safetensors", "b.npy"):
        features = load_features(tmp_path / file_name)
        assert features.dtype == np.float32
        np.testing.assert_array_equal(features, np.full((4, 3), 0.5, np.float32))


def test_load_features_pt_is_loaded_with_weights_only(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pt"
    torch.save({"features": torch.ones(2, 2), "payload": _RunsCodeWhenUnpickled(str(marker))}, path)
    with pytest.raises(ValueError, match=r"evil\.pt.*UnpicklingError"):
        load_features(path)
    assert not marker.exists()
    # the file really runs code under a full unpickler, so the check above is meaningful
    torch.load(path, weights_only=False)
    assert marker.read_text(encoding="utf-8") == "unpickled"


def _write_bad_file(path: Path, kind: str) -> Path:
    if kind == "1-D":
        np.save(path, np.ones(5, np.float32))
    elif kind == "3-D":
        torch.save(torch.ones(2, 3, 4), path)
    elif kind == "empty":
        save_file({"features": torch.ones(0, 4)}, path)
    elif kind == "nan":
        np.save(path, np.array([[0.0, np.nan], [1.0, 2.0]], np.float32))
    elif kind == "inf":
        torch.save(torch.tensor([[0.0, float("inf")]]), path)
    elif kind == "object-array":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "garbage":
        path.write_bytes(b"not a feature file at all")
    elif kind == "two-tensors":
        torch.save({"rgb": torch.ones(2, 2), "flow": torch.ones(2, 2)}, path)
    elif kind == "list":
        torch.save([torch.ones(2, 2)], path)
    elif kind == "bool":
        np.save(path, np.ones((2, 2), bool))
    else:
        path.write_text("1,2\n3,4\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "file_name, kind, message",
    [
        ("a.npy", "1-D", r"expected a 2-D .* got shape \(5,\)"),
        ("a.pt", "3-D", r"got shape \(2, 3, 4\)"),
        ("a.safetensors", "empty", r"empty array of shape \(0, 4\)"),
        ("a.npy", "nan", r"1 non-finite"),
        ("a.pt", "inf", r"1 non-finite"),
        ("a.npy", "object-array", r"allow_pickle=False"),
        # numpy takes a file without the .npy magic for a pickle, which allow_pickle=False refuses
        ("a.npy", "garbage", r"pickled"),
        ("a.pt", "garbage", r"cannot be read"),
        ("a.safetensors", "garbage", r"cannot be read"),
        ("a.pt", "two-tensors", r"holds 2 tensors \['flow', 'rgb'\]"),
        ("a.pt", "list", r"expected a tensor or a dict of tensors, got list"),
        ("a.npy", "bool", r"expected real-valued features, got dtype bool"),
        ("a.csv", "csv", r"unknown extension '\.csv'"),
    ],
)
def test_load_features_rejects_bad_files(tmp_path, file_name, kind, message):
    path = _write_bad_file(tmp_path / file_name, kind)
    with pytest.raises(ValueError, match=message) as error:
        load_features(path)
    assert str(path) in str(error.value)


def test_load_features_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.npy"):
        load_features(tmp_path / "absent.npy")


# ---------------------------------------------------------------------------------------------------------------------
# load_activitynet_style
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extension", [".npy", ".pt", ".safetensors"])
def test_load_activitynet_style_schema_and_rows(tmp_path, extension):
    annotation_path = write_json(tmp_path / "thumos.json", THUMOS_STYLE)
    feature_dir = write_feature_dir(tmp_path / "i3d", THUMOS_UNITS, extension)
    dataset = load_activitynet_style(annotation_path, feature_dir, feature_extension=extension, default_fps=30.0)

    assert isinstance(dataset, DatasetDict)
    assert list(dataset) == ["Validation", "Test"]  # first appearance in the file, names as given
    for split in dataset.values():
        assert split.features == EXPECTED_FEATURES == VIDEO_FEATURES
    assert list(dataset["Validation"]["video_id"]) == ["video_a", "video_c"]
    video_a, video_c = dataset["Validation"]
    (video_b,) = dataset["Test"]
    assert video_a == {
        "video_id": "video_a",
        "subset": "Validation",
        "duration": 20.0,
        "fps": 30.0,
        "feature_stride": 4.0,
        "window_size": 16.0,
        "feature_path": str(feature_dir / f"video_a{extension}"),
        "clip_feature_path": None,
        "num_units": 150,
        "annotations": [
            {"label": "HighJump", "start": 1.0, "end": 4.0},
            {"label": "LongJump", "start": 0.0, "end": 2.5},
        ],
    }
    assert (video_b["fps"], video_b["num_units"]) == (25.0, 60)
    assert video_b["annotations"][0] == {"label": "HighJump", "start": 6.0, "end": 10.0}
    assert (video_c["fps"], video_c["num_units"]) == (30.0, 16)  # default_fps: no "fps" in the file
    np.testing.assert_array_equal(load_features(video_a["feature_path"]).shape, (150, FEATURE_DIM))


def _write_single_video(tmp_path: Path, extension: str, writer) -> tuple[Path, Path]:
    data = {"database": {"v": {"subset": "Test", "duration": 4.0, "fps": 30.0, "annotations": []}}}
    feature_dir = tmp_path / "features"
    feature_dir.mkdir()
    writer(feature_dir / f"v{extension}")
    return write_json(tmp_path / "one.json", data), feature_dir


def _npy_writer(version: tuple[int, int]):
    def write(path: Path) -> None:
        with path.open("wb") as handle:
            np.lib.format.write_array(handle, np.ones((7, 3)), version=version)

    return write


@pytest.mark.parametrize(
    "extension, writer",
    [
        (".npy", _npy_writer((1, 0))),
        (".npy", _npy_writer((2, 0))),
        (".npy", _npy_writer((3, 0))),
        (".pt", lambda path: torch.save({"features": torch.ones(7, 3), "mask": torch.ones(7)}, path)),
        # torch < 1.6 format, which cannot be memory-mapped
        (".pth", lambda path: torch.save(torch.ones(7, 3), path, _use_new_zipfile_serialization=False)),
        (".safetensors", lambda path: save_file({"features": torch.ones(7, 3, dtype=torch.float16)}, path)),
    ],
)
def test_num_units_is_read_from_every_format(tmp_path, extension, writer):
    annotation_path, feature_dir = _write_single_video(tmp_path, extension, writer)
    dataset = load_activitynet_style(annotation_path, feature_dir, feature_extension=extension)
    assert dataset["Test"][0]["num_units"] == 7


@pytest.mark.parametrize(
    "extension, writer, message",
    [
        (".npy", lambda path: np.save(path, np.ones(5)), r"got shape \(5,\)"),
        (".npy", lambda path: np.save(path, np.array([[None]]), allow_pickle=True), "got dtype object"),
        (".pt", lambda path: torch.save(torch.ones(2, 3, 4), path), r"got shape \(2, 3, 4\)"),
        (".safetensors", lambda path: save_file({"features": torch.ones(0, 3)}, path), "empty array"),
    ],
)
def test_bad_feature_files_fail_at_load_time(tmp_path, extension, writer, message):
    annotation_path, feature_dir = _write_single_video(tmp_path, extension, writer)
    with pytest.raises(ValueError, match=message) as error:
        load_activitynet_style(annotation_path, feature_dir, feature_extension=extension)
    assert str(feature_dir / f"v{extension}") in str(error.value)


def test_clipping_is_counted_in_a_warning(thumos_files, data_logs):
    dataset = load_activitynet_style(*thumos_files, default_fps=30.0)
    assert "Clipped 2 segments reaching outside [0, duration] in 2 videos" in data_logs.text
    assert "Subset 'Validation': 2 videos, 3 action instances." in data_logs.text
    assert sum(len(annotations) for annotations in dataset["Test"]["annotations"]) == 2


def test_fps_override_and_missing_fps(thumos_files):
    with pytest.raises(ValueError, match=r"1 videos have no frame rate .*video_c.*`fps` or `default_fps`"):
        load_activitynet_style(*thumos_files)
    dataset = load_activitynet_style(*thumos_files, fps=2.0, feature_stride=1.0, window_size=1.0)
    assert set(dataset["Validation"]["fps"]) == set(dataset["Test"]["fps"]) == {2.0}
    assert set(dataset["Test"]["feature_stride"]) == set(dataset["Test"]["window_size"]) == {1.0}


@pytest.mark.parametrize(
    "segment, shown",
    [
        ([5.0, 5.0], r"video_b: PoleVault \[5\.0, 5\.0\] \(duration 10\.0\)"),
        ([6.0, 4.0], r"video_b: PoleVault \[6\.0, 4\.0\]"),
        ([11.0, 12.0], r"video_b: PoleVault \[11\.0, 12\.0\]"),  # after the end: empty once clipped
    ],
)
def test_start_not_before_end_is_rejected(tmp_path, segment, shown, data_logs):
    data = json.loads(json.dumps(THUMOS_STYLE))
    data["database"]["video_b"]["annotations"][1]["segment"] = segment
    annotation_path = write_json(tmp_path / "bad.json", data)
    feature_dir = write_feature_dir(tmp_path / "i3d", THUMOS_UNITS)
    with pytest.raises(ValueError, match=rf"1 segments in 1 videos have start >= end .*{shown}.*invalid_segments"):
        load_activitynet_style(annotation_path, feature_dir, default_fps=30.0)

    dataset = load_activitynet_style(annotation_path, feature_dir, default_fps=30.0, invalid_segments="drop")
    assert "Dropped 1 segments with start >= end" in data_logs.text
    assert dataset["Test"][0]["annotations"] == [{"label": "HighJump", "start": 6.0, "end": 10.0}]


def test_missing_feature_files_are_reported_or_skipped(thumos_files, data_logs):
    annotation_path, feature_dir = thumos_files
    (feature_dir / "video_c.npy").unlink()
    with pytest.raises(ValueError, match=r"1 videos have no \.npy file in `feature_dir`.*\['video_c'\].*skip"):
        load_activitynet_style(annotation_path, feature_dir, default_fps=30.0)

    dataset = load_activitynet_style(annotation_path, feature_dir, default_fps=30.0, missing_features="skip")
    assert "Skipped 1 of 3 videos without feature files" in data_logs.text
    assert list(dataset["Validation"]["video_id"]) == ["video_a"]

    for video_id in THUMOS_UNITS:
        (feature_dir / f"{video_id}.npy").unlink(missing_ok=True)
    with pytest.raises(ValueError, match="No video left to load"):
        load_activitynet_style(annotation_path, feature_dir, default_fps=30.0, missing_features="skip")


def test_unannotated_feature_files_are_counted(thumos_files, data_logs):
    annotation_path, feature_dir = thumos_files
    write_feature_dir(feature_dir, {"video_x": 3, "video_y": 3})
    (feature_dir / "notes.txt").write_text("ignored: other extension", encoding="utf-8")
    dataset = load_activitynet_style(annotation_path, feature_dir, default_fps=30.0)
    assert "2 .npy files in" in data_logs.text and "['video_x.npy', 'video_y.npy']" in data_logs.text
    assert dataset.num_rows == {"Validation": 2, "Test": 1}


def test_second_feature_source(thumos_files, tmp_path):
    annotation_path, feature_dir = thumos_files
    clip_dir = write_feature_dir(tmp_path / "clip", {"video_a": 40, "video_b": 20})
    with pytest.raises(ValueError, match=r"no \.npy file in `clip_feature_dir`.*\['video_c'\]"):
        load_activitynet_style(annotation_path, feature_dir, clip_dir, default_fps=30.0)

    dataset = load_activitynet_style(annotation_path, feature_dir, clip_dir, default_fps=30.0, missing_features="skip")
    video_a = dataset["Validation"][0]
    assert video_a["clip_feature_path"] == str(clip_dir / "video_a.npy")
    assert video_a["num_units"] == 150  # from the localization features
    assert dataset.num_rows == {"Validation": 1, "Test": 1}


def test_subsets_argument(thumos_files):
    dataset = load_activitynet_style(*thumos_files, default_fps=30.0, subsets=["Test"])
    assert list(dataset) == ["Test"]
    with pytest.raises(ValueError, match=r"\['test'\] not found .*available: \['Test', 'Validation'\]"):
        load_activitynet_style(*thumos_files, default_fps=30.0, subsets=["test"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"missing_features": "ignore"}, r"`missing_features` must be one of \('error', 'skip'\)"),
        ({"invalid_segments": "clip"}, r"`invalid_segments` must be one of \('error', 'drop'\)"),
        ({"feature_extension": ".h5"}, r"`feature_extension` must be one of"),
        ({"fps": 0.0}, r"`fps` must be a positive number"),
        ({"feature_stride": None}, r"must both be numbers, or both None"),
        ({"window_size": -1.0}, r"`window_size` must be a non-negative number"),
        ({"subsets": "Test"}, r"not the string 'Test'"),
    ],
)
def test_invalid_arguments(thumos_files, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_activitynet_style(*thumos_files, **{"default_fps": 30.0, **kwargs})


@pytest.mark.parametrize(
    "video, message",
    [
        ({"subset": "Test", "duration": 0.0, "annotations": []}, r"'video_z': field \"duration\" must be a positive"),
        ({"duration": 5.0, "annotations": []}, r"'video_z': field \"subset\""),
        ({"subset": "Test", "duration": 5.0}, r"'video_z': field \"annotations\" must be a list"),
        (
            {"subset": "Test", "duration": 5.0, "annotations": [{"label": "A", "segment": [1.0]}]},
            r"'video_z', annotation 0: field \"segment\"",
        ),
        (
            {"subset": "Test", "duration": 5.0, "annotations": [{"segment": [1.0, 2.0]}]},
            r"'video_z', annotation 0: field \"label\"",
        ),
    ],
)
def test_malformed_annotation_files(tmp_path, video, message):
    annotation_path = write_json(tmp_path / "bad.json", {"database": {"video_z": video}})
    with pytest.raises(ValueError, match=message):
        load_activitynet_style(annotation_path, tmp_path, default_fps=30.0)


def json_object_text(entries: list[tuple[str, object]]) -> str:
    """A JSON object with these (key, value) entries in order: unlike `json.dumps(dict)`, keys may repeat."""
    return "{" + ", ".join(f"{json.dumps(key)}: {json.dumps(value)}" for key, value in entries) + "}"


def test_a_video_id_given_twice_is_an_error_unless_the_last_entry_is_kept(tmp_path, data_logs):
    # video_b twice: first an entry with PoleVault only, then the original one (the one json.load keeps)
    first_b = {"subset": "Test", "duration": 10.0, "annotations": [{"label": "PoleVault", "segment": [2.0, 3.0]}]}
    entries = [*THUMOS_STYLE["database"].items(), ("video_b", first_b)]
    entries[1], entries[-1] = entries[-1], entries[1]
    annotation_path = tmp_path / "thumos14.json"
    annotation_path.write_text('{"database": ' + json_object_text(entries) + "}", encoding="utf-8")
    feature_dir = write_feature_dir(tmp_path / "i3d", THUMOS_UNITS)

    with pytest.raises(
        ValueError, match=r"thumos14\.json.*1 video ids occur more than once.*\['video_b'\].*keep_last"
    ):
        load_activitynet_style(annotation_path, feature_dir, default_fps=30.0)
    with pytest.raises(ValueError, match=r"thumos14\.json.*\['video_b'\]"):
        load_benchmark_ground_truth("thumos14", annotation_path)

    dataset = load_activitynet_style(annotation_path, feature_dir, default_fps=30.0, duplicate_videos="keep_last")
    assert "1 video ids occur more than once; kept the last entry of each (e.g. ['video_b'])" in data_logs.text
    assert [item["label"] for item in dataset["Test"][0]["annotations"]] == ["HighJump", "PoleVault"]
    ground_truth = load_benchmark_ground_truth("thumos14", annotation_path, duplicate_videos="keep_last")
    assert list(ground_truth["database"]) == ["video_b"]
    with pytest.raises(ValueError, match=r"`duplicate_videos` must be one of \('error', 'keep_last'\)"):
        load_activitynet_style(annotation_path, feature_dir, default_fps=30.0, duplicate_videos="first")


def test_bmn_video_id_given_twice_in_the_json_or_the_csv(tmp_path, bmn_files):
    annotation_path, csv_path, feature_dir = bmn_files
    repeated_json = tmp_path / "repeated.json"
    repeated_json.write_text(
        json_object_text([*BMN_ANNOTATIONS.items(), ("v_val", BMN_ANNOTATIONS["v_val"])]), encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"`annotation_path` .*repeated\.json: 1 video ids .*\['v_val'\]"):
        load_bmn_style(repeated_json, csv_path, feature_dir)
    assert load_bmn_style(repeated_json, csv_path, feature_dir, duplicate_videos="keep_last").num_rows == {
        "training": 1,
        "validation": 1,
        "testing": 1,
    }

    # the same video in two subsets: which one is meant cannot be guessed
    repeated_csv = write_csv(
        tmp_path / "repeated.csv", [*BMN_CSV_ROWS, ("v_val", 300, 12.0, 25.0, 25.0, "testing", 288)]
    )
    with pytest.raises(ValueError, match=r"`video_info_csv` .*repeated\.csv: 1 video ids .*\['v_val'\]"):
        load_bmn_style(annotation_path, repeated_csv, feature_dir)
    with pytest.raises(ValueError, match=r"repeated\.csv: 1 video ids .*\['v_val'\]"):
        load_benchmark_ground_truth("activitynet", annotation_path, repeated_csv)
    kept = load_bmn_style(annotation_path, repeated_csv, feature_dir, duplicate_videos="keep_last")
    assert kept.num_rows == {"training": 1, "testing": 2}


def test_missing_paths(tmp_path, thumos_files):
    with pytest.raises(FileNotFoundError, match="`annotation_path` file not found"):
        load_activitynet_style(tmp_path / "absent.json", tmp_path)
    with pytest.raises(FileNotFoundError, match="`feature_dir` is not a directory"):
        load_activitynet_style(thumos_files[0], tmp_path / "absent", default_fps=30.0)


# ---------------------------------------------------------------------------------------------------------------------
# load_bmn_style
# ---------------------------------------------------------------------------------------------------------------------


def test_load_bmn_style_subsets_from_csv_and_tiling_units(bmn_files):
    dataset = load_bmn_style(*bmn_files, invalid_segments="drop")
    assert list(dataset) == ["training", "validation", "testing"]
    for split in dataset.values():
        assert split.features == EXPECTED_FEATURES
    train = dataset["training"][0]
    assert (train["video_id"], train["subset"], train["duration"], train["fps"]) == ("v_train", "training", 30.0, 15.0)
    assert train["annotations"] == [
        {"label": "Ballet", "start": 3.0, "end": 12.0},
        {"label": "Surfing", "start": 20.0, "end": 30.0},
    ]
    assert dataset["testing"][0]["annotations"] == []
    for split in dataset.values():
        row = split[0]
        # resized features: units tile the video, so the grid edges are 0 and the duration in seconds
        assert row["feature_stride"] == row["window_size"] == pytest.approx(row["duration"] * 15.0 / row["num_units"])
        edges = grid_to_seconds(
            torch.tensor([-0.5, row["num_units"] - 0.5], dtype=torch.float64),
            row["fps"],
            row["feature_stride"],
            row["window_size"],
        )
        torch.testing.assert_close(edges, torch.tensor([0.0, row["duration"]], dtype=torch.float64))
    normalized = seconds_to_normalized_segments(
        torch.tensor([[3.0, 12.0]], dtype=torch.float64),
        train["num_units"],
        train["fps"],
        train["feature_stride"],
        train["window_size"],
    )
    torch.testing.assert_close(normalized, torch.tensor([[0.1, 0.4]], dtype=torch.float64))


def test_load_bmn_style_fixed_grid(bmn_files):
    dataset = load_bmn_style(*bmn_files, fps=2.0, feature_stride=1.0, window_size=1.0)
    assert {(row["fps"], row["feature_stride"], row["window_size"]) for row in dataset["validation"]} == {
        (2.0, 1.0, 1.0)
    }


def test_load_bmn_style_csv_and_json_mismatch(tmp_path, bmn_files, data_logs):
    annotation_path, _, feature_dir = bmn_files
    extra_row = write_csv(tmp_path / "extra.csv", [*BMN_CSV_ROWS, ("v_unlabelled", 10, 1.0, 10.0, 10.0, "testing", 0)])
    dataset = load_bmn_style(annotation_path, extra_row, feature_dir)
    assert "1 videos of `video_info_csv` have no entry in `annotation_path`" in data_logs.text
    assert dataset.num_rows == {"training": 1, "validation": 1, "testing": 1}

    missing_row = write_csv(tmp_path / "missing.csv", BMN_CSV_ROWS[:2])
    with pytest.raises(ValueError, match=r"1 videos of `annotation_path` have no row .*\['v_test'\]"):
        load_bmn_style(annotation_path, missing_row, feature_dir)

    (tmp_path / "columns.csv").write_text("video,seconds\nv_train,30.0\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"missing columns \['subset'\]"):
        load_bmn_style(annotation_path, tmp_path / "columns.csv", feature_dir)


# ---------------------------------------------------------------------------------------------------------------------
# Zero-shot protocol helpers
# ---------------------------------------------------------------------------------------------------------------------


def test_filter_to_classes_training_and_evaluation(thumos_files, data_logs):
    dataset = load_activitynet_style(*thumos_files, default_fps=30.0)
    seen, unseen = ["HighJump", "LongJump"], ["PoleVault"]

    train = filter_to_classes(dataset["Validation"], seen, drop_empty=True, excluded_classes=unseen)
    assert train.features == VIDEO_FEATURES
    assert list(train["video_id"]) == ["video_a"]  # video_c only holds PoleVault
    assert "Kept 2 of 3 annotations of 2 classes and 1 of 2 videos (dropped 1 videos" in data_logs.text

    evaluation = filter_to_classes(dataset["Test"], unseen, drop_empty=False, excluded_classes=seen)
    assert list(evaluation["video_id"]) == ["video_b"]
    assert evaluation[0]["annotations"] == [{"label": "PoleVault", "start": 2.0, "end": 3.0}]

    kept_all_videos = filter_to_classes(dataset, ["Diving"], drop_empty=False, excluded_classes=seen + unseen)
    assert isinstance(kept_all_videos, DatasetDict) and kept_all_videos.num_rows == {"Validation": 2, "Test": 1}
    assert all(annotations == [] for annotations in kept_all_videos["Validation"]["annotations"])
    assert "1 of 1 classes occur in no annotation: ['Diving']" in data_logs.text

    with pytest.raises(ValueError, match="not the string"):
        filter_to_classes(dataset, "HighJump", drop_empty=True)
    with pytest.raises(ValueError, match="`excluded_classes` must be an iterable of class names, not the string"):
        filter_to_classes(dataset, seen, drop_empty=True, excluded_classes="PoleVault")
    with pytest.raises(ValueError, match=r"must be disjoint; both hold \['HighJump'\]"):
        filter_to_classes(dataset, seen, drop_empty=True, excluded_classes=["HighJump", "PoleVault"])
    with pytest.raises(ValueError, match=r"`unknown_labels` must be one of \('error', 'drop'\)"):
        filter_to_classes(dataset, seen, drop_empty=True, excluded_classes=unseen, unknown_labels="ignore")


def test_a_label_in_no_class_list_is_an_error_unless_dropped(tmp_path, data_logs):
    data = json.loads(json.dumps(THUMOS_STYLE))
    # a misspelt seen class in a training video and in a test video
    data["database"]["video_a"]["annotations"][0]["label"] = "HighJmp"
    data["database"]["video_b"]["annotations"][0]["label"] = "HighJmp"
    dataset = load_activitynet_style(
        write_json(tmp_path / "typo.json", data), write_feature_dir(tmp_path / "i3d", THUMOS_UNITS), default_fps=30.0
    )
    seen, unseen = ["HighJump", "LongJump"], ["PoleVault"]
    with pytest.raises(
        ValueError,
        match=r"1 annotations in 1 videos .*neither `classes` nor `excluded_classes`: 'HighJmp' in 1 videos "
        r"\(e\.g\. \['video_a'\]\).*misspelling.*unknown_labels=\"drop\"",
    ):
        filter_to_classes(dataset["Validation"], seen, drop_empty=True, excluded_classes=unseen)
    with pytest.raises(ValueError, match=r"'HighJmp' in 1 videos \(e\.g\. \['video_b'\]\)"):
        filter_to_classes(dataset["Test"], unseen, drop_empty=False, excluded_classes=seen)
    # without `excluded_classes` every annotation outside `classes` is in no class list
    with pytest.raises(ValueError, match=r"2 annotations in 2 videos have one of 2 labels .*'HighJmp'.*'PoleVault'"):
        filter_to_classes(dataset["Validation"], seen, drop_empty=True)

    train = filter_to_classes(
        dataset["Validation"], seen, drop_empty=True, excluded_classes=unseen, unknown_labels="drop"
    )
    assert train[0]["annotations"] == [{"label": "LongJump", "start": 0.0, "end": 2.5}]
    assert "Dropped 1 annotations in 1 videos with one of 1 labels in neither `classes` nor" in data_logs.text
    assert "'HighJmp' in 1 videos (e.g. ['video_a'])" in data_logs.text


def test_to_ground_truth_matches_the_dict_helpers_and_scores_perfect_predictions(thumos_files):
    dataset = load_activitynet_style(*thumos_files, default_fps=30.0)
    ground_truth = to_ground_truth(dataset)
    assert ground_truth["database"]["video_b"] == {
        "subset": "Test",
        "duration": 10.0,
        "annotations": [
            {"label": "HighJump", "segment": [6.0, 10.0]},
            {"label": "PoleVault", "segment": [2.0, 3.0]},
        ],
    }
    # the dataset helpers and the ground-truth dict helpers select the same instances
    unseen, seen = ["PoleVault"], ["HighJump", "LongJump"]
    assert to_ground_truth(
        filter_to_classes(dataset, unseen, drop_empty=False, excluded_classes=seen)
    ) == restrict_ground_truth(ground_truth, unseen)
    assert to_ground_truth(
        filter_to_classes(dataset, seen, drop_empty=True, excluded_classes=unseen)
    ) == restrict_to_seen(ground_truth, seen)

    for subset, classes in (
        ("Validation", ["HighJump", "LongJump", "PoleVault"]),
        ("Test", ["HighJump", "PoleVault"]),
    ):
        # predictions on videos outside the evaluated subset would count as false positives, as officially
        predictions = {
            "results": {
                video_id: [
                    {"label": item["label"], "score": 1.0, "segment": item["segment"]} for item in video["annotations"]
                ]
                for video_id, video in ground_truth["database"].items()
                if video["subset"] == subset
            }
        }
        result = temporal_action_map(ground_truth, predictions, tiou_thresholds=[0.5, 0.95], subset=subset)
        assert result["mAP"] == [1.0, 1.0]
        assert sorted(result["per_class_ap"]) == classes

    duplicated = DatasetDict({"a": dataset["Test"], "b": dataset["Test"]})
    with pytest.raises(ValueError, match="'video_b' occurs more than once"):
        to_ground_truth(duplicated)


def test_helpers_accept_a_plain_dataset():
    dataset = Dataset.from_dict(
        {
            "video_id": ["v"],
            "subset": ["Test"],
            "duration": [5.0],
            "annotations": [[{"label": "A", "start": 1.0, "end": 2.0}, {"label": "B", "start": 2.0, "end": 3.0}]],
        }
    )
    filtered = filter_to_classes(dataset, {"B"}, drop_empty=True, excluded_classes={"A"})
    assert to_ground_truth(filtered) == {
        "database": {"v": {"subset": "Test", "duration": 5.0, "annotations": [{"label": "B", "segment": [2.0, 3.0]}]}}
    }


# ---------------------------------------------------------------------------------------------------------------------
# The real annotation files (protocol notes, section 6)
# ---------------------------------------------------------------------------------------------------------------------


def _all_classes(dataset: str) -> set[str]:
    seen, unseen = load_zero_shot_split(dataset, "75_25", 0)
    return set(seen) | set(unseen)


@requires_shared_data
def test_real_thumos14_file(tmp_path, data_logs):
    annotation_path = SHARED_DATA / "annotations" / "thumos14.json"
    raw = json.loads(annotation_path.read_text(encoding="utf-8"))["database"]
    validation_ids = [video_id for video_id, video in raw.items() if video["subset"] == "Validation"][:2]
    test_ids = [video_id for video_id, video in raw.items() if video["subset"] == "Test"][:2]
    odd_fps_id = next(video_id for video_id, video in raw.items() if video["fps"] == 29.97)
    # video_test_0000270 has 22 HammerThrow segments annotated after its end (176.25 s)
    chosen = [*validation_ids, *test_ids, odd_fps_id, "video_test_0000270"]
    feature_dir = write_feature_dir(tmp_path / "i3d", dict.fromkeys(chosen, 8))

    with pytest.raises(
        ValueError, match=r"30 segments in 5 videos have start >= end .*video_test_0000270.*video_validation_0000856"
    ):
        load_activitynet_style(annotation_path, feature_dir, missing_features="skip")
    dataset = load_activitynet_style(annotation_path, feature_dir, missing_features="skip", invalid_segments="drop")

    assert "Clipped 30 segments reaching outside [0, duration] in 5 videos" in data_logs.text
    assert "Dropped 30 segments with start >= end" in data_logs.text
    assert f"Skipped {412 - len(chosen)} of 412 videos without feature files" in data_logs.text
    assert set(dataset) == {"Validation", "Test"}
    classes = _all_classes("thumos14")
    assert len(classes) == 20
    for subset, split in dataset.items():
        for row in split:
            video = raw[row["video_id"]]
            assert row["subset"] == video["subset"] == subset
            assert row["video_id"].startswith({"Validation": "video_validation_", "Test": "video_test_"}[subset])
            assert (row["duration"], row["fps"], row["num_units"]) == (video["duration"], video["fps"], 8)
            assert {annotation["label"] for annotation in row["annotations"]} <= classes
            assert all(0 <= item["start"] < item["end"] <= row["duration"] for item in row["annotations"])
            num_dropped = 22 if row["video_id"] == "video_test_0000270" else 0
            assert len(row["annotations"]) == len(video["annotations"]) - num_dropped


@requires_shared_data
def test_real_activitynet_files(tmp_path, data_logs):
    annotation_path = SHARED_DATA / "annotations" / "anet_anno_action.json"
    csv_path = SHARED_DATA / "annotations" / "anet_video_info.csv"
    raw = json.loads(annotation_path.read_text(encoding="utf-8"))
    with csv_path.open(encoding="utf-8", newline="") as handle:
        subsets = {row["video"]: row["subset"] for row in csv.DictReader(handle)}
    chosen = [next(video_id for video_id, subset in subsets.items() if subset == name) for name in subsets.values()]
    chosen = [*dict.fromkeys(chosen), "v_6kgJx6ahgq0"]  # one video per subset + a zero-length validation segment
    feature_dir = write_feature_dir(tmp_path / "tsp", dict.fromkeys(chosen, 192))

    dataset = load_bmn_style(annotation_path, csv_path, feature_dir, missing_features="skip", invalid_segments="drop")

    assert "Clipped 215 segments reaching outside [0, duration]" in data_logs.text
    assert "Dropped 12 segments with start >= end" in data_logs.text
    assert f"Skipped {19_228 - len(chosen)} of 19228 videos without feature files" in data_logs.text
    assert list(dataset) == ["training", "validation", "testing"]
    classes = _all_classes("activitynet")
    assert len(classes) == 200
    for subset, split in dataset.items():
        for row in split:
            assert row["subset"] == subsets[row["video_id"]] == subset
            assert row["duration"] == raw[row["video_id"]]["duration_second"]
            assert {annotation["label"] for annotation in row["annotations"]} <= classes
            assert row["feature_stride"] * row["num_units"] == pytest.approx(row["duration"] * row["fps"])
    assert dataset["testing"][0]["annotations"] == []
    zero_length = dataset["validation"].filter(lambda row: row["video_id"] == "v_6kgJx6ahgq0")[0]
    assert len(zero_length["annotations"]) == len(raw["v_6kgJx6ahgq0"]["annotations"]) - 1
