"""The ``napari-unet`` command line: train, predict, evaluate, export, demo.

Errors the user can act on are printed as one line on stderr with exit status 2.
Ctrl-C (SIGINT) ends with status 130 and SIGTERM with 143, after one line that says
what was saved.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .core.decision import FOREGROUND_THRESHOLD
from .core.errors import NapariUnetError, failure_message, is_out_of_memory

EXIT_USAGE = 2
#: Exit status after Ctrl-C (SIGINT) and SIGTERM, as a shell reports a process they end.
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: raised where there is nothing to finish first."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signum)


class _StopOnSignal:
    """During training: the first Ctrl-C or SIGTERM asks the trainer to stop after the
    current iteration; a second one raises :class:`Interrupted` at once."""

    def __init__(self, trainer, quiet: bool):
        self.trainer, self.quiet, self.signum = trainer, quiet, None
        self._previous = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in EXIT_SIGNAL:
            self._previous[sig] = signal.signal(sig, self._first)
        return self

    def _first(self, signum, frame) -> None:
        self.signum = signum
        self.trainer.stop()
        for sig in EXIT_SIGNAL:
            signal.signal(sig, _raise_interrupted)
        if not self.quiet:
            sys.stderr.write("\nstopping after this iteration to save the model trained so "
                             "far (Ctrl-C again quits without saving)\n")
            sys.stderr.flush()

    def __exit__(self, *exc) -> None:
        if self.signum is None:  # after a stop, a second signal still quits at once
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit status 2
        sys.stderr.write(f"napari-unet: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _file(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("empty file name: give the file to write")
    return Path(text)


def _seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be 0 to {2**32 - 1}, not {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _series_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--series", type=_non_negative_int, default=None,
                   help="the image (series, from 0) to read from TIFF files that hold "
                        "several; such files are refused without it, with the list of theirs")


def _read(path: Path, args: argparse.Namespace, labels: bool = False):
    """Read ``path`` with ``--series``; a labels file uses it only when it has several."""
    from .core.io import read_tiff, tiff_series_count

    series = getattr(args, "series", None)
    if labels and series is not None and tiff_series_count(path) == 1:
        series = None
    return read_tiff(path, series=series)


def _threshold(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), not {text}")
    return value


def _prediction_options(p: argparse.ArgumentParser) -> None:
    """How to predict: the options ``predict`` and ``evaluate`` share."""
    _series_option(p)
    p.add_argument("--channel", type=int, default=None,
                   help="the channel to predict, for RGB or multi-channel images (from 0)")
    p.add_argument("--min-size", type=_non_negative_int, default=10,
                   help="smallest object kept, in pixels")
    p.add_argument("--device", default="auto")
    p.add_argument("--tile-size", type=_positive_int, default=1024)
    p.add_argument("--tta", action="store_true",
                   help="average over flipped copies (4x the time, slightly better outlines)")
    p.add_argument("--threshold", type=_threshold, default=FOREGROUND_THRESHOLD,
                   help="foreground where 1 - p(background) is at least this (between 0 and 1), "
                        "for any number of classes; a foreground pixel takes its most likely "
                        "foreground class. Higher gives smaller objects (default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="napari-unet", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"napari-unet {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a U-Net on image / label TIFF pairs")
    t.add_argument("--image", action="append", required=True, type=Path,
                   help="image TIFF (2D or a stack of 2D slices); repeat for several")
    t.add_argument("--labels", action="append", required=True, type=Path,
                   help="label TIFF of the same shape as its --image; repeat likewise")
    t.add_argument("--labels-kind", choices=("annotation", "semantic", "instance"),
                   default="annotation",
                   help="annotation: 0 = not annotated, 1 = background, 2.. classes; "
                        "semantic: dense, 0 = background; instance: 0 = background, 1..N objects")
    t.add_argument("--out", required=True, type=_file, help="model file to write (.pt)")
    t.add_argument("--channel", type=int, default=None,
                   help="the channel to train on, for RGB or multi-channel images (from 0)")
    _series_option(t)
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=_positive_float, help="wall-clock budget")
    budget.add_argument("--iterations", type=_positive_int, help="iteration budget")
    t.add_argument("--resume", type=Path, help="continue training this model file")
    t.add_argument("--overwrite", action="store_true",
                   help="replace --out when it exists (without it, an existing --out is "
                        "replaced only when it is the --resume model)")
    t.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda or mps")
    t.add_argument("--seed", type=_seed, default=0)
    t.add_argument("--start-model", choices=("nuclei", "none"), default=None,
                   help="start a new model from the shipped nuclei model (base 16, depth 4) "
                        "or from random weights; default: nuclei for annotation strokes, "
                        "none otherwise")
    t.add_argument("--base-channels", type=_positive_int, default=None)
    t.add_argument("--depth", type=_positive_int, default=None, help="default 4")
    t.add_argument("--transposed", action="store_true", help="transposed-convolution up-sampling")
    t.add_argument("--batch-size", type=_positive_int, default=None)
    t.add_argument("--patch-size", type=_positive_int, default=None)
    t.add_argument("--learning-rate", type=_positive_float, default=None)
    t.add_argument("--elastic-sigma", type=_non_negative_float, default=None,
                   help="strength of the elastic deformation in pixels (0 turns it off; "
                        "default 6 on a CPU, 8 on a GPU)")
    t.add_argument("--checkpointing", action="store_true",
                   help="recompute activations in backward to save memory")
    t.add_argument("--border-weights", action="store_true",
                   help="weigh the background between close objects up to 11x (the U-Net "
                        "paper's weight map, w0 = 10, sigma = 5 px) to separate touching objects")
    t.add_argument("--edge-weight", type=_non_negative_float, default=None,
                   help="weight of the loss that snaps outlines to image edges (default 1 for "
                        "annotation strokes, 0 for dense labels; 0 turns it off)")

    p = sub.add_parser("predict", help="predict labels of an image with a trained model")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--image", required=True, type=Path, nargs="+",
                   help="image TIFF; or several, a folder, or a quoted pattern such as "
                        "'folder/*.tif', to predict every TIFF file they name")
    p.add_argument("--out", required=True, type=_file,
                   help="labels TIFF to write; with several images, the folder that gets "
                        "NAME_labels.tif for each (created if missing)")
    p.add_argument("--probabilities", type=_file,
                   help="also write class probabilities here (with several images: the "
                        "folder that gets NAME_probabilities.tif)")
    p.add_argument("--instances", action="store_true",
                   help="write one label per object instead of one per class")
    p.add_argument("--redo", action="store_true",
                   help="with several images: also predict the images whose outputs are "
                        "newer than the image and the model (skipped without it, whatever the "
                        "options they were predicted with)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=None,
                       help="with several images: predict on a dask LocalCluster of this "
                            "many worker processes (one thread each); needs napari-unet[cluster]")
    where.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="with several images: predict on the workers of this dask "
                            "scheduler (for example one started by dask-jobqueue)")
    _prediction_options(p)

    e = sub.add_parser("evaluate", help="score a model on an image with ground truth (JSON)")
    e.add_argument("--model", required=True, type=Path)
    e.add_argument("--image", required=True, type=Path)
    e.add_argument("--labels", required=True, type=Path, help="ground truth of the same shape")
    e.add_argument("--labels-kind", choices=("semantic", "instance"), required=True)
    _prediction_options(e)

    x = sub.add_parser("export", help="write a model as a bioimage.io model package (.zip)")
    x.add_argument("--model", required=True, type=Path, help="napari-unet model file (.pt)")
    x.add_argument("--out", required=True, type=_file, help="package to write (.zip)")
    x.add_argument("--test-image", type=Path, default=None,
                   help="TIFF whose middle slice, cropped to 256 x 256 pixels at most, gives "
                        "the package's test tensors (default: the nuclei sample)")
    _series_option(x)
    x.add_argument("--channel", type=int, default=None,
                   help="the channel of --test-image, for RGB or multi-channel images")
    x.add_argument("--name", default=None, help="the model's name in the package")
    x.add_argument("--author", action="append", default=None,
                   help="a name the package credits; repeat for several")
    x.add_argument("--overwrite", action="store_true", help="replace --out when it exists")

    sub.add_parser("demo", help="open napari with the sample data and the plugin docked")
    return parser


def _one_channel(image, channel: int | None = None, what: str = "image"):
    """The image as 2D or a Z stack of one channel, or a sentence saying what to do.

    An RGB(A) or multi-channel image needs ``--channel``; axes of length one are dropped;
    a time series or any other fifth axis is refused.
    """
    import dataclasses

    import numpy as np

    data, axes = image.data, image.axes
    scale = list(image.scale) if len(image.scale) == data.ndim else [1.0] * data.ndim
    if len(axes) != data.ndim:
        axes = "Q" * (data.ndim - 2) + "YX"
    name = image.path.name if image.path is not None else "the image"
    has_channels = ("C" in axes and data.shape[axes.index("C")] > 1) or (
        axes.endswith("S") and data.shape[-1] > 1)
    if sum(n > 1 for n in data.shape[:-2]) - has_channels > 1:
        raise NapariUnetError(
            f"{name} has {data.ndim} dimensions (axes {axes}, shape {data.shape}); napari-unet "
            f"works on a 2D {what} or a Z stack of 2D slices with one channel: save one time "
            "point or position as a TIFF first"
        )
    for ax in "SC":
        # Samples count as channels when last (RGB); tifffile reads planar stacks of
        # three slices as "SYX": those stay slices, as in the napari reader.
        if ax not in axes or (ax == "S" and not axes.endswith("S")):
            continue
        i = axes.index(ax)
        n = data.shape[i]
        if n > 1 and channel is None:
            kind = {3: "an RGB image", 4: "an RGBA image"}.get(n) if ax == "S" else None
            kind = kind or f"an image of {n} channels"
            raise NapariUnetError(
                f"{name} is {kind} (axes {axes}, shape {data.shape}); napari-unet works on "
                f"one channel: choose one with --channel 0 to {n - 1}"
            )
        if channel is not None and not 0 <= channel < n:
            raise NapariUnetError(
                f"--channel {channel} does not exist: {name} has channels 0 to {n - 1}"
            )
        data = np.take(data, channel or 0, axis=i)
        axes, scale = axes[:i] + axes[i + 1 :], scale[:i] + scale[i + 1 :]
        break
    else:
        if channel not in (None, 0):
            raise NapariUnetError(f"--channel {channel} does not exist: {name} has one channel")
    while data.ndim > 3 and 1 in data.shape[:-2]:
        i = data.shape[:-2].index(1)
        data = np.take(data, 0, axis=i)
        axes, scale = axes[:i] + axes[i + 1 :], scale[:i] + scale[i + 1 :]
    if data.ndim not in (2, 3):  # pragma: no cover - refused above
        raise NapariUnetError(f"{name} has shape {data.shape}; use a 2D {what} or a Z stack")
    return dataclasses.replace(image, data=data, axes=axes, scale=tuple(scale))


def _load_pairs(args: argparse.Namespace):
    """Images and their label images, as read and checked (one channel, same shapes)."""
    if len(args.image) != len(args.labels):
        raise NapariUnetError(
            f"{len(args.image)} --image but {len(args.labels)} --labels: give one labels file "
            "per image, in the same order"
        )
    images, labels = [], []
    for ip, lp in zip(args.image, args.labels):
        img = _one_channel(_read(ip, args), args.channel).data
        lab = _one_channel(_read(lp, args, labels=True), None, "label image").data
        if img.shape != lab.shape and img.shape[-2:] == lab.shape[-2:] and (
                img.size == lab.size):  # one slice, saved as 2D in one file, 3D in the other
            img, lab = img.reshape(img.shape[-2:]), lab.reshape(lab.shape[-2:])
        if img.shape != lab.shape:
            raise NapariUnetError(
                f"{lp.name} has shape {lab.shape} but {ip.name} has shape {img.shape}; "
                "they must match"
            )
        images.append(img)
        labels.append(lab)
    return images, labels


def _bar(fraction: float, width: int = 28) -> str:
    n = int(round(fraction * width))
    return "#" * n + "-" * (width - n)


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "--:--"
    s = int(round(s))
    return f"{s // 60:02d}:{s % 60:02d}"


def train_options(args: argparse.Namespace):
    """The :class:`~napari_unet.core.config.TrainOptions` that ``train``'s options say."""
    from .core.config import TrainOptions

    return TrainOptions(
        labels_kind=args.labels_kind, iterations=args.iterations, seconds=args.seconds,
        batch_size=args.batch_size, patch_size=args.patch_size,
        learning_rate=args.learning_rate, elastic_sigma=args.elastic_sigma,
        edge_weight=args.edge_weight,
        border_weights=args.border_weights, start_model=args.start_model,
        base_channels=args.base_channels, depth=args.depth, bilinear=not args.transposed,
        checkpointing=args.checkpointing, device=args.device, seed=args.seed,
    )


