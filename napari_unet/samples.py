"""The sample data shipped with the package (no torch, no napari).

In a wheel the TIFFs live in ``napari_unet/_sample_data``; in a source checkout or an
editable install they are read from the repository's ``sample_data/`` folder, where
``sample_data/make_sample_data.py`` generates them.
"""

from __future__ import annotations

from pathlib import Path

SAMPLES = {
    "nuclei": "nuclei.tif",
    "nuclei_labels": "nuclei_labels.tif",
    "nuclei_annotations": "nuclei_annotations.tif",
}


def sample_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "_sample_data", here.parent / "sample_data"):
        if (candidate / SAMPLES["nuclei"]).is_file():
            return candidate
    raise FileNotFoundError(
        "the napari-unet sample data is missing; run sample_data/make_sample_data.py"
    )


def sample_path(name: str) -> Path:
    """Path of one sample: ``nuclei``, ``nuclei_labels`` or ``nuclei_annotations``."""
    if name not in SAMPLES:
        raise KeyError(f"unknown sample {name!r}; choose from {', '.join(SAMPLES)}")
    return sample_dir() / SAMPLES[name]


def sample_image(name: str = "nuclei"):
    """The pixels of one sample (a numpy array)."""
    from napari_unet.core.io.tiff import read_tiff

    return read_tiff(sample_path(name)).data
