"""What a zarr array declares, checked before zarr opens it, and reads that say which
image failed.

A damaged or hostile OME-Zarr folder (truncated metadata, a bytes or text data type, a
negative shape, a level path that leaves the folder, chunks missing from a copy) is
refused with one sentence instead of whatever zarr raises. :class:`Checked` wraps an
opened array so that a chunk that cannot be decompressed becomes an
:class:`~napari_unet.core.errors.InputError` naming the image, also when dask reads it.
Only numpy and the standard library at import time.
"""

from __future__ import annotations

import json
import math
import os
import re
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from napari_unet.core.errors import InputError

#: zarr v3 data types that hold numbers (complex ones are refused with their own sentence).
_V3_NUMBERS = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
               "uint64", "float16", "float32", "float64", "complex64", "complex128"}
_METADATA = {".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"}
_KEY_PART = re.compile(r"^[0-9]+$")


@dataclass(frozen=True)
class Declared:
    """The shape, data type and chunk grid a zarr array's metadata declare."""

    folder: Path
    shape: tuple[int, ...]
    dtype: np.dtype
    grid: tuple[int, ...]  # the shape of what is stored per file: chunks, or shards
    separator: str  # between the indices of a stored key
    prefix: str  # before them ("c" for zarr v3's default keys, "" otherwise)

    @property
    def nbytes(self) -> float:
        return math.prod(float(n) for n in self.shape) * self.dtype.itemsize

    @property
    def expected_chunks(self) -> int:
        return math.prod(math.ceil(s / c) for s, c in zip(self.shape, self.grid))


def human_bytes(n: float) -> str:
    """``n`` bytes in words: 25 KB, 1.5 GiB, 1.7 EiB."""
    for unit, size in (("EiB", 1024**6), ("PiB", 1024**5), ("TiB", 1024**4),
                       ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def shape_text(shape) -> str:
    return "x".join(str(int(n)) for n in shape)


def check_level_path(name: str, level: Any) -> str:
    """The dataset path of an OME-Zarr level, refused when it is empty, absolute or
    leaves the folder (``..``): nothing outside the image is ever read."""
    text = str(level)
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if not text.strip() or text.startswith(("/", "\\")) or any(
            p in ("..", ".") for p in text.replace("\\", "/").split("/")) or not parts or (
            re.match(r"^[A-Za-z]:", text)):
        raise InputError(f"{name}: its metadata give the level path {text!r}, which leaves "
                         "the folder or is not a path inside it; the folder is damaged or "
                         "not an OME-Zarr image")
    return text


def _json(name: str, file: Path) -> dict:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{name}: {file.name} cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(f"{name}: {file} is not text: the folder is damaged") from None
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{name}: {file} is not valid JSON ({exc}); the file is truncated "
                         "or damaged") from None
    if not isinstance(meta, dict):
        raise InputError(f"{name}: {file} does not describe an array")
    return meta


def _ints(value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, list | tuple) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return None
    return tuple(value)


def _dtype(name: str, value: Any, v3: bool) -> np.dtype:
    text = value.get("name") if isinstance(value, dict) else value
    dtype = None
    if isinstance(text, str):
        if v3 and text in _V3_NUMBERS:
            dtype = np.dtype(text)
        elif not v3:
            try:
                dtype = np.dtype(text)
            except TypeError:
                dtype = None
    if dtype is None or dtype.kind not in "biufc":
        shown = json.dumps(text if text is not None else value)[:60]
        raise InputError(f"{name}: its pixels are declared as {shown}, not numbers (bytes, "
                         "text or records cannot be an image)")
    if dtype.kind == "c":
        raise InputError(f"{name} holds complex numbers ({dtype.name}); save their magnitude "
                         "or real part as an image first")
    return dtype


def declared(name: str, folder: Path) -> Declared:
    """What the array in ``folder`` (zarr v2 ``.zarray`` or v3 ``zarr.json``) declares,
    or an :class:`InputError` that says what is wrong with it."""
    v2, v3 = folder / ".zarray", folder / "zarr.json"
    if v2.is_file():
        meta, is_v3 = _json(name, v2), False
    elif v3.is_file():
        meta, is_v3 = _json(name, v3), True
        if meta.get("node_type") not in (None, "array"):
            raise InputError(f"{name}: its level {folder.name!r} is a group, not an array")
    else:
        raise InputError(f"{name}: its level {folder.name!r} has no array metadata "
                         "(.zarray or zarr.json)")
    shape = _ints(meta.get("shape"))
    if shape is None or any(n < 0 for n in shape):
        raise InputError(f"{name}: its level {folder.name!r} declares the shape "
                         f"{json.dumps(meta.get('shape'))[:60]}, which is not a list of "
                         "sizes (0 or more); the metadata are damaged")
    dtype = _dtype(name, meta.get("data_type" if is_v3 else "dtype"), is_v3)
    if is_v3:
        grid_meta = meta.get("chunk_grid")
        chunks = _ints(((grid_meta or {}).get("configuration") or {}).get("chunk_shape")) if (
            isinstance(grid_meta, dict)) else None
        encoding = meta.get("chunk_key_encoding") or {}
        config = encoding.get("configuration") or {} if isinstance(encoding, dict) else {}
        if isinstance(encoding, dict) and encoding.get("name") == "v2":
            separator, prefix = str(config.get("separator", ".")), ""
        else:
            separator, prefix = str(config.get("separator", "/")), "c"
    else:
        chunks = _ints(meta.get("chunks"))
        separator, prefix = str(meta.get("dimension_separator") or "."), ""
    if chunks is None or len(chunks) != len(shape) or any(c <= 0 for c in chunks):
        raise InputError(f"{name}: its level {folder.name!r} declares chunks "
                         f"{json.dumps(meta.get('chunks', meta.get('chunk_grid')))[:60]} "
                         f"that do not fit its shape {list(shape)}; the metadata are damaged")
    return Declared(folder, shape, dtype, chunks, separator, prefix)


