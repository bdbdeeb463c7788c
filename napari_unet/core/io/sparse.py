"""Labels of images that need not fit in memory: held sparsely (only the chunks that hold
a label), saved as OME-Zarr labels or TIFF slice by slice, read back lazily.

A sparse labels array is a zarr array in memory whose chunks are one slice deep; chunks
that hold only 0 are not stored, so annotating a few slices of a 100 GB stack holds only
the chunks painted. napari paints on it like on a numpy array. Only numpy, tifffile and
zarr here: no torch.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from napari_unet.core.errors import InputError
from napari_unet.core.io.temporary import make_folder, temporary_name
from napari_unet.core.labels import labels_dtype

#: Chunk side (pixels in Y and X) of sparse labels: small enough that a stroke holds
#: little, large enough that a painted slice is not thousands of chunks.
CHUNK = 512
_NGFF_AXES = {"T": ("t", "time"), "C": ("c", "channel"), "Z": ("z", "space"),
              "Y": ("y", "space"), "X": ("x", "space")}


def sparse_labels(shape: tuple[int, ...], dtype: Any = np.uint8,
                  chunks: tuple[int, ...] | None = None):
    """An empty labels array of ``shape`` held in memory chunk by chunk (zarr): only
    chunks holding a label other than 0 take memory."""
    import zarr
    from zarr.storage import MemoryStore

    shape = tuple(int(n) for n in shape)
    if chunks is None:
        chunks = (1,) * (len(shape) - 2) + tuple(min(n, CHUNK) for n in shape[-2:])
    return zarr.create_array(store=MemoryStore(), shape=shape, chunks=chunks, dtype=dtype,
                             fill_value=0, config={"write_empty_chunks": False})


def is_sparse(array: Any) -> bool:
    """Whether ``array`` is a zarr array (sparse labels or labels read from OME-Zarr)."""
    import zarr

    return isinstance(array, zarr.Array)


def stored_chunks(array) -> list[tuple[int, ...]]:
    """Grid coordinates of the chunks of a zarr array that are stored (hold a label)."""
    from zarr.core.sync import sync

    prefix = f"{array.path}/" if array.path else ""

    async def keys() -> list[str]:
        return [k async for k in array.store.list_prefix(prefix)]

    found = []
    ndim = array.ndim
    for key in sync(keys()):
        parts = key[len(prefix):].split("/")
        if parts and parts[0] == "c":
            parts = parts[1:]
        elif len(parts) == 1 and "." in parts[0]:  # zarr v2: "z.y.x"
            parts = parts[0].split(".")
        if len(parts) == ndim and all(p.isdigit() for p in parts):
            found.append(tuple(int(p) for p in parts))
    if ndim == 0:
        return found
    return sorted(found)


def chunk_region(array, coords: tuple[int, ...]) -> tuple[slice, ...]:
    """The slices of the array that chunk ``coords`` covers."""
    return tuple(slice(c * n, min((c + 1) * n, size))
                 for c, n, size in zip(coords, array.chunks, array.shape))


def annotated_slices(array) -> list[int]:
    """The slices (first axis of a stack; ``[0]`` for 2D) where a label is stored."""
    chunks = stored_chunks(array)
    if array.ndim == 2:
        return [0] if chunks else []
    depth = array.chunks[0]
    found: set[int] = set()
    for c in chunks:
        found.update(range(c[0] * depth, min((c[0] + 1) * depth, array.shape[0])))
    return sorted(found)


def to_sparse(data: Any, dtype: Any = None, chunks: tuple[int, ...] | None = None):
    """Labels (numpy, dask or zarr) copied into :func:`sparse_labels` (of ``dtype``, by
    default theirs): for sparse labels only their stored chunks, else plane by plane."""
    data_shape = tuple(data.shape)
    dtype = np.dtype(data.dtype if dtype is None else dtype)
    if is_sparse(data):
        out = sparse_labels(data_shape, dtype, chunks or tuple(data.chunks))
        for coords in stored_chunks(data):
            region = chunk_region(data, coords)
            out[region] = np.asarray(data[region]).astype(dtype, copy=False)
        return out
    out = sparse_labels(data_shape, dtype, chunks)
    for index in _planes(data_shape):
        plane = np.asarray(data[index])
        if plane.any():
            out[index] = plane.astype(dtype, copy=False)
    return out


def _planes(shape: tuple[int, ...]) -> Iterator[tuple]:
    """Indices of the 2D planes of an array of ``shape`` (one: ``...`` for 2D)."""
    if len(shape) == 2:
        yield (Ellipsis,)
        return
    yield from np.ndindex(*shape[:-2])


def _label_dtype(array) -> np.dtype:
    """uint8 to uint64 by the largest stored label; negative ones are refused."""
    hi = 0
    for coords in stored_chunks(array) if is_sparse(array) else [None]:
        block = np.asarray(array[chunk_region(array, coords)] if coords is not None else array)
        if block.size:
            lo = int(block.min())
            if lo < 0:
                raise InputError(f"labels with negative values (down to {lo}) cannot be "
                                 "saved; relabel them from 0")
            hi = max(hi, int(block.max()))
    return labels_dtype(hi)


def _ngff_axes(axes: str) -> list[dict]:
    out = []
    for ax in axes:
        name, kind = _NGFF_AXES.get(ax, (ax.lower(), "space"))
        out.append({"name": name, "type": kind})
    return out


def save_labels_zarr(path: str | os.PathLike, labels, *, axes: str | None = None,
                     scale: tuple[float, ...] | None = None, name: str = "labels") -> Path:
    """Save labels as an OME-Zarr label image (NGFF 0.5) at ``path``, atomically.

    Only the chunks that hold a label are written (all of them for a numpy or dask
    array, whose chunks are written plane by plane). The folder is written under a
    temporary name beside ``path`` and then renamed into place, so a failure leaves any
    previous labels intact. When ``path`` is ``<image>.zarr/labels/<name>`` the
    ``labels`` group of that image lists the new labels (the image itself is not
    touched). Returns ``path``.
    """
    import zarr

    path = Path(path)
    shape = tuple(int(n) for n in labels.shape)
    if axes is None:
        axes = {2: "YX", 3: "ZYX", 4: "TZYX"}.get(len(shape), "Q" * len(shape))
    if len(axes) != len(shape):
        raise InputError(f"axes {axes} do not fit labels of shape {shape}")
    scale = tuple(float(s) for s in scale) if scale and len(scale) == len(shape) else (
        1.0,) * len(shape)
    dtype = _label_dtype(labels)
    chunks = (tuple(labels.chunks) if is_sparse(labels) else
              (1,) * (len(shape) - 2) + tuple(min(n, CHUNK) for n in shape[-2:]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_folder(path)
    try:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        group.attrs["ome"] = {
            "version": "0.5",
            "multiscales": [{
                "name": name, "axes": _ngff_axes(axes),
                "datasets": [{"path": "0", "coordinateTransformations": [
                    {"type": "scale", "scale": list(scale)}]}],
            }],
            "image-label": {"version": "0.5"},
        }
        out = group.create_array("0", shape=shape, chunks=chunks, dtype=dtype, fill_value=0,
                                 config={"write_empty_chunks": False})
        if is_sparse(labels):
            for coords in stored_chunks(labels):
                region = chunk_region(labels, coords)
                out[region] = np.asarray(labels[region]).astype(dtype, copy=False)
        else:
            for index in _planes(shape):
                plane = np.asarray(labels[index])
                if plane.any():
                    out[index] = plane.astype(dtype, copy=False)
        _replace_folder(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _list_in_labels_group(path)
    return path


def _replace_folder(tmp: Path, path: Path) -> None:
    """Move the folder ``tmp`` to ``path``; an existing ``path`` is replaced only once the
    new folder is complete (moved aside, then removed)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise InputError(f"{path} exists and is not a folder of labels; choose another name")
    old = None
    if path.exists():
        old = temporary_name(path)
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _list_in_labels_group(path: Path) -> None:
    """When ``path`` is ``<image>.zarr/labels/<name>``, list it in the ``labels`` group."""
    import zarr

    labels_dir, image_dir = path.parent, path.parent.parent
    if labels_dir.name != "labels" or not (image_dir / "zarr.json").exists() and not (
            image_dir / ".zattrs").exists():
        return
    with suppress(Exception):
        group = zarr.open_group(str(labels_dir), mode="a", zarr_format=3)
        ome = dict(group.attrs.get("ome") or {"version": "0.5"})
        names = list(ome.get("labels") or [])
        if path.name not in names:
            names.append(path.name)
        ome["labels"] = names
        group.attrs["ome"] = ome


