"""Predicting many files: the list of (input, outputs), what is already done, one file.

A folder or a pattern (``folder/*.tif``) names the inputs; each one gets
``<name>_labels.tif`` (and ``<name>_probabilities.tif`` when asked) in the output folder.
A file whose outputs exist, are newer than both the input and the model, and are complete
readable TIFFs of the image's shape is done and skipped unless asked to redo it. When the
output folder is the images' folder, the predictions written there by an earlier run (by
their names and the mark the writer puts in them) are not inputs, so the same command
runs again. Temporary files that a killed run left in an output folder are removed. Each file is read, predicted and written on its own, so
a bad file costs only its own line of the summary; the same :func:`run_job` runs in this
process or on the workers of a dask cluster (:mod:`.cluster`).
"""

from __future__ import annotations

import glob
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_unet.core.config import MIN_OBJECT_SIZE
from napari_unet.core.errors import InputError, NapariUnetError, failure_message
from napari_unet.core.io.paths import same_file
from napari_unet.core.io.temporary import remove_stale_in
from napari_unet.core.io.tiff import is_tiff_path, write_tiff

#: Characters that make ``--image`` a pattern rather than a file name.
PATTERN_CHARS = "*?["
LABELS_SUFFIX = "_labels.tif"
PROBABILITIES_SUFFIX = "_probabilities.tif"


def is_many(text: str | os.PathLike) -> bool:
    """Whether ``text`` names several files: an existing folder, or a pattern that is
    not itself the name of an existing file."""
    text = str(text)
    if os.path.isdir(text):
        return True
    return any(c in text for c in PATTERN_CHARS) and not os.path.lexists(text)


def stem(path: Path) -> str:
    """The file name without its TIFF suffix (``a.ome.tif`` -> ``a``)."""
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def find_images(text: str | os.PathLike) -> list[Path]:
    """The TIFF files in a folder or matching a pattern, sorted; an
    :class:`InputError` when there are none."""
    text = str(text)
    if os.path.isdir(text):
        found = [p for p in sorted(Path(text).iterdir()) if p.is_file() and is_tiff_path(p)]
        if not found:
            raise InputError(f"the folder {text} holds no TIFF file (.tif or .tiff)")
        return found
    matches = [Path(p) for p in sorted(glob.glob(text))]
    found = [p for p in matches if p.is_file() and is_tiff_path(p)]
    if not found:
        what = f"{len(matches)} files but no TIFF file" if matches else "no file"
        raise InputError(f"--image {text} matches {what}; give a folder or a pattern such "
                         "as 'folder/*.tif' (quoted)")
    return found


def collect_images(items: list[str | os.PathLike]) -> list[Path]:
    """The files that ``--image`` names: folders and patterns as :func:`find_images`,
    other names as given (one that does not exist fails on its own line), each once."""
    found, seen = [], set()
    for item in items:
        for path in find_images(item) if is_many(item) else [Path(item)]:
            key = os.path.abspath(path)
            if key not in seen:
                seen.add(key)
                found.append(path)
    return found


@dataclass(frozen=True)
class Job:
    """One input and the files predicted from it."""

    image: Path
    labels: Path
    probabilities: Path | None = None

    @property
    def outputs(self) -> list[Path]:
        return [p for p in (self.labels, self.probabilities) if p is not None]