def stored_chunks(array: Declared) -> int:
    """How many chunk files of ``array`` are stored (keys of its pattern only)."""
    count, ndim = 0, len(array.shape)
    for root, _dirs, files in os.walk(array.folder):
        rel = os.path.relpath(root, array.folder)
        base = [] if rel == "." else rel.split(os.sep)
        for file in files:
            if file in _METADATA:
                continue
            parts = [*base, file]
            if array.prefix:
                if not parts or parts[0] != array.prefix:
                    continue
                parts = parts[1:]
            key = array.separator.join(parts) if array.separator != "/" else "/".join(parts)
            indices = key.split(array.separator) if key else []
            if ndim == 0 and not indices or (
                    len(indices) == ndim and all(_KEY_PART.match(i) for i in indices)):
                count += 1
    return count


class MissingChunksError(InputError):
    """An image whose folder stores fewer chunks than its metadata declare;
    :attr:`finding` says so without advice on the command line's options."""

    def __init__(self, message: str, finding: str):
        super().__init__(message)
        self.finding = finding


def check_chunks_present(name: str, array: Declared, stored_bytes: int | None = None) -> None:
    """Refuse an image whose metadata declare more chunks than its folder stores: a
    partial copy would otherwise read as zeros without a word."""
    expected = array.expected_chunks
    found = stored_chunks(array)
    if found >= expected:
        return
    held = "" if stored_bytes is None else f" (the folder holds {human_bytes(stored_bytes)})"
    finding = (f"{name}: {expected - found:,} of its {expected:,} chunks are missing{held}: "
               f"it declares {shape_text(array.shape)} {array.dtype.name} "
               f"({human_bytes(array.nbytes)})")
    raise MissingChunksError(
        f"{finding}; it is an incomplete copy or damaged (if its empty chunks were left "
        "out on purpose, give --missing-chunks fill)", finding)


def folder_bytes(folder: Path) -> int:
    """The bytes the files under ``folder`` take."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for file in files:
            with suppress(OSError):
                total += os.lstat(os.path.join(root, file)).st_size
    return total


class Checked:
    """A zarr array read through ``[...]``: any failure to read or decompress a chunk
    becomes an :class:`InputError` that names the image and the pixels asked for."""

    def __init__(self, array: Any, name: str):
        self.array, self.name = array, name
        self.shape, self.dtype, self.ndim = tuple(array.shape), np.dtype(array.dtype), array.ndim

    def __getitem__(self, key):
        try:
            return self.array[key]
        except MemoryError:
            raise
        except Exception as exc:
            settle_zarr()
            detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise InputError(f"{self.name}: {_where(key)} cannot be read ({detail}); the "
                             "file is damaged") from None


def settle_zarr(timeout: float = 60.0) -> None:
    """Wait until zarr's event loop has no task left running.

    zarr reads the chunks of one request concurrently (``asyncio.gather`` on its own loop,
    in a thread); when one chunk fails, the request fails at once and the others keep
    running. A program that then ends closes that loop with them still pending, and
    asyncio prints "Task was destroyed but it is pending!" and "cannot schedule new
    futures after shutdown" for each. Waiting for them after a failed read leaves nothing
    to destroy.
    """
    import asyncio
    import sys

    sync = sys.modules.get("zarr.core.sync")
    loop = None if sync is None else sync.loop[0]
    if loop is None or loop.is_closed() or not loop.is_running():
        return

    async def rest() -> None:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    with suppress(Exception):
        asyncio.run_coroutine_threadsafe(rest(), loop).result(timeout + 5)


def _where(key) -> str:
    if key is Ellipsis or key == (Ellipsis,):
        return "its pixels"
    if not isinstance(key, tuple):
        key = (key,)
    parts = []
    for k in key:
        if isinstance(k, slice):
            parts.append(f"{k.start or 0}:{k.stop if k.stop is not None else ''}")
        else:
            parts.append(str(k))
    return "the pixels at [" + ", ".join(parts) + "]"


def as_dask(array: Any, name: str, token: str):
    """``array`` (zarr) as a dask array of its stored chunks (or shards), read through
    :class:`Checked`."""
    import dask.array as da

    chunks = getattr(array, "shards", None) or array.chunks
    return da.from_array(Checked(array, name), chunks=chunks, name=f"napari-unet-{token}",
                         asarray=True, fancy=False,
                         meta=np.empty((0,) * array.ndim, np.dtype(array.dtype)))
