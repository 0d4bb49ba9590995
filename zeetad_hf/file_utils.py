"""File helpers: atomic writes (a reader sees either the old file or the complete new one, never a partial file), and
JSON reading that keeps track of repeated keys (which `json.load` silently collapses to the last one)."""

import json
import os
import secrets
import stat
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


# Attempts at a fresh temporary name before giving up (each name has 64 random bits: a clash means something is wrong).
_TEMPORARY_NAME_ATTEMPTS = 100


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
    os.makedirs(os.path.dirname(path), exist_ok=True)
    descriptor, temporary = _create_temporary_file(path)
    try:
        with os.fdopen(descriptor, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
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


__all__ = ["atomic_write", "read_json", "repeated_json_keys", "write_json_atomic"]