def check_folder(folder: str | os.PathLike, option: str = "--out") -> Path:
    """``folder`` as a :class:`Path` when outputs can be written in it (it may not exist
    yet), else an :class:`InputError` saying why."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{option} {folder} is a file: with several images, {option} is "
                         "the folder the outputs are written to")
    if not folder.exists() and is_tiff_path(folder):
        raise InputError(f"{option} {folder} looks like a TIFF file: with several images, "
                         f"{option} is the folder the outputs are written to")
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{option} {folder} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK) or not os.stat(existing).st_mode & 0o222:
        where = "is write-protected" if existing == folder else (
            f"cannot be created: {existing} is write-protected")
        raise InputError(f"{option} {folder} {where}; choose a folder you can write to")
    if folder.is_dir():
        remove_stale_in(folder)
    return folder


#: The key the outputs of a folder prediction carry in their TIFF metadata.
OUTPUT_MARK = "napari_unet_output"


def own_output(path: Path, images: set[str]) -> bool:
    """Whether ``path`` is an output that napari-unet's folder prediction wrote for one of
    ``images`` (file names without their suffix): named ``<name>_labels.tif`` or
    ``<name>_probabilities.tif`` and marked so in its metadata."""
    import tifffile

    from napari_unet.core.io.tiff_metadata import metadata_properties

    name = path.name
    kind = next((k for k, suffix in (("labels", LABELS_SUFFIX),
                                     ("probabilities", PROBABILITIES_SUFFIX))
                 if name.endswith(suffix) and name[: -len(suffix)] in images), None)
    if kind is None:
        return False
    try:
        with tifffile.TiffFile(path) as tif:
            return metadata_properties(tif).get(OUTPUT_MARK.lower()) == kind
    except Exception:  # not a readable TIFF: not one of ours
        return False


def plan_jobs(images: list[Path], out: Path, probabilities: Path | None = None,
              extra_inputs: list[Path] = ()) -> list[Job]:
    """One :class:`Job` per image. The outputs of an earlier run into the same folder
    (:func:`own_output`) are not images to predict. Refused: two images of the same name
    (their outputs would collide) and any output that is an input (an image or
    ``extra_inputs``)."""
    jobs, seen = [], {}
    folders = [f for f in (out, probabilities) if f is not None]
    names = {stem(image) for image in images}
    images = [image for image in images if not (
        any(same_file(image.parent, f) for f in folders) and own_output(image, names))]
    for image in images:
        name = stem(image)
        if name in seen:
            raise InputError(f"{seen[name].name} and {image} would both be predicted to "
                             f"{name}{LABELS_SUFFIX}; give images with different names")
        seen[name] = image
        jobs.append(Job(image, out / f"{name}{LABELS_SUFFIX}",
                        None if probabilities is None
                        else probabilities / f"{name}{PROBABILITIES_SUFFIX}"))
    inputs = [*images, *extra_inputs]
    for job in jobs:
        for output in job.outputs:
            for path in inputs:
                if same_file(output, path):
                    raise InputError(
                        f"the output {output} of {job.image.name} is also an input, and not "
                        "a prediction of napari-unet: writing it would replace it; choose "
                        "an output folder apart from the images")
    return jobs


def is_done(job: Job, model: Path | int) -> bool:
    """Whether every output of ``job`` exists, is newer than its image and the model (the
    model's file, or the time, ``time.time_ns()``, a model in memory last changed) and is
    a complete TIFF of the image's shape (:func:`complete_output`)."""
    try:
        model_ns = model if isinstance(model, int) else os.stat(model).st_mtime_ns
        since = max(os.stat(job.image).st_mtime_ns, model_ns)
        if not all(os.stat(p).st_mtime_ns > since for p in job.outputs):
            return False
    except OSError:
        return False
    return complete_output(job.labels, job.image, probabilities=False) and (
        job.probabilities is None or complete_output(job.probabilities, job.image,
                                                     probabilities=True))


def _plane_shape(image: Path) -> tuple[int, ...] | None:
    """The shape of the labels predicted from ``image``: its shape without channels."""
    import tifffile

    try:
        with tifffile.TiffFile(image) as tif:
            series = tif.series[0]
            return tuple(n for n, ax in zip(series.shape, series.axes) if ax not in "CS")
    except Exception:
        return None


def complete_output(output: Path, image: Path, probabilities: bool) -> bool:
    """Whether ``output`` is a TIFF that reads to its end and has the shape of the labels
    of ``image`` (probabilities: that shape with one more axis, of classes)."""
    import tifffile

    expected = _plane_shape(image)
    try:
        with tifffile.TiffFile(output) as tif:
            series = tif.series[0]
            shape = tuple(series.shape)
            if expected is not None:
                squeezed = tuple(n for n in shape if n != 1)
                want = tuple(n for n in expected if n != 1)
                if probabilities:  # the classes on an axis of their own
                    if squeezed[-2:] != want[-2:] or math.prod(squeezed) % max(
                            1, math.prod(want)) or len(squeezed) != len(want) + 1:
                        return False
                elif squeezed != want:
                    return False
            pages = series.pages
            for page in (pages[0], pages[-1]) if len(pages) > 1 else (pages[0],):
                page.asarray()  # a truncated or damaged file fails here
    except Exception:
        return False
    return True


@dataclass
class FileResult:
    """What became of one file: its summary line and whether it failed."""

    image: Path
    shape: tuple[int, ...] = ()
    seconds: float = 0.0
    objects: int | None = None  # instances found
    foreground: float | None = None  # fraction of pixels of a foreground class
    error: str | None = None
    resized: tuple[float, ...] = ()  # the factors of the slices predicted resized

    @property
    def failed(self) -> bool:
        return self.error is not None

    def line(self) -> str:
        name = self.image.name
        if self.error is not None:
            return f"{name}: error: {self.error}"
        shape = "x".join(str(n) for n in self.shape)
        what = (f"{self.objects} objects" if self.objects is not None
                else f"foreground {self.foreground:.1%}")
        size = ""
        if self.resized:
            from napari_unet.core.scale import factor_range

            size = f", predicted at {factor_range(self.resized)} of its size"
        return f"{name}: {shape}, {what}{size}, {self.seconds:.1f} s"


@dataclass(frozen=True)
class Settings:
    """How each file is predicted and written (the ``predict`` options)."""

    instances: bool = False
    min_size: int = MIN_OBJECT_SIZE


def run_job(job: Job, predictor: Any, settings: Settings,
            read: Callable[[Path], Any]) -> FileResult:
    """Read, predict and write one file; any error the user can act on (a bad file, a
    full disk, out of memory) ends up in the result instead of being raised.

    ``read(path)`` returns an object with ``data`` (2D or ZYX, or ZCYX with channels),
    ``shape`` (of its labels) and ``scale`` (of the labels' axes); ``predictor`` a
    :class:`~.tiles.Predictor`.
    """
    start = time.perf_counter()
    result = FileResult(job.image)
    try:
        image = read(job.image)
        data = image.data
        result.shape = tuple(int(n) for n in data.shape)
        prediction = predictor.predict(data, probabilities=job.probabilities is not None,
                                       instances=settings.instances,
                                       min_size=settings.min_size).shaped(image.shape)
        labels = prediction.instances if settings.instances else prediction.labels
        result.resized = tuple(prediction.resized().values())
        scale = tuple(image.scale) if len(image.scale) == labels.ndim else None
        write_tiff(job.labels, labels, scale=scale, labels=True,
                   mark={OUTPUT_MARK: "labels"})
        if job.probabilities is not None:
            write_tiff(job.probabilities, prediction.probabilities,
                       mark={OUTPUT_MARK: "probabilities"})
        if settings.instances:
            result.objects = int(np.unique(labels[labels > 0]).size)
        else:
            result.foreground = float(np.count_nonzero(labels)) / max(1, labels.size)
    except NapariUnetError as exc:
        result.error = str(exc)
    except OSError as exc:
        result.error = f"{exc.strerror or exc}: {exc.filename or job.image}".rstrip(": ")
    except (RuntimeError, MemoryError) as exc:
        message = failure_message(exc, "Prediction")
        if message is None:
            raise
        result.error = message
    result.seconds = time.perf_counter() - start
    return result
