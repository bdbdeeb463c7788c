"""Plan a prediction run: which path it takes, decided once for the command line and the GUI.

From the model, the inputs (files, or an array the GUI copied from a layer), the outputs
(files, or layers when none are named), the user's :class:`PredictOptions` and the
device, :func:`plan_prediction` checks what can be checked before any work and returns a
:class:`PredictionPlan` whose :class:`Route` says how the run goes:

- :attr:`Route.FILES`: several files, a folder or a pattern; one job per file
  (:mod:`.files`), in this process or on a cluster (:mod:`.cluster`);
- :attr:`Route.BLOCKS`: one image block by block into OME-Zarr (:mod:`.blocks`), when an
  output is an OME-Zarr or a cluster is asked for;
- :attr:`Route.SLICES`: one image opened lazily (too large for memory), read, predicted
  and written one slice at a time (:mod:`.slices`);
- :attr:`Route.MEMORY`: one image held whole, predicted by
  :meth:`~.tiles.Predictor.predict`.

The runs themselves are in :mod:`.run` (files, blocks, slices and whole images into
files) and in the plugin's workers (into layers); both follow the plan.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_unet.core.config import MIN_OBJECT_SIZE
from napari_unet.core.errors import InputError
from napari_unet.core.io.lazy import is_lazy, is_zarr_path
from napari_unet.core.io.paths import check_outputs, check_writable, within
from napari_unet.core.io.tiff import is_tiff_path, max_image_bytes
from napari_unet.core.normalise import has_finite
from napari_unet.core.predict.resources import (
    check_input_chunks,
    check_slices,
    check_tiff_from_blocks,
)

if TYPE_CHECKING:  # the plan is made before torch is needed (the plugin imports it early)
    from napari_unet.core.models.checkpoint import ModelBundle


class Route(StrEnum):
    """The path a prediction run takes (see the module's docstring)."""

    MEMORY = "memory"
    SLICES = "slices"
    BLOCKS = "blocks"
    FILES = "files"


@dataclass(frozen=True)
class PredictOptions:
    """What the user chose for a prediction (the ``predict`` options, the Predict panel)."""

    instances: bool = False
    min_size: int = MIN_OBJECT_SIZE
    probabilities: bool = False  # into a layer (the GUI); files name their own path
    rescale: str | float = "auto"
    foreground_threshold: float | None = None  # None: the predictor's default
    tile_size: int | None = None
    tta: bool = False
    slices: tuple[int, ...] | None = None  # the slices to predict (None: all)
    series: int | None = None  # the TIFF series of a file
    channels: tuple[int, ...] | None = None  # a file's channels (None: the model's)
    channels_flag: str = "--channels"
    workers: int | None = None  # a local cluster of this many processes
    scheduler: str | None = None  # or the dask scheduler at this address
    redo: bool = False  # predict files whose outputs are up to date again
    overwrite: bool = False  # replace an existing OME-Zarr output
    chunk: int | None = None  # OME-Zarr chunk side (None: the blocks' default)
    block: int | None = None  # block side (None: the blocks' default)
    missing_chunks: str = "refuse"  # an OME-Zarr image's missing chunks: refuse, or "fill"

    @property
    def cluster(self) -> bool:
        return self.workers is not None or self.scheduler is not None


@dataclass(frozen=True)
class PredictionPlan:
    """A checked prediction run; :attr:`route` says which path it takes."""

    route: Route
    bundle: ModelBundle
    options: PredictOptions
    device: str = "auto"
    out: Path | None = None  # the labels file or folder; None: a layer
    probabilities: Path | None = None  # the probabilities file or folder
    uncertainty: Path | None = None  # MEMORY, BLOCKS: the uncertainty (:mod:`.uncertainty`)
    image: Any = None  # MEMORY, SLICES: a selected image (data, shape, scale) or an array
    source: Any = None  # BLOCKS: the image as a picklable LazySource
    jobs: tuple = ()  # FILES: every file's job
    todo: tuple = ()  # FILES: the jobs whose outputs are not up to date
    probabilities_dropped: bool = False  # asked for, but an image read lazily has none
    model_path: Path | None = None

    @property
    def cluster(self) -> bool:
        return self.options.cluster

    @property
    def keeps_probabilities(self) -> bool:
        return self.probabilities is not None or (
            self.options.probabilities and not self.probabilities_dropped)

    def predictor_options(self) -> dict:
        """The keyword arguments of :class:`~.tiles.Predictor` for this run."""
        opts: dict = {"device": self.device, "tta": self.options.tta,
                      "rescale": self.options.rescale}
        if self.options.tile_size is not None:
            opts["tile_size"] = self.options.tile_size
        if self.options.foreground_threshold is not None:
            opts["foreground_threshold"] = self.options.foreground_threshold
        return opts


def plan_prediction(
    model: ModelBundle | Callable[[], ModelBundle],
    inputs: Sequence[Any],
    *,
    out: str | os.PathLike | None = None,
    probabilities: str | os.PathLike | None = None,
    options: PredictOptions = PredictOptions(),
    device: str = "auto",
    model_path: str | os.PathLike | None = None,
    uncertainty: str | os.PathLike | None = None,
) -> PredictionPlan:
    """Decide how to predict ``inputs`` with ``model`` and check the run before any work.

    ``inputs``: paths (several files, a folder, a pattern or one image file), or one
    array (2D, ZYX or ZCYX; numpy, or dask/zarr when read lazily). ``out`` and
    ``probabilities`` name output files (or folders for several inputs); without
    ``out`` the results go into layers (``options.probabilities`` asks for a
    probability layer). ``model`` is the model, or a function that loads it, called
    once the outputs are checked. ``model_path``, the model's file, is an input no
    output may replace. ``uncertainty`` names the output of the uncertainty of one image
    predicted whole (a TIFF) or block by block (an OME-Zarr or a TIFF); refused on the
    other routes. Raises :class:`InputError` with a
    sentence for the user.
    """
    out = None if out is None else Path(out)
    probabilities = None if probabilities is None else Path(probabilities)
    model_path = None if model_path is None else Path(model_path)
    inputs = list(inputs)
    if not inputs:
        raise InputError("nothing to predict: give an image")
    if uncertainty is not None:
        return _with_uncertainty(Path(uncertainty), plan_prediction(
            model, inputs, out=out, probabilities=probabilities, options=options,
            device=device, model_path=model_path), inputs)
    plan = dict(options=options, device=device, out=out, probabilities=probabilities,
                model_path=model_path)
    paths = all(isinstance(x, str | os.PathLike) for x in inputs)
    if paths and _many(inputs):
        return _plan_files(model, [Path(x) for x in inputs], **plan)
    if len(inputs) > 1:
        raise InputError("arrays are predicted one at a time")
    if paths and (options.cluster or any(p is not None and is_zarr_path(p)
                                         for p in (out, probabilities))):
        return _plan_blocks(model, Path(inputs[0]), **plan)
    if options.cluster:
        raise InputError("a cluster predicts files, not an image in memory")
    if paths:
        path = Path(inputs[0])
        _check_tiff_outputs(out, probabilities, [("--image", path), ("--model", model_path)])
        if is_tiff_path(path):
            check_input_chunks(path, options.series, path.name)
        bundle = _load(model)
        image = _read_selected(path, options, bundle)
        data = image.data
        if is_lazy(data):
            check_slices(path.name, tuple(data.shape), data.dtype, bundle.n_classes, out)
    else:
        bundle, image = _load(model), inputs[0]
        data = image
    if not has_finite(data):  # else an empty prediction, without a word
        name = image.path.name if getattr(image, "path", None) is not None else "the image"
        raise InputError(f"{name} has no finite values (every pixel is NaN or infinite): "
                         "there is nothing in it to predict")
    if not is_lazy(data):
        return PredictionPlan(Route.MEMORY, bundle, image=image, **plan)
    dropped = False
    if probabilities is not None:
        name = image.path.name if getattr(image, "path", None) is not None else "the image"
        raise InputError(
            f"{name} is too large to hold in memory: --probabilities is written as a TIFF "
            "only for images that fit (predict without it, or write both outputs as "
            "OME-Zarr: --out LABELS.ome.zarr --probabilities PROB.ome.zarr)")
    if options.probabilities:
        dropped = True  # a layer of probabilities would not fit either
    return PredictionPlan(Route.SLICES, bundle, image=image, probabilities_dropped=dropped,
                          **plan)


def _with_uncertainty(path: Path, plan: PredictionPlan, inputs: list) -> PredictionPlan:
    """``plan`` that also writes the uncertainty to ``path``: one image predicted whole
    (a TIFF) or block by block (an OME-Zarr chunked like the labels, or a TIFF that fits
    in memory), checked like the other outputs."""
    if plan.route not in (Route.MEMORY, Route.BLOCKS) or plan.out is None:
        how = {Route.FILES: "several images",
               Route.SLICES: "an image too large for memory read slice by slice (write "
                             "the outputs as OME-Zarr: --out LABELS.ome.zarr --uncertainty "
                             "UNCERTAINTY.ome.zarr)"}.get(plan.route, "layers")
        raise InputError(f"--uncertainty is written for one image predicted whole or block "
                         f"by block, not for {how}")
    sources = [("--image", Path(x)) for x in inputs if isinstance(x, str | os.PathLike)]
    outputs = [("--out", plan.out), ("--probabilities", plan.probabilities),
               ("--uncertainty", path)]
    if plan.route is Route.BLOCKS:
        check_block_outputs(outputs, [*sources, ("--model", plan.model_path)],
                            plan.options.overwrite)
        pixels = int(np.prod(plan.image.data.shape, dtype=np.float64))
        if not is_zarr_path(path) and pixels * 4 > max_image_bytes():
            raise InputError(f"--uncertainty {path} would need {pixels * 4 / 1024**3:.1f} GiB "
                             f"in memory as a TIFF; write an OME-Zarr instead "
                             f"({path.stem}.ome.zarr)")
        return replace(plan, uncertainty=path)
    if not is_tiff_path(path):
        raise InputError(f"--uncertainty {path} must be a TIFF file (.tif or .tiff)")
    check_outputs(outputs, [*sources, ("--model", plan.model_path)])
    return replace(plan, uncertainty=path)


def _many(inputs: list) -> bool:
    from napari_unet.core.predict.files import is_many

    return len(inputs) > 1 or (is_many(inputs[0]) and not is_zarr_path(inputs[0]))


def _load(model) -> ModelBundle:
    return model() if callable(model) else model


def _read_selected(path: Path, options: PredictOptions, bundle: ModelBundle):
    """The image at ``path``, opened lazily when it does not fit comfortably in memory,
    with the chosen channels (or the model's)."""
    from napari_unet.core.io.lazy import open_image
    from napari_unet.core.io.selection import select_channels

    series = options.series if is_tiff_path(path) else None
    return select_channels(open_image(path, lazy=None, series=series,
                                      missing_chunks=options.missing_chunks),
                           options.channels,
                           "image", options.channels_flag, bundle)


def _check_tiff_outputs(out: Path | None, probabilities: Path | None, inputs: list) -> None:
    check_outputs([("--out", out), ("--probabilities", probabilities)], inputs)
    for option, path in (("--out", out), ("--probabilities", probabilities)):
        if path is not None and str(path) and not is_tiff_path(path):
            raise InputError(f"{option} {path} must be a TIFF file (.tif or .tiff): "
                             "the labels are written as TIFF")


def _plan_files(model, images: list[Path], *, options: PredictOptions, out, probabilities,
                model_path, device) -> PredictionPlan:
    from napari_unet.core.predict.files import check_folder, collect_images, is_done, plan_jobs

    if out is None:
        raise InputError("several images are predicted into a folder: give --out FOLDER")
    out = check_folder(out)
    probabilities = (None if probabilities is None
                     else check_folder(probabilities, "--probabilities"))
    jobs = plan_jobs(collect_images(images), out, probabilities,
                     extra_inputs=[] if model_path is None else [model_path])
    bundle = _load(model)
    todo = [job for job in jobs if options.redo or model_path is None
            or not is_done(job, model_path)]
    return PredictionPlan(Route.FILES, bundle, options, device, out, probabilities,
                          jobs=tuple(jobs), todo=tuple(todo), model_path=model_path)


def _plan_blocks(model, path: Path, *, options: PredictOptions, out, probabilities,
                 model_path, device) -> PredictionPlan:
    from napari_unet.core.io.lazy import LazySource
    from napari_unet.core.io.selection import select_for_model

    if options.block is not None and not isinstance(options.block, int):
        raise InputError("--block-size Z,Y,X is for a volume of a 3D model; a 2D model's "
                         "blocks are N pixels in Y and X")
    if not isinstance(options.rescale, str):
        raise InputError("--rescale with a factor works when the image is predicted "
                         "whole; an OME-Zarr output or a cluster predicts it block by "
                         "block at its own size")
    if out is None:
        raise InputError("a block prediction writes files: give --out")
    check_block_outputs([("--out", out), ("--probabilities", probabilities)],
                        [("--image", path), ("--model", model_path)], options.overwrite)
    if is_tiff_path(path):
        check_input_chunks(path, options.series, path.name)
    bundle = _load(model)
    source = LazySource(str(path), options.series if is_tiff_path(path) else None,
                        select_for_model, (options.channels, options.channels_flag,
                                           getattr(bundle, "channels", None)),
                        missing_chunks=options.missing_chunks)
    image = source.image()
    shape = tuple(image.data.shape)
    pixels = int(np.prod(shape, dtype=np.float64))
    sizes = {"--out": pixels * 4, "--probabilities": pixels * 4 * bundle.n_classes}
    for option, target in (("--out", out), ("--probabilities", probabilities)):
        if target is not None and not is_zarr_path(target) and (
                sizes[option] > max_image_bytes()):
            raise InputError(
                f"{option} {target} would need {sizes[option] / 1024**3:.1f} GiB in memory "
                f"as a TIFF; write an OME-Zarr instead ({target.stem}.ome.zarr)")
        if target is not None and not is_zarr_path(target):
            check_tiff_from_blocks(path.name, option, target, sizes[option])
    return PredictionPlan(Route.BLOCKS, bundle, options, device, out, probabilities,
                          image=image, source=source, model_path=model_path)


def check_block_outputs(outputs: list[tuple[str, Path | None]],
                        inputs: list[tuple[str, Path | None]],
                        overwrite: bool = False) -> list[tuple[str, Path]]:
    """The outputs of a block prediction, checked before any work: TIFF or OME-Zarr,
    never an input, inside one or holding one; an existing OME-Zarr only with
    ``overwrite`` and only when it is one."""
    outputs = [(o, p) for o, p in outputs if p is not None]
    inputs = [(o, p) for o, p in inputs if p is not None]
    for option, path in outputs:
        if not (is_zarr_path(path) or is_tiff_path(path)):
            raise InputError(f"{option} {path} must be an OME-Zarr (.ome.zarr) or a TIFF "
                             "file (.tif)")
        for in_option, source in inputs:
            if within(path, source) or within(source, path):
                where = "is" if within(source, path) and within(path, source) else (
                    "is inside" if within(path, source) else "holds")
                raise InputError(f"{option} {path} {where} the {in_option} {source}: "
                                 "writing it would replace an input; choose another name")
        if is_zarr_path(path) and os.path.lexists(path):
            if not overwrite:
                raise InputError(f"{option} {path} exists; give --overwrite to replace it")
            if not path.is_dir() or not any((path / m).exists() for m in (
                    ".zgroup", ".zarray", "zarr.json")):
                raise InputError(f"{option} {path} exists and is not a zarr; it is not "
                                 "replaced: choose another name")
            check_writable(path.parent / ".probe", option)
        elif is_zarr_path(path):
            check_writable(path, option)
    check_outputs([(o, p) for o, p in outputs if not is_zarr_path(p)], inputs)
    for k, (first, one) in enumerate(outputs):
        for second, two in outputs[k + 1:]:
            if within(one, two) or within(two, one):
                raise InputError(f"{first} and {second} name the same output; choose two "
                                 "names")
    return outputs

