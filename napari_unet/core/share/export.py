"""Model packages in the bioimage.io format (model spec 0.5), written.

:func:`export_bioimageio` writes one ``.zip`` that bioimage.io's tools (the Model Zoo,
``bioimageio.core``, deepImageJ, ilastik...) can run: the input is (batch, channel, y, x)
with a side of ``2**depth * n`` pixels; the preprocessing is the model's own percentile
scaling (``scale_range`` over y and x, so each slice on its own as napari-unet does); the
output is the softmax probability of each class; the weights come as a PyTorch state
dict (architecture :class:`~napari_unet.core.models.unet.UNet` of this package), as TorchScript and, when the
``onnx`` package is installed, as ONNX. The test input and output tensors are computed by
this project's :class:`~napari_unet.core.predict.tiles.Predictor`. Writing needs the optional
``bioimageio.spec`` package (``pip install 'napari-unet[bioimageio]'``).

:func:`.package.load_package` reads such a package back.
"""

from __future__ import annotations

import errno
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from napari_unet.core.errors import InputError
from napari_unet.core.io.paths import atomic_write
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.share.names import check_name, package_name
from napari_unet.core.share.package import (
    ARCHITECTURE_CALLABLE,
    ARCHITECTURE_MODULE,
    is_package_path,
)

log = logging.getLogger(__name__)

INPUT_ID = "raw"
OUTPUT_ID = "probabilities"
#: The longest side of the test tensor written into a package (pixels).
TEST_SIDE = 256

U_NET_CITATION = ("Ronneberger, O., Fischer, P., Brox, T. U-Net: Convolutional Networks for "
                  "Biomedical Image Segmentation. MICCAI 2015.")
U_NET_DOI = "10.1007/978-3-319-24574-4_28"


@dataclass
class ExportResult:
    """What :func:`export_bioimageio` wrote: the package, its weight formats and the
    formats left out, each with the reason."""

    path: Path
    weight_formats: list[str]
    skipped: dict[str, str] = field(default_factory=dict)


def channel_ids(names: list[str]) -> list[str]:
    """Class names as bioimage.io identifiers (letters, digits, ``_``), all distinct."""
    out: list[str] = []
    for i, name in enumerate(names):
        ident = re.sub(r"\W+", "_", str(name), flags=re.ASCII).strip("_") or f"class_{i}"
        if not ident[0].isalpha():
            ident = f"c{ident}"
        while ident in out:
            ident = f"{ident}_{i}"
        out.append(ident)
    return out


