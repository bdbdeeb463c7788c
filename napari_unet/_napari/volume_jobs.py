"""The 3D side of the worker jobs: a 3D trainer for a volume, and prediction with a 3D
model (the whole volume, or the slab around one slice for the live preview). Plain
Python over arrays, in the worker thread, as :mod:`.jobs`; torch is imported there."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_unet.core.predict.tiles import Prediction

    from .requests import PredictRequest, TrainRequest


def volume_trainer(request: TrainRequest):
    """A :class:`~napari_unet.core.train.volume.VolumeTrainer` for the request's volumes
    (a new 3D model, or the request's 3D model continued)."""
    from napari_unet.core.train.volume import VolumeTrainer, plan_volume_training

    plan = plan_volume_training(
        request.images, request.annotations, request.options,
        voxel_size=request.voxel_size, weights=request.weights, resume=request.bundle,
        class_names=request.class_names, class_colors=request.class_colors)
    return VolumeTrainer.from_plan(plan)


def predict_volume(request: PredictRequest, progress=None) -> Prediction:
    """Predict with a 3D model: the slab around ``request.slab_z`` of the (slab of the)
    volume given, labels (Y, X); else the whole volume, labels (Z, Y, X), with 3D
    objects when asked."""
    from napari_unet.core.errors import InputError
    from napari_unet.core.predict.volume import VolumePredictor

    predictor = VolumePredictor(request.bundle, device=request.device,
                                foreground_threshold=request.foreground_threshold)
    image = np.asarray(request.image)
    if image.ndim == 2 or (image.ndim == 4 and image.shape[0] == 1):
        raise InputError("a 3D model predicts whole volumes: choose Predict: Whole stack "
                         "(while it trains, the live preview shows the slice in view)")
    if request.slab_z is not None:
        result = predictor.slab(image, request.slab_z, request.voxel_size,
                                stats=request.stats)
        return result if request.probabilities else replace(result, probabilities=None)
    return predictor.predict(image, request.voxel_size, probabilities=request.probabilities,
                             instances=request.instances, min_size=request.min_size,
                             progress=progress, uncertainty=request.uncertainty)


def slab_range(bundle, n: int, z: int, voxel_size=None) -> tuple[int, int]:
    """The slices ``(start, stop)`` of the slab that :meth:`VolumePredictor.slab` reads
    around slice ``z`` of ``n`` at ``voxel_size`` (the image's): copied on the GUI
    thread for the preview, not the whole volume."""
    from napari_unet.core.predict.volume import slab_range as core_slab_range
    from napari_unet.core.predict.volume import zoom_factors

    factors = zoom_factors(voxel_size, bundle.voxel_size)
    return core_slab_range(bundle, n, z, None if factors is None else factors[0])


def preview_stats(session, image, source, bundle) -> tuple | None:
    """The normalisation of the whole volume ``source`` (the data of ``image``, or its
    chosen channels) for the slab preview, computed once per volume and kept in the
    session: the next previews of the same data reuse it."""
    from napari_unet.core.predict.volume import volume_stats

    key = (image.unique_id, id(image.data), tuple(np.shape(source)), bundle.normalisation,
           session.channel_indices, tuple(layer.unique_id for layer in session.channel_layers))
    if session.preview_stats[0] != key:
        stats = volume_stats(bundle.normalisation, source)
        session.preview_stats = (key, None if stats is None else tuple(stats))
    return session.preview_stats[1]


def preview_request(session, bundle, z: int | None, device: str) -> PredictRequest:
    """The live preview's request with a 3D model: a copy of the slab of the chosen
    channels around slice ``z`` (GUI thread), the slice to predict in it."""
    from napari_unet.core.errors import InputError

    from .axes import channel_axis
    from .channel_choice import channel_layers, image_input
    from .requests import PredictRequest
    from .volume import model_voxel_size

    if z is None:
        raise InputError("a 3D model previews the slices of a volume, not a 2D image")
    image = session.image
    single = channel_axis(image) is None and channel_layers(session) == [image]
    source = image.data if single else image_input(session)
    voxel = model_voxel_size(image)
    start, stop = slab_range(bundle, int(np.shape(source)[0]), z, voxel)
    return PredictRequest(image=np.array(source[start:stop]), bundle=bundle, device=device,
                          foreground_threshold=session.foreground_threshold,
                          voxel_size=voxel, slab_z=z - start,
                          stats=preview_stats(session, image, source, bundle))


def volume_request(session, request: PredictRequest, z: int | None) -> PredictRequest:
    """The Predict panel's ``request`` made for a volume (GUI thread): a 3D model gets
    the image's voxel size (the volume is zoomed to the model's), and for the slice in
    view the slab around it; a 2D model on an image that runs as a volume joins its
    objects across slices. Other requests stay as they are."""
    from .volume import dims_in_effect, model_voxel_size

    image, bundle = session.image, request.bundle
    if bundle.dims == 3:
        if z is None:
            return replace(request, voxel_size=model_voxel_size(image), shape=None)
        slab = preview_request(session, bundle, z, request.device)
        return replace(slab, probabilities=request.probabilities,
                       foreground_threshold=request.foreground_threshold)
    if z is None and request.instances and np.ndim(request.image) >= 3 and (
            dims_in_effect(session, image)[0] == "3d"):
        return replace(request, stitch=True, voxel_size=model_voxel_size(image))
    return request
