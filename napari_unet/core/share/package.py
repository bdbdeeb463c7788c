"""bioimage.io model packages that napari-unet exported (:mod:`.export`), read back.

:func:`load_package` turns such a package into a :class:`~napari_unet.core.models.checkpoint.ModelBundle` with
only the standard library, PyYAML and torch, so a collaborator needs only the file;
packages from other tools are refused with a sentence.
"""

from __future__ import annotations

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
RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")


def is_package_path(path: str | Path) -> bool:
    """Whether ``path`` names a bioimage.io package (a ``.zip`` file) by its name."""
    return Path(path).suffix.lower() == ".zip"


def _member(zf: zipfile.ZipFile, name: str, what: str) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ModelFileError(f"{what} lacks {name}, which its rdf.yaml names") from None
    if info.file_size > MAX_MEMBER_BYTES:
        raise ModelFileError(f"{what}: {name} is larger than {MAX_MEMBER_BYTES >> 30} GiB")
    return zf.read(info)


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
            rdf = yaml.safe_load(_member(zf, rdf_name, what))
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
            state = torch.load(io.BytesIO(_member(zf, str(weights.get("source")), what)),
                               map_location="cpu", weights_only=True)
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
    }
    return bundle_from_dict(payload, what)