def centre_slice(image: np.ndarray, multiple: int, side: int = TEST_SIDE) -> np.ndarray:
    """One 2D slice of ``image`` (the middle one of a stack), cropped around its centre
    to at most ``side`` pixels and to a multiple of ``multiple`` on each axis."""
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[image.shape[0] // 2]
    if image.ndim != 2:
        raise InputError(f"the test image has shape {image.shape}: give a 2D image or a stack "
                         "of 2D slices with one channel")
    h, w = image.shape
    th = min(h, max(side, multiple)) // multiple * multiple
    tw = min(w, max(side, multiple)) // multiple * multiple
    if th == 0 or tw == 0:
        raise InputError(f"the test image ({h} x {w} pixels) is smaller than {multiple} x "
                         f"{multiple} pixels, the smallest input of this model")
    y0, x0 = (h - th) // 2, (w - tw) // 2
    return np.ascontiguousarray(image[y0 : y0 + th, x0 : x0 + tw])


def reference_tensors(bundle: ModelBundle, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The test input (1, C_in, Y, X) float32 and the probabilities (1, C, Y, X) that
    this project's :class:`~napari_unet.core.predict.tiles.Predictor` gives for it: one tile without overlap,
    float32 on the CPU, the computation a bioimage.io tool does with the package.
    ``image`` holds the model's channels (:func:`~napari_unet.core.io.channels.as_model_input`)."""
    from napari_unet.core.io.channels import as_model_input
    from napari_unet.core.predict.tiles import Predictor

    multiple = 2**bundle.config.depth
    full = as_model_input(image, bundle.in_channels, bundle.channels)
    middle = full[full.shape[0] // 2]
    raw = np.stack([centre_slice(c, multiple) for c in middle]).astype(np.float32)
    predictor = Predictor(bundle, device="cpu", tile_size=max(raw.shape[1:]), overlap=0,
                          mixed_precision=False, tta=False, rescale="off")
    probs = predictor.predict(raw[np.newaxis], probabilities=True).probabilities
    return raw[np.newaxis], probs.astype(np.float32)


def _input_text(bundle: ModelBundle) -> str:
    if bundle.channels is None:
        return "one grey-level slice"
    which = ", ".join(str(c) for c in bundle.channels)
    if bundle.in_channels == 1:
        return f"one grey-level slice (channel {which} of the training images)"
    return f"one slice of {bundle.in_channels} channels (channels {which} of the training images)"


def input_channel_names(bundle: ModelBundle) -> list[str]:
    """Names of the input channels in a package: ``grey`` for one-channel models,
    ``channel_<i>`` after the training images' channels otherwise."""
    if bundle.in_channels == 1:
        return ["grey"]
    return [f"channel_{c}" for c in bundle.channels or range(bundle.in_channels)]


def _input_lines(bundle: ModelBundle) -> str:
    c, norm = bundle.config, bundle.normalisation
    if bundle.dims == 3:
        voxel = ("" if bundle.voxel_size is None else "; trained at voxel size "
                 + " x ".join(f"{v:g}" for v in bundle.voxel_size) + " um (z, y, x)")
        return (f"- Input `{INPUT_ID}`: one volume (batch, channel, z, y, x), sides multiples "
                f"of {' x '.join(map(str, c.multiple))} voxels{voxel}.\n"
                f"- Preprocessing: the {norm.low} and {norm.high} percentiles of the volume "
                "(of each channel) are mapped to 0 and 1 (`scale_range` over z, y and x).")
    return (f"- Input `{INPUT_ID}`: {_input_text(bundle)} (batch, channel, y, x), each side "
            f"a multiple\n  of {2**c.depth} pixels.\n"
            f"- Preprocessing: the {norm.low} and {norm.high} percentiles of each slice (and "
            "of each\n  channel) are mapped to 0 and 1 (`scale_range` over y and x).")


def _documentation(bundle: ModelBundle, name: str) -> str:
    c = bundle.config
    classes = "\n".join(f"- channel {i}: {n}" for i, n in enumerate(bundle.class_names))
    return f"""# {name}

A U-Net (Ronneberger et al., 2015) trained with napari-unet on sparse strokes or labels.

- Architecture: `napari_unet.core.models.unet.UNet`, {c.in_channels} input channel(s),
  {c.n_classes} classes, {c.base_channels} base channels, depth {c.depth},
  {"bilinear up-sampling" if c.bilinear else "transposed convolutions"}.
{_input_lines(bundle)}
- Output `{OUTPUT_ID}`: the softmax probability of each class (channel axis).
  napari-unet labels a pixel as foreground when 1 - p(background) is at least 0.5,
  then as its most likely foreground class.
- Trained for {bundle.iterations} iterations.

Classes:

{classes}

Run it with bioimage.io's tools, or with napari-unet:
`napari-unet predict --model THIS.zip --image IMAGE.tif --out LABELS.tif`.

# Validation

The test input is one slice of an image and the test output the probabilities that
napari-unet's own predictor gives for it (one tile, float32, CPU).
Check the model on images of your own with napari-unet's `evaluate` command or by
correcting its predictions in napari.
"""


def _torchscript(model, example, path: Path) -> None:
    import warnings

    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path))


def _onnx(model, example, path: Path, dims: int = 2) -> int:
    """Write ONNX weights; the opset version used. Raises when it cannot be exported."""
    import importlib.util
    import warnings

    import torch

    if importlib.util.find_spec("onnx") is None:
        raise ImportError("the onnx package is not installed")
    opset = 17
    names = ["z", "y", "x"] if dims == 3 else ["y", "x"]
    spatial = {0: "batch", **{i + 2: n for i, n in enumerate(names)}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), input_names=[INPUT_ID],
                          output_names=["logits"], opset_version=opset, dynamo=False,
                          dynamic_axes={INPUT_ID: spatial, "logits": spatial})
    return opset


def _require_spec():
    try:
        import bioimageio.spec  # noqa: F401
    except ImportError:
        raise InputError(
            "writing a bioimage.io package needs the bioimageio.spec package: "
            "pip install 'napari-unet[bioimageio]'"
        ) from None


