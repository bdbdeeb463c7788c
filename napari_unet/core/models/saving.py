"""Where a model's weights go when they must not be lost: every interrupted run in a
file of its own, and somewhere else when the file asked for cannot be written."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from napari_unet.core.io.paths import interrupted_path
from napari_unet.core.models.checkpoint import ModelBundle

log = logging.getLogger(__name__)


def next_interrupted_path(path: str | os.PathLike) -> Path:
    """Where an unfinished run goes when ``path`` holds a model it must not replace:
    ``MODEL.interrupted.pt``, or when an earlier run left that file,
    ``MODEL.interrupted-2.pt``, ``-3``... (the first that does not exist): an interrupted
    run never replaces another one."""
    first = interrupted_path(path)
    candidate, n = first, 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = first.with_name(f"{first.stem}-{n}{first.suffix}")
    return candidate


def rescue_folders() -> list[Path]:
    """Where weights that could not be saved where asked are tried next, in order: the
    system's temporary folder (``$TMPDIR``), then the home folder."""
    folders = [Path(tempfile.gettempdir())]
    home = Path.home()
    if home not in folders:
        folders.append(home)
    return folders


@dataclass
class Rescue:
    """Where :func:`rescue` saved the weights (``None``: nowhere) and where it tried."""

    path: Path | None
    tried: list[Path] = field(default_factory=list)


def rescue(bundle: ModelBundle, wanted: str | os.PathLike) -> Rescue:
    """Save ``bundle``, which could not be saved at ``wanted``, in the first of
    :func:`rescue_folders` that takes it, as ``STEM.rescued-DATE-TIME.pt``."""
    wanted = Path(wanted)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tried: list[Path] = []
    for folder in rescue_folders():
        target = folder / f"{wanted.stem}.rescued-{stamp}{wanted.suffix or '.pt'}"
        if folder.resolve() == wanted.parent.resolve():
            continue  # the folder that just failed
        tried.append(target)
        try:
            bundle.save(target)
        except (OSError, ValueError) as exc:  # full, protected, or no such folder
            log.info("could not rescue the model to %s (%s)", target, exc)
            continue
        return Rescue(target, tried)
    return Rescue(None, tried)
