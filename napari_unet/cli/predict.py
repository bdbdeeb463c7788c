"""``napari-unet predict``, ``evaluate`` and ``export``: one file, many files, a cluster."""

from __future__ import annotations

import argparse
import signal
import sys
import time

import numpy as np

from napari_unet.core.errors import NapariUnetError
from napari_unet.core.io.selection import ChannelReader

from .common import EXIT_SIGNAL, EXIT_USAGE, BlockProgress, _bar
from .inputs import _load_model, _read, _select

#: Reads one image as ``predict`` does (``--series``, ``--channels`` or the model's
#: channels); the GUI's folder prediction reads files through it too.
_Reader = ChannelReader


def make_predictor(bundle, args: argparse.Namespace):
    """The predictor that :func:`_prediction_options` describe (``predict`` and
    ``evaluate`` predict with it; benchmarks too, with the parsed defaults)."""
    import torch

    from napari_unet.core.models.device import cpu_threads
    from napari_unet.core.predict.tiles import Predictor

    predictor = Predictor(bundle, device=args.device, tile_size=args.tile_size, tta=args.tta,
                          foreground_threshold=args.threshold, rescale=args.rescale)
    if predictor.device.type == "cpu":
        # The thread count training uses here (measured, or NAPARI_UNET_THREADS), for this
        # process only: a cluster's workers keep their own (one per worker thread).
        torch.set_num_threads(cpu_threads(leave_one_free=False))
    return predictor


def plan(args: argparse.Namespace):
    """The :class:`~napari_unet.core.predict.plan.PredictionPlan` of ``predict``'s
    arguments (checked; the model is loaded once the outputs are)."""
    from napari_unet.core.predict.plan import PredictOptions, plan_prediction

    options = PredictOptions(
        instances=args.instances, min_size=args.min_size, rescale=args.rescale,
        foreground_threshold=args.threshold, tile_size=args.tile_size, tta=args.tta,
        series=args.series, channels=args.channels, channels_flag=args.channels_flag,
        workers=args.workers, scheduler=args.scheduler, redo=args.redo,
        overwrite=args.overwrite, chunk=args.chunk_size, block=args.block_size,
        missing_chunks=args.missing_chunks)
    return plan_prediction(lambda: _load_model(args.model), args.image, out=args.out,
                           probabilities=args.probabilities, options=options,
                           uncertainty=args.uncertainty,
                           device=args.device, model_path=args.model)


def cmd_predict(args: argparse.Namespace) -> int:
    from napari_unet.core.predict.plan import Route

    run = plan(args)
    if run.route is Route.FILES:
        return _predict_many(args, run)
    if run.route is Route.BLOCKS:
        return _predict_blocks(args, run)
    from napari_unet.core.predict.run import run_in_memory, run_slices

    predictor = make_predictor(run.bundle, args)

    def progress(done: int, total: int) -> None:
        if not args.quiet and total > 1:
            sys.stderr.write(f"\r[{_bar(done / total)}] slice {done}/{total}  ")
            sys.stderr.flush()

    lazily = run.route is Route.SLICES
    written = (run_slices if lazily else run_in_memory)(run, predictor, progress)
    if not args.quiet:
        if written.slices > 1:
            sys.stderr.write("\n")
        what = (f"{written.objects} objects" if args.instances
                else f"{run.bundle.n_classes} classes")
        how = "; read lazily, slice by slice" if lazily else ""
        sys.stderr.write(f"wrote {args.out} ({what}{how})\n")
        note = resized_note(written.resized, written.slices, args.rescale)
        if note:
            sys.stderr.write(note + "\n")
    return 0


def _predict_many(args: argparse.Namespace, run) -> int:
    """``predict`` on several files, a folder or a pattern: one line per file on stderr,
    files already done skipped, a bad file reported and the others predicted; status 2
    if any failed."""
    from napari_unet.core.predict.run import run_files

    started = time.perf_counter()
    err = sys.stderr
    if not args.quiet:
        for job in run.jobs:
            if job not in run.todo:
                err.write(f"{job.image.name}: skipped, its outputs are up to date "
                          "(--redo predicts it again)\n")
    results = []

    def report(result) -> None:
        results.append(result)
        if result.failed or not args.quiet:
            err.write(result.line() + "\n")
            err.flush()

    read = _Reader(args.series, args.channels, args.channels_flag, run.bundle.channels)
    try:
        run_files(run, lambda: make_predictor(run.bundle, args), read, on_result=report)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        what = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        done = sum(not r.failed for r in results)
        err.write(f"\nnapari-unet: stopped by {what} after {done} of {len(run.todo)} files; "
                  "their outputs are kept: run the same command again to predict the others\n")
        return EXIT_SIGNAL[signum]
    failed = sum(r.failed for r in results)
    if not args.quiet or failed:
        err.write(f"{len(results) - failed} predicted, {len(run.jobs) - len(run.todo)} "
                  f"skipped, {failed} failed, in {time.perf_counter() - started:.1f} s; "
                  f"outputs in {run.out}\n")
    return EXIT_USAGE if failed else 0


def _predict_blocks(args: argparse.Namespace, run) -> int:
    """``predict`` of one image block by block, in this process or on a dask cluster."""
    from napari_unet.core.predict.run import run_blocks

    progress = BlockProgress(args.quiet)
    try:
        written = run_blocks(run, make_predictor(run.bundle, args), progress)
    finally:
        progress.close()
    if not args.quiet:
        what = (f"{written.objects} objects" if args.instances
                else f"{run.bundle.n_classes} classes")
        sys.stderr.write(f"wrote {args.out} ({what}, shape {written.shape}, "
                         f"{written.seconds:.1f} s)\n")
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

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
