"""TIFF in and out: axes, dtype, scale, written atomically (never half a file).

What the metadata say is read in :mod:`.tiff_metadata`; whether an array is a label image
is judged in :mod:`.label_images`.

Only numpy and tifffile: the napari reader and the sample data use this module and must
not import torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from napari_unet.core.errors import InputError
from napari_unet.core.io.paths import atomic_write, special_kind
from napari_unet.core.io.tiff_metadata import axes_scale, labels_hint, metadata_properties
from napari_unet.core.labels import labels_dtype

TIFF_SUFFIXES = (".tif", ".tiff", ".ome.tif", ".ome.tiff")
#: Images larger than this are refused instead of exhausting memory (bytes, in memory);
#: the environment variable NAPARI_UNET_MAX_IMAGE_BYTES, read at each call, overrides it.
MAX_IMAGE_BYTES = 8 * 1024**3


@dataclass
class ImageData:
    """An image with its axes (e.g. ``"ZYX"``) and pixel scale: a numpy array, or a dask
    array when opened lazily (:func:`~.lazy.open_image`)."""

    data: np.ndarray
    axes: str
    scale: tuple[float, ...] = field(default=())
    path: Path | None = None
    labels_hint: bool | None = None  # what the file's metadata says: labels, image or nothing

    @property
    def name(self) -> str:
        if self.path is None:
            return "image"
        name = self.path.name
        for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".ome.zarr", ".zarr"):
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return self.path.stem


def max_image_bytes() -> int:
    """The largest image read, in bytes in memory (see :data:`MAX_IMAGE_BYTES`)."""
    value = os.environ.get("NAPARI_UNET_MAX_IMAGE_BYTES", "").strip()
    try:
        return int(float(value)) if value else MAX_IMAGE_BYTES
    except ValueError:
        return MAX_IMAGE_BYTES


def physical_memory() -> int | None:
    """The computer's memory in bytes, when the system says."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def is_tiff_path(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(TIFF_SUFFIXES)


def _describe(series: tifffile.TiffPageSeries) -> str:
    shape = "x".join(str(n) for n in series.shape)
    return f"{series.axes} {shape} {np.dtype(series.dtype).name}"


def _uncompressed(series: tifffile.TiffPageSeries) -> bool:
    """Whether the series is stored without compression (then it cannot be larger in
    memory than the file is on disk)."""
    try:
        return int(series.keyframe.compression) == 1
    except Exception:  # no pages or an unusual layout: do not judge
        return False


def check_file(path: Path, what: str = "a TIFF file") -> None:
    """Refuse a path that is missing, a folder, a device or a pipe, or an empty file."""
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not {what}")
    kind = special_kind(path)
    if kind is not None:
        raise InputError(f"{path} is {kind}, not {what}")
    if path.stat().st_size == 0:
        raise InputError(f"{path.name} is empty (0 bytes)")


def choose_series(tif: tifffile.TiffFile, path: Path,
                  series: int | None) -> tifffile.TiffPageSeries:
    """The series of ``tif`` to read, checked: one of several needs ``series``; complex
    numbers, an empty axis or an uncompressed image larger than the file are refused."""
    if not tif.series:
        raise InputError(f"{path.name} holds no image")
    n = len(tif.series)
    if series is None and n > 1:
        listing = "; ".join(f"{i}: {_describe(s)}" for i, s in enumerate(tif.series))
        raise InputError(f"{path.name} holds {n} images (series {listing}); choose "
                         "one with --series N")
    index = 0 if series is None else series
    if not 0 <= index < n:
        raise InputError(f"--series {index} does not exist: {path.name} holds "
                         + ("one series (0)" if n == 1 else f"series 0 to {n - 1}"))
    chosen = tif.series[index]
    shape, dtype = tuple(chosen.shape), np.dtype(chosen.dtype)
    if dtype.kind == "c":
        raise InputError(f"{path.name} holds complex numbers ({dtype.name}); save "
                         "their magnitude or real part as an image first")
    if any(s == 0 for s in shape) or not shape:
        raise InputError(f"{path.name} has an empty axis (shape {shape})")
    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    size = path.stat().st_size
    if _uncompressed(chosen) and nbytes > size:
        raise InputError(
            f"{path.name} declares an uncompressed image of shape {shape} "
            f"({nbytes:,} bytes) but the file has {size:,} bytes: it is truncated or "
            "damaged"
        )
    return chosen


def unreadable(path: Path, exc: BaseException) -> InputError:
    """The sentence for a TIFF that a parser failed on."""
    detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return InputError(f"{path.name} is not a readable TIFF file ({detail})")


