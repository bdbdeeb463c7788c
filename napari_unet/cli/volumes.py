"""Volumes on the command line: which model a z-stack gets (``--dims``), and ``train``,
``predict`` and ``evaluate`` of volumes with a 3D model, or with a 2D model and objects
stitched across z. Other images go on to the 2D commands unchanged."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from napari_unet.core.config import VOLUME_MODEL
from napari_unet.core.errors import NapariUnetError

from .inputs import _load_model, _read, _select
from .volume_blocks import block_route, predict_volume_blocks


def voxel_size_arg(text: str):
    """``--voxel-size Z,Y,X``: three positive numbers, or one line and exit status 2."""
    from napari_unet.core.errors import InputError
    from napari_unet.core.voxels import check_voxel_size

    try:
        return check_voxel_size(text, "--voxel-size")
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_volume_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--dims", choices=("auto", "2d", "3d"), default="auto",
                   help=f"{what}: 3d for a z-stack that is one volume, 2d slice by slice; "
                        f"auto: a stack whose neighbouring slices overlap (a volume) gets "
                        f"{VOLUME_MODEL} (measured; a 2d model's objects are stitched across "
                        "z), other images 2d; a 3D model always runs in 3d (default "
                        "%(default)s)")
    p.add_argument("--voxel-size", type=voxel_size_arg, default=None, metavar="Z,Y,X",
                   help="the voxel size in micrometres (z step, pixel height, pixel width), "
                        "for files that do not carry one; default: the file's")


def _first_channel(image):
    data = np.asarray(image)
    return data[:, 0] if data.ndim == 4 else data


def voxel_of(args: argparse.Namespace, scale) -> tuple[float, float, float] | None:
    from napari_unet.core.voxels import voxel_size_of

    if getattr(args, "voxel_size", None) is not None:
        return args.voxel_size
    return voxel_size_of(scale)


def choose_dims(args: argparse.Namespace, image, voxel, model_dims: int | None = None,
                ) -> tuple[int, str]:
    """2 or 3, and the sentence that says why (``--dims``, the model, or the rule of
    :func:`~napari_unet.core.voxels.is_volume`)."""
    from napari_unet.core.voxels import is_volume

    shape = tuple(np.shape(image))
    spatial = shape if len(shape) < 4 else (shape[0], *shape[2:])
    if model_dims == 3:
        if args.dims == "2d":
            raise NapariUnetError("the model is a 3D model: it predicts volumes; drop "
                                  "--dims 2d or use a 2D model")
        if len(spatial) != 3:
            raise NapariUnetError(f"the model is a 3D model but the image is 2D "
                                  f"({' x '.join(map(str, spatial))}): use a 2D model")
        return 3, "the model is a 3D model"
    if args.dims == "3d":
        if model_dims == 2:
            raise NapariUnetError("the model is a 2D model: --dims 3d needs a 3D model "
                                  "(train one with --dims 3d)")
        if len(spatial) != 3:
            raise NapariUnetError(f"--dims 3d needs a volume (Z, Y, X), but the image is "
                                  f"2D ({' x '.join(map(str, spatial))})")
        return 3, "--dims 3d"
    if args.dims == "2d" or len(spatial) != 3:
        return 2, "--dims 2d" if args.dims == "2d" else "a 2D image"
    volume, why = is_volume(_first_channel(image), voxel)
    if not volume:
        return 2, why
    if model_dims == 2:
        return 2, f"{why}; a 2D model: slice by slice, objects stitched across z"
    if VOLUME_MODEL == "3d":
        return 3, why
    return 2, (f"{why}; a volume gets a 2D model, its objects stitched across z (the "
               "measured default; --dims 3d trains a 3D model)")


def say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        sys.stderr.write(text + "\n")


# ------------------------------------------------------------------------------ train
def make_volume_trainer(args: argparse.Namespace, images, labels, voxel):
    """The :class:`~napari_unet.core.train.volume.VolumeTrainer` of ``train --dims 3d``."""
    from napari_unet.core.labels import to_annotations
    from napari_unet.core.train.volume import VolumeTrainer, plan_volume_training

    from .options import train_options

    options = train_options(args)
    volumes = [np.asarray(v) for v in images]
    annotations = [to_annotations(np.asarray(lab), args.labels_kind) for lab in labels]
    objects = [np.asarray(lab) if args.labels_kind == "instance" else None for lab in labels]
    resume = _load_model(args.resume) if args.resume else None
    plan = plan_volume_training(volumes, annotations, options, voxel_size=voxel,
                                objects=objects, resume=resume)
    return VolumeTrainer.from_plan(plan)


def train_dims(args: argparse.Namespace, images) -> tuple[int, tuple | None, str]:
    """The model ``train`` trains (2 or 3), the voxel size, and why, for its images."""
    scales = getattr(args, "image_scales", None) or [()]
    voxel = voxel_of(args, scales[0])
    model_dims = None
    if args.resume is not None:
        model_dims = _load_model(args.resume).dims
        if model_dims == 2 and args.dims == "3d":
            raise NapariUnetError("--resume is a 2D model: --dims 3d trains a new 3D model "
                                  "(drop --resume)")
        if model_dims == 2:
            return 2, voxel, "the model to continue is a 2D model"
    dims, why = choose_dims(args, images[0], voxel, model_dims)
    if dims == 3:
        for image in images[1:]:
            if np.ndim(image) not in (3, 4):
                raise NapariUnetError("a 3D model trains on volumes: every --image must be a "
                                      "z-stack")
    return dims, voxel, why


# ---------------------------------------------------------------------------- predict
def _volume_image(args: argparse.Namespace, bundle):
    image = _select(_read(args.image[0] if isinstance(args.image, list) else args.image,
                          args, lazy=None),
                    args.channels, flag=args.channels_flag, model=bundle)
    return image, voxel_of(args, image.scale)


def volume_predictor(bundle, args: argparse.Namespace):
    import torch

    from napari_unet.core.models.device import cpu_threads
    from napari_unet.core.predict.volume import VolumePredictor

    predictor = VolumePredictor(bundle, device=args.device,
                                foreground_threshold=args.threshold,
                                rescale=args.rescale != "off")
    if predictor.device.type == "cpu":
        torch.set_num_threads(cpu_threads(leave_one_free=False))
    return predictor


def predict_volume(args: argparse.Namespace, bundle, image, voxel, why: str) -> int:
    """``predict`` of one volume with a 3D model: TIFF outputs in memory; OME-Zarr
    outputs, or a cluster, block by block."""
    from napari_unet.core.io.lazy import is_lazy
    from napari_unet.core.io.paths import check_outputs
    from napari_unet.core.io.tiff import write_tiff

    if block_route(args):
        return predict_volume_blocks(args, bundle, image, voxel, why,
                                     lambda: volume_predictor(bundle, args))
    check_outputs([("--out", args.out), ("--probabilities", args.probabilities),
                   ("--uncertainty", args.uncertainty)],
                  [("--image", args.image[0]), ("--model", args.model)])
    if args.uncertainty is not None and args.uncertainty.suffix.lower() not in (".tif",
                                                                                ".tiff"):
        raise NapariUnetError(f"--uncertainty {args.uncertainty} must be a TIFF file (.tif) "
                              "or an OME-Zarr (.ome.zarr)")
    predictor = volume_predictor(bundle, args)
    predictor.check_volume(image.data)
    say(args, f"3D: {why}")
    say_zoom(args, predictor, image.shape, voxel)
    scale = list(voxel) if voxel is not None else None
    data = np.asarray(image.data) if is_lazy(image.data) else image.data

    def progress(done: int, total: int) -> None:
        if not args.quiet and total > 1:
            sys.stderr.write(f"\r3D tile {done}/{total}  ")
            sys.stderr.flush()
            if done == total:
                sys.stderr.write("\n")

    result = predictor.predict(data, voxel, probabilities=args.probabilities is not None,
                               instances=args.instances, min_size=args.min_size,
                               uncertainty=args.uncertainty is not None, progress=progress)
    labels = result.instances if args.instances else result.labels
    write_tiff(args.out, labels, scale=scale)
    if args.probabilities is not None:
        write_tiff(args.probabilities, result.probabilities, scale=None)
    if args.uncertainty is not None:
        write_tiff(args.uncertainty, result.uncertainty, scale=scale)
    what = (f"{int(labels.max())} 3D objects" if args.instances
            else f"{bundle.n_classes} classes")
    say(args, f"wrote {args.out} ({what})")
    return 0


def say_zoom(args: argparse.Namespace, predictor, shape, voxel) -> None:
    """Say when a volume is zoomed to the model's voxel size, and to how many voxels."""
    if not predictor.rescale:
        return
    from napari_unet.core.predict.volume import zoom_text

    sizes = (int(shape[0]), int(shape[-2]), int(shape[-1]))  # (Z, Y, X) or (Z, C, Y, X)
    text = zoom_text(predictor.bundle, sizes, voxel)
    if text is not None:
        say(args, f"{text}; --rescale off predicts the volume as it is")


