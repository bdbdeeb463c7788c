"""Plan a training run: the one function the command line, the GUI and the benchmarks use.

From images, annotations and the user's :class:`~napari_unet.core.config.TrainOptions`,
:func:`plan_training` builds the training data (with border weights when asked), the model
to train (continued, started from the shipped nuclei model, or new) and the
:class:`~napari_unet.core.config.TrainConfig` for the device, so that the same inputs and
choices train the same way wherever they come from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from napari_unet.core.config import START_MODEL, TrainConfig, TrainOptions
from napari_unet.core.errors import InputError
from napari_unet.core.io.channels import n_channels
from napari_unet.core.io.lazy import is_lazy
from napari_unet.core.labels import border_weights, painted_objects
from napari_unet.core.models.checkpoint import ModelBundle, default_class_names, load_bundle
from napari_unet.core.models.device import select_device
from napari_unet.core.normalise import has_finite
from napari_unet.core.train.data import TrainingData


@dataclass(frozen=True)
class TrainingPlan:
    """What a :class:`~napari_unet.core.train.trainer.Trainer` needs."""

    bundle: ModelBundle
    data: TrainingData
    config: TrainConfig


def start_bundle(labels_kind: str, n_classes: int) -> ModelBundle:
    """The shipped nuclei model as a new model for ``labels_kind`` with ``n_classes``.

    The starting model (``scripts/pretrain.py``) knows background and nuclei from
    synthetic fluorescence images; with more classes its output layer grows. Worth it
    for objects like nuclei (DSB 2018 instance masks, 180 s on the 2-core CPU: foreground
    IoU 0.885 -> 0.892, F1 0.935 -> 0.947), not for EM membranes (ISBI pixel error
    0.079 -> 0.084). Raises :class:`InputError` when the file is missing.
    """
    if not START_MODEL.is_file():
        raise InputError(
            f"the shipped starting model is missing ({START_MODEL}): reinstall napari-unet, "
            "or start from random weights (--start-model none; in the GUI, untick 'Start "
            "from the nuclei model')"
        )
    bundle = load_bundle(START_MODEL).with_classes(n_classes)
    if bundle.label_kind != labels_kind:
        bundle = replace(bundle, label_kind=labels_kind,
                         class_names=default_class_names(bundle.n_classes, labels_kind))
    return bundle


def new_bundle(options: TrainOptions, n_classes: int, device_kind: str = "cpu",
               in_channels: int = 1) -> ModelBundle:
    """A new model as ``options`` say: from the nuclei model (which reads one channel:
    widened to ``in_channels``, it starts by seeing their mean), or from seeded weights."""
    if options.starts_from_nuclei:
        return start_bundle(options.labels_kind, max(n_classes, 2)).with_channels(in_channels)
    return ModelBundle.new(options.architecture(n_classes, device_kind, in_channels),
                           options.labels_kind, seed=options.seed)


def recorded_channels(options: TrainOptions, in_channels: int,
                      resume: ModelBundle | None = None) -> tuple[int, ...] | None:
    """The channels a model trained on images of ``in_channels`` channels records: those
    chosen, else the resumed model's, else all of them (None for one channel)."""
    if options.channels is not None:
        if len(options.channels) != in_channels:
            raise InputError(f"{len(options.channels)} channels are chosen but the images "
                             f"have {in_channels}")
        return options.channels
    if resume is not None and resume.channels is not None:
        return resume.channels
    return None if in_channels == 1 else tuple(range(in_channels))


def plan_training(
    images: Sequence[np.ndarray],
    annotations: Sequence[np.ndarray],
    options: TrainOptions,
    *,
    weights: Sequence[np.ndarray | None] | None = None,
    objects: Sequence[np.ndarray | None] | None = None,
    resume: ModelBundle | None = None,
    class_names: Sequence[str] = (),
    class_colors: Sequence[str] = (),
) -> TrainingPlan:
    """The model, data and settings of one run.

    ``images`` hold the channels to train on: one (2D or Z stacks) or several, as
    (Z, C, Y, X) (:func:`~napari_unet.core.io.channels.pick_channels`; ``options.channels``
    says which they were, recorded in the model);
    ``annotations`` follow the sparse convention (0 = not annotated, 1 = background,
    2.. = classes); ``weights`` scale the loss per pixel (corrected pixels, say);
    ``objects`` are instance masks for the border weights where known (else the painted
    objects are used); ``resume`` continues that model with its normalisation;
    ``class_names`` and ``class_colors`` name a model's classes (the GUI's class list).
    """
    if resume is not None and images:
        have = n_channels(images[0])
        if resume.in_channels != have:
            k = resume.in_channels
            raise InputError(
                f"the model reads {k} channel{'s' if k > 1 else ''} but the images to train on "
                f"have {have}: choose {k} channel{'s' if k > 1 else ''}, or train a new model")
    for i, image in enumerate(images):
        if not has_finite(image):
            which = "the image" if len(images) == 1 else f"image {i + 1} of {len(images)}"
            raise InputError(f"{which} has no finite values (every pixel is NaN or "
                             "infinite): there is nothing to learn from")
    device_kind = select_device(options.device).type
    n_images = len(images)
    weights = list(weights) if weights is not None else [None] * n_images
    if options.border_weights:
        if any(is_lazy(a) for a in annotations):
            raise InputError("border weights need the labels in memory, and these are too "
                             "large for it: train without border weights")
        objects = list(objects) if objects is not None else [None] * n_images
        weights = [
            border_weights(painted_objects(a) if o is None else o) * (1.0 if w is None else w)
            for a, o, w in zip(annotations, objects, weights)
        ]
    data = TrainingData.from_annotations(
        images, annotations, weights=weights, seed=options.seed,
        normalisation=None if resume is None else resume.normalisation,
    )
    n_classes = max(data.n_classes, len(class_names), 2)
    if resume is None:
        bundle = new_bundle(options, n_classes, device_kind, data.n_channels)
    else:
        bundle = resume.with_classes(n_classes)
    bundle = replace(bundle, channels=recorded_channels(options, data.n_channels, resume))
    if len(class_names) >= bundle.n_classes:
        bundle = replace(bundle, class_names=list(class_names[: bundle.n_classes]),
                         class_colors=list(class_colors[: bundle.n_classes]))
    return TrainingPlan(bundle=bundle, data=data, config=options.train_config(device_kind))
