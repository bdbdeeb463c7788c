"""Errors that carry a sentence meant for the user.

The GUI shows ``str(error)`` in a napari notification and the command line prints it on
one line and exits with status 2. Anything else escaping the core is a bug.
"""


class NapariUnetError(Exception):
    """Base class of the errors the user can act on."""


class InputError(NapariUnetError, ValueError):
    """An image, a label image or an annotation that cannot be used as given."""


class ModelFileError(NapariUnetError):
    """A file that is not a napari-unet model, or one this version cannot read."""


class TrainingError(NapariUnetError, RuntimeError):
    """Training could not run (for example, out of memory after every fallback)."""


class PredictionError(NapariUnetError, RuntimeError):
    """Prediction could not run (for example, out of memory with the smallest tiles)."""


_DEVICE_FAILURES = (
    "CUDA error", "CUDA driver", "device-side assert", "CUBLAS_STATUS", "CUDNN_STATUS",
    "no CUDA GPUs are available", "HIP error", "MPS backend", "XPU error",
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says that the device or the computer ran out of memory."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text
        or "can't allocate memory" in text or "not enough memory" in text
    )


def is_device_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says that the accelerator failed or disappeared."""
    return isinstance(exc, RuntimeError) and any(k in str(exc) for k in _DEVICE_FAILURES)


def _array_memory(exc: BaseException) -> str | None:
    """For numpy's failure to allocate an array, its size and shape in words."""
    size = getattr(exc, "_total_size", None)
    shape = getattr(exc, "shape", None)
    if not isinstance(exc, MemoryError) or not isinstance(size, int) or shape is None:
        return None
    units = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2))
    unit, scale = next(((u, n) for u, n in units if size >= n), ("KiB", 1024))
    dims = "x".join(str(n) for n in shape)
    return f"{size / scale:.1f} {unit} (an array of {dims} {getattr(exc, 'dtype', '')})"


def failure_message(exc: BaseException, doing: str) -> str | None:
    """A sentence for the user about ``exc`` raised while ``doing`` something (e.g.
    ``"Training"``), or ``None`` when it is not an error the user can act on."""
    if isinstance(exc, NapariUnetError):
        return str(exc)
    array = _array_memory(exc)
    if array is not None:  # numpy could not allocate an array: its size is the cause
        return (f"{doing} ran out of memory: it needed {array} at once, more than this "
                "computer could give; use a smaller image (crop it), or for one that is "
                "truly large an OME-Zarr output (--out NAME.ome.zarr), predicted block by "
                "block")
    if is_out_of_memory(exc):
        return (f"{doing} ran out of memory: lower the batch or patch size, or use a smaller "
                "image")
    if is_device_failure(exc):
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        return (f"{doing} stopped because the GPU failed or disappeared ({first}); restart the "
                "program, or choose the CPU as device")
    return None