def predict_stitched_file(args: argparse.Namespace, bundle, image, voxel) -> int:
    """``predict --instances`` of a volume with a 2D model: objects stitched across z
    (in memory: TIFF outputs)."""
    from napari_unet.core.io.paths import check_outputs
    from napari_unet.core.io.tiff import write_tiff
    from napari_unet.core.predict.volume_instances import predict_stitched

    from .predict import make_predictor

    check_outputs([("--out", args.out), ("--probabilities", args.probabilities),
                   ("--uncertainty", args.uncertainty)],
                  [("--image", args.image[0]), ("--model", args.model)])
    result = predict_stitched(make_predictor(bundle, args), np.asarray(image.data), voxel,
                              probabilities=args.probabilities is not None,
                              min_size=args.min_size,
                              uncertainty=args.uncertainty is not None)
    scale = list(voxel) if voxel else None
    write_tiff(args.out, result.instances, scale=scale)
    if args.probabilities is not None:
        write_tiff(args.probabilities, result.probabilities)
    if args.uncertainty is not None:
        write_tiff(args.uncertainty, result.uncertainty, scale=scale)
    say(args, f"wrote {args.out} ({int(result.instances.max())} 3D objects of a 2D model's "
              "slices)")
    return 0


def cmd_predict_any(args: argparse.Namespace) -> int:
    """``predict``: volumes here, everything else by the 2D command."""
    from napari_unet.core.io.lazy import is_zarr_path
    from napari_unet.core.predict.files import is_many

    from .predict import cmd_predict

    many = len(args.image) > 1 or (is_many(args.image[0]) and not is_zarr_path(args.image[0]))
    bundle = _load_model(args.model)
    if many:
        if bundle.dims == 3:
            raise NapariUnetError("a 3D model predicts one volume at a time: give one --image")
        return cmd_predict(args)
    if bundle.dims == 2 and args.dims != "3d" and not args.instances:
        return cmd_predict(args)  # labels of slices are the same either way
    image, voxel = _volume_image(args, bundle)
    dims, why = choose_dims(args, image.data, voxel, bundle.dims)
    if dims == 3:
        return predict_volume(args, bundle, image, voxel, why)
    if np.ndim(image.data) == 3 and why.endswith("stitched across z"):
        if block_route(args):
            raise NapariUnetError("a 2D model's objects are stitched across z in memory: "
                                  "write TIFF outputs, or give --dims 2d for objects per "
                                  "slice block by block (a 3D model predicts 3D objects "
                                  "block by block)")
        say(args, f"2D + stitching: {why}")
        return predict_stitched_file(args, bundle, image, voxel)
    return cmd_predict(args)


