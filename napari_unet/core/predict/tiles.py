"""Tiled sliding-window prediction with smoothly blended overlaps.

Each slice is padded by reflection, cut into equal overlapping tiles (aligned to the
U-Net's pooling grid and shrunk so they cover the slice evenly), predicted in batches,
and blended with a weight that falls smoothly towards each tile's edge. Stacks are
predicted slice by slice, and slices larger than :data:`BAND_PIXELS` band by band, so
peak memory is the input, the output and one band of float32 work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from napari_unet.core.config import MIN_OBJECT_SIZE, TILE_SIZE
from napari_unet.core.decision import FOREGROUND_THRESHOLD, check_threshold, decide, interior_seeds
from napari_unet.core.errors import (
    InputError,
    PredictionError,
    failure_message,
    is_device_failure,
    is_out_of_memory,
)
from napari_unet.core.io.channels import as_model_input
from napari_unet.core.labels import labels_dtype
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.device import (
    autocast,
    keep_freed_memory,
    prefers_channels_last,
    select_device,
)
from napari_unet.core.models.unet import UNet
from napari_unet.core.predict.layout import blend_window, tile_starts
from napari_unet.core.predict.objects import class_objects, drop_small
from napari_unet.core.predict.result import Prediction
from napari_unet.core.predict.uncertainty import uncertainty as pixel_uncertainty
from napari_unet.core.scale import (
    centre_window,
    check_rescale,
    factor_for,
    object_size,
    resize_plane,
    upsample_rows,
)

ProgressCallback = Callable[[int, int], None]
log = logging.getLogger(__name__)
#: Tiles are never shrunk below this side (pixels) when memory runs out.
MIN_TILE = 64
#: A slice larger than this (pixels) is predicted in bands of rows, each with a margin of
#: context, so that memory holds the input, the labels and one band of probabilities.
BAND_PIXELS = 8 * 1024**2


class Predictor:
    """Predicts with one model bundle on one device.

    ``tta`` averages the probabilities over the four flips of each tile (test-time
    augmentation): four times the work for slightly cleaner outlines.
    ``foreground_threshold`` t: a pixel is foreground when 1 - p(background) >= t, then
    of its most likely foreground class (:func:`~napari_unet.core.decision.decide`); raising t shrinks
    objects, lowering it grows them.
    ``rescale``: ``"auto"`` shrinks a slice whose objects look much larger than those the
    model was trained on (:mod:`~napari_unet.core.scale`), ``"off"`` never resizes, a number resizes every
    slice by it (0.5: to half its size); the probabilities are resized back, so labels
    and probabilities keep the slice's size. Slices larger than :data:`BAND_PIXELS` are
    predicted as they are.
    """

    def __init__(
        self,
        bundle: ModelBundle,
        *,
        device: str | torch.device = "auto",
        tile_size: int = TILE_SIZE,
        overlap: int = 64,
        batch_size: int | None = None,
        model: UNet | None = None,
        mixed_precision: bool = True,
        tta: bool = False,
        foreground_threshold: float = FOREGROUND_THRESHOLD,
        rescale: str | float = "auto",
    ):
        keep_freed_memory()
        try:
            self.rescale = check_rescale(rescale)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.bundle = bundle
        self.device = select_device(device) if isinstance(device, str) else device
        # a model of its own has its batch norms folded in (less memory, the same outputs); a
        # model handed in is shared with its trainer: left as it is
        own = bundle.build_model().fold_batch_norms() if model is None else model
        self.model = own.to(self.device)
        self.model.eval()
        self.mixed_precision = mixed_precision
        self.tta = tta
        self.foreground_threshold = check_threshold(foreground_threshold)
        self.channels_last = prefers_channels_last(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.multiple = 2**bundle.config.depth
        self.tile_size = max(self.multiple, int(tile_size) // self.multiple * self.multiple)
        self.overlap = max(0, min(int(overlap), self.tile_size // 2))
        # By default a batch holds about a million pixels: four 512 x 512 tiles, one of 1024.
        self.batch_pixels = 1024**2 if batch_size is None else None
        self.batch_size = max(1, int(batch_size or 4))
        self.n_classes = bundle.n_classes
        self._last_batch = self.batch_size

    @torch.no_grad()
    def _forward(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        flips = [(), (2,), (3,), (2, 3)] if self.tta else [()]
        probs = None
        for dims in flips:
            xi = torch.flip(x, dims) if dims else x
            with autocast(self.device, self.mixed_precision):
                logits = self.model(xi)
            p = torch.softmax(logits.float(), dim=1)
            p = torch.flip(p, dims) if dims else p
            probs = p if probs is None else probs + p
        return (probs / len(flips)).cpu().numpy()

    def probabilities_2d(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities (C, H, W) of one normalised slice (H, W) or (C_in, H, W).

        When memory runs out, the batch of tiles is halved, then the tiles, and the slice
        is predicted again; :class:`PredictionError` says so when nothing smaller is left,
        or when the device fails.
        """
        while True:
            try:
                return self._probabilities_2d(image)
            except (RuntimeError, MemoryError) as exc:
                if is_device_failure(exc) and not is_out_of_memory(exc):
                    raise PredictionError(failure_message(exc, "Prediction")) from None
                if not is_out_of_memory(exc):
                    raise
            if not self._shrink():
                raise PredictionError(
                    f"prediction ran out of memory on {self.device.type} even one tile of "
                    f"{self.tile_size} pixels at a time: use a smaller image or another device"
                )
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def _shrink(self) -> bool:
        """Use smaller batches, then smaller tiles, after running out of memory."""
        if self._last_batch > 1:
            self.batch_pixels = None
            self.batch_size = max(1, self._last_batch // 2)
            log.info("out of memory: predicting %d tiles at a time", self.batch_size)
            return True
        smaller = self.tile_size // 2 // self.multiple * self.multiple
        if smaller < max(self.multiple, MIN_TILE):
            return False
        self.tile_size = smaller
        self.overlap = min(self.overlap, smaller // 2)
        log.info("out of memory: predicting tiles of %d pixels", smaller)
        return True

    def _probabilities_2d(self, image: np.ndarray) -> np.ndarray:
        if image.ndim == 2:
            image = image[np.newaxis]
        _, h, w = image.shape
        margin, th, ys, tw, xs, window = self.tile_layout(h, w)
        pad_y = max(th, h + 2 * margin) - h - margin
        pad_x = max(tw, w + 2 * margin) - w - margin
        padded = np.pad(image, ((0, 0), (margin, pad_y), (margin, pad_x)), mode="symmetric")
        out = self.blend_tiles(padded, [(y, x) for y in ys for x in xs], th, tw, window)
        return out[:, margin : margin + h, margin : margin + w]

    def tile_layout(self, h: int, w: int):
        """How a slice of ``h`` x ``w`` is tiled: the mirrored margin, the tile height and
        the tiles' starts in y, the same in x (in the padded slice), and the blend window."""
        margin = self.overlap // 2
        th, ys = tile_starts(h + 2 * margin, self.tile_size, self.overlap, self.multiple)
        tw, xs = tile_starts(w + 2 * margin, self.tile_size, self.overlap, self.multiple)
        ramp_y = min(self.overlap, th // 2) if len(ys) > 1 else 0
        ramp_x = min(self.overlap, tw // 2) if len(xs) > 1 else 0
        return margin, th, ys, tw, xs, blend_window(th, tw, ramp_y, ramp_x)

    def blend_tiles(self, padded: np.ndarray, coords: list[tuple[int, int]], th: int,
                    tw: int, window: np.ndarray) -> np.ndarray:
        """Probabilities (C, ...) of ``padded`` (channels, Y, X) from the tiles at
        ``coords``, in batches, blended with ``window`` in the order given."""
        out = np.zeros((self.n_classes, *padded.shape[1:]), np.float32)
        weight = np.zeros(padded.shape[1:], np.float32)
        n_batch = self.batch_size
        if self.batch_pixels is not None:
            n_batch = max(1, self.batch_pixels // (th * tw))
        self._last_batch = min(n_batch, len(coords))
        for i in range(0, len(coords), n_batch):
            chunk = coords[i : i + n_batch]
            tiles = np.stack([padded[:, y : y + th, x : x + tw] for y, x in chunk])
            probs = self._forward(np.ascontiguousarray(tiles, dtype=np.float32))
            for (y, x), p in zip(chunk, probs):
                out[:, y : y + th, x : x + tw] += p * window
                weight[y : y + th, x : x + tw] += window
        np.divide(out, weight, out=out, where=weight > 0)
        return out

    def predict(
        self,
        image: np.ndarray,
        *,
        slices: list[int] | None = None,
        probabilities: bool = False,
        instances: bool = False,
        min_size: int = MIN_OBJECT_SIZE,
        progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        uncertainty: bool = False,
    ) -> Prediction:
        """Predict a 2D image or a stack (Z, Y, X), or for a model of several channels a
        stack of them (Z, C, Y, X) (:mod:`~napari_unet.core.io.channels`), all slices or the listed ones.

        The labels are (Y, X) or (Z, Y, X). Slices not predicted are 0 in the labels.
        ``progress(done, total)`` is called after each slice; ``should_stop()`` is asked
        before each slice. An image whose channels do not fit the model is refused
        (:class:`InputError`). ``uncertainty`` adds each pixel's uncertainty, float32 in
        [0, 1] (:mod:`.uncertainty`: from the probabilities, no more forward passes).
        """
        image = np.asarray(image)
        full = as_model_input(image, self.bundle.config.in_channels, self.bundle.channels)
        stack = full[:, 0]  # the shape of the labels, (Z, Y, X)
        z_all = range(stack.shape[0])
        todo = list(z_all) if slices is None else [int(z) for z in slices]
        if any(z < 0 or z >= stack.shape[0] for z in todo):
            raise InputError(f"slice index out of range for a stack of {stack.shape[0]} slices")
        labels = np.zeros(stack.shape, labels_dtype(self.n_classes - 1))
        probs = (
            np.zeros((stack.shape[0], self.n_classes, *stack.shape[1:]), np.float32)
            if probabilities else None
        )
        inst = np.zeros(stack.shape, np.int32) if instances else None
        unc = np.zeros(stack.shape, np.float32) if uncertainty else None
        factors: dict[int, float] = {}
        for done, z in enumerate(todo, start=1):
            if should_stop is not None and should_stop():
                break
            # Instances of an instance model need only p(interior) and p(boundary).
            relief = (inst is not None and probs is None and unc is None
                      and self.splits_instances)
            p, factors[z] = self._predict_slice(full[z], labels[z], keep=probs is not None or (
                unc is not None) or (inst is not None and not relief), relief=relief)
            if probs is not None:
                probs[z] = p
            if unc is not None:
                unc[z] = pixel_uncertainty(p)
            if inst is not None:
                inst[z] = self.instances_2d(p, labels[z], min_size=min_size)
            if progress is not None:
                progress(done, len(todo))
        if image.ndim == 2:
            return Prediction(labels[0], None if probs is None else probs[0],
                              None if inst is None else inst[0], factors,
                              None if unc is None else unc[0])
        return Prediction(labels, probs, inst, factors, unc)

    @property
    def splits_instances(self) -> bool:
        """Whether the model was trained on instance masks (background / interior /
        boundary), whose sure interiors seed the objects."""
        return self.bundle.splits_instances

    def slice_factor(self, image: np.ndarray, stats: list | None = None) -> float:
        """How much :meth:`predict` resizes one slice (C_in, H, W) (``rescale``)."""
        h, w = image.shape[-2:]
        if self.rescale == "off" or h * w > BAND_PIXELS:
            return 1.0
        if not isinstance(self.rescale, str):
            return self.rescale
        norm = self.bundle.normalisation
        if stats is None:
            stats = [norm.stats(channel) for channel in image]
        ys, xs = centre_window(h, w)
        window = np.stack([norm.normalise(c[ys, xs], st) for c, st in zip(image, stats)])
        return factor_for(object_size(window), self.bundle.object_size)

    def _predict_slice(self, image: np.ndarray, labels: np.ndarray, keep: bool,
                       relief: bool = False) -> tuple[np.ndarray | None, float]:
        """Write the classes of one slice (C_in, H, W) into ``labels``; return its
        probabilities (C, H, W) when ``keep``, or with ``relief`` only p(interior) and
        p(boundary) (2, H, W), and the factor it was resized by. Each channel of the slice
        is normalised with percentiles of the whole slice but predicted in bands of rows
        when it is large (:data:`BAND_PIXELS`)."""
        norm = self.bundle.normalisation
        stats = [norm.stats(channel) for channel in image]
        h, w = image.shape[-2:]
        factor = self.slice_factor(image, stats)
        if factor != 1.0:
            whole = np.stack([norm.normalise(c, st) for c, st in zip(image, stats)])
            small = self.probabilities_2d(resize_plane(whole, factor))
            p = upsample_rows(small, h, w, 0, h)
            labels[:] = self.labels_2d(p)
            return (p if keep else p[1:3] if relief else None), factor
        rows = max(self.multiple, BAND_PIXELS // max(1, w))
        if keep:
            out = np.zeros((self.n_classes, h, w), np.float32)
        elif relief:
            out = np.zeros((2, h, w), np.float32)
        else:
            out = None
        halo = max(self.overlap, 8 * self.multiple)  # context beyond each band
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            a, b = max(0, r0 - halo), min(h, r1 + halo)
            band = np.stack([norm.normalise(c[a:b], st) for c, st in zip(image, stats)])
            p = self.probabilities_2d(band)[:, r0 - a : r1 - a]
            labels[r0:r1] = self.labels_2d(p)
            if keep:
                out[:, r0:r1] = p
            elif relief:
                out[:, r0:r1] = p[1:3]
        return out, 1.0

    def labels_2d(self, probs: np.ndarray) -> np.ndarray:
        """Classes from probabilities (C, H, W): background unless 1 - p(background) is
        at least the foreground threshold, then the most likely foreground class. Raising
        the threshold shrinks objects, as Cellpose's cell probability or StarDist's
        probability threshold do."""
        return decide(probs, self.foreground_threshold)

    def instances_2d(self, probs: np.ndarray, labels: np.ndarray | None = None,
                     min_size: int = MIN_OBJECT_SIZE) -> np.ndarray:
        """Split the foreground of ``labels`` (by default :meth:`labels_2d` of ``probs``)
        into objects (``probs``: every class, or, with ``labels`` given, only p(interior)
        and p(boundary) as two planes).

        For a model trained on instance masks (background / interior / boundary) the
        pixels sure to be interior (:func:`~napari_unet.core.decision.interior_seeds`) seed a watershed
        over the foreground on p(boundary) - p(interior), so touching objects come apart;
        a foreground blob without a sure interior pixel is no object. Otherwise each
        foreground class's region is split at its necks
        (:func:`~napari_unet.core.predict.objects.class_objects`). Objects smaller than
        ``min_size`` pixels are dropped.
        """
        from skimage.measure import label as connected
        from skimage.segmentation import relabel_sequential, watershed

        if labels is None:
            labels = self.labels_2d(probs)
        if not self.splits_instances:
            return class_objects(labels, min_size)
        foreground = labels > 0
        interior, boundary = probs[-2], probs[-1]
        seeds = connected(interior_seeds(interior, labels))
        seeds = drop_small(seeds, max(1, min_size // 2))
        out = watershed(boundary - interior, markers=seeds, mask=foreground)
        out = drop_small(out, min_size)
        return relabel_sequential(out)[0].astype(np.int32)


def predict(bundle: ModelBundle, image: np.ndarray, **kwargs) -> Prediction:
    """Shortcut: ``Predictor(bundle).predict(image, ...)``."""
    opts = {k: kwargs.pop(k) for k in ("device", "tile_size", "overlap", "batch_size", "rescale")
            if k in kwargs}
    return Predictor(bundle, **opts).predict(image, **kwargs)
