"""Temporary files and folders of atomic writes, and the removal of those a killed
process left behind.

Every writer of napari-unet builds its output under a hidden name beside the target,
``.NAME.PID-HOST-RANDOM.tmp`` (a file or a folder), and renames it into place when it is
complete. A process killed by SIGKILL (or the kernel's out-of-memory killer) cannot
remove it; the next write of the same target, and a run over a folder, removes the
temporaries of that target whose process is gone: only names of exactly this pattern,
only made on this computer, only when no process of that id is alive. Only the standard
library: the napari reader and writer use this module.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import zlib
from contextlib import suppress
from pathlib import Path

#: How much of a target's name the temporary name keeps (file names are limited to 255).
NAME_CHARS = 200
_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)-(?P<host>[0-9a-f]{6})-"
                      r"(?P<rand>[0-9a-f]{8})\.tmp$")


def _host() -> str:
    """Six hex digits naming this computer (a folder may be shared by several)."""
    return f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFFFF:06x}"


def temporary_name(path: str | os.PathLike) -> Path:
    """A new temporary name beside ``path`` (nothing is created)."""
    path = Path(path)
    name = path.name[:NAME_CHARS]
    return path.parent / f".{name}.{os.getpid()}-{_host()}-{secrets.token_hex(4)}.tmp"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # a process of another user: alive
    return True


def _stale(entry: Path, target_name: str | None) -> bool:
    """Whether ``entry`` is a temporary of ours (for ``target_name``, or for any target
    when ``None``) whose process is gone."""
    match = _PATTERN.match(entry.name)
    if match is None or match["host"] != _host():
        return False
    if target_name is not None and match["name"] != target_name[:NAME_CHARS]:
        return False
    return not _alive(int(match["pid"]))


def _remove(entry: Path) -> bool:
    with suppress(OSError):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        return True
    return False


def remove_stale(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries that killed processes left for the target ``path``;
    returns what was removed (nothing when the folder cannot be listed)."""
    path = Path(path)
    return _remove_in(path.parent, path.name)


def remove_stale_in(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of any target in ``folder`` that killed processes left."""
    return _remove_in(Path(folder), None)


def _remove_in(folder: Path, target_name: str | None) -> list[Path]:
    removed = []
    prefix = None if target_name is None else f".{target_name[:NAME_CHARS]}."
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.endswith(".tmp") or (prefix and not entry.name.startswith(prefix)):
            continue
        candidate = Path(entry.path)
        if _stale(candidate, target_name) and _remove(candidate):
            removed.append(candidate)
    return removed


def target_of(temporary: str | os.PathLike) -> Path | None:
    """The target a temporary name was made for (its name cut to :data:`NAME_CHARS`),
    or ``None`` when it is not one of ours."""
    temporary = Path(temporary)
    match = _PATTERN.match(temporary.name)
    return None if match is None else temporary.parent / match["name"]


def make_file(path: str | os.PathLike) -> Path:
    """Create an empty temporary file beside ``path`` (after removing stale ones)."""
    remove_stale(path)
    for _ in range(100):
        tmp = temporary_name(path)
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")


def make_folder(path: str | os.PathLike) -> Path:
    """Create an empty temporary folder beside ``path`` (after removing stale ones)."""
    remove_stale(path)
    for _ in range(100):
        tmp = temporary_name(path)
        try:
            os.mkdir(tmp)
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")
