"""File helpers: atomic writes of files and folders (a reader sees either the old file or folder or the complete new
one, never a partial one), clear errors for a full disk, checks run before long work (a writable output folder, a
complete model folder), and JSON reading that keeps track of repeated keys (which `json.load` silently collapses to
the last one)."""

import ctypes
import errno
import functools
import json
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from safetensors import SafetensorError, safe_open


# Attempts at a fresh temporary name before giving up (each name has 64 random bits: a clash means something is wrong).
_TEMPORARY_NAME_ATTEMPTS = 100
# Name prefix of the temporary folders of atomic folder writes (`.tmp-<name>`, and `.tmp-stale-<name>` for the folder
# being replaced); such names are never published, and [`remove_interrupted_writes`] deletes them.
TEMPORARY_PREFIX = ".tmp-"
_STALE_PREFIX = f"{TEMPORARY_PREFIX}stale-"
# The temporary file of [`atomic_write`] for `name`: `.<name>.<16 hex digits>.tmp`.
_TEMPORARY_FILE_PATTERN = re.compile(r"\..+\.[0-9a-f]{16}\.tmp")
# errno values of a full disk (ENOSPC) and of an exhausted quota (EDQUOT).
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# torch's zip writer reports a failed write without its errno; below this much free space it was the disk.
_LOW_SPACE_BYTES = 1 << 20
# Files a saved ZEETAD processor consists of (`ZeetadProcessor.save_pretrained`), and those of a tokenizer.
PROCESSOR_FILES = ("processor_config.json", "tokenizer_config.json")
TOKENIZER_FILES = ("tokenizer_config.json",)
# Top-level weight files of a saved model, single-file or sharded (with their index).
_WEIGHTS_PATTERN = re.compile(r".+\.(safetensors|bin)(\.index\.json)?")


def _create_temporary_file(path: str) -> tuple[int, str]:
    """Create a new, empty file next to `path` with the permissions `open(path, "w")` gives; return its descriptor and
    name. A new file gets `0o666` minus the umask (applied by the operating system, with any default ACL, exactly as
    for `open`: the umask is never read or changed, so other threads are unaffected); when `path` exists, its
    permission bits are kept, as `open` keeps them when it truncates a file."""
    directory, name = os.path.split(path)
    try:
        existing_mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        existing_mode = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(_TEMPORARY_NAME_ATTEMPTS):
        temporary = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
        try:
            descriptor = os.open(temporary, flags, 0o666)
        except FileExistsError:
            continue
        if existing_mode is not None:
            try:
                # chmod is not subject to the umask: the replaced file's exact bits
                os.chmod(temporary, existing_mode)
            except BaseException:
                os.close(descriptor)
                os.remove(temporary)
                raise
        return descriptor, temporary
    raise FileExistsError(f"Could not create a temporary file next to {path!r}: every name tried exists.")


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    r"""
    Open a temporary file next to `path` for writing; on success it is flushed, synced and renamed to `path`, on any
    error it is removed and `path` keeps its previous content. The parent folder is created if needed. The file gets
    the permissions that `open(path, "w")` would give it: `0o666` minus the process umask for a new file, the
    previous file's permission bits when `path` exists.

    Args:
        path (`str` or `os.PathLike`):
            Destination file.
        mode (`str`, *optional*, defaults to `"w"`):
            `"w"` (UTF-8 text) or `"wb"` (binary).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"`mode` must be 'w' or 'wb', got {mode!r}.")
    path = os.path.abspath(os.fspath(path))
    kept = f"the previous {path}" if os.path.lexists(path) else f"nothing ({path} was not created)"
    temporary = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        descriptor, temporary = _create_temporary_file(path)
        with os.fdopen(descriptor, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)
        disk_full = disk_full_error(error, path, kept)
        if disk_full is not None:
            raise disk_full from error
        raise


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Write `payload` as indented JSON with [`atomic_write`]."""
    with atomic_write(path) as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")


