"""``napari-unet predict``, ``evaluate`` and ``export``: one file, many files, a cluster."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from napari_unet.core.errors import NapariUnetError
from napari_unet.core.io.selection import ChannelReader

from .common import EXIT_SIGNAL, EXIT_USAGE, _bar
from .inputs import _load_model, _read, _select, _source

#: Reads one image as ``predict`` does (``--series``, ``--channels`` or the model's
#: channels); the GUI's folder prediction reads files through it too.
_Reader = ChannelReader


def predictor_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of :class:`~napari_unet.core.predict.tiles.Predictor` that
    :func:`_prediction_options` describe."""
    return {"device": args.device, "tile_size": args.tile_size, "tta": args.tta,
            "foreground_threshold": args.threshold, "rescale": args.rescale}


def make_predictor(bundle, args: argparse.Namespace):
    """The predictor that :func:`_prediction_options` describe (``predict`` and
    ``evaluate`` predict with it; benchmarks too, with the parsed defaults)."""
    import torch

    from napari_unet.core.models.device import cpu_threads
    from napari_unet.core.predict.tiles import Predictor

    predictor = Predictor(bundle, **predictor_options(args))
    if predictor.device.type == "cpu":
        # The thread count training uses here (measured, or NAPARI_UNET_THREADS), for this
        # process only: a cluster's workers keep their own (one per worker thread).
        torch.set_num_threads(cpu_threads(leave_one_free=False))
    return predictor


def _predict_many(args: argparse.Namespace) -> int:
    """``predict`` on several files, a folder or a pattern: one line per file on stderr,
    files already done skipped, a bad file reported and the others predicted; status 2
    if any failed."""
    from napari_unet.core.predict.files import (
        Settings,
        check_folder,
        collect_images,
        is_done,
        plan_jobs,
        run_job,
    )

    started = time.perf_counter()
    out = check_folder(args.out)
    probabilities = (None if args.probabilities is None
                     else check_folder(args.probabilities, "--probabilities"))
    images = collect_images(args.image)
    jobs = plan_jobs(images, out, probabilities, extra_inputs=[args.model])
    bundle = _load_model(args.model)
    todo = [job for job in jobs if args.redo or not is_done(job, args.model)]
    for folder in {out, probabilities} - {None}:
        folder.mkdir(parents=True, exist_ok=True)
    err = sys.stderr
    if not args.quiet:
        for job in jobs:
            if job not in todo:
                err.write(f"{job.image.name}: skipped, its outputs are up to date "
                          "(--redo predicts it again)\n")
    results = []

    def report(result) -> None:
        results.append(result)
        if result.failed or not args.quiet:
            err.write(result.line() + "\n")
            err.flush()

    settings = Settings(instances=args.instances, min_size=args.min_size)
    read = _Reader(args.series, args.channels, args.channels_flag, bundle.channels)
    try:
        if args.workers is not None or args.scheduler is not None:
            from napari_unet.core.predict.cluster import run_on_cluster

            run_on_cluster(todo, bundle, predictor_options(args), settings, read,
                           workers=args.workers, scheduler=args.scheduler, on_result=report)
        else:
            predictor = make_predictor(bundle, args) if todo else None
            for job in todo:
                report(run_job(job, predictor, settings, read))
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        what = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        done = sum(not r.failed for r in results)
        err.write(f"\nnapari-unet: stopped by {what} after {done} of {len(todo)} files; their "
                  "outputs are kept: run the same command again to predict the others\n")
        return EXIT_SIGNAL[signum]
    failed = sum(r.failed for r in results)
    if not args.quiet or failed:
        err.write(f"{len(results) - failed} predicted, {len(jobs) - len(todo)} skipped, "
                  f"{failed} failed, in {time.perf_counter() - started:.1f} s; outputs in "
                  f"{out}\n")
    return EXIT_USAGE if failed else 0