def _check_train_out(args: argparse.Namespace) -> bool:
    """Refuse an ``--out`` that cannot be written or that would replace an input or an
    existing model; return whether ``--out`` may hold the weights of an unfinished run
    (it did not exist, or it is the ``--resume`` model)."""
    from .core.paths import check_outputs, same_file

    inputs = [("--image", p) for p in args.image] + [("--labels", p) for p in args.labels]
    check_outputs([("--out", args.out)], inputs)
    resumed = args.resume is not None and same_file(args.out, args.resume)
    exists = args.out.exists()
    if exists and not resumed and not args.overwrite:
        raise NapariUnetError(
            f"--out {args.out} already exists: add --resume {args.out} to continue training "
            "it, --overwrite to replace it, or choose another file name"
        )
    return not exists or resumed


def _save_partial(trainer, args: argparse.Namespace, out_is_safe: bool) -> Path:
    """Save an unfinished run to ``--out`` when that loses nothing, else beside it."""
    from .core.paths import interrupted_path

    target = args.out if out_is_safe else interrupted_path(args.out)
    trainer.bundle().save(target)
    return target


def make_trainer(args: argparse.Namespace, images, labels):
    """The :class:`~napari_unet.core.train.Trainer` that ``train`` runs with ``args`` (its
    defaults included) on label images of ``args.labels_kind``, planned by
    :func:`~napari_unet.core.plan.plan_training` as in the GUI. Benchmarks call it with
    arrays and ``build_parser().parse_args(["train", ...])`` to train as the command does."""
    from .core.data import to_annotations
    from .core.plan import plan_training
    from .core.train import Trainer

    options = train_options(args)
    annotations = [to_annotations(lab, args.labels_kind) for lab in labels]
    objects = [lab if args.labels_kind == "instance" else None for lab in labels]
    plan = plan_training(images, annotations, options, objects=objects,
                         resume=_load_model(args.resume) if args.resume else None)
    return Trainer(plan.bundle, plan.data, plan.config)