def export_bioimageio(bundle: ModelBundle, out: str | Path, *, test_image: np.ndarray,
                      name: str | None = None,
                      authors: list[str] | None = None, onnx: bool = True) -> ExportResult:
    """Write ``bundle`` as a bioimage.io model package (a ``.zip``) at ``out``, atomically.

    ``test_image`` (2D or a stack, with the model's channels as (Z, C, Y, X) for a model
    of several; the command line and the GUI fall back on the shipped nuclei sample,
    :func:`napari_unet.samples.sample_image`, for one-channel models) gives the test
    tensors: its middle slice, cropped to at most :data:`TEST_SIDE` pixels a side.
    ``authors``: the names the package credits (bioimage.io asks for at least one).
    """
    _require_spec()
    out = Path(out)
    if not is_package_path(out):
        raise InputError(f"{out} must end in .zip: a bioimage.io model package is a zip file")
    norm = bundle.normalisation
    if norm.high <= 1:
        raise InputError(f"the model's upper percentile {norm.high} is 1 or less, which a "
                         "bioimage.io package cannot describe")
    name = check_name(name) if name else package_name(out.stem)
    if bundle.dims == 3:
        from napari_unet.core.share.volume_export import volume_reference_tensors

        raw, probs = volume_reference_tensors(bundle, test_image)
    else:
        raw, probs = reference_tensors(bundle, test_image)

    try:
        with tempfile.TemporaryDirectory(prefix="napari-unet-export-") as tmp_name:
            return _write_package(bundle, out, Path(tmp_name), name, authors, onnx, raw,
                                  probs)
    except OSError as exc:
        raise _for_the_user(exc, out) from None
    except RuntimeError as exc:  # torch.save on a full disk: "... file write failed"
        if "write" not in str(exc).lower():
            raise
        raise OSError(errno.EIO, "could not write all of it (is the disk full, or a "
                                 "file-size limit reached?)", str(out)) from None


def _for_the_user(exc: OSError, out: Path) -> OSError:
    """``exc`` about the package ``out`` the user asked for, not about the temporary
    files it is put together from."""
    if exc.errno is None or not exc.strerror:  # numpy: "65536 requested and 24968 written"
        return OSError(errno.EIO, "could not write all of it (is the disk full, or a "
                                  "file-size limit reached?)", str(out))
    return OSError(exc.errno, exc.strerror, str(out))