class _ObjectWithRepeatedKeys(dict):
    """A JSON object that repeats keys: the last value of each key (what `json.load` keeps), and the repeated keys."""

    repeated_keys: list[str]


def _object_from_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    json_object = dict(pairs)
    if len(json_object) == len(pairs):
        return json_object
    json_object = _ObjectWithRepeatedKeys(json_object)
    json_object.repeated_keys = [key for key, count in Counter(key for key, _ in pairs).items() if count > 1]
    return json_object


def repeated_json_keys(json_object: Any) -> list[str]:
    r"""
    The keys that a JSON object read by [`read_json`] holds more than once, in order of first appearance.

    Args:
        json_object (`Any`):
            A value from [`read_json`], e.g. the `"database"` object of an annotation file.

    Returns:
        `list[str]`: the repeated keys (each once); empty for an object without repeats, for anything that is not a
        JSON object, and for dicts that were not read by [`read_json`].
    """
    return list(getattr(json_object, "repeated_keys", []))


def read_json(path: str | os.PathLike, name: str) -> Any:
    r"""
    Read a JSON file given as the argument `name` of a function, with errors that name both.

    Objects are `dict`s holding the last value of each key, as with `json.load`; an object that repeats a key (e.g. a
    video id given twice) is a `dict` subclass that [`repeated_json_keys`] reports, so that callers can refuse what
    `json.load` would silently drop.

    Args:
        path (`str` or `os.PathLike`):
            The JSON file (UTF-8).
        name (`str`):
            The argument that named the file, for error messages (e.g. `"annotation_path"`).

    Returns:
        `Any`: the parsed JSON value.

    Raises:
        `FileNotFoundError`: if `path` is not a file.
        `ValueError`: naming the argument and the file, if it is not UTF-8 text or not valid JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`{name}` file not found: {path}")
    with path.open(encoding="utf-8") as handle:
        try:
            return json.load(handle, object_pairs_hook=_object_from_pairs)
        except json.JSONDecodeError as error:
            raise ValueError(f"`{name}` file {path} is not valid JSON: {error}") from error
        except UnicodeDecodeError as error:
            raise ValueError(f"`{name}` file {path} is not a UTF-8 JSON file: {error}") from error


# ---------------------------------------------------------------------------------------------------------------------
# A full disk
# ---------------------------------------------------------------------------------------------------------------------


def _error_chain(error: BaseException) -> Iterator[BaseException]:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _nearest_existing(path: str) -> str:
    """`path`, or its nearest parent that exists."""
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def is_disk_full(error: BaseException, path: str | os.PathLike) -> bool:
    r"""
    Whether `error`, raised while writing `path`, means that the disk (or the user's quota) is full.

    `OSError`s carry their errno (`ENOSPC`, `EDQUOT`), safetensors writes say "No space left on device (os error 28)",
    and torch's zip writer (`torch.save`, Accelerate's optimizer states) reports no errno at all (`RuntimeError:
    [enforce fail at inline_container.cc:...] unexpected pos ...` or `... file write failed`): then the file system of
    `path` is asked, and a failed write with less than 1 MiB left counts as a full disk.

    Args:
        error (`BaseException`):
            The error of the write (its causes and contexts are searched too).
        path (`str` or `os.PathLike`):
            The file or folder being written.

    Returns:
        `bool`: whether the disk is full.
    """
    for item in _error_chain(error):
        if isinstance(item, OSError) and item.errno in _DISK_FULL_ERRNOS:
            return True
        text = str(item)
        if "No space left on device" in text or "Disk quota exceeded" in text or "(os error 28)" in text:
            return True
    if isinstance(error, RuntimeError) and "inline_container" in str(error):
        try:
            free = shutil.disk_usage(_nearest_existing(os.path.abspath(os.fspath(path)))).free
        except OSError:
            return False
        return free < _LOW_SPACE_BYTES
    return False


def disk_full_error(error: BaseException, path: str | os.PathLike, kept: str) -> OSError | None:
    r"""
    The error to raise instead of `error` when it means a full disk (see [`is_disk_full`]), else `None`.

    Args:
        error (`BaseException`):
            The error of the write.
        path (`str` or `os.PathLike`):
            The file or folder that could not be written.
        kept (`str`):
            What the failed write left in place, e.g. `"step_40 (the last complete checkpoint)"`.

    Returns:
        `OSError` or `None`: an `OSError` with errno `ENOSPC` and the message `"No space left on device while writing
        <path>; kept: <kept>"`, or `None` when the disk is not full.
    """
    if not isinstance(error, Exception) or not is_disk_full(error, path):
        return None
    disk_full = OSError(f"No space left on device while writing {os.fspath(path)}; kept: {kept}")
    disk_full.errno = errno.ENOSPC
    return disk_full


# ---------------------------------------------------------------------------------------------------------------------
# Checks before long work
# ---------------------------------------------------------------------------------------------------------------------


def check_writable_directory(path: str | os.PathLike, name: str) -> None:
    r"""
    Check that files can be written to the folder `path` before any long work starts, by creating (and at once
    removing) a file there, or, when `path` does not exist yet, in its nearest existing parent folder (where it will
    be created). Nothing is left behind (the probe is named like the other temporary files, so that even a kill at
    that moment leaves nothing that [`remove_interrupted_writes`] does not delete).

    Args:
        path (`str` or `os.PathLike`):
            The output folder.
        name (`str`):
            How the caller names it in errors, e.g. `"--output_dir"` or `` "`output_dir`" ``.

    Raises:
        `NotADirectoryError`: naming `name`, if `path` or a parent of it is a file.
        `OSError` (e.g. `PermissionError`): naming `name`, if no file can be created there (permissions, a
            read-only file system, a full disk).
    """
    path = os.path.abspath(os.fspath(path))
    existing = _nearest_existing(path)
    if not os.path.isdir(existing):
        raise NotADirectoryError(f"{name} {path}: {existing} is a file, not a folder.")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=f"{TEMPORARY_PREFIX}write-check-"):
            pass
    except OSError as error:
        problem = error.strerror or str(error)
        raise type(error)(f"{name} {path}: cannot create files in {existing} ({problem}).") from None


def check_safetensors_file(path: str | os.PathLike) -> None:
    r"""
    Check that a `.safetensors` file is complete: its header parses and its tensors cover the file exactly (a
    truncated or foreign file fails). Reads the header only.

    Args:
        path (`str` or `os.PathLike`):
            The file.

    Raises:
        `FileNotFoundError`: if it does not exist.
        `ValueError`: naming the file, if it is corrupt or truncated.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Weights file not found: {path}")
    try:
        with safe_open(os.fspath(path), framework="pt"):
            pass
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path} is corrupt or truncated (safetensors: {error}).") from None