def cmd_train(args: argparse.Namespace) -> int:
    out_is_safe = _check_train_out(args)
    images, labels = _load_pairs(args)
    trainer = make_trainer(args, images, labels)
    data = trainer.data
    out = sys.stderr
    if not args.quiet:
        out.write(
            f"training on {trainer.device.type}: {sum(p.image.shape[0] for p in data.train)} "
            f"slices, {data.n_classes} classes, annotated pixels {data.counts.tolist()}\n"
        )
    last = 0.0
    progress = None
    try:
        with _StopOnSignal(trainer, args.quiet) as stop:
            for progress in trainer.fit():
                now = time.monotonic()
                if not args.quiet and (now - last > 0.5 or progress.fraction >= 1):
                    last = now
                    val = ("" if trainer.last_validation is None
                           else f" val IoU {trainer.last_validation:.3f}")
                    out.write(
                        f"\r[{_bar(progress.fraction)}] {progress.fraction:4.0%} it "
                        f"{progress.run_iteration} loss {progress.loss:.4f}{val} "
                        f"{_fmt_seconds(progress.elapsed)}<{_fmt_seconds(progress.eta)}  "
                    )
                    out.flush()
    except (RuntimeError, MemoryError) as exc:
        # Out of memory after some iterations: keep what was learnt until then.
        if not is_out_of_memory(exc) or trainer.run_iteration == 0:
            raise
        target = _save_partial(trainer, args, out_is_safe)
        raise NapariUnetError(
            f"{failure_message(exc, 'Training')}; the {trainer.run_iteration} iterations "
            f"trained until then were saved to {target}"
        ) from None
    if stop.signum is not None:
        what = "Ctrl-C" if stop.signum == signal.SIGINT else "SIGTERM"
        if not args.quiet:
            out.write("\n")
        if trainer.run_iteration == 0:
            out.write(f"napari-unet: stopped by {what} before the first iteration; nothing "
                      "was saved\n")
        else:
            target = _save_partial(trainer, args, out_is_safe)
            out.write(f"napari-unet: stopped by {what} after {trainer.run_iteration} "
                      f"iterations; the model trained so far was saved to {target}\n")
        return EXIT_SIGNAL[stop.signum]
    bundle = trainer.bundle()
    bundle.save(args.out)
    if not args.quiet:
        its = 0 if progress is None else progress.run_iteration
        out.write(f"\nsaved {args.out} ({its} iterations this run, {bundle.iterations} in all)\n")
    return 0