def cmd_predict(args: argparse.Namespace) -> int:
    from napari_unet.core.io.lazy import is_lazy, is_zarr_path
    from napari_unet.core.io.paths import check_outputs
    from napari_unet.core.io.tiff import is_tiff_path, write_tiff
    from napari_unet.core.predict.files import is_many

    if len(args.image) > 1 or (is_many(args.image[0]) and not is_zarr_path(args.image[0])):
        return _predict_many(args)
    # One image: block by block (core.blocks) when an output is an OME-Zarr or a cluster
    # is asked for; else TIFF outputs in this process, the image read whole when it fits
    # and slice by slice (core.predict.slices.predict_slices) when it does not.
    if args.workers is not None or args.scheduler is not None or any(
            p is not None and is_zarr_path(p) for p in (args.out, args.probabilities)):
        return _predict_blocks(args)
    image_path = args.image[0]
    check_outputs([("--out", args.out), ("--probabilities", args.probabilities)],
                  [("--image", image_path), ("--model", args.model)])
    for option, path in (("--out", args.out), ("--probabilities", args.probabilities)):
        if path is not None and str(path) and not is_tiff_path(path):
            raise NapariUnetError(f"{option} {path} must be a TIFF file (.tif or .tiff): "
                                  "the labels are written as TIFF")
    bundle = _load_model(args.model)
    image = _select(_read(image_path, args, lazy=None), args.channels,
                    flag=args.channels_flag, model=bundle)
    data = image.data
    predictor = make_predictor(bundle, args)
    if is_lazy(data):
        return _predict_lazy(args, image, predictor, bundle)
    n = 1 if len(image.shape) == 2 else image.shape[0]

    def progress(done: int, total: int) -> None:
        if not args.quiet and total > 1:
            sys.stderr.write(f"\r[{_bar(done / total)}] slice {done}/{total}  ")
            sys.stderr.flush()

    result = predictor.predict(data, probabilities=args.probabilities is not None,
                               instances=args.instances, min_size=args.min_size,
                               progress=progress).shaped(image.shape)
    labels = result.instances if args.instances else result.labels
    write_tiff(args.out, labels, scale=image.scale if len(image.scale) == labels.ndim else None)
    if args.probabilities is not None:
        write_tiff(args.probabilities, result.probabilities)
    if not args.quiet:
        if n > 1:
            sys.stderr.write("\n")
        what = f"{int(labels.max())} objects" if args.instances else f"{bundle.n_classes} classes"
        sys.stderr.write(f"wrote {args.out} ({what})\n")
        note = resized_note(result.resized(), n, args.rescale)
        if note:
            sys.stderr.write(note + "\n")
    return 0


def resized_note(resized: dict[int, float], n: int, rescale) -> str:
    """One line saying which slices were predicted resized, and by how much ('' if none)."""
    from napari_unet.core.scale import factor_range

    if not resized:
        return ""
    by = factor_range(resized.values())
    which = "the image" if n == 1 else (
        f"{len(resized)} of {n} slices" if len(resized) < n else f"all {n} slices")
    why = ("its objects look larger than those the model was trained on"
           if rescale == "auto" else "--rescale")
    return (f"predicted {which} resized by {by} ({why}); labels at the image's size. "
            "--rescale off predicts at full size")


def _within(a: Path, b: Path) -> bool:
    """Whether ``a`` is ``b`` or inside it (links followed)."""
    a, b = Path(os.path.realpath(a)), Path(os.path.realpath(b))
    return a == b or b in a.parents


