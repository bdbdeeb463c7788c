"""Load triton's compiler library so that it cannot crash napari.

PyPI's default Linux build of torch brings triton, and torch imports it the first time an
optimizer is built (through ``torch._dynamo``), so pressing Train imports it. triton's
library (``triton/_C/libtriton.so``) carries its own copy of LLVM and exports its symbols.
Mesa's OpenGL drivers (llvmpipe, radeonsi: most Linux desktops without NVIDIA's driver,
virtual machines, remote desktops) load another LLVM (``libLLVM-*.so``) into the process as
soon as napari's canvas exists. The dynamic linker then binds triton's static initialisers
to Mesa's LLVM symbols, and the process dies with a segmentation fault.

:func:`install` adds an import hook that loads triton's libraries with ``RTLD_DEEPBIND``
when another LLVM is already in the process, so triton binds to its own LLVM first. It
imports nothing and costs nothing until triton is imported; where no other LLVM is loaded,
or off Linux, triton loads as usual.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys

_PREFIX = "triton._C."


def foreign_llvm_loaded() -> bool:
    """Whether a shared LLVM library (Mesa's) is mapped into this process."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any("libLLVM" in line for line in maps)
    except OSError:
        return False


class _DeepBindLoader(importlib.machinery.ExtensionFileLoader):
    def create_module(self, spec):
        if not foreign_llvm_loaded():
            return super().create_module(spec)
        flags = sys.getdlopenflags()
        sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
        try:
            return super().create_module(spec)
        finally:
            sys.setdlopenflags(flags)


class _TritonFinder(importlib.abc.MetaPathFinder):
    """Finds triton's compiled modules as usual and hands them to :class:`_DeepBindLoader`."""

    def find_spec(self, fullname, path, target=None):
        if not fullname.startswith(_PREFIX):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and type(spec.loader) is importlib.machinery.ExtensionFileLoader:
            spec.loader = _DeepBindLoader(spec.loader.name, spec.loader.path)
        return spec


def install() -> bool:
    """Install the import hook once; returns whether it is in place."""
    if not sys.platform.startswith("linux") or not hasattr(os, "RTLD_DEEPBIND"):
        return False
    if not any(isinstance(finder, _TritonFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TritonFinder())
    return True
