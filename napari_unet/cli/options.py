"""What the command line's options say, read in one place that train, the volume commands
and the top level all import (and that imports none of them)."""

from __future__ import annotations

import argparse
from pathlib import Path


def train_options(args: argparse.Namespace):
    """The :class:`~napari_unet.core.config.TrainOptions` that ``train``'s options say."""
    from napari_unet.core.config import TrainOptions

    return TrainOptions(
        labels_kind=args.labels_kind, iterations=args.iterations, seconds=args.seconds,
        batch_size=args.batch_size, patch_size=args.patch_size,
        learning_rate=args.learning_rate, elastic_sigma=args.elastic_sigma, zoom=args.zoom,
        intensity=args.intensity,
        edge_weight=args.edge_weight,
        border_weights=args.border_weights, start_model=args.start_model,
        base_channels=args.base_channels, depth=args.depth, bilinear=not args.transposed,
        checkpointing=args.checkpointing, device=args.device, seed=args.seed,
        channels=getattr(args, "recorded_channels", None) or args.channels,
    )


def os_error_text(exc: OSError) -> str:
    """A sentence for a failed read or write (a full disk, a file-size limit); the
    temporary file of an atomic write is not named, the file it was for is."""
    name = str(exc.filename or "")
    base = Path(name).name
    if base.startswith(".") and base.endswith(".tmp"):
        name = str(Path(name).parent / base[1:].rsplit(".", 2)[0])
    return f"{exc.strerror or exc}: {name}".rstrip(": ")
