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
