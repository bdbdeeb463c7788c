"""Images that need not fit in memory: TIFF through tifffile's zarr interface and OME-Zarr,
opened as dask arrays that read only the chunks asked for.

:func:`open_image` reads a file into memory when it fits comfortably and opens it lazily
otherwise (:func:`napari_unet.core.predict.slices.predict_slices` predicts such a stack one
slice at a time). Only numpy, tifffile, zarr and dask here: the napari reader uses this module and must not import
torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_unet.core.errors import InputError
from napari_unet.core.io.declared import (
    Checked,
    as_dask,
    check_chunks_present,
    check_level_path,
    declared,
    folder_bytes,
    human_bytes,
    shape_text,
)
from napari_unet.core.io.tiff import (
    ImageData,
    check_file,
    choose_series,
    is_tiff_path,
    max_image_bytes,
    physical_memory,
    read_tiff,
    unreadable,
)
from napari_unet.core.io.tiff_metadata import axes_scale, labels_hint, metadata_properties

ZARR_SUFFIXES = (".zarr", ".ome.zarr")
#: An image is read into memory when it takes at most this share of the available memory
#: (and at most :func:`~.tiff.max_image_bytes`); otherwise it is opened lazily.
MEMORY_SHARE = 0.25
#: NGFF axis names to the letters used everywhere else (tifffile's).
_AXIS_LETTERS = {"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}


def is_zarr_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a zarr folder (``*.zarr``, ``*.ome.zarr``)."""
    return str(path).rstrip("/\\").lower().endswith(ZARR_SUFFIXES)


def is_lazy(array: Any) -> bool:
    """Whether ``array`` is read on demand rather than held: an array (``shape``,
    ``dtype``, indexing) that is not a numpy one, such as a dask or zarr array or a lazy
    view of one (:class:`~napari_unet.core.normalise.LazyNormalised`). The one definition:
    the readers, training, prediction, the plugin's layers and the command line ask it."""
    return not isinstance(array, np.ndarray) and all(
        hasattr(array, name) for name in ("shape", "dtype", "__getitem__"))


