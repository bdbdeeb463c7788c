"""bioimage.io model packages that napari-unet exported (:mod:`.export`), read back.

:func:`load_package` turns such a package into a :class:`~napari_unet.core.models.checkpoint.ModelBundle` with
only the standard library, PyYAML and torch, so a collaborator needs only the file;
packages from other tools are refused with a sentence.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import zipfile
import zlib
from pathlib import Path

from napari_unet.core.errors import ModelFileError
from napari_unet.core.models.checkpoint import FORMAT, FORMAT_VERSION, ModelBundle, bundle_from_dict

#: Where the weights' architecture lives, as a package names it.
ARCHITECTURE_MODULE = "napari_unet.core.models.unet"
ARCHITECTURE_CALLABLE = "UNet"
#: A member of a package larger than this is refused when reading it (bytes).
MAX_MEMBER_BYTES = 4 * 1024**3
#: The largest rdf.yaml read (bytes): the one napari-unet writes is about 5 KB.
MAX_RDF_BYTES = 1 << 20
RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def is_package_path(path: str | Path) -> bool:
    """Whether ``path`` names a bioimage.io package (a ``.zip`` file) by its name."""
    return Path(path).suffix.lower() == ".zip"


def _member(zf: zipfile.ZipFile, name: str, what: str, limit: int = MAX_MEMBER_BYTES,
            why: str = "") -> bytes:
    """The bytes of member ``name``, refused without unpacking them when the zip's
    directory declares more than ``limit`` bytes, and never unpacked beyond ``limit``
    when the directory lies (a zip bomb). ``why`` says what the limit is."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ModelFileError(f"{what} lacks {name}, which its rdf.yaml names") from None
    limit = min(limit, MAX_MEMBER_BYTES)
    why = why or f"at most {_size(limit)} is read"

    def too_large(size: str) -> ModelFileError:
        return ModelFileError(f"{what} was refused: its {name} unpacks to {size} ({why}); "
                              "nothing in it was loaded")

    if info.file_size > limit:
        raise too_large(_size(info.file_size))
    with zf.open(info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise too_large(f"more than {_size(limit)}")
    return data


def _weights_limit(arch: dict, what: str) -> tuple[int, str]:
    """The most bytes the state dict of the architecture ``arch`` (the rdf.yaml's
    kwargs) can take: its parameters as float64, plus 1 MiB of file structure; and the
    sentence that says so. The architecture is laid out without memory (meta device)."""
    import torch

    from napari_unet.core.models.unet import UNet, UNetConfig

    try:
        config = UNetConfig(**(arch.get("kwargs") or {}))
        with torch.device("meta"):
            n = sum(v.numel() for v in UNet.from_config(config).state_dict().values())
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise ModelFileError(f"{what} declares an architecture napari-unet cannot build "
                             f"({exc})"[:300]) from None
    return 8 * n + (1 << 20), f"its U-Net of {n:,} parameters needs at most {_size(8 * n)}"


def _check_sha256(data: bytes, weights: dict, what: str) -> None:
    recorded = weights.get("sha256")
    if recorded is None:
        return
    actual = hashlib.sha256(data).hexdigest()
    if str(recorded).lower() != actual:
        raise ModelFileError(
            f"{what} was refused: its weights ({weights.get('source')}) do not match the "
            f"sha256 that its rdf.yaml records ({str(recorded)[:12]}… recorded, "
            f"{actual[:12]}… found): the weights were changed or swapped after export; "
            "nothing in it was run")


def _percentiles(tensor: dict, what: str) -> tuple[float, float]:
    for step in tensor.get("preprocessing") or []:
        if isinstance(step, dict) and step.get("id") == "scale_range":
            kwargs = step.get("kwargs") or {}
            return (float(kwargs.get("min_percentile", 0.0)),
                    float(kwargs.get("max_percentile", 100.0)))
    raise ModelFileError(f"{what} does not scale its input by percentiles (scale_range); "
                         "napari-unet runs only the packages it exports")


def load_package(path: str | Path) -> ModelBundle:
    """The model of a bioimage.io package written by :func:`export_bioimageio`, as a
    bundle; :class:`ModelFileError` with a sentence for any other file."""
    import torch
    import yaml

    path = Path(path)
    what = path.name
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist" if not path.exists()
                             else f"{path} is not a file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            rdf_name = next((n for n in RDF_NAMES if n in names), None)
            if rdf_name is None:
                raise ModelFileError(f"{what} is not a bioimage.io model package (no rdf.yaml)")
            rdf = yaml.safe_load(_member(zf, rdf_name, what, MAX_RDF_BYTES,
                                         f"a model's description takes a few KB; at most "
                                         f"{_size(MAX_RDF_BYTES)} is read"))
            if not isinstance(rdf, dict) or rdf.get("type") != "model":
                raise ModelFileError(f"{what} is a bioimage.io package but not a model")
            weights = (rdf.get("weights") or {}).get("pytorch_state_dict")
            arch = (weights or {}).get("architecture") or {}
            if (not isinstance(weights, dict) or arch.get("import_from") != ARCHITECTURE_MODULE
                    or arch.get("callable") != ARCHITECTURE_CALLABLE):
                raise ModelFileError(
                    f"{what} is a bioimage.io model not exported by napari-unet (it has no "
                    "napari-unet U-Net weights); run it with bioimage.io's tools")
            inputs, outputs = rdf.get("inputs") or [{}], rdf.get("outputs") or [{}]
            low, high = _percentiles(inputs[0], what)
            extra = (rdf.get("config") or {}).get("napari_unet") or {}
            limit, why = _weights_limit(arch, what)
            data = _member(zf, str(weights.get("source")), what, limit, why)
            _check_sha256(data, weights, what)
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except ModelFileError:
        raise
    except pickle.UnpicklingError:
        raise ModelFileError(
            f"{what} was refused: its weights hold Python objects that could run code when "
            "loaded; nothing in it was run") from None
    except zipfile.BadZipFile:
        raise ModelFileError(f"{what} is not a bioimage.io model package (not a zip file), "
                             "or it is truncated") from None
    except (yaml.YAMLError, UnicodeDecodeError):
        raise ModelFileError(f"{what} has a damaged rdf.yaml") from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError,
            IndexError, zlib.error) as exc:
        raise ModelFileError(f"{what} is a damaged bioimage.io package "
                             f"({type(exc).__name__})") from None
    names_out = []
    for axis in outputs[0].get("axes") or []:
        if isinstance(axis, dict) and axis.get("type") == "channel":
            names_out = [str(n) for n in axis.get("channel_names") or []]
    normalisation = dict(extra.get("normalisation") or {})
    normalisation.update(low=low, high=high)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": arch.get("kwargs") or {},
        "state_dict": state,
        "label_kind": extra.get("label_kind", "annotation"),
        "class_names": extra.get("class_names", names_out),
        "class_colors": extra.get("class_colors", []),
        "normalisation": normalisation,
        "iterations": extra.get("iterations", 0),
        "channels": extra.get("channels"),
        "object_size": extra.get("object_size"),
        "voxel_size": extra.get("voxel_size"),
    }
    return bundle_from_dict(payload, what)
