"""Checks on the files a command or a Save writes, before anything is computed.

One place for the rules that keep data safe: an output never replaces an input of the
same command, never a folder, a device, a pipe or a file the user may not write, and an
existing model only when asked. Only the standard library: the napari reader and writer
use this module.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path

from napari_unet.core.errors import InputError
from napari_unet.core.io.temporary import make_file


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words; ``None`` for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def special_kind(path: str | os.PathLike) -> str | None:
    """``"a folder"``, ``"a device"``... when ``path`` exists and is not a regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return _kind(mode)


def within(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` is ``b`` or inside it (links followed)."""
    a, b = Path(os.path.realpath(a)), Path(os.path.realpath(b))
    return a == b or b in a.parents


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: the same inode when both exist, else the same
    resolved path (two outputs that do not exist yet)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        pass
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):
        return False


def _through_proc(path: Path) -> bool:
    """Whether ``path`` or a symbolic link on the way names something in /proc or /dev
    (such as /proc/self/fd/1, which may look like a regular file)."""
    for _ in range(40):
        text = os.path.abspath(path)
        if (text.startswith(("/proc/", "/dev/")) and not text.startswith("/dev/shm/")) or (
                text in ("/proc", "/dev")):
            return True
        if not os.path.islink(path):
            return False
        path = Path(os.path.join(os.path.dirname(text), os.readlink(path)))
    return True


def write_target(path: str | os.PathLike) -> Path:
    """The file actually written for ``path``: a symbolic link to a file is followed, so
    the link stays and the file it points to is replaced."""
    path = Path(path)
    if path.is_symlink():
        return Path(os.path.realpath(path))
    return path


def check_writable(path: str | os.PathLike, what: str = "the output") -> Path:
    """``path`` as a :class:`Path` when a file can be written there, else an
    :class:`InputError` saying why (empty name, a folder, a device, a pipe, a
    write-protected file, a folder that is missing or cannot be written)."""
    if str(path).strip() == "":
        raise InputError(f"{what} is an empty file name; give the file to write")
    path = Path(path)
    if _through_proc(path):
        raise InputError(f"{what} {path} is not a regular file (it leads to /proc or /dev); "
                         "choose a file in a folder")
    if os.path.lexists(path):
        try:
            st = os.stat(path)
        except OSError as exc:
            raise InputError(f"{what} {path} cannot be used ({exc.strerror})") from None
        kind = _kind(st.st_mode)
        if kind is not None:
            raise InputError(f"{what} {path} is {kind}, not a file that can be replaced; "
                             "choose a file name")
        if not os.access(path, os.W_OK) or not st.st_mode & 0o222:
            raise InputError(f"{what} {path} is write-protected; choose another file or "
                             "change its permissions")
    target = write_target(path)
    folder = target.parent
    while not folder.exists():  # the writer creates missing folders in a writable one
        if folder.parent == folder:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{what} {path} cannot be written: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK) or not os.stat(folder).st_mode & 0o222:
        raise InputError(f"{what} {path} cannot be written: the folder {folder} is "
                         "write-protected")
    return path


def check_outputs(outputs: Iterable[tuple[str, str | os.PathLike | None]],
                  inputs: Iterable[tuple[str, str | os.PathLike | None]] = ()) -> None:
    """Refuse outputs that are not writable, that name an input of the same command, or
    that name each other. Each item is (the option that names it, the path or None)."""
    outs = [(name, p) for name, p in outputs if p is not None]
    ins = [(name, p) for name, p in inputs if p is not None]
    for i, (name, path) in enumerate(outs):
        check_writable(path, name)
        for in_name, in_path in ins:
            if same_file(path, in_path):
                raise InputError(f"{name} {path} is also the {in_name}: writing it would "
                                 "replace an input; choose another file name")
        for other_name, other in outs[:i]:
            if same_file(path, other):
                raise InputError(f"{name} and {other_name} name the same file {path}; "
                                 "choose two file names")


def interrupted_path(path: str | os.PathLike) -> Path:
    """Where a run that did not finish goes when ``path`` holds a model it must not
    replace: ``MODEL.interrupted.pt`` beside it."""
    path = Path(path)
    suffix = path.suffix or ".pt"
    return path.with_name(f"{path.stem if path.suffix else path.name}.interrupted{suffix}")


def new_file_mode() -> int:
    """The permissions a new file gets under the current umask (usually 0644)."""
    umask = None
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    umask = int(line.split()[1], 8)
                    break
    except (OSError, ValueError):
        pass
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place.

    A failure (an exception, a full disk, Ctrl-C) leaves any previous ``path`` intact and
    no temporary file. A folder, a device, a pipe or a write-protected file is refused
    (:class:`InputError`); a symbolic link to a file updates that file. A new file gets
    the permissions of the umask, a replaced one keeps its own.
    """
    path = write_target(check_writable(path))
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = new_file_mode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        tmp = make_file(path)  # after removing what killed writers left for this file
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with suppress(OSError):
                tmp.unlink()
        if isinstance(exc, OSError) and exc.errno and (
                exc.filename is None or str(exc.filename) == str(tmp)):
            # A full disk or a file-size limit: name the file the user asked for.
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise
