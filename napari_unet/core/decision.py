"""From class probabilities to labels: the one foreground decision.

A pixel is foreground when its foreground probability, ``1 - p(background)``, is at
least the threshold ``t`` (0.5 by default); a foreground pixel takes the most likely of
the foreground classes. With two classes and ``t = 0.5`` this is the most likely class;
with more it is not: a pixel with p(background) 0.4 and two foreground classes at 0.3
each is foreground, although background is its most likely class. Prediction, the
instance split, the live preview and the validation during training all decide with
:func:`decide`; objects of instance models grow from :func:`interior_seeds`. numpy only,
so the GUI can read the default without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Foreground where 1 - p(background) >= this.
FOREGROUND_THRESHOLD = 0.5

#: Models of background / interior / boundary: an object grows from the foreground pixels
#: whose p(interior) is at least this. Seeds from the most likely class merged touching
#: nuclei and kept faint false blobs (``benchmarks/quality/seeds.py``, 150 s models): chosen on 2
#: DSB folds, 0.85 raised F1@0.5 on the 2 others and on dense fluorescence but lost on dim
#: fluorescence, where a model trained on other images is less sure; 0.8 gained on the
#: folds and on dense images and lost nothing on dim ones.
SEED_PROBABILITY = 0.8

@dataclass(frozen=True)
class Cores:
    """Where the objects of a region start (:func:`~napari_unet.core.predict.objects.object_cores`):
    the maxima of its distance transform, smoothed by a Gaussian of ``smooth`` xy pixels,
    that rise at least ``height`` xy pixels above the saddles to their neighbours."""

    smooth: float
    height: float


#: Objects of a model without an interior class (strokes, semantic masks) grow from the
#: cores of each class's region. Its connected components merged touching nuclei. Chosen
#: on DSB fluorescence (round-0 models of ``benchmarks/quality/guided.py``, 60 s, 2 seeds,
#: 30 unseen images; smooth 0-2 x height 0.5-2): F1@0.5 0.801 -> 0.857; checked on
#: ``dsb2018/varied`` (0.853 -> 0.905 dense, 0.685 -> 0.754 dim). In volumes (strokes on
#: 3 slices) two runs on the ovule halves gave 0.516 and 0.442 against 0.459 and 0.448
#: for unsmoothed cores two voxels high (``benchmarks/quality/cores.py --volumes``).
FOREGROUND_CORES = Cores(smooth=1.0, height=0.5)

#: 3D objects of instance models (volumes, :mod:`~napari_unet.core.predict.volume_instances`):
#: the interior is the foreground with p(interior) at least this, and each object grows
#: from a core of it (:data:`INTERIOR_CORES`); the sure interiors (0.8) of 2D merged
#: touching nuclei in 3D. With the cores below, chosen on the ovule halves (two runs of
#: 4 models, ``benchmarks/quality/cores.py --volumes``; p >= 0.5, 0.65, 0.8 x smoothing
#: 0-2 x height 0.5-2): mean F1@0.5 0.709 (sure interiors 0.604, p >= 0.65 unsmoothed
#: 0.668); on the sets kept apart as good or better (0.855 and 0.562 in the two runs).
VOLUME_INTERIOR_PROBABILITY = 0.5

#: The cores of that interior: its distance transform smoothed by one xy voxel, cores two
#: xy voxels high.
INTERIOR_CORES = Cores(smooth=1.0, height=2.0)


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float strictly between 0 and 1, or :class:`InputError`."""
    from napari_unet.core.errors import InputError

    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise InputError(f"the foreground threshold must be a number, not {threshold!r}") from None
    if not 0 < t < 1:
        raise InputError(f"the foreground threshold must be between 0 and 1, not {threshold}")
    return t


def foreground(probs: np.ndarray, threshold: float = FOREGROUND_THRESHOLD) -> np.ndarray:
    """True where ``1 - p(background) >= threshold``; ``probs`` is (C, ...) with class 0
    the background."""
    return (1.0 - probs[0]) >= threshold


def interior_seeds(interior: np.ndarray, labels: np.ndarray,
                   probability: float = SEED_PROBABILITY) -> np.ndarray:
    """Where objects of an instance model start: foreground (``labels`` > 0) pixels whose
    p(interior) (``interior``) is at least ``probability``. A foreground blob without
    such a pixel becomes no object (the model is not sure it is one)."""
    return (np.asarray(labels) > 0) & (np.asarray(interior) >= probability)


def decide(probs: np.ndarray, threshold: float = FOREGROUND_THRESHOLD) -> np.ndarray:
    """Labels (0 = background, 1..C-1) of probabilities (C, ...): foreground where
    :func:`foreground`, there the most likely foreground class."""
    probs = np.asarray(probs)
    if probs.shape[0] < 2:
        raise ValueError("the decision needs at least two classes, background first")
    labels = probs[1:].argmax(0) + 1
    labels[~foreground(probs, threshold)] = 0
    return labels
