"""Real file-system faults for tests, without root: mounts in a private user + mount namespace.

- `run_with_small_disk(mount_point, size, script, *arguments)` runs `python -c script mount_point *arguments` with a
  tmpfs of `size` (e.g. `"8m"`) mounted on `mount_point`: a disk that really fills up. The mount exists only inside
  the namespace, so the script reports what it finds (e.g. as JSON on stdout) before it ends.
- `run_with_mounted_folder(folder, *command, read_only_parent=...)` runs `command` where `folder` is a writable mount
  point (as a volume mounted at an output folder is: it cannot be renamed) and, with `read_only_parent`, nothing can
  be created next to it. What the command writes into `folder` stays there.

`MOUNTS_AVAILABLE` says whether the kernel allows this (`unshare --user --map-root-user --mount`; many CI containers
forbid unprivileged user namespaces, then the tests that need it are skipped with `MOUNTS_REASON`).
"""

import os
import shutil
import subprocess
import sys
import tempfile


UNSHARE = shutil.which("unshare")
NAMESPACE = [UNSHARE, "--user", "--map-root-user", "--mount"] if UNSHARE else []


def _can_mount() -> bool:
    if UNSHARE is None or not sys.platform.startswith("linux"):
        return False
    with tempfile.TemporaryDirectory() as mount_point:
        command = [*NAMESPACE, "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mount_point]
        try:
            return subprocess.run(command, capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False


MOUNTS_AVAILABLE = _can_mount()
MOUNTS_REASON = "needs `unshare --user --mount` (unprivileged user namespaces) to mount file systems"


def run_with_small_disk(
    mount_point, size: str, script: str, *arguments: str, env=None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run `python -c script mount_point *arguments` with a `size` tmpfs mounted on `mount_point` (see the module)."""
    os.makedirs(mount_point, exist_ok=True)
    shell = 'mount -t tmpfs -o "size=$1" tmpfs "$2" && shift 2 && exec "$@"'
    command = [*NAMESPACE, "sh", "-c", shell, "sh", size, str(mount_point)]
    command += [sys.executable, "-c", script, str(mount_point), *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def run_with_mounted_folder(
    folder, *command: str, read_only_parent: bool = False, env=None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run `command` with `folder` a writable mount point (a bind mount of itself), and with `read_only_parent` its
    parent folder read-only (see the module)."""
    folder = os.path.abspath(folder)
    os.makedirs(folder, exist_ok=True)
    parent = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && ' if read_only_parent else ""
    shell = parent + 'mount --bind "$2" "$2" && mount -o remount,rw,bind "$2" && shift 2 && exec "$@"'
    namespace_command = [*NAMESPACE, "sh", "-c", shell, "sh", os.path.dirname(folder), folder, *map(str, command)]
    return subprocess.run(namespace_command, capture_output=True, text=True, timeout=timeout, env=env)