# --------------------------------------------------------------------------- evaluate
def cmd_evaluate_any(args: argparse.Namespace) -> int:
    """``evaluate``: a volume is scored as one (foreground IoU, F1 and AP of 3D objects;
    ``--per-slice`` for the 2D scores of each slice); other images by the 2D command."""
    import json

    from napari_unet.core.labels import check_labels_array
    from napari_unet.core.metrics import evaluate

    from .predict import cmd_evaluate, make_predictor

    bundle = _load_model(args.model)
    image, voxel = _volume_image(args, bundle)
    dims, why = choose_dims(args, image.data, voxel, bundle.dims)
    volume = dims == 3 or why.endswith("stitched across z")
    if not volume:
        return cmd_evaluate(args)
    truth = check_labels_array(np.asarray(
        _select(_read(args.labels, args, labels=True), None, "label image").data),
        "ground truth labels")
    if truth.shape != tuple(image.shape):
        raise NapariUnetError(f"{args.labels.name} has shape {truth.shape} but "
                              f"{args.image.name} has shape {tuple(image.shape)}; they must "
                              "match")
    instances = args.labels_kind == "instance"
    data = np.asarray(image.data)
    if dims == 3:
        result = volume_predictor(bundle, args).predict(data, voxel, instances=instances,
                                                        min_size=args.min_size)
        mode = "3d"
    else:
        predictor = make_predictor(bundle, args)
        if instances and not args.per_slice:
            from napari_unet.core.predict.volume_instances import predict_stitched

            result = predict_stitched(predictor, data, voxel, min_size=args.min_size)
        else:
            result = predictor.predict(data, instances=instances, min_size=args.min_size)
        mode = "2d+stitching"
    scores = evaluate(result.labels, truth, args.labels_kind, result.instances,
                      volume=not args.per_slice)
    print(json.dumps({"model": str(args.model), "image": str(args.image), "dims": mode,
                      "objects": "per slice" if args.per_slice else "3d", **scores}))
    return 0


# ----------------------------------------------------------------------------- export
def cmd_export_any(args: argparse.Namespace) -> int:
    """``export``: a 3D model without ``--test-image`` gets the demo volume for its test
    tensors (the 2D nuclei sample is no volume); everything else as in 2D."""
    import tempfile
    from pathlib import Path

    from .predict import cmd_export

    if args.test_image is not None or not args.model.is_file():
        return cmd_export(args)
    bundle = _load_model(args.model)
    if bundle.dims != 3 or bundle.in_channels > 1:
        return cmd_export(args)
    from napari_unet.core.io.tiff import write_tiff
    from napari_unet.synthetic_volume import sample_volume

    sample = sample_volume()
    with tempfile.TemporaryDirectory(prefix="napari-unet-export-") as tmp:
        args.test_image = Path(tmp) / "sample_volume.tif"
        write_tiff(args.test_image, sample["image"], scale=sample["voxel_size"])
        try:
            return cmd_export(args)
        finally:
            args.test_image = None
