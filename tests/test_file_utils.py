"""Atomic writes give files the permissions `open` gives them; JSON reading reports keys that a file repeats; a full
disk (a real one: a small tmpfs) gives an error that names the file and what was kept; folders are replaced whole and
what a killed write left is cleaned up."""

import errno
import json
import os
import stat
from pathlib import Path

import pytest
from mount_namespace import MOUNTS_AVAILABLE, MOUNTS_REASON, run_with_small_disk

from zeetad_hf.file_utils import (
    atomic_write,
    disk_full_error,
    is_disk_full,
    link_missing_entries,
    read_json,
    remove_interrupted_writes,
    repeated_json_keys,
    replace_directory,
    temporary_sibling,
    write_json_atomic,
)


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


# ---------------------------------------------------------------------------------------------------------------------
# A full disk: a real one, a small tmpfs in a private mount namespace (tests/mount_namespace.py)
# ---------------------------------------------------------------------------------------------------------------------

FULL_DISK_SCRIPT = """
import json, sys, torch
from zeetad_hf.file_utils import disk_full_error, is_disk_full, write_json_atomic
mount_point = sys.argv[1]
report = {}
write_json_atomic(f"{mount_point}/results.json", {"previous": True})
try:
    write_json_atomic(f"{mount_point}/results.json", {"values": list(range(200_000))})
except OSError as error:
    report["json"] = [str(error), error.errno]
report["kept"] = json.load(open(f"{mount_point}/results.json"))
report["entries"] = sorted(__import__("os").listdir(mount_point))
# torch's zip writer names no errno: the file system is asked
try:
    torch.save(torch.zeros(1_000_000), f"{mount_point}/tensor.pt")
except RuntimeError as error:
    report["torch"] = [str(error), is_disk_full(error, f"{mount_point}/tensor.pt")]
    report["torch_error"] = str(disk_full_error(error, f"{mount_point}/tensor.pt", "nothing"))
print(json.dumps(report))
"""


@pytest.mark.skipif(not MOUNTS_AVAILABLE, reason=MOUNTS_REASON)
def test_a_full_disk_names_the_file_and_what_was_kept(tmp_path):
    result = run_with_small_disk(tmp_path / "disk", "512k", FULL_DISK_SCRIPT, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    message, error_number = report["json"]
    path = tmp_path / "disk" / "results.json"
    assert message == f"No space left on device while writing {path}; kept: the previous {path}"
    assert error_number == errno.ENOSPC
    # the previous file is whole and the temporary file is gone
    assert report["kept"] == {"previous": True} and report["entries"] == ["results.json"]
    torch_message, detected = report["torch"]
    assert "inline_container" in torch_message and detected
    assert report["torch_error"].startswith(f"No space left on device while writing {tmp_path / 'disk' / 'tensor.pt'}")


def test_a_failed_write_on_a_disk_with_space_is_not_called_full(tmp_path):
    # the same torch error with plenty of space left is not a full disk (and an unrelated error never is)
    error = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    assert not is_disk_full(error, tmp_path / "tensor.pt")
    assert disk_full_error(ValueError("bad value"), tmp_path, "nothing") is None
    chained = RuntimeError("saving failed")
    chained.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert is_disk_full(chained, tmp_path)


# ---------------------------------------------------------------------------------------------------------------------
# Atomic folders
# ---------------------------------------------------------------------------------------------------------------------


def test_replace_directory_swaps_whole_folders_and_leaves_nothing_behind(tmp_path):
    final = tmp_path / "run"
    (final / "step_1").mkdir(parents=True)
    (final / "model.safetensors").write_text("old")
    (final / "step_1" / "optimizer.bin").write_text("state")
    staging = Path(temporary_sibling(final))
    staging.mkdir()
    (staging / "model.safetensors").write_text("new")
    # what a save carries over: hard links (the same file, no copy), never the temporary entries of a killed write
    (final / ".tmp-step_2").mkdir()
    (final / ".config.json.0123456789abcdef.tmp").write_text("partial")
    link_missing_entries(final, staging)
    assert sorted(os.listdir(staging)) == ["model.safetensors", "step_1"]
    assert os.path.samefile(staging / "step_1" / "optimizer.bin", final / "step_1" / "optimizer.bin")

    replace_directory(staging, final)
    assert (final / "model.safetensors").read_text() == "new"
    assert (final / "step_1" / "optimizer.bin").read_text() == "state"
    assert sorted(os.listdir(tmp_path)) == ["run"]
    # a new folder appears by a plain rename
    fresh = Path(temporary_sibling(tmp_path / "other"))
    fresh.mkdir()
    replace_directory(fresh, tmp_path / "other")
    assert sorted(os.listdir(tmp_path)) == ["other", "run"]


def test_remove_interrupted_writes_restores_a_folder_renamed_away_and_deletes_the_rest(tmp_path):
    final = tmp_path / "run"
    (final / ".tmp-step_4").mkdir(parents=True)
    (final / ".tmp-stale-best_model").mkdir()
    (final / ".tmp-stale-best_model" / "config.json").write_text("{}")
    (final / ".results.json.0123456789abcdef.tmp").write_text("partial")
    (final / "step_2").mkdir()
    Path(temporary_sibling(final)).mkdir()
    cleaned = remove_interrupted_writes(final)
    # best_model had been renamed away by a swap without RENAME_EXCHANGE and not replaced yet: it is put back
    assert sorted(os.listdir(final)) == ["best_model", "step_2"]
    assert (final / "best_model" / "config.json").read_text() == "{}"
    assert len(cleaned) == 4 and sorted(os.listdir(tmp_path)) == ["run"]
    # the output folder itself, renamed away: put back too
    os.replace(final, temporary_sibling(final, stale=True))
    assert remove_interrupted_writes(final) == [str(final)] and sorted(os.listdir(final)) == ["best_model", "step_2"]
    assert remove_interrupted_writes(tmp_path / "missing") == []
