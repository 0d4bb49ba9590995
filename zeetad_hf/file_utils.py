"""Atomic file writes: a reader sees either the old file or the complete new one, never a partial file."""

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    r"""
    Open a temporary file next to `path` for writing; on success it is flushed, synced and renamed to `path`, on any
    error it is removed and `path` keeps its previous content. The parent folder is created if needed.

    Args:
        path (`str` or `os.PathLike`):
            Destination file.
        mode (`str`, *optional*, defaults to `"w"`):
            `"w"` (UTF-8 text) or `"wb"` (binary).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"`mode` must be 'w' or 'wb', got {mode!r}.")
    path = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
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


__all__ = ["atomic_write", "write_json_atomic"]
