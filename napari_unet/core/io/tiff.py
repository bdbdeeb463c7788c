"""TIFF in and out: axes, dtype, scale; atomic writes that never leave half a file.

Only numpy and tifffile: the napari reader and the sample data use this module and must
not import torch.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from napari_unet.core.errors import InputError
from napari_unet.core.io.paths import check_writable, new_file_mode, special_kind, write_target

TIFF_SUFFIXES = (".tif", ".tiff", ".ome.tif", ".ome.tiff")
#: Images larger than this are refused instead of exhausting memory (bytes, in memory);
#: the environment variable NAPARI_UNET_MAX_IMAGE_BYTES, read at each call, overrides it.
MAX_IMAGE_BYTES = 8 * 1024**3
#: Metadata keys and values that say a file is a label image: an ImageJ property, a key of
#: tifffile's JSON description or an OME map annotation ``labels = true``, or ``kind`` (or
#: ``type``) = one of :data:`LABEL_KINDS`.
LABEL_KINDS = ("labels", "label", "label image", "mask", "segmentation", "annotations")


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


def _axes_scale(tif: tifffile.TiffFile, series: tifffile.TiffPageSeries) -> tuple[float, ...]:
    """Pixel spacing per axis from ImageJ or OME metadata and the resolution tags."""
    axes = series.axes
    scale = {ax: 1.0 for ax in axes}
    page = series.pages[0] if series.pages else None
    with suppress(Exception):
        if page is not None and "XResolution" in page.tags:
            num, den = page.tags["XResolution"].value
            if num:
                scale["X"] = den / num
            num, den = page.tags["YResolution"].value
            if num:
                scale["Y"] = den / num
    with suppress(Exception):
        if tif.imagej_metadata and "spacing" in tif.imagej_metadata:
            scale["Z"] = float(tif.imagej_metadata["spacing"])
    with suppress(Exception):
        if tif.is_ome:
            import xml.etree.ElementTree as ET

            root = ET.fromstring(tif.ome_metadata)
            for el in root.iter():
                if el.tag.endswith("Pixels"):
                    for ax in "XYZ":
                        value = el.attrib.get(f"PhysicalSize{ax}")
                        if value:
                            scale[ax] = float(value)
                    break
    return tuple(float(scale[ax]) if scale[ax] > 0 else 1.0 for ax in axes)


def _metadata_properties(tif: tifffile.TiffFile) -> dict[str, str]:
    """Key-value metadata of a TIFF: ImageJ properties, tifffile's JSON description and
    OME map annotations, keys in lower case."""
    found: dict[str, str] = {}
    with suppress(Exception):
        for key, value in ((tif.imagej_metadata or {}).get("Properties") or {}).items():
            found[str(key).lower()] = str(value)
    with suppress(Exception):
        for key, value in (tif.shaped_metadata[0] if tif.shaped_metadata else {}).items():
            if isinstance(value, str | bool | int):
                found[str(key).lower()] = str(value)
    with suppress(Exception):
        if tif.is_ome:
            import xml.etree.ElementTree as ET

            for el in ET.fromstring(tif.ome_metadata).iter():
                if el.tag.endswith("}M") and el.attrib.get("K"):
                    found[el.attrib["K"].lower()] = el.text or ""
    return found


def labels_hint(properties: dict[str, str]) -> bool | None:
    """``True`` when metadata declare a label image, ``False`` an image, ``None`` when
    they say nothing."""
    flag = properties.get("labels", "").strip().lower()
    if flag in ("true", "1", "yes"):
        return True
    if flag in ("false", "0", "no"):
        return False
    kind = (properties.get("kind") or properties.get("type") or "").strip().lower()
    if kind in LABEL_KINDS:
        return True
    if kind in ("image", "raw", "intensity"):
        return False
    return None


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
            scale = _axes_scale(tif, chosen)
            hint = labels_hint(_metadata_properties(tif))
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


def looks_like_labels(data: np.ndarray, hint: bool | None = None) -> bool:
    """Whether an array is clearly a label image; when unsure, it is not.

    ``hint``, what the file's metadata say (:func:`labels_hint`), decides for integer,
    boolean or whole-number data. Otherwise the data decide: booleans; integers (or whole
    floats) from 0 with at most 64 distinct values (microscopy images are noisy); or integers from 0
    with more values that are piecewise constant, as many objects are (four in five
    neighbouring pixels equal where either is not 0). A file's name never decides.
    """
    if hint is not None:
        if not hint:
            return False
        if np.issubdtype(data.dtype, np.floating):  # labels saved as floats: 0.0, 1.0, ...
            return bool(np.all(np.isfinite(data)) and np.all(data == np.round(data)))
        return np.issubdtype(data.dtype, np.integer) or data.dtype == np.bool_
    if data.dtype == np.bool_:
        return True
    if data.ndim < 2 or not data.size:
        return False
    sample = data.ravel()[:: max(1, data.size // 1_000_000)]
    if np.issubdtype(data.dtype, np.floating):  # labels saved as floats: 0.0, 1.0, ... 63.0
        values = np.unique(sample)
        return bool(2 <= values.size <= 64 and np.all(np.isfinite(values)) and values[0] == 0
                    and np.all(values == np.round(values))
                    and np.all(data == np.round(data)))
    if not np.issubdtype(data.dtype, np.integer):
        return False
    values = np.unique(sample)
    if values[0] != 0:
        return False
    if values.size <= 64:
        return True
    if values.size > min(65536, data.size // 16):
        return False
    return _piecewise_constant(data) >= 0.8


def _piecewise_constant(data: np.ndarray) -> float:
    """The fraction of horizontally and vertically neighbouring pixel pairs, one of them not
    0, that are equal (up to about a million pairs of the first planes)."""
    planes = data.reshape(-1, *data.shape[-2:])
    planes = planes[: max(1, 1_000_000 // max(1, planes[0].size))]
    equal = total = 0
    for a, b in ((planes[..., 1:, :], planes[..., :-1, :]),
                 (planes[..., :, 1:], planes[..., :, :-1])):
        either = (a != 0) | (b != 0)
        equal += int(np.count_nonzero(either & (a == b)))
        total += int(np.count_nonzero(either))
    return equal / total if total else 1.0


def as_label_dtype(data: np.ndarray) -> np.ndarray:
    """Labels as the smallest integer type that holds them (bool and whole floats too)."""
    if data.dtype == np.bool_:
        return data.astype(np.uint8)
    if np.issubdtype(data.dtype, np.integer) or not data.size:
        return data
    lo, hi = float(np.min(data)), float(np.max(data))
    if lo >= 0 and hi < 2**16:
        return data.astype(np.uint8 if hi < 256 else np.uint16)
    return data.astype(np.int32 if lo >= -(2**31) and hi < 2**31 else np.int64)


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
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=".tmp",
                                        dir=path.parent)
        tmp = Path(tmp_name)
        os.close(fd)
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


def write_tiff(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    axes: str | None = None,
    scale: tuple[float, ...] | None = None,
    labels: bool = False,
) -> None:
    """Write an image or a label image as a zlib-compressed TIFF, atomically.

    Integer labels keep every id: uint8, uint16, uint32 or uint64 by the largest one
    (negative ids are refused); other data is stored as float32. ``axes`` (default YX,
    ZYX, ZCYX by the number of dimensions) are all kept, axes of length one included. The
    file is an ImageJ hyperstack when ImageJ can hold it (8 or 16-bit labels, float32, no
    axis of length one), otherwise a plain TIFF with the axes in its description (Fiji
    opens both). With ``labels`` the file says it holds labels (an ImageJ property, or a
    key of the description, ``labels = true``), so that it opens as labels whatever its
    values.
    """
    data = np.asarray(data)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    if np.issubdtype(data.dtype, np.integer):
        lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
        if lo < 0:
            raise InputError(f"labels with negative values (down to {lo}) cannot be saved as "
                             "TIFF labels; relabel them from 0")
        dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64)
                     if hi <= np.iinfo(t).max)
        data = data.astype(dtype, copy=False)
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
    if labels:
        metadata["Properties"] = {"labels": "true"}
        plain["labels"] = True

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
