"""Names of bioimage.io model packages: what the spec's validator accepts, derived from
a file name or checked when the user gives one."""

from __future__ import annotations

import re

from napari_unet.core.errors import InputError

#: The characters bioimage.io allows in a model's name (spec 0.5), its length limits and
#: the length above which its validator warns.
NAME_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+- ()")
NAME_MIN, NAME_MAX, NAME_ADVISED = 5, 128, 64


def _plain(text: str) -> str:
    """``text`` in :data:`NAME_ALPHABET`: accents dropped, any other character ``-``."""
    import unicodedata

    plain = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    plain = re.sub(r"[^A-Za-z0-9_+() -]+", "-", plain)
    return re.sub(r"-{2,}", "-", plain).strip("- ")


def package_name(stem: str) -> str:
    """A name bioimage.io's validator accepts, derived from a file's ``stem``
    (``nuclei.v2`` -> ``napari-unet nuclei-v2``, ``noyaux_é`` -> ``napari-unet
    noyaux_e``): accents dropped, any other character outside :data:`NAME_ALPHABET`
    becomes ``-``, at most :data:`NAME_ADVISED` characters."""
    plain = _plain(stem)
    name = f"napari-unet {plain}" if plain else "napari-unet model"
    return name[:NAME_ADVISED].rstrip("- ")


def check_name(name: str) -> str:
    """``name`` when bioimage.io's validator accepts it, else :class:`InputError` that
    says which characters are wrong and suggests one that is accepted."""
    bad = sorted(set(name) - NAME_ALPHABET)
    if not bad and NAME_MIN <= len(name) <= NAME_MAX:
        return name
    plain = _plain(name)[:NAME_ADVISED]
    suggestion = plain if len(plain) >= NAME_MIN else package_name(name)
    why = (f"holds {', '.join(repr(c) for c in bad)}" if bad else
           f"has {len(name)} characters")
    raise InputError(f"the package name {name!r} {why}: bioimage.io accepts {NAME_MIN} to "
                     f"{NAME_MAX} letters (a-z, A-Z), digits, spaces and _ + - ( ); for "
                     f"example {suggestion!r}")
