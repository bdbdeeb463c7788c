"""The argument parser: every command's options and their checks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_unet import __version__
from napari_unet.core.config import (
    BLOCK_SIZE,
    CHUNK_SIZE,
    CPU,
    DEVICE_DEFAULTS,
    EDGE_WEIGHT,
    MAX_INTENSITY,
    MAX_ZOOM,
    MIN_OBJECT_SIZE,
    START_ARCHITECTURE,
    TILE_SIZE,
    VOLUME_BLOCK,
    AugmentConfig,
    volume_defaults,
)
from napari_unet.core.decision import (
    FOREGROUND_THRESHOLD,
    SEED_PROBABILITY,
    VOLUME_INTERIOR_PROBABILITY,
)
from napari_unet.core.scale import MAX_FACTOR, MIN_FACTOR, TOLERANCE, check_rescale

from .common import EXIT_USAGE
from .volumes import add_volume_options


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit status 2
        sys.stderr.write(f"napari-unet: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _zoom(text: str) -> float:
    value = float(text)
    if not 1 <= value <= MAX_ZOOM:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_ZOOM:g}, not {text}")
    return value


def _intensity(text: str) -> float:
    value = float(text)
    if not 0 <= value <= MAX_INTENSITY:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_INTENSITY:g}, not {text}")
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


def _block_size(text: str) -> int | tuple[int, int, int]:
    """``--block-size``: one side N (Y and X), or Z,Y,X for volumes of a 3D model."""
    parts = text.split(",")
    if len(parts) not in (1, 3):
        raise argparse.ArgumentTypeError(f"give N, or Z,Y,X for a volume, not {text}")
    try:
        sides = [_positive_int(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"give whole numbers N, or Z,Y,X, not {text}") from None
    return sides[0] if len(sides) == 1 else tuple(sides)


def _series_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--series", type=_non_negative_int, default=None,
                   help="the image (series, from 0) to read from TIFF files that hold "
                        "several; such files are refused without it, with the list of theirs")
    p.add_argument("--missing-chunks", choices=("refuse", "fill"), default="refuse",
                   help="an OME-Zarr image whose folder stores fewer chunks than it declares "
                        "is refused (an incomplete copy); 'fill' reads the missing chunks as "
                        "its fill value, for images written with their empty chunks left out "
                        "(default: %(default)s)")


class _Channels(argparse.Action):
    """``--channels 0,2`` (or ``--channel 2``): the channels as a tuple in ``channels``,
    the option as written in ``channels_flag`` (for messages)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from napari_unet.core.errors import InputError
        from napari_unet.core.io.channels import parse_channels

        if getattr(namespace, "channels", None) is not None:
            parser.error(f"argument {option_string}: the channels are already chosen "
                         f"({namespace.channels_flag}); give --channels once")
        try:
            channels = parse_channels(values)
        except InputError as exc:
            parser.error(f"argument {option_string}: {exc}")
        if option_string == "--channel" and len(channels) != 1:
            parser.error(f"argument --channel: one channel, not {values!r}; several go "
                         "with --channels")
        namespace.channels = channels
        namespace.channels_flag = option_string


def _channels_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--channels", action=_Channels, default=None, metavar="0,2",
                   help=f"the channels of the image to {what}, numbered from 0 and separated "
                        "by commas, in that order")
    p.add_argument("--channel", action=_Channels, default=None, metavar="N",
                   help="one channel: the same as --channels N")
    p.set_defaults(channels_flag="--channels")


def _threshold(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), not {text}")
    return value