def _check_block_outputs(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """The outputs of a block prediction, checked before any work: TIFF or OME-Zarr,
    never an input, inside one or holding one; an existing OME-Zarr only with
    ``--overwrite`` and only when it is one."""
    from napari_unet.core.io.lazy import is_zarr_path
    from napari_unet.core.io.paths import check_outputs, check_writable
    from napari_unet.core.io.tiff import is_tiff_path

    outputs = [(o, p) for o, p in (("--out", args.out), ("--probabilities", args.probabilities))
               if p is not None]
    inputs = [("--image", args.image[0]), ("--model", args.model)]
    for option, path in outputs:
        if not (is_zarr_path(path) or is_tiff_path(path)):
            raise NapariUnetError(f"{option} {path} must be an OME-Zarr (.ome.zarr) or a TIFF "
                                  "file (.tif)")
        for in_option, source in inputs:
            if _within(path, source) or _within(source, path):
                where = "is" if _within(source, path) and _within(path, source) else (
                    "is inside" if _within(path, source) else "holds")
                raise NapariUnetError(f"{option} {path} {where} the {in_option} {source}: "
                                      "writing it would replace an input; choose another name")
        if is_zarr_path(path) and os.path.lexists(path):
            if not args.overwrite:
                raise NapariUnetError(f"{option} {path} exists; give --overwrite to replace it")
            if not path.is_dir() or not any((path / m).exists() for m in (
                    ".zgroup", ".zarray", "zarr.json")):
                raise NapariUnetError(f"{option} {path} exists and is not a zarr; it is not "
                                      "replaced: choose another name")
            check_writable(path.parent / ".probe", option)
        elif is_zarr_path(path):
            check_writable(path, option)
    tiffs = [(o, p) for o, p in outputs if not is_zarr_path(p)]
    check_outputs(tiffs, inputs)
    if len(outputs) == 2 and _within(outputs[0][1], outputs[1][1]):
        raise NapariUnetError("--out and --probabilities name the same output; choose two names")
    return outputs


def _predict_blocks(args: argparse.Namespace) -> int:
    """``predict`` of one image block by block, in this process or on a dask cluster:
    OME-Zarr outputs written chunk by chunk, TIFF outputs when they fit in memory."""
    import shutil
    import uuid
    from contextlib import nullcontext

    from napari_unet.core.io.lazy import is_zarr_path, open_image
    from napari_unet.core.io.tiff import max_image_bytes, write_tiff
    from napari_unet.core.predict.blocks import predict_blocks

    started = time.perf_counter()
    if not isinstance(args.rescale, str):
        raise NapariUnetError("--rescale with a factor works when the image is predicted "
                              "whole; an OME-Zarr output or a cluster predicts it block by "
                              "block at its own size")
    outputs = _check_block_outputs(args)
    bundle = _load_model(args.model)
    source, image = _source(args.image[0], args, bundle)
    shape = tuple(image.data.shape)
    scale = image.scale if len(image.scale) == len(shape) else None
    pixels = int(np.prod(shape, dtype=np.float64))
    sizes = {"--out": pixels * 4, "--probabilities": pixels * 4 * bundle.n_classes}
    for option, path in outputs:
        if not is_zarr_path(path) and sizes[option] > max_image_bytes():
            raise NapariUnetError(
                f"{option} {path} would need {sizes[option] / 1024**3:.1f} GiB in memory as a "
                f"TIFF; write an OME-Zarr instead ({Path(path).stem}.ome.zarr)")
    targets = {o: (p if is_zarr_path(p) else p.parent / f".{p.name}.{uuid.uuid4().hex[:8]}.zarr")
               for o, p in outputs}
    err, last = sys.stderr, [None]

    def progress(what: str, done: int, total: int) -> None:
        if args.quiet:
            return
        if last[0] not in (None, what):
            err.write("\n")
        elif last[0] == what and done < total and _bar(done / total) == _bar(
                (done - 1) / total):
            return  # the bar did not move
        last[0] = what
        err.write(f"\r[{_bar(done / total)}] {what} {done}/{total}  ")
        err.flush()

    cluster = args.workers is not None or args.scheduler is not None
    if cluster:
        from napari_unet.core.predict.cluster import connect
    try:
        with connect(args.workers, args.scheduler) if cluster else nullcontext() as client:
            result = predict_blocks(
                make_predictor(bundle, args), source, targets["--out"],
                probabilities_path=targets.get("--probabilities"),
                instances=args.instances, min_size=args.min_size, scale=scale,
                chunk=args.chunk_size, block=args.block_size, overwrite=args.overwrite,
                client=client, progress=progress)
        if last[0] is not None:  # end the progress line
            err.write("\n")
            last[0] = None
        for option, path in outputs:
            if is_zarr_path(path):
                continue
            data = open_image(targets[option], lazy=False).data
            if option == "--out":
                write_tiff(path, data, scale=scale)
            else:
                write_tiff(path, data.transpose(1, 0, 2, 3) if data.ndim == 4 else data)
    finally:
        if last[0] is not None:  # the error's line starts on a line of its own
            err.write("\n")
        for option, path in outputs:
            if targets[option] != path:
                shutil.rmtree(targets[option], ignore_errors=True)
    if not args.quiet:
        what = (f"{result.objects} objects" if args.instances
                else f"{bundle.n_classes} classes")
        err.write(f"wrote {args.out} ({what}, shape {shape}, "
                  f"{time.perf_counter() - started:.1f} s)\n")
    return 0


def _predict_lazy(args: argparse.Namespace, image, predictor, bundle) -> int:
    """``predict`` of an image opened lazily: read, predicted and written one slice at a
    time (:func:`~napari_unet.core.predict.slices.predict_slices`); the labels are held whole only
    when they fit in memory, else in a temporary zarr folder beside ``--out`` and written
    to the TIFF plane by plane."""
    import shutil
    import tempfile

    import numpy as np

    from napari_unet.core.io.lazy import fits_in_memory
    from napari_unet.core.io.sparse import write_labels_tiff
    from napari_unet.core.io.tiff import write_tiff
    from napari_unet.core.predict.slices import predict_slices

    if args.probabilities is not None:
        raise NapariUnetError(
            f"{image.path.name} is too large to hold in memory: --probabilities is written "
            "as a TIFF only for images that fit (predict without it, or write both outputs "
            "as OME-Zarr: --out LABELS.ome.zarr --probabilities PROB.ome.zarr)")
    data = image.data
    shape = tuple(data.shape)
    dtype = np.int32 if args.instances else (np.uint8 if bundle.n_classes <= 256 else np.uint16)
    scale = image.scale if len(image.scale) == len(shape) else None
    n = 1 if len(shape) == 2 else shape[0]
    nbytes = int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
    scratch = None
    if fits_in_memory(nbytes):
        labels = np.zeros(shape, dtype)
    else:
        import zarr

        args.out.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{args.out.name}.", suffix=".zarr",
                                        dir=args.out.parent))
        labels = zarr.create_array(str(scratch), shape=shape, dtype=dtype, fill_value=0,
                                   chunks=(1,) * (len(shape) - 2) + tuple(
                                       min(s, 1024) for s in shape[-2:]))
    objects = 0

    def write(z: int, plane) -> None:
        nonlocal objects
        objects = max(objects, int(plane.max()) if plane.size else 0)
        if len(shape) == 2:
            labels[...] = plane
        else:
            labels[z] = plane

    def progress(done: int, total: int) -> None:
        if not args.quiet and total > 1:
            sys.stderr.write(f"\r[{_bar(done / total)}] slice {done}/{total}  ")
            sys.stderr.flush()

    resized: dict[int, float] = {}
    try:
        predict_slices(predictor, data, write, instances=args.instances,
                       min_size=args.min_size, progress=progress, resized=resized)
        if scratch is None:
            write_tiff(args.out, labels, scale=scale)
        else:
            write_labels_tiff(args.out, labels, scale=scale)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if not args.quiet:
        if n > 1:
            sys.stderr.write("\n")
        what = f"{objects} objects" if args.instances else f"{bundle.n_classes} classes"
        sys.stderr.write(f"wrote {args.out} ({what}; read lazily, slice by slice)\n")
        note = resized_note(resized, n, args.rescale)
        if note:
            sys.stderr.write(note + "\n")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from napari_unet.core.labels import check_labels_array
    from napari_unet.core.metrics import evaluate

    bundle = _load_model(args.model)
    image = _select(_read(args.image, args), args.channels, flag=args.channels_flag,
                    model=bundle)
    truth = check_labels_array(
        _select(_read(args.labels, args, labels=True), None, "label image").data,
        "ground truth labels")
    shape = image.shape
    if truth.shape != shape and truth.size == int(np.prod(shape)) and (
            truth.shape[-2:] == shape[-2:]):  # one slice: 2D in one file only
        truth = truth.reshape(shape)
    if truth.shape != shape:
        raise NapariUnetError(
            f"{args.labels.name} has shape {truth.shape} but {args.image.name} has shape "
            f"{shape}; they must match"
        )
    if args.labels_kind == "semantic" and truth.max() >= bundle.n_classes:
        raise NapariUnetError(
            f"the ground truth uses class {int(truth.max())} but the model predicts classes "
            f"0..{bundle.n_classes - 1}"
        )
    result = make_predictor(bundle, args).predict(
        image.data, instances=args.labels_kind == "instance",
        min_size=args.min_size).shaped(shape)
    scores = evaluate(result.labels, truth, args.labels_kind, result.instances)
    print(json.dumps({"model": str(args.model), "image": str(args.image), **scores}))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from napari_unet.core.io.paths import check_outputs
    from napari_unet.core.share.export import export_bioimageio
    from napari_unet.core.share.package import is_package_path

    check_outputs([("--out", args.out)], [("--model", args.model),
                                          ("--test-image", args.test_image)])
    if not is_package_path(args.out):
        raise NapariUnetError(f"--out {args.out} must end in .zip: a bioimage.io model "
                              "package is a zip file")
    if args.out.exists() and not args.overwrite:
        raise NapariUnetError(f"--out {args.out} exists; give --overwrite to replace it")
    bundle = _load_model(args.model)
    if args.test_image is None:
        if bundle.in_channels > 1:
            raise NapariUnetError(
                f"{args.model.name} reads {bundle.in_channels} channels: give --test-image, an "
                "image with those channels, for the package's test tensors")
        from napari_unet.samples import sample_image

        test_image = sample_image()
    else:
        test_image = _select(_read(args.test_image, args), args.channels,
                             flag=args.channels_flag, model=bundle).data
    result = export_bioimageio(bundle, args.out, test_image=test_image, name=args.name,
                               authors=args.author)
    if not args.quiet:
        left = "".join(f"; {fmt} left out ({why})" for fmt, why in result.skipped.items())
        sys.stderr.write(f"wrote {args.out} (weights: {', '.join(result.weight_formats)}"
                         f"{left})\n")
    return 0