def _load_model(path: Path):
    """A model file for one-channel images (every napari-unet model), or a sentence. A
    ``.zip`` is read as a bioimage.io package that napari-unet exported."""
    from .core.checkpoint import load_bundle

    if path.suffix.lower() == ".zip":
        from .core.export import load_package

        bundle = load_package(path)
    else:
        bundle = load_bundle(path)
    if bundle.config.in_channels != 1:
        raise NapariUnetError(
            f"{path.name} expects images with {bundle.config.in_channels} channels; "
            "napari-unet works on one channel"
        )
    return bundle


def predictor_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of :class:`~napari_unet.core.predict.Predictor` that
    :func:`_prediction_options` describe."""
    return {"device": args.device, "tile_size": args.tile_size, "tta": args.tta,
            "foreground_threshold": args.threshold}


def make_predictor(bundle, args: argparse.Namespace):
    """The predictor that :func:`_prediction_options` describe (``predict`` and
    ``evaluate`` predict with it; benchmarks too, with the parsed defaults)."""
    from .core.predict import Predictor

    return Predictor(bundle, **predictor_options(args))


class _Reader:
    """Reads one image as ``predict`` does (``--series``, ``--channel``); picklable, so
    that the workers of a cluster read their own files."""

    def __init__(self, series: int | None, channel: int | None):
        self.series, self.channel = series, channel

    def __call__(self, path: Path):
        return _one_channel(_read(path, argparse.Namespace(series=self.series)), self.channel)


def _predict_many(args: argparse.Namespace) -> int:
    """``predict`` on several files, a folder or a pattern: one line per file on stderr,
    files already done skipped, a bad file reported and the others predicted; status 2
    if any failed."""
    from .core.batch import Settings, check_folder, collect_images, is_done, plan_jobs, run_job

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
    read = _Reader(args.series, args.channel)
    try:
        if args.workers is not None or args.scheduler is not None:
            from .core.cluster import run_on_cluster

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
    from .core.batch import is_many
    from .core.io import is_tiff_path, write_tiff
    from .core.paths import check_outputs

    if len(args.image) > 1 or is_many(args.image[0]):
        return _predict_many(args)
    for option in ("workers", "scheduler"):
        if getattr(args, option) is not None:
            raise NapariUnetError(f"--{option} predicts many files: give --image a folder, "
                                  "a quoted pattern such as 'folder/*.tif' or several files")
    image_path = args.image[0]
    check_outputs([("--out", args.out), ("--probabilities", args.probabilities)],
                  [("--image", image_path), ("--model", args.model)])
    for option, path in (("--out", args.out), ("--probabilities", args.probabilities)):
        if path is not None and str(path) and not is_tiff_path(path):
            raise NapariUnetError(f"{option} {path} must be a TIFF file (.tif or .tiff): "
                                  "the labels are written as TIFF")
    bundle = _load_model(args.model)
    image = _one_channel(_read(image_path, args), args.channel)
    data = image.data
    predictor = make_predictor(bundle, args)
    n = 1 if data.ndim == 2 else data.shape[0]

    def progress(done: int, total: int) -> None:
        if not args.quiet and total > 1:
            sys.stderr.write(f"\r[{_bar(done / total)}] slice {done}/{total}  ")
            sys.stderr.flush()

    result = predictor.predict(data, probabilities=args.probabilities is not None,
                               instances=args.instances, min_size=args.min_size,
                               progress=progress)
    labels = result.instances if args.instances else result.labels
    write_tiff(args.out, labels, scale=image.scale if len(image.scale) == labels.ndim else None)
    if args.probabilities is not None:
        write_tiff(args.probabilities, result.probabilities)
    if not args.quiet:
        if n > 1:
            sys.stderr.write("\n")
        what = f"{int(labels.max())} objects" if args.instances else f"{bundle.n_classes} classes"
        sys.stderr.write(f"wrote {args.out} ({what})\n")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from .core.data import check_labels_array
    from .core.metrics import evaluate

    bundle = _load_model(args.model)
    image = _one_channel(_read(args.image, args), args.channel)
    truth = check_labels_array(
        _one_channel(_read(args.labels, args, labels=True), None, "label image").data,
        "ground truth labels")
    if truth.shape != image.data.shape and truth.size == image.data.size and (
            truth.shape[-2:] == image.data.shape[-2:]):  # one slice: 2D in one file only
        truth = truth.reshape(image.data.shape)
    if truth.shape != image.data.shape:
        raise NapariUnetError(
            f"{args.labels.name} has shape {truth.shape} but {args.image.name} has shape "
            f"{image.data.shape}; they must match"
        )
    if args.labels_kind == "semantic" and truth.max() >= bundle.n_classes:
        raise NapariUnetError(
            f"the ground truth uses class {int(truth.max())} but the model predicts classes "
            f"0..{bundle.n_classes - 1}"
        )
    result = make_predictor(bundle, args).predict(
        image.data, instances=args.labels_kind == "instance", min_size=args.min_size)
    scores = evaluate(result.labels, truth, args.labels_kind, result.instances)
    print(json.dumps({"model": str(args.model), "image": str(args.image), **scores}))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .core.export import export_bioimageio, is_package_path
    from .core.paths import check_outputs

    check_outputs([("--out", args.out)], [("--model", args.model),
                                          ("--test-image", args.test_image)])
    if not is_package_path(args.out):
        raise NapariUnetError(f"--out {args.out} must end in .zip: a bioimage.io model "
                              "package is a zip file")
    if args.out.exists() and not args.overwrite:
        raise NapariUnetError(f"--out {args.out} exists; give --overwrite to replace it")
    bundle = _load_model(args.model)
    if args.test_image is None:
        from .samples import sample_image

        test_image = sample_image()
    else:
        test_image = _one_channel(_read(args.test_image, args), args.channel).data
    result = export_bioimageio(bundle, args.out, test_image=test_image, name=args.name,
                               authors=args.author)
    if not args.quiet:
        left = "".join(f"; {fmt} left out ({why})" for fmt, why in result.skipped.items())
        sys.stderr.write(f"wrote {args.out} (weights: {', '.join(result.weight_formats)}"
                         f"{left})\n")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ._napari.demo import run_demo

    run_demo()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    commands = {"train": cmd_train, "predict": cmd_predict, "evaluate": cmd_evaluate,
                "export": cmd_export, "demo": cmd_demo}
    # SIGTERM (a cluster's time limit, docker stop) unwinds like Ctrl-C: temporary files
    # are removed and one line is printed.
    import threading

    main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in EXIT_SIGNAL} if main_thread else {}
    if main_thread:
        signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        return commands[args.command](args)
    except NapariUnetError as exc:
        sys.stderr.write(f"napari-unet: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        what = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        sys.stderr.write(f"\nnapari-unet: stopped by {what}; nothing was written\n")
        return EXIT_SIGNAL[signum]
    except (RuntimeError, MemoryError) as exc:  # out of memory, or the GPU failed
        message = failure_message(exc, args.command.capitalize())
        if message is None:
            raise
        sys.stderr.write(f"napari-unet: error: {message}\n")
        return EXIT_USAGE
    except OSError as exc:
        sys.stderr.write(f"napari-unet: error: {_os_error(exc)}\n")
        return EXIT_USAGE
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _os_error(exc: OSError) -> str:
    """A sentence for a failed read or write (a full disk, a file-size limit); the
    temporary file of an atomic write is not named, the file it was for is."""
    name = str(exc.filename or "")
    base = Path(name).name
    if base.startswith(".") and base.endswith(".tmp"):
        name = str(Path(name).parent / base[1:].rsplit(".", 2)[0])
    return f"{exc.strerror or exc}: {name}".rstrip(": ")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