def _write_package(bundle: ModelBundle, out: Path, tmp: Path, name: str,
                   authors: list[str] | None, onnx: bool, raw: np.ndarray,
                   probs: np.ndarray) -> ExportResult:
    """Put the package together in the folder ``tmp``, then write it at ``out``."""
    import torch
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5

    norm = bundle.normalisation
    model = bundle.build_model().eval()
    ids = channel_ids(bundle.class_names)

    np.save(tmp / "test_input.npy", raw)
    np.save(tmp / "test_output.npy", probs)
    # sample tensors, for people: the test slice and its probabilities as TIFF
    tifffile.imwrite(tmp / "sample_input.tif", raw[0, 0] if raw.shape[1] == 1 else raw[0])
    tifffile.imwrite(tmp / "sample_output.tif", probs[0])
    torch.save({k: v.detach().cpu() for k, v in bundle.state_dict.items()},
               tmp / "weights.pt")
    (tmp / "README.md").write_text(_documentation(bundle, name), encoding="utf-8")
    example = torch.from_numpy(raw)
    _torchscript(model, example, tmp / "weights_torchscript.pt")
    pytorch_version = v0_5.Version(torch.__version__.split("+")[0])
    skipped: dict[str, str] = {}
    onnx_descr = None
    if onnx:
        try:
            opset = _onnx(model, example, tmp / "weights.onnx", bundle.dims)
            onnx_descr = v0_5.OnnxWeightsDescr(source=tmp / "weights.onnx",
                                               opset_version=opset,
                                               parent="pytorch_state_dict")
        except Exception as exc:  # an optional format: the package is complete without
            skipped["onnx"] = f"{type(exc).__name__}: {exc}"[:300]
            log.info("ONNX weights left out of the package (%s)", skipped["onnx"])
    else:
        skipped["onnx"] = "not asked for"

    from napari_unet.core.share.volume_export import space_axes

    inputs = [v0_5.InputTensorDescr(
        id=v0_5.TensorId(INPUT_ID),
        description=_input_text(bundle),
        axes=[v0_5.BatchAxis(),
              v0_5.ChannelAxis(channel_names=[v0_5.Identifier(n)
                                              for n in input_channel_names(bundle)]),
              *space_axes(v0_5, bundle)],
        test_tensor=v0_5.FileDescr(source=tmp / "test_input.npy"),
        sample_tensor=v0_5.FileDescr(source=tmp / "sample_input.tif"),
        data=v0_5.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=[v0_5.ScaleRangeDescr(kwargs=v0_5.ScaleRangeKwargs(
            axes=[a.id for a in space_axes(v0_5, bundle)],  # 2D: each slice; 3D: the volume
            min_percentile=float(norm.low),
            max_percentile=float(norm.high)))],
    )]
    ref = v0_5.TensorId(INPUT_ID)
    outputs = [v0_5.OutputTensorDescr(
        id=v0_5.TensorId(OUTPUT_ID),
        description="softmax probability of each class",
        axes=[v0_5.BatchAxis(),
              v0_5.ChannelAxis(channel_names=[v0_5.Identifier(i) for i in ids]),
              *space_axes(v0_5, bundle, output_of=str(ref))],
        test_tensor=v0_5.FileDescr(source=tmp / "test_output.npy"),
        sample_tensor=v0_5.FileDescr(source=tmp / "sample_output.tif"),
        data=v0_5.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
        postprocessing=[v0_5.SoftmaxDescr(kwargs=v0_5.SoftmaxKwargs(
            axis=v0_5.AxisId("channel")))],
    )]
    weights = v0_5.WeightsDescr(
        pytorch_state_dict=v0_5.PytorchStateDictWeightsDescr(
            source=tmp / "weights.pt",
            architecture=v0_5.ArchitectureFromLibraryDescr(
                callable=v0_5.Identifier(ARCHITECTURE_CALLABLE),
                import_from=ARCHITECTURE_MODULE,
                kwargs=bundle.config.to_dict()),
            pytorch_version=pytorch_version),
        torchscript=v0_5.TorchscriptWeightsDescr(
            source=tmp / "weights_torchscript.pt", pytorch_version=pytorch_version,
            parent="pytorch_state_dict"),
        onnx=onnx_descr,
    )
    from pydantic import ValidationError

    try:
        descr = _model_descr(v0_5, name, authors or ["napari-unet user"], bundle, tmp,
                             inputs, outputs, weights)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        raise InputError(f"the package cannot be written: {where}: {err.get('msg')}"
                         [:300]) from None
    package = tmp / "package.zip"
    save_bioimageio_package(descr, output_path=package)

    def write(target: Path) -> None:
        shutil.copyfile(package, target)

    atomic_write(out, write)
    formats = ["pytorch_state_dict", "torchscript"] + (["onnx"] if onnx_descr else [])
    return ExportResult(out, formats, skipped)


def _model_descr(v0_5, name: str, authors: list[str], bundle: ModelBundle, tmp: Path, inputs,
                 outputs, weights):
    norm = bundle.normalisation
    return v0_5.ModelDescr(
        name=name,
        description=f"U-Net segmenting {bundle.n_classes} classes "
                    f"({', '.join(bundle.class_names)}), trained with napari-unet",
        authors=[v0_5.Author(name=a) for a in authors],
        cite=[v0_5.CiteEntry(text=U_NET_CITATION, doi=v0_5.Doi(U_NET_DOI))],
        license=v0_5.LicenseId("BSD-3-Clause"),
        documentation=v0_5.FileDescr(source=tmp / "README.md"),
        tags=["napari-unet", "unet", "segmentation", f"{bundle.dims}d", "pytorch"],
        inputs=inputs,
        outputs=outputs,
        weights=weights,
        config=v0_5.Config(napari_unet={
            "label_kind": bundle.label_kind,
            "class_names": list(bundle.class_names),
            "class_colors": list(bundle.class_colors),
            "normalisation": norm.to_dict(),
            "iterations": int(bundle.iterations),
            "channels": None if bundle.channels is None else list(bundle.channels),
            "object_size": bundle.object_size,
            "voxel_size": None if bundle.voxel_size is None else list(bundle.voxel_size),
        }),
    )