def check_model_folder(folder: str | os.PathLike, name: str, required_files: Sequence[str] = PROCESSOR_FILES) -> None:
    r"""
    Check a saved model folder before it is loaded (and before any video is decoded): `config.json` is JSON, weights
    are present and every `.safetensors` file is complete (see [`check_safetensors_file`]), and the files
    `required_files` exist. A path that is not a folder is left to the loader (it may be a Hub repository id).

    Args:
        folder (`str` or `os.PathLike`):
            The model folder.
        name (`str`):
            How the caller names it in errors, e.g. `"--model"`.
        required_files (`Sequence[str]`, *optional*, defaults to [`PROCESSOR_FILES`]):
            Files that must be present besides the model's, e.g. the processor's; [`TOKENIZER_FILES`] for a CLIP
            folder whose tokenizer is loaded, `()` for a model alone.

    Raises:
        `FileNotFoundError`: naming `name` and the folder, if `config.json`, the weights or a required file is missing.
        `ValueError`: naming the file, if `config.json` is not JSON or a weights file is corrupt or truncated.
    """
    if not os.path.isdir(folder):
        return
    where = f"{name} {folder}"
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise FileNotFoundError(f"{where}: no config.json, so this is not a saved model folder.")
    read_json(os.path.join(folder, "config.json"), name)
    weights = sorted(entry for entry in os.listdir(folder) if _WEIGHTS_PATTERN.fullmatch(entry))
    if not weights:
        raise FileNotFoundError(f"{where}: no weights (model.safetensors or pytorch_model.bin).")
    for weights_file in weights:
        if weights_file.endswith(".safetensors"):
            try:
                check_safetensors_file(os.path.join(folder, weights_file))
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from None
    missing = [file_name for file_name in required_files if not os.path.isfile(os.path.join(folder, file_name))]
    if missing:
        raise FileNotFoundError(
            f"{where}: missing {', '.join(missing)}; a model folder needs its processor files, written by "
            "`processor.save_pretrained(folder)` (the training script writes them)."
        )