def _rescale(text: str) -> str | float:
    try:
        return check_rescale(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _per_device(name: str) -> str:
    """The defaults of a training setting, from the defaults table:
    "default 6 on a CPU, 8 on a CUDA GPU" (one value when both are the same)."""
    cpu, gpu = getattr(CPU, name), getattr(DEVICE_DEFAULTS["cuda"], name)
    if cpu == gpu:
        return f"default {cpu:g}"
    return f"default {cpu:g} on a CPU, {gpu:g} on a CUDA GPU"


def _prediction_options(p: argparse.ArgumentParser) -> None:
    """How to predict: the options ``predict`` and ``evaluate`` share."""
    _series_option(p)
    _channels_option(p, "predict (default: those the model was trained on)")
    p.add_argument("--min-size", type=_non_negative_int, default=MIN_OBJECT_SIZE,
                   help="smallest object kept, in pixels (default %(default)s)")
    p.add_argument("--device", default="auto")
    p.add_argument("--tile-size", type=_positive_int, default=TILE_SIZE,
                   help="side of the tiles predicted at a time, in pixels (default %(default)s)")
    p.add_argument("--tta", action="store_true",
                   help="average over flipped copies (4x the time, slightly better outlines)")
    p.add_argument("--threshold", type=_threshold, default=FOREGROUND_THRESHOLD,
                   help="foreground where 1 - p(background) is at least this (between 0 and 1), "
                        "for any number of classes; a foreground pixel takes its most likely "
                        "foreground class. Higher gives smaller objects (default %(default)s)")
    p.add_argument("--rescale", type=_rescale, default="auto", metavar="auto|off|F",
                   help="auto: shrink an image whose objects look more than "
                        f"{TOLERANCE:g} times as large across as those the model was trained "
                        "on until they look that large (the labels keep the image's size); "
                        "off: never; a factor F: resize "
                        f"every image by it ({MIN_FACTOR:g} to {MAX_FACTOR:g}; 0.5 = to half). "
                        "Slices above 8 megapixels, and images predicted block by block "
                        "(OME-Zarr outputs, clusters), are predicted at their size "
                        "(default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="napari-unet", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"napari-unet {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a U-Net on image / label TIFF pairs")
    t.add_argument("--image", action="append", required=True, type=Path,
                   help="image TIFF or OME-Zarr folder (2D or a stack of 2D slices; read "
                        "lazily when large); repeat for several")
    t.add_argument("--labels", action="append", required=True, type=Path,
                   help="label TIFF or OME-Zarr of the same shape as its --image; repeat "
                        "likewise")
    t.add_argument("--labels-kind", choices=("annotation", "semantic", "instance"),
                   default="annotation",
                   help="annotation: 0 = not annotated, 1 = background, 2.. classes; "
                        "semantic: dense, 0 = background; instance: 0 = background, 1..N objects")
    t.add_argument("--out", required=True, type=_file, help="model file to write (.pt)")
    _channels_option(t, "train on (default: all); the model records them")
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
                   help="start a new model from the shipped nuclei model (base "
                        f"{START_ARCHITECTURE.base_channels}, depth {START_ARCHITECTURE.depth}) "
                        "or from random weights; default: nuclei for annotation strokes, "
                        "none otherwise")
    t.add_argument("--base-channels", type=_positive_int, default=None,
                   help=f"a new model's width ({_per_device('base_channels')})")
    t.add_argument("--depth", type=_positive_int, default=None,
                   help=f"a new model's depth ({_per_device('depth')})")
    t.add_argument("--transposed", action="store_true", help="transposed-convolution up-sampling")
    t.add_argument("--batch-size", type=_positive_int, default=None,
                   help=_per_device("batch_size"))
    t.add_argument("--patch-size", type=_positive_int, default=None,
                   help=f"side of the training patches in pixels ({_per_device('patch_size')})")
    t.add_argument("--learning-rate", type=_positive_float, default=None,
                   help=f"{_per_device('learning_rate')}; dense labels of a 3D model from trained "
                        f"weights (the nuclei model, --resume): "
                        f"{volume_defaults().start_learning_rate:g}")
    t.add_argument("--elastic-sigma", type=_non_negative_float, default=None,
                   help="strength of the elastic deformation in pixels (0 turns it off; "
                        f"{_per_device('elastic_sigma')})")
    t.add_argument("--zoom", type=_zoom, default=None, metavar="Z",
                   help="scale augmentation: each patch is shown at a scale between 1/Z and "
                        "Z, so the model learns objects of other sizes than those annotated "
                        "(1 turns it off)")
    t.add_argument("--intensity", type=_intensity, default=None, metavar="S",
                   help="intensity augmentation: gamma between exp(-S) and exp(S), gain "
                        "between 1-S and 1+S, offset within S/2 (0 turns it off; "
                        f"default {AugmentConfig().intensity:g})")
    t.add_argument("--checkpointing", action="store_true",
                   help="recompute activations in backward to save memory")
    t.add_argument("--border-weights", action="store_true",
                   help="weigh the background between close objects up to 11x (the U-Net "
                        "paper's weight map, w0 = 10, sigma = 5 px) to separate touching objects")
    add_volume_options(t, "the model to train")
    t.add_argument("--edge-weight", type=_non_negative_float, default=None,
                   help="weight of the loss that snaps outlines to image edges (default "
                        f"{EDGE_WEIGHT:g} for "
                        "annotation strokes, 0 for dense labels; 0 turns it off)")

    p = sub.add_parser("predict", help="predict labels of an image with a trained model")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--image", required=True, type=Path, nargs="+",
                   help="image TIFF or OME-Zarr folder (read slice by slice when large); or "
                        "several, a folder, or a quoted pattern such as "
                        "'folder/*.tif', to predict every TIFF file they name")
    p.add_argument("--out", required=True, type=_file,
                   help="labels TIFF to write, or an OME-Zarr (NAME.ome.zarr) written block by "
                        "block for images larger than memory; with several images, the "
                        "folder that gets NAME_labels.tif for each (created if missing)")
    p.add_argument("--probabilities", type=_file,
                   help="also write class probabilities here, TIFF or OME-Zarr (with several "
                        "images: the folder that gets NAME_probabilities.tif)")
    p.add_argument("--uncertainty", type=_file, metavar="PATH",
                   help="also write how unsure the model is of each pixel (0..1, float32 "
                        "with the image's pixel size) here: a TIFF, or an OME-Zarr "
                        "(NAME.ome.zarr) chunked like the labels when they are predicted "
                        "block by block")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an OME-Zarr --out or --probabilities that exists")
    p.add_argument("--block-size", type=_block_size, default=None, metavar="N|Z,Y,X",
                   help="OME-Zarr output and --workers/--scheduler on one image: pixels (Y, X) "
                        f"predicted at a time, rounded up to whole chunks (default {BLOCK_SIZE}); "
                        "a volume of a 3D model: voxels Z,Y,X, its chunks (default "
                        f"{','.join(map(str, VOLUME_BLOCK))}; N alone: {VOLUME_BLOCK[0]},N,N)")
    p.add_argument("--chunk-size", type=_positive_int, default=CHUNK_SIZE,
                   help="OME-Zarr output: chunk side in pixels, one slice deep (default "
                        "%(default)s)")
    p.add_argument("--instances", action="store_true",
                   help="write one label per object instead of one per class (models "
                        "trained on instance masks: objects grow from the pixels with "
                        f"p(interior) >= {SEED_PROBABILITY:g}, a blob without one is no object, "
                        "in a volume from the cores of the voxels with p(interior) >= "
                        f"{VOLUME_INTERIOR_PROBABILITY:g}; other models split each class's "
                        "regions at their necks)")
    p.add_argument("--redo", action="store_true",
                   help="with several images: also predict the images whose outputs are "
                        "newer than the image and the model (skipped without it, whatever the "
                        "options they were predicted with)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=None,
                       help="predict the files, or the blocks of one image, on a dask "
                            "LocalCluster of this many worker processes (one thread each); "
                            "needs napari-unet[cluster]")
    where.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="predict the files, or the blocks of one image, on the workers of "
                            "this dask scheduler (for example one started by dask-jobqueue)")
    _prediction_options(p)
    add_volume_options(p, "how to predict a z-stack (a 3D model always predicts in 3D)")

    e = sub.add_parser("evaluate", help="score a model on an image with ground truth (JSON)")
    e.add_argument("--model", required=True, type=Path)
    e.add_argument("--image", required=True, type=Path)
    e.add_argument("--labels", required=True, type=Path, help="ground truth of the same shape")
    e.add_argument("--labels-kind", choices=("semantic", "instance"), required=True)
    _prediction_options(e)
    add_volume_options(e, "how to predict a z-stack (a 3D model always predicts in 3D)")
    e.add_argument("--per-slice", action="store_true",
                   help="score the objects of a volume slice by slice (2D), not as 3D "
                        "objects")

    x = sub.add_parser("export", help="write a model as a bioimage.io model package (.zip)")
    x.add_argument("--model", required=True, type=Path, help="napari-unet model file (.pt)")
    x.add_argument("--out", required=True, type=_file, help="package to write (.zip)")
    x.add_argument("--test-image", type=Path, default=None,
                   help="TIFF whose middle slice, cropped to 256 x 256 pixels at most, gives "
                        "the package's test tensors (default: the nuclei sample)")
    _series_option(x)
    _channels_option(x, "take for --test-image (default: those the model was trained on)")
    x.add_argument("--name", default=None, help="the model's name in the package")
    x.add_argument("--author", action="append", default=None,
                   help="a name the package credits; repeat for several")
    x.add_argument("--overwrite", action="store_true", help="replace --out when it exists")

    sub.add_parser("demo", help="open napari with the sample data and the plugin docked")
    return parser
