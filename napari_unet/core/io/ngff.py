"""OME-Zarr outputs written block by block: NGFF 0.4 groups of one array, opened once
per process for writing, built in a temporary folder beside the target and put in place
when complete."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari_unet.core.errors import InputError
from napari_unet.core.io.temporary import remove_stale, temporary_name


def ngff_attrs(name: str, axes: str, scale: Sequence[float], labels: bool) -> dict:
    """OME-NGFF 0.4 ``multiscales`` metadata of one resolution level, path ``0``."""
    kinds = {"c": "channel", "t": "time"}
    meta = {"multiscales": [{
        "version": "0.4",
        "name": name,
        "axes": [{"name": a, "type": kinds.get(a, "space")} for a in axes.lower()],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [float(s) for s in scale]}]}],
    }]}
    if labels:
        meta["image-label"] = {"version": "0.4"}
    return meta


def create_group(folder: Path, name: str, shape, chunks, dtype, axes: str, scale, labels: bool):
    """An OME-Zarr group (zarr format 2, as NGFF 0.4 asks) with one array ``0``."""
    import zarr

    kwargs = {"shape": tuple(shape), "chunks": tuple(chunks), "dtype": dtype, "fill_value": 0}
    if int(zarr.__version__.split(".")[0]) >= 3:
        group = zarr.open_group(str(folder), mode="w", zarr_format=2)
        group.create_array("0", chunk_key_encoding={"name": "v2", "separator": "/"},
                           **kwargs)
    else:  # zarr 2 (Python 3.10)
        group = zarr.open_group(str(folder), mode="w")
        group.create_dataset("0", dimension_separator="/", **kwargs)
    group.attrs.update(ngff_attrs(name, axes, scale, labels))
    return str(folder / "0")


opened: dict[str, Any] = {}


def open_output(path: str) -> Any:
    if path not in opened:
        import zarr

        opened[path] = zarr.open_array(path, mode="r+")
    return opened[path]


def temp_beside(path: Path) -> Path:
    """A temporary name beside ``path`` (:mod:`~.io.temporary`), after removing what
    killed processes left for it."""
    remove_stale(path)
    return temporary_name(path)


def put_in_place(tmp: Path, path: Path, overwrite: bool) -> None:
    if os.path.lexists(path):
        if not overwrite:
            raise InputError(f"{path} exists; give --overwrite to replace it")
        old = temp_beside(path)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
    else:
        os.replace(tmp, path)