# ---------------------------------------------------------------------------------------------------------------------
# Atomic folders
# ---------------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _renameat2() -> Callable | None:
    if not sys.platform.startswith("linux"):
        return None
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        function.restype = ctypes.c_int
    return function


# renameat2 arguments: paths relative to the working directory, and the flag that swaps the two paths.
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange_paths(first: str, second: str) -> bool:
    """Swap two existing paths in one step (Linux `renameat2(RENAME_EXCHANGE)`); `False` where that is unsupported."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    error_number = ctypes.get_errno()
    # a kernel or file system without the flag: fall back to two renames
    if error_number in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(error_number, os.strerror(error_number), first, None, second)


def temporary_sibling(path: str | os.PathLike, stale: bool = False) -> str:
    """The temporary folder `.tmp-<name>` (`.tmp-stale-<name>` with `stale`) next to `path`."""
    path = os.path.abspath(os.fspath(path))
    prefix = _STALE_PREFIX if stale else TEMPORARY_PREFIX
    return os.path.join(os.path.dirname(path), f"{prefix}{os.path.basename(path)}")


def _fsync_tree(directory: str) -> None:
    # Data must reach the disk before a rename publishes the folder, or a power cut could expose empty files.
    for root, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())


def replace_directory(source: str | os.PathLike, destination: str | os.PathLike) -> None:
    r"""
    Make the complete folder `source` appear as `destination`, replacing what `destination` held, in one step: a
    reader, or a process killed at any moment, sees the previous `destination` or the new one. The files of `source`
    are synced to disk first. `source` is gone afterwards.

    On Linux the two folders are swapped with `renameat2(RENAME_EXCHANGE)` and the previous one is then deleted.
    Elsewhere (or on a file system without that call) the previous folder is first renamed to `.tmp-stale-<name>`,
    which leaves a moment without `destination`; [`remove_interrupted_writes`] puts it back after a kill there.

    Args:
        source (`str` or `os.PathLike`):
            The new, complete folder, on the same file system as `destination` (e.g. [`temporary_sibling`]).
        destination (`str` or `os.PathLike`):
            The folder to replace (or to create).
    """
    source, destination = os.fspath(source), os.fspath(destination)
    _fsync_tree(source)
    if not os.path.lexists(destination):
        os.replace(source, destination)
    elif _exchange_paths(source, destination):
        shutil.rmtree(source)
    else:
        stale = temporary_sibling(destination, stale=True)
        shutil.rmtree(stale, ignore_errors=True)
        os.replace(destination, stale)
        os.replace(source, destination)
        shutil.rmtree(stale)


def _link_or_copy(source: str, destination: str) -> None:
    # a hard link costs no space and no time; file systems without hard links get a copy
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def link_missing_entries(
    source: str | os.PathLike, destination: str | os.PathLike, skip: Callable[[str], bool] | None = None
) -> None:
    r"""
    Carry over into `destination` every entry of the folder `source` that `destination` does not hold yet: files as
    hard links (copies where the file system has none), folders as trees of hard links. Temporary entries (names
    starting with `.tmp-`, and the temporary files of [`atomic_write`]) are left out at every level.

    A file reached through a hard link must never be rewritten in place (that would change it in both folders):
    write a new file and rename it over the link, as [`atomic_write`] does.

    Args:
        source (`str` or `os.PathLike`):
            The folder whose entries are carried over.
        destination (`str` or `os.PathLike`):
            The folder that receives them (it must exist).
        skip (`Callable[[str], bool]`, *optional*):
            Top-level entry names of `source` not to carry over.
    """

    def temporary_names(_, names: list[str]) -> list[str]:
        return [name for name in names if _is_temporary_name(name)]

    for entry in os.scandir(source):
        target = os.path.join(destination, entry.name)
        if _is_temporary_name(entry.name) or os.path.lexists(target) or (skip is not None and skip(entry.name)):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.copytree(entry.path, target, symlinks=True, ignore=temporary_names, copy_function=_link_or_copy)
        elif entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        else:
            _link_or_copy(entry.path, target)


def is_weights_file(name: str) -> bool:
    """Whether the file name `name` is that of model weights (`*.safetensors`, `*.bin`, or the index of shards)."""
    return _WEIGHTS_PATTERN.fullmatch(name) is not None


def _is_temporary_name(name: str) -> bool:
    return name.startswith(TEMPORARY_PREFIX) or _TEMPORARY_FILE_PATTERN.fullmatch(name) is not None


def remove_interrupted_writes(directory: str | os.PathLike) -> list[str]:
    r"""
    Clean up after writes that a killed process left unfinished in and next to `directory`, before writing there
    again: a folder that [`replace_directory`] had renamed to `.tmp-stale-<name>` is put back where no new one took
    its place; every other temporary entry (`.tmp-*` folders, [`atomic_write`]'s temporary files) is deleted, inside
    `directory` and the `.tmp-<name>` folder of `directory` itself next to it.

    Args:
        directory (`str` or `os.PathLike`):
            The output folder (it need not exist).

    Returns:
        `list[str]`: the paths deleted or put back.
    """
    directory = os.path.abspath(os.fspath(directory))
    cleaned = []
    stale = temporary_sibling(directory, stale=True)
    if os.path.isdir(stale) and not os.path.lexists(directory):
        os.replace(stale, directory)
        cleaned.append(directory)
    for leftover in (stale, temporary_sibling(directory)):
        if os.path.lexists(leftover):
            shutil.rmtree(leftover)
            cleaned.append(leftover)
    if not os.path.isdir(directory):
        return cleaned
    entries = sorted(os.scandir(directory), key=lambda entry: not entry.name.startswith(_STALE_PREFIX))
    for entry in entries:
        if not os.path.lexists(entry.path):
            continue
        if entry.name.startswith(_STALE_PREFIX):
            restored = os.path.join(directory, entry.name[len(_STALE_PREFIX) :])
            if not os.path.lexists(restored):
                os.replace(entry.path, restored)
                cleaned.append(restored)
                continue
        if _is_temporary_name(entry.name):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.remove(entry.path)
            cleaned.append(entry.path)
    return cleaned


__all__ = [
    "PROCESSOR_FILES",
    "TEMPORARY_PREFIX",
    "TOKENIZER_FILES",
    "atomic_write",
    "check_model_folder",
    "check_safetensors_file",
    "check_writable_directory",
    "disk_full_error",
    "is_disk_full",
    "is_weights_file",
    "link_missing_entries",
    "read_json",
    "remove_interrupted_writes",
    "repeated_json_keys",
    "replace_directory",
    "temporary_sibling",
    "write_json_atomic",
]
