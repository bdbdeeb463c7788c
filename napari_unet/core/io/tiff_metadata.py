"""What a TIFF's metadata say: the pixel spacing of each axis (ImageJ, OME, resolution
tags), key-value properties, and whether they declare a label image."""

from __future__ import annotations

from contextlib import suppress

import tifffile

#: Metadata keys and values that say a file is a label image: an ImageJ property, a key of
#: tifffile's JSON description or an OME map annotation ``labels = true``, or ``kind`` (or
#: ``type``) = one of :data:`LABEL_KINDS`.
LABEL_KINDS = ("labels", "label", "label image", "mask", "segmentation", "annotations")


def axes_scale(tif: tifffile.TiffFile, series: tifffile.TiffPageSeries) -> tuple[float, ...]:
    """Pixel spacing per axis from ImageJ or OME metadata and the resolution tags."""
    axes = series.axes
    scale = {ax: 1.0 for ax in axes}
    page = series.pages[0] if series.pages else None
    with suppress(Exception):
        if page is not None and "XResolution" in page.tags:
            num, den = page.tags["XResolution"].value
            if num:
                scale["X"] = den / num
            num, den = page.tags["YResolution"].value
            if num:
                scale["Y"] = den / num
    with suppress(Exception):
        if tif.imagej_metadata and "spacing" in tif.imagej_metadata:
            scale["Z"] = float(tif.imagej_metadata["spacing"])
    with suppress(Exception):
        if tif.is_ome:
            import xml.etree.ElementTree as ET

            root = ET.fromstring(tif.ome_metadata)
            for el in root.iter():
                if el.tag.endswith("Pixels"):
                    for ax in "XYZ":
                        value = el.attrib.get(f"PhysicalSize{ax}")
                        if value:
                            scale[ax] = float(value)
                    break
    return tuple(float(scale[ax]) if scale[ax] > 0 else 1.0 for ax in axes)


def metadata_properties(tif: tifffile.TiffFile) -> dict[str, str]:
    """Key-value metadata of a TIFF: ImageJ properties, tifffile's JSON description and
    OME map annotations, keys in lower case."""
    found: dict[str, str] = {}
    with suppress(Exception):
        for key, value in ((tif.imagej_metadata or {}).get("Properties") or {}).items():
            found[str(key).lower()] = str(value)
    with suppress(Exception):
        for key, value in (tif.shaped_metadata[0] if tif.shaped_metadata else {}).items():
            if isinstance(value, str | bool | int):
                found[str(key).lower()] = str(value)
    with suppress(Exception):
        if tif.is_ome:
            import xml.etree.ElementTree as ET

            for el in ET.fromstring(tif.ome_metadata).iter():
                if el.tag.endswith("}M") and el.attrib.get("K"):
                    found[el.attrib["K"].lower()] = el.text or ""
    return found


def labels_hint(properties: dict[str, str]) -> bool | None:
    """``True`` when metadata declare a label image, ``False`` an image, ``None`` when
    they say nothing."""
    flag = properties.get("labels", "").strip().lower()
    if flag in ("true", "1", "yes"):
        return True
    if flag in ("false", "0", "no"):
        return False
    kind = (properties.get("kind") or properties.get("type") or "").strip().lower()
    if kind in LABEL_KINDS:
        return True
    if kind in ("image", "raw", "intensity"):
        return False
    return None