def available_memory() -> int | None:
    """Memory the system can give now (MemAvailable), else the computer's memory."""
    with suppress(OSError, ValueError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return physical_memory()


def fits_in_memory(nbytes: int) -> bool:
    """Whether an array of ``nbytes`` is read whole: at most a quarter of the available
    memory and at most :func:`~.tiff.max_image_bytes`."""
    available = available_memory()
    return nbytes <= max_image_bytes() and (
        available is None or nbytes <= MEMORY_SHARE * available)


def open_image(path: str | os.PathLike, *, lazy: bool | None = None,
               series: int | None = None, missing_chunks: str = "refuse") -> ImageData:
    """Open a TIFF or an OME-Zarr image, lazily when it does not fit comfortably.

    ``lazy=None`` reads the image into memory (a numpy array) when
    :func:`fits_in_memory`, else returns a dask array whose chunks are the file's (TIFF
    pages or tiles, zarr chunks); ``True`` or ``False`` force either. An OME-Zarr image is
    a folder with NGFF ``multiscales`` metadata: its first (full-resolution) level is
    opened, with the axes and pixel scale of its metadata. Raises :class:`InputError` with
    one sentence for anything that is not such an image (damaged metadata, pixels that
    are not numbers, a level path outside the folder). An OME-Zarr image whose folder
    stores fewer chunks than its metadata declare is refused unless ``missing_chunks`` is
    ``"fill"`` (they then read as its fill value); label images (NGFF ``image-label``)
    may omit chunks.
    """
    path = Path(path)
    if is_zarr_path(path) or path.is_dir():
        return _open_ome_zarr(path, lazy, missing_chunks)
    return _open_tiff(path, lazy, series)


def _open_tiff(path: Path, lazy: bool | None, series: int | None) -> ImageData:
    import tifffile

    if lazy is False:
        return read_tiff(path, series=series)
    check_file(path)
    try:
        with tifffile.TiffFile(path) as tif:
            chosen = choose_series(tif, path, series)
            shape, dtype = tuple(chosen.shape), np.dtype(chosen.dtype)
            index = tif.series.index(chosen)
            axes = chosen.axes
            scale = axes_scale(tif, chosen)
            hint = labels_hint(metadata_properties(tif))
    except InputError:
        raise
    except Exception as exc:  # any parser failure on a damaged file
        raise unreadable(path, exc) from None
    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if lazy is None and fits_in_memory(nbytes):
        return read_tiff(path, series=series)
    try:
        data = _tiff_dask(path, index)
    except Exception as exc:
        raise unreadable(path, exc) from None
    if tuple(data.shape) != shape:
        raise InputError(f"{path.name} is truncated or damaged (expected shape {shape})")
    return ImageData(data=data, axes=axes, scale=scale, path=path, labels_hint=hint)


def _tiff_dask(path: Path, series: int):
    """The series as a dask array over tifffile's zarr store (chunks: pages or tiles);
    a pyramidal series gives its full-resolution level."""
    import tifffile
    import zarr

    store = tifffile.imread(path, aszarr=True, series=series, level=0)
    array = zarr.open(store, mode="r")
    if isinstance(array, zarr.Group):  # pragma: no cover - level=0 gives an array
        array = array["0"]
    return as_dask(array, path.name, tokenize_path(path, series))


def tokenize_path(path: Path, part) -> str:
    """A name for the dask array of ``part`` of the file at ``path`` as it is now."""
    import hashlib

    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        stamp = 0
    text = f"{os.path.abspath(path)}|{part}|{stamp}"
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


def _ngff(attrs: dict) -> dict:
    """The NGFF metadata of a group: under ``ome`` (0.5) or at the top (0.4)."""
    ome = attrs.get("ome")
    return ome if isinstance(ome, dict) else attrs


def _scale_of(transforms: Any, ndim: int) -> list[float] | None:
    for t in transforms or []:
        if isinstance(t, dict) and t.get("type") == "scale" and len(t.get("scale", ())) == ndim:
            return [float(v) for v in t["scale"]]
    return None


def _open_ome_zarr(path: Path, lazy: bool | None, missing_chunks: str) -> ImageData:
    import zarr

    name = path.name
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if not path.is_dir():
        raise InputError(f"{name} is not a folder: an OME-Zarr image is a folder (*.zarr)")
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InputError(f"{name} is not a zarr folder ({detail})") from None
    if not isinstance(node, zarr.Group):
        raise InputError(f"{name} is a zarr array, not an OME-Zarr image: it has no NGFF "
                         "'multiscales' metadata")
    meta = _ngff(dict(node.attrs))
    multiscales = meta.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales or not isinstance(
            multiscales[0], dict):
        raise InputError(f"{name} is a zarr folder but not an OME-Zarr image: it has no NGFF "
                         "'multiscales' metadata")
    first = multiscales[0]
    datasets = first.get("datasets") or []
    if not datasets or not isinstance(datasets[0], dict) or "path" not in datasets[0]:
        raise InputError(f"{name}: its OME-Zarr metadata list no resolution level")
    level = check_level_path(name, datasets[0]["path"])
    folder = path / level
    if not folder.is_dir():
        raise InputError(f"{name}: its full-resolution level {level!r} is missing")
    meta_array = declared(name, folder)
    hint = True if "image-label" in meta else None
    if not meta_array.shape or any(n == 0 for n in meta_array.shape):
        raise InputError(f"{name} has an empty axis (shape {meta_array.shape})")
    try:
        array = node[level]
    except KeyError:
        raise InputError(f"{name}: its full-resolution level {level!r} is missing") from None
    except Exception as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InputError(f"{name}: its level {level!r} cannot be opened ({detail})") from None
    if not isinstance(array, zarr.Array):
        raise InputError(f"{name}: its level {level!r} is not an array")
    shape, dtype = tuple(array.shape), np.dtype(array.dtype)
    axes_meta = first.get("axes")
    if axes_meta is None:  # NGFF before 0.3 had no axes: TCZYX
        names = list("tczyx")[-array.ndim:]
    else:
        names = [a.get("name", "") if isinstance(a, dict) else str(a) for a in axes_meta]
    if len(names) != array.ndim:
        raise InputError(f"{name}: its metadata name {len(names)} axes ({', '.join(names)}) "
                         f"but level {level!r} has {array.ndim} dimensions {shape}")
    axes = "".join(_AXIS_LETTERS.get(str(n).lower(), "Q") for n in names)
    if missing_chunks == "refuse" and hint is None:
        check_chunks_present(name, meta_array, folder_bytes(path))
    scale = _scale_of(datasets[0].get("coordinateTransformations"), array.ndim) or [
        1.0] * array.ndim
    outer = _scale_of(first.get("coordinateTransformations"), array.ndim)
    if outer is not None:
        scale = [a * b for a, b in zip(scale, outer)]
    scale = tuple(s if s > 0 else 1.0 for s in scale)
    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if lazy is None:
        lazy = not fits_in_memory(nbytes)
    try:
        if lazy:
            data = as_dask(array, name, tokenize_path(path, level))
        else:
            if nbytes > max_image_bytes():
                limit = max_image_bytes()
                raise InputError(
                    f"{name} needs {nbytes / 1024**3:.1f} GiB in memory, more than the "
                    f"{limit / 1024**3:.1f} GiB allowed; open it lazily")
            data = np.asarray(Checked(array, name)[...])
    except InputError:
        raise
    except MemoryError:
        raise InputError(f"{name} ({shape_text(shape)} {dtype.name}, {human_bytes(nbytes)}) "
                         "does not fit in the memory available now; it is opened lazily "
                         "when it is larger than a quarter of it") from None
    except Exception as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InputError(f"{name}: level {level!r} cannot be read ({detail})") from None
    return ImageData(data=data, axes=axes, scale=scale, path=path, labels_hint=hint)


@dataclass(frozen=True)
class LazySource:
    """An image that each process opens itself, lazily, with :func:`open_image`.

    It holds only the path and how to reduce the image (``select(image, *args)``, a
    module-level function such as the choice of one channel), so it pickles: the workers
    of a cluster open the file themselves and read only the blocks they predict.
    :meth:`open` opens it once per process; :func:`close_sources` forgets what was opened.
    """

    path: str
    series: int | None = None
    select: Callable[..., ImageData] | None = None
    args: tuple = ()
    missing_chunks: str = "refuse"

    def image(self) -> ImageData:
        """The image opened lazily (and reduced by ``select``), its pixels not read."""
        image = open_image(self.path, lazy=True, series=self.series,
                           missing_chunks=self.missing_chunks)
        return image if self.select is None else self.select(image, *self.args)

    def open(self) -> Any:
        """The image's array (a dask array), opened once in this process."""
        key = (os.path.abspath(self.path), self.series, self.select, self.args,
               self.missing_chunks)
        if key not in _opened:
            _opened[key] = self.image().data
        return _opened[key]


_opened: dict[tuple, Any] = {}


def close_sources() -> None:
    """Forget the :class:`LazySource` arrays this process opened (closing their files)."""
    _opened.clear()


def is_image_path(path: str | os.PathLike) -> bool:
    """A TIFF file or a zarr folder."""
    return is_tiff_path(path) or is_zarr_path(path)
