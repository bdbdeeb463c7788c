"""``napari-unet train``: plan the run as the GUI does, train, save what it learnt."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from napari_unet.core.errors import NapariUnetError, failure_message, is_out_of_memory

from .common import EXIT_SIGNAL, _bar, _fmt_seconds, _raise_interrupted
from .inputs import _load_model, _load_pairs
from .options import os_error_text as _os_error
from .options import train_options


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


def _check_train_out(args: argparse.Namespace) -> bool:
    """Refuse an ``--out`` that cannot be written or that would replace an input or an
    existing model; return whether ``--out`` may hold the weights of an unfinished run
    (it did not exist, or it is the ``--resume`` model)."""
    from napari_unet.core.io.paths import check_outputs, same_file

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


class _SignalsHeld:
    """While a model is saved: Ctrl-C and SIGTERM are noted (``signum``), not raised, so
    that the save finishes; the caller then says so and exits with the signal's status."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in EXIT_SIGNAL:
                self._previous[sig] = signal.signal(sig, self._note)
        return self

    def _note(self, signum, frame) -> None:
        self.signum = self.signum or signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _save(bundle, target: Path, held: _SignalsHeld) -> Path:
    """Save ``bundle`` at ``target`` (signals held meanwhile). When ``target`` cannot be
    written (a full disk, a file-size limit), the weights are saved in a rescue folder
    instead and :class:`NapariUnetError` says where, or that no folder took them."""
    from napari_unet.core.models.saving import rescue

    with held:
        try:
            bundle.save(target)
            return target
        except OSError as exc:

            reason = _os_error(exc)
            saved = rescue(bundle, target)
    its = f"the trained weights ({bundle.iterations} iterations in all)"
    if saved.path is not None:
        raise NapariUnetError(f"{reason}; {its} were saved to {saved.path} instead: move "
                              "that file where you want it")
    tried = ", ".join(str(p.parent) for p in saved.tried) or "no other folder"
    raise NapariUnetError(f"{reason}; {its} could not be saved anywhere else either (tried "
                          f"{tried}): free some space and train again")


def _save_partial(trainer, args: argparse.Namespace, out_is_safe: bool,
                  held: _SignalsHeld) -> Path:
    """Save an unfinished run to ``--out`` when that loses nothing, else beside it in a
    file of its own (``MODEL.interrupted.pt``, ``-2``, ...: never over an earlier one)."""
    from napari_unet.core.models.saving import next_interrupted_path

    target = args.out if out_is_safe else next_interrupted_path(args.out)
    return _save(trainer.bundle(), target, held)


def make_trainer(args: argparse.Namespace, images, labels):
    """The :class:`~napari_unet.core.train.trainer.Trainer` that ``train`` runs with ``args`` (its
    defaults included) on label images of ``args.labels_kind``, planned by
    :func:`~napari_unet.core.train.plan.plan_training` as in the GUI. Benchmarks call it with
    arrays and ``build_parser().parse_args(["train", ...])`` to train as the command does."""
    from napari_unet.core.labels import lazy_or_converted
    from napari_unet.core.train.plan import plan_training
    from napari_unet.core.train.trainer import Trainer

    options = train_options(args)
    annotations = [lazy_or_converted(lab, args.labels_kind) for lab in labels]
    objects = [lab if args.labels_kind == "instance" else None for lab in labels]
    plan = plan_training(images, annotations, options, objects=objects,
                         resume=_load_model(args.resume) if args.resume else None)
    return Trainer(plan.bundle, plan.data, plan.config)


def cmd_train(args: argparse.Namespace) -> int:
    out_is_safe = _check_train_out(args)
    images, labels = _load_pairs(args)
    from .volumes import make_volume_trainer, train_dims

    dims, voxel, why = train_dims(args, images)
    out = sys.stderr
    if dims == 3:
        trainer = make_volume_trainer(args, images, labels, voxel)
    else:
        trainer = make_trainer(args, images, labels)
    data = trainer.data
    if not args.quiet:
        out.write(f"{dims}D model: {why}\n")
        if dims == 3:
            out.write(f"training on {trainer.device.type}: {len(data.train)} volume(s), "
                      f"patches {' x '.join(map(str, trainer.patch))}, {data.n_classes} "
                      f"classes, annotated voxels {data.counts.tolist()}\n")
        else:
            out.write(
                f"training on {trainer.device.type}: "
                f"{sum(p.image.shape[0] for p in data.train)} slices, {data.n_classes} "
                f"classes, annotated pixels {data.counts.tolist()}\n"
            )
    last = 0.0
    progress = None
    held = _SignalsHeld()
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
        target = _save_partial(trainer, args, out_is_safe, held)
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
            target = _save_partial(trainer, args, out_is_safe, held)
            out.write(f"napari-unet: stopped by {what} after {trainer.run_iteration} "
                      f"iterations; the model trained so far was saved to {target}\n")
        return EXIT_SIGNAL[stop.signum]
    bundle = trainer.bundle()
    _save(bundle, args.out, held)
    its = 0 if progress is None else progress.run_iteration
    if not args.quiet:
        from napari_unet.core.scale import size_text

        size = size_text(bundle.object_size)
        out.write(f"\nsaved {args.out} ({its} iterations this run, {bundle.iterations} in all"
                  f"{'; ' + size if size else ''})\n")
    if held.signum is not None:  # Ctrl-C or SIGTERM came during the save: it finished
        what = "Ctrl-C" if held.signum == signal.SIGINT else "SIGTERM"
        out.write(f"napari-unet: stopped by {what} during the "
                  f"save, which was finished first: the {its} iterations of this run are in "
                  f"{args.out}\n")
        return EXIT_SIGNAL[held.signum]
    return 0
