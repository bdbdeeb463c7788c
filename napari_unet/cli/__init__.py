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
from collections.abc import Sequence

from napari_unet.core.errors import NapariUnetError, failure_message

from .common import EXIT_SIGNAL, EXIT_USAGE, Interrupted, _raise_interrupted
from .options import os_error_text as _os_error
from .options import train_options
from .parser import build_parser
from .predict import cmd_evaluate, cmd_export, cmd_predict, make_predictor
from .train import cmd_train, make_trainer
from .volumes import cmd_evaluate_any, cmd_export_any, cmd_predict_any

__all__ = ["Interrupted", "build_parser", "cmd_evaluate", "cmd_export", "cmd_predict", "main",
           "make_predictor", "make_trainer", "train_options"]


def cmd_demo(args: argparse.Namespace) -> int:
    from napari_unet._napari.demo import run_demo

    run_demo()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    # predict and evaluate: volumes by .volumes, other images by the 2D commands
    commands = {"train": cmd_train, "predict": cmd_predict_any, "evaluate": cmd_evaluate_any,
                "export": cmd_export_any, "demo": cmd_demo}
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