def read_tiff(path: str | os.PathLike, *, max_bytes: int | None = None,
              series: int | None = None) -> ImageData:
    """Read a TIFF (ImageJ hyperstacks, OME-TIFF, LZW, JPEG... included).

    A file of several series (images) needs ``series`` (from 0); without it the file is
    refused with the list of its series. Raises :class:`InputError` with a sentence for
    the user when the file is missing, not a TIFF, empty, truncated, has a zero-sized axis,
    declares more pixels than it holds, or is larger than ``max_bytes`` (default:
    NAPARI_UNET_MAX_IMAGE_BYTES or :data:`MAX_IMAGE_BYTES`).
    """
    path = Path(path)
    limit = max_image_bytes() if max_bytes is None else max_bytes
    check_file(path)
    try:
        with tifffile.TiffFile(path) as tif:
            chosen = choose_series(tif, path, series)
            shape, dtype = tuple(chosen.shape), np.dtype(chosen.dtype)
            nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
            if nbytes > limit:
                raise InputError(
                    f"{path.name} needs {nbytes / 1024**3:.1f} GiB in memory, more than the "
                    f"{limit / 1024**3:.1f} GiB allowed; crop it or split it into smaller stacks"
                )
            ram = physical_memory()
            if ram and nbytes > ram:
                raise InputError(
                    f"{path.name} needs {nbytes / 1024**3:.1f} GiB in memory, more than this "
                    f"computer has ({ram / 1024**3:.1f} GiB); crop it or split it"
                )
            data = chosen.asarray()
            axes = chosen.axes
            scale = axes_scale(tif, chosen)
            hint = labels_hint(metadata_properties(tif))
    except InputError:
        raise
    except MemoryError:
        raise InputError(f"{path.name} does not fit in memory; crop it or split it") from None
    except Exception as exc:  # any parser failure on a damaged file: not a usable TIFF
        raise unreadable(path, exc) from None
    if data.size == 0 or data.shape != shape:
        raise InputError(f"{path.name} is truncated or damaged (expected shape {shape})")
    return ImageData(data=data, axes=axes, scale=scale, path=path, labels_hint=hint)


def tiff_series_count(path: str | os.PathLike) -> int:
    """How many series (images) a TIFF holds; 1 when it cannot tell."""
    try:
        with tifffile.TiffFile(path) as tif:
            return max(1, len(tif.series))
    except Exception:  # the reader says what is wrong with it
        return 1


def write_tiff(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    axes: str | None = None,
    scale: tuple[float, ...] | None = None,
    labels: bool = False,
    mark: dict[str, str] | None = None,
) -> None:
    """Write an image or a label image as a zlib-compressed TIFF, atomically.

    Integer labels keep every id: uint8, uint16, uint32 or uint64 by the largest one
    (negative ids are refused); other data is stored as float32. ``axes`` (default YX,
    ZYX, ZCYX by the number of dimensions) are all kept, axes of length one included. The
    file is an ImageJ hyperstack when ImageJ can hold it (8 or 16-bit labels, float32, no
    axis of length one), otherwise a plain TIFF with the axes in its description (Fiji
    opens both). With ``labels`` the file says it holds labels (an ImageJ property, or a
    key of the description, ``labels = true``), so that it opens as labels whatever its
    values; ``mark`` adds such keys (what wrote the file, for instance).
    """
    data = np.asarray(data)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    if np.issubdtype(data.dtype, np.integer):
        lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
        if lo < 0:
            raise InputError(f"labels with negative values (down to {lo}) cannot be saved as "
                             "TIFF labels; relabel them from 0")
        data = data.astype(labels_dtype(hi), copy=False)
    elif data.dtype != np.float32:
        data = data.astype(np.float32)
    if axes is None:
        axes = {2: "YX", 3: "ZYX", 4: "ZCYX"}.get(data.ndim)
    if axes is not None and len(axes) != data.ndim:
        raise InputError(f"axes {axes} do not fit an array of shape {data.shape}")
    order = "TZCYXS"
    imagej = (
        data.dtype in (np.uint8, np.uint16, np.float32) and axes is not None
        and set(axes) <= set(order) and len(set(axes)) == len(axes)
        and list(axes) == sorted(axes, key=order.index)
        and all(n > 1 for n, ax in zip(data.shape, axes) if ax not in "YX")
    )
    metadata = {"axes": axes} if axes else {}
    resolution = None
    if scale and axes and len(scale) == len(axes):
        sx = scale[axes.index("X")] if "X" in axes else 1.0
        sy = scale[axes.index("Y")] if "Y" in axes else 1.0
        resolution = (1.0 / sx, 1.0 / sy)
        if "Z" in axes and imagej:
            metadata["spacing"] = scale[axes.index("Z")]

    plain = {"axes": axes} if axes else {}
    properties = {"labels": "true"} if labels else {}
    properties.update({str(k): str(v) for k, v in (mark or {}).items()})
    if properties:  # ImageJ properties, or keys of the description
        metadata["Properties"] = properties
        plain.update({k: True if v == "true" else v for k, v in properties.items()})

    def _write(tmp: Path) -> None:
        tifffile.imwrite(
            tmp,
            data,
            imagej=imagej,
            metadata=metadata if imagej else plain or None,
            resolution=resolution,
            compression="zlib",
        )

    atomic_write(path, _write)
