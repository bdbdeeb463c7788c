"""Autosave of the annotations: every minute when they changed, and on close.

The annotations of an image go to ``<image folder>/<image file name>.annotations.tif``
when the image was opened from a folder one can write to, otherwise to
``~/.napari-unet/autosave/<image name>.<image key>.annotations.tif``, where the key
stands for the image's file and shape (or its pixels, for an image without a file). The
annotations of an image opened lazily (too large for memory) are kept chunk by chunk and
saved as OME-Zarr labels, ``.annotations.ome.zarr``, holding only the painted chunks. The
environment variable ``NAPARI_UNET_AUTOSAVE_DIR`` names one folder for all of them
instead. Files are written
atomically (:func:`napari_unet.core.io.tiff.write_tiff`), from a copy taken on the GUI thread,
in a worker thread. When the annotations layer of the same image is created again, the
autosave is loaded into it (:func:`restore`), with a notification that says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QObject, QTimer

from napari_unet.core.io.lazy import is_lazy

if TYPE_CHECKING:
    from napari.layers import Image, Labels

    from .state import Session

log = logging.getLogger(__name__)
AUTOSAVE_ENV = "NAPARI_UNET_AUTOSAVE_DIR"
#: Seconds between two autosaves (only when the annotations changed).
INTERVAL_S = 60.0
SUFFIX = ".annotations.tif"
ZARR_SUFFIX = ".annotations.ome.zarr"


def user_folder() -> Path:
    return Path.home() / ".napari-unet" / "autosave"


def _source(image: Image) -> Path | None:
    path = image.source.path or image.metadata.get("path")
    return Path(path) if path else None


def _is_sample(path: Path) -> bool:
    from napari_unet.samples import sample_dir

    try:
        return path.resolve().parent == sample_dir().resolve()
    except (FileNotFoundError, OSError):
        return False


def _safe_name(text: str, max_bytes: int = 100) -> str:
    """``text`` as a file name: odd characters replaced, no leading dot (no hidden file,
    no "." or ".."), at most ``max_bytes`` bytes (file names stop at 255)."""
    name = re.sub(r"[^\w\-. \[\]()]", "_", text).strip().lstrip(".").strip()
    name = name.encode("utf-8")[:max_bytes].decode("utf-8", "ignore").strip()
    return name or "image"


def image_key(image: Image) -> str:
    """A short code for the identity of ``image``: its resolved file and shape, or for an
    image without a file, a hash of its pixels. Two images of one name differ in it."""
    data = image.data[0] if getattr(image, "multiscale", False) else image.data
    shape = tuple(int(n) for n in np.shape(data))
    digest = hashlib.blake2b(digest_size=6)
    source = _source(image)
    if source is not None:
        with contextlib.suppress(OSError, RuntimeError):
            source = source.resolve()
        digest.update(f"file:{source}:{shape}".encode("utf-8", "surrogateescape"))
    elif is_lazy(data):  # read lazily: never read it all for a key
        digest.update(f"lazy:{image.name}:{np.dtype(data.dtype).str}:{shape}".encode())
    else:
        array = np.ascontiguousarray(np.asarray(data))
        digest.update(f"data:{array.dtype.str}:{shape}:".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def autosave_path(image: Image) -> Path:
    """Where the annotations of ``image`` are autosaved.

    Beside the image file: ``<file name>.annotations.tif``. In a shared folder (the
    user's, or ``NAPARI_UNET_AUTOSAVE_DIR``): ``<name>.<image key>.annotations.tif``, so
    that two images of one name never share an autosave (:func:`image_key`).
    """
    source = _source(image)
    folder = os.environ.get(AUTOSAVE_ENV, "").strip()
    if not folder and source is not None and source.parent.is_dir() and os.access(
            source.parent, os.W_OK) and not _is_sample(source):
        stem = source.name
        for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        return source.parent / (_safe_name(stem, 200) + _suffix(image))
    shared = Path(folder).expanduser() if folder else user_folder()
    return shared / f"{_safe_name(image.name)}.{image_key(image)}{_suffix(image)}"


def _suffix(image: Image) -> str:
    """A TIFF for annotations held in memory; OME-Zarr labels, which store only the
    painted chunks, for those of an image opened lazily."""
    return ZARR_SUFFIX if is_lazy(image.data) else SUFFIX


def _write(path: Path, data) -> Path:
    from napari_unet.core.io.sparse import is_sparse, save_labels_zarr
    from napari_unet.core.io.tiff import write_tiff

    if is_sparse(data) or path.name.endswith(ZARR_SUFFIX):
        save_labels_zarr(path, data, name="annotations")
    else:
        write_tiff(path, data, labels=True)
    return path


def _copy(data):
    """What a worker may write while painting goes on: a copy (of the stored chunks only,
    for sparse annotations)."""
    from napari_unet.core.io.sparse import is_sparse, to_sparse

    return to_sparse(data) if is_sparse(data) else np.asarray(data).copy()


def restore(layer: Labels, image: Image) -> Path | None:
    """Load the autosave of ``image`` into ``layer`` when there is one of its shape."""
    from napari_unet.core.errors import NapariUnetError
    from napari_unet.core.io.tiff import read_tiff
    from napari_unet.core.labels import check_labels_array

    path = autosave_path(image)
    zarr_labels = path.name.endswith(ZARR_SUFFIX)
    if not (path.is_dir() if zarr_labels else path.is_file()):
        return None
    try:
        if zarr_labels:
            from napari_unet.core.io.lazy import open_image
            from napari_unet.core.io.sparse import stored_chunks, to_sparse

            data = to_sparse(open_image(path, lazy=True).data)
            empty = not stored_chunks(data)
        else:
            data = check_labels_array(read_tiff(path).data, "autosaved annotations")
            empty = not data.any()
    except NapariUnetError as exc:
        show_warning(f"The autosaved annotations {path} could not be loaded: {exc}")
        return None
    if tuple(data.shape) != tuple(np.shape(layer.data)) or empty:
        return None
    layer.data = data
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    show_info(f"Restored the annotations of {image.name!r} autosaved on {when} ({path}).")
    return path


class Autosaver(QObject):
    """Autosaves the session's annotations layer; :meth:`close` saves a last time."""

    def __init__(self, session: Session, parent: QObject | None = None,
                 interval_s: float = INTERVAL_S):
        super().__init__(parent)
        self.session = session
        self.layer: Labels | None = None
        self.path: Path | None = None
        self.dirty = False
        self.worker = None
        self._done = threading.Event()
        self._done.set()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.save_in_background)
        self.set_interval(interval_s)
        self._timer.start()
        session.annotations_changed.connect(self.watch)
        self.watch(session.annotations)

    def set_interval(self, seconds: float) -> None:
        self._timer.setInterval(max(1, int(seconds * 1000)))

    def watch(self, layer: Labels | None) -> None:
        """Autosave ``layer`` (the annotations of the session's image) from now on."""
        if layer == self.layer:
            return
        self.save_now()  # what was painted on the previous layer
        self._bind(None)
        image = self.session.image
        if layer is not None and image is not None:
            self.path = autosave_path(image)
            self._bind(layer)

    def _bind(self, layer: Labels | None) -> None:
        if self.layer is not None:
            for emitter in self._emitters(self.layer):
                emitter.disconnect(self.mark_changed)
        self.layer, self.dirty = layer, False
        if layer is not None:
            for emitter in self._emitters(layer):
                emitter.connect(self.mark_changed)

    @staticmethod
    def _emitters(layer: Labels):
        return (layer.events.paint, layer.events.labels_update, layer.events.data)

    def mark_changed(self, event=None) -> None:
        self.dirty = True

    def save_in_background(self):
        """Copy the annotations and write them in a worker when they changed."""
        if not self.dirty or self.layer is None or self.path is None or self.worker is not None:
            return None
        data, path = _copy(self.layer.data), self.path
        self.dirty = False
        self._done = threading.Event()
        worker = create_worker(self._write_and_signal, path, data, self._done,
                               _start_thread=False, _ignore_errors=True)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        worker.start()
        return worker

    @staticmethod
    def _write_and_signal(path: Path, data, done: threading.Event) -> Path:
        try:
            return _write(path, data)
        finally:
            done.set()

    def _on_error(self, exc: BaseException) -> None:
        self.dirty = True  # try again at the next tick
        show_warning(f"Could not autosave the annotations to {self.path}: {exc}")

    def _on_finished(self) -> None:
        self.worker = None

    def save_now(self) -> Path | None:
        """Write the annotations now if they changed; return the file written."""
        self._done.wait(30.0)
        if not self.dirty or self.layer is None or self.path is None:
            return None
        try:
            _write(self.path, self.layer.data)
        except Exception as exc:  # a full disk or a folder one cannot write to
            show_warning(f"Could not autosave the annotations to {self.path}: {exc}")
            return None
        self.dirty = False
        return self.path

    def close(self) -> None:
        """Save a last time and stop (the panel or the viewer closes)."""
        self._timer.stop()
        self.save_now()
        self._bind(None)
        try:
            self.session.annotations_changed.disconnect(self.watch)
        except (TypeError, ValueError, RuntimeError):  # already disconnected
            log.debug("autosave was not connected")
