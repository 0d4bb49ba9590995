"""Atomic writes give files the permissions `open` gives them; JSON reading reports keys that a file repeats."""

import os
import stat

import pytest

from zeetad_hf.file_utils import atomic_write, read_json, repeated_json_keys, write_json_atomic


requires_posix_permissions = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits and umask")


def permissions(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@requires_posix_permissions
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002, 0o000])
def test_new_files_get_the_permissions_that_open_gives(tmp_path, umask):
    previous_umask = os.umask(umask)
    try:
        with open(tmp_path / "reference.txt", "w", encoding="utf-8") as handle:
            handle.write("written by open\n")
        write_json_atomic(tmp_path / "nested" / "atomic.json", {"a": 1})
        with atomic_write(tmp_path / "atomic.bin", "wb") as handle:
            handle.write(b"\x00\x01")
    finally:
        os.umask(previous_umask)
    expected = 0o666 & ~umask
    assert permissions(tmp_path / "reference.txt") == expected
    assert permissions(tmp_path / "nested" / "atomic.json") == expected
    assert permissions(tmp_path / "atomic.bin") == expected
    assert read_json(tmp_path / "nested" / "atomic.json", "path") == {"a": 1}
    assert (tmp_path / "atomic.bin").read_bytes() == b"\x00\x01"
    # no temporary file is left next to the results
    assert sorted(os.listdir(tmp_path)) == ["atomic.bin", "nested", "reference.txt"]
    assert os.listdir(tmp_path / "nested") == ["atomic.json"]


@requires_posix_permissions
@pytest.mark.parametrize("mode", [0o640, 0o600, 0o664, 0o604])
def test_a_replaced_file_keeps_its_permissions_as_with_open(tmp_path, mode):
    reference, replaced = tmp_path / "reference.txt", tmp_path / "replaced.txt"
    for path in (reference, replaced):
        path.write_text("old\n", encoding="utf-8")
        os.chmod(path, mode)
    previous_umask = os.umask(0o022)
    try:
        with open(reference, "w", encoding="utf-8") as handle:
            handle.write("new\n")
        with atomic_write(replaced) as handle:
            handle.write("new\n")
    finally:
        os.umask(previous_umask)
    assert permissions(replaced) == permissions(reference) == mode
    assert replaced.read_text(encoding="utf-8") == "new\n"


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("previous\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="interrupted"), atomic_write(path) as handle:
        handle.write("partial")
        raise RuntimeError("interrupted")
    assert path.read_text(encoding="utf-8") == "previous\n"
    assert os.listdir(tmp_path) == ["results.json"]


def test_read_json_reports_repeated_keys_and_keeps_the_last_value(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_text(
        '{"database": {"a": {"n": 1}, "b": {"n": 2}, "a": {"n": 3}, "a": {"n": 4}, "c": {"n": 5, "n": 6}}}',
        encoding="utf-8",
    )
    data = read_json(path, "annotation_path")
    assert data == {"database": {"a": {"n": 4}, "b": {"n": 2}, "c": {"n": 6}}}
    assert repeated_json_keys(data["database"]) == ["a"]
    assert repeated_json_keys(data["database"]["c"]) == ["n"]
    assert repeated_json_keys(data) == repeated_json_keys(data["database"]["b"]) == []
    assert repeated_json_keys({"a": 1}) == repeated_json_keys([1, 1]) == []


def test_read_json_errors_name_the_argument_and_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"`annotation_path` file not found: .*missing\.json"):
        read_json(tmp_path / "missing.json", "annotation_path")
    (tmp_path / "broken.json").write_text('{"database": ', encoding="utf-8")
    with pytest.raises(ValueError, match=r"`annotation_path` file .*broken\.json is not valid JSON"):
        read_json(tmp_path / "broken.json", "annotation_path")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ValueError, match=r"`predictions` file .*binary\.json is not a UTF-8 JSON file"):
        read_json(tmp_path / "binary.json", "predictions")