def write_labels_tiff(path: str | os.PathLike, labels, *, axes: str | None = None,
                      scale: tuple[float, ...] | None = None) -> None:
    """Save labels (numpy, dask or zarr) as a compressed label TIFF, plane by plane,
    atomically: only one plane is held at a time, so labels larger than memory are saved
    too (as BigTIFF beyond 2 GiB)."""
    import tifffile

    from napari_unet.core.io.paths import atomic_write

    shape = tuple(int(n) for n in labels.shape)
    if axes is None:
        axes = {2: "YX", 3: "ZYX", 4: "TZYX"}.get(len(shape), "Q" * len(shape))
    dtype = _label_dtype(labels)
    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    resolution = None
    if scale and len(scale) == len(shape) and "X" in axes and "Y" in axes:
        resolution = (1.0 / scale[axes.index("X")], 1.0 / scale[axes.index("Y")])

    def planes() -> Iterator[np.ndarray]:
        for index in _planes(shape):
            yield np.asarray(labels[index]).astype(dtype, copy=False)

    # An ImageJ hyperstack keeps the z step (its ``spacing``), as write_tiff does; one
    # that ImageJ cannot hold is a plain TIFF with its axes in the description.
    imagej = (dtype in (np.uint8, np.uint16) and nbytes <= 2 * 1024**3 and axes in (
        "YX", "ZYX", "TZYX") and all(n > 1 for n in shape[:-2]))
    metadata = {"axes": axes, "labels": True}
    if imagej:
        metadata = {"axes": axes, "Properties": {"labels": "true"}}
        if scale and len(scale) == len(shape) and "Z" in axes:
            metadata["spacing"] = float(scale[axes.index("Z")])

    def _write(tmp: Path) -> None:
        tifffile.imwrite(tmp, planes(), shape=shape, dtype=dtype, compression="zlib",
                         photometric="minisblack", imagej=imagej,
                         bigtiff=nbytes > 2 * 1024**3, resolution=resolution,
                         metadata=metadata)

    atomic_write(path, _write)
