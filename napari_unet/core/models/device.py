"""Device choice and CPU thread count."""

from __future__ import annotations

import ctypes
import functools
import sys

import torch

from napari_unet.core.errors import InputError


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; others are checked."""
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but no CUDA GPU is available here")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("device 'mps' was asked for but Apple's MPS is not available here")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"unknown device {name!r}; use auto, cpu, cuda (or cuda:N) or mps")
    if device.type == "cuda" and device.index is not None and (
            device.index >= torch.cuda.device_count()):
        raise InputError(f"device {name!r} does not exist: this computer has "
                         f"{torch.cuda.device_count()} CUDA GPU(s)")
    return device


def cpu_threads(leave_one_free: bool) -> int:
    """Threads for torch on the CPU: the fastest count measured here
    (:func:`~napari_unet.core.models.speed.cpu_choice`); with ``leave_one_free`` (the GUI) at
    most all cores but one, so the viewer stays fluid while training runs."""
    from napari_unet.core.models.speed import cpu_choice, logical_cores

    n = cpu_choice().threads
    return max(1, min(n, logical_cores() - 1)) if leave_one_free else n


@functools.cache
def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is used on ``device``: CUDA with bf16, or a CPU where bf16
    measured faster than fp32 (:func:`~napari_unet.core.models.speed.cpu_choice`).

    Asked at every training step and prediction batch, answered once per device."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        from napari_unet.core.models.speed import cpu_choice

        return cpu_choice().bf16
    return False


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast where it is used (see :func:`bf16_supported`), else a no-op context."""
    use = enabled and bf16_supported(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use)


def prefers_channels_last(device: torch.device) -> bool:
    return device.type in ("cuda", "cpu")


@functools.cache
def keep_freed_memory() -> bool:
    """Stop glibc from handing large freed blocks back to the system at once.

    Training and prediction allocate and free the same tens of megabytes at every step;
    by default glibc returns blocks over its mmap threshold to the kernel, so each step
    page-faults them in again, which costs about as much as the arithmetic on a small
    CPU. Blocks up to 256 MiB are kept in the heap instead (trimmed past 1 GiB). Linux
    with glibc only; elsewhere, and if it fails, nothing changes. Returns whether it
    applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 256 * 1024**2) == 1
        return ok and libc.mallopt(m_trim_threshold, 1024**3) == 1
    except (OSError, AttributeError):
        return False
