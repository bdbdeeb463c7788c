"""What a prediction gives: labels, and optionally probabilities, instances, resize factors
and the uncertainty of every pixel (:mod:`.uncertainty`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Prediction:
    """Labels (0 = background, 1..K-1 classes), optional probabilities and instances,
    and the factor each predicted slice was resized by (:mod:`~napari_unet.core.scale`; 1 = as it is)."""

    labels: np.ndarray
    probabilities: np.ndarray | None = None  # (C, Y, X) or (Z, C, Y, X), float32
    instances: np.ndarray | None = None
    factors: dict[int, float] = field(default_factory=dict)
    uncertainty: np.ndarray | None = None  # (Y, X) or (Z, Y, X), float32 in [0, 1]

    def shaped(self, shape: tuple[int, ...]) -> Prediction:
        """The same results with labels of ``shape``: a 2D image predicted as one slice of
        channels (1, C, Y, X) gives labels (1, Y, X), which this makes (Y, X) again."""
        if tuple(self.labels.shape) == tuple(shape):
            return self
        if self.labels.shape[0] != 1 or tuple(self.labels.shape[1:]) != tuple(shape):
            raise ValueError(f"labels of shape {self.labels.shape} cannot become {shape}")
        return Prediction(self.labels[0],
                          None if self.probabilities is None else self.probabilities[0],
                          None if self.instances is None else self.instances[0],
                          dict(self.factors),
                          None if self.uncertainty is None else self.uncertainty[0])

    def resized(self) -> dict[int, float]:
        """The slices that were resized, with their factors."""
        return {z: f for z, f in self.factors.items() if f != 1.0}
